//! The single-table key design (README "Data model"). Every key starts from the workspace where the
//! item belongs to one, so a lookup with another workspace's id simply finds nothing.

use crate::ids::{ConnectionId, EnvironmentId, WorkspaceId};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI1: &str = "GSI1";
pub const TTL: &str = "expires_at";

pub fn connection(id: &ConnectionId) -> (String, String) {
    (format!("CONN#{id}"), "CONN".into())
}

pub fn workspace_connection(ws: &WorkspaceId) -> (String, String) {
    (format!("WS#{ws}"), "CONNECTION".into())
}

/// Prefix of the forwarding items of a connection (`CONN#{conn}`, `ENV#{env}`), and of mappings.
pub const ENV_PREFIX: &str = "ENV#";

/// What PostHog forwards for one environment of one connection: destination ids and health.
pub fn forwarding(conn: &ConnectionId, env: EnvironmentId) -> (String, String) {
    (format!("CONN#{conn}"), format!("{ENV_PREFIX}{env}"))
}

/// A pending OAuth authorization: one-time, bound to workspace, user, region and PKCE verifier.
pub fn oauth_state(state: &str) -> (String, String) {
    (format!("OAUTH#{state}"), "STATE".into())
}

pub fn mapping(ws: &WorkspaceId, env: EnvironmentId) -> (String, String) {
    (format!("WS#{ws}"), format!("{ENV_PREFIX}{env}"))
}

pub fn draft_pk(ws: &WorkspaceId, draft_id: &str) -> String {
    format!("WS#{ws}#DRAFT#{draft_id}")
}

pub fn draft_head(ws: &WorkspaceId, draft_id: &str) -> (String, String) {
    (draft_pk(ws, draft_id), "HEAD".into())
}

pub fn draft_stats(ws: &WorkspaceId, draft_id: &str) -> (String, String) {
    (draft_pk(ws, draft_id), "STATS".into())
}

/// Overflow counter items of a draft, written when its main counter item is contended (a storm).
pub const DRAFT_SHARDS: u32 = 8;

pub fn draft_shard(ws: &WorkspaceId, draft_id: &str, shard: u32) -> (String, String) {
    (draft_pk(ws, draft_id), format!("STATS#{shard}"))
}

pub fn draft_user(ws: &WorkspaceId, draft_id: &str, user_hash: &str) -> (String, String) {
    (draft_pk(ws, draft_id), format!("USER#{user_hash}"))
}

pub fn dedup(ws: &WorkspaceId, env: EnvironmentId, delivery_key: &str) -> (String, String) {
    (format!("DEDUP#{ws}#{env}#{delivery_key}"), "DEDUP".into())
}

pub fn draft_rate(ws: &WorkspaceId, env: EnvironmentId, hour: &str) -> (String, String) {
    (format!("WS#{ws}"), format!("RATE#{env}#{hour}"))
}

/// The listing index: every draft of a workspace, newest `last_seen` first.
pub fn drafts_index_pk(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#DRAFTS")
}

pub fn drafts_index_sk(last_seen_ms: i64, draft_id: &str) -> String {
    format!("{last_seen_ms:015}#{draft_id}")
}

pub fn issue(ws: &WorkspaceId, issue_id: &str) -> (String, String) {
    (format!("WS#{ws}#ISSUE#{issue_id}"), "ISSUE".into())
}

/// Our issues that follow one PostHog issue (several fingerprints may share it).
pub fn posthog_issue_link_pk(ws: &WorkspaceId, posthog_issue_id: &str) -> String {
    format!("WS#{ws}#PHISSUE#{posthog_issue_id}")
}

pub fn posthog_issue_link(
    ws: &WorkspaceId,
    posthog_issue_id: &str,
    issue_id: &str,
) -> (String, String) {
    (
        posthog_issue_link_pk(ws, posthog_issue_id),
        format!("ISSUE#{issue_id}"),
    )
}

pub fn forwarding_prefix() -> &'static str {
    "ENV#"
}

/// The partition `sync` queries to find the connections it looks after (the table grants it no
/// Scan). One item per connection, from its commit until a disconnect's cleanup is done.
pub const SYNC_CONNECTIONS_PK: &str = "SYNC#CONNECTIONS";

pub fn sync_connection(conn: &ConnectionId) -> (String, String) {
    (SYNC_CONNECTIONS_PK.into(), format!("CONN#{conn}"))
}

/// The workspace's approved issues that follow a PostHog issue, for `sync` to poll their status.
pub fn approved_issues_pk(ws: &WorkspaceId) -> String {
    format!("WS#{ws}#ISSUES")
}

pub fn approved_issue(ws: &WorkspaceId, issue_id: &str) -> (String, String) {
    (approved_issues_pk(ws), format!("ISSUE#{issue_id}"))
}
