//! `/api/projects/{id}/hog_functions/` (posthog-api.md §3): list, create, retrieve, PATCH/PUT,
//! soft deletion, and the faults a test can inject into creates.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::api::{
    authenticate, existing_project, json_body, ok, paginate, project_id, respond, Target,
};
use super::errors::{json_response, ApiError};
use super::oauth::Params;
use super::serializer::{new_function, represent, updated_function, Fields};
use super::server::Shared;
use super::state::State as Db;

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let db = shared.lock();
    let query = Params::from_form(query.as_deref().unwrap_or("").as_bytes());
    respond(list_with(
        &db,
        &shared.base_url,
        &headers,
        &project,
        &uri,
        &query,
    ))
}

fn list_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
    uri: &Uri,
    query: &Params,
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("hog_function:read"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    let types: Option<Vec<&str>> = query.get("type").map(|t| t.split(',').collect());
    let enabled = query
        .get("enabled")
        .map(|e| matches!(e, "true" | "True" | "1"));
    let search = query.get("search").map(str::to_lowercase);
    let full = query.get("full").is_some_and(|f| f == "true");
    let items: Vec<Value> = db
        .functions
        .iter()
        .filter(|f| f.project == project && !f.deleted)
        .filter(|f| types.as_ref().is_none_or(|t| t.contains(&f.kind.as_str())))
        .filter(|f| enabled.is_none_or(|e| f.enabled == e))
        .filter(|f| query.get("id").is_none_or(|id| f.id == id))
        .filter(|f| {
            search.as_ref().is_none_or(|s| {
                f.name.to_lowercase().contains(s) || f.description.to_lowercase().contains(s)
            })
        })
        .map(|f| represent(f, full))
        .collect();
    ok(&paginate(base_url, uri, query, items, db.page_size))
}

pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(project): Path<String>,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    respond(create_with(
        &mut db,
        &shared.base_url,
        &headers,
        &project,
        &body,
    ))
}

fn create_with(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    let caller = authenticate(
        db,
        base_url,
        headers,
        Some("hog_function:write"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    db.faults.hog_function_creates_seen += 1;
    let failure = db
        .faults
        .create_failures
        .remove(&db.faults.hog_function_creates_seen);
    if let Some(failure) = failure.filter(|f| !f.after_commit) {
        return Err(ApiError::server_error(failure.status));
    }
    let fields = Fields::parse(&json_body(headers, body)?)?;
    let function = new_function(db, project, &caller.client_id, fields)?;
    if let Some((status, body)) = db.faults.project_refusals.get(&project) {
        return Err(ApiError::raw(*status, body.clone()));
    }
    if function.kind == "internal_destination" {
        if let Some((status, body)) = &db.faults.internal_destination_refusal {
            return Err(ApiError::raw(*status, body.clone()));
        }
    }
    let representation = represent(&function, true);
    db.functions.push(function);
    if let Some(failure) = failure {
        return Err(ApiError::server_error(failure.status));
    }
    Ok(json_response(StatusCode::CREATED, &representation))
}

pub(crate) async fn retrieve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    let db = shared.lock();
    respond(retrieve_with(
        &db,
        &shared.base_url,
        &headers,
        &project,
        &id,
    ))
}

fn retrieve_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
    id: &str,
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("hog_function:read"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    let function = db
        .functions
        .iter()
        .find(|f| f.project == project && f.id == id && !f.deleted)
        .ok_or_else(ApiError::not_found)?;
    ok(&represent(function, true))
}

pub(crate) async fn partial_update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    respond(update_with(
        &mut db,
        &shared.base_url,
        &headers,
        (&project, &id),
        &body,
        true,
    ))
}

pub(crate) async fn update(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    respond(update_with(
        &mut db,
        &shared.base_url,
        &headers,
        (&project, &id),
        &body,
        false,
    ))
}

fn update_with(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    (project, id): (&str, &str),
    body: &[u8],
    partial: bool,
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("hog_function:write"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    let body = json_body(headers, body)?;
    // safely_get_queryset: deleted functions are invisible except to a PATCH that undeletes.
    let undeleting = partial && body.get("deleted") == Some(&Value::Bool(false));
    let index = db
        .functions
        .iter()
        .position(|f| f.project == project && f.id == id && (!f.deleted || undeleting))
        .ok_or_else(ApiError::not_found)?;
    let fields = Fields::parse(&body)?;
    let function = updated_function(db, &db.functions[index], fields, partial)?;
    let representation = represent(&function, true);
    db.functions[index] = function;
    ok(&representation)
}

/// HogFunctionViewSet lists no scope for `destroy`, so APIScopePermission refuses every OAuth
/// token before ForbidDestroyModel's 405 is reached (that 405 is what a browser session gets).
pub(crate) async fn destroy(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, _id)): Path<(String, String)>,
) -> Response {
    let db = shared.lock();
    respond(destroy_with(&db, &shared.base_url, &headers, &project))
}

fn destroy_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(db, base_url, headers, None, Target::Project(project))?;
    Ok(json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({})))
}
