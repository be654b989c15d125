//! A store that fails one chosen step once, standing in for a crash or a throttled call
//! between two steps of a use case: the step before it happened, the one after it did not.

use std::sync::{Arc, Mutex};

use webhooks_domain::{DeliveryAttempt, DeliveryStatus, EndpointHealth, EventName, SigningSecrets, Subscription};
use webhooks_storage::{
    AttemptRecorded, DeliveryLog, EndpointBreaker, HandOff, HeldTask, Page, PageRequest, ParkedRetries, ParkedTask,
    RequestCounters, StoreError, SubscriptionStore,
};

/// The store steps a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `DeliveryLog::record_attempt_once`: nothing is written.
    RecordAttempt,
    /// `ParkedRetries::unpark`: the tasks stay parked.
    Unpark,
    /// `RequestCounters::count_request`: nothing is counted.
    CountRequest,
    /// `SubscriptionStore::get_subscriptions_with_secrets`: nothing is read.
    ReadSubscriptions,
}

/// `inner`, whose next call of the armed [`Step`] fails (once) with a backend error.
#[derive(Clone)]
pub struct FaultyStore<S> {
    inner: S,
    armed: Arc<Mutex<Option<Step>>>,
}

impl<S> FaultyStore<S> {
    /// `inner` with no fault armed.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            armed: Arc::default(),
        }
    }

    /// Makes the next call of `step` fail.
    pub fn fail_next(&self, step: Step) {
        *self.armed.lock().expect("fault lock") = Some(step);
    }

    /// Whether `step` is still armed: its fault did not happen yet.
    pub fn is_armed(&self, step: Step) -> bool {
        *self.armed.lock().expect("fault lock") == Some(step)
    }

    /// Fails if `step` is armed (and disarms it).
    fn trip(&self, step: Step) -> Result<(), StoreError> {
        let mut armed = self.armed.lock().expect("fault lock");
        match *armed == Some(step) {
            true => {
                *armed = None;
                Err(StoreError::backend("fault", format!("injected failure at {step:?}")))
            }
            false => Ok(()),
        }
    }
}

impl<S: SubscriptionStore> SubscriptionStore for FaultyStore<S> {
    async fn create_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        self.inner.create_subscription(subscription, secrets).await
    }
    async fn get_subscription(&self, merchant_id: &str, id: &str) -> Result<Option<Subscription>, StoreError> {
        self.inner.get_subscription(merchant_id, id).await
    }
    async fn get_subscription_with_secrets(
        &self,
        merchant_id: &str,
        id: &str,
    ) -> Result<Option<(Subscription, SigningSecrets)>, StoreError> {
        self.inner.get_subscription_with_secrets(merchant_id, id).await
    }
    async fn get_subscriptions_with_secrets(
        &self,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<(Subscription, SigningSecrets)>>, StoreError> {
        self.trip(Step::ReadSubscriptions)?;
        self.inner.get_subscriptions_with_secrets(keys).await
    }
    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        self.inner.list_subscriptions(merchant_id, page).await
    }
    async fn update_subscription(
        &self,
        subscription: &Subscription,
        secrets: &SigningSecrets,
    ) -> Result<(), StoreError> {
        self.inner.update_subscription(subscription, secrets).await
    }
    async fn record_health(
        &self,
        merchant_id: &str,
        id: &str,
        read: &EndpointHealth,
        next: &EndpointHealth,
    ) -> Result<bool, StoreError> {
        self.inner.record_health(merchant_id, id, read, next).await
    }
    async fn delete_subscription(&self, merchant_id: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_subscription(merchant_id, id).await
    }
    async fn subscriptions_for_event(
        &self,
        merchant_id: &str,
        event: EventName,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        self.inner.subscriptions_for_event(merchant_id, event, page).await
    }
}

impl<S: DeliveryLog> DeliveryLog for FaultyStore<S> {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        self.inner.record_attempt(attempt).await
    }
    async fn list_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        page: PageRequest,
    ) -> Result<Page<DeliveryAttempt>, StoreError> {
        self.inner.list_attempts(merchant_id, subscription_id, page).await
    }
    async fn set_delivery_status(
        &self,
        merchant_id: &str,
        event_id: &str,
        subscription_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        self.inner
            .set_delivery_status(merchant_id, event_id, subscription_id, status)
            .await
    }
    async fn record_attempt_once(
        &self,
        attempt: &DeliveryAttempt,
        status: DeliveryStatus,
        hand_off: Option<&HandOff>,
    ) -> Result<AttemptRecorded, StoreError> {
        self.trip(Step::RecordAttempt)?;
        self.inner.record_attempt_once(attempt, status, hand_off).await
    }
    async fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        self.inner.delivery_status(event_id, subscription_id).await
    }
}

impl<S: ParkedRetries> ParkedRetries for FaultyStore<S> {
    async fn park(&self, task: &ParkedTask) -> Result<(), StoreError> {
        self.inner.park(task).await
    }
    async fn due_tasks(&self, shard: u32, now_ms: i64, limit: usize) -> Result<Vec<ParkedTask>, StoreError> {
        self.inner.due_tasks(shard, now_ms, limit).await
    }
    async fn unpark(&self, tasks: &[ParkedTask]) -> Result<(), StoreError> {
        self.trip(Step::Unpark)?;
        self.inner.unpark(tasks).await
    }
}

impl<S: EndpointBreaker> EndpointBreaker for FaultyStore<S> {
    async fn take_probe_slot(
        &self,
        endpoint: &str,
        slots: u32,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.inner
            .take_probe_slot(endpoint, slots, lease, now_ms, until_ms)
            .await
    }
    async fn release_probe_slot(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        self.inner.release_probe_slot(endpoint, lease).await
    }
    async fn hold(&self, endpoint: &str, task: &HeldTask, now_ms: i64) -> Result<(), StoreError> {
        self.inner.hold(endpoint, task, now_ms).await
    }
    async fn take_release_lease(
        &self,
        endpoint: &str,
        lease: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.inner.take_release_lease(endpoint, lease, now_ms, until_ms).await
    }
    async fn end_release_lease(&self, endpoint: &str, lease: &str) -> Result<(), StoreError> {
        self.inner.end_release_lease(endpoint, lease).await
    }
    async fn held_tasks(
        &self,
        endpoint: &str,
        since_ms: i64,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<HeldTask>, StoreError> {
        self.inner.held_tasks(endpoint, since_ms, until_ms, limit).await
    }
    async fn unhold(&self, endpoint: &str, tasks: &[HeldTask]) -> Result<(), StoreError> {
        self.inner.unhold(endpoint, tasks).await
    }
}

impl<S: RequestCounters> RequestCounters for FaultyStore<S> {
    async fn count_request(&self, key: &str, window_start_ms: i64, expires_at_ms: i64) -> Result<u64, StoreError> {
        self.trip(Step::CountRequest)?;
        self.inner.count_request(key, window_start_ms, expires_at_ms).await
    }
    async fn request_count(&self, key: &str, window_start_ms: i64) -> Result<u64, StoreError> {
        self.inner.request_count(key, window_start_ms).await
    }
}
