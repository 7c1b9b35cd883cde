//! Reading drafts back: the head (written once, with the evidence) plus the counter item (written on
//! every delivery) make the draft the API shows, its PRD rendered from both.

use super::{attr, keys, Item, Store, StoreError};
use crate::draft::{DraftStatus, DraftView, EnvironmentRef, LatestContext};
use crate::ids::WorkspaceId;
use crate::links::Links;
use crate::occurrence::{rfc3339, Evidence};
use crate::prd::{self, PrdInput};
use crate::priority::{ExceptionLevel, Priority};
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
        let mut wanted = vec![head_key.clone(), stats_key.clone()];
        wanted.extend(shard_keys(ws, draft_id));
        let found = self.batch_get(wanted).await?;
        match (found.get(&head_key), found.get(&stats_key)) {
            (Some(head), Some(stats)) => {
                let shards: Vec<&Item> = shard_keys(ws, draft_id)
                    .filter_map(|k| found.get(&k))
                    .collect();
                view(head, &merge_counters(stats, &shards)).map(Some)
            }
            _ => Ok(None),
        }
    }
}

fn shard_keys<'a>(
    ws: &'a WorkspaceId,
    draft_id: &'a str,
) -> impl Iterator<Item = (String, String)> + 'a {
    (1..=keys::DRAFT_SHARDS).map(move |k| keys::draft_shard(ws, draft_id, k))
}

/// The main counter item with its overflow shards folded in: counts add up, first_seen is the min,
/// last_seen the max, the ranks seen are the union, and the context is the one of the latest event.
pub(crate) fn merge_counters(main: &Item, shards: &[&Item]) -> Item {
    use aws_sdk_dynamodb::types::AttributeValue;
    if shards.is_empty() {
        return main.clone();
    }
    let mut merged = main.clone();
    let all = || std::iter::once(main).chain(shards.iter().copied());
    for counter in ["occ", "users"] {
        let total: i64 = all().filter_map(|i| attr::n(i, counter)).sum();
        merged.insert(counter.into(), attr::num(total));
    }
    if let Some(first) = all().filter_map(|i| attr::n(i, "first_seen")).min() {
        merged.insert("first_seen".into(), attr::num(first));
    }
    if let Some(latest) = all().max_by_key(|i| attr::n(i, "last_seen").unwrap_or(i64::MIN)) {
        for name in ["last_seen", "ctx"] {
            if let Some(v) = latest.get(name) {
                merged.insert(name.into(), v.clone());
            }
        }
    }
    let mut ranks: Vec<String> = all()
        .filter_map(|i| i.get("prio").and_then(|v| v.as_ns().ok()))
        .flatten()
        .cloned()
        .collect();
    ranks.sort();
    ranks.dedup();
    if !ranks.is_empty() {
        merged.insert("prio".into(), AttributeValue::Ns(ranks));
    }
    for rank in 0..4 {
        let name = format!("reason_{rank}");
        if let std::collections::hash_map::Entry::Vacant(slot) = merged.entry(name) {
            if let Some(v) = shards.iter().find_map(|i| i.get(slot.key())) {
                slot.insert(v.clone());
            }
        }
    }
    if let Some(updated) = all().filter_map(|i| attr::s(i, "updated_at")).max() {
        merged.insert("updated_at".into(), attr::str(updated));
    }
    merged
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

/// A page of drafts, newest `last_seen` first.
pub struct DraftPage {
    pub drafts: Vec<DraftView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cursor is not one this API returned")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ListFilter<'a> {
    pub channel_id: Option<&'a str>,
    pub status: Option<DraftStatus>,
    pub limit: usize,
}

impl Store {
    /// Walks the workspace's listing index from `cursor`. The cursor is the index position of the
    /// last draft returned, so a draft updated during a walk moves above it and is not shown twice,
    /// and every draft not updated stays below it and is reached.
    pub async fn list_drafts(
        &self,
        ws: &WorkspaceId,
        filter: &ListFilter<'_>,
        cursor: Option<&str>,
    ) -> Result<DraftPage, ListError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let index_pk = keys::drafts_index_pk(ws);
        let mut start = match cursor {
            Some(c) => Some(decode_cursor(c, &index_pk).ok_or(ListError::BadCursor)?),
            None => None,
        };
        let mut stats_items: Vec<Item> = Vec::new();
        let mut exhausted = false;
        while stats_items.len() < filter.limit && !exhausted {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(keys::GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", keys::GSI1PK)
                .expression_attribute_values(":pk", AttributeValue::S(index_pk.clone()))
                .scan_index_forward(false)
                .limit((filter.limit - stats_items.len()) as i32)
                .set_exclusive_start_key(start.take());
            let mut conditions = Vec::new();
            if let Some(channel) = filter.channel_id {
                conditions.push("#ch = :ch");
                q = q
                    .expression_attribute_names("#ch", "channel_id")
                    .expression_attribute_values(":ch", AttributeValue::S(channel.to_owned()));
            }
            if let Some(status) = filter.status {
                conditions.push("#st = :st");
                q = q
                    .expression_attribute_names("#st", "status")
                    .expression_attribute_values(
                        ":st",
                        AttributeValue::S(status.as_str().to_owned()),
                    );
            }
            if !conditions.is_empty() {
                q = q.filter_expression(conditions.join(" AND "));
            }
            let out = q.send().await.map_err(|e| StoreError::sdk("Query", e))?;
            stats_items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => exhausted = true,
            }
        }
        let next_cursor = if exhausted && stats_items.len() <= filter.limit {
            None
        } else {
            stats_items
                .last()
                .map(|last| encode_cursor(last, &index_pk))
        };
        let drafts = self.views_for(ws, &stats_items).await?;
        Ok(DraftPage {
            drafts,
            next_cursor,
        })
    }

    async fn views_for(
        &self,
        ws: &WorkspaceId,
        stats: &[Item],
    ) -> Result<Vec<DraftView>, StoreError> {
        let ids: Vec<&str> = stats
            .iter()
            .filter_map(|s| attr::s(s, "draft_id"))
            .collect();
        let wanted: Vec<_> = ids
            .iter()
            .flat_map(|id| std::iter::once(keys::draft_head(ws, id)).chain(shard_keys(ws, id)))
            .collect();
        let mut found = std::collections::HashMap::new();
        for chunk in wanted.chunks(100) {
            found.extend(self.batch_get(chunk.to_vec()).await?);
        }
        stats
            .iter()
            .filter_map(|s| {
                let id = attr::s(s, "draft_id")?;
                let head = found.get(&keys::draft_head(ws, id))?;
                let shards: Vec<&Item> = shard_keys(ws, id).filter_map(|k| found.get(&k)).collect();
                Some(view(head, &merge_counters(s, &shards)))
            })
            .collect()
    }
}

fn encode_cursor(item: &Item, index_pk: &str) -> String {
    use base64::Engine;
    let v = serde_json::json!({
        "pk": attr::s(item, keys::PK),
        "sk": attr::s(item, keys::SK),
        "gsk": attr::s(item, keys::GSI1SK),
        "ipk": index_pk,
    });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor(cursor: &str, index_pk: &str) -> Option<Item> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    if v["ipk"].as_str()? != index_pk {
        return None;
    }
    let s = |k: &str| Some(AttributeValue::S(v[k].as_str()?.to_owned()));
    Some(Item::from([
        (keys::PK.to_owned(), s("pk")?),
        (keys::SK.to_owned(), s("sk")?),
        (
            keys::GSI1PK.to_owned(),
            AttributeValue::S(index_pk.to_owned()),
        ),
        (keys::GSI1SK.to_owned(), s("gsk")?),
    ]))
}
