//! `POST /v1/subscriptions/{id}/recover`: sends again every failed delivery of a
//! subscription whose first attempt was made in a window of at most 14 days, oldest first,
//! each as one manual attempt (as `.../retry` queues it), numbered after its last one; then
//! passes on the deliveries held back in the window (by the circuit breaker, or while the
//! subscription was disabled), as they were, under the endpoint's release lease.
//!
//! The store claims each delivery (failed to pending, a conditional write), a page of the
//! subscription's attempt log at a time; this handler then loads each claimed event and
//! queues its task, [`MAX_BATCH`] to a send. A recovery repeated while the first one's tasks
//! are pending finds those deliveries pending and sends nothing twice; once an attempt has
//! failed again, its delivery is failed again and a later recovery takes it. A claimed
//! delivery whose task cannot be queued gets its status back. A window too large for one
//! request (more than [`MAX_RECOVERED_PER_REQUEST`] deliveries, or pages read for longer
//! than [`RECOVERY_BUDGET`]) answers with what was queued so far and `nextSince`, where a
//! repeat request goes on from.

use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use webhooks_domain::{DeliveryTask, IsoTime, RECOVERABLE, RecoveryWindow, Subscription};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{
    Backend, ClaimedDelivery, HeldRelease, OutgoingMessage, QueueSender, RecoveryScope, Released, pass_on_held,
};

use crate::deliveries::ensure_enabled;
use crate::error::ApiError;
use crate::extract::{Body, Caller, PathParams};
use crate::{Api, ApiState};

/// Attempts of the log read per page: one `BatchGetItem` of statuses at most.
const RECOVERY_PAGE_ATTEMPTS: usize = 100;
/// The most deliveries one request sends again; a repeat request goes on from `nextSince`.
pub const MAX_RECOVERED_PER_REQUEST: usize = 500;
/// No page is started after this much time in a request, so that the last page's claims,
/// event reads and sends end well within the function's 15 s.
const RECOVERY_BUDGET: Duration = Duration::from_secs(5);

/// `POST /v1/subscriptions/{id}/recover`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RecoverRequest {
    since: String,
    until: Option<String>,
}

/// How many deliveries were queued again, and where to go on from if not all were.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Recovered {
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_since: Option<IsoTime>,
}

/// `POST /v1/subscriptions/{id}/recover`: 202 with the number of deliveries queued again.
/// 404 for an unknown or another merchant's subscription; 422 for a time that is not RFC
/// 3339 (`invalid_time`), or a window that is empty or longer than 14 days
/// (`invalid_window`); 409 while the subscription is disabled (its deliveries stay failed,
/// to be recovered once it is enabled again).
pub(crate) async fn recover<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Body(request): Body<RecoverRequest>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    let started = Instant::now();
    let subscription = api.subscription(&caller, &id).await?;
    let since = parse_time("since", &request.since)?;
    let until = request
        .until
        .as_deref()
        .map(|until| parse_time("until", until))
        .transpose()?;
    let window = RecoveryWindow::new(since, until, api.now())
        .map_err(|refusal| ApiError::unprocessable("invalid_window", refusal.to_string()))?;
    ensure_enabled(&subscription)?;
    let scope = RecoveryScope {
        merchant_id: &caller.merchant_id,
        subscription_id: &subscription.id,
        since_ms: window.since().unix_millis(),
        until_ms: window.until().unix_millis(),
        statuses: RECOVERABLE,
    };
    let (mut count, mut after) = (0, None);
    let next_since = loop {
        let limit = RECOVERY_PAGE_ATTEMPTS.min(MAX_RECOVERED_PER_REQUEST - count);
        let page = api.store.claim_for_recovery(&scope, after.as_ref(), limit).await?;
        count += api.resend(&subscription, page.claimed).await?;
        match page.next {
            None => break None,
            Some(next) if count >= MAX_RECOVERED_PER_REQUEST || started.elapsed() >= RECOVERY_BUDGET => {
                break Some(iso_time(next.at_ms()));
            }
            Some(next) => after = Some(next),
        }
    };
    let (held, held_left) = match next_since {
        Some(_) => (0, false),
        None => {
            api.release_held(&subscription, &window, MAX_RECOVERED_PER_REQUEST - count)
                .await?
        }
    };
    count += held;
    let next_since = next_since.or(held_left.then(|| window.since()));
    tracing::info!(merchant_id = %caller.merchant_id, subscription_id = %id, since = %window.since(), until = %window.until(), count, more = next_since.is_some(), "deliveries recovered");
    Ok((StatusCode::ACCEPTED, Json(Recovered { count, next_since })))
}

