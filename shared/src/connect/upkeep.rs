//! What the scheduled `sync` asks of a live connection beyond its tokens (DESIGN.md §8): forwarding
//! for a project created after the connect. Built from the same destination bodies as the
//! callback, and safe to repeat: functions this connection already made in the project are
//! adopted, never made twice.

use super::{now_rfc3339, Connector};
use crate::posthog::{self, PostHogError, Project, Region};
use crate::secrets::SecretsError;
use crate::store::connections::Connection;
use crate::store::forwarding::{EnvironmentForwarding, Forwarding};
use crate::store::StoreError;
use secrecy::SecretString;

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    PostHog(#[from] PostHogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The signing secret went missing: a destination made now could never be verified.
    #[error("the connection has no webhook signing secret")]
    NoSigningSecret,
}

impl Connector {
    /// Forwarding for `project` on a live connection: the `$exception` destination and, where
    /// PostHog allows it, the issue lifecycle destination. The environment starts as Do not import
    /// (an existing mapping is kept). A permanent refusal marks the environment `unavailable`.
    pub async fn provision_environment(
        &self,
        connection: &Connection,
        region: Region,
        token: &SecretString,
        project: &Project,
    ) -> Result<EnvironmentForwarding, UpkeepError> {
        let conn = &connection.id;
        let secret = self
            .secrets
            .get(&self.secrets.webhook_secret_name(conn))
            .await?
            .ok_or(UpkeepError::NoSigningSecret)?;
        let url = self.webhook_url(conn);
        // A run that crashed after a create left a function PostHog knows and we do not.
        let existing = match self
            .posthog
            .functions_of(region, token, project.id, conn)
            .await
        {
            Ok(found) => found,
            // The project is gone: the create below says so, and the environment is recorded
            // unavailable instead of failing every run.
            Err(PostHogError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let adopt = |kind: &str| {
            existing
                .iter()
                .find(|f| f.kind == kind)
                .map(|f| f.id.clone())
        };
        let mut env = EnvironmentForwarding {
            environment_id: project.id,
            name: project.name.clone(),
            forwarding: Forwarding::Active,
            forwarding_error: None,
            destination_id: None,
            issue_destination_id: None,
            issue_destination_error: None,
            updated_at: now_rfc3339(),
        };
        let made = match adopt("destination") {
            Some(id) => Ok(id),
            None => {
                let body = posthog::destination(conn, &url, &secret);
                refused_for_good(
                    self.posthog
                        .create_hog_function(region, token, project.id, &body)
                        .await
                        .map(|f| f.id),
                )?
            }
        };
        match made {
            Ok(id) => {
                env.destination_id = Some(id);
                let issue = match adopt("internal_destination") {
                    Some(id) => Ok(id),
                    None => {
                        let body = posthog::issue_destination(conn, &url, &secret);
                        refused_for_good(
                            self.posthog
                                .create_hog_function(region, token, project.id, &body)
                                .await
                                .map(|f| f.id),
                        )?
                    }
                };
                match issue {
                    Ok(id) => env.issue_destination_id = Some(id),
                    Err(reason) => env.issue_destination_error = Some(reason),
                }
            }
            Err(reason) => {
                env.forwarding = Forwarding::Unavailable;
                env.forwarding_error = Some(reason);
            }
        }
        self.store.put_forwarding(conn, &env).await?;
        self.store
            .create_mapping_if_absent(&connection.workspace_id, project.id, &project.name)
            .await?;
        Ok(env)
    }
}

/// `Ok(Ok(id))` made, `Ok(Err(reason))` refused for good (plan gating, a project gone), `Err` a
/// failure worth another try on the next run.
fn refused_for_good(
    created: Result<String, PostHogError>,
) -> Result<Result<String, String>, PostHogError> {
    match created {
        Ok(id) => Ok(Ok(id)),
        Err(PostHogError::Refused { reason, .. }) => Ok(Err(reason)),
        Err(PostHogError::NotFound) => Ok(Err("PostHog no longer has this project".into())),
        Err(e) => Err(e),
    }
}
