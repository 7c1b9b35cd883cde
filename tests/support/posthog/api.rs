//! `/api/`: bearer-token authentication with PostHog's scope and scoped-team rules
//! (posthog/permissions.py `APIScopePermission`), DRF limit/offset pagination, and the read-only
//! resources: the user, organizations, projects (§2) and error tracking issues (§7.1).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::errors::{json_response, ApiError};
use super::oauth::Params;
use super::server::Shared;
use super::state::{Grant, Project, State as Db};
use super::{Issue, IssueStatus};

/// What a request is about, which decides how `scoped_teams` / `scoped_organizations` apply.
pub(crate) enum Target<'a> {
    OrganizationList,
    Organization(&'a str),
    ProjectList,
    Project(i64),
    User,
}

pub(crate) struct Caller {
    pub client_id: String,
}

/// DRF's order: authenticate (401), then APIScopePermission: no scopes, action not open to
/// tokens, project/organization scoping (which runs before the scope match), the scope itself.
pub(crate) fn authenticate(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    required_scope: Option<&str>,
    target: Target<'_>,
) -> Result<Caller, ApiError> {
    let token = bearer(headers).ok_or_else(|| ApiError::not_authenticated(base_url))?;
    let access = db
        .live_access_token(token)
        .ok_or_else(|| ApiError::invalid_token(base_url))?;
    let grant = &access.grant;
    if grant.scope.is_empty() {
        return Err(ApiError::permission_denied(
            "OAuth token has no scopes and cannot access this resource",
        ));
    }
    let Some(required) = required_scope else {
        return Err(ApiError::permission_denied(
            "This action does not support Personal API Key access",
        ));
    };
    if !matches!(target, Target::User) {
        check_scoping(db, grant, &target)?;
    }
    let satisfied = grant.scope.iter().any(|s| {
        s == "*"
            || s == required
            || required
                .strip_suffix(":read")
                .is_some_and(|object| *s == format!("{object}:write"))
    });
    if !satisfied {
        return Err(ApiError::permission_denied(&format!(
            "API key missing required scope '{required}'"
        )));
    }
    Ok(Caller {
        client_id: access.client_id.clone(),
    })
}

fn check_scoping(db: &Db, grant: &Grant, target: &Target<'_>) -> Result<(), ApiError> {
    if !grant.scoped_teams.is_empty() {
        let Target::Project(id) = target else {
            return Err(ApiError::permission_denied(
                "API keys with scoped projects are only supported on project-based endpoints.",
            ));
        };
        if !db.projects.contains_key(id) {
            return Err(ApiError::not_found());
        }
        if !grant.scoped_teams.contains(id) {
            return Err(ApiError::permission_denied(&format!(
                "API key does not have access to the requested project: ID {id}."
            )));
        }
    }
    if !grant.scoped_organizations.is_empty() {
        let organization = match target {
            Target::Project(id) => Some(
                db.projects
                    .get(id)
                    .ok_or_else(ApiError::not_found)?
                    .organization
                    .as_str(),
            ),
            Target::Organization(id) => Some(*id),
            _ => None,
        };
        if let Some(organization) = organization {
            if !grant.scoped_organizations.iter().any(|o| o == organization) {
                return Err(ApiError::permission_denied(&format!(
                    "API key does not have access to the requested organization: ID {organization}."
                )));
            }
        }
    }
    Ok(())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) fn ok(body: &Value) -> Result<Response, ApiError> {
    Ok(json_response(StatusCode::OK, body))
}

/// Ids in URLs are integers; anything else (PostHog's `@current` included) is not modelled.
pub(crate) fn project_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

pub(crate) fn existing_project(db: &Db, id: i64) -> Result<&Project, ApiError> {
    db.projects.get(&id).ok_or_else(ApiError::not_found)
}

/// DRF's JSONParser: an empty body is `{}`, a non-JSON content type is refused.
pub(crate) fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::parse_error(&format!("JSON parse error - {e}")))
}

pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// DRF LimitOffsetPagination: `next` / `previous` are absolute URLs that keep the other filters.
pub(crate) fn paginate(
    base_url: &str,
    uri: &Uri,
    query: &Params,
    items: Vec<Value>,
    page_size: usize,
) -> Value {
    let limit = query
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(page_size);
    let offset = query
        .get("offset")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let count = items.len();
    let link = |offset: Option<usize>| {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in query.pairs() {
            if name != "limit" && name != "offset" {
                serializer.append_pair(name, value);
            }
        }
        serializer.append_pair("limit", &limit.to_string());
        if let Some(offset) = offset {
            serializer.append_pair("offset", &offset.to_string());
        }
        json!(format!("{base_url}{}?{}", uri.path(), serializer.finish()))
    };
    let next = if offset.saturating_add(limit) < count {
        link(Some(offset + limit))
    } else {
        Value::Null
    };
    // DRF drops `offset` altogether when the previous page is the first one.
    let previous = match offset {
        0 => Value::Null,
        o if o <= limit => link(None),
        o => link(Some(o - limit)),
    };
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    json!({"count": count, "next": next, "previous": previous, "results": results})
}

fn query_params(query: Option<&str>) -> Params {
    Params::from_form(query.unwrap_or("").as_bytes())
}

pub(crate) fn project_json(id: i64, project: &Project) -> Value {
    json!({
        "id": id,
        "uuid": project.uuid,
        "organization": project.organization,
        "api_token": project.api_token,
        "name": project.name,
        "completed_snippet_onboarding": true,
        "has_completed_onboarding_for": null,
        "ingested_event": true,
        "is_demo": false,
        "timezone": "UTC",
        "access_control": false,
    })
}

fn organization_json(db: &Db, id: &str, name: &str) -> Value {
    let projects: Vec<Value> = db
        .projects
        .iter()
        .filter(|(_, p)| p.organization == id)
        .map(|(pid, p)| project_json(*pid, p))
        .collect();
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    json!({
        "id": id,
        "name": name,
        "slug": slug,
        "membership_level": 15,
        "teams": projects,
        "projects": projects.iter().map(|p| json!({"id": p["id"], "name": p["name"]})).collect::<Vec<_>>(),
    })
}

pub(crate) async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let db = shared.lock();
    respond(me_with(&db, &shared.base_url, &headers))
}

fn me_with(db: &Db, base_url: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    authenticate(db, base_url, headers, Some("user:read"), Target::User)?;
    let organizations: Vec<Value> = db
        .organizations
        .iter()
        .map(|o| json!({"id": o.id, "name": o.name}))
        .collect();
    let team = db
        .projects
        .iter()
        .next()
        .map(|(id, p)| project_json(*id, p));
    let organization = db
        .organizations
        .first()
        .map(|o| organization_json(db, &o.id, &o.name));
    ok(&json!({
        "id": 1,
        "uuid": super::serializer::USER_UUID,
        "distinct_id": "standin-user",
        "first_name": "Stand",
        "last_name": "In",
        "email": "standin@posthog.invalid",
        "team": team,
        "organization": organization,
        "organizations": organizations,
    }))
}

/// The organizations the bearer token is limited to (empty: all of the user's).
fn scoped_organizations(db: &Db, headers: &HeaderMap) -> Vec<String> {
    bearer(headers)
        .and_then(|t| db.live_access_token(t))
        .map(|t| t.grant.scoped_organizations.clone())
        .unwrap_or_default()
}

pub(crate) async fn organizations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let db = shared.lock();
    let query = query_params(query.as_deref());
    respond(organizations_with(
        &db,
        &shared.base_url,
        &headers,
        &uri,
        &query,
    ))
}

fn organizations_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    uri: &Uri,
    query: &Params,
) -> Result<Response, ApiError> {
    authenticate(
        db,
        base_url,
        headers,
        Some("organization:read"),
        Target::OrganizationList,
    )?;
    let only = scoped_organizations(db, headers);
    let items: Vec<Value> = db
        .organizations
        .iter()
        .filter(|o| only.is_empty() || only.contains(&o.id))
        .map(|o| organization_json(db, &o.id, &o.name))
        .collect();
    ok(&paginate(base_url, uri, query, items, db.page_size))
}

pub(crate) async fn organization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let db = shared.lock();
    respond(organization_with(&db, &shared.base_url, &headers, &id))
}

fn organization_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    authenticate(
        db,
        base_url,
        headers,
        Some("organization:read"),
        Target::Organization(id),
    )?;
    let org = db
        .organizations
        .iter()
        .find(|o| o.id == id)
        .ok_or_else(ApiError::not_found)?;
    ok(&organization_json(db, &org.id, &org.name))
}

