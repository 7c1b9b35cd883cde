//! What the scheduled `sync` function keeps about its own work (DESIGN.md §8): the registry of
//! connections to look after, a lease per connection so two runs never work on one connection at
//! once, the health of each destination, and the registry of approved issues to poll.

use super::connections::{Connection, ConnectionStatus};
use super::forwarding::Forwarding;
use super::{attr, keys, Item, Store, StoreError};
use crate::ids::{ConnectionId, EnvironmentId, WorkspaceId};
use aws_sdk_dynamodb::error::SdkError;

/// One connection in the registry (`SYNC#CONNECTIONS`, `CONN#{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    pub connection_id: ConnectionId,
    pub workspace_id: WorkspaceId,
    /// Milliseconds since the epoch of the last finished visit; 0 when never visited.
    pub last_synced_at: i64,
}

/// An approved issue that follows a PostHog issue (`WS#{ws}#ISSUES`, `ISSUE#{issue_id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedIssue {
    pub issue_id: String,
    pub environment_id: EnvironmentId,
    pub posthog_issue_id: String,
}

fn conditional_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// The registry item written with a connection's commit (inside its transaction).
pub(crate) fn registry_item(store: &Store, c: &Connection) -> Item {
    let mut item = store.key(keys::sync_connection(&c.id));
    item.insert("connection_id".into(), attr::str(c.id.as_str()));
    item.insert("workspace_id".into(), attr::str(c.workspace_id.as_str()));
    item.insert("status".into(), attr::str(c.status.as_str()));
    item.insert("last_synced_at".into(), attr::num(0));
    item
}

