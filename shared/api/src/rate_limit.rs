//! A per-merchant request budget: a token bucket per merchant, in this process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::error::ApiError;

/// The most merchants tracked; beyond it, merchants whose bucket is full are forgotten.
const MAX_TRACKED_MERCHANTS: usize = 10_000;

/// How many requests a merchant may make: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may arrive at once after a quiet spell.
    pub burst: f64,
}

impl Default for RateLimit {
    /// 20 requests per second, bursts of 100.
    fn default() -> Self {
        Self {
            per_second: 20.0,
            burst: 100.0,
        }
    }
}

/// The buckets of every merchant seen.
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Takes a token from the merchant's bucket, or says how long until one is there.
    pub(crate) fn admit(&self, merchant_id: &str) -> Result<(), ApiError> {
        self.admit_at(merchant_id, Instant::now())
    }

    fn admit_at(&self, merchant_id: &str, now: Instant) -> Result<(), ApiError> {
        let RateLimit { per_second, burst } = self.limit;
        let level = |bucket: &Bucket| {
            let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * per_second;
            (bucket.tokens + refill).min(burst)
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_MERCHANTS && !buckets.contains_key(merchant_id) {
            buckets.retain(|_, bucket| level(bucket) < burst);
        }
        let bucket = buckets
            .entry(merchant_id.to_owned())
            .or_insert(Bucket { tokens: burst, at: now });
        bucket.tokens = level(bucket);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_secs = ((1.0 - bucket.tokens) / per_second).ceil();
            Err(ApiError::rate_limited(wait_secs.clamp(1.0, 3600.0) as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TWO_PER_SECOND_BURST_THREE: RateLimit = RateLimit {
        per_second: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_burst_is_admitted_then_tokens_come_back_at_the_rate() {
        let limiter = RateLimiter::new(TWO_PER_SECOND_BURST_THREE);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit_at("m_a", t0), Ok(()));
        }
        let refused = limiter.admit_at("m_a", t0).expect_err("the burst is spent");
        assert_eq!((refused.code, refused.retry_after_secs), ("rate_limited", Some(1)));
        assert_eq!(limiter.admit_at("m_b", t0), Ok(()), "merchants have their own buckets");
        let half_a_second = t0 + Duration::from_millis(500);
        assert_eq!(limiter.admit_at("m_a", half_a_second), Ok(()));
        assert!(limiter.admit_at("m_a", half_a_second).is_err());
        let much_later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(
                limiter.admit_at("m_a", much_later),
                Ok(()),
                "refilled up to the burst only"
            );
        }
        assert!(limiter.admit_at("m_a", much_later).is_err());
    }

    #[test]
    fn merchants_with_full_buckets_are_forgotten_when_too_many_are_tracked() {
        let limiter = RateLimiter::new(TWO_PER_SECOND_BURST_THREE);
        let t0 = Instant::now();
        for n in 0..MAX_TRACKED_MERCHANTS {
            assert_eq!(limiter.admit_at(&format!("m_{n}"), t0), Ok(()));
        }
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limiter.admit_at("m_new", later), Ok(()));
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1);
    }
}
