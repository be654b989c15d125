//! The fan-out lease of `EventStore::record_event`: given what is stored for an event id,
//! what to write and what to answer. Ingest records an event, enqueues one delivery per
//! subscription, then marks it fanned out; whoever records (or resumes) an event holds its
//! lease for a while, so that a duplicate arriving meanwhile waits instead of fanning out
//! a second time, and a crash mid-fan-out is resumed once the lease has run out.
//!
//! The adapters carry the decision out atomically: the embedded store in one write
//! transaction around [`decide_record`]; DynamoDB with conditional writes whose condition
//! expressions state the same rule.

use std::time::Duration;

use webhooks_domain::PlatformEvent;

use super::retention::is_expired;
use super::unix_time::millis;
use crate::StoreError;
use crate::ports::Recorded;

/// What is stored for an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredEventState {
    /// Marked fanned out to every subscription.
    pub(crate) fanned_out: bool,
    /// The fan-out lease is held until this instant (unix ms).
    pub(crate) lease_until_ms: i64,
    /// The event's retention ends at this instant (unix ms).
    pub(crate) expires_at_ms: i64,
}

/// What `record_event` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordDecision {
    /// Nothing live is stored: store the event (replacing an expired one), not fanned out,
    /// leased until `lease_until_ms`. Answers [`Recorded::New`].
    Insert {
        /// The new lease's end (unix ms).
        lease_until_ms: i64,
    },
    /// Stored, not fanned out, lease run out (a crash mid-fan-out): take the lease until
    /// `lease_until_ms` and fan out again. Answers [`Recorded::PendingFanOut`].
    RetakeLease {
        /// The new lease's end (unix ms).
        lease_until_ms: i64,
    },
    /// Stored, not fanned out, leased to another worker: write nothing, leave the message
    /// for later. Answers [`Recorded::InProgress`].
    InProgress,
    /// Stored and fanned out: a duplicate, write nothing. Answers [`Recorded::AlreadyFannedOut`].
    AlreadyFannedOut,
}

/// The end of a lease of `lease` taken at `now_ms`.
pub(crate) fn lease_until_ms(now_ms: i64, lease: Duration) -> i64 {
    now_ms.saturating_add(millis(lease))
}

/// Decides what recording an event does at `now_ms`, given what is stored for its id
/// (`None`: nothing), taking a lease of `lease`. An expired event counts as absent.
pub(crate) fn decide_record(existing: Option<&StoredEventState>, now_ms: i64, lease: Duration) -> RecordDecision {
    let lease_until_ms = lease_until_ms(now_ms, lease);
    match existing {
        None => RecordDecision::Insert { lease_until_ms },
        Some(stored) if is_expired(stored.expires_at_ms, now_ms) => RecordDecision::Insert { lease_until_ms },
        Some(stored) if stored.fanned_out => RecordDecision::AlreadyFannedOut,
        Some(stored) if stored.lease_until_ms <= now_ms => RecordDecision::RetakeLease { lease_until_ms },
        Some(_) => RecordDecision::InProgress,
    }
}

impl RecordDecision {
    /// The answer of `record_event` once this decision is carried out; `stored` decodes
    /// the event already stored (called only for the answers that carry it).
    pub(crate) fn recorded(
        self,
        stored: impl FnOnce() -> Result<PlatformEvent, StoreError>,
    ) -> Result<Recorded, StoreError> {
        Ok(match self {
            RecordDecision::Insert { .. } => Recorded::New,
            RecordDecision::RetakeLease { .. } => Recorded::PendingFanOut(stored()?),
            RecordDecision::InProgress => Recorded::InProgress,
            RecordDecision::AlreadyFannedOut => Recorded::AlreadyFannedOut(stored()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_domain::{EventName, IsoTime};

    const NOW: i64 = 1_700_000_000_000;
    const LEASE: Duration = Duration::from_secs(60);

    fn stored(fanned_out: bool, lease_until_ms: i64) -> StoredEventState {
        StoredEventState {
            fanned_out,
            lease_until_ms,
            expires_at_ms: NOW + 86_400_000,
        }
    }

    #[test]
    fn a_new_id_is_inserted_with_a_fresh_lease() {
        assert_eq!(
            decide_record(None, NOW, LEASE),
            RecordDecision::Insert {
                lease_until_ms: NOW + 60_000
            }
        );
    }

    #[test]
    fn an_expired_event_counts_as_absent_whatever_its_state() {
        for fanned_out in [false, true] {
            let expired = StoredEventState {
                expires_at_ms: NOW,
                ..stored(fanned_out, NOW + 1)
            };
            assert_eq!(
                decide_record(Some(&expired), NOW, LEASE),
                RecordDecision::Insert {
                    lease_until_ms: NOW + 60_000
                }
            );
        }
    }

    #[test]
    fn a_fanned_out_event_is_a_duplicate_even_with_its_lease_run_out() {
        for lease_until in [NOW - 1, NOW + 1] {
            assert_eq!(
                decide_record(Some(&stored(true, lease_until)), NOW, LEASE),
                RecordDecision::AlreadyFannedOut
            );
        }
    }

    #[test]
    fn an_unfinished_fan_out_is_resumed_once_its_lease_has_run_out() {
        for lease_until in [NOW - 5_000, NOW] {
            assert_eq!(
                decide_record(Some(&stored(false, lease_until)), NOW, LEASE),
                RecordDecision::RetakeLease {
                    lease_until_ms: NOW + 60_000
                }
            );
        }
    }

    #[test]
    fn a_held_lease_makes_a_duplicate_wait() {
        assert_eq!(
            decide_record(Some(&stored(false, NOW + 1)), NOW, LEASE),
            RecordDecision::InProgress
        );
    }

    #[test]
    fn each_decision_answers_with_the_stored_event_only_when_it_carries_one() {
        let event = PlatformEvent {
            event_id: "evt_1".into(),
            merchant_id: "m_1".into(),
            event_name: EventName::PaymentReceived,
            order_id: "o_1".into(),
            time_stamp: IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        };
        let unused = || -> Result<PlatformEvent, StoreError> { panic!("decoded the stored event needlessly") };
        let insert = RecordDecision::Insert { lease_until_ms: NOW };
        assert_eq!(insert.recorded(unused), Ok(Recorded::New));
        assert_eq!(RecordDecision::InProgress.recorded(unused), Ok(Recorded::InProgress));
        let retake = RecordDecision::RetakeLease { lease_until_ms: NOW };
        assert_eq!(
            retake.recorded(|| Ok(event.clone())),
            Ok(Recorded::PendingFanOut(event.clone()))
        );
        assert_eq!(
            RecordDecision::AlreadyFannedOut.recorded(|| Ok(event.clone())),
            Ok(Recorded::AlreadyFannedOut(event))
        );
    }
}
