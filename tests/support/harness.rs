//! The backend as a user meets it, in-process: the `oauth`, `settings` and `webhook` handlers fed
//! API Gateway HTTP API (payload 2.0) events, against moto's DynamoDB and Secrets Manager (started
//! by `scripts/with-moto.sh`, as `make test` does) and the PostHog stand-in.
//!
//! Each harness has its own table and secret prefix, and serves `PUBLIC_API_URL` on a loopback
//! port where `POST /webhooks/posthog/{connection_id}` reaches the webhook handler, so the stand-in
//! delivers to the URL the backend put in its destinations.

use crate::posthog::PostHogStandIn;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::post;
use flowback::connect::Connector;
use flowback::ids::{ConnectionId, WorkspaceId};
use flowback::posthog::{BaseUrls, Budget, OAuthApp, PostHog};
use flowback::secrets::Secrets;
use flowback::store::connections::{Connection, WorkspaceConnection};
use flowback::store::forwarding::EnvironmentForwarding;
use flowback::store::{schema, Store};
use lambda_http::{Body, Request};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use url::Url;

pub const CLIENT_ID: &str = "flowback-test";
pub const USER: &str = "user_1";

static NEXT: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
    format!("{prefix}{}x{n}x{nanos}", std::process::id())
}

/// Small budgets: a test of "PostHog is down" should not wait like production would.
pub const TEST_BUDGET: Budget = Budget {
    connect: Duration::from_millis(500),
    request: Duration::from_secs(3),
    attempts: 2,
    max_retry_after: Duration::from_secs(1),
};

