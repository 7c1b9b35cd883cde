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
        let mut item = self.key(keys::connection(&c.id));
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
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
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
