//! Any bytes through the whole domain path a delivery takes: parse, read the occurrence, compute our
//! own fingerprint, render the PRD. Nothing may panic.
#![no_main]

use flowback::{delivery, fingerprint::Fingerprint, occurrence::Occurrence, prd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = delivery::parse(data) else { return };
    let _ = Fingerprint::compute(d.event.properties.exception_list.as_deref().unwrap_or(&[]));
    let Ok(o) = Occurrence::from_delivery(&d, time::OffsetDateTime::UNIX_EPOCH) else { return };
    let md = prd::render(&prd::PrdInput {
        title: &o.title,
        environment_name: o.environment_name.as_deref(),
        level: o.level,
        handled: o.handled,
        priority: o.suggestion.priority,
        priority_reason: &o.suggestion.reason,
        occurrences: 1,
        affected_users: 1,
        first_seen: o.timestamp,
        last_seen: o.timestamp,
        context: &o.context,
        evidence: &o.evidence,
        posthog_issue_url: o.links.posthog_issue.as_deref(),
    });
    assert!(md.len() <= flowback::limits::PRD_BYTES);
    assert!(o.title.chars().count() <= flowback::limits::TITLE_CHARS);
});
