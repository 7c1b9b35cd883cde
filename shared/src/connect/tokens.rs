//! A connection's OAuth tokens: kept in Secrets Manager (`{prefix}tokens/{conn}`), refreshed before
//! they expire, one refresh per connection at a time.
//!
//! PostHog rotates refresh tokens and revokes the whole family when a replaced one comes back
//! after a 2-minute grace (posthog-api.md §1.2), so two instances must never refresh at once: a
//! conditional write on the connection item is the lease. The new pair is stored before the new
//! access token is used; if that write fails, a retry within the grace gets the same pair again.

use super::now_rfc3339;
use crate::posthog::{PostHog, PostHogError, Region, TokenResponse};
use crate::secrets::{Secrets, SecretsError};
use crate::store::connections::{Connection, ConnectionStatus};
use crate::store::{Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::{Duration, Instant};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Refresh this long before PostHog's expiry, so a token handed out is good for a while.
const REFRESH_MARGIN_SECONDS: i64 = 120;
/// Longer than one refresh can take (token call with retries, one secret write).
const LEASE: Duration = Duration::from_secs(20);
/// How long a caller waits for another's refresh before giving up as unavailable.
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// PostHog will not take the refresh token again: the user must reconnect.
    #[error("the connection needs to be reconnected")]
    NeedsReconnect,
    /// No tokens are stored (never connected, or deleted at disconnect).
    #[error("no tokens are stored for this connection")]
    Missing,
    #[error(transparent)]
    PostHog(PostHogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("stored tokens are unreadable: {0}")]
    Malformed(String),
}

/// What the tokens secret holds (a JSON object).
pub struct StoredTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub expires_at: OffsetDateTime,
    pub scope: String,
    /// When PostHog issued the refresh token held, to renew it well before its 30 days run out.
    /// `None` for tokens stored before this was recorded: their age is unknown.
    pub refreshed_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
struct Raw {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    expires_at: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    refreshed_at: Option<String>,
}

/// PostHog's 1 h when a response carries no `expires_in`.
const DEFAULT_EXPIRES_IN: i64 = 3600;

impl StoredTokens {
    /// From a token response at `now`. A refresh that brings no new refresh token keeps `previous`.
    pub fn from_response(
        r: &TokenResponse,
        now: OffsetDateTime,
        previous: Option<&SecretString>,
    ) -> Self {
        let expires_in = r.expires_in.unwrap_or(DEFAULT_EXPIRES_IN).max(0);
        Self {
            access_token: r.access_token.clone(),
            refresh_token: r.refresh_token.clone().or_else(|| previous.cloned()),
            expires_at: now + time::Duration::seconds(expires_in),
            scope: r.scope.clone().unwrap_or_default(),
            refreshed_at: Some(now),
        }
    }

    pub fn parse(secret: &SecretString) -> Result<Self, TokenError> {
        let raw: Raw = serde_json::from_str(secret.expose_secret())
            .map_err(|e| TokenError::Malformed(e.to_string()))?;
        Ok(Self {
            access_token: raw.access_token,
            refresh_token: raw.refresh_token,
            expires_at: OffsetDateTime::parse(&raw.expires_at, &Rfc3339)
                .map_err(|e| TokenError::Malformed(format!("expires_at: {e}")))?,
            scope: raw.scope,
            // Unreadable counts as unknown: the next upkeep refreshes, which is always safe.
            refreshed_at: raw
                .refreshed_at
                .and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok()),
        })
    }

    pub fn to_secret(&self) -> SecretString {
        let body = serde_json::json!({
            "access_token": self.access_token.expose_secret(),
            "refresh_token": self.refresh_token.as_ref().map(|t| t.expose_secret()),
            "expires_at": crate::occurrence::rfc3339(self.expires_at),
            "scope": self.scope,
            "refreshed_at": self.refreshed_at.map(crate::occurrence::rfc3339),
        });
        SecretString::from(body.to_string())
    }

    /// The refresh token is older than `max_age` (or of unknown age): renew it now, while it
    /// still works, rather than let an idle connection die at PostHog's 30 days.
    pub fn refresh_token_older_than(&self, now: OffsetDateTime, max_age: time::Duration) -> bool {
        self.refreshed_at.is_none_or(|at| now - at > max_age)
    }

    /// The access token has expired or is about to.
    pub fn access_token_stale_at(&self, now: OffsetDateTime) -> bool {
        !self.fresh_at(now)
    }

    fn fresh_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at - now > time::Duration::seconds(REFRESH_MARGIN_SECONDS)
    }
}

/// Hands out live access tokens for connections.
pub struct TokenKeeper<'a> {
    pub store: &'a Store,
    pub secrets: &'a Secrets,
    pub posthog: &'a PostHog,
}

