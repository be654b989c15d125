//! The merchant API (DESIGN §4): subscriptions, their secrets, the delivery log and the
//! auth-callback configuration, as one axum [`Router`] that the Lambda serves through
//! `lambda_http` (API Gateway HTTP API, payload v2) and the local stack serves over HTTP.
//!
//! Every route is a row of [`ROUTES`]; [`router`] is built from that table and nothing
//! else, and a test holds the table equal to `openapi.yaml`. Each request is authenticated
//! by its bearer API key (looked up by SHA-256 hash), counted against the merchant's
//! [`RateLimit`] in the store (so the limit holds across Lambda containers), and logged
//! once with its `merchant_id`, never with a secret or key. Requests with a missing or
//! wrong key are counted against their source address, with a smaller budget.
//! Whatever a client sends, the answer is a 2xx or a 4xx with `{"error":{"code","message"}}`;
//! the only 5xx is a 503 when the store or queue fails.

mod auth_callback;
mod deliveries;
mod error;
mod extract;
mod portal;
mod rate_limit;
mod recover;
mod stats;
mod subscriptions;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use time::OffsetDateTime;
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::{Clock, IsoTime, UrlPolicy, hash_api_key, unix_millis};
use webhooks_runtime::metrics;
use webhooks_storage::{Backend, QueueSender};

pub use error::ApiError;
pub use rate_limit::RateLimit;
pub use recover::MAX_RECOVERED_PER_REQUEST;

use crate::error::ErrorCode;
use crate::extract::{Caller, source_address};
use crate::rate_limit::{Limiter, bad_key_source};

/// The largest request body, in bytes (64 KiB); a larger one is a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What a route does; [`ROUTES`] maps each to its method and path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/subscriptions`.
    CreateSubscription,
    /// `GET /v1/subscriptions`.
    ListSubscriptions,
    /// `GET /v1/subscriptions/{id}`.
    GetSubscription,
    /// `PATCH /v1/subscriptions/{id}`.
    UpdateSubscription,
    /// `DELETE /v1/subscriptions/{id}`.
    DeleteSubscription,
    /// `GET /v1/subscriptions/{id}/secret`.
    GetSecret,
    /// `POST /v1/subscriptions/{id}/secret/rotate`.
    RotateSecret,
    /// `POST /v1/subscriptions/{id}/test`.
    SendTestEvent,
    /// `GET /v1/subscriptions/{id}/deliveries`.
    ListDeliveries,
    /// `POST /v1/subscriptions/{id}/deliveries/{eventId}/retry`.
    RetryDelivery,
    /// `POST /v1/subscriptions/{id}/recover`.
    RecoverDeliveries,
    /// `GET /v1/subscriptions/{id}/stats`.
    SubscriptionStats,
    /// `GET /v1/auth-callback`.
    GetAuthCallback,
    /// `PUT /v1/auth-callback`.
    PutAuthCallback,
    /// `DELETE /v1/auth-callback`.
    DeleteAuthCallback,
    /// `POST /v1/auth-callback/test`.
    TestAuthCallback,
}

/// Every route of the merchant API: method, path (axum and OpenAPI share the `{name}`
/// syntax) and what it does. [`router`] serves exactly these.
pub const ROUTES: [(Method, &str, Endpoint); 16] = [
    (Method::POST, "/v1/subscriptions", Endpoint::CreateSubscription),
    (Method::GET, "/v1/subscriptions", Endpoint::ListSubscriptions),
    (Method::GET, "/v1/subscriptions/{id}", Endpoint::GetSubscription),
    (Method::PATCH, "/v1/subscriptions/{id}", Endpoint::UpdateSubscription),
    (Method::DELETE, "/v1/subscriptions/{id}", Endpoint::DeleteSubscription),
    (Method::GET, "/v1/subscriptions/{id}/secret", Endpoint::GetSecret),
    (
        Method::POST,
        "/v1/subscriptions/{id}/secret/rotate",
        Endpoint::RotateSecret,
    ),
    (Method::POST, "/v1/subscriptions/{id}/test", Endpoint::SendTestEvent),
    (
        Method::GET,
        "/v1/subscriptions/{id}/deliveries",
        Endpoint::ListDeliveries,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{id}/deliveries/{eventId}/retry",
        Endpoint::RetryDelivery,
    ),
    (
        Method::POST,
        "/v1/subscriptions/{id}/recover",
        Endpoint::RecoverDeliveries,
    ),
    (Method::GET, "/v1/subscriptions/{id}/stats", Endpoint::SubscriptionStats),
    (Method::GET, "/v1/auth-callback", Endpoint::GetAuthCallback),
    (Method::PUT, "/v1/auth-callback", Endpoint::PutAuthCallback),
    (Method::DELETE, "/v1/auth-callback", Endpoint::DeleteAuthCallback),
    (Method::POST, "/v1/auth-callback/test", Endpoint::TestAuthCallback),
];

