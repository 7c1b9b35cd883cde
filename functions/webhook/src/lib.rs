//! `POST /webhooks/posthog/{connection_id}`: PostHog deliveries become drafts (DESIGN.md §5).
//!
//! Order of checks: size (413), connection (410), signature (401), shape (400), then the store. The
//! connection's workspace and signing secret are cached per warm instance; its status is read on
//! every delivery, so a disconnect answers 410 at once however warm the instance is.

use flowback::api;
use flowback::aws::{self, CallBudget};
use flowback::config::{self, ConfigError};
use flowback::delivery::{self, EventKind};
use flowback::ids::{ConnectionId, WorkspaceId};
use flowback::metrics;
use flowback::occurrence::Occurrence;
use flowback::secrets::Secrets;
use flowback::signature::{self, SignatureError};
use flowback::store::ingest::{DeliveryContext, Outcome};
use flowback::store::{Store, StoreError};
use http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use secrecy::SecretString;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Lambda accepts 6 MB; anything near it is not an exception event.
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Answer well inside PostHog's 10 s timeout, whatever the store does.
const BUDGET: Duration = Duration::from_secs(8);

pub struct Webhook {
    store: Store,
    secrets: Secrets,
    max_new_drafts_per_hour: u32,
    known: Mutex<HashMap<ConnectionId, Known>>,
}

#[derive(Clone)]
struct Known {
    workspace_id: WorkspaceId,
    secret: SecretString,
}

impl Webhook {
    pub fn new(store: Store, secrets: Secrets, max_new_drafts_per_hour: u32) -> Self {
        Self {
            store,
            secrets,
            max_new_drafts_per_hour,
            known: Mutex::new(HashMap::new()),
        }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = aws::load(CallBudget::WEBHOOK).await;
        Ok(Self::new(
            Store::from_config(&sdk, config::required("TABLE_NAME")?),
            Secrets::from_config(&sdk, config::required("SECRET_PREFIX")?),
            config::number("MAX_NEW_DRAFTS_PER_HOUR", 500)?,
        ))
    }

    fn cached(&self, id: &ConnectionId) -> Option<Known> {
        self.known.lock().ok()?.get(id).cloned()
    }

    fn forget(&self, id: &ConnectionId) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(id);
        }
    }

    /// The connection's workspace and secret: from the cache, or from the store and Secrets Manager.
    async fn connection(&self, id: &ConnectionId) -> Result<Option<(Known, bool)>, Failure> {
        if let Some(known) = self.cached(id) {
            return Ok(Some((known, true)));
        }
        let Some(conn) = self
            .store
            .get_connection(id)
            .await
            .map_err(Failure::Store)?
        else {
            return Ok(None);
        };
        if !conn.status.accepts_deliveries() {
            return Ok(None);
        }
        let name = self.secrets.webhook_secret_name(id);
        let Some(secret) = self
            .secrets
            .get(&name)
            .await
            .map_err(|e| Failure::Store(StoreError::Unavailable(e.to_string())))?
        else {
            return Ok(None);
        };
        let known = Known {
            workspace_id: conn.workspace_id,
            secret,
        };
        if let Ok(mut cache) = self.known.lock() {
            cache.insert(id.clone(), known.clone());
        }
        Ok(Some((known, false)))
    }
}

enum Failure {
    Store(StoreError),
}

pub async fn handle(state: &Webhook, req: Request) -> Result<Response<Body>, Error> {
    let started = Instant::now();
    let webhook_id = req
        .headers()
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let connection_id = req
        .path_parameters()
        .first("connection_id")
        .unwrap_or("")
        .to_owned();
    let (status, body, result) = process(state, &req, &connection_id, &webhook_id, started).await;
    tracing::info!(
        delivery_id = %webhook_id,
        connection_id = %connection_id,
        status = status.as_u16(),
        result,
        latency_ms = started.elapsed().as_millis() as u64,
        "webhook delivery"
    );
    metrics::count("Deliveries", 1, ("Result", result));
    Ok(body.map(Body::from))
}

