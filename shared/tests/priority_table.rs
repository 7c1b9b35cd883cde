//! DESIGN.md §4 "Priority", exhaustively: every level × handled combination, and every noise rule
//! (each beating every level), with the reason naming the rule that decided.

mod common;
use flowback::exception::Exception;
use flowback::priority::{suggest, ExceptionLevel, Priority, PriorityInput};
use serde_json::json;

fn exception(kind: &str, message: &str, files: &[&str]) -> Exception {
    let frames: Vec<_> = files
        .iter()
        .map(|f| json!({"filename": f, "function": "f"}))
        .collect();
    serde_json::from_value(
        json!({"type": kind, "value": message, "stacktrace": {"frames": frames}}),
    )
    .unwrap()
}

fn input<'a>(level: ExceptionLevel, handled: bool, e: &'a Exception) -> PriorityInput<'a> {
    PriorityInput {
        level,
        handled,
        outermost: Some(e),
        kind: e.kind(),
        message: e.message(),
    }
}

#[test]
fn level_and_handled_table() {
    use ExceptionLevel::*;
    use Priority::*;
    let table = [
        (Fatal, true, Urgent),
        (Fatal, false, Urgent),
        (Error, true, High),
        (Error, false, Urgent),
        (Warning, true, Medium),
        (Warning, false, High),
        (Info, true, Low),
        (Info, false, Medium),
        (Log, true, Low),
        (Log, false, Medium),
        (Debug, true, Low),
        (Debug, false, Medium),
    ];
    assert_eq!(table.len(), ExceptionLevel::ALL.len() * 2);
    let e = exception("Error", "boom", &["https://app.example.com/main.js"]);
    for (level, handled, expected) in table {
        let s = suggest(&input(level, handled, &e));
        assert_eq!(s.priority, expected, "{level:?} handled={handled}");
        assert!(
            s.reason.contains(&format!("Level {}", level.as_str())),
            "{}",
            s.reason
        );
        assert!(
            s.reason
                .contains(if handled { "handled by" } else { "not handled" }),
            "{}",
            s.reason
        );
    }
}

#[test]
fn missing_or_unknown_level_counts_as_error() {
    for raw in [
        None,
        Some(""),
        Some("critical"),
        Some("ERROR"),
        Some("warn"),
    ] {
        assert_eq!(ExceptionLevel::parse(raw), ExceptionLevel::Error, "{raw:?}");
    }
    assert_eq!(ExceptionLevel::parse(Some("Fatal")), ExceptionLevel::Fatal);
    assert_eq!(
        ExceptionLevel::parse(Some("warning")),
        ExceptionLevel::Warning
    );
}

#[test]
fn each_noise_rule_makes_any_level_low() {
    let app = "https://app.example.com/main.js";
    let cases: [(&str, Exception, &str); 14] = [
        (
            "ResizeObserver",
            exception("Error", "ResizeObserver loop limit exceeded", &[app]),
            "ResizeObserver",
        ),
        (
            "ResizeObserver2",
            exception(
                "Error",
                "ResizeObserver loop completed with undelivered notifications.",
                &[],
            ),
            "ResizeObserver",
        ),
        (
            "script error.",
            exception("Error", "Script error.", &[]),
            "Script error",
        ),
        (
            "script error",
            exception("", "Script error", &[]),
            "Script error",
        ),
        (
            "chrome ext last",
            exception("Error", "x", &[app, "chrome-extension://abc/content.js"]),
            "browser extension",
        ),
        (
            "moz ext",
            exception("Error", "x", &["moz-extension://abc/a.js"]),
            "browser extension",
        ),
        (
            "safari ext",
            exception("Error", "x", &["safari-extension://abc/a.js"]),
            "browser extension",
        ),
        (
            "safari web ext",
            exception("Error", "x", &["safari-web-extension://abc/a.js"]),
            "browser extension",
        ),
        (
            "failed to fetch",
            exception("TypeError", "Failed to fetch", &[app]),
            "network failure",
        ),
        (
            "load failed",
            exception("TypeError", "Load failed", &[app]),
            "network failure",
        ),
        (
            "firefox network",
            exception(
                "TypeError",
                "NetworkError when attempting to fetch resource.",
                &[],
            ),
            "network failure",
        ),
        (
            "safari offline",
            exception(
                "TypeError",
                "The Internet connection appears to be offline.",
                &[],
            ),
            "network failure",
        ),
        (
            "non-error rejection",
            exception(
                "UnhandledRejection",
                "Non-Error promise rejection captured with value: x",
                &[],
            ),
            "non-Error value",
        ),
        (
            "object captured",
            exception("Error", "Object captured as exception with keys: a, b", &[]),
            "non-Error value",
        ),
    ];
    for (name, e, rule) in &cases {
        for level in ExceptionLevel::ALL {
            for handled in [true, false] {
                let s = suggest(&input(level, handled, e));
                assert_eq!(s.priority, Priority::Low, "{name} {level:?} {handled}");
                assert!(
                    s.reason.starts_with("Browser noise ("),
                    "{name}: {}",
                    s.reason
                );
                assert!(s.reason.contains(rule), "{name}: {}", s.reason);
            }
        }
    }
}

#[test]
fn near_misses_are_not_noise() {
    let app = "https://app.example.com/main.js";
    let cases = [
        exception("Error", "Failed to fetch", &[app]),
        exception("TypeError", "Failed to fetch user 7", &[app]),
        exception("Error", "Script error in checkout", &[]),
        exception("Error", "x", &["chrome-extension://abc/a.js", app]),
        exception("Error", "the ResizeObserver loop", &[]),
    ];
    for e in &cases {
        let s = suggest(&input(ExceptionLevel::Error, false, e));
        assert_eq!(s.priority, Priority::Urgent, "{:?}", e.message());
    }
}

#[test]
fn handled_only_when_the_outermost_exception_says_true() {
    let base = common::fixture("web-handled");
    let mut json: serde_json::Value = serde_json::from_slice(&base).unwrap();
    for (value, handled) in [
        (json!(true), true),
        (json!(false), false),
        (json!("true"), false),
        (json!(null), false),
        (json!(1), false),
    ] {
        json["event"]["properties"]["$exception_list"][0]["mechanism"]["handled"] = value.clone();
        let o = common::occurrence_of_json(json.clone());
        assert_eq!(o.handled, handled, "mechanism.handled = {value}");
    }
    json["event"]["properties"]["$exception_list"][0]["mechanism"]
        .as_object_mut()
        .unwrap()
        .remove("handled");
    assert!(
        !common::occurrence_of_json(json.clone()).handled,
        "no handled flag means unhandled"
    );
    let mut legacy = json!({
        "event": {"event": "$exception", "properties": {"$exception_type": "Error", "$exception_message": "m", "$exception_handled": true}},
        "project": {"id": 1}
    });
    assert!(common::occurrence_of_json(legacy.clone()).handled);
    legacy["event"]["properties"]["$exception_handled"] = json!(false);
    assert!(!common::occurrence_of_json(legacy).handled);
}
