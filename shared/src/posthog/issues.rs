//! Error tracking issues (posthog-api.md §7.1), read by `sync` for approved issues whose project
//! has no lifecycle destination.

use super::{PostHog, PostHogError, Region, Replay};
use crate::ids::EnvironmentId;
use secrecy::SecretString;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub id: String,
    /// PostHog's own word: active, resolved, pending_release, suppressed, archived.
    pub status: String,
    pub name: Option<String>,
}

impl PostHog {
    pub async fn get_issue(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        issue_id: &str,
    ) -> Result<Issue, PostHogError> {
        let id: String = url::form_urlencoded::byte_serialize(issue_id.as_bytes()).collect();
        let url = self.url(
            region,
            &format!("/api/projects/{project}/error_tracking/issues/{id}/"),
        );
        let (_, body) = self
            .send(Replay::Safe, |http| self.authorized(http.get(&url), token))
            .await?;
        Ok(Issue {
            id: body["id"].as_str().unwrap_or(issue_id).to_owned(),
            status: body["status"]
                .as_str()
                .ok_or_else(|| PostHogError::Unexpected("issue without a status".into()))?
                .to_owned(),
            name: body["name"].as_str().map(str::to_owned),
        })
    }
}
