//! Signed PostHog deliveries become exactly one draft per error, against moto's DynamoDB and
//! Secrets Manager through the real SDK clients.

use flowback::priority::Priority;
use flowback_tests::stack::*;
use futures::future::join_all;
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn every_real_payload_becomes_the_draft_the_contract_implies() {
    let h = harness().await;
    let expected = [
        ("web-uncaught_type_error", "TypeError: Cannot read properties of undefined (reading 'toFixed')", Priority::Urgent, true),
        ("web-handled", "Error: handled", Priority::High, false),
        ("web-unhandled_rejection_string", "UnhandledRejection: Non-Error promise rejection captured with value: Request aborted: checkout session expired", Priority::Low, false),
        ("node-unhandled_rejection", "Error: User 7 not found in database", Priority::Urgent, false),
        ("python-handled_chain", "RuntimeError: checkout failed", Priority::High, false),
    ];
    for (name, title, priority, replay) in expected {
        let body = fixture(name);
        let (status, answer) = h.deliver(&format!("msg_{name}"), &body).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
        assert_eq!(answer["result"], "created", "{name}");
        let d = h.draft(answer["draft_id"].as_str().unwrap()).await;
        let event = fixture_json(name);
        let props = &event["event"]["properties"];
        assert_eq!(d.title, title);
        assert_eq!(d.priority, priority, "{name}");
        assert_eq!(d.status, flowback::draft::DraftStatus::Draft);
        assert_eq!(d.channel_id, "eng-alerts");
        assert_eq!(d.environment.id, 2);
        assert_eq!(d.environment.name.as_deref(), Some("Default project"));
        assert_eq!(
            d.fingerprint,
            props["$exception_fingerprint"].as_str().unwrap()
        );
        assert_eq!(
            d.posthog_issue_id.as_deref(),
            props["$exception_issue_id"].as_str()
        );
        assert_eq!(
            d.links.posthog_issue.as_deref().unwrap(),
            format!(
                "https://us.posthog.com/project/2/error_tracking/{}",
                props["$exception_issue_id"].as_str().unwrap()
            )
        );
        assert_eq!(d.links.session_replay.is_some(), replay, "{name}");
        assert_eq!(d.links.person.as_deref(), event["person"]["url"].as_str());
        assert_eq!(d.occurrences, 1);
        assert_eq!(d.affected_users, 1);
        assert_eq!(d.first_seen, d.last_seen);
        assert!(d.prd.starts_with("## Summary\n"), "{}", d.prd);
        assert!(d.prd.contains("- Occurrences: 1"));
        assert_eq!(d.issue_id, None);
    }
}

#[tokio::test]
async fn the_same_delivery_ten_times_in_a_row_counts_once() {
    let h = harness().await;
    let body = fixture("web-uncaught_type_error");
    let mut results = Vec::new();
    for _ in 0..10 {
        let (status, answer) = h.deliver("msg_same", &body).await;
        assert_eq!(status, StatusCode::OK);
        results.push(answer["result"].as_str().unwrap().to_owned());
    }
    assert_eq!(results[0], "created");
    assert!(results[1..].iter().all(|r| r == "duplicate"), "{results:?}");
    let (_, answer) = h.deliver("msg_same", &body).await;
    assert_eq!(
        h.draft(answer["draft_id"].as_str().unwrap())
            .await
            .occurrences,
        1
    );
}

#[tokio::test]
async fn the_same_delivery_ten_times_at_once_counts_once() {
    let h = harness().await;
    let body = fixture("node-unhandled_rejection");
    let answers = join_all((0..10).map(|_| h.deliver_until_accepted("msg_storm", &body))).await;
    let created = answers
        .iter()
        .filter(|(_, a)| a["result"] == "created")
        .count();
    let duplicate = answers
        .iter()
        .filter(|(_, a)| a["result"] == "duplicate")
        .count();
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    // One attempt wrote; every other answer says it was already recorded (a loaded machine can
    // also lose the writer's own answer, which then comes back `duplicate` on retry).
    assert!(created <= 1 && created + duplicate == 10, "{answers:?}");
    let id = answers[0].1["draft_id"].as_str().unwrap();
    assert_eq!(h.draft(id).await.occurrences, 1);
}

#[tokio::test]
async fn the_same_event_under_a_new_webhook_id_is_a_duplicate() {
    let h = harness().await;
    let body = fixture("web-handled");
    assert_eq!(h.deliver("msg_a", &body).await.1["result"], "created");
    assert_eq!(h.deliver("msg_b", &body).await.1["result"], "duplicate");
}

#[tokio::test]
async fn fifty_concurrent_first_occurrences_make_one_draft_with_fifty_occurrences() {
    let h = harness().await;
    let bodies: Vec<_> = (0..50)
        .map(|n| {
            occurrence_of(
                "web-uncaught_type_error",
                n,
                &format!("user-{}", n % 7),
                "2026-12-04T15:25:12.063Z",
            )
        })
        .collect();
    let hr = &h;
    let answers = join_all(bodies.iter().enumerate().map(|(n, b)| {
        let id = format!("msg_{n}");
        let h = hr;
        async move { h.deliver_until_accepted(&id, b).await }
    }))
    .await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    let created = answers
        .iter()
        .filter(|(_, a)| a["result"] == "created")
        .count();
    // A loaded machine can time an attempt out after its write committed; the retry then answers
    // `duplicate` for it, which is still one count.
    assert!(created <= 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(_, a)| ["created", "updated", "duplicate"]
                .contains(&a["result"].as_str().unwrap()))
    );
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(_, a)| a["draft_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    let d = h.draft(ids.into_iter().next().unwrap()).await;
    assert_eq!(d.occurrences, 50);
    assert_eq!(d.affected_users, 7);
}

