//! The review API (DESIGN.md §3): drafts of the caller's workspace, newest `last_seen` first.
//! Another workspace's draft answers 404: every key includes the caller's workspace.

use flowback::api;
use flowback::aws::{self, CallBudget};
use flowback::caller::{caller, Caller};
use flowback::config::{self, ConfigError};
use flowback::draft::DraftStatus;
use flowback::priority::Priority;
use flowback::store::drafts::{ListError, ListFilter};
use flowback::store::review::{Approval, ReviewError};
use flowback::store::Store;
use http::StatusCode;
use lambda_http::{Body, Error, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::json;

const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;

pub struct Drafts {
    store: Store,
}

impl Drafts {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn from_env() -> Result<Self, ConfigError> {
        let sdk = aws::load(CallBudget::API).await;
        Ok(Self::new(Store::from_config(
            &sdk,
            config::required("TABLE_NAME")?,
        )))
    }
}

pub async fn handle(state: &Drafts, req: Request) -> Result<Response<Body>, Error> {
    Ok(route(state, &req).await.map(Body::from))
}

async fn route(state: &Drafts, req: &Request) -> Response<String> {
    let Some(who) = caller(req) else {
        return api::unauthorized();
    };
    let ws = &who.workspace_id;
    let params = req.path_parameters();
    match api::route_key(req).unwrap_or_default() {
        "GET /drafts" => list(state, req, ws).await,
        "GET /drafts/{draft_id}" => {
            let id = params.first("draft_id").unwrap_or_default();
            match state.store.get_draft(ws, id).await {
                Ok(Some(d)) => api::json(StatusCode::OK, &d),
                Ok(None) => api::not_found("draft"),
                Err(e) => {
                    tracing::error!(error = %e, "storage failure");
                    api::unavailable()
                }
            }
        }
        "POST /drafts/{draft_id}/approve" => {
            let id = params.first("draft_id").unwrap_or_default();
            approve(state, req, &who, id).await
        }
        "POST /drafts/{draft_id}/dismiss" => {
            let id = params.first("draft_id").unwrap_or_default();
            review(state, &who, id, DraftStatus::Dismissed).await
        }
        "POST /drafts/{draft_id}/restore" => {
            let id = params.first("draft_id").unwrap_or_default();
            review(state, &who, id, DraftStatus::Draft).await
        }
        "GET /issues/{issue_id}" => {
            let id = params.first("issue_id").unwrap_or_default();
            match state.store.get_issue(ws, id).await {
                Ok(Some(issue)) => api::json(StatusCode::OK, &issue),
                Ok(None) => api::not_found("issue"),
                Err(e) => {
                    tracing::error!(error = %e, "storage failure");
                    api::unavailable()
                }
            }
        }
        other => api::error(
            StatusCode::NOT_FOUND,
            "no_route",
            &format!("no route {other:?} in the drafts function"),
        ),
    }
}

async fn list(state: &Drafts, req: &Request, ws: &flowback::ids::WorkspaceId) -> Response<String> {
    let query = req.query_string_parameters();
    let channel_id = query.first("channel_id");
    if let Some(c) = channel_id {
        if let Err(e) = flowback::ids::ChannelId::parse(c) {
            return api::bad_request("invalid_channel_id", &e.to_string());
        }
    }
    let status = match query.first("status") {
        None => None,
        Some(s) => match DraftStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                return api::bad_request(
                    "invalid_status",
                    "status must be one of draft, approved, dismissed",
                )
            }
        },
    };
    let limit = match query.first("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return api::bad_request(
                "invalid_limit",
                &format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
            )
        }
    };
    let filter = ListFilter {
        channel_id,
        status,
        limit,
    };
    match state
        .store
        .list_drafts(ws, &filter, query.first("cursor"))
        .await
    {
        Ok(page) => api::json(
            StatusCode::OK,
            &json!({"drafts": page.drafts, "next_cursor": page.next_cursor}),
        ),
        Err(ListError::BadCursor) => {
            api::bad_request("invalid_cursor", "cursor is not one this API returned")
        }
        Err(ListError::Store(e)) => {
            tracing::error!(error = %e, "storage failure");
            api::unavailable()
        }
    }
}

/// Reviewer edits on approval. Unknown fields are refused so a typo is not silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    title: Option<String>,
    priority: Option<String>,
}

const TITLE_MAX_CHARS: usize = 200;

fn now() -> String {
    flowback::occurrence::rfc3339(time::OffsetDateTime::now_utc())
}

async fn approve(state: &Drafts, req: &Request, who: &Caller, draft_id: &str) -> Response<String> {
    let raw: &[u8] = req.body().as_ref();
    let body: ApproveBody = if raw.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        match serde_json::from_slice(raw) {
            Ok(b) => b,
            Err(e) => return api::bad_request("invalid_body", &format!("body: {e}")),
        }
    };
    let title = match body
        .title
        .as_deref()
        .map(flowback::title::collapse_whitespace)
    {
        Some(t) if t.is_empty() || t.chars().count() > TITLE_MAX_CHARS => {
            return api::bad_request(
                "invalid_title",
                &format!("title must be 1 to {TITLE_MAX_CHARS} characters"),
            )
        }
        other => other,
    };
    let priority = match body.priority.as_deref() {
        None => None,
        Some(p) => match Priority::parse(p) {
            Some(p) => Some(p),
            None => {
                return api::bad_request(
                    "invalid_priority",
                    "priority must be one of urgent, high, medium, low",
                )
            }
        },
    };
    let at = now();
    let approval = Approval {
        title: title.as_deref(),
        priority,
        by: &who.user,
        at: &at,
    };
    match state
        .store
        .approve(&who.workspace_id, draft_id, &approval)
        .await
    {
        Ok((issue, true)) => api::json(StatusCode::CREATED, &issue),
        Ok((issue, false)) => api::json(StatusCode::OK, &issue),
        Err(e) => review_error(e, "draft"),
    }
}

async fn review(state: &Drafts, who: &Caller, draft_id: &str, to: DraftStatus) -> Response<String> {
    let at = now();
    match state
        .store
        .set_review_status(&who.workspace_id, draft_id, to, &who.user, &at)
        .await
    {
        Ok(draft) => api::json(StatusCode::OK, &draft),
        Err(e) => review_error(e, "draft"),
    }
}

fn review_error(e: ReviewError, what: &str) -> Response<String> {
    match e {
        ReviewError::NotFound => api::not_found(what),
        ReviewError::Conflict(message) => api::error(StatusCode::CONFLICT, "conflict", &message),
        ReviewError::Store(e) => {
            tracing::error!(error = %e, "storage failure");
            api::unavailable()
        }
    }
}
