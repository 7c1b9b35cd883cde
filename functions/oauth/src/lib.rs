//! The `oauth` function (DESIGN.md §3, §6): `POST /integrations/posthog/connect` answers the URL
//! of PostHog's consent screen; `GET /integrations/posthog/callback` (no JWT: PostHog sends the
//! browser here) finishes the connect and redirects to the dashboard with the outcome.

use flowback::api;
use flowback::aws::CallBudget;
use flowback::caller::caller;
use flowback::config::ConfigError;
use flowback::connect::{Callback, Connector, StartError};
use flowback::posthog::Region;
use http::{header, StatusCode};
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde_json::{json, Value};

pub struct OAuth {
    connector: Connector,
}

impl OAuth {
    pub fn new(connector: Connector) -> Self {
        Self { connector }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(Connector::from_env(CallBudget::API).await?))
    }
}

pub async fn handle(state: &OAuth, req: Request) -> Result<Response<Body>, Error> {
    Ok(route(state, &req).await.map(Body::from))
}

async fn route(state: &OAuth, req: &Request) -> Response<String> {
    match api::route_key(req).unwrap_or_default() {
        "POST /integrations/posthog/connect" => connect(state, req).await,
        "GET /integrations/posthog/callback" => callback(state, req).await,
        other => api::error(
            StatusCode::NOT_FOUND,
            "no_route",
            &format!("no route {other:?} in the oauth function"),
        ),
    }
}

async fn connect(state: &OAuth, req: &Request) -> Response<String> {
    let Some(who) = caller(req) else {
        return api::unauthorized();
    };
    let region = match region(req.body().as_ref()) {
        Ok(r) => r,
        Err(message) => return api::bad_request("invalid_region", message),
    };
    match state.connector.start(&who, region).await {
        Ok(url) => api::json(StatusCode::OK, &json!({"authorize_url": url})),
        Err(StartError::AlreadyConnected) => api::error(
            StatusCode::CONFLICT,
            "already_connected",
            "this workspace is connected to PostHog; disconnect it first",
        ),
        Err(e) => {
            tracing::error!(error = %e, "connect failed");
            api::unavailable()
        }
    }
}

const REGION_MESSAGE: &str = r#"the body must be {"region": "us"} or {"region": "eu"}"#;

fn region(body: &[u8]) -> Result<Region, &'static str> {
    let value: Value = serde_json::from_slice(body).map_err(|_| REGION_MESSAGE)?;
    value["region"]
        .as_str()
        .and_then(Region::parse)
        .ok_or(REGION_MESSAGE)
}

async fn callback(state: &OAuth, req: &Request) -> Response<String> {
    let query = req.query_string_parameters();
    let location = state
        .connector
        .finish(Callback {
            code: query.first("code"),
            state: query.first("state"),
            error: query.first("error"),
        })
        .await;
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        // The answer depends on a one-time code: never from a cache.
        .header(header::CACHE_CONTROL, "no-store")
        .body(String::new())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_us_and_eu_are_regions() {
        assert_eq!(region(br#"{"region":"us"}"#), Ok(Region::Us));
        assert_eq!(region(br#"{"region":"eu"}"#), Ok(Region::Eu));
        for bad in [
            &br#"{"region":"US"}"#[..],
            br#"{"region":"ap"}"#,
            br#"{}"#,
            b"",
            b"us",
            br#"{"region":1}"#,
        ] {
            let message = region(bad).unwrap_err();
            assert!(message.contains("region"), "{message}");
        }
    }
}
