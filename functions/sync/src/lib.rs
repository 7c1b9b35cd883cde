//! The `sync` function (DESIGN.md §8): scheduled upkeep of every connection. Each run visits the
//! connections of the `SYNC#CONNECTIONS` registry, least recently visited first, until its time
//! budget runs out; the next run goes on where this one stopped.
//!
//! Per connection, under a lease so that two overlapping runs never work on the same one:
//! - connected: refresh the tokens well before PostHog's 30-day refresh-token expiry; report
//!   destinations PostHog's health checker degraded or disabled (re-enabling a disabled one once);
//!   provision projects created since the connect; poll the status of approved issues whose
//!   project has no issue lifecycle destination;
//! - disconnected: retry the destination deletions and token revocations a disconnect left, and
//!   forget the connection once nothing is left.
//!
//! Every step reads PostHog's current state before it changes anything, so a step repeated (a
//! crash, a lease that ran out) does no harm.

use flowback::config::{self, ConfigError};
use flowback::connect::tokens::TokenError;
use flowback::connect::Connector;
use flowback::ids::EnvironmentId;
use flowback::posthog::{HogFunction, PostHogError, Project, Region};
use flowback::store::connections::{Connection, ConnectionStatus};
use flowback::store::forwarding::{EnvironmentForwarding, Forwarding};
use flowback::store::sync::SyncEntry;
use flowback::store::StoreError;
use futures_util::stream::{self, StreamExt};
use lambda_runtime::{Error, LambdaEvent};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tracing::Instrument;

/// Leaves a minute of the Lambda's 300 s (template.yaml) for the last connection to finish.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(240);
/// PostHog's refresh tokens die after 30 days unused; renewing at 20 leaves ten days of failed
/// runs before a connection is lost.
pub const REFRESH_AFTER: time::Duration = time::Duration::days(20);
/// Connections visited at once: enough to get through many per run, gentle on PostHog.
const PARALLEL: usize = 4;
/// The cleanup of a disconnect that `sync` finishes is recorded as done by this actor.
const ACTOR: &str = "sync";

/// What a run needs, built once per instance.
pub struct Sync {
    pub connector: Connector,
    pub budget: Duration,
    pub refresh_after: time::Duration,
}

/// What one run did. Emitted as metrics, logged, and answered by the invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Connections this run worked on.
    pub connections_seen: u64,
    /// Held by another run at the time.
    pub connections_busy: u64,
    /// Not reached before the budget ran out (first in line next run).
    pub connections_left: u64,
    pub tokens_refreshed: u64,
    /// PostHog refused the refresh token for good.
    pub reconnects_needed: u64,
    /// Destinations found degraded or disabled that were not reported so before.
    pub destinations_degraded: u64,
    /// Destinations re-enabled, recreated or back to healthy.
    pub destinations_repaired: u64,
    pub projects_provisioned: u64,
    pub cleanups_finished: u64,
    pub issues_synced: u64,
    pub failures: u64,
}

impl SyncReport {
    fn add(&mut self, other: &SyncReport) {
        self.connections_seen += other.connections_seen;
        self.connections_busy += other.connections_busy;
        self.connections_left += other.connections_left;
        self.tokens_refreshed += other.tokens_refreshed;
        self.reconnects_needed += other.reconnects_needed;
        self.destinations_degraded += other.destinations_degraded;
        self.destinations_repaired += other.destinations_repaired;
        self.projects_provisioned += other.projects_provisioned;
        self.cleanups_finished += other.cleanups_finished;
        self.issues_synced += other.issues_synced;
        self.failures += other.failures;
    }

    /// One EMF data point per counter (namespace `Flowback`, dimension `Function=sync`).
    pub fn emit_metrics(&self) {
        let dimension = ("Function", "sync");
        for (name, value) in [
            ("SyncConnectionsSeen", self.connections_seen),
            ("SyncConnectionsLeft", self.connections_left),
            ("SyncTokensRefreshed", self.tokens_refreshed),
            ("SyncReconnectsNeeded", self.reconnects_needed),
            ("SyncDestinationsDegraded", self.destinations_degraded),
            ("SyncDestinationsRepaired", self.destinations_repaired),
            ("SyncProjectsProvisioned", self.projects_provisioned),
            ("SyncCleanupsFinished", self.cleanups_finished),
            ("SyncIssuesSynced", self.issues_synced),
            ("SyncFailures", self.failures),
        ] {
            flowback::metrics::count(name, value, dimension);
        }
    }
}