pub struct Harness {
    pub posthog: PostHogStandIn,
    pub store: Store,
    pub secrets: Secrets,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub oauth: oauth::OAuth,
    pub settings: settings::Settings,
    pub webhook: Arc<webhook::Webhook>,
    pub public_api_url: String,
    pub dashboard_url: String,
    pub ws: WorkspaceId,
    server: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_webhook(
    State(webhook): State<Arc<webhook::Webhook>>,
    Path(conn): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let mut hdrs = serde_json::Map::new();
    for (name, value) in &headers {
        hdrs.insert(
            name.as_str().to_owned(),
            json!(String::from_utf8_lossy(value.as_bytes())),
        );
    }
    let request = event(
        "POST /webhooks/posthog/{connection_id}",
        &format!("/webhooks/posthog/{conn}"),
        Value::Object(hdrs),
        json!({"connection_id": conn}),
        None,
        None,
        Some(String::from_utf8_lossy(&body).into_owned()),
    );
    let response = webhook::handle(&webhook, request)
        .await
        .expect("the webhook handler never errors");
    let (parts, body) = response.into_parts();
    (parts.status, body_text(body)).into_response()
}

pub fn body_text(body: Body) -> String {
    match body {
        Body::Text(t) => t,
        Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

/// An API Gateway HTTP API (payload 2.0) event; `claims` as API Gateway's JWT authorizer passes them.
pub fn event(
    route_key: &str,
    path: &str,
    headers: Value,
    path_parameters: Value,
    query: Option<Vec<(String, String)>>,
    claims: Option<Value>,
    body: Option<String>,
) -> Request {
    let method = route_key.split(' ').next().unwrap_or("GET");
    let raw_query = query
        .as_ref()
        .map(|q| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(q)
                .finish()
        })
        .unwrap_or_default();
    let query_parameters = query.map(|q| {
        let mut map = serde_json::Map::new();
        for (k, v) in q {
            map.entry(k).or_insert(Value::String(v));
        }
        Value::Object(map)
    });
    let mut context = json!({
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "test"},
        "requestId": unique("req-"),
        "routeKey": route_key,
        "stage": "$default",
        "time": "04/Dec/2026:16:00:00 +0000",
        "timeEpoch": 1796400000000i64
    });
    if let Some(claims) = claims {
        context["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "queryStringParameters": query_parameters,
        "pathParameters": path_parameters,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

/// What the dashboard sees after the callback: `?status=connected` or `?error=<code>`.
#[derive(Debug, Clone)]
pub struct Landing {
    pub url: Url,
}

impl Landing {
    pub fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn connected(&self) -> bool {
        self.param("status").as_deref() == Some("connected") && self.param("error").is_none()
    }

    pub fn error(&self) -> Option<String> {
        self.param("error")
    }
}

impl Harness {
    /// A workspace with nothing connected, and a PostHog that knows our client and redirect URI.
    pub async fn start() -> Harness {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts moto's server"
        );
        let sdk = flowback::aws::load(flowback::aws::CallBudget::API).await;
        let table = unique("t");
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        schema::create_table(&dynamo, &table)
            .await
            .expect("create table");
        let store = Store::new(dynamo.clone(), &table);
        let secrets = Secrets::from_config(&sdk, format!("{}/", unique("flowback-test-")));
        let webhook = Arc::new(webhook::Webhook::new(store.clone(), secrets.clone(), 500));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let public_api_url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/webhooks/posthog/{connection_id}", post(serve_webhook))
            .with_state(webhook.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let posthog = PostHogStandIn::start().await;
        posthog.register_client(
            CLIENT_ID,
            &format!("{public_api_url}/integrations/posthog/callback"),
            None,
        );
        let dashboard_url = "https://app.flowback.test".to_owned();
        let connector = connector_for(
            &store,
            &secrets,
            posthog.base_url(),
            &public_api_url,
            &dashboard_url,
        );
        let settings_connector = connector_for(
            &store,
            &secrets,
            posthog.base_url(),
            &public_api_url,
            &dashboard_url,
        );
        Harness {
            oauth: oauth::OAuth::new(connector),
            settings: settings::Settings::new(settings_connector),
            posthog,
            store,
            secrets,
            dynamo,
            table,
            webhook,
            public_api_url,
            dashboard_url,
            ws: WorkspaceId::parse(&unique("ws")).unwrap(),
            server,
        }
    }

    /// The settings function of a deployment whose PostHog is unreachable (a closed port).
    pub async fn settings_with_posthog_down(&self) -> settings::Settings {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        settings::Settings::new(connector_for(
            &self.store,
            &self.secrets,
            &dead,
            &self.public_api_url,
            &self.dashboard_url,
        ))
    }

    pub fn claims(&self) -> Value {
        json!({"sub": USER, "workspace_id": self.ws.as_str()})
    }

    /// `POST /integrations/posthog/connect` with `body`, as the signed-in user.
    pub async fn post_connect(&self, body: &str) -> (http::StatusCode, Value) {
        let request = event(
            "POST /integrations/posthog/connect",
            "/integrations/posthog/connect",
            json!({"content-type": "application/json"}),
            Value::Null,
            None,
            Some(self.claims()),
            Some(body.to_owned()),
        );
        let response = oauth::handle(&self.oauth, request).await.unwrap();
        let status = response.status();
        let body = serde_json::from_str(&body_text(response.into_body())).unwrap_or(Value::Null);
        (status, body)
    }

    /// Asks for the authorize URL (US region).
    pub async fn authorize_url(&self) -> String {
        let (status, body) = self.post_connect(r#"{"region":"us"}"#).await;
        assert_eq!(status, http::StatusCode::OK, "{body}");
        body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_owned()
    }

    /// The user at PostHog: answers the URL PostHog redirects the browser to (our callback).
    pub async fn consent(&self, authorize_url: &str) -> Url {
        let outcome = self.posthog.authorize(authorize_url).await;
        assert_eq!(outcome.status, 302, "{outcome:?}");
        outcome.location.expect("PostHog redirects to the callback")
    }

    /// The browser arriving at our callback with PostHog's query string.
    pub async fn callback(&self, at: &Url) -> Landing {
        let query: Vec<(String, String)> = at
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let request = event(
            "GET /integrations/posthog/callback",
            "/integrations/posthog/callback",
            json!({"accept": "text/html"}),
            Value::Null,
            Some(query),
            None,
            None,
        );
        let response = oauth::handle(&self.oauth, request).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::FOUND);
        assert_eq!(
            response.headers()["cache-control"].to_str().unwrap(),
            "no-store"
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let url = Url::parse(&location).expect("an absolute redirect");
        assert!(
            location.starts_with(&format!("{}/integrations/posthog?", self.dashboard_url)),
            "{location}"
        );
        Landing { url }
    }

    /// The whole flow: connect, consent at PostHog, callback.
    pub async fn connect(&self) -> Landing {
        let authorize = self.authorize_url().await;
        let back = self.consent(&authorize).await;
        self.callback(&back).await
    }

    pub async fn disconnect_with(
        &self,
        settings: &settings::Settings,
    ) -> (http::StatusCode, Value) {
        let request = event(
            "DELETE /integrations/posthog",
            "/integrations/posthog",
            json!({}),
            Value::Null,
            None,
            Some(self.claims()),
            None,
        );
        let response = settings::handle(settings, request).await.unwrap();
        let status = response.status();
        let body = serde_json::from_str(&body_text(response.into_body())).unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn disconnect(&self) -> (http::StatusCode, Value) {
        self.disconnect_with(&self.settings).await
    }

    pub async fn pointer(&self) -> Option<WorkspaceConnection> {
        self.store.get_workspace_connection(&self.ws).await.unwrap()
    }

    /// The workspace's current connection.
    pub async fn connection(&self) -> Connection {
        let pointer = self
            .pointer()
            .await
            .expect("the workspace has a connection");
        self.store
            .get_connection(&pointer.connection_id)
            .await
            .unwrap()
            .expect("the connection item exists")
    }

    pub async fn forwarding(&self, conn: &ConnectionId) -> Vec<EnvironmentForwarding> {
        self.store.list_forwarding(conn).await.unwrap()
    }

    pub async fn secret(&self, name: &str) -> Option<SecretString> {
        self.secrets.get(name).await.unwrap()
    }

    pub async fn signing_secret(&self, conn: &ConnectionId) -> Option<String> {
        self.secret(&self.secrets.webhook_secret_name(conn))
            .await
            .map(|s| s.expose_secret().to_owned())
    }

    pub async fn tokens(&self, conn: &ConnectionId) -> Option<Value> {
        self.secret(&self.secrets.tokens_name(conn))
            .await
            .map(|s| serde_json::from_str(s.expose_secret()).unwrap())
    }

    /// Every item in the table.
    pub async fn items(&self) -> Vec<flowback::store::Item> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            found.extend(out.items().iter().cloned());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return found,
            }
        }
    }

    /// `(PK, SK)` of every item.
    pub async fn keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .items()
            .await
            .iter()
            .map(|i| {
                (
                    i["PK"].as_s().unwrap().clone(),
                    i["SK"].as_s().unwrap().clone(),
                )
            })
            .collect();
        keys.sort();
        keys
    }

    /// A connector on this harness's table and secrets (what `sync` would build).
    pub fn connector(&self) -> Connector {
        connector_for(
            &self.store,
            &self.secrets,
            self.posthog.base_url(),
            &self.public_api_url,
            &self.dashboard_url,
        )
    }

    /// Signs `body` with `secret` as PostHog would and posts it to our webhook URL.
    pub async fn post_signed(&self, conn: &ConnectionId, secret: &str, body: &str) -> (u16, Value) {
        let id = crate::posthog::new_webhook_id();
        let headers = crate::posthog::signed_headers(
            secret,
            &id,
            crate::posthog::now_unix(),
            body.as_bytes(),
        );
        let response = self
            .posthog
            .http()
            .post(format!("{}/webhooks/posthog/{conn}", self.public_api_url))
            .headers(headers.header_map())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

pub fn connector_for(
    store: &Store,
    secrets: &Secrets,
    posthog_base: &str,
    public_api_url: &str,
    dashboard_url: &str,
) -> Connector {
    let posthog = PostHog::new(
        BaseUrls::new(posthog_base, posthog_base).unwrap(),
        OAuthApp {
            client_id: CLIENT_ID.into(),
            client_secret: None,
            stored_secret: None,
        },
        TEST_BUDGET,
    )
    .unwrap();
    Connector::new(
        store.clone(),
        secrets.clone(),
        posthog,
        public_api_url,
        dashboard_url,
    )
}

/// A recorded SDK delivery (`tests/fixtures/posthog/{name}.webhook.json`) as JSON.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/posthog/{name}.webhook.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}
