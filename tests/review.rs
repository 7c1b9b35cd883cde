//! The review flow (DESIGN.md §3, §8): drafts per channel, approval into an issue that stays in
//! sync with PostHog, dismiss/restore, tenant isolation and a cursor walk during deliveries.

use flowback_tests::stack::*;
use http::StatusCode;
use serde_json::{json, Value};

/// A distinct error (its own fingerprint) of environment `env` at `ts`.
fn error_body(n: usize, env: i64, ts: &str) -> Vec<u8> {
    let mut v = fixture_json("web-uncaught_type_error");
    v["event"]["uuid"] = json!(format!("10000000-0000-4000-8000-{n:012}"));
    v["event"]["timestamp"] = json!(ts);
    v["event"]["properties"]["$exception_fingerprint"] = json!(format!("fp-{n}"));
    v["event"]["properties"]["$exception_issue_id"] = json!(format!("ph-issue-{n}"));
    v["project"]["id"] = json!(env);
    v.to_string().into_bytes()
}

fn repeat_body(n: usize, k: usize, ts: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&error_body(n, 2, ts)).unwrap();
    v["event"]["uuid"] = json!(format!("20000000-0000-4000-{k:04}-{n:012}"));
    v["event"]["distinct_id"] = json!(format!("user-{k}"));
    v.to_string().into_bytes()
}

fn lifecycle(event: &str, posthog_issue: &str, status: Option<&str>, ts: &str) -> Vec<u8> {
    let mut props = json!({"name": "TypeError", "fingerprint": "fp-1"});
    if let Some(s) = status {
        props["status"] = json!(s);
    }
    json!({
        "event": {"event": event, "uuid": format!("lc-{event}-{ts}"), "distinct_id": posthog_issue, "timestamp": ts, "properties": props},
        "project": {"id": 2, "url": "https://us.posthog.com/project/2"}
    })
    .to_string()
    .into_bytes()
}

