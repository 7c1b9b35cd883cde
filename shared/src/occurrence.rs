//! One `$exception` event, read into what a draft needs: identity, title, priority, links, the
//! context of the user it happened to, and the evidence a developer starts from.

use crate::delivery::{Delivery, ParseError, Properties};
use crate::exception::Exception;
use crate::fingerprint::Fingerprint;
use crate::ids::EnvironmentId;
use crate::limits::{
    cut_to_bytes, cut_with_marker, CONTEXT_BYTES, EXCEPTIONS_PER_EVENT, FRAMES_PER_EXCEPTION,
    MESSAGE_BYTES,
};
use crate::links::{links, LinkInput, Links};
use crate::priority::{suggest, ExceptionLevel, PriorityInput, Suggestion};
use crate::title::title;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct Occurrence {
    pub environment_id: EnvironmentId,
    pub environment_name: Option<String>,
    pub event_uuid: Option<String>,
    pub distinct_id: Option<String>,
    /// The event's own time; the time we received it when the event has none we can read.
    pub timestamp: OffsetDateTime,
    pub fingerprint: Fingerprint,
    pub posthog_issue_id: Option<String>,
    pub title: String,
    pub level: ExceptionLevel,
    pub handled: bool,
    pub suggestion: Suggestion,
    pub links: Links,
    pub context: Context,
    pub evidence: Evidence,
}

/// Where and to whom it happened; the latest by event time is kept on the draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub user: Option<String>,
    pub page: Option<String>,
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<String>,
}

/// What a developer starts from, stored once per draft.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub exceptions: Vec<EvidenceException>,
    pub sdk: Option<String>,
    pub event_uuid: Option<String>,
    pub timestamp: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceException {
    pub kind: Option<String>,
    pub message: Option<String>,
    pub module: Option<String>,
    pub mechanism: Option<String>,
    pub handled: Option<bool>,
    pub frames: Vec<EvidenceFrame>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<String>,
    pub column: Option<String>,
    pub in_app: bool,
}