/// The merchant API's dependencies: the store (which also keeps the request counters), the
/// deliveries queue (test events, manual retries and recoveries), the URL policy, the auth callback
/// (for `/v1/auth-callback/test`), the clock and the rate limits.
pub struct Api<S, Q> {
    store: S,
    deliveries: Q,
    url_policy: UrlPolicy,
    auth_callback: AuthCallback<S>,
    clock: Arc<dyn Clock>,
    limiter: Limiter,
}

/// The router's state.
pub type ApiState<S, Q> = State<Arc<Api<S, Q>>>;

impl<S: Backend + 'static, Q: QueueSender + 'static> Api<S, Q> {
    /// The API over these ports, with the default limits: [`RateLimit::PER_MERCHANT`] and
    /// [`RateLimit::BAD_KEY_PER_SOURCE`].
    pub fn new(
        store: S,
        deliveries: Q,
        url_policy: UrlPolicy,
        auth_callback: AuthCallback<S>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            deliveries,
            url_policy,
            auth_callback,
            clock,
            limiter: Limiter::new(RateLimit::PER_MERCHANT, RateLimit::BAD_KEY_PER_SOURCE),
        }
    }

    /// The same API with another per-merchant rate limit.
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.limiter = self.limiter.with_per_merchant(limit);
        self
    }

    /// The same API with another limit of requests with a missing or wrong API key, per
    /// source address.
    pub fn with_bad_key_limit(mut self, limit: RateLimit) -> Self {
        self.limiter = self.limiter.with_bad_key_per_source(limit);
        self
    }

    /// The merchant whose API key the `Authorization: Bearer` header carries; `None` when
    /// the key is missing, malformed or unknown.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        let key = headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim())
            .filter(|key| !key.is_empty());
        let Some(key) = key else {
            return Ok(None);
        };
        let merchant = self.store.merchant_for_api_key(&hash_api_key(key)).await?;
        Ok(merchant.map(|m| m.id))
    }

    /// Now, with JavaScript `Date` precision.
    fn now(&self) -> IsoTime {
        IsoTime::new(self.clock.now())
            .unwrap_or_else(|| IsoTime::new(OffsetDateTime::UNIX_EPOCH).expect("the epoch is in range"))
    }

    /// The merchant a request from `source` is from, if the limits let it in. A source over
    /// its budget of bad-key requests is refused (429) before its key is even checked; a
    /// missing or wrong key counts against the source (401, or 429 once over); a valid one
    /// against its merchant (429 once over). A refusal carries the merchant, when known.
    async fn admit(&self, headers: &HeaderMap, source: Option<IpAddr>) -> Result<String, (Option<String>, ApiError)> {
        let now_ms = unix_millis(self.clock.now());
        let source = bad_key_source(source);
        let anonymous = |error| (None, error);
        self.limiter
            .check_source(&self.store, &source, now_ms)
            .await
            .map_err(anonymous)?;
        let Some(merchant_id) = self.authenticate(headers).await.map_err(anonymous)? else {
            self.limiter
                .count_bad_key(&self.store, &source, now_ms)
                .await
                .map_err(anonymous)?;
            return Err(anonymous(ApiError::unauthorized()));
        };
        match self.limiter.admit_merchant(&self.store, &merchant_id, now_ms).await {
            Ok(()) => Ok(merchant_id),
            Err(error) => Err((Some(merchant_id), error)),
        }
    }
}

