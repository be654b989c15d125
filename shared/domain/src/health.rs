//! Endpoint health (DESIGN section 3): an endpoint whose deliveries keep failing is
//! `failing` (since its first failure in a row, with the last error); while it fails, only
//! a few probes reach it at once and the other deliveries are held; one failing for
//! [`DEFAULT_DISABLE_AFTER`] is disabled with a reason. The transitions are plain rules
//! here; the store keeps the state beside the subscription, and deliver applies them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::IsoTime;

/// Failed attempts in a row after which an endpoint is `failing`.
pub const FAILING_AFTER_FAILURES: u32 = 3;
/// How long an endpoint may fail before it is disabled (`WEBHOOKS_DISABLE_AFTER`).
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// Attempts that may reach a failing endpoint at once, across all containers
/// (`WEBHOOKS_PROBE_SLOTS`).
pub const DEFAULT_PROBE_SLOTS: u32 = 2;
/// How often a held delivery is let through as a probe while nothing else probes.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(60);

/// Where an endpoint stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Deliveries go out as they come.
    #[default]
    Healthy,
    /// Its last attempts failed: a few probes go through, the other deliveries are held.
    Failing,
    /// It failed for too long and was disabled; its deliveries are held for a recover.
    Disabled,
}

/// An endpoint's health, as stored beside its subscription and shown in the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    /// Healthy, failing or disabled.
    pub status: HealthStatus,
    /// When its current run of failures began (also while still healthy, below
    /// [`FAILING_AFTER_FAILURES`]), or when it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<IsoTime>,
    /// Failed attempts in a row (approximate under concurrent failures).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The last failure: status code or error kind, e.g. `503` or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Deliveries wait in its held index, to go out (oldest first) when it recovers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub has_held: bool,
    /// Not before this instant is the next held delivery let through as a probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<IsoTime>,
}

impl EndpointHealth {
    /// After a failed attempt at `now` with `error`: one more failure in the run, failing
    /// from the [`FAILING_AFTER_FAILURES`]th on. A disabled endpoint stays disabled.
    pub fn after_failure(&self, now: IsoTime, error: &str) -> Self {
        self.after_failure_run(1, now, error)
    }

    /// After a failed attempt that ends a run of `run_length` failures in a row seen by one
    /// deliverer since `run_since`, with `error`: as [`EndpointHealth::after_failure`], the
    /// stored count taken up to that run's length if it is shorter.
    pub fn after_failure_run(&self, run_length: u32, run_since: IsoTime, error: &str) -> Self {
        let consecutive_failures = self.consecutive_failures.saturating_add(1).max(run_length);
        let status = match self.status {
            HealthStatus::Disabled => HealthStatus::Disabled,
            _ if consecutive_failures >= FAILING_AFTER_FAILURES => HealthStatus::Failing,
            _ => HealthStatus::Healthy,
        };
        Self {
            status,
            since: self.since.or(Some(run_since)),
            consecutive_failures,
            last_error: Some(error.to_owned()),
            ..self.clone()
        }
    }

    /// After a successful attempt: healthy, its held deliveries still to release.
    pub fn after_success(&self) -> Self {
        Self {
            has_held: self.has_held,
            ..Self::default()
        }
    }

    /// Whether a success would change anything stored (the common case writes nothing).
    pub fn is_clean(&self) -> bool {
        *self == Self::default()
    }

    /// Whether it has been failing for `disable_after` by `now`.
    pub fn due_for_disable(&self, now: IsoTime, disable_after: Duration) -> bool {
        self.status == HealthStatus::Failing
            && self
                .since
                .is_some_and(|since| now.instant() - since.instant() >= disable_after)
    }

    /// Disabled at `now`, saying why; its held deliveries kept.
    pub fn disabled(&self, now: IsoTime, disable_after: Duration) -> Self {
        let span = span_in_words(disable_after);
        let since = self.since.map_or_else(|| now.to_string(), |since| since.to_string());
        let last = self.last_error.as_deref().unwrap_or("unknown");
        Self {
            status: HealthStatus::Disabled,
            since: Some(now),
            disabled_reason: Some(format!("failing since {since} (over {span}), last error {last}")),
            next_probe_at: None,
            ..self.clone()
        }
    }

    /// Re-enabled by its merchant: healthy, its held deliveries still to release.
    pub fn reset(&self) -> Self {
        self.after_success()
    }

    /// Whether a held delivery should be let through as a probe at `now` (and so the
    /// probe timer moved on to `now` + [`PROBE_INTERVAL`]).
    pub fn probe_due(&self, now: IsoTime) -> bool {
        self.status == HealthStatus::Failing && self.has_held && self.next_probe_at.is_none_or(|at| at <= now)
    }
}

