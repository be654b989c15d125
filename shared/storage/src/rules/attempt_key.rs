//! The sort key of a delivery attempt within its subscription's log: listing keys in
//! descending text order lists attempts newest first, then by event id and attempt
//! number, both descending. DynamoDB stores it as the item's `sk`, the embedded store as
//! the `sort_key` column; cursors carry it as their position.
//!
//! `ATTEMPT#{unix ms, 13 digits}#{event id}#{attempt, 5 digits}`: zero-padded so text
//! order is numeric order (times before 1970 clamp to 0). `#` sorts below every character
//! an event id may hold (ASCII letters, digits, `._:-`), so a shorter id sorts before the
//! longer ones it begins.
//!
//! Read ascending, a time range of it is oldest first: a recovery reads its window
//! ([`attempt_key_range`]) and takes each key apart again ([`parse_attempt_sort_key`]).
//!
//! On DynamoDB a subscription's log is write-sharded (`rules::shard`): an attempt goes to
//! shard [`attempt_log_shard`] of its event id, one partition key each, because one
//! partition takes at most 1,000 write units a second (about 500 attempts, each 2 units in
//! its transaction). The sort keys are unique across shards (they name the event), so a
//! reader merges the shards' sorted pages into one order and one cursor.

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

/// The shard of a subscription's attempt log that the attempts of `event_id` go to, of
/// `shards` (all of one delivery's attempts in one shard).
pub(crate) fn attempt_log_shard(event_id: &str, shards: u32) -> u32 {
    super::shard::shard_of(event_id, shards)
}

/// The first and the last sort key (both included) of the attempts made from `since_ms`
/// (included) to `until_ms` (excluded), for a key range condition (DynamoDB's `BETWEEN`):
/// `$` sorts just above `#`, so `{until_ms - 1}$` is above every key of that millisecond
/// and below every later one.
pub(crate) fn attempt_key_range(since_ms: i64, until_ms: i64) -> (String, String) {
    let first = format!("{ATTEMPT_KEY_PREFIX}{:013}", since_ms.max(0));
    let last = format!("{ATTEMPT_KEY_PREFIX}{:013}$", (until_ms - 1).max(0));
    (first, last)
}

/// What an attempt sort key says: when the attempt was made, of which event, its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptKey<'a> {
    /// When it was made, in unix milliseconds (clamped at 0).
    pub(crate) at_ms: i64,
    /// The event delivered.
    pub(crate) event_id: &'a str,
    /// The attempt number.
    pub(crate) attempt: u32,
}

/// Reads an attempt sort key back; `None` if `key` is not one.
pub(crate) fn parse_attempt_sort_key(key: &str) -> Option<AttemptKey<'_>> {
    let rest = key.strip_prefix(ATTEMPT_KEY_PREFIX)?;
    let (millis, rest) = rest.split_once('#')?;
    let (event_id, attempt) = rest.rsplit_once('#')?;
    Some(AttemptKey {
        at_ms: millis.parse().ok()?,
        event_id,
        attempt: attempt.parse().ok()?,
    })
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
    fn a_key_reads_back_as_time_event_and_attempt() {
        let key = attempt_sort_key(&attempt("evt_1:a.b-c", 12, 1_700_000_000_123));
        assert_eq!(
            parse_attempt_sort_key(&key),
            Some(AttemptKey {
                at_ms: 1_700_000_000_123,
                event_id: "evt_1:a.b-c",
                attempt: 12
            })
        );
        for not_a_key in [
            "",
            "ATTEMPT#",
            "ATTEMPT#1700000000123#evt_1",
            "SUB#1#evt#1",
            "ATTEMPT#x#evt_1#00001",
        ] {
            assert_eq!(parse_attempt_sort_key(not_a_key), None, "{not_a_key}");
        }
    }

    #[test]
    fn the_key_range_holds_the_attempts_from_since_up_to_before_until() {
        let (first, last) = attempt_key_range(2_000, 5_000);
        let inside = |at_ms| {
            let key = attempt_sort_key(&attempt("evt_1", 1, at_ms));
            first <= key && key <= last
        };
        assert!(!inside(1_999));
        assert!(inside(2_000));
        assert!(inside(4_999));
        assert!(!inside(5_000));
        let longest_id = attempt_sort_key(&attempt(&"z".repeat(128), 99_999, 4_999));
        assert!(longest_id <= last);
    }

    #[test]
    fn an_attempt_is_recorded_once_and_never_after_a_later_one() {
        assert!(attempt_is_new(None, 1));
        assert!(attempt_is_new(Some(1), 2));
        assert!(!attempt_is_new(Some(2), 2));
        assert!(!attempt_is_new(Some(3), 2));
    }
}
