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
