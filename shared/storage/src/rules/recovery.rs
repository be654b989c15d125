//! A recovery's claim, the same on both backends: which deliveries the attempts read from a
//! window of a subscription's log stand for, and which of them, given its stored status,
//! the recovery takes. The adapters read the log and the statuses, and make each claim a
//! write conditional on the status they read ([`CLAIMED`] replacing it), so that of
//! recoveries running at once exactly one claims a delivery.

use webhooks_domain::DeliveryStatus;

use crate::StoreError;
use crate::ports::{ClaimedDelivery, LogPosition, RecoveryScope};
use crate::rules::attempt_key::parse_attempt_sort_key;

/// The status a claim sets: the delivery is queued again.
pub(crate) const CLAIMED: DeliveryStatus = DeliveryStatus::Pending;

/// What is stored of a delivery's status, as a claim reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredStatus<'a> {
    /// The merchant the status was recorded for.
    pub(crate) merchant_id: &'a str,
    /// Where the delivery stands.
    pub(crate) status: DeliveryStatus,
    /// The highest attempt number recorded by `record_attempt_once` (0 if none).
    pub(crate) last_attempt: u32,
}

/// The deliveries whose first attempt is among `sort_keys` (attempt sort keys, oldest
/// first): their event ids, each once, in order. A delivery belongs to the window its
/// first attempt was made in, so that each is found once whatever its retries.
pub(crate) fn first_attempts<'a>(sort_keys: &[&'a str]) -> Result<Vec<&'a str>, StoreError> {
    let mut events: Vec<&str> = Vec::new();
    for key in sort_keys {
        let parsed = parse_attempt_sort_key(key).ok_or_else(|| not_an_attempt_key(key))?;
        if parsed.attempt == 1 && !events.contains(&parsed.event_id) {
            events.push(parsed.event_id);
        }
    }
    Ok(events)
}

/// The claim of the delivery of `event_id`, whose status is `stored`, if the recovery takes
/// it: only the scope's merchant's, and only from one of the scope's statuses.
pub(crate) fn claim(scope: &RecoveryScope<'_>, event_id: &str, stored: &StoredStatus<'_>) -> Option<ClaimedDelivery> {
    let takes = stored.merchant_id == scope.merchant_id && scope.statuses.contains(&stored.status);
    takes.then(|| ClaimedDelivery {
        event_id: event_id.to_owned(),
        attempt: stored.last_attempt.saturating_add(1),
        previous: stored.status,
    })
}

/// Where the next page starts, after the last attempt read (`None` when there is none).
pub(crate) fn position_after(last_key: Option<&str>) -> Result<Option<LogPosition>, StoreError> {
    last_key
        .map(|key| {
            let parsed = parse_attempt_sort_key(key).ok_or_else(|| not_an_attempt_key(key))?;
            Ok(LogPosition::new(parsed.at_ms, key.to_owned()))
        })
        .transpose()
}

fn not_an_attempt_key(key: &str) -> StoreError {
    StoreError::Corrupt(format!("not an attempt sort key: {key}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAILED: &[DeliveryStatus] = &[DeliveryStatus::Failed];

    fn scope(statuses: &[DeliveryStatus]) -> RecoveryScope<'_> {
        RecoveryScope {
            merchant_id: "m_1",
            subscription_id: "sub_1",
            since_ms: 0,
            until_ms: 10_000,
            statuses,
        }
    }

    #[test]
    fn a_delivery_is_found_by_its_first_attempt_once_in_log_order() {
        let keys = [
            "ATTEMPT#0000000001000#evt_2#00003",
            "ATTEMPT#0000000002000#evt_1#00001",
            "ATTEMPT#0000000002000#evt_3#00001",
            "ATTEMPT#0000000003000#evt_1#00002",
            "ATTEMPT#0000000004000#evt_1#00001",
        ];
        assert_eq!(first_attempts(&keys).unwrap(), ["evt_1", "evt_3"]);
        assert!(matches!(first_attempts(&["SUB#sub_1"]), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn only_the_scopes_statuses_of_its_merchant_are_claimed_for_the_next_attempt_number() {
        let stored = |merchant_id, status| StoredStatus {
            merchant_id,
            status,
            last_attempt: 8,
        };
        assert_eq!(
            claim(&scope(FAILED), "evt_1", &stored("m_1", DeliveryStatus::Failed)),
            Some(ClaimedDelivery {
                event_id: "evt_1".into(),
                attempt: 9,
                previous: DeliveryStatus::Failed
            })
        );
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Skipped,
        ] {
            assert_eq!(
                claim(&scope(FAILED), "evt_1", &stored("m_1", status)),
                None,
                "{status:?}"
            );
        }
        assert_eq!(
            claim(&scope(FAILED), "evt_1", &stored("m_2", DeliveryStatus::Failed)),
            None
        );
        let both = [DeliveryStatus::Failed, DeliveryStatus::Skipped];
        let claimed = claim(&scope(&both), "evt_1", &stored("m_1", DeliveryStatus::Skipped));
        assert_eq!(claimed.map(|c| c.previous), Some(DeliveryStatus::Skipped));
    }

    #[test]
    fn the_next_page_starts_after_the_last_attempt_read() {
        let next = position_after(Some("ATTEMPT#0000000002000#evt_1#00001"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (next.at_ms(), next.sort_key()),
            (2_000, "ATTEMPT#0000000002000#evt_1#00001")
        );
        assert_eq!(position_after(None).unwrap(), None);
    }
}
