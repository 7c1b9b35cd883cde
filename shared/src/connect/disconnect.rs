//! Disconnect (DESIGN.md §7). The connection is marked disconnected first: from that instant the
//! webhook answers 410 and no draft is created. Then, at PostHog, each destination is deleted
//! (`PATCH {"deleted": true}`) and the tokens are revoked; then the secrets are deleted.
//!
//! PostHog being down never blocks a disconnect. A destination still holds its id on its
//! forwarding item until PostHog confirms the deletion, and the tokens secret is kept until
//! nothing is left to do with it; what remains is recorded on the connection (`pending_cleanup`,
//! `revoke_pending`) and reported, and running the routine again (a second DELETE, or `sync`)
//! retries exactly that. Drafts, issues and mappings are never touched.

use super::tokens::TokenError;
use super::{now_rfc3339, Connector};
use crate::ids::{ConnectionId, WorkspaceId};
use crate::posthog::{PostHogError, Region, TokenKind};
use crate::store::connections::{Cleanup, Connection, ConnectionStatus, PendingDestination};
use crate::store::StoreError;
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use serde::Serialize;
use std::time::{Duration, Instant};

/// PostHog calls stop after this, leaving the rest pending: the settings function answers in 20 s.
const POSTHOG_BUDGET: Duration = Duration::from_secs(12);
const PARALLEL: usize = 4;