async fn create(h: &Harness, n: usize, env: i64, ts: &str) -> String {
    let (status, a) = h
        .deliver(&format!("create-{n}"), &error_body(n, env, ts))
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["result"], "created", "{a}");
    a["draft_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn approve_then_sync_with_posthog_through_the_regressed_cycle() {
    let h = harness().await;
    let id = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;

    let (s, issue) = h
        .api(
            "POST /drafts/{draft_id}/approve",
            &format!("/drafts/{id}/approve"),
            Some(json!({"title": "Checkout total crashes", "priority": "urgent"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{issue}");
    assert_eq!(issue["title"], "Checkout total crashes");
    assert_eq!(issue["priority"], "urgent");
    assert_eq!(issue["status"], "open");
    assert_eq!(issue["regressed"], false);
    assert_eq!(issue["approved_by"], "user_1");
    assert_eq!(issue["draft_id"], id.as_str());
    let issue_id = issue["id"].as_str().unwrap().to_owned();

    let (s, again) = h
        .api(
            "POST /drafts/{draft_id}/approve",
            &format!("/drafts/{id}/approve"),
            Some(json!({"title": "Something else", "priority": "low"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        again, issue,
        "a second approval returns the same issue, unchanged"
    );

    let (_, draft) = h
        .api("GET /drafts/{draft_id}", &format!("/drafts/{id}"), None)
        .await;
    assert_eq!(draft["status"], "approved");
    assert_eq!(draft["issue_id"], issue_id.as_str());
    assert_eq!(draft["title"], "Checkout total crashes");

    // Occurrences after approval update the issue (its counts are the draft's, all time).
    h.deliver("r1", &repeat_body(1, 1, "2026-12-04T11:00:00Z"))
        .await;
    let issue_path = format!("/issues/{issue_id}");
    let get_issue = || h.api("GET /issues/{issue_id}", &issue_path, None);
    let (_, i) = get_issue().await;
    assert_eq!(
        (i["occurrences"].as_u64(), i["affected_users"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(i["last_seen"], "2026-12-04T11:00:00.000Z");

    // PostHog resolves it.
    let (s, a) = h
        .deliver(
            "lc1",
            &lifecycle(
                "$error_tracking_issue_resolved",
                "ph-issue-1",
                Some("Resolved"),
                "2026-12-04T12:00:00Z",
            ),
        )
        .await;
    assert_eq!(
        (s, a["result"].as_str()),
        (StatusCode::OK, Some("updated")),
        "{a}"
    );
    let (_, i) = get_issue().await;
    assert_eq!(
        (
            i["status"].as_str(),
            i["posthog_status"].as_str(),
            i["regressed"].as_bool()
        ),
        (Some("resolved"), Some("resolved"), Some(false))
    );

    // A new occurrence after resolution: regressed, reopened.
    h.deliver("r2", &repeat_body(1, 2, "2026-12-04T13:00:00Z"))
        .await;
    let (_, i) = get_issue().await;
    assert_eq!(
        (i["status"].as_str(), i["regressed"].as_bool()),
        (Some("open"), Some(true))
    );
    assert_eq!(i["occurrences"], 3);

    // PostHog resolves it again: regressed clears; the next occurrence regresses it again.
    h.deliver(
        "lc2",
        &lifecycle(
            "$error_tracking_issue_resolved",
            "ph-issue-1",
            Some("Resolved"),
            "2026-12-04T14:00:00Z",
        ),
    )
    .await;
    let (_, i) = get_issue().await;
    assert_eq!(
        (i["status"].as_str(), i["regressed"].as_bool()),
        (Some("resolved"), Some(false))
    );
    h.deliver("r3", &repeat_body(1, 3, "2026-12-04T15:00:00Z"))
        .await;
    let (_, i) = get_issue().await;
    assert_eq!(
        (i["status"].as_str(), i["regressed"].as_bool()),
        (Some("open"), Some(true))
    );

    // An older lifecycle event delivered late changes nothing.
    h.deliver(
        "lc3",
        &lifecycle(
            "$error_tracking_issue_suppressed",
            "ph-issue-1",
            Some("Suppressed"),
            "2026-12-04T09:00:00Z",
        ),
    )
    .await;
    assert_eq!(get_issue().await.1["status"], "open");
}

#[tokio::test]
async fn every_posthog_status_word_maps_to_ours() {
    let h = harness().await;
    let id = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;
    let (_, issue) = h
        .api(
            "POST /drafts/{draft_id}/approve",
            &format!("/drafts/{id}/approve"),
            None,
        )
        .await;
    let issue_id = issue["id"].as_str().unwrap().to_owned();
    let cases = [
        (
            "$error_tracking_issue_resolved",
            Some("Resolved"),
            "resolved",
            "resolved",
        ),
        (
            "$error_tracking_issue_reopened",
            Some("Active"),
            "open",
            "active",
        ),
        (
            "$error_tracking_issue_suppressed",
            Some("Suppressed"),
            "suppressed",
            "suppressed",
        ),
        (
            "$error_tracking_issue_resolved",
            Some("Pending Release"),
            "resolved",
            "pending_release",
        ),
        ("$error_tracking_issue_reopened", None, "open", "active"),
        (
            "$error_tracking_issue_resolved",
            Some("Archived"),
            "resolved",
            "archived",
        ),
        (
            "$error_tracking_issue_suppressed",
            None,
            "suppressed",
            "suppressed",
        ),
    ];
    for (n, (event, word, ours, theirs)) in cases.into_iter().enumerate() {
        let ts = format!("2026-12-04T12:{n:02}:00Z");
        let (_, a) = h
            .deliver(
                &format!("lc{n}"),
                &lifecycle(event, "ph-issue-1", word, &ts),
            )
            .await;
        assert_eq!(a["result"], "updated", "{event} {word:?}: {a}");
        let (_, i) = h
            .api(
                "GET /issues/{issue_id}",
                &format!("/issues/{issue_id}"),
                None,
            )
            .await;
        assert_eq!(
            (i["status"].as_str(), i["posthog_status"].as_str()),
            (Some(ours), Some(theirs)),
            "{event} {word:?}"
        );
    }
    let (_, a) = h
        .deliver(
            "lc-x",
            &lifecycle(
                "$error_tracking_issue_resolved",
                "ph-unknown",
                Some("Resolved"),
                "2026-12-04T13:00:00Z",
            ),
        )
        .await;
    assert_eq!(
        (a["result"].as_str(), a["reason"].as_str()),
        (Some("ignored"), Some("no_synced_issue"))
    );
}

#[tokio::test]
async fn dismissed_drafts_keep_counting_and_can_be_restored_or_approved() {
    let h = harness().await;
    let id = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;
    let (s, d) = h
        .api(
            "POST /drafts/{draft_id}/dismiss",
            &format!("/drafts/{id}/dismiss"),
            None,
        )
        .await;
    assert_eq!(
        (s, d["status"].as_str()),
        (StatusCode::OK, Some("dismissed"))
    );
    h.deliver("r1", &repeat_body(1, 1, "2026-12-04T11:00:00Z"))
        .await;
    let (_, d) = h
        .api("GET /drafts/{draft_id}", &format!("/drafts/{id}"), None)
        .await;
    assert_eq!(
        (d["status"].as_str(), d["occurrences"].as_u64()),
        (Some("dismissed"), Some(2))
    );
    let (_, listed) = h.api("GET /drafts", "/drafts?status=dismissed", None).await;
    assert_eq!(listed["drafts"].as_array().unwrap().len(), 1);
    let (_, listed) = h.api("GET /drafts", "/drafts?status=draft", None).await;
    assert_eq!(listed["drafts"].as_array().unwrap().len(), 0);

    let (s, d) = h
        .api_as(
            h.ws.as_str(),
            "user_2",
            "POST /drafts/{draft_id}/restore",
            &format!("/drafts/{id}/restore"),
            None,
        )
        .await;
    assert_eq!((s, d["status"].as_str()), (StatusCode::OK, Some("draft")));
    let head = h.raw_item(&format!("WS#{}#DRAFT#{id}", h.ws), "HEAD").await;
    assert_eq!(head["dismissed_by"].as_s().unwrap(), "user_1");
    assert_eq!(head["restored_by"].as_s().unwrap(), "user_2");
    assert!(head["restored_at"].as_s().unwrap().starts_with("20"));

    h.api(
        "POST /drafts/{draft_id}/dismiss",
        &format!("/drafts/{id}/dismiss"),
        None,
    )
    .await;
    let (s, _) = h
        .api(
            "POST /drafts/{draft_id}/approve",
            &format!("/drafts/{id}/approve"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "a dismissed draft can be approved");
    let (s, e) = h
        .api(
            "POST /drafts/{draft_id}/dismiss",
            &format!("/drafts/{id}/dismiss"),
            None,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
}

#[tokio::test]
async fn another_workspace_sees_nothing_on_any_route() {
    let h = harness().await;
    let id = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;
    let (_, issue) = h
        .api(
            "POST /drafts/{draft_id}/approve",
            &format!("/drafts/{id}/approve"),
            None,
        )
        .await;
    let issue_id = issue["id"].as_str().unwrap();
    let other = "ws_intruder";
    for (route, path) in [
        ("GET /drafts/{draft_id}", format!("/drafts/{id}")),
        (
            "POST /drafts/{draft_id}/approve",
            format!("/drafts/{id}/approve"),
        ),
        (
            "POST /drafts/{draft_id}/dismiss",
            format!("/drafts/{id}/dismiss"),
        ),
        (
            "POST /drafts/{draft_id}/restore",
            format!("/drafts/{id}/restore"),
        ),
        ("GET /issues/{issue_id}", format!("/issues/{issue_id}")),
        (
            "PUT /integrations/posthog/environments/{environment_id}",
            "/integrations/posthog/environments/2".into(),
        ),
        (
            "DELETE /integrations/posthog/environments/{environment_id}",
            "/integrations/posthog/environments/2".into(),
        ),
    ] {
        let body = route
            .starts_with("PUT")
            .then(|| json!({"channel_id": "x", "exceptions": true, "enabled": true}));
        let (s, b) = h.api_as(other, "intruder", route, &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{route}: {b}");
        assert!(
            !b.to_string().contains("TypeError"),
            "{route} leaked data: {b}"
        );
    }
    let (s, list) = h
        .api_as(other, "intruder", "GET /drafts", "/drafts", None)
        .await;
    assert_eq!(
        (s, list["drafts"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (_, status) = h
        .api_as(
            other,
            "intruder",
            "GET /integrations/posthog",
            "/integrations/posthog",
            None,
        )
        .await;
    assert_eq!(status["status"], "disconnected");
    assert_eq!(status["environments"], json!([]));
    // The owner still sees everything unchanged.
    let (_, d) = h
        .api("GET /drafts/{draft_id}", &format!("/drafts/{id}"), None)
        .await;
    assert_eq!(d["status"], "approved");
}

#[tokio::test]
async fn drafts_are_listed_per_channel_newest_first() {
    let h = harness().await;
    h.map(3, Some("mobile"), true, true).await;
    let a = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;
    let b = create(&h, 2, 3, "2026-12-04T11:00:00Z").await;
    let c = create(&h, 3, 2, "2026-12-04T12:00:00Z").await;
    let ids = |v: &Value| {
        v["drafts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let (_, all) = h.api("GET /drafts", "/drafts", None).await;
    assert_eq!(ids(&all), [c.clone(), b.clone(), a.clone()]);
    let (_, eng) = h
        .api("GET /drafts", "/drafts?channel_id=eng-alerts", None)
        .await;
    assert_eq!(ids(&eng), [c, a]);
    let (_, mobile) = h
        .api("GET /drafts", "/drafts?channel_id=mobile", None)
        .await;
    assert_eq!(ids(&mobile), [b]);
}

#[tokio::test]
async fn a_cursor_walk_during_deliveries_shows_no_draft_twice_and_misses_none_left_alone() {
    let h = harness().await;
    let mut all = Vec::new();
    for n in 0..13 {
        all.push(create(&h, n, 2, &format!("2026-12-04T10:{n:02}:00Z")).await);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut touched = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut page = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/drafts?limit=4&cursor={c}"),
            None => "/drafts?limit=4".into(),
        };
        let (s, body) = h.api("GET /drafts", &path, None).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        for d in body["drafts"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_owned());
        }
        // Deliveries land during the walk: one draft not yet reached, one already shown.
        let n = 12 - page * 3;
        if page < 3 {
            h.deliver(
                &format!("walk-{page}"),
                &repeat_body(n.min(12), page, &format!("2026-12-04T12:{page:02}:00Z")),
            )
            .await;
            touched.insert(all[n.min(12)].clone());
            h.deliver(
                &format!("walk-b-{page}"),
                &repeat_body(page, page + 10, &format!("2026-12-04T12:3{page}:00Z")),
            )
            .await;
            touched.insert(all[page].clone());
        }
        page += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: std::collections::HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a draft was shown twice: {seen:?}"
    );
    for id in &all {
        if !touched.contains(id) {
            assert!(
                unique.contains(id),
                "{id} was not updated during the walk but was never shown"
            );
        }
    }
}

#[tokio::test]
async fn bad_review_inputs_are_clear_400s() {
    let h = harness().await;
    let id = create(&h, 1, 2, "2026-12-04T10:00:00Z").await;
    let approve = format!("/drafts/{id}/approve");
    for (body, code) in [
        (json!({"title": ""}), "invalid_title"),
        (json!({"title": "x".repeat(201)}), "invalid_title"),
        (json!({"priority": "critical"}), "invalid_priority"),
        (json!({"priority": 1}), "invalid_body"),
        (json!({"titel": "typo"}), "invalid_body"),
        (json!([1]), "invalid_body"),
    ] {
        let (s, b) = h
            .api(
                "POST /drafts/{draft_id}/approve",
                &approve,
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{body}: {b}"
        );
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, d) = h
        .api("GET /drafts/{draft_id}", &format!("/drafts/{id}"), None)
        .await;
    assert_eq!(d["status"], "draft", "a refused approval changes nothing");
    for (query, code) in [
        ("status=open", "invalid_status"),
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("cursor=abc", "invalid_cursor"),
        ("channel_id=a%20b", "invalid_channel_id"),
    ] {
        let (s, b) = h
            .api("GET /drafts", &format!("/drafts?{query}"), None)
            .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{query}"
        );
    }
    let (s, _) = h
        .api("GET /drafts/{draft_id}", "/drafts/d_nope", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
