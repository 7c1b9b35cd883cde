//! Suggested priority (DESIGN.md §4 "Priority"): the level sets the base, an unhandled exception
//! raises it one step, and browser noise is low whatever else is true. The noise rules are a table
//! so the code reads like the contract.

use crate::exception::Exception;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// One step up; urgent stays urgent.
    pub fn raised(self) -> Self {
        match self {
            Self::Low => Self::Medium,
            Self::Medium => Self::High,
            Self::High | Self::Urgent => Self::Urgent,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `$exception_level`. Missing or unknown levels count as `error`, as PostHog shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionLevel {
    Fatal,
    Error,
    Warning,
    Info,
    Log,
    Debug,
}

impl ExceptionLevel {
    pub const ALL: [ExceptionLevel; 6] = [
        Self::Fatal,
        Self::Error,
        Self::Warning,
        Self::Info,
        Self::Log,
        Self::Debug,
    ];

    pub fn parse(raw: Option<&str>) -> Self {
        let raw = raw.map(|s| s.trim().to_ascii_lowercase());
        Self::ALL
            .into_iter()
            .find(|l| Some(l.as_str()) == raw.as_deref())
            .unwrap_or(Self::Error)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fatal => "fatal",
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Log => "log",
            Self::Debug => "debug",
        }
    }

    pub fn base_priority(self) -> Priority {
        match self {
            Self::Fatal => Priority::Urgent,
            Self::Error => Priority::High,
            Self::Warning => Priority::Medium,
            Self::Info | Self::Log | Self::Debug => Priority::Low,
        }
    }
}

/// What the priority rules look at, already extracted from the event.
#[derive(Debug, Clone, Copy)]
pub struct PriorityInput<'a> {
    pub level: ExceptionLevel,
    pub handled: bool,
    /// The outermost exception (`$exception_list[0]`), if the event has a list.
    pub outermost: Option<&'a Exception>,
    /// Type and message of the outermost exception (also for legacy events without a list).
    pub kind: Option<&'a str>,
    pub message: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub priority: Priority,
    pub reason: String,
}

/// A browser-noise rule: a name for `priority_reason` and a test on the outermost exception.
pub struct NoiseRule {
    pub name: &'static str,
    pub matches: fn(&PriorityInput) -> bool,
}

const EXTENSION_SCHEMES: [&str; 4] = [
    "chrome-extension://",
    "moz-extension://",
    "safari-extension:",
    "safari-web-extension:",
];

const OFFLINE_FETCH_MESSAGES: [&str; 4] = [
    "Failed to fetch",
    "Load failed",
    "NetworkError when attempting to fetch resource.",
    "The Internet connection appears to be offline.",
];

fn message<'a>(i: &PriorityInput<'a>) -> &'a str {
    i.message.unwrap_or("")
}

fn from_extension(file: Option<&str>) -> bool {
    file.is_some_and(|f| EXTENSION_SCHEMES.iter().any(|s| f.starts_with(s)))
}

/// The browser-noise table of DESIGN.md §4, judged on the outermost exception.
pub const NOISE_RULES: &[NoiseRule] = &[
    NoiseRule {
        name: "a ResizeObserver loop warning",
        matches: |i| message(i).starts_with("ResizeObserver loop"),
    },
    NoiseRule {
        name: "a cross-origin \"Script error\" without details",
        matches: |i| matches!(message(i), "Script error." | "Script error"),
    },
    NoiseRule {
        name: "thrown from a browser extension",
        matches: |i| {
            let frames = i.outermost.map(Exception::frames).unwrap_or(&[]);
            let last = frames.last().is_some_and(|f| from_extension(f.file()));
            let all = !frames.is_empty() && frames.iter().all(|f| from_extension(f.file()));
            last || all
        },
    },
    NoiseRule {
        name: "a network failure of the user's connection",
        matches: |i| i.kind == Some("TypeError") && OFFLINE_FETCH_MESSAGES.contains(&message(i)),
    },
    NoiseRule {
        name: "a non-Error value thrown or rejected",
        matches: |i| {
            let m = message(i);
            m.starts_with("Non-Error promise rejection captured")
                || m.starts_with("Object captured as exception with keys")
        },
    },
];

pub fn suggest(input: &PriorityInput) -> Suggestion {
    if let Some(rule) = NOISE_RULES.iter().find(|r| (r.matches)(input)) {
        return Suggestion {
            priority: Priority::Low,
            reason: format!("Browser noise ({}): low whatever its level.", rule.name),
        };
    }
    let base = input.level.base_priority();
    let level = input.level.as_str();
    if input.handled {
        Suggestion {
            priority: base,
            reason: format!("Level {level}, handled by the application: {base}."),
        }
    } else {
        let raised = base.raised();
        let reason = if raised == base {
            format!("Level {level}, not handled by the application: {base} (already the highest).")
        } else {
            format!("Level {level} suggests {base}; not handled by the application, so one step up: {raised}.")
        };
        Suggestion {
            priority: raised,
            reason,
        }
    }
}
