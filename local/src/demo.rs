//! The demo workspace `ws_demo`: connected, its environment 2 mapped to channel `demo`, and the
//! sample exceptions (real posthog-js, posthog-node and posthog-python payloads) delivered through
//! the local webhook route, signed as PostHog signs them. Other workspaces start empty.

use flowback::ids::{ChannelId, ConnectionId, EnvironmentId, WorkspaceId};
use flowback::secrets::Secrets;
use flowback::signature;
use flowback::store::connections::{Connection, ConnectionStatus};
use flowback::store::mappings::Mapping;
use flowback::store::Store;
use secrecy::SecretString;
use serde_json::Value;

pub const WORKSPACE: &str = "ws_demo";
pub const CONNECTION: &str = "conn_demo";
const SIGNING_SECRET: &str = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC1mb3ItbG9jYWwtcnVu";

/// The samples: `events/webhook-delivery.json`'s body and the other real SDK payloads.
const SAMPLES: &[(&str, &str)] = &[
    (
        "web-uncaught_type_error",
        include_str!("../../tests/fixtures/posthog/web-uncaught_type_error.webhook.json"),
    ),
    (
        "web-handled",
        include_str!("../../tests/fixtures/posthog/web-handled.webhook.json"),
    ),
    (
        "web-unhandled_rejection_string",
        include_str!("../../tests/fixtures/posthog/web-unhandled_rejection_string.webhook.json"),
    ),
    (
        "node-unhandled_rejection",
        include_str!("../../tests/fixtures/posthog/node-unhandled_rejection.webhook.json"),
    ),
    (
        "python-handled_chain",
        include_str!("../../tests/fixtures/posthog/python-handled_chain.webhook.json"),
    ),
];

type DemoError = Box<dyn std::error::Error + Send + Sync>;

pub async fn seed(store: &Store, secrets: &Secrets) -> Result<(), DemoError> {
    let ws = WorkspaceId::parse(WORKSPACE)?;
    let conn = ConnectionId::parse(CONNECTION)?;
    let connection = Connection {
        id: conn.clone(),
        workspace_id: ws.clone(),
        status: ConnectionStatus::Connected,
        region: "us".into(),
        posthog_base_url: "https://us.posthog.com".into(),
        scopes: vec!["project:read".into(), "hog_function:write".into()],
        connected_at: flowback::occurrence::rfc3339(time::OffsetDateTime::now_utc()),
        connected_by: "user_demo".into(),
    };
    store.put_connection(&connection).await?;
    store.put_workspace_pointer(&connection).await?;
    let name = secrets.webhook_secret_name(&conn);
    let secret = SecretString::from(SIGNING_SECRET);
    if secrets.get(&name).await?.is_none() {
        secrets.create(&name, &secret).await?;
    }
    store
        .put_mapping(
            &ws,
            EnvironmentId::try_from(2)?,
            &Mapping {
                channel_id: Some(ChannelId::parse("demo")?),
                exceptions: true,
                enabled: true,
            },
        )
        .await?;
    Ok(())
}

/// Seeds, then delivers every sample twice (as two users, a minute apart) and prints the drafts.
pub async fn feed(store: &Store, secrets: &Secrets, base_url: &str) -> Result<(), DemoError> {
    seed(store, secrets).await?;
    let client = reqwest::Client::new();
    let url = format!("{base_url}/webhooks/posthog/{CONNECTION}");
    let secret = SecretString::from(SIGNING_SECRET);
    println!(
        "\nFeeding {} sample exceptions into {WORKSPACE} through {url}",
        SAMPLES.len() * 2
    );
    for (n, (name, body)) in SAMPLES.iter().enumerate() {
        for repeat in 0..2 {
            let mut event: Value = serde_json::from_str(body)?;
            if repeat == 1 {
                event["event"]["uuid"] = Value::String(format!("00000000-0000-4000-8000-{n:012}"));
                event["event"]["distinct_id"] = Value::String(format!("demo-user-{n}"));
            }
            let body = event.to_string();
            let id = format!("msg_demo_{n}_{repeat}");
            let ts = time::OffsetDateTime::now_utc().unix_timestamp();
            let sig = signature::sign(&secret, &id, ts, body.as_bytes()).ok_or("cannot sign")?;
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body)
                .send()
                .await?;
            let status = resp.status();
            let answer: Value = resp.json().await.unwrap_or(Value::Null);
            println!("  {name:<32} {status} {answer}");
        }
    }
    let ws = WorkspaceId::parse(WORKSPACE)?;
    let page = store
        .list_drafts(
            &ws,
            &flowback::store::drafts::ListFilter {
                channel_id: None,
                status: None,
                limit: 25,
            },
            None,
        )
        .await?;
    println!("\nDrafts in {WORKSPACE} (newest last_seen first):");
    for d in &page.drafts {
        println!(
            "  [{:<6}] {} ({} occurrences, {} users) {}",
            d.priority.as_str(),
            d.title,
            d.occurrences,
            d.affected_users,
            d.id
        );
    }
    println!("\nRead one with its PRD: curl -s -H \"Authorization: Bearer $TOKEN\" {base_url}/drafts/<id>\n");
    Ok(())
}