impl Sync {
    pub fn new(connector: Connector) -> Self {
        Self {
            connector,
            budget: DEFAULT_BUDGET,
            refresh_after: REFRESH_AFTER,
        }
    }

    /// The connector's environment, plus `SYNC_BUDGET_SECONDS` (default 240).
    pub async fn from_env() -> Result<Self, ConfigError> {
        let connector = Connector::from_env(flowback::aws::CallBudget::API).await?;
        let seconds: u64 = config::number("SYNC_BUDGET_SECONDS", DEFAULT_BUDGET.as_secs())?;
        Ok(Self {
            budget: Duration::from_secs(seconds),
            ..Self::new(connector)
        })
    }
}

/// The EventBridge scheduled event: its content does not matter, only that it came.
pub async fn handle(
    state: &Sync,
    _event: LambdaEvent<serde_json::Value>,
) -> Result<SyncReport, Error> {
    let report = run_once(state, state.budget).await?;
    report.emit_metrics();
    Ok(report)
}

/// One pass over the registry within `budget`. Fails only when the registry cannot be read;
/// anything else is counted in `failures` and retried by the next run.
pub async fn run_once(state: &Sync, budget: Duration) -> Result<SyncReport, StoreError> {
    let deadline = Instant::now() + budget;
    let owner = flowback::random::url_token()
        .map_err(|e| StoreError::Unavailable(format!("no lease owner id: {e}")))?;
    let entries = state.connector.store.sync_registry().await?;
    let total = entries.len();
    let owner = &owner;
    let parts: Vec<SyncReport> = stream::iter(entries)
        .map(|entry| async move { visit(state, &entry, owner, deadline, budget).await })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut report = SyncReport::default();
    for part in &parts {
        report.add(part);
    }
    tracing::info!(
        registered = total,
        seen = report.connections_seen,
        busy = report.connections_busy,
        left = report.connections_left,
        tokens_refreshed = report.tokens_refreshed,
        reconnects_needed = report.reconnects_needed,
        destinations_degraded = report.destinations_degraded,
        destinations_repaired = report.destinations_repaired,
        projects_provisioned = report.projects_provisioned,
        cleanups_finished = report.cleanups_finished,
        issues_synced = report.issues_synced,
        failures = report.failures,
        "sync run finished"
    );
    Ok(report)
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn now_rfc3339() -> String {
    flowback::occurrence::rfc3339(OffsetDateTime::now_utc())
}

/// One connection, under this run's lease.
async fn visit(
    state: &Sync,
    entry: &SyncEntry,
    owner: &str,
    deadline: Instant,
    budget: Duration,
) -> SyncReport {
    let mut report = SyncReport::default();
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        report.connections_left = 1;
        return report;
    }
    let store = &state.connector.store;
    let conn = &entry.connection_id;
    // The lease outlives the whole run: whatever this run started on the connection, no other
    // run starts until it is over or could no longer be running.
    let now = now_ms();
    let lease_until = now + budget.as_millis() as i64;
    match store
        .acquire_sync_lease(conn, owner, now, lease_until)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            report.connections_busy = 1;
            return report;
        }
        Err(e) => {
            tracing::warn!(connection_id = %conn, error = %e, "sync lease not taken");
            report.failures = 1;
            return report;
        }
    }
    report.connections_seen = 1;
    let span = tracing::info_span!("sync_connection", connection_id = %conn, workspace_id = %entry.workspace_id);
    let work = upkeep(state, entry, owner, &mut report).instrument(span);
    let outcome = tokio::time::timeout(remaining, work).await;
    match outcome {
        Ok(Ok(())) => {
            if let Err(e) = store.finish_sync(conn, owner, now_ms()).await {
                tracing::warn!(connection_id = %conn, error = %e, "sync visit not recorded");
                report.failures += 1;
            }
        }
        Ok(Err(e)) => {
            // Not recorded as visited: the connection stays first in line for the next run.
            tracing::warn!(connection_id = %conn, error = %e, "sync of a connection failed");
            report.failures += 1;
            if let Err(e) = store.release_sync_lease(conn, owner).await {
                // It runs out by itself at the end of the budget.
                tracing::warn!(connection_id = %conn, error = %e, "sync lease not released");
            }
        }
        Err(_) => {
            tracing::warn!(connection_id = %conn, "sync budget ran out inside a connection");
            report.connections_left += 1;
        }
    }
    report
}

