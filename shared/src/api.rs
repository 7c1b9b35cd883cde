//! HTTP answers shared by every function: JSON bodies and the `{"error": {"code", "message"}}` shape
//! of DESIGN.md §3. Internal details never reach a client; they go to the log.

use http::{header, Response, StatusCode};
use serde::Serialize;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<String> {
    // Serialising our own response types cannot fail; an empty object is the safe fallback.
    let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_default()
}

pub fn error(status: StatusCode, code: &str, message: &str) -> Response<String> {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

/// The API Gateway route that matched, e.g. `GET /drafts/{draft_id}`: functions dispatch on it.
pub fn route_key(req: &lambda_http::Request) -> Option<&str> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.route_key.as_deref(),
        _ => None,
    }
}

pub fn not_found(what: &str) -> Response<String> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("{what} not found"),
    )
}

pub fn unauthorized() -> Response<String> {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the token carries no workspace_id and sub claims",
    )
}

pub fn bad_request(code: &str, message: &str) -> Response<String> {
    error(StatusCode::BAD_REQUEST, code, message)
}

pub fn unavailable() -> Response<String> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "storage is unavailable; retry",
    )
}
