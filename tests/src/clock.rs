//! A clock the tests move by hand, for everything that schedules by time, and a queue
//! whose delays run on it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;
use webhooks_domain::Clock;
use webhooks_storage::ports::MAX_DELAY;
use webhooks_storage::{OutgoingMessage, QueueSender, StoreError};

/// A clock that stands still until told to move; it starts at the real time, so that
/// Standard Webhooks verifiers accept the timestamps signed with it.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl Default for ManualClock {
    fn default() -> Self {
        Self(Mutex::new(OffsetDateTime::now_utc()))
    }
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// A queue whose message delays run on a [`ManualClock`]: a delayed send is held here
/// until the clock reaches its due time, then [`ClockDelayedQueue::release_due`] sends it
/// to the real queue with no delay. SQS's real delays could not be fast-forwarded; the
/// queue itself is still the real one, and each delay is checked against SQS's cap.
#[derive(Clone)]
pub struct ClockDelayedQueue<Q> {
    queue: Q,
    clock: Arc<ManualClock>,
    held: Arc<Mutex<Vec<(OffsetDateTime, String)>>>,
}

impl<Q: QueueSender> ClockDelayedQueue<Q> {
    /// Holds `queue`'s delayed messages on `clock`.
    pub fn new(queue: Q, clock: Arc<ManualClock>) -> Self {
        Self {
            queue,
            clock,
            held: Arc::default(),
        }
    }

    /// When the earliest held message is due.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        self.held.lock().expect("held lock").iter().map(|(due, _)| *due).min()
    }

    /// Sends every held message that is due by the clock's now; how many.
    pub async fn release_due(&self) -> usize {
        let now = self.clock.now();
        let due: Vec<String> = {
            let mut held = self.held.lock().expect("held lock");
            let (due, later): (Vec<_>, Vec<_>) = held.drain(..).partition(|(at, _)| *at <= now);
            *held = later;
            due.into_iter().map(|(_, body)| body).collect()
        };
        for body in &due {
            let message = OutgoingMessage {
                body: body.clone(),
                delay: Duration::ZERO,
            };
            self.queue.send(message).await.expect("release a held message");
        }
        due.len()
    }

    fn hold_or_send(&self, message: OutgoingMessage) -> Option<OutgoingMessage> {
        assert!(message.delay <= MAX_DELAY, "SQS refuses a delay of {:?}", message.delay);
        if message.delay.is_zero() {
            return Some(message);
        }
        let due = self.clock.now() + message.delay;
        self.held.lock().expect("held lock").push((due, message.body));
        None
    }
}

impl<Q: QueueSender> QueueSender for ClockDelayedQueue<Q> {
    async fn send(&self, message: OutgoingMessage) -> Result<(), StoreError> {
        match self.hold_or_send(message) {
            Some(message) => self.queue.send(message).await,
            None => Ok(()),
        }
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::with_capacity(messages.len());
        for message in messages {
            results.push(self.send(message).await);
        }
        Ok(results)
    }

    async fn send_dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        self.queue.send_dead_letter(body, reason).await
    }
}
