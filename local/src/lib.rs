//! The local stack: an HTTP server that turns each request into the API Gateway HTTP API (payload
//! 2.0) event the Lambda would receive, verifies a local HS256 token where API Gateway's JWT
//! authorizer would verify the real one, and passes its claims on the same way.

pub mod auth;
pub mod demo;
pub mod gateway;

use flowback::aws::{self, CallBudget};
use flowback::connect::Connector;
use flowback::posthog::{self, PostHog};
use flowback::secrets::Secrets;
use flowback::store::{schema, Store};
use std::sync::Arc;

pub struct Settings {
    pub port: u16,
    pub table: String,
    pub secret_prefix: String,
    pub jwt_secret: String,
    pub public_api_url: String,
    pub dashboard_url: String,
    pub posthog: flowback::posthog::BaseUrls,
    pub posthog_client_id: String,
    pub demo: bool,
}

impl Settings {
    pub fn from_env() -> Result<Self, flowback::config::ConfigError> {
        use flowback::config::{number, optional};
        let port = number("PORT", 3000u16)?;
        Ok(Self {
            port,
            table: optional("TABLE_NAME").unwrap_or_else(|| "flowback-local".into()),
            secret_prefix: optional("SECRET_PREFIX").unwrap_or_else(|| "flowback/local/".into()),
            jwt_secret: optional("LOCAL_JWT_SECRET").unwrap_or_else(|| auth::DEFAULT_SECRET.into()),
            public_api_url: optional("PUBLIC_API_URL")
                .unwrap_or_else(|| format!("http://127.0.0.1:{port}")),
            dashboard_url: optional("DASHBOARD_URL")
                .unwrap_or_else(|| "http://127.0.0.1:5173".into()),
            posthog: flowback::posthog::BaseUrls::from_env()?,
            posthog_client_id: optional("POSTHOG_CLIENT_ID")
                .unwrap_or_else(|| "flowback-local".into()),
            demo: optional("DEMO").as_deref() != Some("0"),
        })
    }
}

pub async fn run(settings: Settings) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    flowback::telemetry::init();
    let sdk = aws::load(CallBudget::API).await;
    let store = Store::from_config(&sdk, &settings.table);
    schema::create_table(store.client(), &settings.table).await?;
    let secrets = Secrets::from_config(&sdk, &settings.secret_prefix);
    let max_new = flowback::config::number("MAX_NEW_DRAFTS_PER_HOUR", 500)?;
    // A confidential client's secret lives in Secrets Manager, as deployed; locally it comes from
    // POSTHOG_CLIENT_SECRET (a public client, the default, has none).
    if let Some(client_secret) = flowback::config::optional("POSTHOG_CLIENT_SECRET") {
        let name = secrets.oauth_client_name();
        let value = secrecy::SecretString::from(client_secret);
        if secrets.get(&name).await?.is_some() {
            secrets.put(&name, &value).await?;
        } else {
            secrets.create(&name, &value).await?;
        }
    }
    let app = flowback::connect::oauth_app(&secrets, settings.posthog_client_id.clone()).await?;
    let posthog = PostHog::new(settings.posthog.clone(), app, posthog::Budget::DEFAULT)?;
    let connector = || {
        Connector::new(
            store.clone(),
            secrets.clone(),
            posthog.clone(),
            &settings.public_api_url,
            &settings.dashboard_url,
        )
    };
    let functions = Arc::new(gateway::Functions {
        oauth: oauth::OAuth::new(connector()),
        webhook: webhook::Webhook::new(store.clone(), secrets.clone(), max_new),
        settings: settings::Settings::new(connector()),
        drafts: drafts::Drafts::new(store.clone()),
        sync: sync::Sync::new(connector()),
    });
    let app = gateway::router(functions, auth::Verifier::new(&settings.jwt_secret)?);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.port)).await?;
    println!(
        "Flowback × PostHog local stack on {}",
        settings.public_api_url
    );
    println!("{}", auth::how_to_mint(&settings.jwt_secret, settings.port));
    if settings.demo {
        let base = settings.public_api_url.clone();
        let (store, secrets) = (store.clone(), secrets.clone());
        tokio::spawn(async move {
            if let Err(e) = demo::feed(&store, &secrets, &base).await {
                eprintln!("demo feed failed: {e}");
            }
        });
    } else {
        println!("DEMO=0: no sample exceptions fed; workspace ws_demo starts empty.");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