type Answer = (StatusCode, Response<String>, &'static str);

fn answer(status: StatusCode, code: &'static str, message: &str) -> Answer {
    (status, api::error(status, code, message), code)
}

async fn process(
    state: &Webhook,
    req: &Request,
    connection_id: &str,
    webhook_id: &str,
    started: Instant,
) -> Answer {
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than 5 MiB",
        );
    }
    let Ok(conn_id) = ConnectionId::parse(connection_id) else {
        return gone();
    };
    let (known, warm) = match state.connection(&conn_id).await {
        Ok(Some(found)) => found,
        Ok(None) => return gone(),
        Err(Failure::Store(e)) => return unavailable(&e),
    };
    if let Err(e) = signature::verify(&known.secret, req.headers(), body) {
        metrics::count("SignatureFailures", 1, ("Reason", signature_reason(e)));
        return answer(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            &e.to_string(),
        );
    }
    let delivery = match delivery::parse(body) {
        Ok(d) => d,
        Err(e) => return answer(StatusCode::BAD_REQUEST, "invalid_delivery", &e.to_string()),
    };
    let received_at = OffsetDateTime::now_utc();
    match delivery.kind() {
        EventKind::Exception => {}
        kind => {
            // Nothing is written for these without a live connection: re-check it when cached.
            if warm {
                match state.store.get_connection(&conn_id).await {
                    Ok(Some(c)) if c.status.accepts_deliveries() => {}
                    Ok(_) => {
                        state.forget(&conn_id);
                        return gone();
                    }
                    Err(e) => return unavailable(&e),
                }
            }
            if kind == EventKind::Other {
                return ignored("not_an_exception");
            }
            return sync_issue(state, &known.workspace_id, &delivery, received_at).await;
        }
    }
    let occurrence = match Occurrence::from_delivery(&delivery, received_at) {
        Ok(o) => o,
        Err(e) => return answer(StatusCode::BAD_REQUEST, "invalid_delivery", &e.to_string()),
    };
    let ctx = DeliveryContext {
        connection_id: &conn_id,
        workspace_id: &known.workspace_id,
        webhook_id,
        received_at,
        max_new_drafts_per_hour: state.max_new_drafts_per_hour,
        deadline: started + BUDGET,
    };
    // A timeout may land after a commit; PostHog's retry then finds the dedup record: counted once.
    let remaining = BUDGET.saturating_sub(started.elapsed());
    let recorded =
        tokio::time::timeout(remaining, state.store.record_occurrence(&occurrence, &ctx))
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("delivery budget exhausted".into())));
    match recorded {
        Ok(Outcome::Created { draft_id }) => {
            metrics::count("DraftsCreated", 1, ("Function", "webhook"));
            ok(
                "created",
                json!({"result": "created", "draft_id": draft_id}),
            )
        }
        Ok(Outcome::Updated { draft_id }) => ok(
            "updated",
            json!({"result": "updated", "draft_id": draft_id}),
        ),
        Ok(Outcome::Duplicate { draft_id }) => ok(
            "duplicate",
            json!({"result": "duplicate", "draft_id": draft_id}),
        ),
        Ok(Outcome::Ignored { reason }) => ignored(reason),
        Ok(Outcome::Gone) => {
            state.forget(&conn_id);
            gone()
        }
        Err(e) => unavailable(&e),
    }
}

/// `$error_tracking_issue_*`: PostHog's status change applied to the issues that follow it.
async fn sync_issue(
    state: &Webhook,
    ws: &WorkspaceId,
    delivery: &delivery::Delivery,
    received_at: OffsetDateTime,
) -> Answer {
    let Some((posthog_issue, word)) = delivery.issue_lifecycle() else {
        return ignored("no_status_change");
    };
    let at = delivery
        .event
        .timestamp
        .as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(received_at);
    let at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let now = flowback::occurrence::rfc3339(received_at);
    match state
        .store
        .apply_posthog_status(ws, posthog_issue, word, at_ms, &now)
        .await
    {
        Ok(synced) if synced.issue_ids.is_empty() => ignored("no_synced_issue"),
        Ok(synced) => ok(
            "updated",
            json!({"result": "updated", "issue_ids": synced.issue_ids}),
        ),
        Err(e) => unavailable(&e),
    }
}

fn ok(result: &'static str, body: serde_json::Value) -> Answer {
    (StatusCode::OK, api::json(StatusCode::OK, &body), result)
}

fn ignored(reason: &'static str) -> Answer {
    ok("ignored", json!({"result": "ignored", "reason": reason}))
}

fn gone() -> Answer {
    answer(
        StatusCode::GONE,
        "connection_gone",
        "this connection is unknown or disconnected; PostHog stops when the destination is deleted",
    )
}

fn unavailable(e: &StoreError) -> Answer {
    tracing::error!(error = %e, "storage failure");
    metrics::count("StorageFailures", 1, ("Function", "webhook"));
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the delivery was not recorded; retry",
    )
}

fn signature_reason(e: SignatureError) -> &'static str {
    match e {
        SignatureError::MissingHeaders => "missing_headers",
        SignatureError::Stale => "stale",
        SignatureError::Mismatch => "mismatch",
        SignatureError::BadSecret => "bad_secret",
    }
}
