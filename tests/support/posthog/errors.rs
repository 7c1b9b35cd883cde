//! Error bodies in PostHog's two dialects: exceptions_hog on `/api/` (PostHog's DRF
//! `EXCEPTION_HANDLER`), and oauthlib/DOT's `{"error", "error_description"}` on `/oauth/`.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Any status a test asks for; an out-of-range number becomes a 500 rather than a panic.
pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
    www_authenticate: Option<String>,
}

impl ApiError {
    fn hog(status: StatusCode, kind: &str, code: &str, detail: &str, attr: Option<&str>) -> Self {
        ApiError {
            status,
            body: json!({"type": kind, "code": code, "detail": detail, "attr": attr}),
            www_authenticate: None,
        }
    }

    pub fn raw(status_code: u16, body: Value) -> Self {
        ApiError {
            status: status(status_code),
            body,
            www_authenticate: None,
        }
    }

    pub fn not_authenticated(base_url: &str) -> Self {
        let mut error = Self::hog(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "not_authenticated",
            "Authentication credentials were not provided.",
            None,
        );
        error.www_authenticate = Some(resource_metadata(base_url));
        error
    }

    pub fn invalid_token(base_url: &str) -> Self {
        let mut error = Self::hog(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "authentication_failed",
            "Invalid access token.",
            None,
        );
        error.www_authenticate = Some(resource_metadata(base_url));
        error
    }

    pub fn permission_denied(detail: &str) -> Self {
        Self::hog(
            StatusCode::FORBIDDEN,
            "authentication_error",
            "permission_denied",
            detail,
            None,
        )
    }

    pub fn not_found() -> Self {
        Self::hog(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "not_found",
            "Not found.",
            None,
        )
    }

    pub fn validation(code: &str, detail: &str, attr: Option<&str>) -> Self {
        Self::hog(
            StatusCode::BAD_REQUEST,
            "validation_error",
            code,
            detail,
            attr,
        )
    }

    pub fn parse_error(detail: &str) -> Self {
        Self::hog(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "parse_error",
            detail,
            None,
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::hog(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "unsupported_media_type",
            &format!("Unsupported media type \"{content_type}\" in request."),
            None,
        )
    }

    pub fn server_error(status_code: u16) -> Self {
        Self::hog(
            status(status_code),
            "server_error",
            "error",
            "A server error occurred.",
            None,
        )
    }
}

fn resource_metadata(base_url: &str) -> String {
    format!("Bearer resource_metadata=\"{base_url}/.well-known/oauth-protected-resource\"")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(self.status, &self.body);
        if let Some(value) = self
            .www_authenticate
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Option<String>,
    retry_after: bool,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: Option<&str>) -> Self {
        OAuthError {
            status,
            error,
            description: description.map(str::to_owned),
            retry_after: false,
        }
    }

    pub fn invalid_request(description: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            Some(description),
        )
    }

    /// oauthlib gives invalid_grant no description, so neither does the stand-in.
    pub fn invalid_grant() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", None)
    }

    pub fn invalid_grant_because(description: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", Some(description))
    }

    pub fn invalid_client() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", None)
    }

    pub fn invalid_scope() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", None)
    }

    pub fn unsupported_grant_type() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", None)
    }

    pub fn unsupported_token_type() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_token_type", None)
    }

    /// PostHog's answer to a transient database or Redis failure on the token endpoint.
    pub fn temporarily_unavailable() -> Self {
        OAuthError {
            retry_after: true,
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                Some("The authorization server is temporarily unavailable. Please retry."),
            )
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.error});
        if let Some(description) = &self.description {
            body["error_description"] = json!(description);
        }
        let mut response = json_response(self.status, &body);
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        if self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
