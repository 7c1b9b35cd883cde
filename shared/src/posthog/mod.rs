//! PostHog client (posthog-api.md §1 OAuth, §2 projects, §3 hog functions, §7 issues).
//!
//! Only configured hosts are ever called: a request is built from a [`Region`] resolved through
//! [`BaseUrls`], never from a URL PostHog handed back (its `posthog_base_url`, or a pagination
//! `next` on another host, is ignored). Redirects are not followed for the same reason.
//!
//! Retries are few and only where PostHog says a retry helps: 429, 503 (`temporarily_unavailable`
//! on the token endpoint), and network failures — the latter only when the request cannot have
//! taken effect twice (it never reached PostHog, or repeating it is harmless). Every other failure
//! comes back at once, classified: transient (5xx, network, timeout) or a refusal.

mod hog_functions;
mod issues;
mod oauth;
mod projects;

pub use hog_functions::{destination, issue_destination, HogFunction, ISSUE_EVENTS};
pub use issues::Issue;
pub use oauth::{authorize_url, TokenKind, TokenResponse, SCOPES};
pub use projects::Project;

use crate::config::{self, ConfigError};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    Us,
    Eu,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Us => "us",
            Self::Eu => "eu",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "us" => Some(Self::Us),
            "eu" => Some(Self::Eu),
            _ => None,
        }
    }
}

/// The PostHog hosts this deployment talks to: Cloud by default, overridable for tests and
/// self-hosted PostHog.
#[derive(Debug, Clone)]
pub struct BaseUrls {
    us: String,
    eu: String,
}

impl BaseUrls {
    pub const US_DEFAULT: &'static str = "https://us.posthog.com";
    pub const EU_DEFAULT: &'static str = "https://eu.posthog.com";

    pub fn new(us: &str, eu: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            us: checked_base("POSTHOG_US_BASE_URL", us)?,
            eu: checked_base("POSTHOG_EU_BASE_URL", eu)?,
        })
    }

    /// `POSTHOG_US_BASE_URL`, `POSTHOG_EU_BASE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(
            &config::optional("POSTHOG_US_BASE_URL").unwrap_or_else(|| Self::US_DEFAULT.into()),
            &config::optional("POSTHOG_EU_BASE_URL").unwrap_or_else(|| Self::EU_DEFAULT.into()),
        )
    }

    pub fn get(&self, region: Region) -> &str {
        match region {
            Region::Us => &self.us,
            Region::Eu => &self.eu,
        }
    }
}

