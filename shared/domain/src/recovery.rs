//! Recovering a subscription's failed deliveries (`POST /v1/subscriptions/{id}/recover`):
//! which deliveries a recovery sends again, and the window of time it takes. The API checks
//! the window here; the store claims the deliveries whose status is [`RECOVERABLE`].

use time::Duration;

use crate::delivery::DeliveryStatus;
use crate::event::IsoTime;

/// The longest window a recovery takes: 14 days.
pub const MAX_RECOVERY_WINDOW: Duration = Duration::days(14);

/// The statuses of the deliveries a recovery sends again: those whose attempts all failed.
pub const RECOVERABLE: &[DeliveryStatus] = &[DeliveryStatus::Failed];

/// A recovery's window: from `since` (included) to `until` (excluded), non-empty and at
/// most [`MAX_RECOVERY_WINDOW`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryWindow {
    since: IsoTime,
    until: IsoTime,
}

/// Why a window is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `since` is not before `until` (or before now, when `until` is left out).
    #[error("since ({since}) must be before until ({until})")]
    Empty {
        /// The start asked for.
        since: IsoTime,
        /// The end asked for, or now.
        until: IsoTime,
    },
    /// The window is longer than [`MAX_RECOVERY_WINDOW`].
    #[error("the window from {since} to {until} is longer than 14 days")]
    TooLong {
        /// The start asked for.
        since: IsoTime,
        /// The end asked for, or now.
        until: IsoTime,
    },
}

impl RecoveryWindow {
    /// The window from `since` to `until`, which defaults to `now`.
    pub fn new(since: IsoTime, until: Option<IsoTime>, now: IsoTime) -> Result<Self, WindowError> {
        let until = until.unwrap_or(now);
        if since >= until {
            return Err(WindowError::Empty { since, until });
        }
        if until.instant() - since.instant() > MAX_RECOVERY_WINDOW {
            return Err(WindowError::TooLong { since, until });
        }
        Ok(Self { since, until })
    }

    /// Its start, included.
    pub fn since(self) -> IsoTime {
        self.since
    }

    /// Its end, excluded.
    pub fn until(self) -> IsoTime {
        self.until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> IsoTime {
        IsoTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn until_defaults_to_now() {
        let window = RecoveryWindow::new(at("2026-03-01T00:00:00Z"), None, at("2026-03-02T00:00:00Z")).unwrap();
        assert_eq!(
            (window.since(), window.until()),
            (at("2026-03-01T00:00:00Z"), at("2026-03-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_window_of_exactly_14_days_is_taken_and_one_millisecond_more_is_not() {
        let now = at("2026-06-01T00:00:00Z");
        let since = at("2026-03-01T00:00:00Z");
        assert!(RecoveryWindow::new(since, Some(at("2026-03-15T00:00:00Z")), now).is_ok());
        assert_eq!(
            RecoveryWindow::new(since, Some(at("2026-03-15T00:00:00.001Z")), now),
            Err(WindowError::TooLong {
                since,
                until: at("2026-03-15T00:00:00.001Z")
            })
        );
    }

    #[test]
    fn since_must_come_before_until() {
        let now = at("2026-03-02T00:00:00Z");
        let since = at("2026-03-01T00:00:00Z");
        for until in [since, at("2026-02-28T00:00:00Z")] {
            assert_eq!(
                RecoveryWindow::new(since, Some(until), now),
                Err(WindowError::Empty { since, until })
            );
        }
        assert!(matches!(
            RecoveryWindow::new(at("2026-03-03T00:00:00Z"), None, now),
            Err(WindowError::Empty { .. })
        ));
    }
}
