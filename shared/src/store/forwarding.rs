//! Forwarding per (connection, environment): what PostHog was asked to send us from one project,
//! and whether it does. The settings status reads these with one Query on `CONN#{conn}`.

use super::{attr, keys, Item, Store, StoreError};
use crate::ids::{ConnectionId, EnvironmentId};
use aws_sdk_dynamodb::types::AttributeValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// The destination exists and PostHog runs it.
    Active,
    /// PostHog refused the destination for good (plan gating, permissions): see `forwarding_error`.
    Unavailable,
    /// PostHog's health check degraded or disabled the destination.
    Degraded,
    /// Nothing is forwarded (after a disconnect).
    None,
}

impl Forwarding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Unavailable => "unavailable",
            Self::Degraded => "degraded",
            Self::None => "none",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Active, Self::Unavailable, Self::Degraded, Self::None]
            .into_iter()
            .find(|f| f.as_str() == raw)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentForwarding {
    pub environment_id: EnvironmentId,
    pub name: String,
    pub forwarding: Forwarding,
    pub forwarding_error: Option<String>,
    /// The `$exception` destination.
    pub destination_id: Option<String>,
    /// The issue lifecycle destination, where PostHog allowed one.
    pub issue_destination_id: Option<String>,
    /// Why PostHog refused the issue lifecycle destination.
    pub issue_destination_error: Option<String>,
    pub updated_at: String,
}

fn from_item(item: &Item) -> Result<EnvironmentForwarding, StoreError> {
    let bad = |what: &str| StoreError::Malformed(format!("forwarding item: {what}"));
    let opt = |name: &str| attr::s(item, name).map(str::to_owned);
    Ok(EnvironmentForwarding {
        environment_id: attr::n(item, "environment_id")
            .and_then(|n| EnvironmentId::try_from(n).ok())
            .ok_or_else(|| bad("environment_id"))?,
        name: opt("name").unwrap_or_default(),
        forwarding: attr::s(item, "forwarding")
            .and_then(Forwarding::parse)
            .ok_or_else(|| bad("forwarding"))?,
        forwarding_error: opt("forwarding_error"),
        destination_id: opt("destination_id"),
        issue_destination_id: opt("issue_destination_id"),
        issue_destination_error: opt("issue_destination_error"),
        updated_at: opt("updated_at").unwrap_or_default(),
    })
}

impl Store {
    pub async fn put_forwarding(
        &self,
        conn: &ConnectionId,
        f: &EnvironmentForwarding,
    ) -> Result<(), StoreError> {
        let mut item = self.key(keys::forwarding(conn, f.environment_id));
        item.insert("environment_id".into(), attr::num(f.environment_id.get()));
        item.insert("name".into(), attr::str(&f.name));
        item.insert("forwarding".into(), attr::str(f.forwarding.as_str()));
        item.insert("updated_at".into(), attr::str(&f.updated_at));
        for (name, value) in [
            ("forwarding_error", &f.forwarding_error),
            ("destination_id", &f.destination_id),
            ("issue_destination_id", &f.issue_destination_id),
            ("issue_destination_error", &f.issue_destination_error),
        ] {
            if let Some(v) = value {
                item.insert(name.into(), attr::str(v));
            }
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// Every environment of a connection, by environment id.
    pub async fn list_forwarding(
        &self,
        conn: &ConnectionId,
    ) -> Result<Vec<EnvironmentForwarding>, StoreError> {
        let (pk, _) = keys::connection(conn);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :env)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":env", attr::str(keys::ENV_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            for item in out.items() {
                found.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        found.sort_by_key(|f| f.environment_id);
        Ok(found)
    }

    pub async fn delete_forwarding(
        &self,
        conn: &ConnectionId,
        env: EnvironmentId,
    ) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::forwarding(conn, env))))
            .send()
            .await
            .map_err(|e| StoreError::sdk("DeleteItem", e))?;
        Ok(())
    }

    /// After a disconnect: nothing is forwarded any more (the ids stay as history).
    pub async fn stop_forwarding(
        &self,
        conn: &ConnectionId,
        env: EnvironmentId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::forwarding(conn, env))))
            .update_expression("SET #f = :none, #at = :at REMOVE #err")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#f", "forwarding")
            .expression_attribute_names("#at", "updated_at")
            .expression_attribute_names("#err", "forwarding_error")
            .expression_attribute_values(":none", attr::str(Forwarding::None.as_str()))
            .expression_attribute_values(":at", attr::str(at))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }
}

impl Store {
    /// PostHog confirmed `function_id` deleted: the forwarding item stops naming it, so a retried
    /// cleanup does not ask again.
    pub async fn forget_destination(
        &self,
        conn: &ConnectionId,
        env: EnvironmentId,
        function_id: &str,
        at: &str,
    ) -> Result<(), StoreError> {
        for attribute in ["destination_id", "issue_destination_id"] {
            let out = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.key(keys::forwarding(conn, env))))
                .update_expression("REMOVE #id SET #at = :at")
                .condition_expression("#id = :fid")
                .expression_attribute_names("#id", attribute)
                .expression_attribute_names("#at", "updated_at")
                .expression_attribute_values(":fid", attr::str(function_id))
                .expression_attribute_values(":at", attr::str(at))
                .send()
                .await;
            match out {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(StoreError::sdk("UpdateItem", e)),
            }
        }
        Ok(())
    }
}
