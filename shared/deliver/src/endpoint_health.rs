//! Endpoint health in deliver (DESIGN section 3): the circuit breaker around one attempt.
//!
//! Before an attempt to a failing endpoint, a probe slot must be taken (at most
//! [`DeliverConfig::probe_slots`](crate::DeliverConfig) across all containers); without
//! one the task is held in the endpoint's held index, its attempt number kept, at the cost
//! of one write. After the attempt the endpoint's health is updated (a compare-and-swap
//! beside the subscription; nothing is written while a healthy endpoint keeps succeeding,
//! nor for a failure of a healthy one until this container's recent attempts say it is
//! down: [`webhooks_domain::recent_outcomes`]).
//! A success of a failing endpoint releases its held tasks to the queue, oldest first, a
//! page per success (released tasks that succeed release the next pages). While it fails,
//! one held task a [`PROBE_INTERVAL`] is let through as a probe, so that it recovers even
//! with no new traffic. After `disable_after` of failing the subscription is disabled, and
//! its tasks are held for its merchant to recover.

use std::time::Duration;

use uuid::Uuid;
use webhooks_domain::event::derive_event_id;
use webhooks_domain::health::PROBE_INTERVAL;
use webhooks_domain::{
    DeliveryStatus, DeliveryTask, EndpointHealth, EventName, HealthStatus, IsoTime, PlatformEvent, Subscription,
};
use webhooks_runtime::metrics;
use webhooks_storage::{
    DeliveryLog, EndpointBreaker, HeldRelease, HeldTask, OutgoingMessage, QueueSender, Released, StoreError,
    SubscriptionStore, pass_on_held,
};

use crate::Deliver;

/// Held tasks released per success of a recovering endpoint (one `Query`, ten batch sends).
const RELEASE_PAGE: usize = 100;
/// Compare-and-swap rounds of a health update before it is left to the next attempt.
const HEALTH_ROUNDS: usize = 3;

/// Whether an attempt may go to the endpoint now.
pub(crate) enum Admission {
    /// Send; with the probe slot taken for it, if the endpoint is failing.
    Send(Option<String>),
    /// Not sent: the task is held (or is the endpoint's next probe).
    Held,
}