impl Occurrence {
    /// Reads an `$exception` delivery. `received_at` stands in for a missing or unreadable timestamp.
    pub fn from_delivery(
        delivery: &Delivery,
        received_at: OffsetDateTime,
    ) -> Result<Self, ParseError> {
        let environment_id = delivery.environment_id()?;
        let props = &delivery.event.properties;
        let list: &[Exception] = props.exception_list.as_deref().unwrap_or(&[]);
        let outermost = list.first();

        let kind = outermost
            .and_then(Exception::kind)
            .or_else(|| non_empty(&props.legacy_type))
            .or_else(|| non_empty(&props.first_type));
        let message = outermost
            .and_then(Exception::message)
            .or_else(|| non_empty(&props.legacy_message))
            .or_else(|| non_empty(&props.first_value));

        let fingerprint = match non_empty(&props.fingerprint) {
            Some(raw) => Fingerprint::parse(raw).map_err(|e| {
                ParseError::Shape(format!("event.properties.$exception_fingerprint: {e}"))
            })?,
            None if list.is_empty() => Fingerprint::compute(&[Exception {
                kind: kind.map(str::to_owned),
                value: message.map(str::to_owned),
                ..Exception::default()
            }]),
            None => Fingerprint::compute(list),
        };

        let level = ExceptionLevel::parse(props.level.as_deref());
        let handled = match outermost {
            Some(e) => e.handled() == Some(true),
            None => props.handled == Some(true),
        };
        let suggestion = suggest(&PriorityInput {
            level,
            handled,
            outermost,
            kind,
            message,
        });

        let timestamp = delivery
            .event
            .timestamp
            .as_deref()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .map(|t| t.to_offset(time::UtcOffset::UTC))
            .unwrap_or(received_at);

        let project = delivery.project.as_ref();
        let person = delivery.person.as_ref();
        let links = links(&LinkInput {
            project_url: project.and_then(|p| p.url.as_deref()),
            issue_id: props.issue_id.as_deref(),
            session_id: props.session_id.as_deref(),
            recording_status: props.recording_status.as_deref(),
            current_url: props.current_url.as_deref(),
            person_url: person.and_then(|p| p.url.as_deref()),
        });
        let context = Context {
            user: person
                .and_then(|p| non_empty(&p.name))
                .or_else(|| non_empty(&delivery.event.distinct_id))
                .map(context_value),
            page: links.page.clone(),
            browser: non_empty(&props.browser).map(context_value),
            browser_version: non_empty(&props.browser_version).map(context_value),
            os: non_empty(&props.os).map(context_value),
            os_version: non_empty(&props.os_version).map(context_value),
            device_type: non_empty(&props.device_type).map(context_value),
        };

        let exceptions = if list.is_empty() {
            vec![EvidenceException {
                kind: kind.map(str::to_owned),
                message: message.map(|m| cut_with_marker(m, MESSAGE_BYTES)),
                handled: props.handled,
                ..EvidenceException::default()
            }]
        } else {
            list.iter()
                .take(EXCEPTIONS_PER_EVENT)
                .map(evidence_exception)
                .collect()
        };
        let evidence = Evidence {
            exceptions,
            sdk: sdk(props),
            event_uuid: non_empty(&delivery.event.uuid).map(context_value),
            timestamp: rfc3339(timestamp),
            fingerprint: fingerprint.to_string(),
        };

        Ok(Self {
            environment_id,
            environment_name: project.and_then(|p| non_empty(&p.name)).map(context_value),
            event_uuid: non_empty(&delivery.event.uuid).map(str::to_owned),
            distinct_id: non_empty(&delivery.event.distinct_id).map(str::to_owned),
            timestamp,
            fingerprint,
            posthog_issue_id: non_empty(&props.issue_id).map(str::to_owned),
            title: title(kind, message),
            level,
            handled,
            suggestion,
            links,
            context,
            evidence,
        })
    }
}

impl Occurrence {
    /// The PRD input of a draft made of this occurrence alone.
    pub fn first_prd_input(&self) -> crate::prd::PrdInput<'_> {
        crate::prd::PrdInput {
            title: &self.title,
            environment_name: self.environment_name.as_deref(),
            level: self.level,
            handled: self.handled,
            priority: self.suggestion.priority,
            priority_reason: &self.suggestion.reason,
            occurrences: 1,
            affected_users: 1,
            first_seen: self.timestamp,
            last_seen: self.timestamp,
            context: &self.context,
            evidence: &self.evidence,
            posthog_issue_url: self.links.posthog_issue.as_deref(),
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn context_value(s: &str) -> String {
    cut_to_bytes(s, CONTEXT_BYTES).to_owned()
}

fn sdk(props: &Properties) -> Option<String> {
    match (non_empty(&props.lib), non_empty(&props.lib_version)) {
        (Some(lib), Some(v)) => Some(context_value(&format!("{lib} {v}"))),
        (Some(lib), None) => Some(context_value(lib)),
        _ => None,
    }
}

fn evidence_exception(e: &Exception) -> EvidenceException {
    let frames = e.frames();
    let keep_from = frames.len().saturating_sub(FRAMES_PER_EXCEPTION);
    EvidenceException {
        kind: e.kind().map(context_value),
        message: e.message().map(|m| cut_with_marker(m, MESSAGE_BYTES)),
        module: non_empty(&e.module).map(context_value),
        mechanism: e.mechanism_kind().map(context_value),
        handled: e.handled(),
        frames: frames[keep_from..]
            .iter()
            .map(|f| EvidenceFrame {
                function: f.function().map(context_value),
                file: f.file().map(context_value),
                line: f.line().map(context_value),
                column: f.column().map(context_value),
                in_app: f.is_in_app(),
            })
            .collect(),
    }
}

/// RFC 3339 in UTC with millisecond precision, the form the API answers with.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
