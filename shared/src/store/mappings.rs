//! Environment mappings: (workspace, environment) → channel or Do not import, with the Exceptions and
//! Enabled toggles. Keyed by workspace, so they survive disconnect and reconnect.

use super::{attr, keys, Item, Store, StoreError};
use crate::ids::{ChannelId, EnvironmentId, WorkspaceId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// `None` is Do not import.
    pub channel_id: Option<ChannelId>,
    pub exceptions: bool,
    pub enabled: bool,
}

/// Why a delivery for an environment is not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotImported {
    DoNotImport,
    Disabled,
    ExceptionsOff,
}

impl NotImported {
    pub fn reason(self) -> &'static str {
        match self {
            Self::DoNotImport => "do_not_import",
            Self::Disabled => "environment_disabled",
            Self::ExceptionsOff => "exceptions_off",
        }
    }
}

impl Mapping {
    /// The channel new drafts go to, or why nothing is imported.
    pub fn route(mapping: Option<&Mapping>) -> Result<&ChannelId, NotImported> {
        let m = mapping.ok_or(NotImported::DoNotImport)?;
        let channel = m.channel_id.as_ref().ok_or(NotImported::DoNotImport)?;
        if !m.enabled {
            Err(NotImported::Disabled)
        } else if !m.exceptions {
            Err(NotImported::ExceptionsOff)
        } else {
            Ok(channel)
        }
    }
}

pub(crate) fn from_item(item: &Item) -> Mapping {
    Mapping {
        channel_id: attr::s(item, "channel_id").and_then(|c| ChannelId::parse(c).ok()),
        exceptions: attr::b(item, "exceptions").unwrap_or(true),
        enabled: attr::b(item, "enabled").unwrap_or(true),
    }
}

impl Store {
    pub async fn get_mapping(
        &self,
        ws: &WorkspaceId,
        env: EnvironmentId,
    ) -> Result<Option<Mapping>, StoreError> {
        Ok(self
            .get(keys::mapping(ws, env))
            .await?
            .map(|i| from_item(&i)))
    }

    pub async fn put_mapping(
        &self,
        ws: &WorkspaceId,
        env: EnvironmentId,
        m: &Mapping,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::mapping(ws, env))))
            .update_expression("SET #c = :c, #e = :e, #n = :n, #id = :id")
            .expression_attribute_names("#c", "channel_id")
            .expression_attribute_names("#e", "exceptions")
            .expression_attribute_names("#n", "enabled")
            .expression_attribute_names("#id", "environment_id")
            .expression_attribute_values(
                ":c",
                attr::opt_str(m.channel_id.as_ref().map(|c| c.as_str())),
            )
            .expression_attribute_values(
                ":e",
                aws_sdk_dynamodb::types::AttributeValue::Bool(m.exceptions),
            )
            .expression_attribute_values(
                ":n",
                aws_sdk_dynamodb::types::AttributeValue::Bool(m.enabled),
            )
            .expression_attribute_values(":id", attr::num(env.get()))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }

    /// Counts a new error refused by the hourly draft limit, for the settings status.
    pub async fn count_draft_limit_hit(
        &self,
        ws: &WorkspaceId,
        env: EnvironmentId,
        at: &str,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::mapping(ws, env))))
            .update_expression("ADD #hits :one SET #last = :at")
            .expression_attribute_names("#hits", "draft_limit_hits")
            .expression_attribute_names("#last", "draft_limit_last_hit")
            .expression_attribute_values(":one", attr::num(1))
            .expression_attribute_values(":at", attr::str(at))
            .send()
            .await
            .map_err(|e| StoreError::sdk("UpdateItem", e))?;
        Ok(())
    }
}

/// One environment as the settings show it: the workspace's mapping joined with the current
/// connection's forwarding state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EnvironmentSettings {
    pub id: i64,
    pub name: Option<String>,
    pub channel_id: Option<String>,
    pub exceptions: bool,
    pub enabled: bool,
    /// `active`, `unavailable`, `degraded` or `none`.
    pub forwarding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarding_error: Option<String>,
    pub draft_limit_hits: u64,
    pub draft_limit_last_hit: Option<String>,
}

impl Store {
    pub(crate) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", keys::PK)
                .expression_attribute_names("#sk", keys::SK)
                .expression_attribute_values(":pk", attr::str(&pk))
                .expression_attribute_values(":prefix", attr::str(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::sdk("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(items),
            }
        }
    }