async fn upkeep(
    state: &Sync,
    entry: &SyncEntry,
    owner: &str,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let store = &state.connector.store;
    let conn = &entry.connection_id;
    let Some(connection) = store.get_connection(conn).await? else {
        tracing::warn!(connection_id = %conn, "registered connection has no item");
        return Ok(());
    };
    match connection.status {
        ConnectionStatus::Disconnected => finish_cleanup(state, &connection, owner, report).await,
        // PostHog will not take its tokens again; the user's reconnect replaces it.
        ConnectionStatus::NeedsReconnect => Ok(()),
        ConnectionStatus::Connected => keep_healthy(state, &connection, report).await,
    }
}

/// Retries what a disconnect left at PostHog; forgets the connection once nothing is left.
async fn finish_cleanup(
    state: &Sync,
    connection: &Connection,
    owner: &str,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let store = &state.connector.store;
    let conn = &connection.id;
    let recorded = store
        .get_cleanup(conn)
        .await?
        .is_some_and(|c| !c.pending_destinations.is_empty() || c.revoke_pending);
    // A destination made by an upkeep that overlapped the disconnect is on a forwarding item but
    // in no cleanup record; `disconnect_connection` removes whatever the items still hold.
    let held = store
        .list_forwarding(conn)
        .await?
        .iter()
        .any(|e| e.destination_id.is_some() || e.issue_destination_id.is_some());
    let pending = recorded || held;
    if pending {
        let done = state
            .connector
            .disconnect_connection(connection, ACTOR, None)
            .await?;
        if !done.cleanup.complete {
            tracing::info!(
                connection_id = %conn,
                pending_destinations = done.cleanup.pending_destinations.len(),
                tokens_revoked = done.cleanup.tokens_revoked,
                "disconnect cleanup still pending"
            );
            report.failures += 1;
            return Ok(());
        }
        tracing::info!(connection_id = %conn, "disconnect cleanup finished");
        report.cleanups_finished += 1;
    }
    store.unregister_from_sync(conn, owner).await
}

/// A connected connection: tokens, destinations, new projects, issue status.
async fn keep_healthy(
    state: &Sync,
    connection: &Connection,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let Some(region) = Region::parse(&connection.region) else {
        tracing::error!(connection_id = %connection.id, region = connection.region, "connection has an unknown region");
        report.failures += 1;
        return Ok(());
    };
    let Some(token) = live_token(state, connection, report).await? else {
        return Ok(());
    };
    let environments = state
        .connector
        .store
        .list_forwarding(&connection.id)
        .await?;
    for env in &environments {
        check_destination(state, connection, region, &token, env, report).await?;
    }
    let known: HashSet<EnvironmentId> = environments.iter().map(|e| e.environment_id).collect();
    let added = provision_new_projects(state, connection, region, &token, &known, report).await?;
    let polled: HashSet<EnvironmentId> = environments
        .iter()
        .chain(added.iter())
        .filter(|e| e.forwarding != Forwarding::None && e.issue_destination_id.is_none())
        .map(|e| e.environment_id)
        .collect();
    sync_issues(state, connection, region, &token, &polled, report).await
}

/// An access token for this run, refreshing first when the refresh token is getting old or the
/// access token expired. `None` when PostHog cannot be talked to for this connection now.
async fn live_token(
    state: &Sync,
    connection: &Connection,
    report: &mut SyncReport,
) -> Result<Option<SecretString>, StoreError> {
    let keeper = state.connector.tokens();
    let stored = match keeper.stored(connection).await {
        Ok(s) => s,
        Err(e) => return token_failure(connection, e, report),
    };
    let now = OffsetDateTime::now_utc();
    if !stored.refresh_token_older_than(now, state.refresh_after)
        && !stored.access_token_stale_at(now)
    {
        return Ok(Some(stored.access_token));
    }
    // TokenKeeper holds the per-connection refresh lease, so a webhook-free API call refreshing at
    // the same moment cannot make PostHog see one refresh token twice.
    match keeper.refresh(connection, &stored.access_token).await {
        Ok(token) => {
            if token.expose_secret() != stored.access_token.expose_secret() {
                report.tokens_refreshed += 1;
            }
            Ok(Some(token))
        }
        Err(e) => token_failure(connection, e, report),
    }
}