impl<S: Backend + 'static, Q: QueueSender + 'static> Api<S, Q> {
    /// Queues one manual attempt of each claimed delivery, oldest first, and returns how
    /// many were queued. A delivery whose event is past its retention gets its status back;
    /// should the store or the queue fail (or refuse a message), so does every claimed
    /// delivery not yet queued, and the error is the answer.
    async fn resend(&self, subscription: &Subscription, claimed: Vec<ClaimedDelivery>) -> Result<usize, ApiError> {
        let mut tasks = Vec::with_capacity(claimed.len());
        let mut claims = claimed.into_iter();
        while let Some(claim) = claims.next() {
            match self.store.get_event(&claim.event_id).await {
                Ok(Some(event)) if event.merchant_id == subscription.merchant_id => {
                    let task = DeliveryTask {
                        attempt: claim.attempt,
                        manual: true,
                        recovery: true,
                        ..DeliveryTask::first(event, subscription.id.clone())
                    };
                    tasks.push((claim, task));
                }
                Ok(_) => {
                    tracing::info!(merchant_id = %subscription.merchant_id, subscription_id = %subscription.id, event_id = %claim.event_id, "a failed delivery's event is past its retention: not recovered");
                    self.give_back(subscription, &[&claim]).await;
                }
                Err(error) => {
                    let unsent: Vec<&ClaimedDelivery> = tasks
                        .iter()
                        .map(|(claim, _)| claim)
                        .chain([&claim])
                        .chain(claims.as_slice())
                        .collect();
                    self.give_back(subscription, &unsent).await;
                    return Err(error.into());
                }
            }
        }
        let mut queued = 0;
        for (n, batch) in tasks.chunks(MAX_BATCH).enumerate() {
            let messages = batch
                .iter()
                .map(|(_, task)| OutgoingMessage {
                    body: task.to_message_body(),
                    delay: Duration::ZERO,
                })
                .collect();
            let (mut unsent, mut first_error) = (Vec::new(), None);
            match self.deliveries.send_batch(messages).await {
                Ok(results) => {
                    for ((claim, _), result) in batch.iter().zip(results) {
                        match result {
                            Ok(()) => queued += 1,
                            Err(error) => {
                                unsent.push(claim);
                                first_error.get_or_insert(error);
                            }
                        }
                    }
                }
                Err(error) => {
                    unsent.extend(batch.iter().map(|(claim, _)| claim));
                    first_error = Some(error);
                }
            }
            // A refused message fails the request, as a failed send does: what was queued
            // stays claimed, and the same request again sends the rest.
            if let Some(error) = first_error {
                unsent.extend(tasks.iter().skip((n + 1) * MAX_BATCH).map(|(claim, _)| claim));
                self.give_back(subscription, &unsent).await;
                return Err(error.into());
            }
        }
        Ok(queued)
    }

    /// Passes on, oldest first, up to `limit` of the subscription's deliveries held (by its
    /// circuit breaker, or while it was disabled) in the window, and says whether some may
    /// be left. None while deliver or another recover is releasing them: those are sent by
    /// whoever is.
    async fn release_held(
        &self,
        subscription: &Subscription,
        window: &RecoveryWindow,
        limit: usize,
    ) -> Result<(usize, bool), ApiError> {
        if limit == 0 {
            return Ok((0, true));
        }
        let endpoint = subscription.endpoint_key();
        let release = HeldRelease {
            endpoint: &endpoint,
            since_ms: window.since().unix_millis(),
            until_ms: window.until().unix_millis(),
            limit,
            delay: Duration::ZERO,
        };
        match pass_on_held(&self.store, &self.deliveries, release, self.now().unix_millis()).await? {
            Released::Sent(sent) => Ok((sent, sent == limit)),
            Released::Busy => Ok((0, false)),
        }
    }

    /// Puts back the status each of `claims` had before it was claimed. Should that fail,
    /// the delivery stays pending (logged): `.../retry` still sends it.
    async fn give_back(&self, subscription: &Subscription, claims: &[&ClaimedDelivery]) {
        for claim in claims {
            let restored = self
                .store
                .set_delivery_status(
                    &subscription.merchant_id,
                    &claim.event_id,
                    &subscription.id,
                    claim.previous,
                )
                .await;
            if let Err(error) = restored {
                tracing::warn!(merchant_id = %subscription.merchant_id, subscription_id = %subscription.id, event_id = %claim.event_id, %error, "a claimed delivery that was not queued stays pending");
            }
        }
    }
}

/// The time a request's `field` holds: RFC 3339, within years 0000 to 9999 in UTC.
fn parse_time(field: &str, text: &str) -> Result<IsoTime, ApiError> {
    IsoTime::parse_rfc3339(text).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_time",
            format!("{field} is not an RFC 3339 time within years 0000 to 9999 (UTC): {text:?}"),
        )
    })
}

/// The instant `at_ms` unix milliseconds name (the epoch should they be out of range).
fn iso_time(at_ms: i64) -> IsoTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(IsoTime::new)
        .unwrap_or_else(|| IsoTime::new(OffsetDateTime::UNIX_EPOCH).expect("the epoch is in range"))
}
