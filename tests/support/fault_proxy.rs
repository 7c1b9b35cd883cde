//! A fault-injecting HTTP proxy between the SDK and moto's server: moto cannot throttle, time out or
//! lose an answer, so this does, for the DynamoDB operations a test names.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 400 ProvisionedThroughputExceededException without forwarding.
    Throttle,
    /// Answer 500 InternalServerError without forwarding (DynamoDB unreachable behind the LB).
    Unavailable,
    /// Hold the request past the SDK's attempt timeout without forwarding.
    Hang,
    /// Forward (the write happens), then lose the answer: a 500 replaces it.
    LoseAnswerAfterWrite,
    /// Answer TransactionCanceledException with `TransactionConflict` on the second item, as
    /// DynamoDB does when another transaction holds that item.
    Conflict,
}

#[derive(Default)]
struct Rules {
    /// (operation, body must contain, fault, how many more times)
    rules: Vec<(String, Option<String>, Fault, u32)>,
    seen: Vec<String>,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<Rules>>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    rules: Arc<Mutex<Rules>>,
    client: reqwest::Client,
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let rules = Arc::new(Mutex::new(Rules::default()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rules: rules.clone(),
            client: reqwest::Client::new(),
        };
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state: rules }
    }

    /// The next `times` calls of `operation` (e.g. "TransactWriteItems") get `fault`.
    pub fn inject(&self, operation: &str, fault: Fault, times: u32) {
        self.state
            .lock()
            .unwrap()
            .rules
            .push((operation.to_owned(), None, fault, times));
    }

    /// Like `inject`, for the calls whose request body contains `needle` (e.g. one item's key).
    pub fn inject_matching(&self, operation: &str, needle: &str, fault: Fault, times: u32) {
        self.state.lock().unwrap().rules.push((
            operation.to_owned(),
            Some(needle.to_owned()),
            fault,
            times,
        ));
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Operations forwarded or faulted so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }
}

async fn forward(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let fault = {
        let mut rules = s.rules.lock().unwrap();
        rules.seen.push(operation.clone());
        let text = String::from_utf8_lossy(&body);
        let hit = rules.rules.iter_mut().find(|(op, needle, _, n)| {
            *op == operation && *n > 0 && needle.as_ref().is_none_or(|x| text.contains(x.as_str()))
        });
        hit.map(|(_, _, fault, n)| {
            *n -= 1;
            *fault
        })
    };
    match fault {
        Some(Fault::Throttle) => {
            return dynamo_error(
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )
        }
        Some(Fault::Unavailable) => {
            return dynamo_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            )
        }
        Some(Fault::Conflict) => {
            let body = serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "message": "Transaction cancelled, please refer cancellation reasons for specific reasons [None, TransactionConflict]",
                "CancellationReasons": [
                    {"Code": "None"},
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                ]
            })
            .to_string();
            return (
                StatusCode::BAD_REQUEST,
                [
                    ("content-type", "application/x-amz-json-1.0"),
                    ("x-amzn-errortype", "TransactionCanceledException"),
                ],
                body,
            )
                .into_response();
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        _ => {}
    }
    let mut request = s
        .client
        .request(method, format!("{}{}", s.upstream, uri))
        .body(body);
    for (name, value) in headers.iter() {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let upstream = match request.send().await {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    if fault == Some(Fault::LoseAnswerAfterWrite) {
        return dynamo_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "answer lost",
        );
    }
    let mut response = (status, bytes).into_response();
    for (name, value) in upstream_headers.iter() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

fn dynamo_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"__type": kind, "message": message}).to_string();
    (
        status,
        [
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amzn-errortype", kind.rsplit('#').next().unwrap_or(kind)),
        ],
        body,
    )
        .into_response()
}