impl<S, Q> Deliver<S, Q>
where
    S: SubscriptionStore + DeliveryLog + EndpointBreaker,
    Q: QueueSender,
{
    /// Lets an automatic attempt to a failing endpoint through only with a probe slot,
    /// leased until the attempt's deadline; holds the task otherwise.
    pub(crate) async fn admit(
        &self,
        task: &DeliveryTask,
        subscription: &Subscription,
        now: IsoTime,
        attempt_ends: Duration,
    ) -> Result<Admission, StoreError> {
        if task.manual || subscription.health.status != HealthStatus::Failing {
            return Ok(Admission::Send(None));
        }
        let lease = Uuid::new_v4().to_string();
        let now_ms = now.unix_millis();
        let until_ms = now_ms + i64::try_from(attempt_ends.as_millis()).unwrap_or(i64::MAX / 2);
        let endpoint = subscription.endpoint_key();
        // Asked each time: a task is held only while a probe is in flight, whose outcome
        // passes the held tasks on (a success) or lets the next one through (a failure).
        if self
            .store
            .take_probe_slot(&endpoint, self.config.probe_slots, &lease, now_ms, until_ms)
            .await?
        {
            return Ok(Admission::Send(Some(lease)));
        }
        self.hold(task, subscription, now).await?;
        Ok(Admission::Held)
    }

    /// Gives back the probe slot an attempt held.
    pub(crate) async fn release_slot(&self, subscription: &Subscription, lease: Option<String>) {
        let Some(lease) = lease else { return };
        if let Err(error) = self
            .store
            .release_probe_slot(&subscription.endpoint_key(), &lease)
            .await
        {
            // The lease runs out at the attempt's deadline anyway.
            tracing::warn!(%error, subscription_id = %subscription.id, "probe slot not released; its lease runs out");
        }
    }

    /// Holds `task` (its attempt number kept) until the endpoint recovers, marks the
    /// delivery held, and notes in the health that tasks are held.
    pub(crate) async fn hold(
        &self,
        task: &DeliveryTask,
        subscription: &Subscription,
        now: IsoTime,
    ) -> Result<(), StoreError> {
        let endpoint = subscription.endpoint_key();
        let held = HeldTask::new(now.unix_millis(), &task.key(), task.to_message_body());
        self.store.hold(&endpoint, &held, now.unix_millis()).await?;
        let event = &task.event;
        self.store
            .set_delivery_status(
                &event.merchant_id,
                &event.event_id,
                &task.subscription_id,
                DeliveryStatus::Held,
            )
            .await?;
        if !subscription.health.has_held {
            self.change_health(subscription, |health| EndpointHealth {
                has_held: true,
                ..health.clone()
            })
            .await;
        }
        tracing::info!(event_id = %event.event_id, subscription_id = %task.subscription_id, attempt = task.attempt, status = ?subscription.health.status, "endpoint failing: delivery held");
        Ok(())
    }

    /// Updates the endpoint's health after an automatic attempt: healthy again (and its
    /// held tasks released) after a success; one more failure, a probe let through, or the
    /// subscription disabled after a failure. Failures to store are logged: the attempt is
    /// recorded, and the next one updates the health again.
    pub(crate) async fn after_attempt(&self, subscription: &Subscription, succeeded: bool, error: &str, now: IsoTime) {
        let result = match succeeded {
            true => self.after_success(subscription, now).await,
            false => self.after_failure(subscription, error, now).await,
        };
        if let Err(error) = result {
            tracing::warn!(%error, subscription_id = %subscription.id, "endpoint health not updated");
        }
    }

    async fn after_success(&self, subscription: &Subscription, now: IsoTime) -> Result<(), StoreError> {
        self.recent_outcomes.record(&subscription.endpoint_key(), false, now);
        let health = &subscription.health;
        if health.is_clean() {
            return Ok(());
        }
        if health.status != HealthStatus::Healthy || health.consecutive_failures > 0 {
            self.change_health(subscription, EndpointHealth::after_success).await;
            tracing::info!(subscription_id = %subscription.id, "endpoint healthy again");
        }
        if health.has_held {
            self.release_held(subscription, RELEASE_PAGE, Duration::ZERO).await?;
        }
        Ok(())
    }

    async fn after_failure(&self, subscription: &Subscription, error: &str, now: IsoTime) -> Result<(), StoreError> {
        let recent = self.recent_outcomes.record(&subscription.endpoint_key(), true, now);
        if subscription.health.status == HealthStatus::Healthy && !recent.say_down() {
            // Scattered failures of a healthy endpoint: nothing to store.
            return Ok(());
        }
        let run_since = recent.run_since.unwrap_or(now);
        let next = self
            .change_health(subscription, |health| {
                health.after_failure_run(recent.run_length, run_since, error)
            })
            .await;
        let Some(next) = next else { return Ok(()) };
        if next.status == HealthStatus::Failing && subscription.health.status != HealthStatus::Failing {
            metrics::count(metrics::ENDPOINTS_FAILING, 1);
        }
        if next.due_for_disable(now, self.config.disable_after) {
            return self.disable(subscription, now).await;
        }
        if next.probe_due(now) {
            let timer = IsoTime::new(now.instant() + PROBE_INTERVAL).unwrap_or(now);
            let claimed = self
                .store
                .record_health(
                    &subscription.merchant_id,
                    &subscription.id,
                    &next,
                    &EndpointHealth {
                        next_probe_at: Some(timer),
                        ..next.clone()
                    },
                )
                .await?;
            if claimed {
                self.release_held(subscription, 1, PROBE_INTERVAL).await?;
            }
        }
        Ok(())
    }

    /// Disables the subscription (a versioned replace, read again on a conflict) and marks
    /// its health disabled with the reason.
    async fn disable(&self, subscription: &Subscription, now: IsoTime) -> Result<(), StoreError> {
        for _ in 0..HEALTH_ROUNDS {
            let Some((mut current, secrets)) = self
                .store
                .get_subscription_with_secrets(&subscription.merchant_id, &subscription.id)
                .await?
            else {
                return Ok(());
            };
            current.enabled = false;
            current.updated_at = now;
            match self.store.update_subscription(&current, &secrets).await {
                Ok(()) => break,
                Err(StoreError::VersionConflict) => continue,
                Err(other) => return Err(other),
            }
        }
        let disable_after = self.config.disable_after;
        self.change_health(subscription, |health| health.disabled(now, disable_after))
            .await;
        tracing::warn!(merchant_id = %subscription.merchant_id, subscription_id = %subscription.id, "endpoint failing too long: subscription disabled, its deliveries held");
        metrics::count(metrics::ENDPOINTS_DISABLED, 1);
        self.raise_endpoint_disabled(subscription, now).await;
        Ok(())
    }

    /// Tells the merchant: an `endpoint_disabled` event on the events queue, which ingest
    /// fans out to its subscriptions that take it. Its id is derived from the endpoint and
    /// the start of its failing spell, so containers that disable it at once raise one event.
    async fn raise_endpoint_disabled(&self, subscription: &Subscription, now: IsoTime) {
        let Some(events) = &self.operational_events else { return };
        let failing_since = subscription.health.since.unwrap_or(now);
        let event = PlatformEvent {
            event_id: derive_event_id(
                &subscription.merchant_id,
                EventName::EndpointDisabled,
                &subscription.id,
                failing_since,
            ),
            merchant_id: subscription.merchant_id.clone(),
            event_name: EventName::EndpointDisabled,
            order_id: subscription.id.clone(),
            time_stamp: now,
        };
        let message = OutgoingMessage {
            body: event.to_message(),
            delay: Duration::ZERO,
        };
        if let Err(error) = events.send(message).await {
            tracing::error!(%error, merchant_id = %subscription.merchant_id, subscription_id = %subscription.id, "endpoint_disabled event not raised");
        }
    }

    /// Sends up to `limit` held tasks of the endpoint to the queue (after `delay`), oldest
    /// first, and takes them out of the index; when it had no more, notes that none are held.
    /// Nothing is sent while another container (or a merchant's recover) is releasing them.
    async fn release_held(&self, subscription: &Subscription, limit: usize, delay: Duration) -> Result<(), StoreError> {
        let endpoint = subscription.endpoint_key();
        let now_ms = webhooks_domain::unix_millis(self.clock.now());
        let release = HeldRelease::all(&endpoint, limit, delay);
        let Released::Sent(sent) = pass_on_held(&self.store, &self.deliveries, release, now_ms).await? else {
            return Ok(());
        };
        if sent < limit && limit > 1 {
            self.change_health(subscription, |health| EndpointHealth {
                has_held: false,
                ..health.clone()
            })
            .await;
        }
        if sent > 0 {
            tracing::info!(subscription_id = %subscription.id, released = sent, delay_ms = delay.as_millis(), "held deliveries released");
        }
        Ok(())
    }

    /// Applies `change` to the stored health with a compare-and-swap, reading it again
    /// when another container changed it first. The health stored, or `None` if it could
    /// not be (gone, or changed too often meanwhile).
    async fn change_health(
        &self,
        subscription: &Subscription,
        change: impl Fn(&EndpointHealth) -> EndpointHealth,
    ) -> Option<EndpointHealth> {
        let mut read = subscription.health.clone();
        for _ in 0..HEALTH_ROUNDS {
            let next = change(&read);
            if next == read {
                return Some(next);
            }
            let stored = self
                .store
                .record_health(&subscription.merchant_id, &subscription.id, &read, &next)
                .await;
            match stored {
                Ok(true) => return Some(next),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, subscription_id = %subscription.id, "endpoint health not stored");
                    return None;
                }
            }
            read = match self
                .store
                .get_subscription(&subscription.merchant_id, &subscription.id)
                .await
            {
                Ok(Some(current)) => current.health,
                _ => return None,
            };
        }
        None
    }
}