pub(crate) async fn organization_projects(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let db = shared.lock();
    let query = query_params(query.as_deref());
    respond(organization_projects_with(
        &db,
        &shared.base_url,
        &headers,
        &id,
        &uri,
        &query,
    ))
}

fn organization_projects_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    id: &str,
    uri: &Uri,
    query: &Params,
) -> Result<Response, ApiError> {
    authenticate(
        db,
        base_url,
        headers,
        Some("project:read"),
        Target::Organization(id),
    )?;
    if !db.organizations.iter().any(|o| o.id == id) {
        return Err(ApiError::not_found());
    }
    let items: Vec<Value> = db
        .projects
        .iter()
        .filter(|(_, p)| p.organization == id)
        .map(|(pid, p)| project_json(*pid, p))
        .collect();
    ok(&paginate(base_url, uri, query, items, db.page_size))
}

pub(crate) async fn projects(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Response {
    let db = shared.lock();
    let query = query_params(query.as_deref());
    respond(projects_with(&db, &shared.base_url, &headers, &uri, &query))
}

fn projects_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    uri: &Uri,
    query: &Params,
) -> Result<Response, ApiError> {
    authenticate(
        db,
        base_url,
        headers,
        Some("project:read"),
        Target::ProjectList,
    )?;
    let only = scoped_organizations(db, headers);
    let items: Vec<Value> = db
        .projects
        .iter()
        .filter(|(_, p)| only.is_empty() || only.contains(&p.organization))
        .map(|(id, p)| project_json(*id, p))
        .collect();
    ok(&paginate(base_url, uri, query, items, db.page_size))
}

pub(crate) async fn project(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let db = shared.lock();
    respond(project_with(&db, &shared.base_url, &headers, &id))
}

fn project_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let id = project_id(id)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("project:read"),
        Target::Project(id),
    )?;
    ok(&project_json(id, existing_project(db, id)?))
}

pub(crate) fn issue_json(issue: &Issue) -> Value {
    json!({
        "id": issue.id,
        "status": issue.status.as_str(),
        "name": issue.name,
        "description": issue.description,
        "first_seen": timestamp(issue.first_seen),
        "assignee": null,
        "external_issues": [],
        "cohort": null,
    })
}

pub(crate) async fn issue(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, issue_id)): Path<(String, String)>,
) -> Response {
    let db = shared.lock();
    respond(issue_with(
        &db,
        &shared.base_url,
        &headers,
        &project,
        &issue_id,
    ))
}

fn issue_with(
    db: &Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
    issue_id: &str,
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("error_tracking:read"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    let issue = db
        .issues
        .iter()
        .find(|i| i.project == project && i.id == issue_id)
        .ok_or_else(ApiError::not_found)?;
    ok(&issue_json(issue))
}

pub(crate) async fn update_issue(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((project, issue_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut db = shared.lock();
    respond(update_issue_with(
        &mut db,
        &shared.base_url,
        &headers,
        &project,
        &issue_id,
        &body,
    ))
}

fn update_issue_with(
    db: &mut Db,
    base_url: &str,
    headers: &HeaderMap,
    project: &str,
    issue_id: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let project = project_id(project)?;
    authenticate(
        db,
        base_url,
        headers,
        Some("error_tracking:write"),
        Target::Project(project),
    )?;
    existing_project(db, project)?;
    let body = json_body(headers, body)?;
    // Only the writable subset of the status enum (ErrorTrackingIssueWritableStatusEnum).
    let status = match body.get("status") {
        None => None,
        Some(Value::String(s)) if matches!(s.as_str(), "active" | "resolved" | "suppressed") => {
            s.parse::<IssueStatus>().ok()
        }
        Some(other) => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned);
            return Err(ApiError::validation(
                "invalid_choice",
                &format!("\"{shown}\" is not a valid choice."),
                Some("status"),
            ));
        }
    };
    let name = match body.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::validation(
                "invalid",
                "Not a valid string.",
                Some("name"),
            ))
        }
    };
    let issue = db
        .issues
        .iter_mut()
        .find(|i| i.project == project && i.id == issue_id)
        .ok_or_else(ApiError::not_found)?;
    if let Some(status) = status {
        issue.status = status;
    }
    if let Some(name) = name {
        issue.name = name;
    }
    ok(&issue_json(issue))
}
