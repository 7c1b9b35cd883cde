//! PostHog's OAuth server (posthog-api.md §1): the authorization URL (PKCE S256 is mandatory),
//! the code exchange, refresh and revocation, with the client authenticated by `client_id` and,
//! for a confidential client, `client_secret_post`.

use super::{PostHog, PostHogError, Region, Replay};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// What the integration needs, and nothing more (DESIGN.md §6).
pub const SCOPES: &str =
    "user:read organization:read project:read hog_function:write error_tracking:read";

/// The token endpoint's answer, PostHog's additions included. Which projects were granted is read
/// from here, never assumed: empty `scoped_teams` and `scoped_organizations` mean "all".
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub scoped_teams: Option<Vec<i64>>,
    #[serde(default)]
    pub scoped_organizations: Option<Vec<String>>,
}

impl TokenResponse {
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    pub fn scoped_teams(&self) -> &[i64] {
        self.scoped_teams.as_deref().unwrap_or_default()
    }

    pub fn scoped_organizations(&self) -> &[String] {
        self.scoped_organizations.as_deref().unwrap_or_default()
    }
}

/// The URL the user's browser is sent to.
pub fn authorize_url(
    posthog: &PostHog,
    region: Region,
    redirect_uri: &str,
    state: &str,
    code_challenge: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &posthog.app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", code_challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("{}/oauth/authorize/?{query}", posthog.base(region))
}

#[derive(Debug, Clone, Copy)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl PostHog {
    async fn client_fields(&self) -> Result<Vec<(&'static str, String)>, PostHogError> {
        let mut fields = vec![("client_id", self.app.client_id.clone())];
        if let Some(secret) = self.app.secret().await? {
            fields.push(("client_secret", secret.expose_secret().to_owned()));
        }
        Ok(fields)
    }

    async fn token_request(
        &self,
        region: Region,
        replay: Replay,
        fields: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, PostHogError> {
        let url = self.url(region, "/oauth/token/");
        let (_, body) = self
            .send(replay, |http| http.post(&url).form(&fields))
            .await?;
        serde_json::from_value(body)
            .map_err(|e| PostHogError::Unexpected(format!("token response: {e}")))
    }

    /// `authorization_code` with the PKCE verifier. A repeat after a lost answer would find the code
    /// used, so only a request that never left is retried.
    pub async fn exchange_code(
        &self,
        region: Region,
        code: &str,
        verifier: &SecretString,
        redirect_uri: &str,
    ) -> Result<TokenResponse, PostHogError> {
        let mut fields = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_verifier", verifier.expose_secret().to_owned()),
        ];
        fields.extend(self.client_fields().await?);
        self.token_request(region, Replay::OnlyIfNotSent, fields)
            .await
    }

    /// A repeat within PostHog's 2-minute grace answers the same new pair, so it is safe to retry.
    pub async fn refresh(
        &self,
        region: Region,
        refresh_token: &SecretString,
    ) -> Result<TokenResponse, PostHogError> {
        let mut fields = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.expose_secret().to_owned()),
        ];
        fields.extend(self.client_fields().await?);
        self.token_request(region, Replay::Safe, fields).await
    }

    /// RFC 7009: PostHog answers 200 whether or not the token was still alive.
    pub async fn revoke(
        &self,
        region: Region,
        token: &SecretString,
        kind: TokenKind,
    ) -> Result<(), PostHogError> {
        let hint = match kind {
            TokenKind::Access => "access_token",
            TokenKind::Refresh => "refresh_token",
        };
        let mut fields = vec![
            ("token", token.expose_secret().to_owned()),
            ("token_type_hint", hint.to_owned()),
        ];
        fields.extend(self.client_fields().await?);
        let url = self.url(region, "/oauth/revoke/");
        self.send(Replay::Safe, |http| http.post(&url).form(&fields))
            .await?;
        Ok(())
    }
}
