//! Subscriptions and their secrets: create, list, read, change, delete, reveal, rotate.

use std::collections::HashSet;

use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use webhooks_domain::subscription::{
    MAX_DESCRIPTION_CHARS, MAX_RATE_LIMIT_PER_SECOND, SigningSecrets, validate_secret,
};
use webhooks_domain::{EndpointHealth, EventName, HealthStatus, IsoTime, Subscription};
use webhooks_signing::standard::standard_webhooks_secret;
use webhooks_storage::{Backend, Page, QueueSender, StoreError};

use crate::error::ApiError;
use crate::extract::{Body, Caller, Paging, PathParams};
use crate::{Api, ApiState};

/// How many times a change to a subscription is read, made and stored while other writes
/// to it keep getting there first, before the API gives up and answers 409 `conflict`.
const MAX_CHANGE_ATTEMPTS: u32 = 5;

/// `POST /v1/subscriptions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateRequest {
    url: String,
    events: Option<Vec<String>>,
    description: Option<String>,
    secret: Option<String>,
    /// 1 to 1000; left out for no limit.
    rate_limit_per_second: Option<i64>,
}

/// `PATCH /v1/subscriptions/{id}`: at least one property.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct UpdateRequest {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
    /// 1 to 1000, or 0 to remove the limit (a body never holds `null`).
    rate_limit_per_second: Option<i64>,
}

/// A subscription as the API shows it: no secret.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscriptionView {
    id: String,
    url: String,
    events: Vec<EventName>,
    description: String,
    enabled: bool,
    /// `null` when the subscription has no rate limit.
    rate_limit_per_second: Option<u32>,
    health: HealthView,
    created_at: IsoTime,
    updated_at: IsoTime,
}

/// An endpoint's health as the API shows it (DESIGN section 4).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthView {
    status: HealthStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<IsoTime>,
    consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
}

impl From<EndpointHealth> for HealthView {
    fn from(health: EndpointHealth) -> Self {
        // A run of failures too short to be `failing` has no `since` to show yet.
        let since = match health.status {
            HealthStatus::Healthy => None,
            _ => health.since,
        };
        Self {
            status: health.status,
            since,
            consecutive_failures: health.consecutive_failures,
            last_error: health.last_error,
            disabled_reason: health.disabled_reason,
        }
    }
}

