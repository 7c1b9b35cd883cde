//! Connections: one per successful PostHog connect. A connection id is part of the webhook URL; its
//! status decides whether deliveries are accepted (410 once disconnected).

use super::{attr, keys, Store, StoreError};
use crate::ids::{ConnectionId, WorkspaceId};
use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Connected,
    NeedsReconnect,
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReconnect => "needs_reconnect",
            Self::Disconnected => "disconnected",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Connected, Self::NeedsReconnect, Self::Disconnected]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// Deliveries are accepted while PostHog can still send them to us on purpose.
    pub fn accepts_deliveries(self) -> bool {
        self != Self::Disconnected
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub workspace_id: WorkspaceId,
    pub status: ConnectionStatus,
    pub region: String,
    pub posthog_base_url: String,
    pub scopes: Vec<String>,
    pub connected_at: String,
    pub connected_by: String,
}

pub(crate) fn from_item(item: &super::Item) -> Result<Connection, StoreError> {
    let bad = |what: &str| StoreError::Malformed(format!("connection item: {what}"));
    let id = attr::s(item, "connection_id").ok_or_else(|| bad("connection_id"))?;
    let ws = attr::s(item, "workspace_id").ok_or_else(|| bad("workspace_id"))?;
    let status = attr::s(item, "status")
        .and_then(ConnectionStatus::parse)
        .ok_or_else(|| bad("status"))?;
    Ok(Connection {
        id: ConnectionId::parse(id).map_err(|_| bad("connection_id"))?,
        workspace_id: WorkspaceId::parse(ws).map_err(|_| bad("workspace_id"))?,
        status,
        region: attr::s(item, "region").unwrap_or_default().to_owned(),
        posthog_base_url: attr::s(item, "posthog_base_url")
            .unwrap_or_default()
            .to_owned(),
        scopes: item
            .get("scopes")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        connected_at: attr::s(item, "connected_at").unwrap_or_default().to_owned(),
        connected_by: attr::s(item, "connected_by").unwrap_or_default().to_owned(),
    })
}

impl Store {
    pub async fn get_connection(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<Connection>, StoreError> {
        self.get(keys::connection(id))
            .await?
            .map(|item| from_item(&item))
            .transpose()
    }

    /// Writes a connection record (the connect flow; tests seed connections with it).
    pub async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(connection_item(self, c)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    pub async fn set_connection_status(
        &self,
        id: &ConnectionId,
        status: ConnectionStatus,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(id))))
            .update_expression("SET #s = :s")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":s", attr::str(status.as_str()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }
}

impl Store {
    /// Points the workspace at its current connection (what the settings status reads).
    pub async fn put_workspace_pointer(&self, c: &Connection) -> Result<(), StoreError> {
        let mut item = self.key(keys::workspace_connection(&c.workspace_id));
        item.insert("connection_id".into(), attr::str(c.id.as_str()));
        item.insert("status".into(), attr::str(c.status.as_str()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }
}

/// The workspace's current connection (`WS#{ws}`, `CONNECTION`): which one, and its status. It
/// decides 409 on connect, and where the settings status starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceConnection {
    pub connection_id: ConnectionId,
    pub status: ConnectionStatus,
}

/// A destination a disconnect could not remove, for `sync` to retry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingDestination {
    pub environment_id: crate::ids::EnvironmentId,
    pub function_id: String,
}

/// What a disconnect left to do at PostHog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub disconnected_at: Option<String>,
    pub pending_destinations: Vec<PendingDestination>,
    /// The tokens could not be revoked; the tokens secret is kept until they are.
    pub revoke_pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Committed,
    /// Another connection of the workspace is connected (a concurrent connect won).
    AlreadyConnected,
}

fn conditional_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

