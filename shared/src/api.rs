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
