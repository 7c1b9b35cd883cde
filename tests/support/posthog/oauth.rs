//! PostHog's OAuth 2.0 server (django-oauth-toolkit + oauthlib), posthog-api.md §1: authorization
//! code with mandatory PKCE S256, rotating refresh tokens with a 2-minute reuse grace, revocation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use url::Url;

use super::errors::{json_response, OAuthError};
use super::server::Shared;
use super::state::{
    AuthorizationCode, Grant, State as Db, CODE_LIFETIME, REFRESH_TOKEN_GRACE,
    REFRESH_TOKEN_LIFETIME,
};
use super::RevocationReason;

/// `BASE64URL(SHA256(verifier))`, the only PKCE method PostHog accepts.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Request parameters in arrival order, so duplicates can be told apart from single values.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_form(bytes: &[u8]) -> Self {
        Params(url::form_urlencoded::parse(bytes).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.0.iter().filter(|(k, _)| k == name).count()
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

const IDENTITY_SCOPES: &[&str] = &["openid", "profile", "email", "introspection"];

// The `{object}` half of PostHog's `{object}:{read|write}` scopes (scopes.py), the relevant subset
// plus neighbours a client might plausibly ask for.
const SCOPE_OBJECTS: &[&str] = &[
    "action",
    "activity_log",
    "annotation",
    "cohort",
    "dashboard",
    "error_tracking",
    "event_definition",
    "experiment",
    "feature_flag",
    "group",
    "hog_flow",
    "hog_function",
    "insight",
    "integration",
    "notebook",
    "organization",
    "person",
    "project",
    "property_definition",
    "query",
    "session_recording",
    "survey",
    "user",
    "webhook",
];

fn known_scope(scope: &str) -> bool {
    if IDENTITY_SCOPES.contains(&scope) {
        return true;
    }
    match scope.split_once(':') {
        Some((object, "read" | "write")) => SCOPE_OBJECTS.contains(&object),
        _ => false,
    }
}

/// PostHog clamps instead of rejecting: scopes it cannot grant are dropped silently, and a request
/// without `scope` gets the application's ceiling (every public scope for an unrestricted app).
fn clamp_scope(requested: Option<&str>) -> Vec<String> {
    let Some(requested) = requested else {
        let mut all: Vec<String> = IDENTITY_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        for object in SCOPE_OBJECTS {
            all.push(format!("{object}:read"));
            all.push(format!("{object}:write"));
        }
        return all;
    };
    let mut granted: Vec<String> = Vec::new();
    for scope in requested.split_whitespace() {
        if known_scope(scope) && !granted.iter().any(|g| g == scope) {
            granted.push(scope.to_owned());
        }
    }
    granted
}

/// Exact match, except RFC 8252's loopback rule PostHog implements: a loopback URI registered
/// without a port matches the same URI on any port.
fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    let loopback = matches!(r.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    loopback
        && r.port().is_none()
        && r.scheme() == p.scheme()
        && r.host_str() == p.host_str()
        && r.path() == p.path()
        && r.query() == p.query()
}

fn redirect_to(base: &str, params: &[(&str, Option<&str>)]) -> Response {
    let Ok(mut url) = Url::parse(base) else {
        return json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": "server_error", "error_description": "registered redirect URI is not a URL"}),
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
    }
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => {
            let mut response = StatusCode::FOUND.into_response();
            response.headers_mut().insert(LOCATION, location);
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = Params::from_form(query.as_deref().unwrap_or("").as_bytes());
    let mut db = shared.lock();
    authorize_with(&mut db, &params)
}

fn authorize_with(db: &mut Db, params: &Params) -> Response {
    // Until client and redirect URI are known good, errors must not travel through the redirect.
    for name in [
        "client_id",
        "response_type",
        "redirect_uri",
        "scope",
        "state",
    ] {
        if params.count(name) > 1 {
            return OAuthError::invalid_request(&format!("Duplicate {name} parameter."))
                .into_response();
        }
    }
    let Some(client_id) = params.get("client_id") else {
        return OAuthError::invalid_request("Missing client_id parameter.").into_response();
    };
    let Some(client) = db.clients.get(client_id) else {
        let region = db.region.clone().unwrap_or_else(|| "US".to_owned());
        return OAuthError::invalid_request(&format!(
            "No OAuth application is registered with this client_id in the {} region. \
             An application belongs to the region it was created in.",
            region.to_uppercase()
        ))
        .into_response();
    };
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|r| redirect_matches(r, uri)) =>
        {
            (uri.to_owned(), true)
        }
        Some(_) => {
            return OAuthError::invalid_request("Mismatching redirect URI.").into_response();
        }
        None if client.redirect_uris.len() == 1 => (client.redirect_uris[0].clone(), false),
        None => return OAuthError::invalid_request("Missing redirect URI.").into_response(),
    };

    // From here on oauthlib trusts the redirect URI, so errors go back through it (DOT's
    // error_response with redirect=True), carrying the client's state.
    let state = params.get("state");
    let fail = |error: &str, description: Option<&str>| {
        redirect_to(
            &redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", description),
                ("state", state),
            ],
        )
    };
    match params.get("response_type") {
        None => return fail("invalid_request", Some("Missing response_type parameter.")),
        Some("code") => {}
        Some(_) => return fail("unsupported_response_type", None),
    }
    let Some(code_challenge) = params.get("code_challenge") else {
        return fail("invalid_request", Some("Code challenge required."));
    };
    // A missing method means "plain" to oauthlib, and PostHog refuses plain.
    if params.get("code_challenge_method") != Some("S256") {
        return fail(
            "invalid_request",
            Some("Transform algorithm not supported."),
        );
    }
    match params.get("prompt") {
        Some("login") => {
            return json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "login_required"}),
            )
        }
        // PostHog never authorizes silently.
        Some("none") => return fail("consent_required", None),
        _ => {}
    }
    if std::mem::take(&mut db.faults.deny_next_authorization) {
        return fail("access_denied", None);
    }

    let scope = match &db.consent.scope {
        Some(granted) => granted.split_whitespace().map(str::to_owned).collect(),
        None => clamp_scope(params.get("scope")),
    };
    let grant = Grant {
        scope,
        scoped_teams: db.consent.scoped_teams.clone(),
        scoped_organizations: db.consent.scoped_organizations.clone(),
    };
    let code = db.ids.code();
    let issued_at = db.now();
    db.codes.insert(
        code.clone(),
        AuthorizationCode {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.clone(),
            redirect_uri_sent,
            code_challenge: code_challenge.to_owned(),
            grant,
            issued_at,
        },
    );
    redirect_to(&redirect_uri, &[("code", Some(&code)), ("state", state)])
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    match token_with(&mut db, &shared.base_url, &headers, &body) {
        Ok(body) => {
            let mut response = json_response(StatusCode::OK, &body);
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(error) => error.into_response(),
    }
}

