//! Integration settings (DESIGN.md §3): the connection's status and each environment's mapping to a
//! channel (or Do not import) with its Exceptions and Enabled toggles. A change takes effect for
//! the next delivery: the webhook reads mappings on every delivery.

use flowback::api;
use flowback::aws::CallBudget;
use flowback::caller::{caller, Caller};
use flowback::config::ConfigError;
use flowback::connect::Connector;
use flowback::ids::{ChannelId, EnvironmentId};
use flowback::store::connections::ConnectionStatus;
use flowback::store::mappings::Mapping;
use http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;

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
    let env = || {
        req.path_parameters()
            .first("environment_id")
            .map(str::to_owned)
    };
    match api::route_key(req).unwrap_or_default() {
        "GET /integrations/posthog" => status(state, &who).await,
        "DELETE /integrations/posthog" => disconnect(state, &who).await,
        "PUT /integrations/posthog/environments/{environment_id}" => {
            put_environment(state, &who, env().as_deref(), req.body().as_ref()).await
        }
        "DELETE /integrations/posthog/environments/{environment_id}" => {
            let Some(env) = parse_env(env().as_deref()) else {
                return api::not_found("environment");
            };
            let mapping = Mapping {
                channel_id: None,
                exceptions: true,
                enabled: true,
            };
            save(state, &who, env, &mapping).await
        }
        other => api::error(
            StatusCode::NOT_FOUND,
            "no_route",
            &format!("no route {other:?} in the settings function"),
        ),
    }
}

fn storage_failure(e: flowback::store::StoreError) -> Response<String> {
    tracing::error!(error = %e, "storage failure");
    api::unavailable()
}

async fn status(state: &Settings, who: &Caller) -> Response<String> {
    let connection = match state
        .connector
        .store
        .workspace_connection(&who.workspace_id)
        .await
    {
        Ok(c) => c,
        Err(e) => return storage_failure(e),
    };
    let live = connection
        .as_ref()
        .filter(|c| c.status != ConnectionStatus::Disconnected);
    let environments = match state
        .connector
        .store
        .environment_settings(&who.workspace_id, live.map(|c| &c.id))
        .await
    {
        Ok(e) => e,
        Err(e) => return storage_failure(e),
    };
    let status = live
        .map(|c| c.status)
        .unwrap_or(ConnectionStatus::Disconnected);
    let connection = live.map(|c| {
        json!({
            "id": c.id.as_str(),
            "region": c.region,
            "posthog_base_url": c.posthog_base_url,
            "scopes": c.scopes,
            "connected_at": c.connected_at,
            "connected_by": c.connected_by,
        })
    });
    api::json(
        StatusCode::OK,
        &json!({"status": status.as_str(), "connection": connection, "environments": environments}),
    )
}

/// `PUT` replaces the whole mapping, so every field is required; unknown fields are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingBody {
    channel_id: Option<serde_json::Value>,
    exceptions: Option<serde_json::Value>,
    enabled: Option<serde_json::Value>,
}

fn parse_env(raw: Option<&str>) -> Option<EnvironmentId> {
    EnvironmentId::parse(raw?).ok()
}

async fn put_environment(
    state: &Settings,
    who: &Caller,
    env: Option<&str>,
    body: &[u8],
) -> Response<String> {
    let Some(env) = parse_env(env) else {
        return api::not_found("environment");
    };
    let body: MappingBody = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return api::bad_request("invalid_body", &format!("body: {e}")),
    };
    let channel_id = match body.channel_id {
        None => {
            return field_error(
                "channel_id",
                "is required (a channel id, or null for Do not import)",
            )
        }
        Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => match ChannelId::parse(&s) {
            Ok(c) => Some(c),
            Err(e) => return field_error("channel_id", &e.to_string()),
        },
        Some(_) => return field_error("channel_id", "must be a string or null"),
    };
    let flag = |name: &'static str, v: Option<serde_json::Value>| match v {
        Some(serde_json::Value::Bool(b)) => Ok(b),
        None => Err((name, "is required (true or false)")),
        Some(_) => Err((name, "must be true or false")),
    };
    let (exceptions, enabled) = match (
        flag("exceptions", body.exceptions),
        flag("enabled", body.enabled),
    ) {
        (Ok(e), Ok(n)) => (e, n),
        (Err((field, problem)), _) | (_, Err((field, problem))) => {
            return field_error(field, problem)
        }
    };
    let mapping = Mapping {
        channel_id,
        exceptions,
        enabled,
    };
    save(state, who, env, &mapping).await
}

fn field_error(field: &str, problem: &str) -> Response<String> {
    api::bad_request("invalid_field", &format!("{field} {problem}"))
}

async fn save(
    state: &Settings,
    who: &Caller,
    env: EnvironmentId,
    mapping: &Mapping,
) -> Response<String> {
    match state
        .connector
        .store
        .update_mapping(&who.workspace_id, env, mapping)
        .await
    {
        Ok(true) => api::json(
            StatusCode::OK,
            &json!({
                "id": env.get(),
                "channel_id": mapping.channel_id.as_ref().map(|c| c.as_str()),
                "exceptions": mapping.exceptions,
                "enabled": mapping.enabled,
            }),
        ),
        Ok(false) => api::not_found("environment"),
        Err(e) => storage_failure(e),
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
