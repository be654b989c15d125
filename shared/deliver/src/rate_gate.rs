//! A subscription's `rateLimitPerSecond`: deliveries to its endpoint never exceed it, across
//! every Lambda container, because they are counted in the store ([`RequestCounters`]).
//!
//! The rule, written once here for both backends: every delivery to a limited subscription
//! is counted under `endpoint:{subscriptionId}` in 1-second windows aligned on the unix
//! epoch by deliver's clock, each counter kept until its window ends. A delivery counted
//! within the limit is sent. One counted over it is not: its task goes back to the
//! deliveries queue with the same attempt number, due at the start of a later window, and
//! nothing is written to the attempt log (no request was made). The `n`th delivery counted
//! in a window of limit `l` waits `(n - 1) / l` windows, so that a burst comes back spread
//! over the windows it needs rather than all at the next one, to be held back again.
//!
//! Cost: one `UpdateItem` per delivery to a limited subscription, none to others. A
//! held-back delivery costs one more message (a `SendMessage` with its delay, whole seconds
//! rounded up so that it never comes back before its window; a `PutItem` in the due-time
//! index beyond 15 minutes), received and counted again when it comes back.
//!
//! **Fails open.** If the store cannot count, the delivery is sent: a merchant's limit must
//! not stop its webhooks. The failure is logged once, when it starts, and the recovery once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use webhooks_domain::{DeliveryTask, IsoTime, Subscription};
use webhooks_storage::{
    DeliveryLog, EndpointBreaker, ParkedRetries, QueueSender, RequestCounters, StoreError, SubscriptionStore,
};

use crate::{Deliver, TaskOutcome};

/// The length of a window, in milliseconds: the limit is per second.
const WINDOW_MS: i64 = 1_000;

/// What the rate limit lets one delivery do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Within the limit: send it now.
    Send,
    /// Over the limit: not before this instant (unix milliseconds), a later window's start.
    HoldUntil(i64),
}

/// The start of the window `now_ms` falls in.
fn window_start(now_ms: i64) -> i64 {
    now_ms.div_euclid(WINDOW_MS) * WINDOW_MS
}

/// The rule for the `count`th delivery (this one included) counted in the window starting
/// at `window_start_ms`, under a limit of `per_second`.
fn admission(count: u64, per_second: u32, window_start_ms: i64) -> Admission {
    let per_window = u64::from(per_second.max(1));
    if count <= per_window {
        return Admission::Send;
    }
    let windows_ahead = i64::try_from((count - 1) / per_window).unwrap_or(i64::MAX);
    Admission::HoldUntil(window_start_ms.saturating_add(windows_ahead.saturating_mul(WINDOW_MS)))
}

/// The counter key of the deliveries to a subscription's endpoint.
fn counter_key(subscription_id: &str) -> String {
    format!("endpoint:{subscription_id}")
}

/// The rate limit of one deliver instance: the counting is in the store; here is only
/// whether the last count failed, so that an outage is logged once.
#[derive(Debug, Default)]
pub(crate) struct RateGate {
    store_failing: AtomicBool,
}

impl RateGate {
    /// Counts a delivery to `subscription` at `now_ms` if it has a limit, and says whether
    /// to send it; sends it if the store cannot count.
    async fn admit(&self, store: &impl RequestCounters, subscription: &Subscription, now_ms: i64) -> Admission {
        let Some(per_second) = subscription.rate_limit_per_second else {
            return Admission::Send;
        };
        let start = window_start(now_ms);
        let key = counter_key(&subscription.id);
        match store.count_request(&key, start, start.saturating_add(WINDOW_MS)).await {
            Ok(count) => {
                if self.store_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the request counters answer again: subscription rate limits apply");
                }
                admission(count, per_second, start)
            }
            Err(error) => {
                if !self.store_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, subscription_id = %subscription.id, "the request counters failed: deliveries are sent without subscription rate limits until they answer");
                }
                Admission::Send
            }
        }
    }
}

