//! The PostHog stand-in refuses what PostHog refuses. Each test drives it over HTTP the way a
//! client would; if one of these passes against a sloppier fake, tests built on it prove nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use flowback_tests::posthog::{
    pkce_challenge, render, sign, signed_headers, DeliveryError, IssueStatus, PostHogStandIn,
    RevocationReason, TokenKind,
};
use reqwest::Method;
use serde_json::{json, Value};

const CLIENT: &str = "flowback-test";
const REDIRECT: &str = "https://api.flowback.test/integrations/posthog/callback";
const SCOPES: &str =
    "user:read organization:read project:read hog_function:write error_tracking:read";
// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn posthog() -> PostHogStandIn {
    let posthog = PostHogStandIn::start().await;
    posthog.register_client(CLIENT, REDIRECT, None);
    posthog.add_organization("org-a", "Acme");
    posthog.add_project("org-a", 2, "Shop");
    posthog.add_project("org-a", 3, "Backend");
    posthog
}

async fn code(posthog: &PostHogStandIn) -> String {
    let url = posthog.authorize_url(CLIENT, REDIRECT, SCOPES, "st4te", &pkce_challenge(VERIFIER));
    let outcome = posthog.authorize(&url).await;
    assert_eq!(outcome.status, 302, "{outcome:?}");
    assert_eq!(outcome.state().as_deref(), Some("st4te"));
    outcome.code().expect("code in the redirect")
}

