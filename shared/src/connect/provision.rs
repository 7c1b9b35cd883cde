//! The OAuth callback: from `?code&state` to a connected workspace, or to nothing at all.
//!
//! Order: consume the state (once), exchange the code, store the signing secret and the tokens,
//! discover the granted projects, provision their destinations (4 at a time), write the
//! forwarding items, then commit the connection and the workspace pointer in one transaction.
//! Deliveries that PostHog sends before that commit answer 410: the connection does not exist yet.
//!
//! A transient failure anywhere undoes what was made: destinations (PATCH deleted, and a search by
//! the connection id for a create whose answer was lost), secrets, tokens (revoked). Whatever
//! PostHog would not let us remove is recorded as a disconnected connection with pending cleanup,
//! which `sync` retries like any disconnect's leftovers.

use super::disconnect::DisconnectReport;
use super::tokens::StoredTokens;
use super::{now_rfc3339, plausible_state, Connector, TokenOverride};
use crate::ids::{ConnectionId, EnvironmentId};
use crate::posthog::{self, PostHogError, Project, Region, TokenResponse};
use crate::store::connections::{
    Cleanup, Commit, Connection, ConnectionStatus, PendingDestination,
};
use crate::store::forwarding::{EnvironmentForwarding, Forwarding};
use crate::store::StoreError;
use futures_util::stream::{self, StreamExt};
use secrecy::SecretString;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Projects provisioned at once: fast enough for dozens of projects inside the callback's budget,
/// gentle on PostHog's per-team rate limits.
const PARALLEL: usize = 4;
/// After this, no new PostHog call starts and the connect is undone: with the undo it stays well
/// inside API Gateway's 30 s.
const PROVISION_BUDGET: Duration = Duration::from_secs(15);

/// Why a callback did not connect, as the dashboard sees it (`?error=<code>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackError {
    InvalidState,
    AccessDenied,
    AuthorizationFailed,
    InsufficientScope,
    AlreadyConnected,
    PostHogUnavailable,
    PostHogError,
    StorageUnavailable,
}

impl CallbackError {
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidState => "invalid_state",
            Self::AccessDenied => "access_denied",
            Self::AuthorizationFailed => "authorization_failed",
            Self::InsufficientScope => "insufficient_scope",
            Self::AlreadyConnected => "already_connected",
            Self::PostHogUnavailable => "posthog_unavailable",
            Self::PostHogError => "posthog_error",
            Self::StorageUnavailable => "storage_unavailable",
        }
    }

    fn from_posthog(e: &PostHogError) -> Self {
        if e.is_transient() {
            Self::PostHogUnavailable
        } else {
            Self::PostHogError
        }
    }
}

impl From<StoreError> for CallbackError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage failure during connect");
        Self::StorageUnavailable
    }
}

/// The callback's query parameters, as PostHog (or anyone) sent them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Callback<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Scopes without which nothing can be provisioned.
const REQUIRED_SCOPES: [&str; 2] = ["project:read", "hog_function:write"];

/// What a connect made so far, so it can be undone.
struct Made {
    region: Region,
    conn: ConnectionId,
    tokens: TokenResponse,
    secrets: Vec<String>,
    functions: Mutex<Vec<PendingDestination>>,
    /// Projects where a create failed after it may have reached PostHog.
    uncertain: Mutex<Vec<EnvironmentId>>,
    forwarding: Vec<EnvironmentId>,
}

struct Provisioning<'a> {
    made: &'a Made,
    url: String,
    secret: &'a SecretString,
    stop: AtomicBool,
    deadline: Instant,
}

impl Connector {
    /// `GET /integrations/posthog/callback`: where to send the browser.
    pub async fn finish(&self, q: Callback<'_>) -> String {
        match self.try_finish(q).await {
            Ok(()) => self.dashboard_redirect(Ok(())),
            Err(e) => {
                tracing::warn!(error = e.code(), "connect did not complete");
                self.dashboard_redirect(Err(e.code()))
            }
        }
    }

