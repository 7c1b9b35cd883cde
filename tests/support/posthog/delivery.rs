//! How PostHog's CDP calls a webhook destination (posthog-api.md §3.3, §4.2; DESIGN.md §5): the
//! body input rendered against the invocation globals, Standard Webhooks signatures, no redirects,
//! and up to three attempts that keep the webhook-id and take a fresh timestamp and signature.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::state::IdSource;
use super::HogFunction;

pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// PostHog's RETRIABLE_STATUS_CODES; network errors are retried as well.
const RETRIABLE: &[u16] = &[408, 429, 500, 502, 503, 504];

/// The Standard Webhooks key: the secret after `whsec_`, base64-decoded.
pub fn signing_key(secret: &str) -> Result<Vec<u8>, DeliveryError> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|e| DeliveryError::InvalidSecret(e.to_string()))
}

// RFC 2104 over SHA-256, written out so the signer shares no code with the verifier under test.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

fn signature_with_key(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(msg_id.len() + body.len() + 24);
    signed.extend_from_slice(msg_id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac_sha256(key, &signed)))
}

/// `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")).
///
/// # Panics
/// When `secret` (after an optional `whsec_`) is not base64: that is a bug in the calling test.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    match signing_key(secret) {
        Ok(key) => signature_with_key(&key, msg_id, timestamp, body),
        Err(error) => panic!("signing secret {secret:?} is not (whsec_-prefixed) base64: {error}"),
    }
}

/// The three Standard Webhooks headers of one delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

impl SignedHeaders {
    pub fn pairs(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_WEBHOOK_ID, self.id.clone()),
            (HEADER_WEBHOOK_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_WEBHOOK_SIGNATURE, self.signature.clone()),
        ]
    }

    /// The same headers as an `http::HeaderMap` (reqwest and lambda_http share the type).
    pub fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.pairs() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                map.insert(HeaderName::from_static(name), value);
            }
        }
        map
    }
}

/// Headers for `body` as PostHog would sign it. Panics like [`sign`] on a malformed secret.
pub fn signed_headers(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
    SignedHeaders {
        id: msg_id.to_owned(),
        timestamp,
        signature: sign(secret, msg_id, timestamp, body),
    }
}

/// A fresh `msg_…` id, unique per delivery (PostHog gives every signed fetch its own).
pub fn new_webhook_id() -> String {
    format!("msg_{}", IdSource::new().alphanumeric(27))
}

pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The invocation globals for `input`: either globals already (`{"event": {…}, "person": …}`, the
/// shape of the recorded fixtures) or a bare event (`{"uuid", "event": "$exception", …}`).
/// `project` and `source` are filled in when absent, as PostHog adds them for every function.
pub fn invocation_globals(function: &HogFunction, input: &Value, project: Option<&Value>) -> Value {
    let mut globals = match input {
        Value::Object(map) if map.get("event").is_some_and(Value::is_object) => map.clone(),
        event => {
            let mut map = Map::new();
            map.insert("event".to_owned(), event.clone());
            map
        }
    };
    if let (false, Some(project)) = (globals.contains_key("project"), project) {
        globals.insert("project".to_owned(), project.clone());
    }
    if !globals.contains_key("source") {
        let project_url = globals
            .get("project")
            .and_then(|p| p.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let url = format!(
            "{project_url}/pipeline/destinations/hog-{}/configuration/",
            function.id
        );
        globals.insert(
            "source".to_owned(),
            json!({"name": function.name, "url": url}),
        );
    }
    Value::Object(globals)
}

/// Renders a Hog-templated input: a string that is exactly one `{expression}` becomes that value
/// (objects stay objects), other strings interpolate; arrays and objects are rendered throughout.
/// A missing global renders as `null` (PostHog's exact choice is unconfirmed, posthog-api.md §4.1).
pub fn render(template: &Value, globals: &Value) -> Value {
    match template {
        Value::String(s) => render_string(s, globals),
        Value::Array(items) => Value::Array(items.iter().map(|v| render(v, globals)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render(v, globals)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn render_string(template: &str, globals: &Value) -> Value {
    if let Some(inner) = template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        if !inner.contains(['{', '}']) {
            return lookup(globals, inner.trim())
                .cloned()
                .unwrap_or(Value::Null);
        }
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Value::String(out);
        };
        match lookup(globals, after[..end].trim()) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Null) | None => {}
            Some(value) => out.push_str(&value.to_string()),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Value::String(out)
}

/// `event.properties.$exception_types[1]`: dotted keys, and Hog's 1-based `[n]` indexing.
fn lookup<'a>(globals: &'a Value, expression: &str) -> Option<&'a Value> {
    let mut current = globals;
    for segment in expression.split('.') {
        let (key, mut indices) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        while let Some(stripped) = indices.strip_prefix('[') {
            let end = stripped.find(']')?;
            let index = stripped[..end].trim();
            current = match index.parse::<usize>() {
                Ok(n) => current.get(n.checked_sub(1)?)?,
                Err(_) => current.get(index.trim_matches(['\'', '"']))?,
            };
            indices = &stripped[end + 1..];
        }
    }
    Some(current)
}

#[derive(Clone, Debug)]
pub struct DeliveryOptions {
    /// PostHog's CDP_FETCH_RETRIES: three attempts in all.
    pub max_attempts: u32,
    /// PostHog waits about `attempt` seconds; tests rarely want to, so the default is zero.
    pub backoff: Duration,
    /// EXTERNAL_REQUEST_TIMEOUT_MS.
    pub timeout: Duration,
    /// Pins `webhook-timestamp` (for example to a stale one); default: the real clock per attempt.
    pub timestamp: Option<i64>,
    pub webhook_id: Option<String>,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            max_attempts: 3,
            backoff: Duration::ZERO,
            timeout: Duration::from_secs(10),
            timestamp: None,
            webhook_id: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub timestamp: i64,
    pub signature: Option<String>,
    pub status: Option<u16>,
    pub response_body: String,
    pub error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub function_id: String,
    pub webhook_id: String,
    pub url: String,
    pub method: String,
    /// The function's own headers as sent; the signature headers are on each attempt.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub attempts: Vec<Attempt>,
}

impl Delivery {
    pub fn final_status(&self) -> Option<u16> {
        self.attempts.last().and_then(|a| a.status)
    }

    pub fn succeeded(&self) -> bool {
        self.final_status().is_some_and(|s| (200..300).contains(&s))
    }

    pub fn response_json(&self) -> Option<Value> {
        serde_json::from_str(&self.attempts.last()?.response_body).ok()
    }
}

#[derive(Debug)]
pub enum DeliveryError {
    UnknownFunction(String),
    /// PostHog would not invoke the function for this event (deleted, disabled, filtered out).
    NotRouted(String),
    MissingUrl,
    InvalidSecret(String),
    Client(String),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::UnknownFunction(id) => write!(f, "no hog function {id}"),
            DeliveryError::NotRouted(why) => write!(f, "PostHog would not deliver: {why}"),
            DeliveryError::MissingUrl => write!(f, "the function has no url input"),
            DeliveryError::InvalidSecret(e) => write!(f, "signing_secret is not base64: {e}"),
            DeliveryError::Client(e) => write!(f, "HTTP client: {e}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Calls the function's destination for one invocation, retrying like PostHog. `globals` should
/// come from [`invocation_globals`]. Returns once an attempt is not retriable or none are left.
pub async fn deliver(
    function: &HogFunction,
    globals: &Value,
    options: &DeliveryOptions,
) -> Result<Delivery, DeliveryError> {
    let url = function
        .input("url")
        .and_then(Value::as_str)
        .map(|u| render_string(u, globals))
        .and_then(|u| u.as_str().map(str::to_owned))
        .ok_or(DeliveryError::MissingUrl)?;
    let method = function
        .input("method")
        .and_then(Value::as_str)
        .unwrap_or("POST")
        .to_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|e| DeliveryError::Client(e.to_string()))?;
    let sends_body = method != reqwest::Method::GET && method != reqwest::Method::HEAD;
    let template = function
        .input("body")
        .cloned()
        .unwrap_or_else(|| json!({"event": "{event}", "person": "{person}"}));
    let body = match render(&template, globals) {
        Value::String(s) => s,
        other => other.to_string(),
    };
    // Only string-valued headers survive (pickBy(headers, isString)); none given means JSON.
    let headers: Vec<(String, String)> = match function.input("headers") {
        Some(headers @ Value::Object(_)) => match render(headers, globals) {
            Value::Object(map) => map
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
            _ => Vec::new(),
        },
        _ => vec![("Content-Type".to_owned(), "application/json".to_owned())],
    };
    let key = match function
        .input("signing_secret")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(secret) => Some(signing_key(secret)?),
        None => None,
    };
    let webhook_id = options.webhook_id.clone().unwrap_or_else(new_webhook_id);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.timeout)
        .build()
        .map_err(|e| DeliveryError::Client(e.to_string()))?;

    let max_attempts = options.max_attempts.max(1);
    let mut attempts = Vec::new();
    for attempt in 1..=max_attempts {
        let timestamp = options.timestamp.unwrap_or_else(now_unix);
        let signed_body: &[u8] = if sends_body { body.as_bytes() } else { b"" };
        let signature = key
            .as_ref()
            .map(|k| signature_with_key(k, &webhook_id, timestamp, signed_body));
        let mut request = client.request(method.clone(), &url);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(signature) = &signature {
            request = request
                .header(HEADER_WEBHOOK_ID, webhook_id.as_str())
                .header(HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
                .header(HEADER_WEBHOOK_SIGNATURE, signature.as_str());
        }
        if sends_body {
            request = request.body(body.clone());
        }
        let retriable = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let response_body = response.text().await.unwrap_or_default();
                attempts.push(Attempt {
                    timestamp,
                    signature,
                    status: Some(status),
                    response_body,
                    error: None,
                });
                RETRIABLE.contains(&status)
            }
            Err(error) => {
                attempts.push(Attempt {
                    timestamp,
                    signature,
                    status: None,
                    response_body: String::new(),
                    error: Some(error.to_string()),
                });
                true
            }
        };
        if !retriable || attempt == max_attempts {
            break;
        }
        if !options.backoff.is_zero() {
            tokio::time::sleep(options.backoff * attempt).await;
        }
    }
    Ok(Delivery {
        function_id: function.id.clone(),
        webhook_id,
        url,
        method: method.to_string(),
        headers,
        body,
        attempts,
    })
}
