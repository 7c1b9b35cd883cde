//! Scheduled upkeep (DESIGN.md §8), run against moto and the PostHog stand-in: tokens renewed
//! before PostHog lets them die, destinations PostHog disabled reported and re-enabled once, new
//! projects forwarded as Do not import, a disconnect's leftovers finished, approved issues
//! following PostHog's status, and two overlapping runs doing each thing once.

use flowback::ids::{ChannelId, EnvironmentId};
use flowback::store::mappings::Mapping;
use flowback_tests::harness::{body_text, connector_for, event, fixture, Harness, CLIENT_ID, USER};
use flowback_tests::posthog::IssueStatus;
use http::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;
use sync::{run_once, Sync, SyncReport};

const BUDGET: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);

async fn connected(projects: &[(i64, &str)]) -> Harness {
    let h = Harness::start().await;
    h.posthog.add_organization("org-a", "Acme");
    for (id, name) in projects {
        h.posthog.add_project("org-a", *id, name);
    }
    assert!(h.connect().await.connected());
    h
}

fn sync_of(h: &Harness) -> Sync {
    Sync::new(h.connector())
}

async fn run(h: &Harness) -> SyncReport {
    run_once(&sync_of(h), BUDGET)
        .await
        .expect("the registry is readable")
}

/// `GET /integrations/posthog` through the settings handler, as the dashboard reads it.
async fn status(h: &Harness) -> Value {
    let request = event(
        "GET /integrations/posthog",
        "/integrations/posthog",
        json!({}),
        Value::Null,
        None,
        Some(h.claims()),
        None,
    );
    let response = settings::handle(&h.settings, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_str(&body_text(response.into_body())).unwrap()
}

fn environment(status: &Value, id: i64) -> Value {
    status["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == json!(id))
        .cloned()
        .unwrap_or_else(|| panic!("no environment {id} in {status}"))
}

/// The stored tokens as if PostHog had issued the refresh token `age` ago.
async fn age_stored_tokens(h: &Harness, age: Duration) {
    let conn = h.connection().await;
    let mut tokens = h.tokens(&conn.id).await.unwrap();
    let issued = time::OffsetDateTime::now_utc() - age;
    tokens["refreshed_at"] = json!(flowback::occurrence::rfc3339(issued));
    h.secrets
        .put(
            &h.secrets.tokens_name(&conn.id),
            &SecretString::from(tokens.to_string()),
        )
        .await
        .unwrap();
}

fn live(functions: &[flowback_tests::posthog::HogFunction]) -> usize {
    functions.iter().filter(|f| !f.deleted).count()
}

#[tokio::test]
async fn a_refresh_token_near_posthogs_30_days_is_renewed_once() {
    let h = connected(&[(2, "Shop")]).await;
    let conn = h.connection().await;
    let before = h.tokens(&conn.id).await.unwrap();
    // 29 days on, at PostHog and in what we stored: one day before the refresh token dies.
    h.posthog.advance_clock(29 * DAY);
    age_stored_tokens(&h, 29 * DAY).await;
    h.posthog.clear_request_log();

    let report = run(&h).await;
    assert_eq!(report.connections_seen, 1, "{report:?}");
    assert_eq!(report.tokens_refreshed, 1, "{report:?}");
    assert_eq!(report.failures, 0, "{report:?}");
    let refreshes = h.posthog.requests_to("POST", "/oauth/token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(
        refreshes[0].param("grant_type").as_deref(),
        Some("refresh_token")
    );
    let after = h.tokens(&conn.id).await.unwrap();
    assert_ne!(after["refresh_token"], before["refresh_token"]);
    assert!(h
        .posthog
        .is_access_token_live(after["access_token"].as_str().unwrap()));

    // Two more days: the old refresh token would be dead by now; the renewed one still works.
    h.posthog.advance_clock(2 * DAY);
    let token = h.connector().tokens().access_token(&conn).await;
    assert!(token.is_ok(), "{:?}", token.err());

    // The renewed token is young: the next run leaves it alone.
    h.posthog.clear_request_log();
    let again = run(&h).await;
    assert_eq!(again.tokens_refreshed, 0, "{again:?}");
    assert!(h.posthog.requests_to("POST", "/oauth/token").is_empty());
    assert_eq!(status(&h).await["status"], "connected");
}

#[tokio::test]
async fn a_revoked_grant_turns_the_connection_to_needs_reconnect() {
    let h = connected(&[(2, "Shop")]).await;
    h.posthog.revoke_application(CLIENT_ID);
    age_stored_tokens(&h, 21 * DAY).await;

    let report = run(&h).await;
    assert_eq!(report.reconnects_needed, 1, "{report:?}");
    let s = status(&h).await;
    assert_eq!(s["status"], "needs_reconnect", "{s}");

    // Nothing more can be done with PostHog for it: the next run asks nothing.
    h.posthog.clear_request_log();
    let again = run(&h).await;
    assert_eq!(again.reconnects_needed, 0, "{again:?}");
    assert!(h.posthog.request_log().is_empty());
}

#[tokio::test]
async fn a_destination_posthog_disabled_shows_degraded_and_is_re_enabled_once() {
    let h = connected(&[(2, "Shop"), (3, "Backend")]).await;
    let conn = h.connection().await;
    let forwarding = h.forwarding(&conn.id).await;
    let fid = |env: i64| {
        forwarding
            .iter()
            .find(|f| f.environment_id.get() == env)
            .and_then(|f| f.destination_id.clone())
            .unwrap()
    };
    let (shop, backend) = (fid(2), fid(3));
    h.posthog.set_function_state(&shop, 3);
    // Forced by PostHog's staff: reported, never overridden.
    h.posthog.set_function_state(&backend, 12);
    h.posthog.clear_request_log();

    let report = run(&h).await;
    assert_eq!(report.destinations_degraded, 2, "{report:?}");
    assert_eq!(report.destinations_repaired, 1, "{report:?}");
    let patches = h.posthog.requests_to("PATCH", "/api/projects/");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(patches[0].path.contains(&shop));
    assert_eq!(
        serde_json::from_str::<Value>(&patches[0].body).unwrap(),
        json!({"enabled": true})
    );
    // PostHog brings a re-enabled function back degraded; it forwards again.
    assert_eq!(h.posthog.hog_function(&shop).unwrap().state, 2);
    assert_eq!(h.posthog.hog_function(&backend).unwrap().state, 12);
    let s = status(&h).await;
    assert_eq!(environment(&s, 2)["forwarding"], "degraded", "{s}");
    assert_eq!(environment(&s, 2)["forwarding_error"], "degraded", "{s}");
    assert_eq!(environment(&s, 3)["forwarding"], "degraded", "{s}");
    assert_eq!(
        environment(&s, 3)["forwarding_error"],
        "forcefully_disabled",
        "{s}"
    );

    // PostHog disables it again: reported, but not re-enabled a second time (no loop).
    h.posthog.set_function_state(&shop, 3);
    h.posthog.clear_request_log();
    let again = run(&h).await;
    assert!(h.posthog.requests_to("PATCH", "/api/projects/").is_empty());
    assert_eq!(again.destinations_repaired, 0, "{again:?}");
    assert_eq!(
        environment(&status(&h).await, 2)["forwarding_error"],
        "disabled"
    );

    // Healthy again: active, and a later disable may be re-enabled once more.
    h.posthog.set_function_state(&shop, 1);
    h.posthog.set_function_state(&backend, 1);
    let healed = run(&h).await;
    assert_eq!(healed.destinations_repaired, 2, "{healed:?}");
    let s = status(&h).await;
    for env in [2, 3] {
        assert_eq!(environment(&s, env)["forwarding"], "active", "{s}");
        assert_eq!(environment(&s, env)["forwarding_error"], Value::Null, "{s}");
    }
    h.posthog.set_function_state(&shop, 3);
    h.posthog.clear_request_log();
    run(&h).await;
    assert_eq!(h.posthog.requests_to("PATCH", "/api/projects/").len(), 1);
}

#[tokio::test]
async fn a_project_created_after_connect_is_forwarded_as_do_not_import() {
    let h = connected(&[(2, "Shop")]).await;
    h.posthog.add_project("org-a", 5, "Mobile");

    let report = run(&h).await;
    assert_eq!(report.projects_provisioned, 1, "{report:?}");
    let functions = h.posthog.hog_functions(5);
    assert_eq!(live(&functions), 2, "destination and issue destination");
    let s = status(&h).await;
    let mobile = environment(&s, 5);
    assert_eq!(mobile["name"], "Mobile");
    assert_eq!(mobile["channel_id"], Value::Null, "Do not import: {s}");
    assert_eq!(mobile["forwarding"], "active");

    // Forwarding works end to end, and Do not import means no draft.
    let mut occurrence = fixture("python-handled_chain");
    occurrence.as_object_mut().unwrap().remove("project");
    occurrence["event"]["uuid"] = json!("00000000-0000-4000-8000-000000000501");
    let deliveries = h.posthog.send_event(5, &occurrence).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let d = deliveries.into_iter().next().unwrap().unwrap();
    assert_eq!(d.final_status(), Some(200), "{d:?}");
    assert_eq!(d.response_json().unwrap()["result"], "ignored");

    let again = run(&h).await;
    assert_eq!(again.projects_provisioned, 0, "{again:?}");
    assert_eq!(live(&h.posthog.hog_functions(5)), 2);
}

#[tokio::test]
async fn a_disconnect_posthog_refused_is_finished_by_a_later_run() {
    let h = connected(&[(2, "Shop"), (3, "Backend")]).await;
    let conn = h.connection().await;
    let tokens = h.tokens(&conn.id).await.unwrap();
    let down = h.settings_with_posthog_down().await;
    let (status_code, body) = h.disconnect_with(&down).await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(body["cleanup"]["complete"], false, "{body}");

    // Still unreachable: the leftovers stay recorded for the next run.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let unreachable = Sync::new(connector_for(
        &h.store,
        &h.secrets,
        &dead,
        &h.public_api_url,
        &h.dashboard_url,
    ));
    let report = run_once(&unreachable, BUDGET).await.unwrap();
    assert_eq!(report.cleanups_finished, 0, "{report:?}");
    assert_eq!(report.failures, 1, "{report:?}");
    assert_eq!(
        h.store
            .get_cleanup(&conn.id)
            .await
            .unwrap()
            .unwrap()
            .pending_destinations
            .len(),
        4
    );

    let report = run(&h).await;
    assert_eq!(report.cleanups_finished, 1, "{report:?}");
    for project in [2, 3] {
        assert_eq!(live(&h.posthog.hog_functions(project)), 0);
    }
    assert!(!h
        .posthog
        .is_access_token_live(tokens["access_token"].as_str().unwrap()));
    assert_eq!(h.tokens(&conn.id).await, None);
    let cleanup = h.store.get_cleanup(&conn.id).await.unwrap().unwrap();
    assert!(cleanup.pending_destinations.is_empty());
    assert!(!cleanup.revoke_pending);
    assert_eq!(status(&h).await["status"], "disconnected");

    // Done: the connection is no longer visited.
    h.posthog.clear_request_log();
    let after = run(&h).await;
    assert_eq!(after.connections_seen, 0, "{after:?}");
    assert!(h.posthog.request_log().is_empty());
}

