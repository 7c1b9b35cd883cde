//! The router and the middleware that records every request for the tests.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::extract::{Request, State as Extract};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use super::errors::ApiError;
use super::state::State;
use super::{api, hog_functions, oauth, LoggedRequest};

/// Above PostHog's own 20 MB upload limit, so the stand-in never refuses what PostHog accepts.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

pub(crate) struct Shared {
    state: Mutex<State>,
    pub base_url: String,
}

impl Shared {
    pub fn new(base_url: String) -> Self {
        Shared {
            state: Mutex::new(State::new()),
            base_url,
        }
    }

    /// A test that panicked while holding the lock must not turn every later request into a
    /// second, confusing panic; the state is still the best answer available.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    use hog_functions as hf;
    let routes: Vec<(&str, MethodRouter<Arc<Shared>>)> = vec![
        ("/oauth/authorize/", get(oauth::authorize)),
        ("/oauth/token/", post(oauth::token)),
        ("/oauth/revoke/", post(oauth::revoke)),
        ("/api/users/@me/", get(api::me)),
        ("/api/organizations/", get(api::organizations)),
        ("/api/organizations/{organization}/", get(api::organization)),
        (
            "/api/organizations/{organization}/projects/",
            get(api::organization_projects),
        ),
        ("/api/projects/", get(api::projects)),
        ("/api/projects/{project}/", get(api::project)),
        (
            "/api/projects/{project}/hog_functions/",
            get(hf::list).post(hf::create),
        ),
        (
            "/api/projects/{project}/hog_functions/{id}/",
            get(hf::retrieve)
                .patch(hf::partial_update)
                .put(hf::update)
                .delete(hf::destroy),
        ),
        (
            "/api/projects/{project}/error_tracking/issues/{issue}/",
            get(api::issue).patch(api::update_issue),
        ),
    ];
    let mut router = Router::new();
    for (path, methods) in routes {
        // DRF's routers treat the trailing slash as optional (`/?`), and so does PostHog's token URL.
        router = router
            .route(path, methods.clone())
            .route(path.trim_end_matches('/'), methods);
    }
    router
        .fallback(|| async { ApiError::not_found().into_response() })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .with_state(shared)
}

async fn record(Extract(shared): Extract<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut entry = LoggedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
    };
    let delay = shared.lock().response_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    entry.status = response.status().as_u16();
    shared.lock().log.push(entry);
    response
}
