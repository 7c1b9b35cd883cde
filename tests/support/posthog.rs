//! A PostHog stand-in for black-box tests: an HTTP server on 127.0.0.1 (random port) that holds
//! PostHog to the rules this project depends on (posthog-api.md §1 OAuth, §2 projects, §3 hog
//! functions, §7 error tracking), and a deliverer that calls webhook destinations the way
//! PostHog's CDP does (§4, signed per Standard Webhooks).
//!
//! The stand-in clicks "Authorize" on the consent screen by itself, with whatever the test set
//! through [`PostHogStandIn::set_granted`] and friends, so a connect flow runs without a browser:
//!
//! ```ignore
//! let posthog = PostHogStandIn::start().await;
//! posthog.register_client("flowback", "http://127.0.0.1:3000/callback", None);
//! posthog.add_project("org-a", 2, "Shop");
//! let outcome = posthog.authorize(&authorize_url_from_the_backend).await;
//! let callback = outcome.location.unwrap(); // ...?code=…&state=…
//! ```
//!
//! Time is PostHog's own fake clock: [`PostHogStandIn::advance_clock`] expires codes and tokens
//! without sleeping. Everything PostHog stored is inspectable (and adjustable) through the handle.

mod api;
mod delivery;
mod errors;
mod hog_functions;
mod model;
mod oauth;
mod serializer;
mod server;
mod state;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
use url::Url;

pub use delivery::{
    deliver, invocation_globals, new_webhook_id, now_unix, render, sign, signed_headers,
    signing_key, Attempt, Delivery, DeliveryError, DeliveryOptions, SignedHeaders,
    HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP,
};
pub use model::{
    AuthorizeOutcome, HogFunction, Issue, IssueStatus, LoggedRequest, RevocationReason,
    RevokedToken, TokenKind, Tokens,
};
pub use oauth::pkce_challenge;
pub use serializer::webhook_inputs_schema;

use server::Shared;
use state::{Client, CreateFailure, Project};

/// The running stand-in; the server stops when this is dropped.
pub struct PostHogStandIn {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for PostHogStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PostHogStandIn {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    ///
    /// # Panics
    /// When no local port can be bound (start-up, not a test outcome).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0 for the PostHog stand-in");
        let address = listener
            .local_addr()
            .expect("local address of the PostHog stand-in");
        let shared = Arc::new(Shared::new(format!("http://{address}")));
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted; an accept error has nowhere better to go.
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client for the PostHog stand-in");
        PostHogStandIn {
            shared,
            server,
            http,
        }
    }