/// A span as its largest whole unit: `5 days`, `36 hours`, `90 minutes`, `1 second`.
fn span_in_words(span: Duration) -> String {
    let seconds = span.as_secs();
    let (count, unit) = [(86_400, "day"), (3_600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(unit, _)| seconds >= *unit && seconds.is_multiple_of(*unit))
        .map_or((seconds, "second"), |(unit, name)| (seconds / unit, name));
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> IsoTime {
        IsoTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn an_endpoint_fails_from_the_third_failure_in_a_row_since_the_first() {
        let first = EndpointHealth::default().after_failure(at("2026-01-01T00:00:00Z"), "503");
        assert_eq!((first.status, first.consecutive_failures), (HealthStatus::Healthy, 1));
        let third = first
            .after_failure(at("2026-01-01T00:00:05Z"), "timeout")
            .after_failure(at("2026-01-01T00:05:05Z"), "503");
        assert_eq!(third.status, HealthStatus::Failing);
        assert_eq!(third.since, Some(at("2026-01-01T00:00:00Z")));
        assert_eq!(third.last_error.as_deref(), Some("503"));
        let healed = EndpointHealth {
            has_held: true,
            ..third
        }
        .after_success();
        assert_eq!(
            healed,
            EndpointHealth {
                has_held: true,
                ..EndpointHealth::default()
            }
        );
        assert!(EndpointHealth::default().after_success().is_clean());
    }

    #[test]
    fn a_run_seen_by_one_deliverer_counts_from_its_start() {
        let run = EndpointHealth::default().after_failure_run(3, at("2026-01-01T00:00:00Z"), "503");
        assert_eq!((run.status, run.consecutive_failures), (HealthStatus::Failing, 3));
        assert_eq!(run.since, Some(at("2026-01-01T00:00:00Z")));
        // A longer stored run keeps counting; a disabled endpoint stays disabled.
        let longer = run.after_failure_run(2, at("2026-01-01T00:01:00Z"), "timeout");
        assert_eq!((longer.consecutive_failures, longer.since), (4, run.since));
        let disabled = EndpointHealth {
            status: HealthStatus::Disabled,
            ..EndpointHealth::default()
        };
        assert_eq!(
            disabled.after_failure_run(5, at("2026-01-01T00:00:00Z"), "503").status,
            HealthStatus::Disabled
        );
    }

    #[test]
    fn an_endpoint_failing_for_the_whole_period_is_due_for_disable_and_stays_disabled() {
        let failing = (0..3).fold(EndpointHealth::default(), |health, _| {
            health.after_failure(at("2026-01-01T00:00:00Z"), "503")
        });
        assert!(!failing.due_for_disable(at("2026-01-05T23:59:59Z"), DEFAULT_DISABLE_AFTER));
        assert!(failing.due_for_disable(at("2026-01-06T00:00:00Z"), DEFAULT_DISABLE_AFTER));
        let disabled = failing.disabled(at("2026-01-06T00:00:00Z"), DEFAULT_DISABLE_AFTER);
        assert_eq!(disabled.status, HealthStatus::Disabled);
        let reason = disabled.disabled_reason.clone().unwrap();
        assert_eq!(
            reason,
            "failing since 2026-01-01T00:00:00.000Z (over 5 days), last error 503"
        );
        assert_eq!(
            disabled.after_failure(at("2026-01-07T00:00:00Z"), "503").status,
            HealthStatus::Disabled
        );
        assert_eq!(disabled.reset().status, HealthStatus::Healthy);
    }

    #[test]
    fn spans_are_worded_in_their_largest_whole_unit() {
        for (seconds, words) in [
            (432_000, "5 days"),
            (129_600, "36 hours"),
            (5_400, "90 minutes"),
            (3, "3 seconds"),
            (1, "1 second"),
            (86_400, "1 day"),
        ] {
            assert_eq!(span_in_words(Duration::from_secs(seconds)), words);
        }
    }

    #[test]
    fn a_held_delivery_probes_once_per_interval_while_failing() {
        let failing = EndpointHealth {
            status: HealthStatus::Failing,
            has_held: true,
            ..EndpointHealth::default()
        };
        let now = at("2026-01-01T00:00:00Z");
        assert!(failing.probe_due(now));
        let timed = EndpointHealth {
            next_probe_at: Some(at("2026-01-01T00:01:00Z")),
            ..failing.clone()
        };
        assert!(!timed.probe_due(now));
        assert!(timed.probe_due(at("2026-01-01T00:01:00Z")));
        assert!(
            !EndpointHealth {
                has_held: false,
                ..failing
            }
            .probe_due(now)
        );
    }
}
