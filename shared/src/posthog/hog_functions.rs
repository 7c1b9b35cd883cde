//! Hog functions (posthog-api.md §3): the `template-webhook` destination that forwards
//! `$exception` events to us, the `internal_destination` for issue lifecycle events, and their
//! removal, which PostHog only allows as `PATCH {"deleted": true}` (DELETE is refused).

use super::{PostHog, PostHogError, Region, Replay};
use crate::ids::{ConnectionId, EnvironmentId};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Issue lifecycle events that change what a synced issue shows (DESIGN.md §8).
pub const ISSUE_EVENTS: [&str; 4] = [
    "$error_tracking_issue_resolved",
    "$error_tracking_issue_reopened",
    "$error_tracking_issue_suppressed",
    "$error_tracking_issue_assigned",
];

/// A page cap for listing one project's functions; a project has a handful.
const MAX_PAGES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HogFunction {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    /// `status.state`: 1 healthy, 2 degraded, 3 disabled, 11/12 forced by PostHog.
    pub state: Option<i64>,
}

fn hog_function(v: &Value) -> Option<HogFunction> {
    Some(HogFunction {
        id: v["id"].as_str()?.to_owned(),
        kind: v["type"].as_str().unwrap_or_default().to_owned(),
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        description: v["description"].as_str().unwrap_or_default().to_owned(),
        enabled: v["enabled"].as_bool().unwrap_or(false),
        state: v["status"]["state"].as_i64(),
    })
}

/// Names the connection, so a function whose create answer was lost can still be found and removed.
fn description(conn: &ConnectionId) -> String {
    format!("Managed by Flowback (connection {conn}). Removed when the workspace disconnects.")
}

fn webhook_inputs(url: &str, signing_secret: &SecretString) -> Value {
    json!({
        "url": {"value": url},
        "method": {"value": "POST"},
        "headers": {"value": {"Content-Type": "application/json"}},
        "body": {"value": {
            "event": "{event}",
            "person": "{person}",
            "project": "{project}",
            "source": "{source}",
            "groups": "{groups}",
        }},
        "signing_secret": {"value": signing_secret.expose_secret()},
    })
}

/// The `$exception` forwarder of DESIGN.md §6.
pub fn destination(conn: &ConnectionId, url: &str, signing_secret: &SecretString) -> Value {
    json!({
        "type": "destination",
        "template_id": "template-webhook",
        "name": "Flowback: forward exceptions",
        "description": description(conn),
        "enabled": true,
        "inputs": webhook_inputs(url, signing_secret),
        "filters": {
            "source": "events",
            "events": [{"id": "$exception", "name": "$exception", "type": "events", "order": 0}],
            "filter_test_accounts": false,
        },
        "masking": null,
    })
}

/// Issue status changes pushed to the same webhook (PostHog may refuse it to third-party apps).
pub fn issue_destination(conn: &ConnectionId, url: &str, signing_secret: &SecretString) -> Value {
    let events: Vec<Value> = ISSUE_EVENTS
        .iter()
        .enumerate()
        .map(|(order, e)| json!({"id": e, "name": e, "type": "events", "order": order}))
        .collect();
    json!({
        "type": "internal_destination",
        "template_id": "template-webhook",
        "name": "Flowback: sync issue status",
        "description": description(conn),
        "enabled": true,
        "inputs": webhook_inputs(url, signing_secret),
        "filters": {"events": events},
        "masking": null,
    })
}

impl PostHog {
    /// A create is not repeated after a lost answer (it could make a second function); the caller
    /// finds such a function by its description instead.
    pub async fn create_hog_function(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        body: &Value,
    ) -> Result<HogFunction, PostHogError> {
        let url = self.url(region, &format!("/api/projects/{project}/hog_functions/"));
        let (_, answer) = self
            .send(Replay::OnlyIfNotSent, |http| {
                self.authorized(http.post(&url), token).json(body)
            })
            .await?;
        hog_function(&answer)
            .ok_or_else(|| PostHogError::Unexpected("created function without an id".into()))
    }

