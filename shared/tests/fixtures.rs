//! Every real SDK payload in tests/fixtures/posthog yields the title, priority and links that
//! DESIGN.md §4 implies, asserted exactly.

mod common;
use common::{fixture, occurrence};
use flowback::delivery::{self, EventKind};
use flowback::priority::{ExceptionLevel, Priority};

const PROJECT: &str = "https://us.posthog.com/project/2";

#[test]
fn posthog_js_uncaught_type_error_is_urgent_with_replay() {
    let o = occurrence(&fixture("web-uncaught_type_error"));
    assert_eq!(
        o.title,
        "TypeError: Cannot read properties of undefined (reading 'toFixed')"
    );
    assert_eq!(o.level, ExceptionLevel::Error);
    assert!(!o.handled);
    assert_eq!(o.suggestion.priority, Priority::Urgent);
    assert_eq!(
        o.suggestion.reason,
        "Level error suggests high; not handled by the application, so one step up: urgent."
    );
    assert_eq!(o.environment_id.get(), 2);
    assert_eq!(o.environment_name.as_deref(), Some("Default project"));
    assert_eq!(o.fingerprint.as_str(), "969c601ee3e92ed93d81b96dc5a5a2b9e74e1cecffe61f6a3bf20bb50a910c242674bc35340f3dca8048b47d4d066e2ec2ec974a0ad939e0ec83df3cc2302af7");
    assert_eq!(
        o.posthog_issue_id.as_deref(),
        Some("40a73b18-be60-5bce-99df-d021b2d33ae1")
    );
    assert_eq!(
        o.links.posthog_issue.as_deref(),
        Some(&*format!(
            "{PROJECT}/error_tracking/40a73b18-be60-5bce-99df-d021b2d33ae1"
        ))
    );
    assert_eq!(
        o.links.session_replay.as_deref(),
        Some(&*format!(
            "{PROJECT}/replay/01a241a8-c911-78de-b391-2b94a10e3792"
        ))
    );
    assert_eq!(
        o.links.page.as_deref(),
        Some("http://localhost:8111/app/checkout?case=type_error&utm_source=fixture#step-2")
    );
    assert_eq!(
        o.links.person.as_deref(),
        Some(&*format!(
            "{PROJECT}/person/01a241a8-c8b3-7381-8911-fe49b828bca9"
        ))
    );
    assert_eq!(o.context.browser.as_deref(), Some("Chrome"));
    assert_eq!(o.context.browser_version.as_deref(), Some("156"));
    assert_eq!(o.context.os.as_deref(), Some("Linux"));
    assert_eq!(o.context.device_type.as_deref(), Some("Desktop"));
    assert_eq!(o.evidence.sdk.as_deref(), Some("web 1.449.2"));
    assert_eq!(o.timestamp.unix_timestamp(), 1_796_397_912);
    let frames = &o.evidence.exceptions[0].frames;
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[4].function.as_deref(), Some("formatPrice"));
    assert_eq!(frames[4].line.as_deref(), Some("3"));
}

#[test]
fn posthog_js_handled_error_is_high_without_replay_when_recording_is_disabled() {
    let o = occurrence(&fixture("web-handled"));
    assert_eq!(o.title, "Error: handled");
    assert!(o.handled);
    assert_eq!(o.suggestion.priority, Priority::High);
    assert_eq!(
        o.suggestion.reason,
        "Level error, handled by the application: high."
    );
    assert_eq!(
        o.links.session_replay, None,
        "$recording_status is disabled"
    );
    assert_eq!(
        o.links.posthog_issue.as_deref(),
        Some(&*format!(
            "{PROJECT}/error_tracking/51de850b-efce-5845-96dd-fcc36f756601"
        ))
    );
    assert_eq!(
        o.links.page.as_deref(),
        Some("http://localhost:8111/app/checkout?case=handled&utm_source=fixture#step-2")
    );
}

#[test]
fn posthog_js_non_error_rejection_is_low_browser_noise() {
    let o = occurrence(&fixture("web-unhandled_rejection_string"));
    assert_eq!(
        o.title,
        "UnhandledRejection: Non-Error promise rejection captured with value: Request aborted: checkout session expired"
    );
    assert!(!o.handled);
    assert_eq!(o.suggestion.priority, Priority::Low);
    assert_eq!(
        o.suggestion.reason,
        "Browser noise (a non-Error value thrown or rejected): low whatever its level."
    );
    assert_eq!(o.links.session_replay, None);
    assert_eq!(
        o.links.posthog_issue.as_deref(),
        Some(&*format!(
            "{PROJECT}/error_tracking/fa2af2bf-39df-53b4-bafe-094e1e452cc4"
        ))
    );
}

#[test]
fn posthog_node_unhandled_rejection_is_urgent_without_page_or_replay() {
    let o = occurrence(&fixture("node-unhandled_rejection"));
    assert_eq!(o.title, "Error: User 7 not found in database");
    assert!(!o.handled);
    assert_eq!(o.suggestion.priority, Priority::Urgent);
    assert_eq!(o.links.page, None);
    assert_eq!(o.links.session_replay, None);
    assert_eq!(
        o.links.posthog_issue.as_deref(),
        Some(&*format!(
            "{PROJECT}/error_tracking/52235b45-bf8a-5833-b649-85140863b8f2"
        ))
    );
    assert_eq!(
        o.links.person.as_deref(),
        Some(&*format!(
            "{PROJECT}/person/01a241a4-7222-7877-a95c-8f8a949acf76"
        ))
    );
    assert_eq!(o.evidence.sdk.as_deref(), Some("posthog-node 5.74.0"));
    assert_eq!(
        o.evidence.exceptions[0].mechanism.as_deref(),
        Some("onunhandledrejection")
    );
}

#[test]
fn posthog_python_handled_chain_is_high_and_keeps_the_whole_chain() {
    let o = occurrence(&fixture("python-handled_chain"));
    assert_eq!(o.title, "RuntimeError: checkout failed");
    assert!(o.handled, "the outermost exception says handled: true");
    assert_eq!(o.suggestion.priority, Priority::High);
    assert_eq!(o.links.session_replay, None);
    assert_eq!(o.links.page, None);
    assert_eq!(
        o.links.person.as_deref(),
        Some(&*format!("{PROJECT}/person/py-user-1"))
    );
    assert_eq!(o.context.user.as_deref(), Some("py-user-1"));
    let kinds: Vec<_> = o
        .evidence
        .exceptions
        .iter()
        .map(|e| e.kind.as_deref().unwrap())
        .collect();
    assert_eq!(kinds, ["RuntimeError", "PaymentDeclined", "KeyError"]);
    assert_eq!(
        o.evidence.exceptions[1].mechanism.as_deref(),
        Some("chained")
    );
    assert_eq!(
        o.evidence.exceptions[1].handled, None,
        "causes carry no handled flag"
    );
    assert_eq!(o.evidence.sdk.as_deref(), Some("posthog-python 7.91.1"));
}

#[test]
fn every_fixture_is_an_exception_delivery() {
    for name in [
        "web-uncaught_type_error",
        "web-handled",
        "web-unhandled_rejection_string",
        "node-unhandled_rejection",
        "python-handled_chain",
    ] {
        let d = delivery::parse(&fixture(name)).unwrap();
        assert_eq!(d.kind(), EventKind::Exception, "{name}");
        let prd = flowback::prd::render(&common::prd_input_for(&occurrence(&fixture(name))));
        for section in flowback::prd::SECTIONS {
            assert!(
                prd.contains(&format!("## {section}\n")),
                "{name} lacks {section}"
            );
        }
    }
}