/// The merchant API as one router with its state applied: the routes of [`ROUTES`],
/// authenticated, rate limited and logged; the merchant portal's page and assets at `/`
/// and `/portal/{file}`; JSON 404 and 405 answers; bodies capped at [`MAX_BODY_BYTES`]. The local stack merges its own `/local/*` routes beside it.
pub fn router<S: Backend + 'static, Q: QueueSender + 'static>(api: Arc<Api<S, Q>>) -> Router {
    ROUTES
        .into_iter()
        .fold(Router::new(), |router, (method, path, endpoint)| {
            let filter = MethodFilter::try_from(method).expect("ROUTES holds standard methods");
            router.route(path, handler::<S, Q>(endpoint, filter))
        })
        .route_layer(middleware::from_fn_with_state(api.clone(), guard::<S, Q>))
        .merge(portal::portal_routes())
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

fn handler<S: Backend + 'static, Q: QueueSender + 'static>(
    endpoint: Endpoint,
    filter: MethodFilter,
) -> MethodRouter<Arc<Api<S, Q>>> {
    match endpoint {
        Endpoint::CreateSubscription => on(filter, subscriptions::create::<S, Q>),
        Endpoint::ListSubscriptions => on(filter, subscriptions::list::<S, Q>),
        Endpoint::GetSubscription => on(filter, subscriptions::get::<S, Q>),
        Endpoint::UpdateSubscription => on(filter, subscriptions::update::<S, Q>),
        Endpoint::DeleteSubscription => on(filter, subscriptions::delete::<S, Q>),
        Endpoint::GetSecret => on(filter, subscriptions::secret::<S, Q>),
        Endpoint::RotateSecret => on(filter, subscriptions::rotate_secret::<S, Q>),
        Endpoint::SendTestEvent => on(filter, deliveries::send_test_event::<S, Q>),
        Endpoint::ListDeliveries => on(filter, deliveries::list::<S, Q>),
        Endpoint::RetryDelivery => on(filter, deliveries::retry::<S, Q>),
        Endpoint::RecoverDeliveries => on(filter, recover::recover::<S, Q>),
        Endpoint::SubscriptionStats => on(filter, stats::stats::<S, Q>),
        Endpoint::GetAuthCallback => on(filter, auth_callback::get::<S, Q>),
        Endpoint::PutAuthCallback => on(filter, auth_callback::put::<S, Q>),
        Endpoint::DeleteAuthCallback => on(filter, auth_callback::delete::<S, Q>),
        Endpoint::TestAuthCallback => on(filter, auth_callback::test::<S, Q>),
    }
}

/// Rate-limits and authenticates every request ([`Api::admit`]), hands the [`Caller`] to
/// the handler, and logs the outcome: method, route (the template: ids stay out of it),
/// status, error code, latency and `merchant_id`; never a header, a body, a path, a query
/// or a source address. Counts it in the `api_requests` and `api_latency` metrics.
async fn guard<S: Backend + 'static, Q: QueueSender + 'static>(
    State(api): ApiState<S, Q>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let (merchant_id, response) = match api.admit(request.headers(), source_address(&request)).await {
        Ok(merchant_id) => {
            let caller = Caller {
                merchant_id: merchant_id.clone(),
            };
            request.extensions_mut().insert(caller);
            (Some(merchant_id), next.run(request).await)
        }
        Err((merchant_id, error)) => (merchant_id, error.into_response()),
    };
    tracing::info!(
        merchant_id,
        %method,
        route,
        status = response.status().as_u16(),
        code = response.extensions().get::<ErrorCode>().map(|code| code.0),
        latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "merchant api request"
    );
    let route = route.as_deref().unwrap_or("unmatched");
    metrics::api_request(route, response.status().as_u16(), started.elapsed());
    // In Lambda (one request per invocation) the request's metrics are written now.
    metrics::flush_emf();
    response
}
