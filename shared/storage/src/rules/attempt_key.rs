//! The sort key of a delivery attempt within its subscription's log: listing keys in
//! descending text order lists attempts newest first, then by event id and attempt
//! number, both descending. DynamoDB stores it as the item's `sk`, the embedded store as
//! the `sort_key` column; cursors carry it as their position.
//!
//! `ATTEMPT#{unix ms, 13 digits}#{event id}#{attempt, 5 digits}`: zero-padded so text
//! order is numeric order (times before 1970 clamp to 0). `#` sorts below every character
//! an event id may hold (ASCII letters, digits, `._:-`), so a shorter id sorts before the
//! longer ones it begins.

use webhooks_domain::DeliveryAttempt;

/// What every attempt sort key begins with (DynamoDB's `begins_with` condition).
pub(crate) const ATTEMPT_KEY_PREFIX: &str = "ATTEMPT#";

/// The sort key of `attempt`.
pub(crate) fn attempt_sort_key(attempt: &DeliveryAttempt) -> String {
    format!(
        "{ATTEMPT_KEY_PREFIX}{:013}#{}#{:05}",
        attempt.attempted_at.unix_millis().max(0),
        attempt.event_id,
        attempt.attempt
    )
}

/// Whether attempt number `attempt` of a delivery is still to be recorded, given the
/// highest number recorded for it so far: each number is recorded once, and never after a
/// later one (DynamoDB states the same as `attribute_not_exists(lastAttempt) OR
/// lastAttempt < :attempt` on the delivery's status item).
pub(crate) fn attempt_is_new(last_recorded: Option<u32>, attempt: u32) -> bool {
    last_recorded.is_none_or(|last| last < attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_domain::{AttemptOutcome, EventName, IsoTime};

    fn attempt(event_id: &str, number: u32, at_ms: i64) -> DeliveryAttempt {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).unwrap();
        DeliveryAttempt {
            event_id: event_id.into(),
            subscription_id: "sub_1".into(),
            merchant_id: "m_1".into(),
            event_name: EventName::PaymentReceived,
            attempt: number,
            attempted_at: IsoTime::new(at).unwrap(),
            outcome: AttemptOutcome::Failed,
            status_code: None,
            error: None,
            latency_ms: 0,
            response_excerpt: None,
            next_attempt_at: None,
            manual: false,
        }
    }

    #[test]
    fn the_key_spells_time_event_and_attempt_zero_padded() {
        assert_eq!(
            attempt_sort_key(&attempt("evt_1", 3, 1_700_000_000_123)),
            "ATTEMPT#1700000000123#evt_1#00003"
        );
        assert_eq!(
            attempt_sort_key(&attempt("evt_1", 1, -5)),
            "ATTEMPT#0000000000000#evt_1#00001"
        );
    }

    #[test]
    fn descending_key_order_is_newest_first_then_event_then_attempt() {
        let newest_first = [
            attempt("evt_1", 1, 10_000),
            attempt("evt_2", 1, 9_999),
            attempt("evt_10", 1, 2_000),
            attempt("evt_1", 10, 2_000),
            attempt("evt_1", 9, 2_000),
            attempt("evt_1", 2, 300),
        ];
        let keys: Vec<String> = newest_first.iter().map(attempt_sort_key).collect();
        let mut sorted = keys.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(sorted, keys);
        assert!(keys.iter().all(|key| key.starts_with(ATTEMPT_KEY_PREFIX)));
    }

    #[test]
    fn an_attempt_is_recorded_once_and_never_after_a_later_one() {
        assert!(attempt_is_new(None, 1));
        assert!(attempt_is_new(Some(1), 2));
        assert!(!attempt_is_new(Some(2), 2));
        assert!(!attempt_is_new(Some(3), 2));
    }
}