fn token_with(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, OAuthError> {
    if db.faults.token_unavailable > 0 {
        db.faults.token_unavailable -= 1;
        return Err(OAuthError::temporarily_unavailable());
    }
    let params = request_params(headers, body)?;
    match params.get("grant_type") {
        Some("authorization_code") => exchange_code(db, base_url, headers, &params),
        Some("refresh_token") => refresh(db, base_url, headers, &params),
        _ => Err(OAuthError::unsupported_grant_type()),
    }
}

/// Form (RFC 6749) or, as PostHog also allows, a JSON object of scalars.
pub(crate) fn request_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Ok(Params::from_form(body));
    }
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return Err(OAuthError::invalid_request(
            "The request body must be a JSON object.",
        ));
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        let value = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            Value::Array(_) | Value::Object(_) => {
                return Err(OAuthError::invalid_request(&format!(
                    "Parameter '{name}' must be a string, number or boolean."
                )))
            }
        };
        pairs.push((name, value));
    }
    Ok(Params(pairs))
}

/// client_secret_post or HTTP Basic for confidential clients; client_id alone for public ones.
fn authenticate_client(
    db: &Db,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, OAuthError> {
    let (client_id, secret) = match basic_credentials(headers) {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            params
                .get("client_id")
                .ok_or_else(OAuthError::invalid_client)?
                .to_owned(),
            params.get("client_secret").map(str::to_owned),
        ),
    };
    let client = db
        .clients
        .get(&client_id)
        .ok_or_else(OAuthError::invalid_client)?;
    if let Some(expected) = &client.secret {
        if secret.as_deref() != Some(expected.as_str()) {
            return Err(OAuthError::invalid_client());
        }
    }
    Ok(client_id)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    // RFC 6749 §2.3.1: both halves are form-urlencoded before being joined.
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// RFC 7636 §4.1: 43–128 characters from the unreserved set.
fn well_formed_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn exchange_code(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Value, OAuthError> {
    let client_id = authenticate_client(db, headers, params)?;
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("Missing code parameter."))?;
    let now = db.now();
    let issued = db.codes.get(code).ok_or_else(OAuthError::invalid_grant)?;
    if issued.client_id != client_id || issued.issued_at + CODE_LIFETIME <= now {
        return Err(OAuthError::invalid_grant());
    }
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("Code verifier required."))?;
    if !well_formed_verifier(verifier) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636).",
        ));
    }
    if pkce_challenge(verifier) != issued.code_challenge {
        return Err(OAuthError::invalid_grant());
    }
    match params.get("redirect_uri") {
        Some(uri) if uri == issued.redirect_uri => {}
        None if !issued.redirect_uri_sent => {}
        _ => return Err(OAuthError::invalid_request("Mismatching redirect URI.")),
    }
    // Only a successful exchange consumes the code (DOT deletes the grant after issuing tokens).
    let issued = db
        .codes
        .remove(code)
        .ok_or_else(OAuthError::invalid_grant)?;
    let family = db.new_family();
    let (access, refresh) = db.mint_pair(&client_id, family, issued.grant.clone());
    Ok(token_body(db, base_url, &access, &refresh, &issued.grant))
}

