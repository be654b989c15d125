//! A subscription's deliveries: test events, the delivery log and manual retries. Both
//! test events and retries are delivery tasks on the deliveries queue, handled by the
//! deliver function like any other.

use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webhooks_domain::event::MAX_EVENT_ID_CHARS;
use webhooks_domain::{DeliveryAttempt, DeliveryTask, EventName, PlatformEvent, Subscription};
use webhooks_ingest::{Audience, FAN_OUT_LEASE, enqueue, publish};
use webhooks_storage::{Backend, PageRequest, QueueSender};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Caller, OptionalBody, Paging, PathParams};
use crate::subscriptions::{PageView, parse_event};

/// Attempts read per store page while looking for an event's latest attempt.
const ATTEMPT_SCAN_PAGE_SIZE: usize = 1000;

/// `POST /v1/subscriptions/{id}/test`; without `eventName`, the subscription's first event.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TestEventRequest {
    event_name: Option<String>,
}

/// The id of the event a test or retry queued.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Accepted {
    event_id: String,
}

/// Deliveries are only queued for an enabled subscription: a disabled one would skip them.
pub(crate) fn ensure_enabled(subscription: &Subscription) -> Result<(), ApiError> {
    match subscription.enabled {
        true => Ok(()),
        false => Err(ApiError::conflict(
            "subscription_disabled",
            "the subscription is disabled: enable it first",
        )),
    }
}

/// `POST /v1/subscriptions/{id}/test`: records a test event and queues its delivery to this
/// subscription only; 202 with its id.
pub(crate) async fn send_test_event<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    OptionalBody(request): OptionalBody<TestEventRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let subscription = api.subscription(&caller, &id).await?;
    let event_name = match request.event_name {
        Some(name) => parse_event(&name)?,
        None => subscription.events.first().copied().unwrap_or(EventName::ALL[0]),
    };
    ensure_enabled(&subscription)?;
    let event = PlatformEvent {
        event_id: Uuid::new_v4().to_string(),
        merchant_id: caller.merchant_id,
        event_name,
        order_id: format!("test_{}", Uuid::new_v4()),
        time_stamp: api.now(),
    };
    // Published like an ingested event, so that its delivery can be retried by id.
    let audience = Audience::Only(&subscription.id);
    publish(&api.store, &api.deliveries, &event, audience, FAN_OUT_LEASE).await?;
    tracing::info!(merchant_id = %event.merchant_id, subscription_id = %id, event_id = %event.event_id, %event_name, "test event queued");
    let accepted = Accepted {
        event_id: event.event_id,
    };
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// `GET /v1/subscriptions/{id}/deliveries`: one page of attempts, newest first.
pub(crate) async fn list<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Paging(page): Paging,
) -> Result<Json<PageView<DeliveryAttempt>>, ApiError> {
    let subscription = api.subscription(&caller, &id).await?;
    let page = api
        .store
        .list_attempts(&caller.merchant_id, &subscription.id, page)
        .await?;
    Ok(Json(PageView::of(page, |attempt| attempt)))
}

/// `POST /v1/subscriptions/{id}/deliveries/{eventId}/retry`: queues one more attempt of a
/// delivery the subscription had, now, marked manual: if it fails, nothing more is scheduled.
/// Automatic retries still scheduled go on (the merchant dedupes on `webhook-id`).
pub(crate) async fn retry<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams((id, event_id)): PathParams<(String, String)>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let subscription = api.subscription(&caller, &id).await?;
    let not_found = || ApiError::not_found("delivery of this event to this subscription");
    let plausible = !event_id.is_empty()
        && event_id.len() <= MAX_EVENT_ID_CHARS
        && event_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if !plausible || api.store.delivery_status(&event_id, &subscription.id).await?.is_none() {
        return Err(not_found());
    }
    let event = api
        .store
        .get_event(&event_id)
        .await?
        .filter(|event| event.merchant_id == caller.merchant_id)
        .ok_or_else(not_found)?;
    ensure_enabled(&subscription)?;
    let attempt = latest_attempt(&api.store, &caller.merchant_id, &subscription.id, &event_id).await? + 1;
    let task = DeliveryTask {
        attempt,
        manual: true,
        ..DeliveryTask::first(event, subscription.id)
    };
    enqueue(&api.deliveries, &[task]).await?;
    tracing::info!(merchant_id = %caller.merchant_id, subscription_id = %id, %event_id, attempt, "manual retry queued");
    Ok((StatusCode::ACCEPTED, Json(Accepted { event_id })))
}

/// The number of the latest recorded attempt of `event_id` to this subscription (0 if none
/// is left): the log is newest first, so the first one found is it.
async fn latest_attempt<S: Backend>(
    store: &S,
    merchant_id: &str,
    subscription_id: &str,
    event_id: &str,
) -> Result<u32, ApiError> {
    let mut page = PageRequest::first(ATTEMPT_SCAN_PAGE_SIZE);
    loop {
        let attempts = store.list_attempts(merchant_id, subscription_id, page.clone()).await?;
        if let Some(latest) = attempts.items.iter().find(|a| a.event_id == event_id) {
            return Ok(latest.attempt);
        }
        match attempts.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(0),
        }
    }
}
