//! Test harness: a fresh table and secret prefix per test on moto's server (started by
//! `scripts/with-moto.sh`, which `make test` uses), a connected workspace, and signed deliveries
//! built as API Gateway HTTP API events, the same shape the Lambda receives.

use aws_sdk_dynamodb::types::Select;
use base64::Engine;
use flowback::draft::DraftView;
use flowback::ids::{ChannelId, ConnectionId, EnvironmentId, WorkspaceId};
use flowback::secrets::Secrets;
use flowback::signature;
use flowback::store::connections::{Connection, ConnectionStatus};
use flowback::store::mappings::Mapping;
use flowback::store::{schema, Store};
use http::StatusCode;
use lambda_http::Request;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU32, Ordering};
use webhook::Webhook;

pub const SECRET: &str = "whsec_dGVzdC1zaWduaW5nLXNlY3JldC0zMi1ieXRlcyEhIQ==";
pub const FIXTURES: [&str; 5] = [
    "web-uncaught_type_error",
    "web-handled",
    "web-unhandled_rejection_string",
    "node-unhandled_rejection",
    "python-handled_chain",
];

pub struct Harness {
    pub drafts: drafts::Drafts,
    pub settings: settings::Settings,
    pub store: Store,
    pub secrets: Secrets,
    pub webhook: Webhook,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub ws: WorkspaceId,
    pub conn: ConnectionId,
    pub secret: SecretString,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000;
    format!("{prefix}{}x{n}x{nanos}", std::process::id())
}

pub async fn sdk() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "AWS_ENDPOINT_URL is not set: run the tests through `make test`, which starts moto's server"
    );
    flowback::aws::load(flowback::aws::CallBudget::WEBHOOK).await
}

/// A connected workspace whose environment 2 maps to channel `eng-alerts`.
pub async fn harness() -> Harness {
    harness_with_limit(500).await
}

pub async fn harness_with_limit(max_new_drafts_per_hour: u32) -> Harness {
    harness_with(max_new_drafts_per_hour, None).await
}

/// With `via`, the webhook's DynamoDB client talks to that endpoint (a fault proxy) instead of moto.
pub async fn harness_with(max_new_drafts_per_hour: u32, via: Option<&str>) -> Harness {
    harness_for(&unique("ws"), max_new_drafts_per_hour, via).await
}

/// A harness whose workspace is `workspace` (its table is still its own).
pub async fn harness_for(
    workspace: &str,
    max_new_drafts_per_hour: u32,
    via: Option<&str>,
) -> Harness {
    let sdk = sdk().await;
    let table = unique("t");
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    schema::create_table(&dynamo, &table)
        .await
        .expect("create table");
    let store = Store::new(dynamo.clone(), &table);
    let secrets = Secrets::from_config(&sdk, format!("{}/", unique("flowback-test-")));
    let ws = WorkspaceId::parse(workspace).unwrap();
    let conn = ConnectionId::parse(&unique("c")).unwrap();
    let secret = SecretString::from(SECRET);
    store
        .put_connection(&Connection {
            id: conn.clone(),
            workspace_id: ws.clone(),
            status: ConnectionStatus::Connected,
            region: "us".into(),
            posthog_base_url: "https://us.posthog.com".into(),
            scopes: vec!["project:read".into()],
            connected_at: "2026-12-04T15:00:00.000Z".into(),
            connected_by: "user_1".into(),
        })
        .await
        .unwrap();
    secrets
        .create(&secrets.webhook_secret_name(&conn), &secret)
        .await
        .unwrap();
    let webhook_store = match via {
        Some(endpoint) => Store::new(
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .endpoint_url(endpoint)
                    .build(),
            ),
            &table,
        ),
        None => store.clone(),
    };
    let webhook_secrets = match via {
        Some(endpoint) => Secrets::new(
            aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(&sdk)
                    .endpoint_url(endpoint)
                    .build(),
            ),
            secrets.prefix(),
        ),
        None => secrets.clone(),
    };
    let h = Harness {
        drafts: drafts::Drafts::new(store.clone()),
        // PostHog is not reachable from these tests; only disconnect would call it (tests/disconnect.rs).
        settings: settings::Settings::new(crate::harness::connector_for(
            &store,
            &secrets,
            "http://127.0.0.1:9",
            "http://127.0.0.1:3000",
            "http://127.0.0.1:5173",
        )),
        webhook: Webhook::new(webhook_store, webhook_secrets, max_new_drafts_per_hour),
        store,
        secrets,
        dynamo,
        table,
        ws,
        conn,
        secret,
    };
    h.map(2, Some("eng-alerts"), true, true).await;
    h
}

impl Harness {
    pub async fn map(&self, env: i64, channel: Option<&str>, exceptions: bool, enabled: bool) {
        self.store
            .put_mapping(
                &self.ws,
                EnvironmentId::try_from(env).unwrap(),
                &Mapping {
                    channel_id: channel.map(|c| ChannelId::parse(c).unwrap()),
                    exceptions,
                    enabled,
                },
            )
            .await
            .unwrap();
    }

