//! The PRD of a draft (DESIGN.md §4): Markdown with six sections in a fixed order. It is rendered
//! when a draft is read, from the evidence stored once and the counters kept up to date, so repeats
//! never rewrite it. Every value from the event goes through [`markdown::escape`].

use crate::limits::PRD_BYTES;
use crate::markdown::escape;
use crate::occurrence::{rfc3339, Context, Evidence, EvidenceException};
use crate::priority::{ExceptionLevel, Priority};
use std::fmt::Write;
use time::OffsetDateTime;

pub const SECTIONS: [&str; 6] = [
    "Summary",
    "User impact",
    "Severity",
    "Business risk",
    "Acceptance criteria",
    "Technical evidence",
];

/// Everything a PRD says, as stored on a draft.
pub struct PrdInput<'a> {
    pub title: &'a str,
    pub environment_name: Option<&'a str>,
    pub level: ExceptionLevel,
    pub handled: bool,
    pub priority: Priority,
    pub priority_reason: &'a str,
    pub occurrences: u64,
    pub affected_users: u64,
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    pub context: &'a Context,
    pub evidence: &'a Evidence,
    pub posthog_issue_url: Option<&'a str>,
}

const TOP_FRAMES: usize = 5;

pub fn render(p: &PrdInput) -> String {
    let mut out = String::with_capacity(2048);
    let handled_word = if p.handled { "handled" } else { "unhandled" };
    let users = plural(p.affected_users, "user", "users");
    let times = plural(p.occurrences, "time", "times");

    // Writing into a String cannot fail.
    let _ = writeln!(out, "## {}\n", SECTIONS[0]);
    let _ = write!(
        out,
        "{} ({handled_word}, level {}) happened {} {times} to {} {users}",
        escape(p.title),
        p.level.as_str(),
        p.occurrences,
        p.affected_users,
    );
    if let Some(env) = p.environment_name {
        let _ = write!(out, " in {}", escape(env));
    }
    let _ = writeln!(
        out,
        ", first on {} and most recently on {}.\n",
        rfc3339(p.first_seen),
        rfc3339(p.last_seen)
    );

    let _ = writeln!(out, "## {}\n", SECTIONS[1]);
    let c = p.context;
    item(
        &mut out,
        "Affected user (latest)",
        c.user.as_deref().map(escape),
    );
    item(
        &mut out,
        "Page",
        c.page.as_deref().map(|u| format!("<{u}>")),
    );
    item(&mut out, "Browser", joined(&c.browser, &c.browser_version));
    item(&mut out, "OS", joined(&c.os, &c.os_version));
    item(&mut out, "Device", c.device_type.as_deref().map(escape));
    out.push('\n');

    let _ = writeln!(out, "## {}\n", SECTIONS[2]);
    let _ = writeln!(out, "- Level: {}", p.level.as_str());
    let _ = writeln!(
        out,
        "- Handled: {}",
        if p.handled {
            "yes, the application caught it"
        } else {
            "no, nothing caught it"
        }
    );
    let _ = writeln!(out, "- Occurrences: {}", p.occurrences);
    let _ = writeln!(out, "- Affected users: {}", p.affected_users);
    let _ = writeln!(
        out,
        "- Suggested priority: {} ({})\n",
        p.priority,
        escape(p.priority_reason)
    );

    let _ = writeln!(out, "## {}\n", SECTIONS[3]);
    let _ = writeln!(out, "{}\n", business_risk(p));

    let _ = writeln!(out, "## {}\n", SECTIONS[4]);
    for criterion in acceptance_criteria(p) {
        let _ = writeln!(out, "- [ ] {criterion}");
    }
    out.push('\n');

    let _ = writeln!(out, "## {}\n", SECTIONS[5]);
    technical_evidence(&mut out, p);

    cut(out)
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

fn item(out: &mut String, label: &str, value: Option<String>) {
    let _ = writeln!(
        out,
        "- {label}: {}",
        value.as_deref().unwrap_or("not reported")
    );
}

fn joined(name: &Option<String>, version: &Option<String>) -> Option<String> {
    match (name, version) {
        (Some(n), Some(v)) => Some(format!("{} {}", escape(n), escape(v))),
        (Some(n), None) => Some(escape(n)),
        (None, Some(v)) => Some(format!("version {}", escape(v))),
        (None, None) => None,
    }
}

fn business_risk(p: &PrdInput) -> String {
    let reach = match p.affected_users {
        0 | 1 => "So far it reached a single user".to_owned(),
        n => format!("It reached {n} distinct users"),
    };
    let impact = match (p.priority, p.handled) {
        (Priority::Urgent, _) => {
            "Users are likely blocked: the flow they were in failed with nothing to recover it, which costs conversions and trust until it is fixed."
        }
        (Priority::High, false) => {
            "The failure escaped the application's error handling, so the user saw a broken or stalled screen."
        }
        (Priority::High, true) => {
            "The application caught the failure, but the action the user attempted did not complete."
        }
        (Priority::Medium, _) => {
            "The application degraded rather than failed; the risk is a slower or partial experience and noise that hides real errors."
        }
        (Priority::Low, _) => {
            "Low business risk: this is noise or informational, but keeping it out of the error stream keeps real regressions visible."
        }
    };
    format!("{reach}. {impact}")
}

fn acceptance_criteria(p: &PrdInput) -> Vec<String> {
    let mut criteria = Vec::new();
    let outermost = p.evidence.exceptions.first();
    let what = outermost
        .map(|e| escape(&exception_line(e)))
        .unwrap_or_else(|| escape(p.title));
    let frame =
        outermost.and_then(|e| e.frames.iter().rev().find(|f| f.in_app).or(e.frames.last()));
    match frame {
        Some(f) => criteria.push(format!(
            "A regression test drives {} in {} into the failing case and passes without raising {what}.",
            escape(f.function.as_deref().unwrap_or("the throwing function")),
            escape(f.file.as_deref().unwrap_or("its file")),
        )),
        None => criteria.push(format!("A regression test reproduces {what} and passes after the fix.")),
    }
    if !p.handled {
        criteria.push("Where the failure can still happen, the application catches it and shows the user a recoverable state instead of an unhandled error.".into());
    }
    if let Some(page) = &p.context.page {
        let browser = joined(&p.context.browser, &p.context.browser_version)
            .map(|b| format!(" in {b}"))
            .unwrap_or_default();
        criteria.push(format!(
            "The flow on <{page}> completes{browser} without this error."
        ));
    }
    criteria.push(format!(
        "No new occurrence of fingerprint {} in PostHog for 7 days after the fix is released.",
        escape(&p.evidence.fingerprint)
    ));
    criteria
}

fn exception_line(e: &EvidenceException) -> String {
    match (&e.kind, &e.message) {
        (Some(k), Some(m)) => format!("{k}: {m}"),
        (Some(k), None) => k.clone(),
        (None, Some(m)) => format!("Error: {m}"),
        (None, None) => "Error".into(),
    }
}

fn technical_evidence(out: &mut String, p: &PrdInput) {
    let e = p.evidence;
    let _ = writeln!(out, "Exception chain, outermost first:\n");
    for (n, ex) in e.exceptions.iter().enumerate() {
        let _ = writeln!(out, "{}. {}", n + 1, escape(&exception_line(ex)));
    }
    out.push('\n');
    let _ = writeln!(out, "Top in-app frames, throwing frame first:\n");
    let frames: Vec<_> = e
        .exceptions
        .first()
        .map(|ex| {
            let in_app: Vec<_> = ex.frames.iter().rev().filter(|f| f.in_app).collect();
            if in_app.is_empty() {
                ex.frames.iter().rev().collect()
            } else {
                in_app
            }
        })
        .unwrap_or_default();
    if frames.is_empty() {
        let _ = writeln!(out, "- no stack trace was sent");
    }
    for f in frames.iter().take(TOP_FRAMES) {
        let mut location = escape(f.file.as_deref().unwrap_or("unknown file"));
        if let Some(line) = &f.line {
            location.push_str(&format!("\\:{}", escape(line)));
            if let Some(col) = &f.column {
                location.push_str(&format!("\\:{}", escape(col)));
            }
        }
        let _ = writeln!(
            out,
            "- {} at {location}",
            escape(f.function.as_deref().unwrap_or("anonymous"))
        );
    }
    out.push('\n');
    let outer = e.exceptions.first();
    let mechanism = outer.and_then(|x| x.mechanism.as_deref()).map(escape);
    let handled = match outer.and_then(|x| x.handled) {
        Some(true) => "handled",
        Some(false) => "unhandled",
        None => "handled not reported",
    };
    item(
        out,
        "Mechanism",
        mechanism.map(|m| format!("{m} ({handled})")),
    );
    item(out, "SDK", e.sdk.as_deref().map(escape));
    item(out, "Event", e.event_uuid.as_deref().map(escape));
    let _ = writeln!(out, "- Timestamp: {}", escape(&e.timestamp));
    let _ = writeln!(out, "- Fingerprint: {}", escape(&e.fingerprint));
    if let Some(url) = p.posthog_issue_url {
        let _ = writeln!(out, "- PostHog issue: <{url}>");
    }
}

/// Cuts at a line boundary so no escape sequence or link is split, and says that it did.
fn cut(mut prd: String) -> String {
    const NOTE: &str = "\n_The PRD was cut at 32 KB; the full evidence is in PostHog._\n";
    if prd.len() <= PRD_BYTES {
        return prd;
    }
    let budget = PRD_BYTES - NOTE.len();
    let head = crate::limits::cut_to_bytes(&prd, budget);
    let end = head.rfind('\n').map(|i| i + 1).unwrap_or(0);
    prd.truncate(end);
    prd.push_str(NOTE);
    prd
}