fn refresh(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Value, OAuthError> {
    let client_id = authenticate_client(db, headers, params)?;
    let presented = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("Missing refresh token parameter."))?
        .to_owned();
    let now = db.now();
    let token = db
        .refresh_tokens
        .get(&presented)
        .ok_or_else(OAuthError::invalid_grant)?;
    if token.client_id != client_id {
        return Err(OAuthError::invalid_grant());
    }
    let family = token.family;
    let mut grant = token.grant.clone();
    if let Some(revoked_at) = token.revoked_at {
        if !token.rotated {
            let removed_by_user = db
                .revoked
                .iter()
                .any(|r| r.token == presented && r.reason == RevocationReason::ApplicationRevoked);
            return Err(if removed_by_user {
                OAuthError::invalid_grant_because(
                    "This application's access was revoked; re-authorize.",
                )
            } else {
                OAuthError::invalid_grant()
            });
        }
        if now - revoked_at >= REFRESH_TOKEN_GRACE {
            // Reuse of a rotated token after the grace means it leaked: PostHog kills the family.
            db.revoke_family(family, RevocationReason::FamilyReuse);
            return Err(OAuthError::invalid_grant());
        }
        // Within the grace a retry gets the pair the first use produced, so a client that crashed
        // after PostHog rotated but before it stored the answer can still recover. Once that pair
        // is gone too (rotated again, revoked) there is nothing safe to hand out.
        let successor = token
            .successor
            .clone()
            .ok_or_else(OAuthError::invalid_grant)?;
        let next = db
            .refresh_tokens
            .get(&successor)
            .filter(|next| next.revoked_at.is_none())
            .ok_or_else(OAuthError::invalid_grant)?;
        let access = next.access_token.clone();
        let grant = next.grant.clone();
        if db.live_access_token(&access).is_none() {
            return Err(OAuthError::invalid_grant());
        }
        return Ok(token_body(db, base_url, &access, &successor, &grant));
    }
    if token.created_at + REFRESH_TOKEN_LIFETIME <= now {
        return Err(OAuthError::invalid_grant());
    }
    if let Some(requested) = params.get("scope") {
        let requested: Vec<String> = requested.split_whitespace().map(str::to_owned).collect();
        if requested.iter().any(|s| !grant.scope.contains(s)) {
            return Err(OAuthError::invalid_scope());
        }
        grant.scope = requested;
    }
    db.revoke_refresh(&presented, RevocationReason::Rotated);
    let (access, refresh) = db.mint_pair(&client_id, family, grant.clone());
    if let Some(old) = db.refresh_tokens.get_mut(&presented) {
        old.successor = Some(refresh.clone());
    }
    Ok(token_body(db, base_url, &access, &refresh, &grant))
}

fn token_body(db: &Db, base_url: &str, access: &str, refresh: &str, grant: &Grant) -> Value {
    let expires_in = db
        .access_tokens
        .get(access)
        // Rounded up, so a fresh token says 3600 rather than 3599.
        .map(|t| ((t.expires_at - db.now()).as_seconds_f64().ceil() as i64).max(0))
        .unwrap_or(0);
    let mut body = json!({
        "access_token": access,
        "expires_in": expires_in,
        "token_type": "Bearer",
        "scope": grant.scope.join(" "),
        "refresh_token": refresh,
        "scoped_teams": grant.scoped_teams,
        "scoped_organizations": grant.scoped_organizations,
    });
    if let Some(region) = &db.region {
        body["posthog_region"] = json!(region);
        body["posthog_base_url"] = json!(base_url);
    }
    body
}

pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    match revoke_with(&mut db, &headers, &body) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => error.into_response(),
    }
}

/// RFC 7009: 200 whether or not the token existed or belonged to this client.
fn revoke_with(db: &mut Db, headers: &HeaderMap, body: &[u8]) -> Result<(), OAuthError> {
    let params = request_params(headers, body)?;
    let client_id = authenticate_client(db, headers, &params)?;
    let token = params
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("Missing token parameter."))?;
    if let Some(hint) = params.get("token_type_hint") {
        if hint != "access_token" && hint != "refresh_token" {
            return Err(OAuthError::unsupported_token_type());
        }
    }
    if db
        .access_tokens
        .get(token)
        .is_some_and(|t| t.client_id == client_id)
    {
        db.revoke_access(token, RevocationReason::Endpoint);
    } else if db
        .refresh_tokens
        .get(token)
        .is_some_and(|t| t.client_id == client_id)
    {
        db.revoke_refresh(token, RevocationReason::Endpoint);
    }
    Ok(())
}

/// Tokens as if the user had just completed the flow; for tests that start from a connection.
pub(crate) fn mint_for(db: &mut Db, base_url: &str, client_id: &str) -> Value {
    let grant = Grant {
        scope: match &db.consent.scope {
            Some(granted) => granted.split_whitespace().map(str::to_owned).collect(),
            None => clamp_scope(None),
        },
        scoped_teams: db.consent.scoped_teams.clone(),
        scoped_organizations: db.consent.scoped_organizations.clone(),
    };
    let family = db.new_family();
    let (access, refresh) = db.mint_pair(client_id, family, grant.clone());
    token_body(db, base_url, &access, &refresh, &grant)
}