fn token_failure(
    connection: &Connection,
    e: TokenError,
    report: &mut SyncReport,
) -> Result<Option<SecretString>, StoreError> {
    match e {
        TokenError::NeedsReconnect => {
            tracing::warn!(connection_id = %connection.id, "connection needs a reconnect");
            report.reconnects_needed += 1;
            Ok(None)
        }
        TokenError::Store(e) => Err(e),
        other => {
            tracing::warn!(connection_id = %connection.id, error = %other, "no access token");
            report.failures += 1;
            Ok(None)
        }
    }
}

/// PostHog's word for an unhealthy destination (`status.state` ≥ 2, or switched off), `None` when
/// it forwards normally.
fn unhealthy(f: &HogFunction) -> Option<String> {
    match f.state {
        Some(2) => Some("degraded".into()),
        Some(3) => Some("disabled".into()),
        Some(11) => Some("forcefully_degraded".into()),
        Some(12) => Some("forcefully_disabled".into()),
        Some(n) if n >= 2 => Some(format!("state {n}")),
        _ if !f.enabled => Some("disabled".into()),
        _ => None,
    }
}

async fn check_destination(
    state: &Sync,
    connection: &Connection,
    region: Region,
    token: &SecretString,
    env: &EnvironmentForwarding,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    let (Some(fid), Forwarding::Active | Forwarding::Degraded) =
        (env.destination_id.as_deref(), env.forwarding)
    else {
        return Ok(());
    };
    let store = &state.connector.store;
    let posthog = &state.connector.posthog;
    let project = env.environment_id;
    let mut function = match posthog.get_hog_function(region, token, project, fid).await {
        Ok(f) => f,
        Err(PostHogError::NotFound) => {
            // Deleted in PostHog's UI: nothing forwards any more, so make it again.
            tracing::info!(environment_id = %project, "destination gone at PostHog; recreating");
            let project = Project {
                id: project,
                name: env.name.clone(),
            };
            match state
                .connector
                .provision_environment(connection, region, token, &project)
                .await
            {
                Ok(_) => report.destinations_repaired += 1,
                Err(e) => {
                    tracing::warn!(environment_id = %project.id, error = %e, "destination not recreated");
                    report.failures += 1;
                }
            }
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(environment_id = %project, error = %e, "destination health not read");
            report.failures += 1;
            return Ok(());
        }
    };
    let at = now_rfc3339();
    // Only state 3 is PostHog's automatic disable, which it lets an owner undo (it comes back
    // degraded). The forced states (11, 12) are PostHog staff's call; a switched-off function is
    // its owner's. The claim is recorded before the PATCH so no run tries twice.
    if function.state == Some(3)
        && function.enabled
        && store
            .claim_reenable(&connection.id, project, fid, &at)
            .await?
    {
        match posthog
            .set_hog_function_enabled(region, token, project, fid, true)
            .await
        {
            Ok(()) => {
                tracing::info!(environment_id = %project, "disabled destination re-enabled");
                report.destinations_repaired += 1;
                match posthog.get_hog_function(region, token, project, fid).await {
                    Ok(f) => function = f,
                    Err(e) => {
                        tracing::warn!(environment_id = %project, error = %e, "destination not read after re-enabling")
                    }
                }
            }
            Err(e) => {
                tracing::warn!(environment_id = %project, error = %e, "destination not re-enabled");
                report.failures += 1;
            }
        }
    }
    match unhealthy(&function) {
        // Already reported in these words: nothing to write.
        Some(word)
            if env.forwarding == Forwarding::Degraded
                && env.forwarding_error.as_deref() == Some(&word) => {}
        Some(word) => {
            tracing::warn!(environment_id = %project, state = word, "destination unhealthy at PostHog");
            if store
                .set_destination_health(
                    &connection.id,
                    project,
                    fid,
                    Forwarding::Degraded,
                    Some(&word),
                    &at,
                )
                .await?
                && env.forwarding != Forwarding::Degraded
            {
                report.destinations_degraded += 1;
            }
        }
        None if env.forwarding == Forwarding::Degraded => {
            tracing::info!(environment_id = %project, "destination healthy again");
            if store
                .set_destination_health(&connection.id, project, fid, Forwarding::Active, None, &at)
                .await?
            {
                report.destinations_repaired += 1;
            }
        }
        None => {}
    }
    Ok(())
}

