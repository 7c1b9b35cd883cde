//! Disconnecting (DESIGN.md §7): forwarding and credentials go, drafts and mappings stay, PostHog
//! being down never blocks it, and a reconnect folds the same errors into the same drafts.

use flowback::ids::{ChannelId, EnvironmentId};
use flowback::store::connections::ConnectionStatus;
use flowback::store::forwarding::Forwarding;
use flowback::store::mappings::Mapping;
use flowback_tests::harness::{fixture, Harness};
use flowback_tests::posthog::RevocationReason;
use http::StatusCode;
use serde_json::{json, Value};

async fn connected_with_a_draft() -> (Harness, String) {
    let h = Harness::start().await;
    h.posthog.add_organization("org-a", "Acme");
    h.posthog.add_project("org-a", 2, "Shop");
    h.posthog.add_project("org-a", 3, "Backend");
    assert!(h.connect().await.connected());
    h.store
        .put_mapping(
            &h.ws,
            EnvironmentId::try_from(2).unwrap(),
            &Mapping {
                channel_id: Some(ChannelId::parse("eng-alerts").unwrap()),
                exceptions: true,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let answer = deliver(&h, 2, "00000000-0000-4000-8000-000000000001").await;
    assert_eq!(answer["result"], "created", "{answer}");
    let draft = answer["draft_id"].as_str().unwrap().to_owned();
    (h, draft)
}

fn occurrence(uuid: &str) -> Value {
    let mut v = fixture("python-handled_chain");
    v.as_object_mut().unwrap().remove("project");
    v.as_object_mut().unwrap().remove("source");
    v["event"]["uuid"] = json!(uuid);
    v
}

/// One `$exception` in `project`, delivered by PostHog through whatever destinations it holds.
async fn deliver(h: &Harness, project: i64, uuid: &str) -> Value {
    let deliveries = h.posthog.send_event(project, &occurrence(uuid)).await;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let d = deliveries.into_iter().next().unwrap().unwrap();
    assert_eq!(d.final_status(), Some(200), "{d:?}");
    d.response_json().unwrap()
}

#[tokio::test]
async fn disconnect_removes_forwarding_and_credentials_and_keeps_drafts_and_mappings() {
    let (h, draft) = connected_with_a_draft().await;
    let conn = h.connection().await;
    let secret = h.signing_secret(&conn.id).await.unwrap();
    let tokens = h.tokens(&conn.id).await.unwrap();
    let functions: Vec<_> = [2, 3]
        .into_iter()
        .flat_map(|p| h.posthog.hog_functions(p))
        .collect();
    assert_eq!(functions.len(), 4);

    let (status, body) = h.disconnect().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "disconnected");
    assert_eq!(body["connection_id"], json!(conn.id.as_str()));
    assert_eq!(body["cleanup"]["complete"], true, "{body}");
    assert_eq!(body["cleanup"]["pending_destinations"], json!([]));
    assert_eq!(body["cleanup"]["tokens_revoked"], true);
    assert!(body["disconnected_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(h.connection().await.status, ConnectionStatus::Disconnected);
    assert_eq!(
        h.pointer().await.unwrap().status,
        ConnectionStatus::Disconnected
    );
    for f in &functions {
        assert!(h.posthog.hog_function(&f.id).unwrap().deleted, "{f:?}");
    }
    assert!(h.posthog.requests_to("DELETE", "/").is_empty());
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert!(h
        .posthog
        .revoked_tokens()
        .iter()
        .any(|r| r.token == refresh && r.reason == RevocationReason::Endpoint));
    assert!(h.posthog.is_revoked(access));
    assert!(!h.posthog.is_access_token_live(access));
    assert_eq!(h.signing_secret(&conn.id).await, None);
    assert_eq!(h.tokens(&conn.id).await, None);
    for env in h.forwarding(&conn.id).await {
        assert_eq!(env.forwarding, Forwarding::None);
        assert_eq!(env.destination_id, None);
        assert_eq!(env.issue_destination_id, None);
    }

    // PostHog no longer delivers; a delivery that still arrives (a retry in flight) is gone.
    let routed = h
        .posthog
        .send_event(2, &occurrence("00000000-0000-4000-8000-000000000002"))
        .await;
    assert!(routed.is_empty(), "deleted destinations are not invoked");
    let mut late = occurrence("00000000-0000-4000-8000-000000000003");
    late["project"] =
        json!({"id": 2, "name": "Shop", "url": format!("{}/project/2", h.posthog.base_url())});
    let body = late.to_string();
    let (status, answer) = h.post_signed(&conn.id, &secret, &body).await;
    assert_eq!(status, 410, "{answer}");

    let kept = h
        .store
        .get_draft(&h.ws, &draft)
        .await
        .unwrap()
        .expect("the draft stays");
    assert_eq!(kept.occurrences, 1);
    let mapping = h
        .store
        .get_mapping(&h.ws, EnvironmentId::try_from(2).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapping.channel_id.unwrap().as_str(), "eng-alerts");
}

#[tokio::test]
async fn deliveries_answer_410_from_the_instant_of_the_disconnect() {
    let (h, draft) = connected_with_a_draft().await;
    let conn = h.connection().await;
    // PostHog unreachable: the destinations stay, yet the connection is closed.
    let down = h.settings_with_posthog_down().await;
    let (status, _) = h.disconnect_with(&down).await;
    assert_eq!(status, StatusCode::OK);
    let still_there = h.posthog.hog_functions(2);
    assert!(still_there.iter().all(|f| !f.deleted));
    assert!(still_there.iter().all(|f| f
        .input("url")
        .unwrap()
        .as_str()
        .unwrap()
        .ends_with(conn.id.as_str())));
    let err = h
        .posthog
        .send_event(2, &occurrence("00000000-0000-4000-8000-000000000009"))
        .await;
    let d = err[0].as_ref().unwrap();
    assert_eq!(d.final_status(), Some(410), "{d:?}");
    assert_eq!(d.attempts.len(), 1, "410 is not retried by PostHog");
    let kept = h.store.get_draft(&h.ws, &draft).await.unwrap().unwrap();
    assert_eq!(kept.occurrences, 1, "nothing counted after the disconnect");
}

#[tokio::test]
async fn posthog_down_does_not_block_a_disconnect_and_the_leftovers_are_retried() {
    let (h, draft) = connected_with_a_draft().await;
    let conn = h.connection().await;
    let tokens = h.tokens(&conn.id).await.unwrap();

    let down = h.settings_with_posthog_down().await;
    let started = std::time::Instant::now();
    let (status, body) = h.disconnect_with(&down).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "disconnected");
    assert_eq!(body["cleanup"]["complete"], false);
    assert_eq!(body["cleanup"]["tokens_revoked"], false);
    let pending = body["cleanup"]["pending_destinations"].as_array().unwrap();
    assert_eq!(pending.len(), 4, "{body}");
    assert_eq!(h.connection().await.status, ConnectionStatus::Disconnected);
    let cleanup = h.store.get_cleanup(&conn.id).await.unwrap().unwrap();
    assert_eq!(cleanup.pending_destinations.len(), 4);
    assert!(cleanup.revoke_pending);
    // The signing secret is useless now and gone; the tokens stay for the retry.
    assert_eq!(h.signing_secret(&conn.id).await, None);
    assert!(h.tokens(&conn.id).await.is_some());
    assert!(h
        .posthog
        .is_access_token_live(tokens["access_token"].as_str().unwrap()));

    // PostHog is back: running the disconnect again finishes the job.
    let (status, body) = h.disconnect().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cleanup"]["complete"], true, "{body}");
    for p in [2, 3] {
        assert!(h.posthog.hog_functions(p).iter().all(|f| f.deleted));
    }
    assert!(!h
        .posthog
        .is_access_token_live(tokens["access_token"].as_str().unwrap()));
    assert_eq!(h.tokens(&conn.id).await, None);
    let cleanup = h.store.get_cleanup(&conn.id).await.unwrap().unwrap();
    assert!(cleanup.pending_destinations.is_empty());
    assert!(!cleanup.revoke_pending);
    assert!(h.store.get_draft(&h.ws, &draft).await.unwrap().is_some());
}

#[tokio::test]
async fn disconnecting_a_workspace_that_never_connected_is_a_no_op() {
    let h = Harness::start().await;
    let (status, body) = h.disconnect().await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "disconnected");
    assert_eq!(body["connection_id"], Value::Null);
    assert!(h.keys().await.is_empty());
}

#[tokio::test]
async fn a_reconnect_folds_the_same_errors_into_the_same_drafts() {
    let (h, draft) = connected_with_a_draft().await;
    let first = h.connection().await;
    let (status, _) = h.disconnect().await;
    assert_eq!(status, StatusCode::OK);

    let landing = h.connect().await;
    assert!(landing.connected(), "{:?}", landing.url);
    let second = h.connection().await;
    assert_ne!(second.id, first.id, "a reconnect is a new connection");
    let answer = deliver(&h, 2, "00000000-0000-4000-8000-000000000004").await;
    assert_eq!(answer["result"], "updated", "{answer}");
    assert_eq!(answer["draft_id"], json!(draft));
    let d = h.store.get_draft(&h.ws, &draft).await.unwrap().unwrap();
    assert_eq!(d.occurrences, 2);
    assert_eq!(d.channel_id, "eng-alerts", "the mapping survived");
}

#[tokio::test]
async fn unknown_settings_routes_answer_404_json() {
    let h = Harness::start().await;
    let request = flowback_tests::harness::event(
        "GET /integrations/posthog/nope",
        "/integrations/posthog/nope",
        json!({}),
        Value::Null,
        None,
        Some(h.claims()),
        None,
    );
    let response = settings::handle(&h.settings, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value =
        serde_json::from_str(&flowback_tests::harness::body_text(response.into_body())).unwrap();
    assert_eq!(body["error"]["code"], "no_route");
}
