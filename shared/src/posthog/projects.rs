//! Which projects ("environments") a token reaches (posthog-api.md §2): the `scoped_teams` of the
//! token response when the user picked projects, otherwise `/api/projects/`, page by page.

use super::{PostHog, PostHogError, Region, Replay};
use crate::ids::EnvironmentId;
use secrecy::SecretString;
use serde_json::Value;

/// A hard stop for a `next` chain that never ends (a PostHog bug must not hang the callback).
const MAX_PAGES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: EnvironmentId,
    pub name: String,
}

fn project(value: &Value) -> Option<Project> {
    let id = EnvironmentId::try_from(value["id"].as_i64()?).ok()?;
    let name = value["name"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Project {id}"));
    Some(Project { id, name })
}

impl PostHog {
    /// Every project the token was granted, sorted by id. With `scoped_teams` the project list is
    /// closed to the token (PostHog answers 403 there), so each granted project is read by id.
    pub async fn discover_projects(
        &self,
        region: Region,
        token: &SecretString,
        scoped_teams: &[i64],
    ) -> Result<Vec<Project>, PostHogError> {
        let mut found = Vec::new();
        if scoped_teams.is_empty() {
            found = self.list_projects(region, token).await?;
        } else {
            for &id in scoped_teams {
                let Ok(env) = EnvironmentId::try_from(id) else {
                    continue;
                };
                match self.get_project(region, token, env).await {
                    Ok(p) => found.push(p),
                    // Deleted since the consent: nothing to forward there.
                    Err(PostHogError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        found.sort_by_key(|p| p.id);
        found.dedup_by_key(|p| p.id);
        Ok(found)
    }

    pub async fn get_project(
        &self,
        region: Region,
        token: &SecretString,
        id: EnvironmentId,
    ) -> Result<Project, PostHogError> {
        let url = self.url(region, &format!("/api/projects/{id}/"));
        let (_, body) = self
            .send(Replay::Safe, |http| self.authorized(http.get(&url), token))
            .await?;
        project(&body).ok_or_else(|| PostHogError::Unexpected("project without an id".into()))
    }

    async fn list_projects(
        &self,
        region: Region,
        token: &SecretString,
    ) -> Result<Vec<Project>, PostHogError> {
        let base = self.base(region).to_owned();
        let mut url = format!("{base}/api/projects/");
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let (_, body) = self
                .send(Replay::Safe, |http| self.authorized(http.get(&url), token))
                .await?;
            let results = body["results"]
                .as_array()
                .ok_or_else(|| PostHogError::Unexpected("project list without results".into()))?;
            found.extend(results.iter().filter_map(project));
            match body["next"].as_str() {
                None => return Ok(found),
                // Only the configured host is ever called, whatever PostHog links to.
                Some(next) if same_origin(&base, next) => url = next.to_owned(),
                Some(_) => {
                    return Err(PostHogError::Unexpected(
                        "the project list links to another host".into(),
                    ))
                }
            }
        }
        Err(PostHogError::Unexpected(format!(
            "the project list has more than {MAX_PAGES} pages"
        )))
    }
}

fn same_origin(base: &str, link: &str) -> bool {
    match (url::Url::parse(base), url::Url::parse(link)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin() && b.path().starts_with(a.path()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination_links_are_followed_only_on_the_configured_host() {
        let base = "https://us.posthog.com";
        assert!(same_origin(
            base,
            "https://us.posthog.com/api/projects/?limit=2&offset=2"
        ));
        assert!(!same_origin(
            base,
            "https://evil.example/api/projects/?offset=2"
        ));
        assert!(!same_origin(
            base,
            "http://us.posthog.com/api/projects/?offset=2"
        ));
        assert!(same_origin(
            "http://127.0.0.1:4000",
            "http://127.0.0.1:4000/api/projects/?offset=2"
        ));
    }
}