    /// `http://127.0.0.1:{port}`, usable as the region's base URL.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// An HTTP client that, like a test without a browser, does not follow redirects. Built once
    /// per stand-in: setting up TLS roots for every request would dominate test time.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base_url)
    }

    /// An authorization request as a well-behaved client builds it (PKCE S256).
    pub fn authorize_url(
        &self,
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        code_challenge: &str,
    ) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/oauth/authorize/?{query}", self.shared.base_url)
    }

    /// Plays the user's browser on an authorize URL: one GET, redirects not followed.
    ///
    /// # Panics
    /// When the stand-in cannot be reached at all.
    pub async fn authorize(&self, authorize_url: &str) -> AuthorizeOutcome {
        let response = self
            .http
            .get(authorize_url)
            .send()
            .await
            .expect("GET the authorize URL");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Url::parse(v).ok());
        let body = response.json::<Value>().await.ok();
        AuthorizeOutcome {
            status,
            location,
            body,
        }
    }

    /// A pre-registered OAuth application (1 h access tokens, rotating refresh tokens). Calling
    /// it again for the same client adds a redirect URI. `secret: Some` makes it confidential.
    pub fn register_client(&self, client_id: &str, redirect_uri: &str, secret: Option<&str>) {
        let mut db = self.shared.lock();
        let client = db
            .clients
            .entry(client_id.to_owned())
            .or_insert_with(|| Client {
                secret: None,
                redirect_uris: Vec::new(),
            });
        if secret.is_some() {
            client.secret = secret.map(str::to_owned);
        }
        if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
            client.redirect_uris.push(redirect_uri.to_owned());
        }
    }

    pub fn add_organization(&self, id: &str, name: &str) {
        self.shared.lock().organization_mut(id).name = name.to_owned();
    }

    /// A project (its main team/environment has the same id) in `organization`, which is
    /// created on first use.
    pub fn add_project(&self, organization: &str, id: i64, name: &str) {
        let mut db = self.shared.lock();
        db.organization_mut(organization);
        let uuid = db.ids.uuid();
        let api_token = db.ids.token("phc_");
        db.projects.insert(
            id,
            Project {
                organization: organization.to_owned(),
                name: name.to_owned(),
                uuid,
                api_token,
            },
        );
    }

    /// What the user grants on the next consents: exactly `scope` (space-separated), limited to
    /// `teams` (empty: every project the user can reach).
    pub fn set_granted(&self, scope: &str, teams: &[i64]) {
        let mut db = self.shared.lock();
        db.consent.scope = Some(scope.to_owned());
        db.consent.scoped_teams = teams.to_vec();
    }

    /// Grant what the client asks for (clamped to known scopes), the default.
    pub fn grant_requested_scope(&self) {
        self.shared.lock().consent.scope = None;
    }

    /// The "specific projects" choice on the consent screen, keeping the granted scope.
    pub fn set_scoped_teams(&self, teams: &[i64]) {
        self.shared.lock().consent.scoped_teams = teams.to_vec();
    }

    /// The "specific organizations" choice on the consent screen.
    pub fn set_scoped_organizations(&self, organizations: &[&str]) {
        self.shared.lock().consent.scoped_organizations =
            organizations.iter().map(|o| (*o).to_owned()).collect();
    }

    /// The next authorization is refused by the user (`error=access_denied`).
    pub fn deny_next_authorization(&self) {
        self.shared.lock().faults.deny_next_authorization = true;
    }

    /// The next `count` token requests answer 503 `temporarily_unavailable` with `Retry-After: 1`
    /// and change nothing.
    pub fn fail_token_requests(&self, count: usize) {
        self.shared.lock().faults.token_unavailable = count;
    }

    /// The `nth` (1-based, counted over the stand-in's life) authenticated hog function create
    /// answers `status` without creating anything.
    pub fn fail_hog_function_create(&self, nth: usize, status: u16) {
        self.shared.lock().faults.create_failures.insert(
            nth,
            CreateFailure {
                status,
                after_commit: false,
            },
        );
    }

    /// Like [`Self::fail_hog_function_create`], but the function is created before the error goes
    /// out (a gateway timing out after PostHog committed): the client cannot know its id.
    pub fn fail_hog_function_create_after_commit(&self, nth: usize, status: u16) {
        self.shared.lock().faults.create_failures.insert(
            nth,
            CreateFailure {
                status,
                after_commit: true,
            },
        );
    }

    /// Every valid hog function create in `project` answers `status` with `body` (plan gating or
    /// a permission wall), e.g. [`Self::permission_denied_body`].
    pub fn refuse_project(&self, project: i64, status: u16, body: Value) {
        self.shared
            .lock()
            .faults
            .project_refusals
            .insert(project, (status, body));
    }

    /// Refuse `internal_destination` creates (whether third-party apps may make them is
    /// unconfirmed, posthog-api.md §11.2).
    pub fn refuse_internal_destinations(&self, status: u16, body: Value) {
        self.shared.lock().faults.internal_destination_refusal = Some((status, body));
    }

    /// PostHog's body for a 403 permission error with `detail`.
    pub fn permission_denied_body(detail: &str) -> Value {
        json!({"type": "authentication_error", "code": "permission_denied", "detail": detail, "attr": null})
    }

    /// PostHog's body for a 400 validation error with `detail` on `attr`.
    pub fn validation_error_body(detail: &str, attr: Option<&str>) -> Value {
        json!({"type": "validation_error", "code": "invalid_input", "detail": detail, "attr": attr})
    }

    /// Page size of every list (default 2, so clients must follow `next`).
    pub fn set_page_size(&self, size: usize) {
        self.shared.lock().page_size = size.max(1);
    }

    /// Adds Cloud's `posthog_region` / `posthog_base_url` (this stand-in's URL) to token responses
    /// and names the region in unknown-client errors.
    pub fn set_region(&self, region: Option<&str>) {
        self.shared.lock().region = region.map(str::to_owned);
    }

    /// Every request waits this long (real time) before being handled, for timeout tests.
    pub fn set_response_delay(&self, delay: Duration) {
        self.shared.lock().response_delay = delay;
    }

    /// Moves PostHog's clock forward: codes, access and refresh tokens and the refresh grace all
    /// follow it. (Webhook timestamps use the real clock, since receivers check against theirs.)
    pub fn advance_clock(&self, by: Duration) {
        let by = time::Duration::try_from(by).unwrap_or(time::Duration::MAX);
        let mut db = self.shared.lock();
        db.clock_offset = db.clock_offset.saturating_add(by);
    }

    pub fn now(&self) -> OffsetDateTime {
        self.shared.lock().now()
    }

    /// Tokens as if `client_id` had just completed the flow with the current consent settings.
    pub fn issue_tokens(&self, client_id: &str) -> Tokens {
        let mut db = self.shared.lock();
        let body = oauth::mint_for(&mut db, &self.shared.base_url, client_id);
        let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        Tokens {
            access_token: text("access_token"),
            refresh_token: text("refresh_token"),
            scope: text("scope"),
            expires_in: body["expires_in"].as_i64().unwrap_or_default(),
            scoped_teams: serde_json::from_value(body["scoped_teams"].clone()).unwrap_or_default(),
            scoped_organizations: serde_json::from_value(body["scoped_organizations"].clone())
                .unwrap_or_default(),
            body,
        }
    }

    /// The user removes the application in PostHog: every token of the client dies and a
    /// refresh answers `invalid_grant`.
    pub fn revoke_application(&self, client_id: &str) {
        let mut db = self.shared.lock();
        let mut families: Vec<u64> = db
            .refresh_tokens
            .values()
            .filter(|t| t.client_id == client_id)
            .map(|t| t.family)
            .chain(
                db.access_tokens
                    .values()
                    .filter(|t| t.client_id == client_id)
                    .map(|t| t.family),
            )
            .collect();
        families.sort_unstable();
        families.dedup();
        for family in families {
            db.revoke_family(family, RevocationReason::ApplicationRevoked);
        }
    }

    /// Every revocation so far, in order.
    pub fn revoked_tokens(&self) -> Vec<RevokedToken> {
        self.shared.lock().revoked.clone()
    }

    pub fn is_revoked(&self, token: &str) -> bool {
        self.shared.lock().revoked.iter().any(|r| r.token == token)
    }

    /// An access token the API would accept now.
    pub fn is_access_token_live(&self, token: &str) -> bool {
        self.shared.lock().live_access_token(token).is_some()
    }

    /// All functions of `project`, deleted ones included (see [`HogFunction::deleted`]).
    pub fn hog_functions(&self, project: i64) -> Vec<HogFunction> {
        self.shared
            .lock()
            .functions
            .iter()
            .filter(|f| f.project == project)
            .cloned()
            .collect()
    }

    pub fn hog_function(&self, id: &str) -> Option<HogFunction> {
        self.shared
            .lock()
            .functions
            .iter()
            .find(|f| f.id == id)
            .cloned()
    }

    /// What PostHog's health checker would do: 2 degraded, 3 disabled, 11/12 forced.
    ///
    /// # Panics
    /// When no function has this id (a bug in the test).
    pub fn set_function_state(&self, id: &str, state: i64) {
        let mut db = self.shared.lock();
        let function = db
            .functions
            .iter_mut()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no hog function {id}"));
        function.state = state;
    }

    pub fn add_issue(&self, project: i64, issue_id: &str, name: &str) {
        let mut db = self.shared.lock();
        let first_seen = db.now();
        db.issues
            .retain(|i| !(i.project == project && i.id == issue_id));
        db.issues.push(Issue {
            project,
            id: issue_id.to_owned(),
            name: name.to_owned(),
            description: String::new(),
            status: IssueStatus::Active,
            first_seen,
        });
    }

    /// Sets the status, creating the issue (named after its id) if PostHog did not have it yet.
    pub fn set_issue_status(&self, project: i64, issue_id: &str, status: IssueStatus) {
        if self.issue(project, issue_id).is_none() {
            self.add_issue(project, issue_id, issue_id);
        }
        let mut db = self.shared.lock();
        if let Some(issue) = db
            .issues
            .iter_mut()
            .find(|i| i.project == project && i.id == issue_id)
        {
            issue.status = status;
        }
    }

    pub fn issue(&self, project: i64, issue_id: &str) -> Option<Issue> {
        self.shared
            .lock()
            .issues
            .iter()
            .find(|i| i.project == project && i.id == issue_id)
            .cloned()
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    /// Logged requests with this method whose path starts with `path_prefix`.
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<LoggedRequest> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    pub fn clear_request_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Delivers `event` (a bare event or full invocation globals such as a fixture) through the
    /// function, as PostHog would: only if it is live and its event filters match.
    pub async fn deliver(
        &self,
        function_id: &str,
        event: &Value,
    ) -> Result<Delivery, DeliveryError> {
        self.deliver_with(function_id, event, &DeliveryOptions::default())
            .await
    }

    pub async fn deliver_with(
        &self,
        function_id: &str,
        event: &Value,
        options: &DeliveryOptions,
    ) -> Result<Delivery, DeliveryError> {
        let (function, globals) = {
            let db = self.shared.lock();
            let function = db
                .functions
                .iter()
                .find(|f| f.id == function_id)
                .cloned()
                .ok_or_else(|| DeliveryError::UnknownFunction(function_id.to_owned()))?;
            let project = db.projects.get(&function.project).map(|p| {
                json!({
                    "id": function.project,
                    "name": p.name,
                    "url": format!("{}/project/{}", self.shared.base_url, function.project),
                })
            });
            let globals = invocation_globals(&function, event, project.as_ref());
            (function, globals)
        };
        let name = globals["event"]["event"].as_str().unwrap_or_default();
        function.routes(name).map_err(DeliveryError::NotRouted)?;
        deliver(&function, &globals, options).await
    }

    /// An event happens in `project`: every function PostHog would route it to is invoked, in
    /// creation order.
    pub async fn send_event(
        &self,
        project: i64,
        event: &Value,
    ) -> Vec<Result<Delivery, DeliveryError>> {
        let ids: Vec<String> = self
            .hog_functions(project)
            .into_iter()
            .map(|f| f.id)
            .collect();
        let mut deliveries = Vec::new();
        for id in ids {
            match self.deliver(&id, event).await {
                Err(DeliveryError::NotRouted(_)) => {}
                other => deliveries.push(other),
            }
        }
        deliveries
    }
}
