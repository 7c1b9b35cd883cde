//! Nothing unsigned, stale or for a dead connection is recorded; malformed bodies get a clear 4xx.

use flowback::store::connections::ConnectionStatus;
use flowback_tests::stack::*;
use http::StatusCode;
use serde_json::{json, Value};

fn headers(id: &str, ts: i64, sig: &str) -> Value {
    json!({"content-type": "application/json", "webhook-id": id, "webhook-timestamp": ts.to_string(), "webhook-signature": sig})
}

#[tokio::test]
async fn bad_signatures_answer_401_and_write_nothing() {
    let h = harness().await;
    let body = fixture("web-uncaught_type_error");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = |ts: i64, b: &[u8]| flowback::signature::sign(&h.secret, "msg_1", ts, b).unwrap();
    let other = secrecy::SecretString::from("whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlciE=");
    let mut tampered = body.clone();
    let pos = tampered.len() - 10;
    tampered[pos] = b' ';
    let before = h.item_count().await;
    let cases: Vec<(&str, Value, Vec<u8>)> = vec![
        (
            "tampered body",
            headers("msg_1", now, &sig(now, &body)),
            tampered,
        ),
        (
            "wrong secret",
            headers(
                "msg_1",
                now,
                &flowback::signature::sign(&other, "msg_1", now, &body).unwrap(),
            ),
            body.clone(),
        ),
        (
            "stale timestamp",
            headers("msg_1", now - 360, &sig(now - 360, &body)),
            body.clone(),
        ),
        (
            "future timestamp",
            headers("msg_1", now + 360, &sig(now + 360, &body)),
            body.clone(),
        ),
        (
            "empty v1 signature",
            headers("msg_1", now, "v1,"),
            body.clone(),
        ),
        (
            "other id than signed",
            headers("msg_2", now, &sig(now, &body)),
            body.clone(),
        ),
        (
            "no signature header",
            json!({"webhook-id": "msg_1", "webhook-timestamp": now.to_string()}),
            body.clone(),
        ),
        (
            "no id header",
            json!({"webhook-signature": sig(now, &body), "webhook-timestamp": now.to_string()}),
            body.clone(),
        ),
        (
            "no timestamp header",
            json!({"webhook-id": "msg_1", "webhook-signature": sig(now, &body)}),
            body.clone(),
        ),
        ("no headers", json!({}), body.clone()),
    ];
    for (name, hdrs, b) in cases {
        let (status, answer) = h.send(h.conn.as_str(), hdrs, &b).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{name}");
    }
    assert_eq!(h.item_count().await, before);
}

