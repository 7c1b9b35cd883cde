//! Reading drafts back: the head (written once, with the evidence) plus the counter item (written on
//! every delivery) make the draft the API shows, its PRD rendered from both.

use super::{attr, keys, Item, Store, StoreError};
use crate::draft::{DraftStatus, DraftView, EnvironmentRef, LatestContext};
use crate::ids::WorkspaceId;
use crate::links::Links;
use crate::occurrence::{rfc3339, Evidence};
use crate::prd::{self, PrdInput};
use crate::priority::{ExceptionLevel, Priority};
use aws_sdk_dynamodb::types::KeysAndAttributes;
use time::OffsetDateTime;

impl Store {
    /// One draft of `ws`; `None` when it does not exist in that workspace.
    pub async fn get_draft(
        &self,
        ws: &WorkspaceId,
        draft_id: &str,
    ) -> Result<Option<DraftView>, StoreError> {
        let head_key = keys::draft_head(ws, draft_id);
        let stats_key = keys::draft_stats(ws, draft_id);
        let request = KeysAndAttributes::builder()
            .keys(self.key(head_key))
            .keys(self.key(stats_key))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.table, request)
            .send()
            .await
            .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
        let items = out
            .responses
            .unwrap_or_default()
            .remove(&self.table)
            .unwrap_or_default();
        let by_sk = |sk: &str| items.iter().find(|i| attr::s(i, keys::SK) == Some(sk));
        match (by_sk("HEAD"), by_sk("STATS")) {
            (Some(head), Some(stats)) => view(head, stats).map(Some),
            _ => Ok(None),
        }
    }
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn view(head: &Item, stats: &Item) -> Result<DraftView, StoreError> {
    let bad = |what: &str| StoreError::Malformed(format!("draft item: {what}"));
    let id = attr::s(head, "draft_id")
        .ok_or_else(|| bad("draft_id"))?
        .to_owned();
    let evidence: Evidence = attr::s(head, "evidence")
        .and_then(|e| serde_json::from_str(e).ok())
        .ok_or_else(|| bad("evidence"))?;
    let latest: LatestContext = attr::s(stats, "ctx")
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let status = attr::s(head, "status")
        .or_else(|| attr::s(stats, "status"))
        .and_then(DraftStatus::parse)
        .unwrap_or(DraftStatus::Draft);
    let suggested_rank = attr::ns_max(stats, "prio").unwrap_or(Priority::High as i64);
    let suggested = Priority::ALL
        .get(suggested_rank.clamp(0, 3) as usize)
        .copied()
        .unwrap_or(Priority::High);
    let override_priority = attr::s(head, "priority_override").and_then(Priority::parse);
    let (priority, priority_reason) = match override_priority {
        Some(p) => (p, "Set by a reviewer.".to_owned()),
        None => (
            suggested,
            attr::s(stats, &format!("reason_{suggested_rank}"))
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    let suggested_title = attr::s(head, "title").unwrap_or("Error");
    let title = attr::s(head, "title_override")
        .unwrap_or(suggested_title)
        .to_owned();
    let occurrences = attr::n(stats, "occ").unwrap_or(0).max(0) as u64;
    let affected_users = attr::n(stats, "users").unwrap_or(0).max(0) as u64;
    let first_seen = ms_to_time(attr::n(stats, "first_seen").unwrap_or(0));
    let last_seen = ms_to_time(attr::n(stats, "last_seen").unwrap_or(0));
    let environment_name = attr::s(head, "environment_name").map(str::to_owned);
    let posthog_issue_url = attr::s(head, "posthog_issue_url").map(str::to_owned);
    let prd = prd::render(&PrdInput {
        title: &title,
        environment_name: environment_name.as_deref(),
        level: ExceptionLevel::parse(attr::s(head, "level")),
        handled: attr::b(head, "handled").unwrap_or(false),
        priority,
        priority_reason: &priority_reason,
        occurrences,
        affected_users,
        first_seen,
        last_seen,
        context: &latest.context,
        evidence: &evidence,
        posthog_issue_url: posthog_issue_url.as_deref(),
    });
    Ok(DraftView {
        id,
        status,
        channel_id: attr::s(head, "channel_id").unwrap_or_default().to_owned(),
        environment: EnvironmentRef {
            id: attr::n(head, "environment_id").unwrap_or_default(),
            name: environment_name,
        },
        fingerprint: attr::s(head, "fingerprint").unwrap_or_default().to_owned(),
        posthog_issue_id: attr::s(head, "posthog_issue_id").map(str::to_owned),
        title,
        priority,
        priority_reason,
        prd,
        links: Links {
            posthog_issue: posthog_issue_url,
            session_replay: latest.session_replay,
            page: latest.context.page,
            person: latest.person,
        },
        occurrences,
        affected_users,
        first_seen: rfc3339(first_seen),
        last_seen: rfc3339(last_seen),
        issue_id: attr::s(head, "issue_id").map(str::to_owned),
        created_at: attr::s(head, "created_at").unwrap_or_default().to_owned(),
        // Both are RFC 3339 UTC in one format, so the later one is the larger string.
        updated_at: attr::s(head, "updated_at")
            .max(attr::s(stats, "updated_at"))
            .unwrap_or_default()
            .to_owned(),
    })
}
