//! A PostHog webhook delivery: `{event, person, project, source, groups}` as our destination's body
//! template sends it (DESIGN.md §5, posthog-api.md §10).
//!
//! Only the fields we use are read; unknown fields are skipped without being materialised, which keeps
//! parsing close to the cost of a bare `serde_json` pass. Every field is optional except the event name.

use crate::exception::Exception;
use crate::ids::EnvironmentId;
use crate::lenient;
use serde::Deserialize;

/// Why a body is not a delivery we can read. The message names the field, so PostHog's destination
/// log tells the operator what is wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}

#[derive(Debug, Deserialize)]
pub struct Delivery {
    pub event: Event,
    #[serde(default)]
    pub person: Option<Person>,
    #[serde(default)]
    pub project: Option<Project>,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    #[serde(default, deserialize_with = "lenient::string")]
    pub uuid: Option<String>,
    /// The event name, the one field a delivery must have.
    pub event: String,
    #[serde(default, deserialize_with = "lenient::string")]
    pub distinct_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub timestamp: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: Properties,
}

#[derive(Debug, Default, Deserialize)]
pub struct Properties {
    #[serde(rename = "$exception_list", default)]
    pub exception_list: Option<Vec<Exception>>,
    #[serde(
        rename = "$exception_level",
        default,
        deserialize_with = "lenient::string"
    )]
    pub level: Option<String>,
    #[serde(
        rename = "$exception_fingerprint",
        default,
        deserialize_with = "lenient::string"
    )]
    pub fingerprint: Option<String>,
    #[serde(
        rename = "$exception_issue_id",
        default,
        deserialize_with = "lenient::string"
    )]
    pub issue_id: Option<String>,
    #[serde(
        rename = "$exception_handled",
        default,
        deserialize_with = "lenient::boolean"
    )]
    pub handled: Option<bool>,
    /// Legacy events (no `$exception_list`) and PostHog's server-side summaries.
    #[serde(
        rename = "$exception_type",
        default,
        deserialize_with = "lenient::string"
    )]
    pub legacy_type: Option<String>,
    #[serde(
        rename = "$exception_message",
        default,
        deserialize_with = "lenient::string"
    )]
    pub legacy_message: Option<String>,
    #[serde(
        rename = "$exception_types",
        default,
        deserialize_with = "lenient::first_string"
    )]
    pub first_type: Option<String>,
    #[serde(
        rename = "$exception_values",
        default,
        deserialize_with = "lenient::first_string"
    )]
    pub first_value: Option<String>,
    /// The issue status on `$error_tracking_issue_*` events (humanised: "Resolved", "Pending Release").
    #[serde(rename = "status", default, deserialize_with = "lenient::string")]
    pub issue_status: Option<String>,
    #[serde(rename = "$session_id", default, deserialize_with = "lenient::string")]
    pub session_id: Option<String>,
    #[serde(
        rename = "$recording_status",
        default,
        deserialize_with = "lenient::string"
    )]
    pub recording_status: Option<String>,
    #[serde(rename = "$current_url", default, deserialize_with = "lenient::string")]
    pub current_url: Option<String>,
    #[serde(rename = "$browser", default, deserialize_with = "lenient::string")]
    pub browser: Option<String>,
    #[serde(
        rename = "$browser_version",
        default,
        deserialize_with = "lenient::string"
    )]
    pub browser_version: Option<String>,
    #[serde(rename = "$os", default, deserialize_with = "lenient::string")]
    pub os: Option<String>,
    #[serde(rename = "$os_version", default, deserialize_with = "lenient::string")]
    pub os_version: Option<String>,
    #[serde(rename = "$device_type", default, deserialize_with = "lenient::string")]
    pub device_type: Option<String>,
    #[serde(rename = "$lib", default, deserialize_with = "lenient::string")]
    pub lib: Option<String>,
    #[serde(rename = "$lib_version", default, deserialize_with = "lenient::string")]
    pub lib_version: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Person {
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Project {
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<String>,
}

/// What a delivery asks of us, by event name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Exception,
    /// `$error_tracking_issue_{created,reopened,resolved,...}` from the internal destination.
    IssueLifecycle,
    Other,
}

impl Delivery {
    pub fn kind(&self) -> EventKind {
        match self.event.event.as_str() {
            "$exception" => EventKind::Exception,
            name if name.starts_with("$error_tracking_issue_") => EventKind::IssueLifecycle,
            _ => EventKind::Other,
        }
    }

    /// The PostHog project (our "environment") that sent the event.
    pub fn environment_id(&self) -> Result<EnvironmentId, ParseError> {
        let raw = self
            .project
            .as_ref()
            .and_then(|p| p.id.as_deref())
            .ok_or_else(|| ParseError::Shape("project.id is missing: the delivery does not say which PostHog project sent it".into()))?;
        EnvironmentId::parse(raw).map_err(|e| ParseError::Shape(format!("project.id: {e}")))
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Delivery {
    /// For an `$error_tracking_issue_*` event: the PostHog issue it is about and the status word it
    /// carries (from `status`, or implied by the event name).
    pub fn issue_lifecycle(&self) -> Option<(&str, &str)> {
        let name = self.event.event.strip_prefix("$error_tracking_issue_")?;
        // PostHog sends these with the issue id as distinct_id.
        let issue = self
            .event
            .distinct_id
            .as_deref()
            .or(self.event.properties.issue_id.as_deref())
            .filter(|s| !s.trim().is_empty())?;
        let word = self
            .event
            .properties
            .issue_status
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .or(match name {
                "resolved" => Some("resolved"),
                "reopened" => Some("active"),
                "suppressed" => Some("suppressed"),
                _ => None,
            })?;
        Some((issue, word))
    }
}

/// Parses a delivery body. Errors name the JSON path of the offending field.
pub fn parse(body: &[u8]) -> Result<Delivery, ParseError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
    {
        return Err(ParseError::Shape(
            "not a PostHog event delivery: the body must be a JSON object".into(),
        ));
    }
    // The fast path: a plain parse. Only a body that fails is parsed again to name the bad field.
    if let Ok(delivery) = serde_json::from_slice::<Delivery>(body) {
        return Ok(delivery);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let delivery: Delivery = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ParseError::Json(inner.to_string())
        } else if path == "." {
            ParseError::Shape(format!(
                "not a PostHog event delivery: {}",
                strip_position(&inner)
            ))
        } else {
            ParseError::Shape(format!("{path}: {}", strip_position(&inner)))
        }
    })?;
    de.end().map_err(|e| ParseError::Json(e.to_string()))?;
    Ok(delivery)
}

fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
