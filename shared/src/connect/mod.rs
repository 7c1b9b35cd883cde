//! Connecting a workspace to PostHog and disconnecting it (DESIGN.md §6, §7).
//!
//! [`Connector::start`] answers the authorize URL and remembers a one-time state;
//! [`Connector::finish`] is the OAuth callback: it exchanges the code, stores the tokens and the
//! webhook signing secret, provisions one destination per granted project, and makes the
//! connection current — or, on a transient failure, undoes all of it.
//! [`Connector::disconnect`] stops forwarding and drops the credentials, never drafts or mappings.

mod disconnect;
mod provision;
pub mod tokens;
mod upkeep;

pub use disconnect::{CleanupReport, DisconnectReport, TokenOverride};
pub use provision::{Callback, CallbackError};
pub use upkeep::UpkeepError;

use crate::caller::Caller;
use crate::config::{self, ConfigError};
use crate::ids::WorkspaceId;
use crate::pkce::Pkce;
use crate::posthog::{self, BaseUrls, OAuthApp, PostHog, Region};
use crate::random::{self, RandomError};
use crate::secrets::Secrets;
use crate::store::connections::ConnectionStatus;
use crate::store::oauth_states::PendingAuthorization;
use crate::store::{Store, StoreError};
use time::OffsetDateTime;

/// Everything connect and disconnect need, built once per function instance.
pub struct Connector {
    pub store: Store,
    pub secrets: Secrets,
    pub posthog: PostHog,
    /// `PUBLIC_API_URL`, without a trailing slash: the redirect URI and webhook URLs start here.
    pub public_api_url: String,
    /// `DASHBOARD_URL`, without a trailing slash: where the callback sends the browser back.
    pub dashboard_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the workspace is already connected to PostHog")]
    AlreadyConnected,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

pub(crate) fn now_rfc3339() -> String {
    crate::occurrence::rfc3339(OffsetDateTime::now_utc())
}

impl Connector {
    pub fn new(
        store: Store,
        secrets: Secrets,
        posthog: PostHog,
        public_api_url: &str,
        dashboard_url: &str,
    ) -> Self {
        Self {
            store,
            secrets,
            posthog,
            public_api_url: public_api_url.trim_end_matches('/').to_owned(),
            dashboard_url: dashboard_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Exactly this URI is registered at PostHog, which compares it character for character.
    pub fn redirect_uri(&self) -> String {
        format!("{}/integrations/posthog/callback", self.public_api_url)
    }

    pub fn webhook_url(&self, conn: &crate::ids::ConnectionId) -> String {
        format!("{}/webhooks/posthog/{conn}", self.public_api_url)
    }

    pub(crate) fn dashboard_redirect(&self, outcome: Result<(), &str>) -> String {
        match outcome {
            Ok(()) => format!(
                "{}/integrations/posthog?status=connected",
                self.dashboard_url
            ),
            Err(code) => format!("{}/integrations/posthog?error={code}", self.dashboard_url),
        }
    }

    /// From the environment (`TABLE_NAME`, `SECRET_PREFIX`, `PUBLIC_API_URL`, `DASHBOARD_URL`,
    /// `POSTHOG_CLIENT_ID`, `POSTHOG_US_BASE_URL`, `POSTHOG_EU_BASE_URL`), once at start. The
    /// client secret, for a confidential client, is read from `{prefix}oauth-client`.
    pub async fn from_env(budget: crate::aws::CallBudget) -> Result<Self, ConfigError> {
        let sdk = crate::aws::load(budget).await;
        let store = Store::from_config(&sdk, config::required("TABLE_NAME")?);
        let secrets = Secrets::from_config(&sdk, config::required("SECRET_PREFIX")?);
        let app = OAuthApp::stored(config::required("POSTHOG_CLIENT_ID")?, secrets.clone());
        let posthog = PostHog::new(BaseUrls::from_env()?, app, posthog::Budget::DEFAULT)
            .map_err(|e| ConfigError::Invalid("POSTHOG_CLIENT_ID", e.to_string()))?;
        Ok(Self::new(
            store,
            secrets,
            posthog,
            &config::required("PUBLIC_API_URL")?,
            &config::required("DASHBOARD_URL")?,
        ))
    }

    pub fn tokens(&self) -> tokens::TokenKeeper<'_> {
        tokens::TokenKeeper {
            store: &self.store,
            secrets: &self.secrets,
            posthog: &self.posthog,
        }
    }

    async fn connected(&self, ws: &WorkspaceId) -> Result<bool, StoreError> {
        Ok(self
            .store
            .get_workspace_connection(ws)
            .await?
            .is_some_and(|c| c.status == ConnectionStatus::Connected))
    }

    /// `POST /integrations/posthog/connect`: the URL to send the user to.
    pub async fn start(&self, who: &Caller, region: Region) -> Result<String, StartError> {
        if self.connected(&who.workspace_id).await? {
            return Err(StartError::AlreadyConnected);
        }
        let state = random::url_token()?;
        let pkce = Pkce::generate()?;
        let pending = PendingAuthorization {
            workspace_id: who.workspace_id.clone(),
            user: who.user.clone(),
            region: region.as_str().to_owned(),
            verifier: pkce.verifier,
        };
        self.store
            .put_oauth_state(&state, &pending, OffsetDateTime::now_utc().unix_timestamp())
            .await?;
        tracing::info!(workspace_id = %who.workspace_id, region = region.as_str(), "connect started");
        Ok(posthog::authorize_url(
            &self.posthog,
            region,
            &self.redirect_uri(),
            &state,
            &pkce.challenge,
        ))
    }
}

/// The OAuth application: `client_id`, and the client secret if an operator stored one under
/// `{prefix}oauth-client` (a bare string, or JSON with `client_secret`). No secret: a public client.
pub async fn oauth_app(secrets: &Secrets, client_id: String) -> Result<OAuthApp, ConfigError> {
    let stored = secrets
        .get(&secrets.oauth_client_name())
        .await
        .map_err(|e| ConfigError::Invalid("SECRET_PREFIX", format!("OAuth client secret: {e}")))?;
    let client_secret = stored.map(crate::posthog::parse_client_secret);
    Ok(OAuthApp {
        client_id,
        client_secret,
        stored_secret: None,
    })
}

/// A state this backend could have made: 43 URL-safe characters (anything else is not looked up).
pub(crate) fn plausible_state(state: &str) -> bool {
    state.len() == 43
        && state
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
