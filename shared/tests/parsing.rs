//! DESIGN.md §5: tolerant of what SDKs and PostHog really send, and clear about what is not an event.

mod common;
use flowback::delivery::{parse, EventKind, ParseError};
use serde_json::json;

fn shape_error(body: &str) -> String {
    match parse(body.as_bytes()) {
        Err(ParseError::Shape(m)) => m,
        other => panic!("expected a shape error for {body}, got {other:?}"),
    }
}

#[test]
fn not_an_event_says_what_is_missing() {
    assert_eq!(
        shape_error("{}"),
        "not a PostHog event delivery: missing field `event`"
    );
    assert_eq!(
        shape_error(r#"{"event": {}}"#),
        "event: missing field `event`"
    );
    assert_eq!(
        shape_error("[]"),
        "not a PostHog event delivery: the body must be a JSON object"
    );
    assert_eq!(
        shape_error(" 42"),
        "not a PostHog event delivery: the body must be a JSON object"
    );
    assert!(shape_error(r#"{"event": "boom"}"#).starts_with("event: invalid type: string"));
    assert!(
        shape_error(r#"{"event": {"event": 5}}"#).starts_with("event.event: invalid type: integer")
    );
    assert!(shape_error(
        r#"{"event": {"event": "$exception", "properties": {"$exception_list": "x"}}}"#
    )
    .starts_with("event.properties.$exception_list: invalid type: string"));
    assert!(shape_error(r#"{"event": {"event": "$exception", "properties": {"$exception_list": [{"stacktrace": {"frames": 3}}]}}}"#)
        .starts_with("event.properties.$exception_list[0].stacktrace.frames: invalid type: integer"));
}

#[test]
fn broken_json_is_a_json_error() {
    for body in [
        "",
        "{",
        r#"{"event": {"event": "$exception""#,
        r#"{"event": {"event": "x"}} trailing"#,
        "nul\u{0}",
    ] {
        assert!(
            matches!(parse(body.as_bytes()), Err(ParseError::Json(_))),
            "{body:?}"
        );
    }
    assert!(matches!(
        parse(b"{\"event\": \"\xff\xfe\"}"),
        Err(ParseError::Json(_))
    ));
    let deep = "[".repeat(10_000);
    assert!(parse(
        format!(r#"{{"event": {{"event": "$exception", "properties": {{"x": {deep}}}}}}}"#)
            .as_bytes()
    )
    .is_err());
}

#[test]
fn only_the_event_name_is_required() {
    let d = parse(br#"{"event": {"event": "$exception"}}"#).unwrap();
    assert_eq!(d.kind(), EventKind::Exception);
    assert!(
        d.environment_id().is_err(),
        "no project: routing says which field is missing"
    );
    let d = parse(br#"{"event": {"event": "$exception", "properties": null}, "person": null, "project": {"id": "42"}}"#).unwrap();
    assert_eq!(d.environment_id().unwrap().get(), 42);
    let o = flowback::occurrence::Occurrence::from_delivery(&d, common::RECEIVED_AT).unwrap();
    assert_eq!(o.title, "Error");
    assert_eq!(
        o.timestamp,
        common::RECEIVED_AT,
        "no timestamp: the time we received it"
    );
    assert_eq!(o.links, flowback::links::Links::default());
}

#[test]
fn kinds_by_event_name() {
    for (name, kind) in [
        ("$exception", EventKind::Exception),
        ("$error_tracking_issue_resolved", EventKind::IssueLifecycle),
        ("$error_tracking_issue_reopened", EventKind::IssueLifecycle),
        ("$pageview", EventKind::Other),
    ] {
        let body = json!({"event": {"event": name}}).to_string();
        assert_eq!(parse(body.as_bytes()).unwrap().kind(), kind, "{name}");
    }
}

#[test]
fn cosmetic_type_differences_are_tolerated() {
    let body = json!({
        "event": {
            "event": "$exception",
            "uuid": 7,
            "distinct_id": 12345,
            "timestamp": "not a time",
            "unknown_field": {"deep": [1, 2, 3]},
            "properties": {
                "$browser_version": "17.2",
                "$os_version": 14,
                "$exception_level": ["fatal"],
                "$exception_list": [{
                    "type": "Error",
                    "value": {"not": "a string"},
                    "mechanism": {"handled": "yes", "type": 3},
                    "stacktrace": {"type": "resolved", "frames": [
                        {"resolved_name": "charge", "source": "billing.py", "line": "57", "in_app": 1},
                        {"mangled_name": "_ZN3app4mainE", "source": "main.rs", "line": 3, "in_app": true}
                    ]}
                }]
            }
        },
        "project": {"id": 3, "url": "https://eu.posthog.com/project/3"},
        "groups": {"company": {"id": "c1"}}
    });
    let o = common::occurrence_of_json(body);
    assert_eq!(o.title, "Error");
    assert_eq!(o.context.browser_version.as_deref(), Some("17.2"));
    assert_eq!(o.context.os_version.as_deref(), Some("14"));
    assert_eq!(o.distinct_id.as_deref(), Some("12345"));
    assert!(!o.handled);
    let frames = &o.evidence.exceptions[0].frames;
    assert_eq!(frames[0].function.as_deref(), Some("charge"));
    assert_eq!(frames[0].line.as_deref(), Some("57"));
    assert!(!frames[0].in_app, "in_app: 1 is not an explicit true");
    assert_eq!(frames[1].function.as_deref(), Some("_ZN3app4mainE"));
}

#[test]
fn legacy_and_server_side_fields_fill_in_for_a_missing_list() {
    let o = common::occurrence_of_json(json!({
        "event": {"event": "$exception", "properties": {"$exception_type": "ValueError", "$exception_message": "bad\nvalue"}},
        "project": {"id": 9}
    }));
    assert_eq!(o.title, "ValueError: bad value");
    let o = common::occurrence_of_json(json!({
        "event": {"event": "$exception", "properties": {"$exception_types": ["KeyError", "X"], "$exception_values": ["'card'"]}},
        "project": {"id": 9}
    }));
    assert_eq!(o.title, "KeyError: 'card'");
}

#[test]
fn stored_sizes_are_bounded() {
    let frames: Vec<_> = (0..100)
        .map(|i| json!({"function": format!("f{i}"), "filename": "a.js", "in_app": true}))
        .collect();
    let o = common::occurrence_of_json(json!({
        "event": {"event": "$exception", "properties": {"$exception_list": [
            {"type": "Error", "value": "é".repeat(10_000), "stacktrace": {"frames": frames}}
        ]}},
        "project": {"id": 9}
    }));
    let e = &o.evidence.exceptions[0];
    assert!(e.message.as_ref().unwrap().len() <= 4096);
    assert!(e.message.as_ref().unwrap().ends_with('…'));
    assert_eq!(e.frames.len(), 30);
    assert_eq!(
        e.frames.last().unwrap().function.as_deref(),
        Some("f99"),
        "the frames nearest the throw are kept"
    );
    assert_eq!(o.title.chars().count(), 120);
}
