//! Time budgets: a piece of work (a delivery attempt, an auth decision) gets its own
//! configured timeout, cut short by the Lambda invocation's deadline when there is one, so
//! that it ends as a recorded `timeout` and the function still answers: never a Lambda
//! timeout (DESIGN §3 and §5).

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// How long before the invocation's Lambda deadline the budgeted work must be over: 500 ms
/// to log the outcome, serialise the answer and post it to the Runtime API.
pub const LAMBDA_DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// When work must end: the earlier of its own timeout and the invocation's deadline minus
/// [`LAMBDA_DEADLINE_MARGIN`]. The default has no deadline (the local stack, the merchant
/// API's test route, tests): there, each piece of work gets its configured timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// The Lambda deadline minus the margin, on the tokio clock.
    cutoff: Option<Instant>,
}

impl Budget {
    /// The budget of a Lambda invocation, from its deadline (`Lambda-Runtime-Deadline-Ms`).
    pub fn of_invocation(context: &lambda_runtime::Context) -> Self {
        Self::before(context.deadline())
    }

    /// A budget that ends [`LAMBDA_DEADLINE_MARGIN`] before the wall-clock `deadline`; one
    /// already inside the margin is spent.
    pub fn before(deadline: SystemTime) -> Self {
        Self::between(SystemTime::now(), Instant::now(), deadline)
    }

    /// [`Budget::before`], with the wall clock at `now` and the tokio clock at `instant_now`.
    fn between(now: SystemTime, instant_now: Instant, deadline: SystemTime) -> Self {
        let left = deadline.duration_since(now).unwrap_or_default();
        Self {
            cutoff: Some(instant_now + left.saturating_sub(LAMBDA_DEADLINE_MARGIN)),
        }
    }

    /// The same budget, keeping `reserve` at its end for what must follow the budgeted work
    /// (deliver records the attempt and hands its retry off after the request).
    pub fn reserving(self, reserve: Duration) -> Self {
        Self {
            cutoff: self.cutoff.map(|cutoff| cutoff.checked_sub(reserve).unwrap_or(cutoff)),
        }
    }

    /// When work that started at `started` and may take `timeout` must end.
    pub fn ends_at(&self, started: Instant, timeout: Duration) -> Instant {
        let own = started + timeout;
        self.cutoff.map_or(own, |cutoff| cutoff.min(own))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const SECOND: Duration = Duration::from_secs(1);

    /// A budget whose Lambda deadline is `left` away, with both clocks read at `started`.
    fn deadline_in(left: Duration, started: Instant) -> Budget {
        let now = SystemTime::now();
        Budget::between(now, started, now + left)
    }

    #[test]
    fn without_a_deadline_the_configured_timeout_applies() {
        let started = Instant::now();
        assert_eq!(Budget::default().ends_at(started, TIMEOUT), started + TIMEOUT);
    }

    #[test]
    fn a_nearer_lambda_deadline_ends_the_work_a_margin_before_it() {
        let started = Instant::now();
        let ends = deadline_in(SECOND, started).ends_at(started, TIMEOUT);
        assert_eq!(ends, started + SECOND - LAMBDA_DEADLINE_MARGIN);
    }

    #[test]
    fn a_reserve_ends_the_work_that_much_earlier_only_under_a_deadline() {
        let started = Instant::now();
        let budget = deadline_in(4 * SECOND, started).reserving(2 * SECOND);
        assert_eq!(
            budget.ends_at(started, TIMEOUT),
            started + 2 * SECOND - LAMBDA_DEADLINE_MARGIN
        );
        let unbounded = Budget::default().reserving(2 * SECOND);
        assert_eq!(unbounded.ends_at(started, TIMEOUT), started + TIMEOUT);
    }

    #[test]
    fn a_farther_lambda_deadline_leaves_the_configured_timeout() {
        let started = Instant::now();
        let ends = deadline_in(60 * SECOND, started).ends_at(started, TIMEOUT);
        assert_eq!(ends, started + TIMEOUT);
    }

    #[test]
    fn a_deadline_inside_the_margin_or_past_leaves_nothing() {
        let started = Instant::now();
        let now = SystemTime::now();
        for deadline in [now + LAMBDA_DEADLINE_MARGIN / 2, now - SECOND] {
            let ends = Budget::between(now, started, deadline).ends_at(started, TIMEOUT);
            assert_eq!(ends, started);
        }
    }

    #[test]
    fn an_invocation_budget_comes_from_its_context_deadline() {
        let mut context = lambda_runtime::Context::default();
        // `Lambda-Runtime-Deadline-Ms` 0: the deadline passed long ago, nothing is left.
        context.deadline = 0;
        let started = Instant::now();
        assert!(Budget::of_invocation(&context).ends_at(started, TIMEOUT) <= Instant::now());
        // An hour away: the configured timeout comes first.
        let in_an_hour = SystemTime::now() + 3600 * SECOND;
        let unix_ms = in_an_hour
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        context.deadline = u64::try_from(unix_ms).expect("fits in u64");
        let started = Instant::now();
        assert_eq!(
            Budget::of_invocation(&context).ends_at(started, TIMEOUT),
            started + TIMEOUT
        );
    }
}