impl<S: SubscriptionStore + DeliveryLog + ParkedRetries + RequestCounters + EndpointBreaker, Q: QueueSender>
    Deliver<S, Q>
{
    /// Counts this delivery against its subscription's rate limit. Within it (or without a
    /// limit): `None`, send. Over it: the task, its attempt number unchanged, is scheduled
    /// again for the window it was given, and the outcome is returned; nothing is sent.
    pub(crate) async fn hold_back_over_rate(
        &self,
        task: &DeliveryTask,
        subscription: &Subscription,
        now: IsoTime,
    ) -> Result<Option<TaskOutcome>, StoreError> {
        let now_ms = now.unix_millis();
        let Admission::HoldUntil(due_ms) = self.rate_gate.admit(&self.store, subscription, now_ms).await else {
            return Ok(None);
        };
        let wait = Duration::from_millis(u64::try_from(due_ms.saturating_sub(now_ms)).unwrap_or(0));
        // SQS delays are whole seconds, truncated: rounded up, the task never comes back early.
        let delay = Duration::from_secs(wait.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX));
        let held = DeliveryTask {
            not_before: IsoTime::new(now.instant() + wait),
            ..task.clone()
        };
        self.schedule(&held, delay).await?;
        tracing::info!(
            event_id = %task.event.event_id,
            subscription_id = %task.subscription_id,
            merchant_id = %task.event.merchant_id,
            attempt = task.attempt,
            rate_limit_per_second = subscription.rate_limit_per_second,
            delay_ms = delay.as_millis(),
            "delivery held back by the subscription's rate limit"
        );
        Ok(Some(TaskOutcome::RateLimited(delay)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use webhooks_tests::fixtures::subscription;

    use super::*;

    /// 2026-01-01T00:00:00Z, a window's start.
    const T0: i64 = 1_767_225_600_000;

    #[test]
    fn windows_are_seconds_aligned_on_the_epoch() {
        assert_eq!(window_start(T0), T0);
        assert_eq!(window_start(T0 + 999), T0);
        assert_eq!(window_start(T0 + 1_000), T0 + 1_000);
        assert_eq!(window_start(-1), -1_000, "before 1970 too");
    }

    #[test]
    fn the_first_deliveries_of_a_window_up_to_the_limit_are_sent() {
        for count in 1..=5 {
            assert_eq!(admission(count, 5, T0), Admission::Send, "{count}");
        }
        assert_eq!(admission(1, 1, T0), Admission::Send);
    }

    #[test]
    fn the_rest_are_spread_over_the_next_windows_a_limit_at_a_time() {
        let held: Vec<Admission> = (6..=16).map(|count| admission(count, 5, T0)).collect();
        let second = |n: i64| Admission::HoldUntil(T0 + n * 1_000);
        assert_eq!(
            held,
            [
                second(1),
                second(1),
                second(1),
                second(1),
                second(1),
                second(2),
                second(2),
                second(2),
                second(2),
                second(2),
                second(3),
            ]
        );
        assert_eq!(admission(2, 1, T0), second(1));
        assert_eq!(admission(1_001, 1, T0), second(1_000), "beyond 15 minutes: parked");
        assert_eq!(admission(2, 0, T0), second(1), "a limit is at least 1");
    }

    /// Counters in memory, or failing every call.
    #[derive(Default)]
    struct Counters {
        counts: Mutex<HashMap<(String, i64), u64>>,
        failing: bool,
    }

    impl RequestCounters for Counters {
        async fn count_request(&self, key: &str, window_start_ms: i64, expires_at_ms: i64) -> Result<u64, StoreError> {
            assert_eq!(expires_at_ms, window_start_ms + 1_000, "kept until the window ends");
            if self.failing {
                return Err(StoreError::backend("test.count", "unreachable"));
            }
            let mut counts = self.counts.lock().unwrap();
            let count = counts.entry((key.to_owned(), window_start_ms)).or_default();
            *count += 1;
            Ok(*count)
        }

        async fn request_count(&self, _: &str, _: i64) -> Result<u64, StoreError> {
            unreachable!("the gate only counts")
        }
    }

    fn limited(id: &str, per_second: Option<u32>) -> Subscription {
        Subscription {
            rate_limit_per_second: per_second,
            ..subscription("m_1", id, "https://merchant.example/hook")
        }
    }

    #[tokio::test]
    async fn each_subscription_is_counted_under_its_own_key_and_an_unlimited_one_not_at_all() {
        let (gate, store) = (RateGate::default(), Counters::default());
        let (a, b) = (limited("sub_a", Some(2)), limited("sub_b", Some(2)));
        for _ in 0..2 {
            assert_eq!(gate.admit(&store, &a, T0 + 10).await, Admission::Send);
        }
        assert_eq!(gate.admit(&store, &a, T0 + 999).await, Admission::HoldUntil(T0 + 1_000));
        assert_eq!(gate.admit(&store, &b, T0 + 999).await, Admission::Send);
        assert_eq!(
            gate.admit(&store, &a, T0 + 1_000).await,
            Admission::Send,
            "a new window"
        );
        for _ in 0..10 {
            assert_eq!(gate.admit(&store, &limited("sub_c", None), T0).await, Admission::Send);
        }
        let counts = store.counts.lock().unwrap();
        assert_eq!(counts.get(&("endpoint:sub_a".to_owned(), T0)), Some(&3));
        assert_eq!(counts.len(), 3, "nothing counted for the unlimited one: {counts:?}");
    }

    #[tokio::test]
    async fn a_failing_store_sends_every_delivery() {
        let gate = RateGate::default();
        let store = Counters {
            failing: true,
            ..Counters::default()
        };
        for _ in 0..10 {
            assert_eq!(
                gate.admit(&store, &limited("sub_a", Some(1)), T0).await,
                Admission::Send
            );
        }
        assert!(gate.store_failing.load(Ordering::Relaxed));
    }
}
