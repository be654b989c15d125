//! What one deliverer (a deliver container) saw of each endpoint's last attempts, so that
//! a healthy endpoint's failures are stored only when they say it is down
//! (`docs/reliability.md`, endpoint health; `docs/capacity.md`): a busy endpoint with scattered failures would otherwise
//! write its subscription item at its failure rate, past the 1,000 writes a second one
//! DynamoDB item takes, and a run of three in a row, which some container sees several
//! times a second at 50,000 deliveries a second and 5 % failures, would trip its breaker.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::IsoTime;
use crate::health::FAILING_AFTER_FAILURES;

/// The attempts per endpoint whose outcomes are kept.
const RECENT_ATTEMPTS: u32 = 20;
/// Endpoints tracked before all are forgotten (forgetting only delays a failing mark).
const MAX_TRACKED_ENDPOINTS: usize = 10_000;

/// The recent outcomes of each endpoint, as one deliverer saw them.
#[derive(Debug, Default)]
pub struct RecentOutcomes {
    endpoints: Mutex<HashMap<String, Outcomes>>,
}

/// One endpoint's last attempts, as one deliverer saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// The last [`RECENT_ATTEMPTS`] attempts, newest in bit 0; a set bit failed.
    failed_bits: u32,
    /// How many attempts those bits hold (at most [`RECENT_ATTEMPTS`]).
    seen: u32,
    /// Failures in a row up to the newest attempt.
    pub run_length: u32,
    /// When that run began.
    pub run_since: Option<IsoTime>,
}

impl Outcomes {
    fn record(&mut self, failed: bool, now: IsoTime) {
        let window = (1_u32 << RECENT_ATTEMPTS) - 1;
        self.failed_bits = ((self.failed_bits << 1) | u32::from(failed)) & window;
        self.seen = (self.seen + 1).min(RECENT_ATTEMPTS);
        if failed {
            self.run_since = self.run_since.or(Some(now));
            self.run_length = self.run_length.saturating_add(1);
        } else {
            self.run_since = None;
            self.run_length = 0;
        }
    }

    /// Whether this deliverer's view says the endpoint is down: its last
    /// [`FAILING_AFTER_FAILURES`] attempts here failed, and at least half of its last
    /// [`RECENT_ATTEMPTS`] did.
    pub fn say_down(&self) -> bool {
        self.run_length >= FAILING_AFTER_FAILURES && 2 * self.failed_bits.count_ones() >= self.seen
    }
}

impl RecentOutcomes {
    /// Notes an attempt to `endpoint` at `now`; its outcomes with it.
    pub fn record(&self, endpoint: &str, failed: bool, now: IsoTime) -> Outcomes {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if endpoints.len() >= MAX_TRACKED_ENDPOINTS && !endpoints.contains_key(endpoint) {
            endpoints.clear();
        }
        let outcomes = endpoints.entry(endpoint.to_owned()).or_default();
        outcomes.record(failed, now);
        *outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> IsoTime {
        IsoTime::new(time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + second).unwrap()).unwrap()
    }

    /// The outcomes after `failures` in order (true = failed), one a second.
    fn after(failures: &[bool]) -> Outcomes {
        let recent = RecentOutcomes::default();
        let mut last = Outcomes::default();
        for (second, &failed) in failures.iter().enumerate() {
            last = recent.record("m#s", failed, at(second as i64));
        }
        last
    }

    #[test]
    fn a_down_endpoint_is_down_after_three_failures_in_a_row() {
        assert!(!after(&[true, true]).say_down());
        let down = after(&[true, true, true]);
        assert!(down.say_down());
        assert_eq!((down.run_length, down.run_since), (3, Some(at(0))));
        assert!(after(&[false, true, true, true]).say_down());
    }

    #[test]
    fn a_success_ends_the_run() {
        let healed = after(&[true, true, false, true, true]);
        assert!(!healed.say_down());
        assert_eq!((healed.run_length, healed.run_since), (2, Some(at(3))));
    }

    #[test]
    fn three_in_a_row_among_many_successes_is_not_down_until_half_failed() {
        let mut outcomes = vec![false; 17];
        outcomes.extend([true; 3]);
        assert!(!after(&outcomes).say_down(), "3 of the last 20 failed");
        outcomes.extend([true; 7]);
        assert!(after(&outcomes).say_down(), "10 of the last 20 failed");
    }

    #[test]
    fn endpoints_are_tracked_apart() {
        let recent = RecentOutcomes::default();
        for second in 0..3 {
            recent.record("m#down", true, at(second));
            recent.record("m#up", false, at(second));
        }
        assert!(recent.record("m#down", true, at(3)).say_down());
        assert!(!recent.record("m#up", true, at(3)).say_down());
    }
}