impl From<Subscription> for SubscriptionView {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id,
            url: s.url,
            events: s.events,
            description: s.description,
            enabled: s.enabled,
            rate_limit_per_second: s.rate_limit_per_second,
            health: s.health.into(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The current secret, and the same in the form Standard Webhooks libraries take.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretView {
    secret: String,
    standard_webhooks_secret: String,
}

impl SecretView {
    fn of(secrets: &SigningSecrets) -> Self {
        Self {
            standard_webhooks_secret: standard_webhooks_secret(&secrets.current),
            secret: secrets.current.clone(),
        }
    }
}

/// The answer to a creation: the subscription and its secret.
#[derive(Serialize)]
pub(crate) struct Created {
    #[serde(flatten)]
    subscription: SubscriptionView,
    #[serde(flatten)]
    secret: SecretView,
}

/// The answer to a rotation: the new secret, and when the previous one stops signing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rotated {
    #[serde(flatten)]
    secret: SecretView,
    previous_secret_expires_at: IsoTime,
}

/// One page of a listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageView<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

impl<T> PageView<T> {
    pub(crate) fn of<U>(page: Page<U>, view: impl FnMut(U) -> T) -> Self {
        Self {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: page.next_cursor,
        }
    }
}

/// Whether `id` has the shape of the ids we issue (`sub_` + 32 lowercase hex digits): anything else
/// is unknown without asking the store.
fn is_subscription_id(id: &str) -> bool {
    id.strip_prefix("sub_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

impl<S: Backend + 'static, Q: QueueSender + 'static> Api<S, Q> {
    /// The caller's subscription `id`; another merchant's is as unknown as a missing one.
    pub(crate) async fn subscription(&self, caller: &Caller, id: &str) -> Result<Subscription, ApiError> {
        let found = match is_subscription_id(id) {
            true => self.store.get_subscription(&caller.merchant_id, id).await?,
            false => None,
        };
        found.ok_or_else(|| ApiError::not_found("subscription"))
    }

    /// The caller's subscription `id` and its opened secrets, found as [`Api::subscription`] finds it.
    pub(crate) async fn subscription_with_secrets(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Subscription, SigningSecrets), ApiError> {
        let found = match is_subscription_id(id) {
            true => {
                self.store
                    .get_subscription_with_secrets(&caller.merchant_id, id)
                    .await?
            }
            false => None,
        };
        found.ok_or_else(|| ApiError::not_found("subscription"))
    }

    /// Reads the caller's subscription `id` with its secrets, makes `change` to them and
    /// stores them (the secrets sealed again), unless another write changed it in between:
    /// then it reads it again and remakes the change, so that neither write undoes the other
    /// (at most [`MAX_CHANGE_ATTEMPTS`] times, then 409 `conflict`). Returns what was stored.
    pub(crate) async fn change_subscription(
        &self,
        caller: &Caller,
        id: &str,
        mut change: impl FnMut(&mut Subscription, &mut SigningSecrets),
    ) -> Result<(Subscription, SigningSecrets), ApiError> {
        let mut attempts = 1;
        loop {
            let (mut subscription, mut secrets) = self.subscription_with_secrets(caller, id).await?;
            change(&mut subscription, &mut secrets);
            match self.store.update_subscription(&subscription, &secrets).await {
                Err(StoreError::VersionConflict) if attempts < MAX_CHANGE_ATTEMPTS => attempts += 1,
                result => return result.map(|()| (subscription, secrets)).map_err(ApiError::from),
            }
        }
    }

    /// Re-enabled by its merchant: the endpoint's health starts again from healthy (its
    /// held deliveries stay held for a recover). A compare-and-swap, read again when deliver
    /// changed the health meanwhile.
    pub(crate) async fn reset_health(&self, mut subscription: Subscription) -> Result<Subscription, ApiError> {
        for _ in 0..MAX_CHANGE_ATTEMPTS {
            let reset = subscription.health.reset();
            if reset == subscription.health {
                return Ok(subscription);
            }
            let (merchant_id, id) = (&subscription.merchant_id, &subscription.id);
            if self
                .store
                .record_health(merchant_id, id, &subscription.health, &reset)
                .await?
            {
                subscription.health = reset;
                return Ok(subscription);
            }
            subscription = self
                .store
                .get_subscription(merchant_id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("subscription"))?;
        }
        Err(StoreError::VersionConflict.into())
    }

    /// Refuses a URL the policy refuses. An allowed URL is kept as sent: deliveries check
    /// and parse that same text before each request.
    pub(crate) fn check_url(&self, url: &str) -> Result<(), ApiError> {
        self.url_policy
            .check_new(url)
            .map(drop)
            .map_err(|refusal| ApiError::unprocessable("url_not_allowed", refusal.to_string()))
    }
}

/// One of the six event names.
pub(crate) fn parse_event(name: &str) -> Result<EventName, ApiError> {
    name.parse()
        .map_err(|e| ApiError::unprocessable("invalid_events", format!("{e}")))
}

/// Known event names, at least one, none twice.
fn parse_events(names: &[String]) -> Result<Vec<EventName>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_events",
            "events must list at least one event name",
        ));
    }
    let mut seen = HashSet::new();
    names
        .iter()
        .map(|name| {
            let event = parse_event(name)?;
            match seen.insert(event) {
                true => Ok(event),
                false => Err(ApiError::unprocessable(
                    "invalid_events",
                    format!("events lists {event} twice"),
                )),
            }
        })
        .collect()
}

fn check_description(description: &str) -> Result<(), ApiError> {
    match description.chars().count() <= MAX_DESCRIPTION_CHARS {
        true => Ok(()),
        false => Err(ApiError::unprocessable(
            "invalid_value",
            format!("description is longer than {MAX_DESCRIPTION_CHARS} characters"),
        )),
    }
}

/// A `rateLimitPerSecond` of 1 to [`MAX_RATE_LIMIT_PER_SECOND`] deliveries a second.
fn check_rate_limit(per_second: i64) -> Result<u32, ApiError> {
    u32::try_from(per_second)
        .ok()
        .filter(|limit| (1..=MAX_RATE_LIMIT_PER_SECOND).contains(limit))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_value",
                format!("rateLimitPerSecond must be between 1 and {MAX_RATE_LIMIT_PER_SECOND}, not {per_second}"),
            )
        })
}

