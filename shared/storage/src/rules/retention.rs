//! Retention: events, delivery attempts and delivery statuses are kept for the store's
//! retention after they are written, then expire. DynamoDB deletes an expired item
//! through its TTL attribute (`expiresAt`, unix seconds), some time after it expires; the
//! embedded store deletes expired rows when `EmbeddedStore::purge_expired` runs. Both
//! compute the instant with [`expires_at_ms`] and test it with [`is_expired`].

use std::time::Duration;

use super::unix_time::{from_unix_seconds, millis, unix_seconds};

const SECONDS_PER_DAY: u64 = 24 * 3600;

/// How long events, attempts and delivery statuses are kept by default: 30 days.
pub const DEFAULT_RETENTION: Duration = retention_days(30);

/// A retention of `days` whole days.
pub(crate) const fn retention_days(days: u32) -> Duration {
    Duration::from_secs(days as u64 * SECONDS_PER_DAY)
}

/// When something written at `written_at_ms` expires: `retention` later, rounded down to
/// the whole second (the TTL attribute's unit), so both backends store the same instant.
pub(crate) fn expires_at_ms(written_at_ms: i64, retention: Duration) -> i64 {
    from_unix_seconds(unix_seconds(written_at_ms.saturating_add(millis(retention))))
}

/// Whether something expiring at `expires_at_ms` has expired at `now_ms` (the expiry
/// instant itself counts as expired).
pub(crate) fn is_expired(expires_at_ms: i64, now_ms: i64) -> bool {
    expires_at_ms <= now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_thirty_days() {
        assert_eq!(DEFAULT_RETENTION, Duration::from_secs(30 * 86_400));
        assert_eq!(retention_days(1), Duration::from_secs(86_400));
    }

    #[test]
    fn expiry_is_write_time_plus_retention_in_whole_seconds() {
        let written = 1_700_000_000_750;
        assert_eq!(expires_at_ms(written, retention_days(1)), 1_700_086_400_000);
        assert_eq!(expires_at_ms(written, Duration::ZERO), 1_700_000_000_000);
        assert_eq!(expires_at_ms(i64::MAX - 5, DEFAULT_RETENTION) % 1000, 0, "saturates");
    }

    #[test]
    fn an_item_expires_at_its_instant_not_after() {
        assert!(!is_expired(2_000, 1_999));
        assert!(is_expired(2_000, 2_000));
        assert!(
            is_expired(expires_at_ms(5_400, Duration::ZERO), 5_400),
            "no retention: expired at once"
        );
    }
}