    /// Every environment the workspace has a mapping for, or the connection forwards, by id.
    pub async fn environment_settings(
        &self,
        ws: &WorkspaceId,
        connection: Option<&crate::ids::ConnectionId>,
    ) -> Result<Vec<EnvironmentSettings>, StoreError> {
        let mut by_id: std::collections::BTreeMap<i64, EnvironmentSettings> = Default::default();
        let env_id = |item: &Item| {
            attr::n(item, "environment_id").or_else(|| {
                attr::s(item, keys::SK)
                    .and_then(|sk| sk.strip_prefix(keys::forwarding_prefix()))
                    .and_then(|id| id.parse().ok())
            })
        };
        for item in self
            .query_prefix(format!("WS#{ws}"), keys::forwarding_prefix())
            .await?
        {
            let Some(id) = env_id(&item) else { continue };
            let m = from_item(&item);
            by_id.insert(
                id,
                EnvironmentSettings {
                    id,
                    name: attr::s(&item, "name").map(str::to_owned),
                    channel_id: m.channel_id.map(String::from),
                    exceptions: m.exceptions,
                    enabled: m.enabled,
                    forwarding: "none".into(),
                    forwarding_error: None,
                    draft_limit_hits: attr::n(&item, "draft_limit_hits").unwrap_or(0).max(0) as u64,
                    draft_limit_last_hit: attr::s(&item, "draft_limit_last_hit").map(str::to_owned),
                },
            );
        }
        if let Some(conn) = connection {
            for item in self
                .query_prefix(format!("CONN#{conn}"), keys::forwarding_prefix())
                .await?
            {
                let Some(id) = env_id(&item) else { continue };
                let entry = by_id.entry(id).or_insert_with(|| EnvironmentSettings {
                    id,
                    name: None,
                    channel_id: None,
                    exceptions: true,
                    enabled: true,
                    forwarding: "none".into(),
                    forwarding_error: None,
                    draft_limit_hits: 0,
                    draft_limit_last_hit: None,
                });
                if let Some(name) = attr::s(&item, "name") {
                    entry.name = Some(name.to_owned());
                }
                entry.forwarding = attr::s(&item, "forwarding").unwrap_or("none").to_owned();
                entry.forwarding_error = attr::s(&item, "forwarding_error").map(str::to_owned);
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// Replaces an existing mapping's channel and toggles; `Ok(false)` when the workspace has no
    /// such environment.
    pub async fn update_mapping(
        &self,
        ws: &WorkspaceId,
        env: EnvironmentId,
        m: &Mapping,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::mapping(ws, env))))
            .update_expression("SET #c = :c, #e = :e, #n = :n")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#c", "channel_id")
            .expression_attribute_names("#e", "exceptions")
            .expression_attribute_names("#n", "enabled")
            .expression_attribute_values(
                ":c",
                attr::opt_str(m.channel_id.as_ref().map(|c| c.as_str())),
            )
            .expression_attribute_values(
                ":e",
                aws_sdk_dynamodb::types::AttributeValue::Bool(m.exceptions),
            )
            .expression_attribute_values(
                ":n",
                aws_sdk_dynamodb::types::AttributeValue::Bool(m.enabled),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }

    /// The workspace's current connection, if it ever connected.
    pub async fn workspace_connection(
        &self,
        ws: &WorkspaceId,
    ) -> Result<Option<super::connections::Connection>, StoreError> {
        let Some(pointer) = self.get(keys::workspace_connection(ws)).await? else {
            return Ok(None);
        };
        let Some(id) = attr::s(&pointer, "connection_id")
            .and_then(|c| crate::ids::ConnectionId::parse(c).ok())
        else {
            return Ok(None);
        };
        self.get_connection(&id).await
    }
}

impl Store {
    /// A newly discovered environment starts as Do not import; an existing mapping (from an earlier
    /// connection, or set by a reviewer) is left exactly as it is. `true` when it was created.
    pub async fn create_mapping_if_absent(
        &self,
        ws: &WorkspaceId,
        env: EnvironmentId,
        name: &str,
    ) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::error::SdkError;
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut item = self.key(keys::mapping(ws, env));
        item.insert("channel_id".into(), AttributeValue::Null(true));
        item.insert("exceptions".into(), AttributeValue::Bool(true));
        item.insert("enabled".into(), AttributeValue::Bool(true));
        item.insert("name".into(), attr::str(name));
        item.insert("environment_id".into(), attr::num(env.get()));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::sdk("PutItem", e)),
        }
    }
}
