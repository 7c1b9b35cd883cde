//! `make run`'s gateway: the JWT authorizer stand-in refuses what API Gateway's would, and requests
//! reach the functions' handlers as payload 2.0 events.

use flowback_local::auth::{self, Verifier};
use flowback_local::gateway::{router, Functions};
use flowback_tests::stack::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::Arc;

const SECRET: &str = "test-local-jwt-secret";

async fn serve(h: &Harness) -> String {
    let functions = Arc::new(Functions {
        webhook: webhook::Webhook::new(h.store.clone(), h.secrets.clone(), 500),
        drafts: drafts::Drafts::new(h.store.clone()),
        settings: settings::Settings::new(flowback_tests::harness::connector_for(
            &h.store,
            &h.secrets,
            "http://127.0.0.1:9",
            "http://127.0.0.1:3000",
            "http://127.0.0.1:5173",
        )),
        oauth: oauth::OAuth::new(flowback_tests::harness::connector_for(
            &h.store,
            &h.secrets,
            "http://127.0.0.1:9",
            "http://127.0.0.1:3000",
            "http://127.0.0.1:5173",
        )),
        sync: sync::Sync::new(flowback_tests::harness::connector_for(
            &h.store,
            &h.secrets,
            "http://127.0.0.1:9",
            "http://127.0.0.1:3000",
            "http://127.0.0.1:5173",
        )),
    });
    let app = router(functions, Verifier::new(SECRET).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn token(claims: Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_local_authorizer_refuses_what_api_gateway_would() {
    let h = harness().await;
    let base = serve(&h).await;
    let client = reqwest::Client::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good = json!({"sub": "u", "workspace_id": h.ws.as_str(), "exp": now + 600, "iss": auth::ISSUER, "aud": auth::AUDIENCE});
    let mut expired = good.clone();
    expired["exp"] = json!(now - 600);
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("evil");
    let cases = [
        ("no token", None),
        ("other secret", Some(token(good.clone(), "not-the-secret"))),
        ("expired", Some(token(expired, SECRET))),
        ("wrong audience", Some(token(wrong_aud, SECRET))),
        ("wrong issuer", Some(token(wrong_iss, SECRET))),
        ("garbage", Some("abc.def.ghi".to_owned())),
    ];
    for (name, t) in cases {
        let mut req = client.get(format!("{base}/drafts"));
        if let Some(t) = t {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{name}");
    }
    let resp = client
        .get(format!("{base}/drafts"))
        .bearer_auth(token(good, SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"drafts": [], "next_cursor": null})
    );
}

#[tokio::test]
async fn a_signed_delivery_through_the_gateway_becomes_a_listed_draft() {
    let h = harness().await;
    let base = serve(&h).await;
    let client = reqwest::Client::new();
    let body = fixture("web-uncaught_type_error");
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = flowback::signature::sign(&h.secret, "msg_gw", ts, &body).unwrap();
    let resp = client
        .post(format!("{base}/webhooks/posthog/{}", h.conn))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_gw")
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["result"], "created");

    let t = auth::mint(SECRET, h.ws.as_str(), "user_9", 600);
    let list: Value = client
        .get(format!("{base}/drafts?limit=5"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["drafts"][0]["id"], answer["draft_id"]);
    let one = client
        .get(format!(
            "{base}/drafts/{}",
            answer["draft_id"].as_str().unwrap()
        ))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let missing = client
        .get(format!("{base}/nowhere"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn post_local_sync_runs_the_upkeep_once_and_answers_its_report() {
    let h = harness().await;
    let base = serve(&h).await;
    let resp = reqwest::Client::new()
        .post(format!("{base}/local/sync"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    // This harness seeds its connection without a connect, so the registry is empty.
    assert_eq!(report["connections_seen"], 0, "{report}");
    assert_eq!(report["failures"], 0, "{report}");
    for counter in [
        "tokens_refreshed",
        "destinations_repaired",
        "projects_provisioned",
        "cleanups_finished",
        "issues_synced",
    ] {
        assert!(report[counter].is_u64(), "{counter}: {report}");
    }
}