    async fn try_finish(&self, q: Callback<'_>) -> Result<(), CallbackError> {
        let deadline = Instant::now() + PROVISION_BUDGET;
        let state = q
            .state
            .filter(|s| plausible_state(s))
            .ok_or(CallbackError::InvalidState)?;
        let pending = self
            .store
            .take_oauth_state(state, OffsetDateTime::now_utc().unix_timestamp())
            .await?
            .ok_or(CallbackError::InvalidState)?;
        match q.error {
            None => {}
            Some("access_denied") => return Err(CallbackError::AccessDenied),
            Some(_) => return Err(CallbackError::AuthorizationFailed),
        }
        let region = Region::parse(&pending.region).ok_or(CallbackError::InvalidState)?;
        let code = q
            .code
            .filter(|c| !c.is_empty() && c.len() <= 512)
            .ok_or(CallbackError::AuthorizationFailed)?;
        let ws = &pending.workspace_id;
        let previous = self.store.get_workspace_connection(ws).await?;
        if previous
            .as_ref()
            .is_some_and(|p| p.status == ConnectionStatus::Connected)
        {
            return Err(CallbackError::AlreadyConnected);
        }
        let tokens = self
            .posthog
            .exchange_code(region, code, &pending.verifier, &self.redirect_uri())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "code exchange failed");
                if e.is_transient() {
                    CallbackError::PostHogUnavailable
                } else {
                    // An expired or already used code, a wrong verifier: only a new connect helps.
                    CallbackError::AuthorizationFailed
                }
            })?;
        let conn = crate::random::connection_id().map_err(|e| {
            tracing::error!(error = %e, "no connection id");
            CallbackError::StorageUnavailable
        })?;
        let mut made = Made {
            region,
            conn,
            tokens,
            secrets: Vec::new(),
            functions: Mutex::new(Vec::new()),
            uncertain: Mutex::new(Vec::new()),
            forwarding: Vec::new(),
        };
        match self
            .connect_with(&mut made, &pending.user, ws, deadline)
            .await
        {
            Ok(connection) => {
                self.after_commit(&connection, previous.map(|p| p.connection_id), &made)
                    .await;
                Ok(())
            }
            Err(e) => {
                self.undo(&made, ws, &pending.user).await;
                Err(e)
            }
        }
    }

    async fn connect_with(
        &self,
        made: &mut Made,
        user: &str,
        ws: &crate::ids::WorkspaceId,
        deadline: Instant,
    ) -> Result<Connection, CallbackError> {
        let scopes = made.tokens.scopes();
        if let Some(missing) = REQUIRED_SCOPES
            .iter()
            .find(|s| !scopes.iter().any(|g| g == *s))
        {
            tracing::warn!(missing, "PostHog granted too little");
            return Err(CallbackError::InsufficientScope);
        }
        let region = made.region;
        let conn = made.conn.clone();
        let signing_secret = crate::random::webhook_secret().map_err(|e| {
            tracing::error!(error = %e, "no signing secret");
            CallbackError::StorageUnavailable
        })?;
        let stored = StoredTokens::from_response(&made.tokens, OffsetDateTime::now_utc(), None);
        for (name, value) in [
            (self.secrets.webhook_secret_name(&conn), &signing_secret),
            (self.secrets.tokens_name(&conn), &stored.to_secret()),
        ] {
            self.secrets.create(&name, value).await.map_err(|e| {
                tracing::error!(error = %e, "secret not created");
                CallbackError::StorageUnavailable
            })?;
            made.secrets.push(name);
        }

        let token = made.tokens.access_token.clone();
        let projects = self
            .posthog
            .discover_projects(region, &token, made.tokens.scoped_teams())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "project discovery failed");
                CallbackError::from_posthog(&e)
            })?;
        let run = Provisioning {
            made,
            url: self.webhook_url(&conn),
            secret: &signing_secret,
            stop: AtomicBool::new(false),
            deadline,
        };
        // Owned items: a stream over borrowed ones trips the compiler's Send check of the handler.
        let (run_ref, token_ref) = (&run, &token);
        let results: Vec<Result<EnvironmentForwarding, PostHogError>> = stream::iter(projects)
            .map(|p| async move { self.provision_project(run_ref, token_ref, &p).await })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        let mut environments = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(env) => environments.push(env),
                Err(e) => {
                    tracing::warn!(error = %e, "provisioning failed");
                    return Err(CallbackError::from_posthog(&e));
                }
            }
        }

        let conn_ref = &conn;
        let written: Vec<Result<EnvironmentId, StoreError>> = stream::iter(environments.clone())
            .map(|env| async move {
                self.store.put_forwarding(conn_ref, &env).await?;
                Ok(env.environment_id)
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for w in written {
            made.forwarding.push(w?);
        }

        let now = now_rfc3339();
        let connection = Connection {
            id: conn.clone(),
            workspace_id: ws.clone(),
            status: ConnectionStatus::Connected,
            region: region.as_str().to_owned(),
            posthog_base_url: self.posthog.base(region).to_owned(),
            scopes,
            connected_at: now,
            connected_by: user.to_owned(),
        };
        match self.store.commit_connection(&connection).await? {
            Commit::Committed => {}
            Commit::AlreadyConnected => return Err(CallbackError::AlreadyConnected),
        }
        tracing::info!(
            connection_id = %conn,
            workspace_id = %ws,
            environments = environments.len(),
            unavailable = environments.iter().filter(|e| e.forwarding == Forwarding::Unavailable).count(),
            "PostHog connected"
        );
        for env in &environments {
            if let Err(e) = self
                .store
                .create_mapping_if_absent(ws, env.environment_id, &env.name)
                .await
            {
                // An absent mapping is Do not import too: the webhook ignores that environment
                // either way, so the connection stands.
                tracing::warn!(error = %e, environment_id = %env.environment_id, "mapping not created");
            }
        }
        Ok(connection)
    }

    async fn provision_project(
        &self,
        run: &Provisioning<'_>,
        token: &SecretString,
        project: &Project,
    ) -> Result<EnvironmentForwarding, PostHogError> {
        let conn = &run.made.conn;
        let mut env = EnvironmentForwarding {
            environment_id: project.id,
            name: project.name.clone(),
            forwarding: Forwarding::Active,
            forwarding_error: None,
            destination_id: None,
            issue_destination_id: None,
            issue_destination_error: None,
            updated_at: now_rfc3339(),
        };
        let body = posthog::destination(conn, &run.url, run.secret);
        match self.create(run, token, project.id, &body).await? {
            Ok(id) => env.destination_id = Some(id),
            Err(reason) => {
                env.forwarding = Forwarding::Unavailable;
                env.forwarding_error = Some(reason);
                return Ok(env);
            }
        }
        let body = posthog::issue_destination(conn, &run.url, run.secret);
        match self.create(run, token, project.id, &body).await? {
            Ok(id) => env.issue_destination_id = Some(id),
            Err(reason) => env.issue_destination_error = Some(reason),
        }
        Ok(env)
    }

    /// `Ok(Ok(id))` created, `Ok(Err(reason))` refused for good, `Err` a failure that undoes all.
    async fn create(
        &self,
        run: &Provisioning<'_>,
        token: &SecretString,
        project: EnvironmentId,
        body: &Value,
    ) -> Result<Result<String, String>, PostHogError> {
        let remaining = run.deadline.saturating_duration_since(Instant::now());
        if run.stop.load(Ordering::SeqCst) || remaining.is_zero() {
            return Err(PostHogError::Unavailable(
                "connect stopped before this project".into(),
            ));
        }
        let region = run.made.region;
        let created = tokio::time::timeout(
            remaining,
            self.posthog
                .create_hog_function(region, token, project, body),
        )
        .await
        .unwrap_or_else(|_| Err(PostHogError::Unavailable("connect ran out of time".into())));
        match created {
            Ok(f) => {
                if let Ok(mut made) = run.made.functions.lock() {
                    made.push(PendingDestination {
                        environment_id: project,
                        function_id: f.id.clone(),
                    });
                }
                Ok(Ok(f.id))
            }
            Err(PostHogError::Refused { status, reason }) => {
                tracing::info!(environment_id = %project, status, reason, "PostHog refused a destination");
                Ok(Err(reason))
            }
            Err(PostHogError::NotFound) => Ok(Err("PostHog no longer has this project".into())),
            Err(e) => {
                run.stop.store(true, Ordering::SeqCst);
                if e.is_transient() {
                    if let Ok(mut uncertain) = run.made.uncertain.lock() {
                        uncertain.push(project);
                    }
                }
                Err(e)
            }
        }
    }

    /// Removes what a failed connect made. What PostHog would not let go of stays recorded on a
    /// disconnected connection, with the tokens needed to retry.
    async fn undo(&self, made: &Made, ws: &crate::ids::WorkspaceId, user: &str) {
        let region = made.region;
        let token = &made.tokens.access_token;
        let mut targets = made.functions.lock().map(|f| f.clone()).unwrap_or_default();
        let uncertain = made.uncertain.lock().map(|u| u.clone()).unwrap_or_default();
        let mut leftovers = Vec::new();
        for project in uncertain {
            match self
                .posthog
                .functions_of(region, token, project, &made.conn)
                .await
            {
                Ok(found) => {
                    for f in found {
                        if !targets.iter().any(|t| t.function_id == f.id) {
                            targets.push(PendingDestination {
                                environment_id: project,
                                function_id: f.id,
                            });
                        }
                    }
                }
                Err(e) => {
                    // A function PostHog made without telling us cannot be named; log for an operator.
                    tracing::error!(error = %e, environment_id = %project, connection_id = %made.conn,
                        "could not look for a destination whose create answer was lost");
                }
            }
        }
        let results: Vec<(PendingDestination, Result<(), PostHogError>)> = stream::iter(targets)
            .map(|t| async move {
                let r = self
                    .posthog
                    .delete_hog_function(region, token, t.environment_id, &t.function_id)
                    .await;
                (t, r)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (t, r) in results {
            if let Err(e) = r {
                tracing::warn!(error = %e, environment_id = %t.environment_id, "destination not removed by undo");
                leftovers.push(t);
            }
        }
        for env in &made.forwarding {
            if let Err(e) = self.store.delete_forwarding(&made.conn, *env).await {
                tracing::warn!(error = %e, "forwarding item not removed by undo");
            }
        }
        let webhook_secret = self.secrets.webhook_secret_name(&made.conn);
        if made.secrets.contains(&webhook_secret) {
            if let Err(e) = self.secrets.delete(&webhook_secret).await {
                tracing::warn!(error = %e, "signing secret not removed by undo");
            }
        }
        let tokens_secret = self.secrets.tokens_name(&made.conn);
        if leftovers.is_empty() || !made.secrets.contains(&tokens_secret) {
            let report = self
                .revoke(
                    region,
                    &made.tokens.access_token,
                    made.tokens.refresh_token.as_ref(),
                )
                .await;
            if !report {
                tracing::warn!(connection_id = %made.conn, "tokens of an undone connect not revoked");
            }
            if made.secrets.contains(&tokens_secret) {
                if let Err(e) = self.secrets.delete(&tokens_secret).await {
                    tracing::warn!(error = %e, "tokens secret not removed by undo");
                }
            }
            if !leftovers.is_empty() {
                tracing::error!(connection_id = %made.conn, count = leftovers.len(),
                    "destinations of an undone connect remain at PostHog with no tokens to remove them");
            }
            return;
        }
        if let Err(e) = self.record_leftovers(made, ws, user, &leftovers).await {
            tracing::error!(error = %e, connection_id = %made.conn, "leftovers of an undone connect not recorded");
        }
    }

    async fn record_leftovers(
        &self,
        made: &Made,
        ws: &crate::ids::WorkspaceId,
        user: &str,
        leftovers: &[PendingDestination],
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        for env in leftovers {
            self.store
                .put_forwarding(
                    &made.conn,
                    &EnvironmentForwarding {
                        environment_id: env.environment_id,
                        name: String::new(),
                        forwarding: Forwarding::None,
                        forwarding_error: None,
                        destination_id: Some(env.function_id.clone()),
                        issue_destination_id: None,
                        issue_destination_error: None,
                        updated_at: now.clone(),
                    },
                )
                .await?;
        }
        self.store
            .put_connection(&Connection {
                id: made.conn.clone(),
                workspace_id: ws.clone(),
                status: ConnectionStatus::Disconnected,
                region: made.region.as_str().to_owned(),
                posthog_base_url: self.posthog.base(made.region).to_owned(),
                scopes: made.tokens.scopes(),
                connected_at: now.clone(),
                connected_by: user.to_owned(),
            })
            .await?;
        self.store
            .mark_disconnected(&made.conn, "connect-undo", &now)
            .await?;
        self.store
            .register_for_sync(&made.conn, ws, ConnectionStatus::Disconnected)
            .await?;
        self.store
            .record_cleanup(
                &made.conn,
                &Cleanup {
                    disconnected_at: Some(now.clone()),
                    pending_destinations: leftovers.to_vec(),
                    revoke_pending: true,
                },
                &now,
            )
            .await
    }

    /// A connection that PostHog stopped honouring (`needs_reconnect`) is replaced by this one:
    /// disconnect it, removing its destinations with the new token where its own is dead.
    async fn after_commit(
        &self,
        connection: &Connection,
        previous: Option<ConnectionId>,
        made: &Made,
    ) {
        let Some(old) = previous.filter(|p| *p != connection.id) else {
            return;
        };
        let Ok(Some(old_connection)) = self.store.get_connection(&old).await else {
            return;
        };
        if old_connection.status == ConnectionStatus::Disconnected {
            return;
        }
        let fallback = TokenOverride {
            region: made.region,
            access_token: made.tokens.access_token.clone(),
        };
        let report: Result<DisconnectReport, StoreError> = self
            .disconnect_connection(&old_connection, &connection.connected_by, Some(fallback))
            .await;
        if let Err(e) = report {
            tracing::warn!(error = %e, connection_id = %old, "replaced connection not disconnected");
        }
    }
}
