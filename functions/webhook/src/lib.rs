//! The `webhook` function's HTTP handler.

use lambda_http::{Body, Error, Request, Response};

pub async fn handle(_req: Request) -> Result<Response<Body>, Error> {
    Ok(flowback::api::error(
        http::StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "this route is not implemented yet",
    )
    .map(Body::from))
}