fn checked_base(name: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| ConfigError::Invalid(name, format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::Invalid(
            name,
            format!("{raw:?} is not an http(s) URL"),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Our OAuth application at PostHog: the id, and a secret only for a confidential client.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// Where an operator may have stored the secret, read on the first token call rather than at
    /// init: most invocations never need it, and the read is a network round trip.
    pub stored_secret: Option<std::sync::Arc<StoredClientSecret>>,
}

pub struct StoredClientSecret {
    secrets: crate::secrets::Secrets,
    cell: tokio::sync::OnceCell<Option<SecretString>>,
}

impl OAuthApp {
    /// The client secret, if any, from `{prefix}oauth-client` on first use.
    pub fn stored(client_id: String, secrets: crate::secrets::Secrets) -> Self {
        Self {
            client_id,
            client_secret: None,
            stored_secret: Some(std::sync::Arc::new(StoredClientSecret {
                secrets,
                cell: tokio::sync::OnceCell::new(),
            })),
        }
    }

    pub(crate) async fn secret(&self) -> Result<Option<SecretString>, PostHogError> {
        if let Some(s) = &self.client_secret {
            return Ok(Some(s.clone()));
        }
        let Some(stored) = &self.stored_secret else {
            return Ok(None);
        };
        stored
            .cell
            .get_or_try_init(|| async {
                let name = stored.secrets.oauth_client_name();
                let found =
                    stored.secrets.get(&name).await.map_err(|e| {
                        PostHogError::Unavailable(format!("OAuth client secret: {e}"))
                    })?;
                Ok(found.map(parse_client_secret))
            })
            .await
            .cloned()
    }
}

/// An operator stores the client secret as a bare string, or as JSON with `client_secret`.
pub fn parse_client_secret(stored: SecretString) -> SecretString {
    use secrecy::ExposeSecret;
    match serde_json::from_str::<serde_json::Value>(stored.expose_secret()) {
        Ok(v) => match v["client_secret"].as_str() {
            Some(inner) => SecretString::from(inner.to_owned()),
            None => stored,
        },
        Err(_) => stored,
    }
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("confidential", &self.client_secret.is_some())
            .field("secret_stored", &self.stored_secret.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PostHogError {
    /// 5xx, 429, a network failure or a timeout: trying later may work.
    #[error("PostHog is unavailable: {0}")]
    Unavailable(String),
    /// The access token was refused (expired, revoked).
    #[error("PostHog refused the access token")]
    Unauthorized,
    #[error("not found at PostHog")]
    NotFound,
    /// A refresh token or code PostHog will never accept again (`invalid_grant`).
    #[error("PostHog refused the grant: {0}")]
    InvalidGrant(String),
    /// A permanent refusal (400, 403, …) with PostHog's own reason.
    #[error("PostHog refused ({status}): {reason}")]
    Refused { status: u16, reason: String },
    #[error("PostHog answered something unreadable: {0}")]
    Unexpected(String),
}

impl PostHogError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// How hard one call tries. The totals stay inside the API's 30 s and the callback's own deadline.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub connect: Duration,
    pub request: Duration,
    pub attempts: u32,
    /// The longest `Retry-After` honoured; beyond it the call fails as unavailable.
    pub max_retry_after: Duration,
}

impl Budget {
    pub const DEFAULT: Self = Self {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(6),
        attempts: 3,
        max_retry_after: Duration::from_secs(2),
    };
}

/// Whether repeating a request after a network failure is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// GET, PATCH to a fixed state, revocation, refresh (PostHog answers a repeat within its grace).
    Safe,
    /// A create or a code exchange: retried only when the request never left.
    OnlyIfNotSent,
}

#[derive(Clone)]
pub struct PostHog {
    /// Built on the first call: building it loads the system's root certificates, a cost most
    /// invocations (reads of our own table) never need to pay at init.
    http: std::sync::Arc<std::sync::OnceLock<Result<reqwest::Client, String>>>,
    bases: BaseUrls,
    app: OAuthApp,
    budget: Budget,
}

impl PostHog {
    pub fn new(bases: BaseUrls, app: OAuthApp, budget: Budget) -> Result<Self, PostHogError> {
        Ok(Self {
            http: std::sync::Arc::new(std::sync::OnceLock::new()),
            bases,
            app,
            budget,
        })
    }

    fn http(&self) -> Result<&reqwest::Client, PostHogError> {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(self.budget.connect)
                    .timeout(self.budget.request)
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("flowback/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| PostHogError::Unexpected(format!("HTTP client: {e}")))
    }

    pub fn bases(&self) -> &BaseUrls {
        &self.bases
    }

    pub fn app(&self) -> &OAuthApp {
        &self.app
    }

    pub fn base(&self, region: Region) -> &str {
        self.bases.get(region)
    }

    fn url(&self, region: Region, path: &str) -> String {
        format!("{}{path}", self.base(region))
    }

    /// Sends with the retry rules above; answers the body of a 2xx, or the classified failure.
    pub(crate) async fn send(
        &self,
        replay: Replay,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(StatusCode, Value), PostHogError> {
        let http = self.http()?;
        let mut attempt = 1;
        loop {
            let outcome = build(http).send().await;
            let retry_after = match outcome {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let text = response.text().await.unwrap_or_default();
                    let body: Value = if text.trim().is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    };
                    if status.is_success() {
                        return Ok((status, body));
                    }
                    let error = classify(status, &body);
                    if !retryable(status, &body, &headers) || attempt >= self.budget.attempts {
                        return Err(error);
                    }
                    match retry_after(&headers) {
                        Some(wait) if wait > self.budget.max_retry_after => return Err(error),
                        Some(wait) => wait,
                        None => backoff(attempt),
                    }
                }
                Err(e) => {
                    let unsent = e.is_connect();
                    let error = PostHogError::Unavailable(network_reason(&e));
                    if (replay == Replay::OnlyIfNotSent && !unsent)
                        || attempt >= self.budget.attempts
                    {
                        return Err(error);
                    }
                    backoff(attempt)
                }
            };
            tokio::time::sleep(retry_after).await;
            attempt += 1;
        }
    }

    fn authorized(&self, builder: RequestBuilder, token: &SecretString) -> RequestBuilder {
        builder.bearer_auth(token.expose_secret())
    }
}

/// 429, and a 503 PostHog marks as temporary (`temporarily_unavailable`, or a `Retry-After`).
fn retryable(status: StatusCode, body: &Value, headers: &HeaderMap) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE
            && (body["error"] == "temporarily_unavailable" || headers.contains_key(RETRY_AFTER)))
}

