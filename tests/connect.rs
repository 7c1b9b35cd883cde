//! Connecting a workspace to PostHog (DESIGN.md §6), end to end: the `oauth` handler, the PostHog
//! stand-in's consent screen and API, moto's DynamoDB and Secrets Manager, and deliveries from the
//! destinations PostHog now holds to the `webhook` handler.

use flowback::connect::tokens::TokenError;
use flowback::ids::{ChannelId, ConnectionId, EnvironmentId};
use flowback::store::connections::ConnectionStatus;
use flowback::store::forwarding::Forwarding;
use flowback::store::mappings::Mapping;
use flowback_tests::harness::{fixture, Harness, CLIENT_ID};
use flowback_tests::posthog::{pkce_challenge, PostHogStandIn, RevocationReason};
use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

/// Three projects in one organization; the stand-in pages lists by 2, so discovery must follow `next`.
async fn three_projects() -> Harness {
    let h = Harness::start().await;
    h.posthog.add_organization("org-a", "Acme");
    h.posthog.add_project("org-a", 2, "Shop");
    h.posthog.add_project("org-a", 3, "Backend");
    h.posthog.add_project("org-a", 4, "Admin");
    h
}

/// The fixture as PostHog would deliver it from `project` (its own `project` and `source`).
fn event_in(name: &str, uuid: &str) -> Value {
    let mut v = fixture(name);
    v.as_object_mut().unwrap().remove("project");
    v.as_object_mut().unwrap().remove("source");
    v["event"]["uuid"] = json!(uuid);
    v
}

fn live(functions: &[flowback_tests::posthog::HogFunction]) -> usize {
    functions.iter().filter(|f| !f.deleted).count()
}

