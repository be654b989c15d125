//! Stored instants are unix milliseconds (`i64`), except DynamoDB's TTL attribute, which
//! DynamoDB wants in unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The whole unix second an instant falls in (rounded down, also before 1970).
pub(crate) fn unix_seconds(at_ms: i64) -> i64 {
    at_ms.div_euclid(1000)
}

/// The instant of a whole unix second, in milliseconds.
pub(crate) fn from_unix_seconds(seconds: i64) -> i64 {
    seconds.saturating_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_down_and_come_back_exactly() {
        assert_eq!(unix_seconds(1_700_000_000_999), 1_700_000_000);
        assert_eq!(unix_seconds(-1), -1);
        assert_eq!(from_unix_seconds(unix_seconds(1_700_000_000_999)), 1_700_000_000_000);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