    /// Signs `body` as PostHog would and delivers it.
    pub async fn deliver(&self, webhook_id: &str, body: &[u8]) -> (StatusCode, Value) {
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        // A body that is not UTF-8 cannot be signed by the Standard Webhooks scheme; it is sent with a
        // placeholder and must be refused for what it is.
        let sig = signature::sign(&self.secret, webhook_id, ts, body)
            .unwrap_or_else(|| "v1,unsignable".into());
        let headers = json!({
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": ts.to_string(),
            "webhook-signature": sig,
        });
        self.send(self.conn.as_str(), headers, body).await
    }

    /// Delivers like PostHog: the same delivery again after a 503. A retry may then find the first
    /// attempt's write and answer `duplicate`; either way the delivery is counted once.
    pub async fn deliver_until_accepted(
        &self,
        webhook_id: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let mut answer = self.deliver(webhook_id, body).await;
        for _ in 0..4 {
            if answer.0 != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            answer = self.deliver(webhook_id, body).await;
        }
        answer
    }

    pub async fn send(&self, conn: &str, headers: Value, body: &[u8]) -> (StatusCode, Value) {
        let resp = webhook::handle(&self.webhook, request(conn, headers, body))
            .await
            .expect("handler never errors");
        let status = resp.status();
        let body: Value = serde_json::from_slice(resp.body().as_ref()).expect("JSON answer");
        (status, body)
    }

    pub async fn draft(&self, id: &str) -> DraftView {
        self.store
            .get_draft(&self.ws, id)
            .await
            .unwrap()
            .expect("draft exists")
    }

    /// A dashboard call as `user` of this harness's workspace.
    pub async fn api(
        &self,
        route_key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api_as(self.ws.as_str(), "user_1", route_key, path, body)
            .await
    }

    /// A dashboard call as `sub` of `workspace`, through the function that serves `route_key`.
    pub async fn api_as(
        &self,
        workspace: &str,
        sub: &str,
        route_key: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = api_request(workspace, sub, route_key, path, body.map(|b| b.to_string()));
        let resp = if route_key.contains("/integrations/") {
            settings::handle(&self.settings, req).await
        } else {
            drafts::handle(&self.drafts, req).await
        }
        .expect("handler never errors");
        let status = resp.status();
        let body = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
        (status, body)
    }

    /// One stored item, as DynamoDB holds it.
    pub async fn raw_item(
        &self,
        pk: &str,
        sk: &str,
    ) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        self.dynamo
            .get_item()
            .table_name(&self.table)
            .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(pk.into()))
            .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
            .expect("item exists")
    }

    /// Every item in the table: "no write" means this does not change.
    pub async fn item_count(&self) -> i32 {
        self.dynamo
            .scan()
            .table_name(&self.table)
            .select(Select::Count)
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count
    }
}

/// An API Gateway HTTP API (payload 2.0) event for `POST /webhooks/posthog/{conn}`.
pub fn request(conn: &str, headers: Value, body: &[u8]) -> Request {
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(s) => (s.to_owned(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(body), true),
    };
    let event = json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/posthog/{connection_id}",
        "rawPath": format!("/webhooks/posthog/{conn}"),
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": "POST", "path": format!("/webhooks/posthog/{conn}"), "protocol": "HTTP/1.1", "sourceIp": "203.0.113.1", "userAgent": "PostHog"},
            "requestId": "req-1",
            "routeKey": "POST /webhooks/posthog/{connection_id}",
            "stage": "$default",
            "time": "04/Dec/2026:16:00:00 +0000",
            "timeEpoch": 1796400000000i64
        },
        "pathParameters": {"connection_id": conn},
        "body": body,
        "isBase64Encoded": base64
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fixtures/posthog/{name}.webhook.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// The fixture with a new event uuid, distinct id and timestamp: another occurrence of the same error.
pub fn occurrence_of(name: &str, n: usize, user: &str, timestamp: &str) -> Vec<u8> {
    let mut v = fixture_json(name);
    v["event"]["uuid"] = json!(format!("00000000-0000-4000-8000-{n:012}"));
    v["event"]["distinct_id"] = json!(user);
    v["event"]["timestamp"] = json!(timestamp);
    v.to_string().into_bytes()
}

/// An authorised API Gateway HTTP API event: `route_key` like `GET /drafts/{draft_id}`, `path` the
/// concrete path with its query string; path parameters are matched from the two.
pub fn api_request(
    workspace: &str,
    sub: &str,
    route_key: &str,
    path: &str,
    body: Option<String>,
) -> Request {
    let (method, template) = route_key.split_once(' ').expect("route key");
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params = serde_json::Map::new();
    for (t, v) in template.split('/').zip(raw_path.split('/')) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            params.insert(name.to_owned(), json!(v));
        }
    }
    let mut query_map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        query_map.insert(k.into_owned(), json!(v.into_owned()));
    }
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": if query_map.is_empty() { Value::Null } else { Value::Object(query_map) },
        "pathParameters": if params.is_empty() { Value::Null } else { Value::Object(params) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "dashboard"},
            "requestId": "req-api",
            "routeKey": route_key,
            "stage": "$default",
            "time": "04/Dec/2026:16:00:00 +0000",
            "timeEpoch": 1796400000000i64,
            "authorizer": {"jwt": {"claims": {"sub": sub, "workspace_id": workspace}, "scopes": null}}
        },
        "body": body,
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event")
}