#[tokio::test]
async fn the_authorize_url_asks_posthog_for_pkce_s256_our_scopes_and_our_exact_callback() {
    let h = three_projects().await;
    let url = url::Url::parse(&h.authorize_url().await).unwrap();
    assert!(url
        .as_str()
        .starts_with(&format!("{}/oauth/authorize/?", h.posthog.base_url())));
    let q = |k: &str| {
        url.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(q("response_type").as_deref(), Some("code"));
    assert_eq!(q("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        q("redirect_uri").unwrap(),
        format!("{}/integrations/posthog/callback", h.public_api_url)
    );
    assert_eq!(
        q("scope").as_deref(),
        Some("user:read organization:read project:read hog_function:write error_tracking:read")
    );
    assert_eq!(q("state").unwrap().len(), 43);
    assert_eq!(q("code_challenge").unwrap().len(), 43);
    // Two connects never share a state.
    let again = url::Url::parse(&h.authorize_url().await).unwrap();
    assert_ne!(
        again.query_pairs().find(|(k, _)| k == "state"),
        url.query_pairs().find(|(k, _)| k == "state")
    );
}

#[tokio::test]
async fn our_pkce_challenge_is_the_one_posthog_computes() {
    for _ in 0..20 {
        let pkce = flowback::pkce::Pkce::generate().unwrap();
        assert_eq!(
            pkce.challenge,
            pkce_challenge(pkce.verifier.expose_secret())
        );
    }
}

#[tokio::test]
async fn connecting_provisions_a_signed_exception_destination_in_every_project() {
    let h = three_projects().await;
    let landing = h.connect().await;
    assert!(landing.connected(), "{:?}", landing.url);

    let pointer = h.pointer().await.unwrap();
    assert_eq!(pointer.status, ConnectionStatus::Connected);
    let conn = h.connection().await;
    assert!(conn.id.as_str().starts_with("c_"));
    assert_eq!(conn.workspace_id, h.ws);
    assert_eq!(conn.region, "us");
    assert_eq!(conn.posthog_base_url, h.posthog.base_url());
    assert_eq!(conn.connected_by, "user_1");
    assert!(conn.scopes.iter().any(|s| s == "hog_function:write"));

    let secret = h
        .signing_secret(&conn.id)
        .await
        .expect("signing secret stored");
    let key = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(
        base64_len(key),
        32,
        "the signing secret is 32 random bytes, base64"
    );
    let tokens = h.tokens(&conn.id).await.expect("tokens stored");
    assert!(h
        .posthog
        .is_access_token_live(tokens["access_token"].as_str().unwrap()));
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("phr_"));
    assert!(tokens["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(tokens["scope"].as_str().unwrap().contains("project:read"));

    let url = format!("{}/webhooks/posthog/{}", h.public_api_url, conn.id);
    let forwarding = h.forwarding(&conn.id).await;
    assert_eq!(forwarding.len(), 3);
    for (env, (project, name)) in forwarding
        .iter()
        .zip([(2, "Shop"), (3, "Backend"), (4, "Admin")])
    {
        assert_eq!(env.environment_id.get(), project);
        assert_eq!(env.name, name);
        assert_eq!(env.forwarding, Forwarding::Active);
        assert_eq!(env.forwarding_error, None);
        let functions = h.posthog.hog_functions(project);
        assert_eq!(functions.len(), 2, "{functions:?}");
        let destination = functions.iter().find(|f| f.kind == "destination").unwrap();
        assert_eq!(env.destination_id.as_deref(), Some(destination.id.as_str()));
        assert_eq!(destination.template_id.as_deref(), Some("template-webhook"));
        assert!(destination.enabled);
        assert_eq!(destination.event_filters(), ["$exception"]);
        assert_eq!(destination.filters["events"][0]["type"], "events");
        assert_eq!(destination.input("url"), Some(&json!(url)));
        assert_eq!(destination.input("method"), Some(&json!("POST")));
        assert_eq!(
            destination.input("body"),
            Some(
                &json!({"event": "{event}", "person": "{person}", "project": "{project}", "source": "{source}", "groups": "{groups}"})
            )
        );
        assert_eq!(destination.input("signing_secret"), Some(&json!(secret)));
        assert_eq!(destination.client_id, CLIENT_ID);
        let issues = functions
            .iter()
            .find(|f| f.kind == "internal_destination")
            .unwrap();
        assert_eq!(
            env.issue_destination_id.as_deref(),
            Some(issues.id.as_str())
        );
        assert!(issues
            .event_filters()
            .iter()
            .all(|e| e.starts_with("$error_tracking_issue_")));
        assert_eq!(issues.input("url"), Some(&json!(url)));
        assert_eq!(issues.input("signing_secret"), Some(&json!(secret)));

        // Never mapped before: Do not import, with PostHog's name.
        let mapping = h
            .store
            .get_mapping(&h.ws, EnvironmentId::try_from(project).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            mapping,
            Mapping {
                channel_id: None,
                exceptions: true,
                enabled: true
            }
        );
    }
    // The state is gone once used.
    assert!(!h
        .keys()
        .await
        .iter()
        .any(|(pk, _)| pk.starts_with("OAUTH#")));
}

fn base64_len(encoded: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap()
        .len()
}

#[tokio::test]
async fn posthog_deliveries_signed_with_our_secret_become_drafts() {
    let h = three_projects().await;
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    // Do not import: PostHog delivers, we answer 200 and keep nothing.
    let deliveries = h
        .posthog
        .send_event(
            3,
            &event_in(
                "web-uncaught_type_error",
                "00000000-0000-4000-8000-000000000001",
            ),
        )
        .await;
    assert_eq!(
        deliveries.len(),
        1,
        "only the $exception destination routes it"
    );
    let d = deliveries[0].as_ref().unwrap();
    assert_eq!(d.final_status(), Some(200), "{d:?}");
    assert_eq!(d.response_json().unwrap()["reason"], "do_not_import");

    h.store
        .put_mapping(
            &h.ws,
            EnvironmentId::try_from(3).unwrap(),
            &Mapping {
                channel_id: Some(ChannelId::parse("eng-alerts").unwrap()),
                exceptions: true,
                enabled: true,
            },
        )
        .await
        .unwrap();
    let deliveries = h
        .posthog
        .send_event(
            3,
            &event_in(
                "web-uncaught_type_error",
                "00000000-0000-4000-8000-000000000002",
            ),
        )
        .await;
    let d = deliveries[0].as_ref().unwrap();
    assert!(d.attempts[0].signature.is_some(), "PostHog signed it");
    assert_eq!(d.final_status(), Some(200), "{d:?}");
    let answer = d.response_json().unwrap();
    assert_eq!(answer["result"], "created", "{answer}");
    let draft = h
        .store
        .get_draft(&conn.workspace_id, answer["draft_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(draft.environment.id, 3);
    assert_eq!(draft.channel_id, "eng-alerts");

    // A delivery signed with any other secret is refused.
    let (status, _) = h
        .post_signed(
            &conn.id,
            "whsec_dGhpcy1pcy1ub3QtdGhlLXNlY3JldC1vZi10aGlzLWNvbm4=",
            &d.body,
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_state_works_once() {
    let h = three_projects().await;
    let back = h.consent(&h.authorize_url().await).await;
    assert!(h.callback(&back).await.connected());
    let token_requests = h.posthog.requests_to("POST", "/oauth/token").len();
    let again = h.callback(&back).await;
    assert_eq!(again.error().as_deref(), Some("invalid_state"));
    assert_eq!(
        h.posthog.requests_to("POST", "/oauth/token").len(),
        token_requests,
        "a replay never reaches PostHog"
    );
    for project in [2, 3, 4] {
        assert_eq!(live(&h.posthog.hog_functions(project)), 2);
    }
}

#[tokio::test]
async fn a_forged_state_does_nothing() {
    let h = three_projects().await;
    let back = h.consent(&h.authorize_url().await).await;
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
    let before = h.keys().await;
    for state in ["A".repeat(43), "short".into(), String::new()] {
        let mut forged = back.clone();
        forged.set_query(Some(&format!("code={code}&state={state}")));
        let landing = h.callback(&forged).await;
        assert_eq!(landing.error().as_deref(), Some("invalid_state"));
    }
    let mut no_state = back.clone();
    no_state.set_query(Some(&format!("code={code}")));
    assert_eq!(
        h.callback(&no_state).await.error().as_deref(),
        Some("invalid_state")
    );
    assert!(h.posthog.requests_to("POST", "/oauth/token").is_empty());
    assert_eq!(
        h.keys().await,
        before,
        "nothing written, the real state still pending"
    );
    // The real state still works.
    assert!(h.callback(&back).await.connected());
}

#[tokio::test]
async fn a_user_who_says_no_at_posthog_comes_back_with_access_denied_and_nothing_stored() {
    let h = three_projects().await;
    h.posthog.deny_next_authorization();
    let back = h.consent(&h.authorize_url().await).await;
    let landing = h.callback(&back).await;
    assert_eq!(landing.error().as_deref(), Some("access_denied"));
    assert!(landing.param("status").is_none());
    assert!(h.keys().await.is_empty(), "{:?}", h.keys().await);
    assert!(h.posthog.requests_to("POST", "/oauth/token").is_empty());
    assert!(h.pointer().await.is_none());
    // The state died with the refusal.
    assert_eq!(
        h.callback(&back).await.error().as_deref(),
        Some("invalid_state")
    );
}

/// Every function PostHog holds for the connection named in its URL, and that connection id.
fn made_by_connect(
    h: &Harness,
) -> (
    Vec<flowback_tests::posthog::HogFunction>,
    Option<ConnectionId>,
) {
    let functions: Vec<_> = [2, 3, 4]
        .into_iter()
        .flat_map(|p| h.posthog.hog_functions(p))
        .collect();
    let conn = functions.first().map(|f| {
        let url = f.input("url").unwrap().as_str().unwrap();
        ConnectionId::parse(url.rsplit('/').next().unwrap()).unwrap()
    });
    (functions, conn)
}

async fn assert_nothing_left(h: &Harness) {
    let (functions, conn) = made_by_connect(h);
    assert!(
        !functions.is_empty(),
        "the connect got as far as creating something"
    );
    assert_eq!(
        live(&functions),
        0,
        "every created destination deleted: {functions:?}"
    );
    let patches = h.posthog.requests_to("PATCH", "/api/projects/");
    assert!(patches
        .iter()
        .all(|r| r.json().unwrap() == json!({"deleted": true})));
    assert!(
        h.posthog.requests_to("DELETE", "/").is_empty(),
        "DELETE is never used"
    );
    let conn = conn.unwrap();
    assert_eq!(h.signing_secret(&conn).await, None);
    assert_eq!(h.tokens(&conn).await, None);
    assert!(
        h.keys().await.is_empty(),
        "no item at all: {:?}",
        h.keys().await
    );
    let revoked = h.posthog.revoked_tokens();
    assert!(
        revoked
            .iter()
            .any(|r| r.reason == RevocationReason::Endpoint && r.token.starts_with("phr_")),
        "{revoked:?}"
    );
}

#[tokio::test]
async fn a_posthog_failure_on_the_second_of_three_destinations_undoes_the_whole_connect() {
    let h = three_projects().await;
    // Only the $exception destinations here, so "the 2nd of 3" means what it says.
    h.posthog.refuse_internal_destinations(
        403,
        PostHogStandIn::permission_denied_body("internal destinations are not for OAuth apps"),
    );
    h.posthog.fail_hog_function_create(2, 502);
    let landing = h.connect().await;
    assert_eq!(landing.error().as_deref(), Some("posthog_unavailable"));
    assert!(h.pointer().await.is_none());
    assert_nothing_left(&h).await;
    // The user can simply try again.
    let again = h.connect().await;
    assert!(again.connected(), "{:?}", again.url);
}

#[tokio::test]
async fn a_destination_created_behind_a_lost_answer_is_found_and_deleted() {
    let h = three_projects().await;
    h.posthog.fail_hog_function_create_after_commit(1, 504);
    let landing = h.connect().await;
    assert_eq!(landing.error().as_deref(), Some("posthog_unavailable"));
    assert_nothing_left(&h).await;
}

#[tokio::test]
async fn a_project_posthog_refuses_for_good_is_unavailable_and_the_rest_connect() {
    let h = three_projects().await;
    let reason = "The Data Pipelines addon is required to create this destination.";
    h.posthog
        .refuse_project(3, 403, PostHogStandIn::permission_denied_body(reason));
    let landing = h.connect().await;
    assert!(landing.connected(), "{:?}", landing.url);
    let conn = h.connection().await;
    let forwarding = h.forwarding(&conn.id).await;
    let by_id = |id: i64| {
        forwarding
            .iter()
            .find(|f| f.environment_id.get() == id)
            .unwrap()
    };
    assert_eq!(by_id(3).forwarding, Forwarding::Unavailable);
    assert_eq!(by_id(3).forwarding_error.as_deref(), Some(reason));
    assert_eq!(by_id(3).destination_id, None);
    assert_eq!(live(&h.posthog.hog_functions(3)), 0);
    for id in [2, 4] {
        assert_eq!(by_id(id).forwarding, Forwarding::Active);
        assert_eq!(live(&h.posthog.hog_functions(id)), 2);
    }
    // The refused environment is still known, as Do not import.
    assert!(h
        .store
        .get_mapping(&h.ws, EnvironmentId::try_from(3).unwrap())
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn without_the_issue_lifecycle_destination_forwarding_still_works() {
    let h = three_projects().await;
    h.posthog.refuse_internal_destinations(
        403,
        PostHogStandIn::permission_denied_body("This action does not support OAuth access"),
    );
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    for env in h.forwarding(&conn.id).await {
        assert_eq!(env.forwarding, Forwarding::Active);
        assert!(env.destination_id.is_some());
        assert_eq!(env.issue_destination_id, None);
        assert_eq!(
            env.issue_destination_error.as_deref(),
            Some("This action does not support OAuth access")
        );
    }
}

#[tokio::test]
async fn only_the_projects_the_user_picked_are_provisioned() {
    let h = three_projects().await;
    h.posthog.set_scoped_teams(&[4]);
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    let envs: Vec<i64> = h
        .forwarding(&conn.id)
        .await
        .iter()
        .map(|f| f.environment_id.get())
        .collect();
    assert_eq!(envs, [4]);
    assert_eq!(live(&h.posthog.hog_functions(2)), 0);
    assert_eq!(live(&h.posthog.hog_functions(3)), 0);
}

#[tokio::test]
async fn organization_scoped_grants_reach_only_that_organizations_projects() {
    let h = three_projects().await;
    h.posthog.add_project("org-b", 9, "Other org");
    h.posthog.set_scoped_organizations(&["org-b"]);
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    let envs: Vec<i64> = h
        .forwarding(&conn.id)
        .await
        .iter()
        .map(|f| f.environment_id.get())
        .collect();
    assert_eq!(envs, [9]);
}

#[tokio::test]
async fn a_grant_without_the_scopes_we_need_connects_nothing_and_is_revoked() {
    let h = three_projects().await;
    h.posthog.set_granted("user:read project:read", &[]);
    let landing = h.connect().await;
    assert_eq!(landing.error().as_deref(), Some("insufficient_scope"));
    assert!(h.keys().await.is_empty());
    assert!(h.posthog.requests_to("POST", "/api/projects/").is_empty());
    assert!(!h.posthog.revoked_tokens().is_empty());
}

#[tokio::test]
async fn connect_while_connected_is_a_conflict() {
    let h = three_projects().await;
    assert!(h.connect().await.connected());
    let (status, body) = h.post_connect(r#"{"region":"eu"}"#).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "already_connected");
}

#[tokio::test]
async fn two_callbacks_racing_connect_the_workspace_once() {
    let h = three_projects().await;
    let first = h.consent(&h.authorize_url().await).await;
    let second = h.consent(&h.authorize_url().await).await;
    let (a, b) = tokio::join!(h.callback(&first), h.callback(&second));
    let outcomes = [a.connected(), b.connected()];
    assert_eq!(outcomes.iter().filter(|c| **c).count(), 1, "{a:?} {b:?}");
    let loser = if a.connected() { b } else { a };
    assert_eq!(loser.error().as_deref(), Some("already_connected"));
    for project in [2, 3, 4] {
        assert_eq!(
            live(&h.posthog.hog_functions(project)),
            2,
            "the loser's destinations are gone"
        );
    }
}

#[tokio::test]
async fn the_connect_route_checks_its_input_and_its_caller() {
    let h = three_projects().await;
    for body in [
        r#"{"region":"ap"}"#,
        r#"{}"#,
        "not json",
        r#"{"region":"US"}"#,
    ] {
        let (status, answer) = h.post_connect(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["code"], "invalid_region");
        assert!(answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("region"));
    }
    let request = flowback_tests::harness::event(
        "POST /integrations/posthog/connect",
        "/integrations/posthog/connect",
        json!({}),
        Value::Null,
        None,
        None,
        Some(r#"{"region":"us"}"#.into()),
    );
    let response = oauth::handle(&h.oauth, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Makes the stored access token look expired to our side (PostHog still takes it).
async fn expire_stored_tokens(h: &Harness, conn: &ConnectionId) {
    let mut tokens = h.tokens(conn).await.unwrap();
    tokens["expires_at"] = json!("2020-01-01T00:00:00.000Z");
    h.secrets
        .put(
            &h.secrets.tokens_name(conn),
            &SecretString::from(tokens.to_string()),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_refreshes_rotate_the_tokens_once() {
    let h = three_projects().await;
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    let before = h.tokens(&conn.id).await.unwrap();
    expire_stored_tokens(&h, &conn.id).await;
    h.posthog.clear_request_log();

    let connectors: Vec<_> = (0..5).map(|_| h.connector()).collect();
    let results = futures_util::future::join_all(
        connectors
            .iter()
            .map(|c| async { c.tokens().access_token(&conn).await }),
    )
    .await;
    let tokens: Vec<String> = results
        .into_iter()
        .map(|r| r.unwrap().expose_secret().to_owned())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "{tokens:?}");
    let refreshes = h.posthog.requests_to("POST", "/oauth/token");
    assert_eq!(refreshes.len(), 1, "one rotation for five callers");
    assert_eq!(
        refreshes[0].param("grant_type").as_deref(),
        Some("refresh_token")
    );

    let after = h.tokens(&conn.id).await.unwrap();
    assert_eq!(after["access_token"], json!(tokens[0]));
    assert_ne!(
        after["refresh_token"], before["refresh_token"],
        "the rotated token is stored"
    );
    assert!(h.posthog.is_access_token_live(&tokens[0]));
    // The stored refresh token is the live one: the next refresh works.
    expire_stored_tokens(&h, &conn.id).await;
    let next = h.connector().tokens().access_token(&conn).await.unwrap();
    assert_ne!(next.expose_secret(), tokens[0]);
}

#[tokio::test]
async fn a_fresh_token_is_used_without_asking_posthog() {
    let h = three_projects().await;
    assert!(h.connect().await.connected());
    let conn = h.connection().await;
    h.posthog.clear_request_log();
    let token = h.connector().tokens().access_token(&conn).await.unwrap();
    assert!(h.posthog.is_access_token_live(token.expose_secret()));
    assert!(h.posthog.request_log().is_empty());
}

#[tokio::test]
async fn a_refresh_token_posthog_refuses_for_good_asks_for_a_reconnect() {
    let h = three_projects().await;
    assert!(h.connect().await.connected());
    let old = h.connection().await;
    h.posthog.revoke_application(CLIENT_ID);
    expire_stored_tokens(&h, &old.id).await;
    let result = h.connector().tokens().access_token(&old).await;
    assert!(
        matches!(result, Err(TokenError::NeedsReconnect)),
        "{result:?}"
    );
    assert_eq!(
        h.connection().await.status,
        ConnectionStatus::NeedsReconnect
    );
    assert_eq!(
        h.pointer().await.unwrap().status,
        ConnectionStatus::NeedsReconnect
    );

    // Reconnecting is allowed, makes a new connection, and removes the old one's destinations
    // with the new token (the old tokens are dead).
    let landing = h.connect().await;
    assert!(landing.connected(), "{:?}", landing.url);
    let new = h.connection().await;
    assert_ne!(new.id, old.id);
    let old_now = h.store.get_connection(&old.id).await.unwrap().unwrap();
    assert_eq!(old_now.status, ConnectionStatus::Disconnected);
    for project in [2, 3, 4] {
        let functions = h.posthog.hog_functions(project);
        assert_eq!(
            live(&functions),
            2,
            "only the new connection's: {functions:?}"
        );
        assert!(functions.iter().filter(|f| !f.deleted).all(|f| f
            .input("url")
            .unwrap()
            .as_str()
            .unwrap()
            .ends_with(new.id.as_str())));
    }
}

#[tokio::test]
async fn a_token_endpoint_hiccup_is_retried_and_an_outage_connects_nothing() {
    let h = three_projects().await;
    // PostHog's 503 temporarily_unavailable with Retry-After: 1 is worth one more try.
    h.posthog.fail_token_requests(1);
    let landing = h.connect().await;
    assert!(landing.connected(), "{:?}", landing.url);

    let h = three_projects().await;
    h.posthog.fail_token_requests(10);
    let landing = h.connect().await;
    assert_eq!(landing.error().as_deref(), Some("posthog_unavailable"));
    assert!(h.keys().await.is_empty(), "{:?}", h.keys().await);
    assert!(h.posthog.requests_to("POST", "/api/").is_empty());
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let h = three_projects().await;
    let state = "E".repeat(43);
    let eleven_minutes_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 11 * 60;
    h.store
        .put_oauth_state(
            &state,
            &flowback::store::oauth_states::PendingAuthorization {
                workspace_id: h.ws.clone(),
                user: "user_1".into(),
                region: "us".into(),
                verifier: SecretString::from("v".repeat(43)),
            },
            eleven_minutes_ago,
        )
        .await
        .unwrap();
    let back = h.consent(&h.authorize_url().await).await;
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
    let mut stale = back.clone();
    stale.set_query(Some(&format!("code={code}&state={state}")));
    assert_eq!(
        h.callback(&stale).await.error().as_deref(),
        Some("invalid_state")
    );
    assert!(h.posthog.requests_to("POST", "/oauth/token").is_empty());
}

#[tokio::test]
async fn the_region_the_user_picked_is_the_only_host_called() {
    let h = three_projects().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let posthog = flowback::posthog::PostHog::new(
        flowback::posthog::BaseUrls::new(&dead, h.posthog.base_url()).unwrap(),
        flowback::posthog::OAuthApp {
            client_id: CLIENT_ID.into(),
            client_secret: None,
            stored_secret: None,
        },
        flowback_tests::harness::TEST_BUDGET,
    )
    .unwrap();
    let connector = flowback::connect::Connector::new(
        h.store.clone(),
        h.secrets.clone(),
        posthog,
        &h.public_api_url,
        &h.dashboard_url,
    );
    let who = flowback::caller::Caller {
        workspace_id: h.ws.clone(),
        user: "user_1".into(),
    };
    let url = connector
        .start(&who, flowback::posthog::Region::Eu)
        .await
        .unwrap();
    assert!(url.starts_with(h.posthog.base_url()), "{url}");
    let back = h.consent(&url).await;
    let pairs: Vec<(String, String)> = back
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let location = connector
        .finish(flowback::connect::Callback {
            code: get("code"),
            state: get("state"),
            error: None,
        })
        .await;
    assert!(location.ends_with("?status=connected"), "{location}");
    let conn = h.connection().await;
    assert_eq!(conn.region, "eu");
    assert_eq!(conn.posthog_base_url, h.posthog.base_url());
}

#[tokio::test]
async fn a_confidential_clients_secret_is_read_from_secrets_manager_on_first_use() {
    let h = three_projects().await;
    h.posthog.register_client(
        "confidential-app",
        &format!("{}/integrations/posthog/callback", h.public_api_url),
        Some("the-client-secret"),
    );
    h.secrets
        .create(
            &h.secrets.oauth_client_name(),
            &SecretString::from(r#"{"client_secret": "the-client-secret"}"#),
        )
        .await
        .unwrap();
    let posthog = flowback::posthog::PostHog::new(
        flowback::posthog::BaseUrls::new(h.posthog.base_url(), h.posthog.base_url()).unwrap(),
        flowback::posthog::OAuthApp::stored("confidential-app".into(), h.secrets.clone()),
        flowback_tests::harness::TEST_BUDGET,
    )
    .unwrap();
    let connector = flowback::connect::Connector::new(
        h.store.clone(),
        h.secrets.clone(),
        posthog,
        &h.public_api_url,
        &h.dashboard_url,
    );
    let who = flowback::caller::Caller {
        workspace_id: h.ws.clone(),
        user: "user_1".into(),
    };
    let url = connector
        .start(&who, flowback::posthog::Region::Us)
        .await
        .unwrap();
    let back = h.consent(&url).await;
    let get = |k: &str| {
        back.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let (code, state) = (get("code"), get("state"));
    let location = connector
        .finish(flowback::connect::Callback {
            code: code.as_deref(),
            state: state.as_deref(),
            error: None,
        })
        .await;
    // The stand-in refuses a confidential client's code exchange without its secret.
    assert!(location.ends_with("?status=connected"), "{location}");
}
