//! Settings (DESIGN.md §3): status, environment mappings with validation, and their effect on the
//! next delivery.

use flowback_tests::stack::*;
use http::StatusCode;
use serde_json::json;

const ENV2: &str = "PUT /integrations/posthog/environments/{environment_id}";

#[tokio::test]
async fn status_shows_the_connection_and_each_environment() {
    let h = harness().await;
    h.store
        .put_workspace_pointer(&h.store.get_connection(&h.conn).await.unwrap().unwrap())
        .await
        .unwrap();
    let (s, body) = h
        .api("GET /integrations/posthog", "/integrations/posthog", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "connected");
    assert_eq!(body["connection"]["id"], h.conn.as_str());
    assert_eq!(body["connection"]["region"], "us");
    assert_eq!(body["connection"]["connected_by"], "user_1");
    assert_eq!(
        body["environments"],
        json!([{"id": 2, "name": null, "channel_id": "eng-alerts", "exceptions": true, "enabled": true,
                "forwarding": "none", "draft_limit_hits": 0, "draft_limit_last_hit": null}])
    );
}

#[tokio::test]
async fn a_workspace_that_never_connected_is_disconnected() {
    let h = harness().await;
    let (s, body) = h
        .api_as(
            "ws_new",
            "u",
            "GET /integrations/posthog",
            "/integrations/posthog",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "disconnected", "connection": null, "environments": []})
    );
}

#[tokio::test]
async fn a_channel_change_moves_new_drafts_only_and_do_not_import_stops_imports() {
    let h = harness().await;
    let (_, first) = h.deliver("a", &fixture("web-handled")).await;
    let first_id = first["draft_id"].as_str().unwrap().to_owned();

    let (s, body) = h
        .api(
            ENV2,
            "/integrations/posthog/environments/2",
            Some(json!({"channel_id": "web-team", "exceptions": true, "enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["channel_id"], "web-team");

    let (_, second) = h.deliver("b", &fixture("node-unhandled_rejection")).await;
    let second_draft = h.draft(second["draft_id"].as_str().unwrap()).await;
    assert_eq!(second_draft.channel_id, "web-team");
    h.deliver(
        "c",
        &occurrence_of("web-handled", 1, "u2", "2026-12-04T16:00:00Z"),
    )
    .await;
    assert_eq!(
        h.draft(&first_id).await.channel_id,
        "eng-alerts",
        "existing drafts stay where they were"
    );

    let (s, _) = h
        .api(
            "DELETE /integrations/posthog/environments/{environment_id}",
            "/integrations/posthog/environments/2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, status) = h
        .api("GET /integrations/posthog", "/integrations/posthog", None)
        .await;
    assert_eq!(
        status["environments"][0]["channel_id"],
        json!(null),
        "back to Do not import, still listed"
    );
    let (_, ignored) = h.deliver("d", &fixture("python-handled_chain")).await;
    assert_eq!(ignored["reason"], "do_not_import");

    // Turning Enabled off keeps the mapping.
    h.api(
        ENV2,
        "/integrations/posthog/environments/2",
        Some(json!({"channel_id": "web-team", "exceptions": true, "enabled": false})),
    )
    .await;
    let (_, status) = h
        .api("GET /integrations/posthog", "/integrations/posthog", None)
        .await;
    assert_eq!(
        (
            status["environments"][0]["channel_id"].as_str(),
            status["environments"][0]["enabled"].as_bool()
        ),
        (Some("web-team"), Some(false))
    );
}

#[tokio::test]
async fn bad_mapping_inputs_answer_400_naming_the_field_and_change_nothing() {
    let h = harness().await;
    let path = "/integrations/posthog/environments/2";
    let cases = [
        (
            json!({"channel_id": 5, "exceptions": true, "enabled": true}),
            "channel_id",
        ),
        (
            json!({"channel_id": "has space", "exceptions": true, "enabled": true}),
            "channel_id",
        ),
        (
            json!({"channel_id": "x".repeat(10_000), "exceptions": true, "enabled": true}),
            "channel_id",
        ),
        (
            json!({"channel_id": "", "exceptions": true, "enabled": true}),
            "channel_id",
        ),
        (json!({"exceptions": true, "enabled": true}), "channel_id"),
        (
            json!({"channel_id": "ok", "exceptions": "yes", "enabled": true}),
            "exceptions",
        ),
        (json!({"channel_id": "ok", "exceptions": true}), "enabled"),
        (
            json!({"channel_id": "ok", "exceptions": true, "enabled": 1}),
            "enabled",
        ),
        (
            json!({"channel_id": "ok", "exceptions": true, "enabled": true, "colour": "red"}),
            "colour",
        ),
        (json!("channel"), "body"),
        (json!([]), "body"),
    ];
    for (body, field) in cases {
        let (s, b) = h.api(ENV2, path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().contains(field),
            "{body}: {b}"
        );
    }
    let (_, status) = h
        .api("GET /integrations/posthog", "/integrations/posthog", None)
        .await;
    assert_eq!(status["environments"][0]["channel_id"], "eng-alerts");

    let ok = Some(json!({"channel_id": "ok", "exceptions": true, "enabled": true}));
    let (s, _) = h
        .api(ENV2, "/integrations/posthog/environments/999", ok.clone())
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "an environment the workspace does not have"
    );
    let (s, _) = h
        .api(ENV2, "/integrations/posthog/environments/prod", ok)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