async fn token_request(posthog: &PostHogStandIn, form: &[(&str, &str)]) -> (u16, Value) {
    let response = posthog
        .http()
        .post(posthog.url("/oauth/token/"))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn exchange(posthog: &PostHogStandIn, code: &str, verifier: &str) -> (u16, Value) {
    token_request(
        posthog,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(posthog: &PostHogStandIn, refresh_token: &str) -> (u16, Value) {
    token_request(
        posthog,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT),
        ],
    )
    .await
}

async fn connect(posthog: &PostHogStandIn) -> Value {
    let code = code(posthog).await;
    let (status, body) = exchange(posthog, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn call(
    posthog: &PostHogStandIn,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        posthog.url(path)
    };
    let mut request = posthog.http().request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_in(
    posthog: &PostHogStandIn,
    access: &str,
    project: i64,
    body: Value,
) -> (u16, Value) {
    let path = format!("/api/projects/{project}/hog_functions/");
    call(posthog, Method::POST, &path, access, Some(body)).await
}

fn token(body: &Value, key: &str) -> String {
    body[key].as_str().expect("token in response").to_owned()
}

fn webhook_destination(url: &str) -> Value {
    json!({
        "type": "destination",
        "name": "Flowback: forward exceptions",
        "template_id": "template-webhook",
        "enabled": true,
        "inputs": {
            "url": {"value": url},
            "method": {"value": "POST"},
            "body": {"value": {"event": "{event}", "person": "{person}", "project": "{project}",
                               "source": "{source}", "groups": "{groups}"}},
            "signing_secret": {"value": SECRET},
        },
        "filters": {"source": "events", "events": [{"id": "$exception", "name": "$exception", "type": "events", "order": 0}]},
    })
}

#[tokio::test]
async fn pkce_challenge_is_rfc_7636_s256() {
    assert_eq!(
        pkce_challenge(VERIFIER),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[tokio::test]
async fn authorization_without_s256_pkce_is_refused_through_the_redirect() {
    let posthog = posthog().await;
    let base = format!(
        "{}/oauth/authorize/?client_id={CLIENT}&redirect_uri={}&response_type=code&scope=project%3Aread&state=xyz",
        posthog.base_url(),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let challenge = pkce_challenge(VERIFIER);
    for (case, suffix) in [
        ("no PKCE", String::new()),
        (
            "plain",
            format!("&code_challenge={VERIFIER}&code_challenge_method=plain"),
        ),
        (
            "method missing (means plain)",
            format!("&code_challenge={challenge}"),
        ),
    ] {
        let outcome = posthog.authorize(&format!("{base}{suffix}")).await;
        assert_eq!(outcome.status, 302, "{case}");
        assert_eq!(
            outcome.error().as_deref(),
            Some("invalid_request"),
            "{case}"
        );
        assert_eq!(outcome.state().as_deref(), Some("xyz"), "{case}");
        assert_eq!(outcome.code(), None, "{case}");
        let location = outcome.location.expect("redirect");
        assert!(location.as_str().starts_with(REDIRECT), "{case}");
    }
}

#[tokio::test]
async fn untrusted_client_or_redirect_uri_gets_json_not_a_redirect() {
    let posthog = posthog().await;
    let challenge = pkce_challenge(VERIFIER);
    let unknown = posthog.authorize_url("someone-else", REDIRECT, SCOPES, "s", &challenge);
    let elsewhere = posthog.authorize_url(CLIENT, "https://evil.test/cb", SCOPES, "s", &challenge);
    let trailing_slash =
        posthog.authorize_url(CLIENT, &format!("{REDIRECT}/"), SCOPES, "s", &challenge);
    let extra_query =
        posthog.authorize_url(CLIENT, &format!("{REDIRECT}?x=1"), SCOPES, "s", &challenge);
    for url in [unknown, elsewhere, trailing_slash, extra_query] {
        let outcome = posthog.authorize(&url).await;
        assert_eq!(outcome.status, 400, "{url}");
        assert!(outcome.location.is_none(), "{url}");
        assert_eq!(outcome.error().as_deref(), Some("invalid_request"), "{url}");
        assert!(outcome.body.as_ref().expect("JSON body")["error_description"].is_string());
    }
}

#[tokio::test]
async fn loopback_redirect_registered_without_port_matches_any_port() {
    let posthog = posthog().await;
    posthog.register_client("local", "http://127.0.0.1/callback", None);
    let challenge = pkce_challenge(VERIFIER);
    let url = posthog.authorize_url(
        "local",
        "http://127.0.0.1:8123/callback",
        "",
        "s",
        &challenge,
    );
    assert_eq!(posthog.authorize(&url).await.status, 302);
    let other_path =
        posthog.authorize_url("local", "http://127.0.0.1:8123/other", "", "s", &challenge);
    assert_eq!(posthog.authorize(&other_path).await.status, 400);
}

#[tokio::test]
async fn wrong_or_missing_verifier_is_refused_and_does_not_burn_the_code() {
    let posthog = posthog().await;
    let code = code(&posthog).await;
    let wrong = "x".repeat(43);
    let (status, body) = exchange(&posthog, &code, &wrong).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant"})));

    let (status, body) = token_request(
        &posthog,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", CLIENT),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");

    // The challenge itself is not the verifier: "plain" PKCE does not work at the token endpoint.
    let (status, _) = exchange(&posthog, &code, &pkce_challenge(VERIFIER)).await;
    assert_eq!(status, 400);

    let (status, body) = exchange(&posthog, &code, VERIFIER).await;
    assert_eq!(status, 200, "{body}");
    assert!(token(&body, "access_token").starts_with("pha_"));
    assert!(token(&body, "refresh_token").starts_with("phr_"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], SCOPES);
    assert_eq!(body["scoped_teams"], json!([]));
    assert_eq!(body["scoped_organizations"], json!([]));
}

#[tokio::test]
async fn a_code_works_once() {
    let posthog = posthog().await;
    let code = code(&posthog).await;
    assert_eq!(exchange(&posthog, &code, VERIFIER).await.0, 200);
    let (status, body) = exchange(&posthog, &code, VERIFIER).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant"})));

    let exchanges = posthog.requests_to("POST", "/oauth/token");
    assert_eq!(
        exchanges.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 400]
    );
    assert_eq!(
        exchanges[0].param("code_verifier").as_deref(),
        Some(VERIFIER)
    );
    assert_eq!(posthog.request_log()[0].path, "/oauth/authorize/");
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let posthog = posthog().await;
    let late = code(&posthog).await;
    posthog.advance_clock(Duration::from_secs(4 * 60 + 59));
    let in_time = code(&posthog).await;
    posthog.advance_clock(Duration::from_secs(2));
    assert_eq!(exchange(&posthog, &late, VERIFIER).await.0, 400);
    assert_eq!(exchange(&posthog, &in_time, VERIFIER).await.0, 200);
}

#[tokio::test]
async fn the_token_request_must_repeat_the_redirect_uri() {
    let posthog = posthog().await;
    let code = code(&posthog).await;
    for redirect in [Some("https://api.flowback.test/other"), None] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", CLIENT),
            ("code_verifier", VERIFIER),
        ];
        if let Some(redirect) = redirect {
            form.push(("redirect_uri", redirect));
        }
        let (status, body) = token_request(&posthog, &form).await;
        assert_eq!(status, 400, "{redirect:?}");
        assert_eq!(body["error"], "invalid_request", "{redirect:?}");
    }
}

#[tokio::test]
async fn confidential_clients_authenticate_by_post_or_basic() {
    let posthog = posthog().await;
    posthog.register_client("secretive", REDIRECT, Some("s3cret"));
    let challenge = pkce_challenge(VERIFIER);
    let authorize = posthog.authorize_url("secretive", REDIRECT, SCOPES, "s", &challenge);
    let code = posthog.authorize(&authorize).await.code().expect("code");
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", "secretive"),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = token_request(&posthog, &base).await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));
    let mut wrong = base.to_vec();
    wrong.push(("client_secret", "guess"));
    assert_eq!(token_request(&posthog, &wrong).await.0, 401);

    let response = posthog
        .http()
        .post(posthog.url("/oauth/token"))
        .basic_auth("secretive", Some("s3cret"))
        .form(&base[..2].iter().chain(&base[3..]).collect::<Vec<_>>())
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_token_endpoint_takes_json_of_scalars() {
    let posthog = posthog().await;
    let code = code(&posthog).await;
    let post = |body: Value| {
        posthog
            .http()
            .post(posthog.url("/oauth/token/"))
            .json(&body)
            .send()
    };
    let nested = post(json!({"grant_type": "authorization_code", "code": {"nested": code}}))
        .await
        .expect("token request");
    assert_eq!(nested.status(), 400);
    let body: Value = nested.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");

    let response = post(json!({
        "grant_type": "authorization_code", "code": code, "client_id": CLIENT,
        "redirect_uri": REDIRECT, "code_verifier": VERIFIER,
    }))
    .await
    .expect("token request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn unknown_grant_types_are_refused() {
    let posthog = posthog().await;
    let (status, body) = token_request(
        &posthog,
        &[("grant_type", "client_credentials"), ("client_id", CLIENT)],
    )
    .await;
    assert_eq!(
        (status, body),
        (400, json!({"error": "unsupported_grant_type"}))
    );
}

#[tokio::test]
async fn refresh_rotates_and_the_replaced_tokens_stop_working() {
    let posthog = posthog().await;
    let first = connect(&posthog).await;
    let (status, second) = refresh(&posthog, &token(&first, "refresh_token")).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["scope"], first["scope"]);

    // DOT revokes the access token issued with a refresh token when that one is rotated.
    let (status, _) = call(
        &posthog,
        Method::GET,
        "/api/projects/2/",
        &token(&first, "access_token"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &posthog,
        Method::GET,
        "/api/projects/2/",
        &token(&second, "access_token"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Within the 2-minute grace a retry with the old token answers the same new pair.
    posthog.advance_clock(Duration::from_secs(119));
    let (status, again) = refresh(&posthog, &token(&first, "refresh_token")).await;
    assert_eq!(status, 200);
    assert_eq!(again["refresh_token"], second["refresh_token"]);
    assert_eq!(again["access_token"], second["access_token"]);
}

#[tokio::test]
async fn reuse_after_the_grace_revokes_the_whole_family() {
    let posthog = posthog().await;
    let first = connect(&posthog).await;
    let (_, second) = refresh(&posthog, &token(&first, "refresh_token")).await;
    posthog.advance_clock(Duration::from_secs(121));

    let (status, body) = refresh(&posthog, &token(&first, "refresh_token")).await;
    assert_eq!((status, body), (400, json!({"error": "invalid_grant"})));

    // The legitimate holder of the newest pair is cut off too.
    let (status, _) = call(
        &posthog,
        Method::GET,
        "/api/projects/2/",
        &token(&second, "access_token"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        refresh(&posthog, &token(&second, "refresh_token")).await.0,
        400
    );
    let revoked = posthog.revoked_tokens();
    assert!(revoked
        .iter()
        .any(|r| r.token == token(&second, "refresh_token")
            && r.kind == TokenKind::Refresh
            && r.reason == RevocationReason::FamilyReuse));
}

#[tokio::test]
async fn tokens_expire_on_posthogs_clock() {
    let posthog = posthog().await;
    let tokens = connect(&posthog).await;
    posthog.advance_clock(Duration::from_secs(3600));
    let response = posthog
        .http()
        .get(posthog.url("/api/projects/2/"))
        .bearer_auth(token(&tokens, "access_token"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["type"], "authentication_error");

    // An unused refresh token lives 30 days.
    let (status, renewed) = refresh(&posthog, &token(&tokens, "refresh_token")).await;
    assert_eq!(status, 200);
    posthog.advance_clock(Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        refresh(&posthog, &token(&renewed, "refresh_token")).await.0,
        400
    );
}

#[tokio::test]
async fn a_token_endpoint_outage_is_503_with_retry_after_and_changes_nothing() {
    let posthog = posthog().await;
    let code = code(&posthog).await;
    posthog.fail_token_requests(1);
    let response = posthog
        .http()
        .post(posthog.url("/oauth/token/"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(exchange(&posthog, &code, VERIFIER).await.0, 200);
}

#[tokio::test]
async fn revocation_answers_200_and_revokes_only_the_clients_own_tokens() {
    let posthog = posthog().await;
    let tokens = connect(&posthog).await;
    let refresh_token = token(&tokens, "refresh_token");
    let revoke = |form: Vec<(&'static str, String)>| {
        posthog
            .http()
            .post(posthog.url("/oauth/revoke/"))
            .form(&form)
            .send()
    };
    let status = revoke(vec![
        ("token", "phr_unknown".into()),
        ("client_id", CLIENT.into()),
    ])
    .await
    .expect("revoke")
    .status();
    assert_eq!(status, 200);
    posthog.register_client("other", REDIRECT, None);
    let status = revoke(vec![
        ("token", refresh_token.clone()),
        ("client_id", "other".into()),
    ])
    .await
    .expect("revoke")
    .status();
    assert_eq!(status, 200);
    assert!(!posthog.is_revoked(&refresh_token));

    let status = revoke(vec![
        ("token", refresh_token.clone()),
        ("token_type_hint", "refresh_token".into()),
        ("client_id", CLIENT.into()),
    ])
    .await
    .expect("revoke")
    .status();
    assert_eq!(status, 200);
    assert!(posthog.is_revoked(&refresh_token));
    // Revoking a refresh token takes its access token along; neither gets a grace period.
    assert!(!posthog.is_access_token_live(&token(&tokens, "access_token")));
    assert_eq!(refresh(&posthog, &refresh_token).await.0, 400);
}

#[tokio::test]
async fn a_user_who_says_no_sends_access_denied() {
    let posthog = posthog().await;
    posthog.deny_next_authorization();
    let url = posthog.authorize_url(CLIENT, REDIRECT, SCOPES, "st", &pkce_challenge(VERIFIER));
    let outcome = posthog.authorize(&url).await;
    assert_eq!(outcome.error().as_deref(), Some("access_denied"));
    assert_eq!(outcome.state().as_deref(), Some("st"));
    assert_eq!(code(&posthog).await.len(), 30);
}

#[tokio::test]
async fn granted_scope_and_scoped_teams_are_reported_and_enforced() {
    let posthog = posthog().await;
    posthog.set_granted("project:read hog_function:read", &[2]);
    let tokens = connect(&posthog).await;
    assert_eq!(tokens["scope"], "project:read hog_function:read");
    assert_eq!(tokens["scoped_teams"], json!([2]));
    let access = token(&tokens, "access_token");

    assert_eq!(
        call(&posthog, Method::GET, "/api/projects/2/", &access, None)
            .await
            .0,
        200
    );
    let (status, body) = call(&posthog, Method::GET, "/api/projects/3/", &access, None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["detail"],
        "API key does not have access to the requested project: ID 3."
    );
    // A project-scoped token cannot use listing endpoints at all.
    for path in ["/api/projects/", "/api/organizations/"] {
        let (status, body) = call(&posthog, Method::GET, path, &access, None).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(
            body["detail"],
            "API keys with scoped projects are only supported on project-based endpoints."
        );
    }
    let (status, body) = call(
        &posthog,
        Method::POST,
        "/api/projects/2/hog_functions/",
        &access,
        Some(webhook_destination(
            "https://api.flowback.test/webhooks/posthog/c1",
        )),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["detail"],
        "API key missing required scope 'hog_function:write'"
    );
}

#[tokio::test]
async fn requested_scopes_are_clamped_not_refused() {
    let posthog = posthog().await;
    let challenge = pkce_challenge(VERIFIER);
    let url = posthog.authorize_url(
        CLIENT,
        REDIRECT,
        "project:read teleport:write",
        "s",
        &challenge,
    );
    let code = posthog.authorize(&url).await.code().expect("code");
    let (_, body) = exchange(&posthog, &code, VERIFIER).await;
    assert_eq!(body["scope"], "project:read");
}

#[tokio::test]
async fn projects_come_in_pages_linked_by_absolute_urls() {
    let posthog = posthog().await;
    for id in 4..=6 {
        posthog.add_project("org-b", id, &format!("Project {id}"));
    }
    let access = token(&connect(&posthog).await, "access_token");
    let mut next = Some(posthog.url("/api/projects/"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(url) = next {
        let (status, page) = call(&posthog, Method::GET, &url, &access, None).await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 5);
        pages += 1;
        for project in page["results"].as_array().expect("results") {
            seen.push(project["id"].as_i64().expect("id"));
            assert!(project["organization"].is_string());
            assert!(project["name"].is_string());
        }
        next = page["next"].as_str().map(str::to_owned);
        if let Some(next) = &next {
            assert!(next.starts_with(posthog.base_url()), "{next}");
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, vec![2, 3, 4, 5, 6]);

    let (_, last) = call(
        &posthog,
        Method::GET,
        "/api/projects/?offset=4",
        &access,
        None,
    )
    .await;
    assert_eq!(
        last["previous"],
        posthog.url("/api/projects/?limit=2&offset=2")
    );
    let (_, org) = call(
        &posthog,
        Method::GET,
        "/api/organizations/org-b/projects/",
        &access,
        None,
    )
    .await;
    assert_eq!(org["count"], 3);
}

#[tokio::test]
async fn an_api_call_needs_a_live_bearer_token_with_the_scope() {
    let posthog = posthog().await;
    let response = posthog
        .http()
        .get(posthog.url("/api/projects/2/"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(
        call(
            &posthog,
            Method::GET,
            "/api/projects/2/",
            "pha_forged",
            None
        )
        .await
        .0,
        401
    );
    posthog.set_granted("hog_function:write", &[]);
    let access = token(&connect(&posthog).await, "access_token");
    let (status, body) = call(&posthog, Method::GET, "/api/projects/2/", &access, None).await;
    assert_eq!(status, 403);
    assert_eq!(
        body["detail"],
        "API key missing required scope 'project:read'"
    );
    // :write implies :read.
    assert_eq!(
        call(
            &posthog,
            Method::GET,
            "/api/projects/2/hog_functions/",
            &access,
            None
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn hog_function_inputs_must_be_wrapped_and_valid() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let create = |body: Value| {
        call(
            &posthog,
            Method::POST,
            "/api/projects/2/hog_functions/",
            &access,
            Some(body),
        )
    };
    let valid = webhook_destination("https://api.flowback.test/webhooks/posthog/c1");

    let mut bare = valid.clone();
    bare["inputs"]["url"] = json!("https://api.flowback.test/webhooks/posthog/c1");
    let (status, body) = create(bare).await;
    assert_eq!(status, 400);
    assert_eq!(body["type"], "validation_error");
    assert_eq!(body["attr"], "inputs__url");

    let mut no_url = valid.clone();
    no_url["inputs"]
        .as_object_mut()
        .expect("inputs")
        .remove("url");
    let (status, body) = create(no_url).await;
    assert_eq!(
        (status, body["attr"].clone(), body["code"].clone()),
        (400, json!("inputs__url"), json!("required"))
    );

    let mut bad_method = valid.clone();
    bad_method["inputs"]["method"] = json!({"value": "YELL"});
    assert_eq!(create(bad_method).await.1["attr"], "inputs__method");

    let mut no_type = valid.clone();
    no_type.as_object_mut().expect("body").remove("type");
    assert_eq!(create(no_type).await.1["attr"], "type");

    let mut bad_template = valid.clone();
    bad_template["template_id"] = json!("template-nope");
    assert_eq!(create(bad_template).await.1["attr"], "template_id");

    let mut bad_filters = valid.clone();
    bad_filters["filters"]["events"] = json!({"id": "$exception"});
    assert_eq!(create(bad_filters).await.1["attr"], "filters__events");

    assert!(
        posthog.hog_functions(2).is_empty(),
        "nothing stored by refused creates"
    );

    let (status, created) = create(valid).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("id");
    assert_eq!(id.len(), 36);
    assert_eq!(created["status"]["state"], 1);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["inputs"]["signing_secret"], json!({"secret": true}));
    let stored = posthog.hog_function(id).expect("stored");
    assert_eq!(stored.input("signing_secret"), Some(&json!(SECRET)));
    assert_eq!(stored.event_filters(), vec!["$exception"]);
    assert_eq!(stored.client_id, CLIENT);
}

#[tokio::test]
async fn functions_are_deleted_by_patch_never_by_delete() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let (_, created) = call(
        &posthog,
        Method::POST,
        "/api/projects/2/hog_functions/",
        &access,
        Some(webhook_destination(
            "https://api.flowback.test/webhooks/posthog/c1",
        )),
    )
    .await;
    let path = format!(
        "/api/projects/2/hog_functions/{}/",
        created["id"].as_str().expect("id")
    );

    let (status, body) = call(&posthog, Method::DELETE, &path, &access, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["detail"],
        "This action does not support Personal API Key access"
    );
    assert!(!posthog.hog_functions(2)[0].deleted);

    let (status, disabled) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!((status, disabled["enabled"].clone()), (200, json!(false)));
    // Echoing the masked secret back keeps it.
    let (status, _) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"inputs": {"url": {"value": "https://api.flowback.test/new"}, "signing_secret": {"secret": true}}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        posthog.hog_functions(2)[0].input("signing_secret"),
        Some(&json!(SECRET))
    );

    let (status, _) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"deleted": true})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, list) = call(
        &posthog,
        Method::GET,
        "/api/projects/2/hog_functions/",
        &access,
        None,
    )
    .await;
    assert_eq!(list["count"], 0);
    assert_eq!(
        call(&posthog, Method::GET, &path, &access, None).await.0,
        404
    );
    assert_eq!(
        call(
            &posthog,
            Method::PATCH,
            &path,
            &access,
            Some(json!({"deleted": true}))
        )
        .await
        .0,
        404
    );
    let stored = posthog.hog_functions(2);
    assert_eq!(stored.len(), 1);
    assert!(stored[0].deleted);
}

#[tokio::test]
async fn function_health_shows_in_status_and_reenabling_degrades() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let (_, created) = call(
        &posthog,
        Method::POST,
        "/api/projects/2/hog_functions/",
        &access,
        Some(webhook_destination(
            "https://api.flowback.test/webhooks/posthog/c1",
        )),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/projects/2/hog_functions/{id}/");
    posthog.set_function_state(id, 3);
    assert_eq!(
        call(&posthog, Method::GET, &path, &access, None).await.1["status"]["state"],
        3
    );
    let (_, patched) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(patched["status"]["state"], 2);
    let (status, body) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"type": "internal_destination"})),
    )
    .await;
    assert_eq!((status, body["attr"].clone()), (400, json!("type")));
}

#[tokio::test]
async fn injected_create_failures() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let body = webhook_destination("https://api.flowback.test/webhooks/posthog/c1");
    let create = |project: i64, body: Value| create_in(&posthog, &access, project, body);

    posthog.fail_hog_function_create(1, 503);
    posthog.fail_hog_function_create_after_commit(2, 504);
    assert_eq!(create(2, body.clone()).await.0, 503);
    assert!(posthog.hog_functions(2).is_empty());
    assert_eq!(create(2, body.clone()).await.0, 504);
    assert_eq!(
        posthog.hog_functions(2).len(),
        1,
        "committed before the gateway gave up"
    );
    assert_eq!(create(2, body.clone()).await.0, 201);

    let gate = PostHogStandIn::permission_denied_body(
        "The Data Pipelines addon is required for this template.",
    );
    posthog.refuse_project(3, 403, gate.clone());
    assert_eq!(create(3, body.clone()).await, (403, gate));

    posthog.refuse_internal_destinations(403, PostHogStandIn::permission_denied_body("no"));
    let mut internal = body.clone();
    internal["type"] = json!("internal_destination");
    internal["filters"]["events"] =
        json!([{"id": "$error_tracking_issue_resolved", "type": "events"}]);
    assert_eq!(create(2, internal).await.0, 403);
}

#[tokio::test]
async fn error_tracking_issues_report_the_status_posthog_has() {
    let posthog = posthog().await;
    let issue = "01932a11-2222-7333-8444-555566667777";
    posthog.set_issue_status(2, issue, IssueStatus::PendingRelease);
    let path = format!("/api/projects/2/error_tracking/issues/{issue}/");

    let access = token(&connect(&posthog).await, "access_token");
    let (status, body) = call(&posthog, Method::GET, &path, &access, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["id"].clone(), body["status"].clone()),
        (json!(issue), json!("pending_release"))
    );
    assert_eq!(
        call(
            &posthog,
            Method::GET,
            "/api/projects/3/error_tracking/issues/nope/",
            &access,
            None
        )
        .await
        .0,
        404
    );
    // error_tracking:read does not allow changing it.
    let (status, _) = call(
        &posthog,
        Method::PATCH,
        &path,
        &access,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(status, 403);

    posthog.set_granted("project:read", &[]);
    let narrow = token(&connect(&posthog).await, "access_token");
    assert_eq!(
        call(&posthog, Method::GET, &path, &narrow, None).await.0,
        403
    );
}

#[test]
fn signatures_are_standard_webhooks() {
    // The Standard Webhooks reference vector.
    let body = br#"{"test": 2432232314}"#;
    assert_eq!(
        sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let now = flowback_tests::posthog::now_unix();
    let headers = signed_headers(SECRET, "msg_1", now, b"{\"a\":1}");
    let webhook = standardwebhooks::Webhook::new(SECRET).expect("secret");
    webhook
        .verify(b"{\"a\":1}", &headers.header_map())
        .expect("the reference implementation accepts it");
    assert!(webhook.verify(b"{\"a\":2}", &headers.header_map()).is_err());
}

#[test]
fn body_templates_render_like_hog() {
    let globals = json!({
        "event": {"event": "$exception", "properties": {"$exception_types": ["TypeError", "Error"]}},
        "project": {"id": 2, "url": "https://us.posthog.com/project/2"},
    });
    let template = json!({
        "event": "{event}",
        "person": "{person}",
        "title": "{event.properties.$exception_types[1]} in {project.id}",
        "link": "{project.url}/error_tracking",
    });
    assert_eq!(
        render(&template, &globals),
        json!({
            "event": globals["event"],
            "person": null,
            "title": "TypeError in 2",
            "link": "https://us.posthog.com/project/2/error_tracking",
        })
    );
}

/// A receiver that answers from a script and keeps what it got.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receiver(script: Vec<u16>) -> Receiver {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen_in, script) = (seen.clone(), Arc::new(script));
    let app = axum::Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: String| {
                let (seen, calls, script) = (seen_in.clone(), calls.clone(), script.clone());
                async move {
                    seen.lock().expect("lock").push((headers, body));
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    let code = script.get(n).copied().unwrap_or(200);
                    (
                        StatusCode::from_u16(code).expect("status"),
                        "{\"result\":\"created\"}",
                    )
                }
            }),
        )
        .route("/elsewhere", get(|| async { "moved" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, seen }
}

#[tokio::test]
async fn deliveries_are_signed_and_retried_under_the_same_webhook_id() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let receiver = receiver(vec![503, 502, 200]).await;
    let (_, created) = call(
        &posthog,
        Method::POST,
        "/api/projects/2/hog_functions/",
        &access,
        Some(webhook_destination(&receiver.url)),
    )
    .await;
    let id = created["id"].as_str().expect("id");
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/posthog/web-handled.webhook.json"))
            .expect("fixture");

    let delivery = posthog.deliver(id, &fixture).await.expect("delivered");
    assert!(delivery.succeeded(), "{delivery:?}");
    assert_eq!(delivery.attempts.len(), 3);
    let seen = receiver.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    let webhook = standardwebhooks::Webhook::new(SECRET).expect("secret");
    for (headers, body) in &seen {
        assert_eq!(headers["webhook-id"], delivery.webhook_id.as_str());
        assert!(delivery.webhook_id.starts_with("msg_"));
        webhook
            .verify(body.as_bytes(), headers)
            .expect("valid signature");
        let body: Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(body["event"], fixture["event"]);
        assert_eq!(body["person"], fixture["person"]);
        assert_eq!(body["groups"], Value::Null);
    }

    // Disabled or deleted functions, and events their filters skip, are never delivered.
    let other = json!({"uuid": "u1", "event": "$pageview", "distinct_id": "d", "properties": {}});
    assert!(matches!(
        posthog.deliver(id, &other).await,
        Err(DeliveryError::NotRouted(_))
    ));
    assert!(posthog.send_event(2, &other).await.is_empty());
    let (_, _) = call(
        &posthog,
        Method::PATCH,
        &format!("/api/projects/2/hog_functions/{id}/"),
        &access,
        Some(json!({"enabled": false})),
    )
    .await;
    assert!(matches!(
        posthog.deliver(id, &fixture).await,
        Err(DeliveryError::NotRouted(_))
    ));
}

#[tokio::test]
async fn a_permanent_refusal_is_not_retried() {
    let posthog = posthog().await;
    let access = token(&connect(&posthog).await, "access_token");
    let receiver = receiver(vec![401]).await;
    let (_, created) = call(
        &posthog,
        Method::POST,
        "/api/projects/2/hog_functions/",
        &access,
        Some(webhook_destination(&receiver.url)),
    )
    .await;
    let event = json!({"uuid": "u2", "event": "$exception", "distinct_id": "d", "properties": {}});
    let deliveries = posthog.send_event(2, &event).await;
    assert_eq!(deliveries.len(), 1);
    let delivery = deliveries[0].as_ref().expect("delivered");
    assert_eq!(delivery.function_id, created["id"].as_str().expect("id"));
    assert_eq!(
        (delivery.attempts.len(), delivery.final_status()),
        (1, Some(401))
    );
    let body: Value = serde_json::from_str(&delivery.body).expect("json");
    assert_eq!(body["project"]["url"], posthog.url("/project/2"));
    assert!(body["source"]["url"]
        .as_str()
        .expect("source url")
        .ends_with("/configuration/"));
}

#[tokio::test]
async fn organization_scoped_tokens_see_only_their_organizations() {
    let posthog = posthog().await;
    posthog.add_organization("org-b", "Other");
    posthog.add_project("org-b", 7, "Elsewhere");
    posthog.set_scoped_organizations(&["org-b"]);
    let access = token(&connect(&posthog).await, "access_token");

    let (_, orgs) = call(&posthog, Method::GET, "/api/organizations/", &access, None).await;
    assert_eq!(orgs["count"], 1);
    assert_eq!(orgs["results"][0]["id"], "org-b");
    let (_, projects) = call(&posthog, Method::GET, "/api/projects/", &access, None).await;
    assert_eq!(projects["results"][0]["id"], 7);
    assert_eq!(
        call(&posthog, Method::GET, "/api/projects/2/", &access, None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(
            &posthog,
            Method::GET,
            "/api/organizations/org-a/",
            &access,
            None
        )
        .await
        .0,
        403
    );
    // /api/users/@me/ is exempt from project and organization scoping.
    let (status, me) = call(&posthog, Method::GET, "/api/users/@me/", &access, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["organizations"].as_array().map(Vec::len), Some(2));
}
