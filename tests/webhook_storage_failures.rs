//! Storage failures answer 503 and leave nothing half-written; PostHog's retry then counts the
//! delivery exactly once. Faults come from a proxy between the SDK and moto's server.

use flowback_tests::fault_proxy::{Fault, FaultProxy};
use flowback_tests::stack::*;
use http::StatusCode;

async fn setup() -> (Harness, FaultProxy) {
    let upstream = std::env::var("AWS_ENDPOINT_URL").expect("run through make test");
    let proxy = FaultProxy::start(&upstream).await;
    (harness_with(500, Some(&proxy.url)).await, proxy)
}

/// The draft's occurrences after a fault-free retry of the same delivery.
async fn retry_and_count(h: &Harness, webhook_id: &str, body: &[u8]) -> (serde_json::Value, u64) {
    let (status, answer) = h.deliver(webhook_id, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let d = h.draft(answer["draft_id"].as_str().unwrap()).await;
    (answer, d.occurrences)
}

#[tokio::test]
async fn throttled_writes_answer_503_and_the_retry_counts_once() {
    let (h, proxy) = setup().await;
    let body = fixture("web-uncaught_type_error");
    // Throttled for longer than the delivery's budget (the SDK retries, then the webhook re-plans).
    proxy.inject("TransactWriteItems", Fault::Throttle, 10_000);
    let before = h.item_count().await;
    let (status, answer) = h.deliver("t1", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "storage_unavailable");
    assert_eq!(h.item_count().await, before, "nothing half-written");
    proxy.clear();
    let (answer, occurrences) = retry_and_count(&h, "t1", &body).await;
    assert_eq!(answer["result"], "created");
    assert_eq!(occurrences, 1);
}

#[tokio::test]
async fn unreachable_storage_on_read_answers_503() {
    let (h, proxy) = setup().await;
    let body = fixture("web-handled");
    proxy.inject("GetItem", Fault::Unavailable, 3);
    let (status, _) = h.deliver("u1", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    proxy.inject("BatchGetItem", Fault::Unavailable, 3);
    let (status, _) = h.deliver("u1", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (answer, occurrences) = retry_and_count(&h, "u1", &body).await;
    assert_eq!(answer["result"], "created");
    assert_eq!(occurrences, 1);
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_not_counted_twice() {
    let (h, proxy) = setup().await;
    let first = fixture("node-unhandled_rejection");
    assert_eq!(h.deliver("l0", &first).await.1["result"], "created");
    let repeat = occurrence_of("node-unhandled_rejection", 1, "u-2", "2026-12-04T16:00:00Z");
    // Every attempt's answer is lost after the write: the SDK retries see the dedup record.
    proxy.inject("TransactWriteItems", Fault::LoseAnswerAfterWrite, 1);
    let (status, answer) = h.deliver("l1", &repeat).await;
    assert!(
        status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
        "{answer}"
    );
    let (answer, occurrences) = retry_and_count(&h, "l1", &repeat).await;
    assert_eq!(answer["result"], "duplicate");
    assert_eq!(
        occurrences, 2,
        "the lost-answer write counted once, the retry not at all"
    );
}

#[tokio::test]
async fn a_hanging_store_answers_503_inside_posthogs_timeout() {
    let (h, proxy) = setup().await;
    let body = fixture("python-handled_chain");
    proxy.inject("TransactWriteItems", Fault::Hang, 3);
    let started = std::time::Instant::now();
    let (status, _) = h.deliver("h1", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    proxy.clear();
    let (answer, occurrences) = retry_and_count(&h, "h1", &body).await;
    assert_eq!(answer["result"], "created");
    assert_eq!(occurrences, 1);
}

#[tokio::test]
async fn the_common_case_costs_two_dynamodb_requests_and_no_secrets_call() {
    let (h, proxy) = setup().await;
    h.deliver(
        "c0",
        &occurrence_of("web-handled", 0, "known-user", "2026-12-04T15:00:00Z"),
    )
    .await;
    assert_eq!(
        proxy.operations(),
        [
            "GetItem",
            "GetSecretValue",
            "BatchGetItem",
            "TransactWriteItems"
        ],
        "a cold instance reads the connection and its secret once"
    );
    let before = proxy.operations().len();
    let (_, a) = h
        .deliver(
            "c1",
            &occurrence_of("web-handled", 1, "known-user", "2026-12-04T15:01:00Z"),
        )
        .await;
    assert_eq!(a["result"], "updated");
    assert_eq!(
        proxy.operations()[before..],
        ["BatchGetItem", "TransactWriteItems"]
    );
}

#[tokio::test]
async fn a_storm_on_a_contended_draft_spills_to_shards_and_counts_exactly() {
    let (h, proxy) = setup().await;
    let (_, first) = h
        .deliver(
            "s0",
            &occurrence_of("web-handled", 0, "user-0", "2026-12-04T12:00:00Z"),
        )
        .await;
    let id = first["draft_id"].as_str().unwrap().to_owned();
    // Every transaction on the main counter item conflicts, as under a storm.
    proxy.inject_matching(
        "TransactWriteItems",
        r#"{"S":"STATS"}"#,
        Fault::Conflict,
        100_000,
    );
    let timestamps = [
        "2026-12-04T13:00:00Z",
        "2026-12-04T11:00:00Z",
        "2026-12-04T14:30:00Z",
        "2026-12-04T12:30:00Z",
    ];
    let bodies: Vec<Vec<u8>> = (1..=30)
        .map(|n| {
            let mut v: serde_json::Value = serde_json::from_slice(&occurrence_of(
                "web-handled",
                n,
                &format!("user-{}", n % 6),
                timestamps[n % 4],
            ))
            .unwrap();
            v["event"]["properties"]["$browser"] =
                serde_json::json!(format!("Browser {}", timestamps[n % 4]));
            if n == 7 {
                v["event"]["properties"]["$exception_list"][0]["mechanism"]["handled"] =
                    serde_json::json!(false);
            }
            v.to_string().into_bytes()
        })
        .collect();
    let hr = &h;
    let answers = futures::future::join_all(
        bodies
            .iter()
            .enumerate()
            .map(|(n, b)| async move { hr.deliver(&format!("s{}", n + 1), b).await }),
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|(s, a)| *s == StatusCode::OK && a["result"] == "updated"),
        "{answers:?}"
    );
    let main_writes = proxy
        .operations()
        .iter()
        .filter(|o| *o == "TransactWriteItems")
        .count();
    assert!(
        main_writes > 30,
        "the main item was tried and the shards took the counts"
    );
    proxy.clear();

    let d = h.draft(&id).await;
    assert_eq!(d.occurrences, 31);
    assert_eq!(d.affected_users, 6);
    assert_eq!(d.first_seen, "2026-12-04T11:00:00.000Z");
    assert_eq!(d.last_seen, "2026-12-04T14:30:00.000Z");
    assert!(
        d.prd
            .contains("- Browser: Browser 2026\\-12\\-04T14\\:30\\:00Z"),
        "{}",
        d.prd
    );
    assert_eq!(
        d.priority,
        flowback::priority::Priority::Urgent,
        "the unhandled occurrence raised it"
    );
    let (_, dup) = h.deliver("s5", &bodies[4]).await;
    assert_eq!(dup["result"], "duplicate");
    assert_eq!(h.draft(&id).await.occurrences, 31);
    let (_, list) = h.api("GET /drafts", "/drafts", None).await;
    assert_eq!(
        list["drafts"][0]["occurrences"], 31,
        "the listing folds the shards in too"
    );
}
