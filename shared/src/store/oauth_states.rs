//! Pending OAuth authorizations: written by connect, consumed exactly once by the callback.
//!
//! The PKCE verifier is kept in the item. It is worth nothing without the authorization code, which
//! PostHog hands only to our exact redirect URI; the item lives at most 10 minutes, is deleted by
//! the first callback that names it, and the table is encrypted at rest. Deriving the verifier
//! from the state with a server key instead would need one more secret for no real gain.

use super::{attr, keys, Item, Store, StoreError};
use crate::ids::WorkspaceId;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use secrecy::{ExposeSecret, SecretString};

/// How long the user has to finish at PostHog (DESIGN.md §3).
pub const STATE_TTL_SECONDS: i64 = 10 * 60;

#[derive(Debug)]
pub struct PendingAuthorization {
    pub workspace_id: WorkspaceId,
    pub user: String,
    pub region: String,
    pub verifier: SecretString,
}

impl Store {
    pub async fn put_oauth_state(
        &self,
        state: &str,
        p: &PendingAuthorization,
        now_unix: i64,
    ) -> Result<(), StoreError> {
        let mut item = self.key(keys::oauth_state(state));
        item.insert("workspace_id".into(), attr::str(p.workspace_id.as_str()));
        item.insert("user".into(), attr::str(&p.user));
        item.insert("region".into(), attr::str(&p.region));
        item.insert("verifier".into(), attr::str(p.verifier.expose_secret()));
        item.insert("created_at".into(), attr::num(now_unix));
        item.insert(keys::TTL.into(), attr::num(now_unix + STATE_TTL_SECONDS));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(|e| StoreError::sdk("PutItem", e))?;
        Ok(())
    }

    /// Deletes the state and returns what it was bound to; `None` for a state that is unknown,
    /// already used or expired. Of two concurrent callbacks with one state, exactly one gets it.
    pub async fn take_oauth_state(
        &self,
        state: &str,
        now_unix: i64,
    ) -> Result<Option<PendingAuthorization>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(keys::oauth_state(state))))
            // TTL deletion is lazy (up to days): an expired item must not count.
            .condition_expression("attribute_exists(PK) AND #ttl > :now")
            .expression_attribute_names("#ttl", keys::TTL)
            .expression_attribute_values(":now", attr::num(now_unix))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let item: Item = match out {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(StoreError::sdk("DeleteItem", e)),
        };
        let bad = |what: &str| StoreError::Malformed(format!("oauth state item: {what}"));
        let ws = attr::s(&item, "workspace_id").ok_or_else(|| bad("workspace_id"))?;
        Ok(Some(PendingAuthorization {
            workspace_id: WorkspaceId::parse(ws).map_err(|_| bad("workspace_id"))?,
            user: attr::s(&item, "user")
                .ok_or_else(|| bad("user"))?
                .to_owned(),
            region: attr::s(&item, "region")
                .ok_or_else(|| bad("region"))?
                .to_owned(),
            verifier: SecretString::from(
                attr::s(&item, "verifier")
                    .ok_or_else(|| bad("verifier"))?
                    .to_owned(),
            ),
        }))
    }
}
