//! The `/local/*` routes: what platform services do in production, over HTTP for trying
//! the stack out; and `GET /metrics`, the Prometheus text of the stack's metrics. Bad input gets a 4xx JSON error; nothing here answers 500 for a client's
//! mistake.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use webhooks_auth_callback::{AuthCallback, AuthRequest};
use webhooks_domain::{Merchant, NewApiKey};
use webhooks_ingest::Ingest;
use webhooks_runtime::metrics::PrometheusHandle;
use webhooks_storage::{Backend, OutgoingMessage, QueueSender, StoreError};

/// What the `/local/*` routes use.
pub struct LocalState<S, Q> {
    /// The store.
    pub store: S,
    /// The events queue, where `/local/events` puts what platform services would.
    pub events: Q,
    /// Ingest, for its validation of event messages.
    pub ingest: Arc<Ingest<S, Q>>,
    /// The auth callback, for `/local/auth-check`.
    pub auth: Arc<AuthCallback<S>>,
    /// The metrics, for `GET /metrics`.
    pub metrics: PrometheusHandle,
}

/// The `/local/*` routes.
pub fn local_routes<S, Q>(state: Arc<LocalState<S, Q>>) -> Router
where
    S: Backend + Clone + 'static,
    Q: QueueSender + Clone + 'static,
{
    Router::new()
        .route("/local/merchants", post(create_merchant::<S, Q>))
        .route("/local/events", post(publish_event::<S, Q>))
        .route("/local/auth-check", post(auth_check::<S, Q>))
        .route("/metrics", get(metrics_text::<S, Q>))
        .with_state(state)
}

/// `GET /metrics`: every metric (docs/operations.md) in Prometheus text format.
async fn metrics_text<S, Q>(State(state): State<Arc<LocalState<S, Q>>>) -> Response {
    let text = state.metrics.render();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// `{"error":{"code","message"}}` with a status.
pub fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message.to_string()}})),
    )
        .into_response()
}

fn unavailable(failure: StoreError) -> Response {
    tracing::error!(error = %failure, "store or queue failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the store or queue is unavailable; retry later",
    )
}

/// Parses a JSON body, or answers 400 saying why not.
#[allow(clippy::result_large_err)]
fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NewMerchant {
    #[serde(default)]
    name: Option<String>,
}

/// Creates a merchant and its API key, like `webhooks-admin merchant create`.
pub async fn create_merchant_with_key<S: Backend>(
    store: &S,
    name: Option<String>,
) -> Result<(Merchant, NewApiKey), StoreError> {
    let id = Merchant::new_id();
    let created_at =
        webhooks_domain::IsoTime::new(time_now()).ok_or_else(|| StoreError::backend("clock", "out of range"))?;
    let merchant = Merchant {
        name: name.unwrap_or_else(|| id.clone()),
        id,
        created_at,
    };
    let key = NewApiKey::generate();
    store.create_merchant(&merchant, &key.hash).await?;
    Ok((merchant, key))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

async fn create_merchant<S: Backend + Clone + 'static, Q: QueueSender + Clone + 'static>(
    State(state): State<Arc<LocalState<S, Q>>>,
    body: Bytes,
) -> Response {
    let request: NewMerchant = if body.iter().all(u8::is_ascii_whitespace) {
        NewMerchant::default()
    } else {
        match parse_body(&body) {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    if request.name.as_ref().is_some_and(|n| n.chars().count() > 256) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_name",
            "name is longer than 256 characters",
        );
    }
    match create_merchant_with_key(&state.store, request.name).await {
        Ok((merchant, key)) => (
            StatusCode::CREATED,
            axum::Json(json!({"merchantId": merchant.id, "apiKey": key.clear_text})),
        )
            .into_response(),
        Err(e) => unavailable(e),
    }
}

async fn publish_event<S: Backend + Clone + 'static, Q: QueueSender + Clone + 'static>(
    State(state): State<Arc<LocalState<S, Q>>>,
    body: Bytes,
) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_json", "the body is not UTF-8");
    };
    let event = match state.ingest.parse(text) {
        Ok(event) => event,
        Err(reason) => return error(StatusCode::BAD_REQUEST, reason.code(), reason),
    };
    // The normalized message carries the id and time we answer with, so ingest derives nothing anew.
    let message = serde_json::to_string(&event).expect("events serialize");
    match state
        .events
        .send(OutgoingMessage {
            body: message,
            delay: std::time::Duration::ZERO,
        })
        .await
    {
        Ok(()) => (StatusCode::ACCEPTED, axum::Json(json!({"eventId": event.event_id}))).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn auth_check<S: Backend + Clone + 'static, Q: QueueSender + Clone + 'static>(
    State(state): State<Arc<LocalState<S, Q>>>,
    body: Bytes,
) -> Response {
    match parse_body::<AuthRequest>(&body) {
        Ok(request) => axum::Json(state.auth.decide(request).await).into_response(),
        Err(response) => response,
    }
}
