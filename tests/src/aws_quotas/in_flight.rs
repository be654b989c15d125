//! The SQS messages in flight through the layer: received, not deleted, still hidden. Each
//! receipt handle remembers when its receive happened, since SQS counts a message's 12 h of
//! visibility from there.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::quota::{Quota, QuotaExceeded, SQS_MAX_VISIBILITY};

/// One receive of one message.
#[derive(Debug)]
struct Lease {
    queue_url: String,
    /// When the ReceiveMessage was sent: no later than SQS's own receive instant, so the
    /// 12 h counted from it end no later than SQS's.
    received_at: Instant,
    /// When the message becomes visible again.
    visible_until: Instant,
}

/// The leases of the messages received through the layer, by receipt handle.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    leases: HashMap<String, Lease>,
}

impl InFlight {
    /// How many messages of `queue_url` are in flight at `now`.
    pub(super) fn count(&self, queue_url: &str, now: Instant) -> usize {
        self.leases
            .values()
            .filter(|lease| lease.queue_url == queue_url && lease.visible_until > now)
            .count()
    }

    /// Refuses a receive from `queue_url` once `limit` of its messages are in flight (SQS: `OverLimit`).
    pub(super) fn check_receive(&self, queue_url: &str, now: Instant, limit: usize) -> Result<(), QuotaExceeded> {
        let count = self.count(queue_url, now);
        if count >= limit {
            let detail = format!("{count} messages of {queue_url} in flight, at most {limit}");
            return Err(QuotaExceeded::new(Quota::SqsInFlight, detail));
        }
        Ok(())
    }

    /// Refuses hiding the message of `receipt_handle` for `timeout` from `now` if that ends
    /// more than 12 h after its receive. A handle the layer did not see received is left to
    /// the service.
    pub(super) fn check_visibility(
        &self,
        receipt_handle: &str,
        now: Instant,
        timeout: Duration,
    ) -> Result<(), QuotaExceeded> {
        let Some(lease) = self.leases.get(receipt_handle) else {
            return Ok(());
        };
        let since_receive = now.saturating_duration_since(lease.received_at);
        if since_receive + timeout > SQS_MAX_VISIBILITY {
            let detail = format!(
                "hidden for {} s more, {} s after its receive: past {} s from the receive",
                timeout.as_secs(),
                since_receive.as_secs(),
                SQS_MAX_VISIBILITY.as_secs()
            );
            return Err(QuotaExceeded::new(Quota::SqsVisibilityTimeout, detail));
        }
        Ok(())
    }

    /// A message of `queue_url` was received at `received_at` and hidden until `visible_until`.
    /// Leases no longer in flight are dropped first.
    pub(super) fn received(
        &mut self,
        queue_url: &str,
        receipt_handle: &str,
        received_at: Instant,
        visible_until: Instant,
    ) {
        self.leases.retain(|_, lease| lease.visible_until > received_at);
        let lease = Lease {
            queue_url: queue_url.to_owned(),
            received_at,
            visible_until,
        };
        self.leases.insert(receipt_handle.to_owned(), lease);
    }

    /// The message of `receipt_handle` is now hidden until `visible_until`.
    pub(super) fn hidden_until(&mut self, receipt_handle: &str, visible_until: Instant) {
        if let Some(lease) = self.leases.get_mut(receipt_handle) {
            lease.visible_until = visible_until;
        }
    }

    /// The message of `receipt_handle` was deleted.
    pub(super) fn deleted(&mut self, receipt_handle: &str) {
        self.leases.remove(receipt_handle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUEUE: &str = "http://moto/queue/tasks";

    #[test]
    fn a_message_is_in_flight_until_deleted_or_visible_again() {
        let mut in_flight = InFlight::default();
        let start = Instant::now();
        in_flight.received(QUEUE, "a", start, start + Duration::from_secs(30));
        in_flight.received(QUEUE, "b", start, start + Duration::from_secs(30));
        in_flight.received("http://moto/queue/other", "c", start, start + Duration::from_secs(30));
        assert_eq!(in_flight.count(QUEUE, start), 2);
        in_flight.deleted("a");
        assert_eq!(in_flight.count(QUEUE, start), 1);
        in_flight.hidden_until("b", start);
        assert_eq!(in_flight.count(QUEUE, start), 0);
    }

    #[test]
    fn a_receive_is_refused_at_the_in_flight_limit() {
        let mut in_flight = InFlight::default();
        let start = Instant::now();
        in_flight.received(QUEUE, "a", start, start + Duration::from_secs(30));
        in_flight.check_receive(QUEUE, start, 2).unwrap();
        in_flight.received(QUEUE, "b", start, start + Duration::from_secs(30));
        let refused = in_flight.check_receive(QUEUE, start, 2).unwrap_err();
        assert_eq!(refused.quota, Quota::SqsInFlight);
        in_flight
            .check_receive(QUEUE, start + Duration::from_secs(31), 2)
            .unwrap();
    }

    #[test]
    fn visibility_is_bounded_by_twelve_hours_from_the_receive() {
        let mut in_flight = InFlight::default();
        let start = Instant::now();
        in_flight.received(QUEUE, "a", start, start + Duration::from_secs(30));
        let later = start + Duration::from_secs(3600);
        in_flight
            .check_visibility("a", later, SQS_MAX_VISIBILITY - Duration::from_secs(3600))
            .unwrap();
        let refused = in_flight.check_visibility("a", later, SQS_MAX_VISIBILITY).unwrap_err();
        assert_eq!(refused.quota, Quota::SqsVisibilityTimeout);
        in_flight.check_visibility("unseen", later, SQS_MAX_VISIBILITY).unwrap();
    }
}