    /// Live (not deleted) functions of `project` whose name or description contains `search`.
    pub async fn list_hog_functions(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        search: &str,
    ) -> Result<Vec<HogFunction>, PostHogError> {
        let base = self.base(region).to_owned();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("search", search)
            .finish();
        let mut url = format!("{base}/api/projects/{project}/hog_functions/?{query}");
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let (_, body) = self
                .send(Replay::Safe, |http| self.authorized(http.get(&url), token))
                .await?;
            let results = body["results"]
                .as_array()
                .ok_or_else(|| PostHogError::Unexpected("function list without results".into()))?;
            found.extend(results.iter().filter_map(hog_function));
            match body["next"].as_str() {
                Some(next) if next.starts_with(&format!("{base}/")) => url = next.to_owned(),
                Some(_) => {
                    return Err(PostHogError::Unexpected(
                        "the function list links to another host".into(),
                    ))
                }
                None => return Ok(found),
            }
        }
        Ok(found)
    }

    /// Functions that belong to connection `conn`, found by the description it was created with.
    pub async fn functions_of(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        conn: &ConnectionId,
    ) -> Result<Vec<HogFunction>, PostHogError> {
        let mine = description(conn);
        Ok(self
            .list_hog_functions(region, token, project, conn.as_str())
            .await?
            .into_iter()
            .filter(|f| f.description == mine)
            .collect())
    }

    pub async fn get_hog_function(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        id: &str,
    ) -> Result<HogFunction, PostHogError> {
        let url = self.url(region, &function_path(project, id));
        let (_, body) = self
            .send(Replay::Safe, |http| self.authorized(http.get(&url), token))
            .await?;
        hog_function(&body).ok_or_else(|| PostHogError::Unexpected("function without an id".into()))
    }

    pub async fn set_hog_function_enabled(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        id: &str,
        enabled: bool,
    ) -> Result<(), PostHogError> {
        self.patch_function(region, token, project, id, json!({"enabled": enabled}))
            .await
    }

    /// Soft-deletes; a function PostHog no longer shows counts as deleted.
    pub async fn delete_hog_function(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        id: &str,
    ) -> Result<(), PostHogError> {
        match self
            .patch_function(region, token, project, id, json!({"deleted": true}))
            .await
        {
            Err(PostHogError::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn patch_function(
        &self,
        region: Region,
        token: &SecretString,
        project: EnvironmentId,
        id: &str,
        body: Value,
    ) -> Result<(), PostHogError> {
        let url = self.url(region, &function_path(project, id));
        self.send(Replay::Safe, |http| {
            self.authorized(http.patch(&url), token).json(&body)
        })
        .await?;
        Ok(())
    }
}

fn function_path(project: EnvironmentId, id: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/api/projects/{project}/hog_functions/{id}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_forwards_exceptions_signed_to_our_url() {
        let conn = ConnectionId::parse("c_1").unwrap();
        let secret = SecretString::from("whsec_c2VjcmV0");
        let d = destination(&conn, "https://api.example/webhooks/posthog/c_1", &secret);
        assert_eq!(d["type"], "destination");
        assert_eq!(d["template_id"], "template-webhook");
        assert_eq!(d["enabled"], true);
        assert_eq!(d["filters"]["events"][0]["id"], "$exception");
        assert_eq!(d["filters"]["events"][0]["type"], "events");
        assert_eq!(
            d["inputs"]["url"]["value"],
            "https://api.example/webhooks/posthog/c_1"
        );
        assert_eq!(d["inputs"]["method"]["value"], "POST");
        assert_eq!(d["inputs"]["signing_secret"]["value"], "whsec_c2VjcmV0");
        assert_eq!(d["inputs"]["body"]["value"]["groups"], "{groups}");
        let i = issue_destination(&conn, "https://api.example/webhooks/posthog/c_1", &secret);
        assert_eq!(i["type"], "internal_destination");
        assert_eq!(
            i["filters"]["events"][0]["id"],
            "$error_tracking_issue_resolved"
        );
    }
}