/// A live token of the same PostHog user, for when the connection's own tokens are dead (a
/// reconnect replacing a `needs_reconnect` connection removes the old destinations with it).
pub struct TokenOverride {
    pub region: Region,
    pub access_token: SecretString,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DisconnectReport {
    /// Always `"disconnected"`.
    pub status: &'static str,
    pub connection_id: Option<ConnectionId>,
    pub disconnected_at: Option<String>,
    pub cleanup: CleanupReport,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CleanupReport {
    /// Nothing is left at PostHog and no credential is stored.
    pub complete: bool,
    /// Destinations PostHog has not confirmed deleted; retried later.
    pub pending_destinations: Vec<PendingDestination>,
    pub tokens_revoked: bool,
}

impl DisconnectReport {
    fn nothing() -> Self {
        Self {
            status: "disconnected",
            connection_id: None,
            disconnected_at: None,
            cleanup: CleanupReport {
                complete: true,
                pending_destinations: Vec::new(),
                tokens_revoked: true,
            },
        }
    }
}

impl Connector {
    /// `DELETE /integrations/posthog`. A workspace without a connection is already disconnected:
    /// the answer says so, with no connection.
    pub async fn disconnect(
        &self,
        ws: &WorkspaceId,
        by: &str,
    ) -> Result<DisconnectReport, StoreError> {
        let Some(current) = self.store.get_workspace_connection(ws).await? else {
            return Ok(DisconnectReport::nothing());
        };
        let Some(connection) = self.store.get_connection(&current.connection_id).await? else {
            self.store
                .set_workspace_status(
                    ws,
                    &current.connection_id,
                    ConnectionStatus::Disconnected,
                    &now_rfc3339(),
                )
                .await?;
            return Ok(DisconnectReport::nothing());
        };
        self.disconnect_connection(&connection, by, None).await
    }

    /// Disconnects one connection, or retries what an earlier disconnect left. Fails only when
    /// the store does; PostHog failures end up in the report.
    pub async fn disconnect_connection(
        &self,
        connection: &Connection,
        by: &str,
        fallback: Option<TokenOverride>,
    ) -> Result<DisconnectReport, StoreError> {
        let conn = &connection.id;
        let at = now_rfc3339();
        self.store.mark_disconnected(conn, by, &at).await?;
        // `sync` keeps retrying what this leaves at PostHog until the cleanup is complete.
        self.store
            .register_for_sync(
                conn,
                &connection.workspace_id,
                ConnectionStatus::Disconnected,
            )
            .await?;
        self.store
            .set_workspace_status(
                &connection.workspace_id,
                conn,
                ConnectionStatus::Disconnected,
                &at,
            )
            .await?;
        tracing::info!(connection_id = %conn, "connection disconnected");
        let deadline = Instant::now() + POSTHOG_BUDGET;

        let environments = self.store.list_forwarding(conn).await?;
        let mut targets: Vec<PendingDestination> = Vec::new();
        for env in &environments {
            for id in [&env.destination_id, &env.issue_destination_id]
                .into_iter()
                .flatten()
            {
                targets.push(PendingDestination {
                    environment_id: env.environment_id,
                    function_id: id.clone(),
                });
            }
        }

        let region = Region::parse(&connection.region);
        let tokens_secret = self.secrets.tokens_name(conn);
        let stored = self.tokens().stored(connection).await;
        // Tokens PostHog has already killed need no revoking.
        let (own_token, mut revoked) = match (&stored, region) {
            (Err(TokenError::Missing), _) => (None, true),
            (Ok(_), Some(_)) => match self.tokens().access_token(connection).await {
                Ok(token) => (Some(token), false),
                Err(TokenError::NeedsReconnect) => (None, true),
                Err(e) => {
                    tracing::warn!(error = %e, connection_id = %conn, "no access token for disconnect");
                    (None, false)
                }
            },
            (Err(e), _) => {
                tracing::warn!(error = %e, connection_id = %conn, "tokens unreadable at disconnect");
                (None, false)
            }
            (Ok(_), None) => (None, false),
        };
        let credentials = match (own_token, &fallback, region) {
            (Some(token), _, Some(region)) => Some((region, token)),
            (None, Some(f), _) => Some((f.region, f.access_token.clone())),
            _ => None,
        };

        let mut pending = Vec::new();
        match &credentials {
            Some((region, token)) => {
                let results: Vec<(PendingDestination, Result<(), PostHogError>)> =
                    stream::iter(targets)
                        .map(|t| async move {
                            let remaining = deadline.saturating_duration_since(Instant::now());
                            let r = tokio::time::timeout(
                                remaining,
                                self.posthog.delete_hog_function(
                                    *region,
                                    token,
                                    t.environment_id,
                                    &t.function_id,
                                ),
                            )
                            .await
                            .unwrap_or_else(|_| {
                                Err(PostHogError::Unavailable(
                                    "disconnect ran out of time".into(),
                                ))
                            });
                            (t, r)
                        })
                        .buffer_unordered(PARALLEL)
                        .collect()
                        .await;
                for (t, r) in results {
                    match r {
                        Ok(()) => {
                            self.store
                                .forget_destination(conn, t.environment_id, &t.function_id, &at)
                                .await?
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, environment_id = %t.environment_id,
                                "destination not deleted at disconnect");
                            pending.push(t);
                        }
                    }
                }
            }
            None => pending = targets,
        }
        for env in &environments {
            self.store
                .stop_forwarding(conn, env.environment_id, &at)
                .await?;
        }

        if !revoked {
            // Read again: a refresh during this disconnect replaced (and PostHog revoked) the pair
            // read before.
            if let (Ok(tokens), Some(region)) = (self.tokens().stored(connection).await, region) {
                let remaining = deadline.saturating_duration_since(Instant::now());
                revoked = tokio::time::timeout(
                    remaining.max(Duration::from_secs(1)),
                    self.revoke(region, &tokens.access_token, tokens.refresh_token.as_ref()),
                )
                .await
                .unwrap_or(false);
            }
        }

        let webhook_secret = self.secrets.webhook_secret_name(conn);
        if let Err(e) = self.secrets.delete(&webhook_secret).await {
            tracing::warn!(error = %e, connection_id = %conn, "signing secret not deleted");
        }
        let complete = pending.is_empty() && revoked;
        let mut tokens_deleted = matches!(stored, Err(TokenError::Missing));
        if complete && !tokens_deleted {
            match self.secrets.delete(&tokens_secret).await {
                Ok(()) => tokens_deleted = true,
                Err(e) => {
                    tracing::warn!(error = %e, connection_id = %conn, "tokens secret not deleted")
                }
            }
        }
        let cleanup = Cleanup {
            disconnected_at: None,
            pending_destinations: pending.clone(),
            revoke_pending: !revoked,
        };
        self.store.record_cleanup(conn, &cleanup, &at).await?;
        let disconnected_at = self
            .store
            .get_cleanup(conn)
            .await?
            .and_then(|c| c.disconnected_at);
        Ok(DisconnectReport {
            status: "disconnected",
            connection_id: Some(conn.clone()),
            disconnected_at,
            cleanup: CleanupReport {
                complete: complete && tokens_deleted,
                pending_destinations: pending,
                tokens_revoked: revoked,
            },
        })
    }

    /// Revokes both tokens (RFC 7009; the refresh token first, since it can mint more). `true`
    /// when PostHog confirmed both.
    pub(crate) async fn revoke(
        &self,
        region: Region,
        access: &SecretString,
        refresh: Option<&SecretString>,
    ) -> bool {
        let mut ok = true;
        if let Some(refresh) = refresh {
            if let Err(e) = self
                .posthog
                .revoke(region, refresh, TokenKind::Refresh)
                .await
            {
                tracing::warn!(error = %e, "refresh token not revoked");
                ok = false;
            }
        }
        if let Err(e) = self.posthog.revoke(region, access, TokenKind::Access).await {
            tracing::warn!(error = %e, "access token not revoked");
            ok = false;
        }
        ok
    }
}