fn connection_item(store: &Store, c: &Connection) -> super::Item {
    let mut item = store.key(keys::connection(&c.id));
    item.insert("connection_id".into(), attr::str(c.id.as_str()));
    item.insert("workspace_id".into(), attr::str(c.workspace_id.as_str()));
    item.insert("status".into(), attr::str(c.status.as_str()));
    item.insert("region".into(), attr::str(&c.region));
    item.insert("posthog_base_url".into(), attr::str(&c.posthog_base_url));
    item.insert(
        "scopes".into(),
        AttributeValue::L(c.scopes.iter().map(attr::str).collect()),
    );
    item.insert("connected_at".into(), attr::str(&c.connected_at));
    item.insert("connected_by".into(), attr::str(&c.connected_by));
    item
}

impl Store {
    pub async fn get_workspace_connection(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Option<WorkspaceConnection>, StoreError> {
        let Some(item) = self.get(keys::workspace_connection(ws)).await? else {
            return Ok(None);
        };
        let bad = |what: &str| StoreError::Malformed(format!("workspace connection: {what}"));
        Ok(Some(WorkspaceConnection {
            connection_id: attr::s(&item, "connection_id")
                .and_then(|c| ConnectionId::parse(c).ok())
                .ok_or_else(|| bad("connection_id"))?,
            status: attr::s(&item, "status")
                .and_then(ConnectionStatus::parse)
                .ok_or_else(|| bad("status"))?,
        }))
    }

    /// Makes `c` the workspace's connection in one transaction: the connection item, and the
    /// workspace pointer on condition that no connection of the workspace is connected, so of two
    /// concurrent connects exactly one wins.
    pub async fn commit_connection(&self, c: &Connection) -> Result<Commit, StoreError> {
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let connection = Put::builder()
            .table_name(&self.table)
            .set_item(Some(connection_item(self, c)))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        let mut pointer = self.key(keys::workspace_connection(&c.workspace_id));
        pointer.insert("connection_id".into(), attr::str(c.id.as_str()));
        pointer.insert("status".into(), attr::str(c.status.as_str()));
        pointer.insert("updated_at".into(), attr::str(&c.connected_at));
        let pointer = Put::builder()
            .table_name(&self.table)
            .set_item(Some(pointer))
            .condition_expression("attribute_not_exists(PK) OR #s <> :connected")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(
                ":connected",
                attr::str(ConnectionStatus::Connected.as_str()),
            )
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        // The scheduled `sync` finds the connections to look after here, from the same instant.
        let registry = Put::builder()
            .table_name(&self.table)
            .set_item(Some(super::sync::registry_item(self, c)))
            .build()
            .map_err(|e| StoreError::sdk("TransactWriteItems", e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(connection).build())
            .transact_items(TransactWriteItem::builder().put(pointer).build())
            .transact_items(TransactWriteItem::builder().put(registry).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(Commit::Committed),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let pointer_refused = c
                        .cancellation_reasons()
                        .get(1)
                        .and_then(|r| r.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed");
                    if pointer_refused {
                        return Ok(Commit::AlreadyConnected);
                    }
                }
                Err(StoreError::sdk("TransactWriteItems", e))
            }
        }
    }

    /// Sets the workspace pointer's status if it still points at `conn`.
    pub async fn set_workspace_status(
        &self,
        ws: &WorkspaceId,
        conn: &ConnectionId,
        status: ConnectionStatus,
        at: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::workspace_connection(ws))))
            .update_expression("SET #s = :s, #at = :at")
            .condition_expression("connection_id = :conn")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "updated_at")
            .expression_attribute_values(":s", attr::str(status.as_str()))
            .expression_attribute_values(":at", attr::str(at))
            .expression_attribute_values(":conn", attr::str(conn.as_str()))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Marks the connection disconnected (the webhook answers 410 from here on) and answers the
    /// status it had, `None` when there is no such connection. Repeating it changes nothing.
    pub async fn mark_disconnected(
        &self,
        conn: &ConnectionId,
        by: &str,
        at: &str,
    ) -> Result<Option<ConnectionStatus>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(conn))))
            .update_expression(
                "SET #s = :d, #at = if_not_exists(#at, :at), #by = if_not_exists(#by, :by)",
            )
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "disconnected_at")
            .expression_attribute_names("#by", "disconnected_by")
            .expression_attribute_values(":d", attr::str(ConnectionStatus::Disconnected.as_str()))
            .expression_attribute_values(":at", attr::str(at))
            .expression_attribute_values(":by", attr::str(by))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedOld)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out
                .attributes
                .as_ref()
                .and_then(|a| attr::s(a, "status"))
                .and_then(ConnectionStatus::parse)),
            Err(e) if conditional_failure(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// `connected` → `needs_reconnect` (PostHog refused the refresh token for good). A connection
    /// already disconnected stays so. `true` when it changed.
    pub async fn mark_needs_reconnect(
        &self,
        conn: &ConnectionId,
        at: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(conn))))
            .update_expression("SET #s = :n, #at = :at")
            .condition_expression("#s = :c")
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#at", "needs_reconnect_at")
            .expression_attribute_values(":n", attr::str(ConnectionStatus::NeedsReconnect.as_str()))
            .expression_attribute_values(":c", attr::str(ConnectionStatus::Connected.as_str()))
            .expression_attribute_values(":at", attr::str(at))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if conditional_failure(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// A lease on refreshing this connection's tokens, so only one caller talks to PostHog's token
    /// endpoint at a time (a second rotation would race the first). `false` while another holds it.
    pub async fn acquire_refresh_lease(
        &self,
        conn: &ConnectionId,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.acquire_lease(
            keys::connection(conn),
            super::LeaseAttrs {
                until: "refresh_lease_until",
                owner: "refresh_lease_owner",
            },
            owner,
            now_ms,
            until_ms,
        )
        .await
    }

    pub async fn release_refresh_lease(
        &self,
        conn: &ConnectionId,
        owner: &str,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(conn))))
            .update_expression("REMOVE #until, #owner")
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#until", "refresh_lease_until")
            .expression_attribute_names("#owner", "refresh_lease_owner")
            .expression_attribute_values(":owner", attr::str(owner))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if conditional_failure(&e) => Ok(()),
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// Records what a disconnect could not remove (nothing left clears the record).
    pub async fn record_cleanup(
        &self,
        conn: &ConnectionId,
        cleanup: &Cleanup,
        at: &str,
    ) -> Result<(), StoreError> {
        let pending: Vec<AttributeValue> = cleanup
            .pending_destinations
            .iter()
            .map(|p| {
                AttributeValue::M(std::collections::HashMap::from([
                    (
                        "environment_id".to_owned(),
                        attr::num(p.environment_id.get()),
                    ),
                    ("function_id".to_owned(), attr::str(&p.function_id)),
                ]))
            })
            .collect();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::connection(conn))))
            .update_expression("SET #p = :p, #r = :r, #at = :at")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#p", "pending_cleanup")
            .expression_attribute_names("#r", "revoke_pending")
            .expression_attribute_names("#at", "cleanup_checked_at")
            .expression_attribute_values(":p", AttributeValue::L(pending))
            .expression_attribute_values(":r", AttributeValue::Bool(cleanup.revoke_pending))
            .expression_attribute_values(":at", attr::str(at))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    /// What the last disconnect left to do; `None` when there is no such connection.
    pub async fn get_cleanup(&self, conn: &ConnectionId) -> Result<Option<Cleanup>, StoreError> {
        let Some(item) = self.get(keys::connection(conn)).await? else {
            return Ok(None);
        };
        let pending = item
            .get("pending_cleanup")
            .and_then(|v| v.as_l().ok())
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_m().ok())
                    .filter_map(|m| {
                        Some(PendingDestination {
                            environment_id: crate::ids::EnvironmentId::try_from(attr::n(
                                m,
                                "environment_id",
                            )?)
                            .ok()?,
                            function_id: attr::s(m, "function_id")?.to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Cleanup {
            disconnected_at: attr::s(&item, "disconnected_at").map(str::to_owned),
            pending_destinations: pending,
            revoke_pending: attr::b(&item, "revoke_pending").unwrap_or(false),
        }))
    }
}
