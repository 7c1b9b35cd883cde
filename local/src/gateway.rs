//! API Gateway, locally: the routes of template.yaml, each request turned into the payload 2.0 event
//! the Lambda receives (`lambda_http::request::from_str`, as in the handler tests), handed to the
//! function's own handler, and its response written back.

use crate::auth::Verifier;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use lambda_http::Body;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct Functions {
    pub oauth: oauth::OAuth,
    pub webhook: webhook::Webhook,
    pub settings: settings::Settings,
    pub drafts: drafts::Drafts,
    /// Scheduled by EventBridge when deployed; here run by hand through `POST /local/sync`.
    pub sync: sync::Sync,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Function {
    OAuth,
    Webhook,
    Settings,
    Drafts,
}

/// (method, path, JWT required, function): the routes of template.yaml.
const ROUTES: &[(&str, &str, bool, Function)] = &[
    (
        "POST",
        "/integrations/posthog/connect",
        true,
        Function::OAuth,
    ),
    (
        "GET",
        "/integrations/posthog/callback",
        false,
        Function::OAuth,
    ),
    ("GET", "/integrations/posthog", true, Function::Settings),
    (
        "PUT",
        "/integrations/posthog/environments/{environment_id}",
        true,
        Function::Settings,
    ),
    (
        "DELETE",
        "/integrations/posthog/environments/{environment_id}",
        true,
        Function::Settings,
    ),
    ("DELETE", "/integrations/posthog", true, Function::Settings),
    (
        "POST",
        "/webhooks/posthog/{connection_id}",
        false,
        Function::Webhook,
    ),
    ("GET", "/drafts", true, Function::Drafts),
    ("GET", "/drafts/{draft_id}", true, Function::Drafts),
    ("POST", "/drafts/{draft_id}/approve", true, Function::Drafts),
    ("POST", "/drafts/{draft_id}/dismiss", true, Function::Drafts),
    ("POST", "/drafts/{draft_id}/restore", true, Function::Drafts),
    ("GET", "/issues/{issue_id}", true, Function::Drafts),
];

#[derive(Clone)]
struct Gateway {
    functions: Arc<Functions>,
    verifier: Verifier,
    requests: Arc<AtomicU64>,
}

pub fn router(functions: Arc<Functions>, verifier: Verifier) -> Router {
    let gateway = Gateway {
        functions,
        verifier,
        requests: Arc::new(AtomicU64::new(0)),
    };
    let mut router = Router::new();
    for &(method, path, authorized, function) in ROUTES {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            _ => MethodFilter::DELETE,
        };
        let route_key = format!("{method} {path}");
        let handler = move |State(g): State<Gateway>,
                            params: Option<Path<HashMap<String, String>>>,
                            method: Method,
                            uri: Uri,
                            headers: HeaderMap,
                            body: Bytes| {
            let route_key = route_key.clone();
            async move {
                let params = params.map(|Path(p)| p).unwrap_or_default();
                invoke(
                    &g, &route_key, authorized, function, params, method, uri, headers, body,
                )
                .await
            }
        };
        router = router.route(path, on(filter, handler));
    }
    router
        .route("/local/sync", axum::routing::post(run_sync))
        .fallback(|| async {
            let body = json!({"error": {"code": "no_route", "message": "no such route"}});
            (StatusCode::NOT_FOUND, axum::Json(body))
        })
        .with_state(gateway)
}

/// `POST /local/sync`: one run of the scheduled upkeep, answering its report. Local only: no API
/// Gateway route reaches the `sync` function.
async fn run_sync(State(g): State<Gateway>) -> Response {
    let functions = &g.functions;
    match sync::run_once(&functions.sync, functions.sync.budget).await {
        Ok(report) => (StatusCode::OK, axum::Json(json!(report))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "local sync run failed");
            let body = json!({"error": {"code": "storage_unavailable", "message": "the sync registry could not be read"}});
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn invoke(
    g: &Gateway,
    route_key: &str,
    authorized: bool,
    function: Function,
    params: HashMap<String, String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let claims = if authorized {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        match g.verifier.verify(auth) {
            Some(c) => Some(c),
            // API Gateway's JWT authorizer answers this itself, before any Lambda runs.
            None => {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({"message": "Unauthorized"})),
                )
                    .into_response()
            }
        }
    } else {
        None
    };
    let n = g.requests.fetch_add(1, Ordering::Relaxed);
    let event = event(
        route_key, &params, &method, &uri, &headers, &body, claims, n,
    );
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot build the event: {e}"),
            )
                .into_response()
        }
    };
    let f = &g.functions;
    let result = match function {
        Function::OAuth => oauth::handle(&f.oauth, request).await,
        Function::Webhook => webhook::handle(&f.webhook, request).await,
        Function::Settings => settings::handle(&f.settings, request).await,
        Function::Drafts => drafts::handle(&f.drafts, request).await,
    };
    match result {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let bytes: Vec<u8> = match body {
                Body::Empty => Vec::new(),
                Body::Text(t) => t.into_bytes(),
                Body::Binary(b) => b,
                _ => Vec::new(),
            };
            let mut out = (parts.status, bytes).into_response();
            for (name, value) in parts.headers.iter() {
                out.headers_mut().insert(name, value.clone());
            }
            out
        }
        // A Lambda error: API Gateway answers 500 without the details.
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"message": "Internal Server Error"})),
        )
            .into_response(),
    }
}

#[allow(clippy::too_many_arguments)]
fn event(
    route_key: &str,
    params: &HashMap<String, String>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    claims: Option<HashMap<String, String>>,
    n: u64,
) -> Value {
    let mut hdrs = Map::new();
    for (name, value) in headers.iter() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match hdrs.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&v);
            }
            _ => {
                hdrs.insert(name.as_str().to_owned(), Value::String(v));
            }
        }
    }
    let mut query = Map::new();
    for (k, v) in url_pairs(uri.query().unwrap_or("")) {
        query.entry(k).or_insert(Value::String(v));
    }
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(body), true)
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let mut context = json!({
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": "127.0.0.1",
        "domainPrefix": "local",
        "http": {"method": method.as_str(), "path": uri.path(), "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": hdrs.get("user-agent").cloned().unwrap_or(Value::Null)},
        "requestId": format!("local-{n}"),
        "routeKey": route_key,
        "stage": "$default",
        "time": now.unix_timestamp().to_string(),
        "timeEpoch": now.unix_timestamp() * 1000
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": uri.path(),
        "rawQueryString": uri.query().unwrap_or(""),
        "headers": hdrs,
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
        "pathParameters": if params.is_empty() { Value::Null } else { json!(params) },
        "requestContext": context,
        "body": if body.is_empty() { Value::Null } else { Value::String(body) },
        "isBase64Encoded": base64
    })
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