#[tokio::test]
async fn unknown_and_disconnected_connections_answer_410_even_when_warm() {
    let h = harness().await;
    let body = fixture("web-handled");
    let (s, _) = h.send("c_unknown", json!({}), &body).await;
    assert_eq!(s, StatusCode::GONE);
    let (s, _) = h.send("not a valid id!", json!({}), &body).await;
    assert_eq!(s, StatusCode::GONE);

    assert_eq!(
        h.deliver("w1", &body).await.0,
        StatusCode::OK,
        "warms the instance's cache"
    );
    h.store
        .set_connection_status(&h.conn, ConnectionStatus::Disconnected)
        .await
        .unwrap();
    let before = h.item_count().await;
    let (s, a) = h
        .deliver(
            "w2",
            &occurrence_of("web-handled", 2, "u2", "2026-12-04T15:00:00Z"),
        )
        .await;
    assert_eq!(s, StatusCode::GONE, "{a}");
    assert_eq!(a["error"]["code"], "connection_gone");
    let (s, _) = h
        .deliver(
            "w3",
            json!({"event": {"event": "$pageview"}})
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(h.item_count().await, before);
}

#[tokio::test]
async fn needs_reconnect_still_accepts_deliveries() {
    let h = harness().await;
    h.store
        .set_connection_status(&h.conn, ConnectionStatus::NeedsReconnect)
        .await
        .unwrap();
    assert_eq!(
        h.deliver("n1", &fixture("web-handled")).await.1["result"],
        "created"
    );
}

#[tokio::test]
async fn malformed_bodies_answer_4xx_with_a_message_and_write_nothing() {
    let h = harness().await;
    let valid = fixture_json("web-handled");
    let mut bodies: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), b"".to_vec()),
        ("whitespace".into(), b"   ".to_vec()),
        ("null".into(), b"null".to_vec()),
        ("true".into(), b"true".to_vec()),
        ("number".into(), b"42".to_vec()),
        ("string".into(), b"\"event\"".to_vec()),
        ("array".into(), b"[]".to_vec()),
        ("array of event".into(), json!([valid]).to_string().into_bytes()),
        ("empty object".into(), b"{}".to_vec()),
        ("event null".into(), br#"{"event": null}"#.to_vec()),
        ("event string".into(), br#"{"event": "$exception"}"#.to_vec()),
        ("event number".into(), br#"{"event": 1}"#.to_vec()),
        ("event array".into(), br#"{"event": []}"#.to_vec()),
        ("event without name".into(), br#"{"event": {"uuid": "x"}}"#.to_vec()),
        ("event name null".into(), br#"{"event": {"event": null}}"#.to_vec()),
        ("event name number".into(), br#"{"event": {"event": 5}}"#.to_vec()),
        ("event name object".into(), br#"{"event": {"event": {}}}"#.to_vec()),
        ("properties string".into(), br#"{"event": {"event": "$exception", "properties": "x"}}"#.to_vec()),
        ("properties array".into(), br#"{"event": {"event": "$exception", "properties": []}}"#.to_vec()),
        ("list string".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": "x"}}, "project": {"id": 2}}"#.to_vec()),
        ("list object".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": {}}}, "project": {"id": 2}}"#.to_vec()),
        ("list of numbers".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": [1]}}, "project": {"id": 2}}"#.to_vec()),
        ("mechanism string".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": [{"mechanism": "x"}]}}, "project": {"id": 2}}"#.to_vec()),
        ("stacktrace string".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": [{"stacktrace": "x"}]}}, "project": {"id": 2}}"#.to_vec()),
        ("frames object".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": [{"stacktrace": {"frames": {}}}]}}, "project": {"id": 2}}"#.to_vec()),
        ("frame string".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_list": [{"stacktrace": {"frames": ["x"]}}]}}, "project": {"id": 2}}"#.to_vec()),
        ("person string".into(), br#"{"event": {"event": "$exception"}, "person": "x", "project": {"id": 2}}"#.to_vec()),
        ("project string".into(), br#"{"event": {"event": "$exception"}, "project": "x"}"#.to_vec()),
        ("project missing".into(), br#"{"event": {"event": "$exception"}}"#.to_vec()),
        ("project id missing".into(), br#"{"event": {"event": "$exception"}, "project": {}}"#.to_vec()),
        ("project id zero".into(), br#"{"event": {"event": "$exception"}, "project": {"id": 0}}"#.to_vec()),
        ("project id negative".into(), br#"{"event": {"event": "$exception"}, "project": {"id": -2}}"#.to_vec()),
        ("project id text".into(), br#"{"event": {"event": "$exception"}, "project": {"id": "prod"}}"#.to_vec()),
        ("project id float".into(), br#"{"event": {"event": "$exception"}, "project": {"id": 2.5}}"#.to_vec()),
        ("fingerprint too long".into(), json!({"event": {"event": "$exception", "properties": {"$exception_fingerprint": "f".repeat(600)}}, "project": {"id": 2}}).to_string().into_bytes()),
        ("fingerprint control char".into(), br#"{"event": {"event": "$exception", "properties": {"$exception_fingerprint": "a\nb"}}, "project": {"id": 2}}"#.to_vec()),
        ("duplicate key".into(), br#"{"event": {"event": "$exception", "event": "$exception"}, "project": {"id": 2}}"#.to_vec()),
        ("trailing garbage".into(), br#"{"event": {"event": "$exception"}, "project": {"id": 2}} x"#.to_vec()),
        ("two documents".into(), br#"{"event": {"event": "$exception"}} {"event": {"event": "$exception"}}"#.to_vec()),
        ("single quotes".into(), br#"{'event': {'event': '$exception'}}"#.to_vec()),
        ("trailing comma".into(), br#"{"event": {"event": "$exception"},}"#.to_vec()),
        ("comment".into(), b"// hi\n{\"event\": {\"event\": \"$exception\"}}".to_vec()),
        ("NaN".into(), br#"{"event": {"event": "$exception"}, "project": {"id": NaN}}"#.to_vec()),
        ("unterminated string".into(), br#"{"event": {"event": "$exception}}"#.to_vec()),
        ("bad escape".into(), br#"{"event": {"event": "\q"}}"#.to_vec()),
        ("lone surrogate".into(), br#"{"event": {"event": "\ud800"}}"#.to_vec()),
        ("invalid utf-8".into(), b"{\"event\": {\"event\": \"\xff\xfe\"}}".to_vec()),
        ("latin-1 body".into(), b"{\"event\": {\"event\": \"caf\xe9\"}}".to_vec()),
        ("nul byte".into(), b"{\"event\": {\"event\": \"$exception\"}}\0".to_vec()),
        ("10000-deep nesting".into(), format!("{{\"event\": {{\"event\": \"$exception\", \"properties\": {{\"x\": {}{}}}}}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        ("10000-deep objects".into(), format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes()),
        ("huge number".into(), format!("{{\"event\": {{\"event\": \"$exception\"}}, \"project\": {{\"id\": 1{}}}}}", "0".repeat(400)).into_bytes()),
        ("xml".into(), b"<event>$exception</event>".to_vec()),
        ("form".into(), b"event=%24exception".to_vec()),
    ];
    for n in [1usize, 10, 100, 1000] {
        let s = fixture_json("web-handled").to_string();
        bodies.push((
            format!("truncated by {n}"),
            s.as_bytes()[..s.len().saturating_sub(n)].to_vec(),
        ));
    }
    let huge = format!(
        "{{\"event\": {{\"event\": \"$exception\", \"properties\": {{\"pad\": \"{}\"}}}}}}",
        "x".repeat(6 * 1024 * 1024)
    );
    bodies.push(("6 MiB".into(), huge.into_bytes()));
    assert!(bodies.len() >= 50, "{}", bodies.len());

    let before = h.item_count().await;
    for (name, body) in &bodies {
        let (status, answer) = h.deliver(&format!("bad_{name}"), body).await;
        assert!(status.is_client_error(), "{name}: {status} {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{name}: no message in {answer}");
        if name == "6 MiB" {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    assert_eq!(
        h.item_count().await,
        before,
        "a malformed body wrote something"
    );
}
