//! DynamoDB adapter: one table, keys in [`keys`]. Errors say whether a retry can help; SDK details go
//! to the log, never to a client.

pub mod connections;
pub mod drafts;
pub mod forwarding;
pub mod ingest;
pub mod keys;
pub mod mappings;
pub mod oauth_states;
pub mod review;
pub mod schema;
pub mod sync;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct Store {
    client: Client,
    table: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// DynamoDB did not answer, throttled, or failed: the caller answers 503 and nothing is half-written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// An item exists but cannot be read back; a bug or a manual edit.
    #[error("stored item is malformed: {0}")]
    Malformed(String),
}

impl StoreError {
    pub(crate) fn sdk<E: std::fmt::Debug>(operation: &str, err: E) -> Self {
        Self::Unavailable(format!("{operation}: {err:?}"))
    }
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn key(&self, (pk, sk): (String, String)) -> Item {
        HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(pk)),
            (keys::SK.to_owned(), AttributeValue::S(sk)),
        ])
    }

    pub(crate) async fn get(&self, key: (String, String)) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("GetItem", e))?;
        Ok(out.item)
    }
}

impl Store {
    /// Consistent reads of up to 100 keys, asking again for any DynamoDB leaves unprocessed.
    /// Items come back keyed by (PK, SK); a key with no item is simply absent.
    pub(crate) async fn batch_get(
        &self,
        wanted: Vec<(String, String)>,
    ) -> Result<HashMap<(String, String), Item>, StoreError> {
        let mut found = HashMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(wanted.into_iter().map(|k| self.key(k)).collect()))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
        for round in 0..5u64 {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| StoreError::sdk("BatchGetItem", e))?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                let pk = attr::s(&item, keys::PK).unwrap_or_default().to_owned();
                let sk = attr::s(&item, keys::SK).unwrap_or_default().to_owned();
                found.insert((pk, sk), item);
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => {
                    request = rest;
                    tokio::time::sleep(std::time::Duration::from_millis(10 * (round + 1))).await;
                }
                _ => return Ok(found),
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed".into(),
        ))
    }
}

/// Names of the two attributes a lease on an item is kept in.
pub(crate) struct LeaseAttrs {
    pub until: &'static str,
    pub owner: &'static str,
}

impl Store {
    /// Takes a lease on an existing item until `until_ms`, unless another owner holds one that has
    /// not run out. `false` while someone else holds it; a crashed holder's lease simply expires.
    pub(crate) async fn acquire_lease(
        &self,
        key: (String, String),
        attrs: LeaseAttrs,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .update_expression("SET #until = :until, #owner = :owner")
            .condition_expression(
                "attribute_exists(PK) AND (attribute_not_exists(#until) OR #until < :now)",
            )
            .expression_attribute_names("#until", attrs.until)
            .expression_attribute_names("#owner", attrs.owner)
            .expression_attribute_values(":until", attr::num(until_ms))
            .expression_attribute_values(":owner", attr::str(owner))
            .expression_attribute_values(":now", attr::num(now_ms))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e))
                if e.err().is_conditional_check_failed_exception() =>
            {
                Ok(false)
            }
            Err(e) => Err(StoreError::sdk("UpdateItem", e)),
        }
    }
}

/// Readers for attribute maps that turn absence or a wrong type into `None`.
pub(crate) mod attr {
    use super::Item;
    use aws_sdk_dynamodb::types::AttributeValue;

    pub fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    }

    pub fn n(item: &Item, name: &str) -> Option<i64> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
    }

    pub fn b(item: &Item, name: &str) -> Option<bool> {
        item.get(name).and_then(|v| v.as_bool().ok()).copied()
    }

    pub fn ns_max(item: &Item, name: &str) -> Option<i64> {
        item.get(name)
            .and_then(|v| v.as_ns().ok())
            .and_then(|set| set.iter().filter_map(|n| n.parse().ok()).max())
    }

    pub fn str(v: impl Into<String>) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    pub fn num(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }

    pub fn opt_str(v: Option<&str>) -> AttributeValue {
        match v {
            Some(s) => AttributeValue::S(s.to_owned()),
            None => AttributeValue::Null(true),
        }
    }
}
