//! Deep links into PostHog and the user's page (DESIGN.md §4 "Links").
//!
//! Everything starts from the delivered `project.url`, so US, EU and self-hosted PostHog all work.
//! Only `http` and `https` survive; ids from the event are percent-encoded as single path segments
//! so they cannot walk the path; credential-like query values in the page URL are redacted.

use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub posthog_issue: Option<String>,
    pub session_replay: Option<String>,
    pub page: Option<String>,
    pub person: Option<String>,
}

pub struct LinkInput<'a> {
    pub project_url: Option<&'a str>,
    pub issue_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub recording_status: Option<&'a str>,
    pub current_url: Option<&'a str>,
    pub person_url: Option<&'a str>,
}

/// Query and fragment parameters whose values are never stored: any name containing one of these.
const CREDENTIAL_HINTS: [&str; 7] = [
    "token", "code", "key", "secret", "password", "auth", "session",
];
pub const REDACTED: &str = "REDACTED";

pub fn links(input: &LinkInput) -> Links {
    let project = input.project_url.and_then(web_url);
    let under_project = |section: &str, id: Option<&str>| {
        let id = id
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "." && *s != "..")?;
        let mut url = project.clone()?;
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .push(section)
            .push(id);
        Some(url.to_string())
    };
    let recording_on = input.recording_status != Some("disabled");
    Links {
        posthog_issue: under_project("error_tracking", input.issue_id),
        session_replay: if recording_on {
            under_project("replay", input.session_id)
        } else {
            None
        },
        page: input.current_url.and_then(redacted_page),
        person: input.person_url.and_then(web_url).map(String::from),
    }
}

/// Parses `raw` and keeps it only when it is an `http`/`https` URL with a host.
fn web_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw.trim()).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host().is_some()).then_some(url)
}

/// The page URL without credentials: userinfo dropped, credential-like parameter values redacted
/// in the query and in a `k=v` fragment (OAuth implicit flows put tokens there).
pub fn redacted_page(raw: &str) -> Option<String> {
    let mut url = web_url(raw)?;
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if let Some(query) = url.query().map(str::to_owned) {
        url.set_query(Some(&redact_pairs(&query)));
    }
    if let Some(fragment) = url.fragment().map(str::to_owned) {
        if fragment.contains('=') {
            url.set_fragment(Some(&redact_pairs(&fragment)));
        }
    }
    Some(url.to_string())
}

fn is_credential_like(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    CREDENTIAL_HINTS.iter().any(|h| name.contains(h))
}

/// Redacts values in `a=b&c=d`, keeping every other byte as it was.
fn redact_pairs(pairs: &str) -> String {
    pairs
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_credential_like(&decode(name)) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(name: &str) -> String {
    url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(project: &'a str) -> LinkInput<'a> {
        LinkInput {
            project_url: Some(project),
            issue_id: Some("0193-issue"),
            session_id: Some("0193-session"),
            recording_status: Some("active"),
            current_url: None,
            person_url: None,
        }
    }

    #[test]
    fn links_work_for_us_eu_and_self_hosted() {
        for (project, issue) in [
            (
                "https://us.posthog.com/project/2",
                "https://us.posthog.com/project/2/error_tracking/0193-issue",
            ),
            (
                "https://eu.posthog.com/project/678/",
                "https://eu.posthog.com/project/678/error_tracking/0193-issue",
            ),
            (
                "http://posthog.internal:8000/project/7",
                "http://posthog.internal:8000/project/7/error_tracking/0193-issue",
            ),
        ] {
            let l = links(&input(project));
            assert_eq!(l.posthog_issue.as_deref(), Some(issue));
            assert_eq!(
                l.session_replay.unwrap(),
                issue.replace("error_tracking/0193-issue", "replay/0193-session")
            );
        }
    }

    #[test]
    fn non_web_schemes_are_dropped() {
        let mut i = input("javascript:alert(1)//project/2");
        i.current_url = Some("file:///etc/passwd");
        i.person_url = Some("data:text/html,<script>");
        assert_eq!(links(&i), Links::default());
    }

    #[test]
    fn ids_cannot_walk_the_path() {
        let mut i = input("https://us.posthog.com/project/2");
        i.issue_id = Some("../../admin?x=1#y");
        assert_eq!(
            links(&i).posthog_issue.unwrap(),
            "https://us.posthog.com/project/2/error_tracking/..%2F..%2Fadmin%3Fx=1%23y"
        );
    }

    #[test]
    fn dot_segments_give_no_link() {
        for id in [".", ".."] {
            let mut i = input("https://us.posthog.com/project/2");
            i.issue_id = Some(id);
            assert_eq!(links(&i).posthog_issue, None);
        }
    }

    #[test]
    fn no_replay_when_recording_is_disabled_or_no_session() {
        let mut i = input("https://us.posthog.com/project/2");
        i.recording_status = Some("disabled");
        assert_eq!(links(&i).session_replay, None);
        let mut i = input("https://us.posthog.com/project/2");
        i.session_id = None;
        assert_eq!(links(&i).session_replay, None);
    }

    #[test]
    fn credentials_in_the_page_url_are_redacted() {
        let page = redacted_page(
            "https://app.example.com/cb?code=abc&state=s&api_key=k&utm_source=x&Session_Id=9#access_token=t&x=1",
        )
        .unwrap();
        assert_eq!(
            page,
            "https://app.example.com/cb?code=REDACTED&state=s&api_key=REDACTED&utm_source=x&Session_Id=REDACTED#access_token=REDACTED&x=1"
        );
        assert_eq!(
            redacted_page("https://bob:hunter2@app.example.com/p?password=x").unwrap(),
            "https://app.example.com/p?password=REDACTED"
        );
        assert_eq!(
            redacted_page("http://localhost:8111/app/checkout?case=x#step-2").unwrap(),
            "http://localhost:8111/app/checkout?case=x#step-2"
        );
    }
}
