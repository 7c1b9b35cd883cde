//! Issues: what an approved draft becomes, kept in sync with PostHog (DESIGN.md §8).

use crate::links::Links;
use crate::priority::Priority;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    Open,
    Resolved,
    Suppressed,
}

impl IssueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Resolved => "resolved",
            Self::Suppressed => "suppressed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Open, Self::Resolved, Self::Suppressed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// PostHog's status word (API form `pending_release` or the lifecycle events' humanised
    /// `Pending Release`) mapped to ours; `None` for a word PostHog does not use.
    pub fn from_posthog(word: &str) -> Option<Self> {
        let normalized = word.trim().to_ascii_lowercase().replace(' ', "_");
        match normalized.as_str() {
            "active" => Some(Self::Open),
            "resolved" | "pending_release" | "archived" => Some(Self::Resolved),
            "suppressed" => Some(Self::Suppressed),
            _ => None,
        }
    }
}

/// An issue as JSON (DESIGN.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueView {
    pub id: String,
    pub draft_id: String,
    pub title: String,
    pub priority: Priority,
    pub status: IssueStatus,
    pub posthog_status: Option<String>,
    pub regressed: bool,
    pub occurrences: u64,
    pub affected_users: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub links: Links,
    pub approved_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The issue id of a draft: one issue per draft, so approving twice (or concurrently) finds the same.
pub fn issue_id(draft_id: &str) -> String {
    format!("i_{}", draft_id.trim_start_matches("d_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_posthog_status_word_maps() {
        for (word, ours) in [
            ("active", IssueStatus::Open),
            ("Active", IssueStatus::Open),
            ("resolved", IssueStatus::Resolved),
            ("Resolved", IssueStatus::Resolved),
            ("pending_release", IssueStatus::Resolved),
            ("Pending Release", IssueStatus::Resolved),
            ("archived", IssueStatus::Resolved),
            ("Archived", IssueStatus::Resolved),
            ("suppressed", IssueStatus::Suppressed),
            ("Suppressed", IssueStatus::Suppressed),
        ] {
            assert_eq!(IssueStatus::from_posthog(word), Some(ours), "{word}");
        }
        assert_eq!(IssueStatus::from_posthog("all"), None);
        assert_eq!(IssueStatus::from_posthog(""), None);
    }
}