#[tokio::test]
async fn out_of_order_deliveries_keep_first_min_last_max_and_the_latest_context() {
    let h = harness().await;
    let at = |n: usize, ts: &str, browser: &str| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&occurrence_of("web-uncaught_type_error", n, "u1", ts)).unwrap();
        v["event"]["properties"]["$browser"] = json!(browser);
        v.to_string().into_bytes()
    };
    let (_, a) = h
        .deliver("m1", &at(1, "2026-12-04T12:00:00Z", "Firefox"))
        .await;
    h.deliver("m2", &at(2, "2026-12-04T10:00:00Z", "Safari"))
        .await;
    h.deliver("m3", &at(3, "2026-12-04T14:00:00Z", "Chrome"))
        .await;
    h.deliver("m4", &at(4, "2026-12-04T11:00:00Z", "Edge"))
        .await;
    let d = h.draft(a["draft_id"].as_str().unwrap()).await;
    assert_eq!(d.first_seen, "2026-12-04T10:00:00.000Z");
    assert_eq!(d.last_seen, "2026-12-04T14:00:00.000Z");
    assert_eq!(d.occurrences, 4);
    assert_eq!(d.affected_users, 1);
    assert!(d.prd.contains("- Browser: Chrome 156"), "{}", d.prd);
}

#[tokio::test]
async fn a_later_occurrence_raises_the_priority_and_never_lowers_it() {
    let h = harness().await;
    let with_handled = |n: usize, handled: bool| {
        let mut v: serde_json::Value = serde_json::from_slice(&occurrence_of(
            "web-handled",
            n,
            "u",
            "2026-12-04T15:00:00Z",
        ))
        .unwrap();
        v["event"]["properties"]["$exception_list"][0]["mechanism"]["handled"] = json!(handled);
        v.to_string().into_bytes()
    };
    let (_, a) = h.deliver("p1", &with_handled(1, true)).await;
    let id = a["draft_id"].as_str().unwrap().to_owned();
    assert_eq!(h.draft(&id).await.priority, Priority::High);
    h.deliver("p2", &with_handled(2, false)).await;
    let d = h.draft(&id).await;
    assert_eq!(d.priority, Priority::Urgent);
    assert!(
        d.priority_reason.contains("one step up: urgent"),
        "{}",
        d.priority_reason
    );
    h.deliver("p3", &with_handled(3, true)).await;
    assert_eq!(h.draft(&id).await.priority, Priority::Urgent);
}

#[tokio::test]
async fn environments_not_imported_are_ignored_and_nothing_is_written() {
    let h = harness().await;
    let mut other_env = fixture_json("web-handled");
    other_env["project"]["id"] = json!(99);
    let before = h.item_count().await;
    let (s, a) = h.deliver("x1", other_env.to_string().as_bytes()).await;
    assert_eq!(
        (s, a["result"].as_str(), a["reason"].as_str()),
        (StatusCode::OK, Some("ignored"), Some("do_not_import"))
    );

    h.map(2, Some("eng-alerts"), true, false).await;
    let before_disabled = h.item_count().await;
    let (_, a) = h.deliver("x2", &fixture("web-handled")).await;
    assert_eq!(a["reason"], "environment_disabled");
    h.map(2, Some("eng-alerts"), false, true).await;
    let (_, a) = h.deliver("x3", &fixture("web-handled")).await;
    assert_eq!(a["reason"], "exceptions_off");
    h.map(2, None, true, true).await;
    let (_, a) = h.deliver("x4", &fixture("web-handled")).await;
    assert_eq!(a["reason"], "do_not_import");
    let (_, a) = h
        .deliver(
            "x5",
            json!({"event": {"event": "$pageview"}, "project": {"id": 2}})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(a["reason"], "not_an_exception");
    assert_eq!(h.item_count().await, before_disabled);
    assert_eq!(before, before_disabled);

    h.map(2, Some("eng-alerts"), true, true).await;
    let (_, a) = h.deliver("x6", &fixture("web-handled")).await;
    assert_eq!(
        a["result"], "created",
        "a mapping change takes effect on the next delivery"
    );
}

#[tokio::test]
async fn past_the_hourly_limit_a_new_error_is_ignored_and_counted() {
    let h = harness_with_limit(2).await;
    let mut results = Vec::new();
    for (n, name) in [
        "web-handled",
        "node-unhandled_rejection",
        "python-handled_chain",
    ]
    .iter()
    .enumerate()
    {
        let (_, a) = h.deliver(&format!("l{n}"), &fixture(name)).await;
        results.push((
            a["result"].as_str().unwrap().to_owned(),
            a["reason"].as_str().map(str::to_owned),
        ));
    }
    assert_eq!(
        results[2],
        ("ignored".to_owned(), Some("draft_limit".to_owned()))
    );
    // Repeats of known errors are still counted.
    let (_, a) = h
        .deliver(
            "l3",
            &occurrence_of("web-handled", 9, "u9", "2026-12-04T15:30:00Z"),
        )
        .await;
    assert_eq!(a["result"], "updated");
    let hits = h
        .dynamo
        .get_item()
        .table_name(&h.table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("WS#{}", h.ws)),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S("ENV#2".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(hits["draft_limit_hits"].as_n().unwrap(), "1");
}