/// `POST /v1/subscriptions`: 201 with the subscription and its secret.
pub(crate) async fn create<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    Body(request): Body<CreateRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    api.check_url(&request.url)?;
    let events = match &request.events {
        Some(names) => parse_events(names)?,
        None => EventName::ALL.to_vec(),
    };
    let description = request.description.unwrap_or_default();
    check_description(&description)?;
    if let Some(secret) = &request.secret {
        validate_secret(secret).map_err(|e| ApiError::unprocessable("invalid_secret", e.to_string()))?;
    }
    let rate_limit_per_second = request.rate_limit_per_second.map(check_rate_limit).transpose()?;
    let now = api.now();
    let subscription = Subscription {
        id: Subscription::new_id(),
        merchant_id: caller.merchant_id,
        url: request.url,
        events,
        description,
        enabled: true,
        rate_limit_per_second,
        created_at: now,
        updated_at: now,
        version: 0,
        health: Default::default(),
    };
    let secrets = SigningSecrets::new(request.secret);
    api.store.create_subscription(&subscription, &secrets).await?;
    tracing::info!(merchant_id = %subscription.merchant_id, subscription_id = %subscription.id, "subscription created");
    let secret = SecretView::of(&secrets);
    let created = Created {
        subscription: subscription.into(),
        secret,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /v1/subscriptions`: one page of the caller's subscriptions, oldest id first.
pub(crate) async fn list<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    Paging(page): Paging,
) -> Result<Json<PageView<SubscriptionView>>, ApiError> {
    let page = api.store.list_subscriptions(&caller.merchant_id, page).await?;
    Ok(Json(PageView::of(page, SubscriptionView::from)))
}

/// `GET /v1/subscriptions/{id}`.
pub(crate) async fn get<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let subscription = api.subscription(&caller, &id).await?;
    Ok(Json(subscription.into()))
}

/// `PATCH /v1/subscriptions/{id}`: changes the given properties, checked as on creation.
pub(crate) async fn update<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(request): Body<UpdateRequest>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let UpdateRequest {
        url,
        events,
        description,
        enabled,
        rate_limit_per_second,
    } = request;
    if url.is_none()
        && events.is_none()
        && description.is_none()
        && enabled.is_none()
        && rate_limit_per_second.is_none()
    {
        return Err(ApiError::bad_request(
            "give at least one of url, events, description, enabled, rateLimitPerSecond",
        ));
    }
    if let Some(url) = &url {
        api.check_url(url)?;
    }
    let events = events.as_deref().map(parse_events).transpose()?;
    if let Some(description) = &description {
        check_description(description)?;
    }
    // 0 removes the limit.
    let rate_limit = rate_limit_per_second
        .map(|per_second| (per_second != 0).then(|| check_rate_limit(per_second)).transpose())
        .transpose()?;
    let now = api.now();
    let (subscription, _) = api
        .change_subscription(&caller, &id, |subscription, _| {
            if let Some(url) = &url {
                subscription.url.clone_from(url);
            }
            if let Some(events) = &events {
                subscription.events.clone_from(events);
            }
            if let Some(description) = &description {
                subscription.description.clone_from(description);
            }
            if let Some(enabled) = enabled {
                subscription.enabled = enabled;
            }
            if let Some(rate_limit) = rate_limit {
                subscription.rate_limit_per_second = rate_limit;
            }
            subscription.updated_at = now;
        })
        .await?;
    let subscription = match enabled {
        Some(true) => api.reset_health(subscription).await?,
        _ => subscription,
    };
    tracing::info!(merchant_id = %caller.merchant_id, subscription_id = %id, "subscription updated");
    Ok(Json(subscription.into()))
}

/// `DELETE /v1/subscriptions/{id}`: 204.
pub(crate) async fn delete<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let deleted = is_subscription_id(&id) && api.store.delete_subscription(&caller.merchant_id, &id).await?;
    if !deleted {
        return Err(ApiError::not_found("subscription"));
    }
    tracing::info!(merchant_id = %caller.merchant_id, subscription_id = %id, "subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/subscriptions/{id}/secret`.
pub(crate) async fn secret<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<SecretView>, ApiError> {
    let (_, secrets) = api.subscription_with_secrets(&caller, &id).await?;
    Ok(Json(SecretView::of(&secrets)))
}

/// `POST /v1/subscriptions/{id}/secret/rotate`: a new secret; the old one keeps signing
/// the headers for 24 h.
pub(crate) async fn rotate_secret<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Rotated>, ApiError> {
    let now = api.now();
    let (_, secrets) = api
        .change_subscription(&caller, &id, |subscription, secrets| {
            secrets.rotate(now);
            subscription.updated_at = now;
        })
        .await?;
    tracing::info!(merchant_id = %caller.merchant_id, subscription_id = %id, "secret rotated");
    let rotated = Rotated {
        secret: SecretView::of(&secrets),
        previous_secret_expires_at: secrets.previous.as_ref().map_or(now, |previous| previous.expires_at),
    };
    Ok(Json(rotated))
}