fn classify(status: StatusCode, body: &Value) -> PostHogError {
    let reason = reason(body);
    match status.as_u16() {
        401 => PostHogError::Unauthorized,
        404 => PostHogError::NotFound,
        400 if body["error"] == "invalid_grant" => PostHogError::InvalidGrant(reason),
        408 | 429 => PostHogError::Unavailable(format!("{status}: {reason}")),
        s if s >= 500 => PostHogError::Unavailable(format!("{status}: {reason}")),
        s => PostHogError::Refused { status: s, reason },
    }
}

/// PostHog's own words: DRF's `detail` on `/api/`, oauthlib's `error_description` / `error` on
/// `/oauth/`, or the first field error of a validation answer.
fn reason(body: &Value) -> String {
    let text = body["detail"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .or_else(|| body["error"].as_str())
        .map(str::to_owned)
        .or_else(|| body.as_str().map(str::to_owned))
        .or_else(|| {
            body.as_object()
                .and_then(|m| m.iter().next())
                .map(|(k, v)| format!("{k}: {v}"))
        })
        .unwrap_or_else(|| "no reason given".into());
    crate::limits::cut_to_bytes(&text, 300).to_owned()
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn backoff(attempt: u32) -> Duration {
    let jitter = u64::from(time::OffsetDateTime::now_utc().nanosecond() % 100);
    Duration::from_millis(200 * u64::from(attempt) + jitter)
}

/// The kind of failure, never the URL (its query could carry a code) or a body.
fn network_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "network error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failures_are_classified_as_posthog_means_them() {
        let refused = classify(
            StatusCode::FORBIDDEN,
            &json!({"type": "authentication_error", "code": "permission_denied", "detail": "The Data Pipelines addon is required", "attr": null}),
        );
        assert!(
            matches!(&refused, PostHogError::Refused { status: 403, reason } if reason == "The Data Pipelines addon is required")
        );
        assert!(!refused.is_transient());
        assert!(classify(StatusCode::BAD_GATEWAY, &Value::Null).is_transient());
        assert!(classify(StatusCode::TOO_MANY_REQUESTS, &Value::Null).is_transient());
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &json!({"error": "invalid_grant"})),
            PostHogError::InvalidGrant(_)
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &Value::Null),
            PostHogError::Unauthorized
        ));
        assert_eq!(
            reason(&json!({"inputs": {"url": ["This field is required."]}})),
            r#"inputs: {"url":["This field is required."]}"#
        );
    }

    #[test]
    fn only_http_base_urls_are_accepted_and_kept_without_a_trailing_slash() {
        let b = BaseUrls::new("https://us.posthog.com/", "http://127.0.0.1:8000").unwrap();
        assert_eq!(b.get(Region::Us), "https://us.posthog.com");
        assert_eq!(b.get(Region::Eu), "http://127.0.0.1:8000");
        assert!(BaseUrls::new("ftp://x", "https://eu.posthog.com").is_err());
        assert!(BaseUrls::new("not a url", "https://eu.posthog.com").is_err());
    }
}