/// Forwarding for projects PostHog shows now that the connection does not forward yet. A token
/// limited to chosen projects cannot list projects (PostHog answers 403): nothing new to find.
async fn provision_new_projects(
    state: &Sync,
    connection: &Connection,
    region: Region,
    token: &SecretString,
    known: &HashSet<EnvironmentId>,
    report: &mut SyncReport,
) -> Result<Vec<EnvironmentForwarding>, StoreError> {
    let projects = match state
        .connector
        .posthog
        .discover_projects(region, token, &[])
        .await
    {
        Ok(p) => p,
        Err(PostHogError::Refused { status, reason }) => {
            tracing::info!(status, reason, "projects not listable with this grant");
            return Ok(Vec::new());
        }
        Err(e) => {
            tracing::warn!(error = %e, "project discovery failed");
            report.failures += 1;
            return Ok(Vec::new());
        }
    };
    let mut added = Vec::new();
    for project in projects.iter().filter(|p| !known.contains(&p.id)) {
        match state
            .connector
            .provision_environment(connection, region, token, project)
            .await
        {
            Ok(env) => {
                tracing::info!(environment_id = %project.id, forwarding = env.forwarding.as_str(), "new project provisioned");
                report.projects_provisioned += 1;
                added.push(env);
            }
            Err(e) => {
                tracing::warn!(environment_id = %project.id, error = %e, "new project not provisioned");
                report.failures += 1;
            }
        }
    }
    Ok(added)
}

/// PostHog's word as `apply_posthog_status` stores it.
fn normalized(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace(' ', "_")
}

/// Reads PostHog's status of the approved issues in `environments` and applies what changed.
/// Only a change is applied: an issue reopened here by a new occurrence (regressed) stays open
/// while PostHog still says what it said before.
async fn sync_issues(
    state: &Sync,
    connection: &Connection,
    region: Region,
    token: &SecretString,
    environments: &HashSet<EnvironmentId>,
    report: &mut SyncReport,
) -> Result<(), StoreError> {
    if environments.is_empty() {
        return Ok(());
    }
    let store = &state.connector.store;
    let ws = &connection.workspace_id;
    for issue in store
        .approved_issues(ws)
        .await?
        .into_iter()
        .filter(|i| environments.contains(&i.environment_id))
    {
        let found = match state
            .connector
            .posthog
            .get_issue(region, token, issue.environment_id, &issue.posthog_issue_id)
            .await
        {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(issue_id = issue.issue_id, error = %e, "PostHog issue status not read");
                report.failures += 1;
                continue;
            }
        };
        let known = store.issue_posthog_status(ws, &issue.issue_id).await?;
        if known.as_deref() == Some(normalized(&found.status).as_str()) {
            continue;
        }
        let synced = store
            .apply_posthog_status(
                ws,
                &issue.posthog_issue_id,
                &found.status,
                now_ms(),
                &now_rfc3339(),
            )
            .await?;
        if synced.issue_ids.contains(&issue.issue_id) {
            tracing::info!(
                issue_id = issue.issue_id,
                posthog_status = found.status,
                "issue status synced"
            );
            report.issues_synced += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(state: Option<i64>, enabled: bool) -> HogFunction {
        HogFunction {
            id: "f".into(),
            kind: "destination".into(),
            name: String::new(),
            description: String::new(),
            enabled,
            state,
        }
    }

    #[test]
    fn posthogs_health_states_read_as_its_own_words() {
        for (state, enabled, word) in [
            (Some(0), true, None),
            (Some(1), true, None),
            (None, true, None),
            (Some(2), true, Some("degraded")),
            (Some(3), true, Some("disabled")),
            (Some(11), true, Some("forcefully_degraded")),
            (Some(12), true, Some("forcefully_disabled")),
            (Some(1), false, Some("disabled")),
        ] {
            assert_eq!(
                unhealthy(&function(state, enabled)).as_deref(),
                word,
                "{state:?} {enabled}"
            );
        }
    }
}
