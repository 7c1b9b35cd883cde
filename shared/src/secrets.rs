//! Secrets Manager adapter. Secrets are named under a per-stage prefix so IAM can grant each function
//! only its part: `{prefix}webhook/{connection}` (signing secret, read by the webhook),
//! `{prefix}tokens/{connection}` (OAuth tokens), `{prefix}oauth-client` (the OAuth client secret).
//! Values are `SecretString`s, so they cannot reach a log through `Debug`.

use crate::ids::ConnectionId;
use aws_sdk_secretsmanager::error::SdkError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone)]
pub struct Secrets {
    client: Client,
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
#[error("secrets unavailable: {0}")]
pub struct SecretsError(String);

impl Secrets {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, prefix: impl Into<String>) -> Self {
        Self::new(Client::new(config), prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn webhook_secret_name(&self, conn: &ConnectionId) -> String {
        format!("{}webhook/{conn}", self.prefix)
    }

    pub fn tokens_name(&self, conn: &ConnectionId) -> String {
        format!("{}tokens/{conn}", self.prefix)
    }

    pub fn oauth_client_name(&self) -> String {
        format!("{}oauth-client", self.prefix)
    }

    /// `Ok(None)` when the secret does not exist (never created, or deleted at disconnect).
    pub async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretsError> {
        match self.client.get_secret_value().secret_id(name).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::from)),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), GetSecretValueError::ResourceNotFoundException(_)) =>
            {
                Ok(None)
            }
            Err(e) => Err(SecretsError(format!("GetSecretValue: {e:?}"))),
        }
    }

    pub async fn create(&self, name: &str, value: &SecretString) -> Result<(), SecretsError> {
        self.client
            .create_secret()
            .name(name)
            .secret_string(value.expose_secret())
            .send()
            .await
            .map_err(|e| SecretsError(format!("CreateSecret: {e:?}")))?;
        Ok(())
    }

    pub async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretsError> {
        self.client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value.expose_secret())
            .send()
            .await
            .map_err(|e| SecretsError(format!("PutSecretValue: {e:?}")))?;
        Ok(())
    }

    /// Deletes at once (no recovery window): a disconnected secret must stop working now. A
    /// secret that is already gone counts as deleted, so a retried cleanup goes through.
    pub async fn delete(&self, name: &str) -> Result<(), SecretsError> {
        use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
        match self
            .client
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteSecretError::ResourceNotFoundException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(SecretsError(format!("DeleteSecret: {e:?}"))),
        }
    }
}
