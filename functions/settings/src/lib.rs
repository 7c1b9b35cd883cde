//! The `settings` function (DESIGN.md §3): the workspace's PostHog integration. Every route needs
//! the caller's JWT and acts on the caller's workspace only.

use flowback::api;
use flowback::aws::CallBudget;
use flowback::caller::{caller, Caller};
use flowback::config::ConfigError;
use flowback::connect::Connector;
use http::StatusCode;
use lambda_http::{Body, Error, Request, Response};

pub struct Settings {
    /// The store, secrets and PostHog client; `connector.store` serves the read routes.
    pub connector: Connector,
}

impl Settings {
    pub fn new(connector: Connector) -> Self {
        Self { connector }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(Connector::from_env(CallBudget::API).await?))
    }
}

pub async fn handle(state: &Settings, req: Request) -> Result<Response<Body>, Error> {
    Ok(route(state, &req).await.map(Body::from))
}

async fn route(state: &Settings, req: &Request) -> Response<String> {
    let Some(who) = caller(req) else {
        return api::unauthorized();
    };
    match api::route_key(req).unwrap_or_default() {
        "DELETE /integrations/posthog" => disconnect(state, &who).await,
        other => api::error(
            StatusCode::NOT_FOUND,
            "no_route",
            &format!("no route {other:?} in the settings function"),
        ),
    }
}

/// Always 200 `{"status": "disconnected", ...}`, also for a workspace that has no connection
/// (`connection_id: null`): the caller wants it disconnected, and it is. What PostHog could not
/// remove yet is listed under `cleanup` and retried later.
async fn disconnect(state: &Settings, who: &Caller) -> Response<String> {
    match state
        .connector
        .disconnect(&who.workspace_id, &who.user)
        .await
    {
        Ok(report) => api::json(StatusCode::OK, &report),
        Err(e) => {
            tracing::error!(error = %e, "disconnect failed");
            api::unavailable()
        }
    }
}
