//! Every file in events/ (the API Gateway payload 2.0 events for `sam local invoke -e` and
//! `cargo lambda invoke --data-file`) goes through its function's handler and gets the answer a
//! user would expect, so the files cannot rot.

use flowback_tests::stack::*;
use http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::Value;

fn event(name: &str) -> Value {
    let path = format!("{}/../events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

fn json_of(resp: Response<Body>) -> (StatusCode, Value) {
    let status = resp.status();
    if status == StatusCode::FOUND {
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        // The callback's unknown demo state goes back to the dashboard with an error.
        assert!(
            location.starts_with("https://app.flowback.example/integrations/posthog?error="),
            "{location}"
        );
        return (status, Value::Null);
    }
    (
        status,
        serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_event_file_is_answered_by_its_function() {
    let h = harness_for("ws_demo", 500, None).await;

    // The webhook event, pointed at this harness's connection and signed now, as PostHog would.
    let mut e = event("webhook-delivery");
    let conn = h.conn.as_str();
    e["pathParameters"]["connection_id"] = Value::String(conn.into());
    e["rawPath"] = Value::String(format!("/webhooks/posthog/{conn}"));
    e["requestContext"]["http"]["path"] = e["rawPath"].clone();
    let body = e["body"].as_str().unwrap().to_owned();
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let sig = flowback::signature::sign(&h.secret, "msg_demo_0001", ts, body.as_bytes()).unwrap();
    e["headers"]["webhook-timestamp"] = Value::String(ts.to_string());
    e["headers"]["webhook-signature"] = Value::String(sig);
    let req = lambda_http::request::from_str(&e.to_string()).unwrap();
    let (s, answer) = json_of(webhook::handle(&h.webhook, req).await.unwrap());
    assert_eq!(
        (s, answer["result"].as_str()),
        (StatusCode::OK, Some("created")),
        "{answer}"
    );

    let oauth = oauth::OAuth::new(flowback_tests::harness::connector_for(
        &h.store,
        &h.secrets,
        "http://127.0.0.1:9",
        "https://api.flowback.example",
        "https://app.flowback.example",
    ));
    let expected: [(&str, StatusCode, &str); 12] = [
        ("drafts-list", StatusCode::OK, ""),
        ("drafts-get", StatusCode::NOT_FOUND, "not_found"),
        ("drafts-approve", StatusCode::NOT_FOUND, "not_found"),
        ("drafts-dismiss", StatusCode::NOT_FOUND, "not_found"),
        ("drafts-restore", StatusCode::NOT_FOUND, "not_found"),
        ("issues-get", StatusCode::NOT_FOUND, "not_found"),
        ("settings-status", StatusCode::OK, ""),
        ("settings-put-environment", StatusCode::OK, ""),
        ("settings-delete-environment", StatusCode::OK, ""),
        ("oauth-connect", StatusCode::OK, ""),
        ("oauth-callback", StatusCode::FOUND, ""),
        ("settings-disconnect", StatusCode::OK, ""),
    ];
    for (name, status, code) in expected {
        let req = lambda_http::request::from_str(&event(name).to_string()).unwrap();
        let resp = if name.starts_with("drafts") || name.starts_with("issues") {
            drafts::handle(&h.drafts, req).await
        } else if name.starts_with("settings") {
            settings::handle(&h.settings, req).await
        } else {
            oauth::handle(&oauth, req).await
        };
        let (s, body) = json_of(resp.unwrap());
        assert_eq!(s, status, "{name}: {body}");
        if !code.is_empty() {
            assert_eq!(body["error"]["code"], code, "{name}");
        }
        match name {
            "drafts-list" => {
                let titles: Vec<_> = body["drafts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["title"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    titles,
                    ["TypeError: Cannot read properties of undefined (reading 'toFixed')"]
                );
            }
            "settings-put-environment" => assert_eq!(body["channel_id"], "eng-alerts"),
            "settings-status" => assert_eq!(body["environments"][0]["id"], 2),
            "oauth-connect" => assert!(body["authorize_url"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:9/oauth/authorize/?")),
            "settings-disconnect" => assert_eq!(body["status"], "disconnected"),
            _ => {}
        }
    }
}
