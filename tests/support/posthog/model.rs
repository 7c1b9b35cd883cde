//! What the stand-in shows tests: PostHog's records and the outcomes of its flows.

use std::str::FromStr;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use url::Url;

/// A hog function as PostHog stored it, secrets in clear and soft-deleted ones included.
#[derive(Clone, Debug)]
pub struct HogFunction {
    pub id: String,
    pub project: i64,
    /// `type`: destination or internal_destination.
    pub kind: String,
    pub name: String,
    pub description: String,
    pub template_id: Option<String>,
    pub hog: String,
    pub inputs_schema: Vec<Value>,
    /// Validated items, `{"value": …, "order": n}` (plus `templating` when sent).
    pub inputs: Map<String, Value>,
    pub filters: Value,
    pub masking: Value,
    pub enabled: bool,
    pub deleted: bool,
    /// `status.state`: 1 healthy, 2 degraded, 3 disabled, 11/12 forcefully degraded/disabled.
    pub state: i64,
    pub icon_url: Option<String>,
    /// The OAuth client whose token created it.
    pub client_id: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl HogFunction {
    /// The value of an input, unwrapped from its `{"value": …}`.
    pub fn input(&self, key: &str) -> Option<&Value> {
        self.inputs.get(key)?.get("value")
    }

    /// The event names of `filters.events`.
    pub fn event_filters(&self) -> Vec<String> {
        self.filters["events"]
            .as_array()
            .map(|events| {
                events
                    .iter()
                    .filter_map(|e| e["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether PostHog would invoke it for an event of this name. Property filters are not
    /// evaluated; a function without event or action filters receives every event.
    pub fn routes(&self, event_name: &str) -> Result<(), String> {
        if self.deleted {
            return Err("the function is deleted".to_owned());
        }
        if !self.enabled {
            return Err("the function is disabled".to_owned());
        }
        if matches!(self.state, 3 | 12) {
            return Err(format!("PostHog disabled it (state {})", self.state));
        }
        let events = self.event_filters();
        let has_actions = self.filters["actions"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if (!events.is_empty() || has_actions) && !events.iter().any(|e| e == event_name) {
            return Err(format!("its filters do not match {event_name:?}"));
        }
        Ok(())
    }
}

/// PostHog's error tracking issue statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueStatus {
    Active,
    Resolved,
    PendingRelease,
    Suppressed,
    Archived,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Active => "active",
            IssueStatus::Resolved => "resolved",
            IssueStatus::PendingRelease => "pending_release",
            IssueStatus::Suppressed => "suppressed",
            IssueStatus::Archived => "archived",
        }
    }
}

impl FromStr for IssueStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "active" => IssueStatus::Active,
            "resolved" => IssueStatus::Resolved,
            "pending_release" => IssueStatus::PendingRelease,
            "suppressed" => IssueStatus::Suppressed,
            "archived" => IssueStatus::Archived,
            other => return Err(format!("unknown issue status {other:?}")),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Issue {
    pub project: i64,
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: IssueStatus,
    pub first_seen: OffsetDateTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// `POST /oauth/revoke/`.
    Endpoint,
    /// A refresh replaced it (and the access token issued with it).
    Rotated,
    /// A rotated refresh token came back after the grace period: the whole family died.
    FamilyReuse,
    /// The user removed the application in PostHog's settings.
    ApplicationRevoked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedToken {
    pub token: String,
    pub kind: TokenKind,
    pub reason: RevocationReason,
}

/// One request as the stand-in received it, with the status it answered.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

impl LoggedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// A parameter from the query string, a form body or a JSON body, in that order.
    pub fn param(&self, name: &str) -> Option<String> {
        let from_form = |s: &str| {
            url::form_urlencoded::parse(s.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        self.query
            .as_deref()
            .and_then(from_form)
            .or_else(|| from_form(&self.body))
            .or_else(|| {
                self.json()?
                    .get(name)
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            })
    }
}

/// A token response, as [`PostHogStandIn::issue_tokens`] hands it out.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub scope: String,
    pub expires_in: i64,
    pub scoped_teams: Vec<i64>,
    pub scoped_organizations: Vec<String>,
    /// The whole JSON body, for fields not modelled above.
    pub body: Value,
}

/// What `GET /oauth/authorize/` answered: a redirect (to the client with `code` or `error`) or,
/// for an untrusted client or redirect URI, a JSON error.
#[derive(Clone, Debug)]
pub struct AuthorizeOutcome {
    pub status: u16,
    pub location: Option<Url>,
    pub body: Option<Value>,
}

impl AuthorizeOutcome {
    pub fn redirect_param(&self, name: &str) -> Option<String> {
        self.location
            .as_ref()?
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn code(&self) -> Option<String> {
        self.redirect_param("code")
    }

    pub fn state(&self) -> Option<String> {
        self.redirect_param("state")
    }

    /// `error` from the redirect, or from the JSON body when PostHog did not redirect.
    pub fn error(&self) -> Option<String> {
        self.redirect_param("error").or_else(|| {
            self.body
                .as_ref()?
                .get("error")?
                .as_str()
                .map(str::to_owned)
        })
    }
}
