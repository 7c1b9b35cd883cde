//! A draft as the review API shows it (DESIGN.md §3), and the identities it is stored under.

use crate::fingerprint::Fingerprint;
use crate::ids::{EnvironmentId, WorkspaceId};
use crate::limits::cut_with_marker;
use crate::links::Links;
use crate::occurrence::{Context, Occurrence};
use crate::priority::Priority;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One draft per (workspace, environment, fingerprint): the id is derived from them, so every
/// instance agrees on it without a lookup, and reconnecting folds the same errors into the same drafts.
pub fn draft_id(ws: &WorkspaceId, env: EnvironmentId, fingerprint: &Fingerprint) -> String {
    let mut h = Sha256::new();
    for part in [ws.as_str(), &env.to_string(), fingerprint.as_str()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("d_{}", &hex::encode(h.finalize())[..32])
}

/// A short, fixed-size stand-in for a `distinct_id` (which can be an email) in item keys.
pub fn user_key(distinct_id: &str) -> String {
    hex::encode(&Sha256::digest(distinct_id.as_bytes())[..16])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DraftStatus {
    Draft,
    Approved,
    Dismissed,
}

impl DraftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Approved => "approved",
            Self::Dismissed => "dismissed",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Draft, Self::Approved, Self::Dismissed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// The context of the latest occurrence, kept on the small item every delivery writes: values are
/// capped so that item stays well under 1 KB whatever the event carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestContext {
    #[serde(flatten)]
    pub context: Context,
    pub session_replay: Option<String>,
    pub person: Option<String>,
}

const CTX_URL_BYTES: usize = 300;
const CTX_LINK_BYTES: usize = 200;
const CTX_VALUE_BYTES: usize = 60;

impl LatestContext {
    pub fn of(o: &Occurrence) -> Self {
        let short = |v: &Option<String>, max: usize| v.as_deref().map(|s| cut_with_marker(s, max));
        // A cut link would point somewhere else: links that do not fit are dropped, not cut.
        let link = |v: &Option<String>| v.clone().filter(|s| s.len() <= CTX_LINK_BYTES);
        let c = &o.context;
        Self {
            context: Context {
                user: short(&c.user, 2 * CTX_VALUE_BYTES),
                page: c.page.clone().filter(|p| p.len() <= CTX_URL_BYTES),
                browser: short(&c.browser, CTX_VALUE_BYTES),
                browser_version: short(&c.browser_version, CTX_VALUE_BYTES),
                os: short(&c.os, CTX_VALUE_BYTES),
                os_version: short(&c.os_version, CTX_VALUE_BYTES),
                device_type: short(&c.device_type, CTX_VALUE_BYTES),
            },
            session_replay: link(&o.links.session_replay),
            person: link(&o.links.person),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentRef {
    pub id: i64,
    pub name: Option<String>,
}

/// A draft as JSON (DESIGN.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftView {
    pub id: String,
    pub status: DraftStatus,
    pub channel_id: String,
    pub environment: EnvironmentRef,
    pub fingerprint: String,
    pub posthog_issue_id: Option<String>,
    pub title: String,
    pub priority: Priority,
    pub priority_reason: String,
    pub prd: String,
    pub links: Links,
    pub occurrences: u64,
    pub affected_users: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub issue_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_ids_are_stable_and_scoped() {
        let ws = WorkspaceId::parse("ws_a").unwrap();
        let env = EnvironmentId::parse("2").unwrap();
        let fp = Fingerprint::parse("abc").unwrap();
        let id = draft_id(&ws, env, &fp);
        assert_eq!(id, draft_id(&ws, env, &fp));
        assert_eq!(id.len(), 34);
        assert_ne!(id, draft_id(&WorkspaceId::parse("ws_b").unwrap(), env, &fp));
        assert_ne!(id, draft_id(&ws, EnvironmentId::parse("3").unwrap(), &fp));
    }
}