impl TokenKeeper<'_> {
    pub async fn stored(&self, conn: &Connection) -> Result<StoredTokens, TokenError> {
        let secret = self
            .secrets
            .get(&self.secrets.tokens_name(&conn.id))
            .await?
            .ok_or(TokenError::Missing)?;
        StoredTokens::parse(&secret)
    }

    /// An access token valid for at least two more minutes, refreshed if needed.
    pub async fn access_token(&self, conn: &Connection) -> Result<SecretString, TokenError> {
        if conn.status == ConnectionStatus::NeedsReconnect {
            return Err(TokenError::NeedsReconnect);
        }
        let tokens = self.stored(conn).await?;
        if tokens.fresh_at(OffsetDateTime::now_utc()) {
            return Ok(tokens.access_token);
        }
        self.refresh(conn, &tokens.access_token).await
    }

    /// Replaces `stale` (expired, or refused by PostHog) with a new access token. When another
    /// caller already replaced it, that token is answered and PostHog is not called again.
    pub async fn refresh(
        &self,
        conn: &Connection,
        stale: &SecretString,
    ) -> Result<SecretString, TokenError> {
        let owner = crate::random::url_token().map_err(|e| TokenError::Malformed(e.to_string()))?;
        let give_up = Instant::now() + WAIT;
        loop {
            let now_ms = now_millis();
            let lease_until = now_ms + LEASE.as_millis() as i64;
            if self
                .store
                .acquire_refresh_lease(&conn.id, &owner, now_ms, lease_until)
                .await?
            {
                let result = self.refresh_holding_lease(conn, stale).await;
                if let Err(e) = self.store.release_refresh_lease(&conn.id, &owner).await {
                    // The lease expires by itself; only the next refresh waits longer.
                    tracing::warn!(connection_id = %conn.id, error = %e, "refresh lease not released");
                }
                return result;
            }
            if let Some(replaced) = self.replaced(conn, stale).await? {
                return Ok(replaced);
            }
            if Instant::now() >= give_up {
                return Err(TokenError::PostHog(PostHogError::Unavailable(
                    "another refresh of this connection did not finish".into(),
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A fresh token other than `stale`, if someone stored one.
    async fn replaced(
        &self,
        conn: &Connection,
        stale: &SecretString,
    ) -> Result<Option<SecretString>, TokenError> {
        let tokens = self.stored(conn).await?;
        let changed = tokens.access_token.expose_secret() != stale.expose_secret();
        Ok((changed && tokens.fresh_at(OffsetDateTime::now_utc())).then_some(tokens.access_token))
    }

    async fn refresh_holding_lease(
        &self,
        conn: &Connection,
        stale: &SecretString,
    ) -> Result<SecretString, TokenError> {
        // Between our read and the lease, the previous holder may have finished.
        if let Some(replaced) = self.replaced(conn, stale).await? {
            return Ok(replaced);
        }
        if let Some(current) = self.store.get_connection(&conn.id).await? {
            if current.status == ConnectionStatus::NeedsReconnect {
                return Err(TokenError::NeedsReconnect);
            }
        }
        let tokens = self.stored(conn).await?;
        let Some(refresh_token) = tokens.refresh_token.as_ref() else {
            return self.needs_reconnect(conn).await;
        };
        let region = Region::parse(&conn.region)
            .ok_or_else(|| TokenError::Malformed(format!("region {:?}", conn.region)))?;
        let answer = match self.posthog.refresh(region, refresh_token).await {
            Ok(answer) => answer,
            Err(PostHogError::InvalidGrant(reason)) => {
                tracing::warn!(connection_id = %conn.id, reason, "PostHog refused the refresh token");
                return self.needs_reconnect(conn).await;
            }
            Err(e) => return Err(TokenError::PostHog(e)),
        };
        let next =
            StoredTokens::from_response(&answer, OffsetDateTime::now_utc(), Some(refresh_token));
        self.secrets
            .put(&self.secrets.tokens_name(&conn.id), &next.to_secret())
            .await?;
        tracing::info!(connection_id = %conn.id, "tokens refreshed");
        Ok(next.access_token)
    }

    async fn needs_reconnect(&self, conn: &Connection) -> Result<SecretString, TokenError> {
        let at = now_rfc3339();
        if self.store.mark_needs_reconnect(&conn.id, &at).await? {
            self.store
                .register_for_sync(
                    &conn.id,
                    &conn.workspace_id,
                    ConnectionStatus::NeedsReconnect,
                )
                .await?;
            self.store
                .set_workspace_status(
                    &conn.workspace_id,
                    &conn.id,
                    ConnectionStatus::NeedsReconnect,
                    &at,
                )
                .await?;
        }
        Err(TokenError::NeedsReconnect)
    }
}

fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(refresh: Option<&str>, expires_in: Option<i64>) -> TokenResponse {
        serde_json::from_value(serde_json::json!({
            "access_token": "pha_new",
            "refresh_token": refresh,
            "expires_in": expires_in,
            "scope": "project:read",
        }))
        .unwrap()
    }

    #[test]
    fn expires_in_is_honoured_and_an_absent_refresh_token_keeps_the_old_one() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let old = SecretString::from("phr_old");
        let t = StoredTokens::from_response(&response(None, Some(600)), now, Some(&old));
        assert_eq!(t.expires_at, now + time::Duration::seconds(600));
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "phr_old");
        let t = StoredTokens::from_response(&response(Some("phr_new"), None), now, Some(&old));
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "phr_new");
        assert_eq!(t.expires_at, now + time::Duration::hours(1));
        assert!(t.fresh_at(now + time::Duration::minutes(57)));
        assert!(!t.fresh_at(now + time::Duration::minutes(59)));
    }

    #[test]
    fn the_stored_form_reads_back() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let t = StoredTokens::from_response(&response(Some("phr_1"), Some(3600)), now, None);
        let back = StoredTokens::parse(&t.to_secret()).unwrap();
        assert_eq!(back.access_token.expose_secret(), "pha_new");
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "phr_1");
        assert_eq!(back.expires_at, t.expires_at);
        assert_eq!(back.scope, "project:read");
        assert_eq!(back.refreshed_at, Some(now));
    }

    #[test]
    fn a_refresh_token_of_unknown_or_great_age_is_due_for_renewal() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut t = StoredTokens::from_response(&response(Some("phr_1"), Some(3600)), now, None);
        let twenty_days = time::Duration::days(20);
        assert!(!t.refresh_token_older_than(now + time::Duration::days(19), twenty_days));
        assert!(t.refresh_token_older_than(now + time::Duration::days(21), twenty_days));
        t.refreshed_at = None;
        assert!(t.refresh_token_older_than(now, twenty_days));
        assert!(t.access_token_stale_at(now + time::Duration::hours(1)));
    }
}