async fn drafts_call(
    drafts: &drafts::Drafts,
    h: &Harness,
    route: &str,
    path: &str,
    params: Value,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let request = event(
        route,
        path,
        json!({"content-type": "application/json"}),
        params,
        None,
        Some(json!({"sub": USER, "workspace_id": h.ws.as_str()})),
        body.map(str::to_owned),
    );
    let response = drafts::handle(drafts, request).await.unwrap();
    let status = response.status();
    (
        status,
        serde_json::from_str(&body_text(response.into_body())).unwrap_or(Value::Null),
    )
}

fn occurrence(uuid: &str) -> Value {
    let mut v = fixture("python-handled_chain");
    v.as_object_mut().unwrap().remove("project");
    v.as_object_mut().unwrap().remove("source");
    v["event"]["uuid"] = json!(uuid);
    v
}

async fn deliver(h: &Harness, project: i64, uuid: &str) -> Value {
    let deliveries = h.posthog.send_event(project, &occurrence(uuid)).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let d = deliveries.into_iter().next().unwrap().unwrap();
    assert_eq!(d.final_status(), Some(200), "{d:?}");
    d.response_json().unwrap()
}

#[tokio::test]
async fn an_approved_issue_follows_posthogs_status_where_no_lifecycle_destination_exists() {
    let h = Harness::start().await;
    h.posthog.add_organization("org-a", "Acme");
    h.posthog.add_project("org-a", 2, "Shop");
    // Third-party apps may not create internal destinations: status comes only from polling.
    h.posthog.refuse_internal_destinations(
        403,
        flowback_tests::posthog::PostHogStandIn::permission_denied_body("not allowed"),
    );
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    assert!(h.forwarding(&conn.id).await[0]
        .issue_destination_id
        .is_none());
    h.store
        .put_mapping(
            &h.ws,
            EnvironmentId::try_from(2).unwrap(),
            &Mapping {
                channel_id: Some(ChannelId::parse("eng").unwrap()),
                exceptions: true,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let first = deliver(&h, 2, "00000000-0000-4000-8000-000000000701").await;
    assert_eq!(first["result"], "created", "{first}");
    let draft_id = first["draft_id"].as_str().unwrap().to_owned();
    let posthog_issue = occurrence("x")["event"]["properties"]["$exception_issue_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let drafts = drafts::Drafts::new(h.store.clone());
    let (code, issue) = drafts_call(
        &drafts,
        &h,
        "POST /drafts/{draft_id}/approve",
        &format!("/drafts/{draft_id}/approve"),
        json!({"draft_id": draft_id}),
        Some("{}"),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{issue}");
    let issue_id = issue["id"].as_str().unwrap().to_owned();
    let get_issue = || async {
        let (code, body) = drafts_call(
            &drafts,
            &h,
            "GET /issues/{issue_id}",
            &format!("/issues/{issue_id}"),
            json!({"issue_id": issue_id}),
            None,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        body
    };

    h.posthog
        .set_issue_status(2, &posthog_issue, IssueStatus::Resolved);
    let report = run(&h).await;
    assert_eq!(report.issues_synced, 1, "{report:?}");
    let synced = get_issue().await;
    assert_eq!(synced["status"], "resolved", "{synced}");
    assert_eq!(synced["posthog_status"], "resolved");
    assert_eq!(synced["regressed"], false);

    // It happens again: regressed and open, and the next run does not undo that while PostHog
    // still says what it said before.
    let again = deliver(&h, 2, "00000000-0000-4000-8000-000000000702").await;
    assert_eq!(again["draft_id"], json!(draft_id), "{again}");
    let regressed = get_issue().await;
    assert_eq!(regressed["status"], "open", "{regressed}");
    assert_eq!(regressed["regressed"], true, "{regressed}");
    let quiet = run(&h).await;
    assert_eq!(quiet.issues_synced, 0, "{quiet:?}");
    assert_eq!(get_issue().await["regressed"], true);

    // PostHog suppresses it: that change comes through.
    h.posthog
        .set_issue_status(2, &posthog_issue, IssueStatus::Suppressed);
    let report = run(&h).await;
    assert_eq!(report.issues_synced, 1, "{report:?}");
    assert_eq!(get_issue().await["status"], "suppressed");
}

#[tokio::test]
async fn two_overlapping_runs_do_each_thing_once() {
    let h = connected(&[(2, "Shop")]).await;
    h.posthog.advance_clock(29 * DAY);
    age_stored_tokens(&h, 29 * DAY).await;
    h.posthog.add_project("org-a", 6, "Data");
    h.posthog.clear_request_log();

    let (a, b) = (sync_of(&h), sync_of(&h));
    let (ra, rb) = tokio::join!(run_once(&a, BUDGET), run_once(&b, BUDGET));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.connections_seen + rb.connections_seen,
        1,
        "{ra:?} {rb:?}"
    );
    assert_eq!(ra.connections_busy + rb.connections_busy, 1);
    assert_eq!(ra.tokens_refreshed + rb.tokens_refreshed, 1);
    assert_eq!(ra.projects_provisioned + rb.projects_provisioned, 1);
    assert_eq!(h.posthog.requests_to("POST", "/oauth/token").len(), 1);
    assert_eq!(live(&h.posthog.hog_functions(6)), 2);

    // The lease was let go: the next run visits the connection again.
    let next = run(&h).await;
    assert_eq!(next.connections_seen, 1, "{next:?}");
    assert_eq!(next.projects_provisioned, 0);
}

#[tokio::test]
async fn a_run_out_of_budget_leaves_connections_for_the_next_run() {
    let h = connected(&[(2, "Shop")]).await;
    let report = run_once(&sync_of(&h), Duration::ZERO).await.unwrap();
    assert_eq!(report.connections_seen, 0, "{report:?}");
    assert_eq!(report.connections_left, 1, "{report:?}");
    assert_eq!(run(&h).await.connections_seen, 1);
}

#[tokio::test]
async fn the_scheduled_event_file_runs_the_upkeep() {
    let h = connected(&[(2, "Shop")]).await;
    let path = format!(
        "{}/../events/sync-scheduled.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let payload: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(payload["detail-type"], "Scheduled Event");
    let state = sync_of(&h);
    let report = sync::handle(
        &state,
        lambda_runtime::LambdaEvent::new(payload, lambda_runtime::Context::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.connections_seen, 1, "{report:?}");
    assert_eq!(report.failures, 0, "{report:?}");
}

#[tokio::test]
async fn a_destination_deleted_in_posthog_is_made_again() {
    let h = connected(&[(2, "Shop")]).await;
    let conn = h.connection().await;
    let before = h.forwarding(&conn.id).await[0].clone();
    let old = before.destination_id.clone().unwrap();
    // Someone removes it in PostHog's UI (the same soft delete PostHog's API does).
    let connector = h.connector();
    let token = connector.tokens().access_token(&conn).await.unwrap();
    connector
        .posthog
        .delete_hog_function(
            flowback::posthog::Region::Us,
            &token,
            before.environment_id,
            &old,
        )
        .await
        .unwrap();

    let report = run(&h).await;
    assert_eq!(report.destinations_repaired, 1, "{report:?}");
    let after = h.forwarding(&conn.id).await[0].clone();
    let new = after.destination_id.clone().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        after.issue_destination_id, before.issue_destination_id,
        "the issue destination still there is adopted, not made twice"
    );
    assert_eq!(live(&h.posthog.hog_functions(2)), 2);
    let answer = deliver(&h, 2, "00000000-0000-4000-8000-000000000801").await;
    assert_eq!(
        answer["result"], "ignored",
        "Do not import, but delivered: {answer}"
    );
}