impl Store {
    /// Records a connection's status in the registry, adding the connection if it is missing (one
    /// committed before the registry existed). Visit order and lease are left as they are.
    pub async fn register_for_sync(
        &self,
        conn: &ConnectionId,
        ws: &WorkspaceId,
        status: ConnectionStatus,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::sync_connection(conn))))
            .update_expression("SET #c = :c, #w = :w, #s = :s, #l = if_not_exists(#l, :zero)")
            .expression_attribute_names("#c", "connection_id")
            .expression_attribute_names("#w", "workspace_id")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#l", "last_synced_at")
            .expression_attribute_values(":c", attr::str(conn.as_str()))
            .expression_attribute_values(":w", attr::str(ws.as_str()))
            .expression_attribute_values(":s", attr::str(status.as_str()))
            .expression_attribute_values(":zero", attr::num(0))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    /// Every registered connection, least recently visited first, so a run cut short by its budget
    /// is continued by the next one where it stopped.
    pub async fn sync_registry(&self) -> Result<Vec<SyncEntry>, StoreError> {
        let items = self
            .query_prefix(keys::SYNC_CONNECTIONS_PK.into(), "CONN#")
            .await?;
        let mut entries: Vec<SyncEntry> = items
            .iter()
            .filter_map(|item| {
                Some(SyncEntry {
                    connection_id: ConnectionId::parse(attr::s(item, "connection_id")?).ok()?,
                    workspace_id: WorkspaceId::parse(attr::s(item, "workspace_id")?).ok()?,
                    last_synced_at: attr::n(item, "last_synced_at").unwrap_or(0),
                })
            })
            .collect();
        entries.sort_by(|a, b| {
            (a.last_synced_at, a.connection_id.as_str())
                .cmp(&(b.last_synced_at, b.connection_id.as_str()))
        });
        Ok(entries)
    }

    /// Takes the connection for one run until `until_ms`. `false` while another run holds it; a
    /// crashed run's lease simply runs out.
    pub async fn acquire_sync_lease(
        &self,
        conn: &ConnectionId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.acquire_lease(
            keys::sync_connection(conn),
            super::LeaseAttrs {
                until: "lease_until",
                owner: "lease_owner",
            },
            owner,
            now_ms,
            until_ms,
        )
        .await
    }

    /// Records the visit and lets the connection go, if this run still holds it.
    pub async fn finish_sync(
        &self,
        conn: &ConnectionId,
        owner: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::sync_connection(conn))))
            .update_expression("SET #l = :now REMOVE #until, #owner")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#l", "last_synced_at")
            .expression_attribute_names("#until", "lease_until")
            .expression_attribute_names("#owner", "lease_owner")
            .expression_attribute_values(":now", attr::num(now_ms))
            .expression_attribute_values(":owner", attr::str(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Lets the connection go without recording a visit (the run failed on it).
    pub async fn release_sync_lease(
        &self,
        conn: &ConnectionId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::sync_connection(conn))))
            .update_expression("REMOVE #until, #owner")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#until", "lease_until")
            .expression_attribute_names("#owner", "lease_owner")
            .expression_attribute_values(":owner", attr::str(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// A disconnected connection with nothing left to clean up needs no more visits.
    pub async fn unregister_from_sync(
        &self,
        conn: &ConnectionId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::sync_connection(conn))))
            .condition_expression("#owner = :owner AND #s = :d")
            .expression_attribute_names("#owner", "lease_owner")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":owner", attr::str(owner))
            .expression_attribute_values(":d", attr::str(ConnectionStatus::Disconnected.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("DeleteItem", e)),
        }
    }

    /// Records what PostHog says of a destination. Only while the forwarding item still holds
    /// `function_id` and forwards (a disconnect meanwhile wins). `reenable_tried` clears with
    /// `None` (the destination is healthy again).
    pub async fn set_destination_health(
        &self,
        conn: &ConnectionId,
        env: EnvironmentId,
        function_id: &str,
        forwarding: Forwarding,
        error: Option<&str>,
        at: &str,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::forwarding(conn, env))))
            .condition_expression("#id = :fid AND #f <> :none")
            .expression_attribute_names("#id", "destination_id")
            .expression_attribute_names("#f", "forwarding")
            .expression_attribute_names("#at", "updated_at")
            .expression_attribute_names("#err", "forwarding_error")
            .expression_attribute_values(":fid", attr::str(function_id))
            .expression_attribute_values(":none", attr::str(Forwarding::None.as_str()))
            .expression_attribute_values(":f", attr::str(forwarding.as_str()))
            .expression_attribute_values(":at", attr::str(at));
        update = match error {
            Some(word) => update
                .update_expression("SET #f = :f, #err = :err, #at = :at")
                .expression_attribute_values(":err", attr::str(word)),
            None => update
                .update_expression("SET #f = :f, #at = :at REMOVE #err, #tried")
                .expression_attribute_names("#tried", "reenable_tried"),
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Claims the one re-enable `sync` makes of a disabled destination: `true` for the first
    /// caller only, until the destination is seen healthy again. Claimed before the PATCH, so two
    /// runs (or a crash and a retry) never loop on PostHog's health checker.
    pub async fn claim_reenable(
        &self,
        conn: &ConnectionId,
        env: EnvironmentId,
        function_id: &str,
        at: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::forwarding(conn, env))))
            .update_expression("SET #tried = :at")
            .condition_expression("#id = :fid AND attribute_not_exists(#tried)")
            .expression_attribute_names("#id", "destination_id")
            .expression_attribute_names("#tried", "reenable_tried")
            .expression_attribute_values(":fid", attr::str(function_id))
            .expression_attribute_values(":at", attr::str(at))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Approved issues of the workspace that follow a PostHog issue.
    pub async fn approved_issues(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Vec<ApprovedIssue>, StoreError> {
        let items = self
            .query_prefix(keys::approved_issues_pk(ws), "ISSUE#")
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                Some(ApprovedIssue {
                    issue_id: attr::s(item, "issue_id")?.to_owned(),
                    environment_id: EnvironmentId::try_from(attr::n(item, "environment_id")?)
                        .ok()?,
                    posthog_issue_id: attr::s(item, "posthog_issue_id")?.to_owned(),
                })
            })
            .collect())
    }

    /// PostHog's word last applied to an issue, if any.
    pub async fn issue_posthog_status(
        &self,
        ws: &WorkspaceId,
        issue_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(keys::issue(ws, issue_id))
            .await?
            .and_then(|item| attr::s(&item, "posthog_status").map(str::to_owned)))
    }
}

/// The registry item an approval writes (in its transaction) when the draft follows a PostHog issue.
pub(crate) fn approved_issue_item(
    store: &Store,
    ws: &WorkspaceId,
    issue_id: &str,
    draft_id: &str,
    environment_id: i64,
    posthog_issue_id: &str,
) -> Item {
    let mut item = store.key(keys::approved_issue(ws, issue_id));
    item.insert("issue_id".into(), attr::str(issue_id));
    item.insert("draft_id".into(), attr::str(draft_id));
    item.insert("environment_id".into(), attr::num(environment_id));
    item.insert("posthog_issue_id".into(), attr::str(posthog_issue_id));
    item
}
