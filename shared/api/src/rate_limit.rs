//! The request limits, counted in the store ([`RequestCounters`]) so that they hold across
//! every Lambda container and survive cold starts: a budget per merchant, and a smaller one
//! per source address for requests whose API key is missing or wrong.
//!
//! The rule, written once here for both backends: a limit is `requests` per fixed window of
//! `window_secs`, windows aligned on the unix epoch (the same in every container), counted
//! under a key that names whose requests they are (`merchant:{id}`, `bad-key:{source}`).
//! Once a window's count passes the limit, the rest of that window is refused with
//! `Retry-After` = the seconds until it ends. A fixed window admits at most `requests` in
//! any one window, so up to twice that across the boundary of two windows.
//!
//! Cost: one store write per counted request (an atomic increment), and one read per
//! request for the source's bad-key count. A key this process has seen refused is answered
//! from memory until its window ends, without the store (a count only grows).
//!
//! **Fails open.** If the store cannot count, the request is admitted: the API must not go
//! down because of its limiter. The failure is logged once, when it starts, and the
//! recovery once, when the store counts again.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use webhooks_storage::{RequestCounters, StoreError};

use crate::error::ApiError;

/// The most refused keys remembered at once; beyond it, refusals are read from the store.
const MAX_REMEMBERED_REFUSALS: usize = 10_000;
/// The prefix length an IPv6 source is limited by: one customer's usual allocation, a /64.
const IPV6_SOURCE_PREFIX_BITS: u32 = 64;

/// A request budget: at most `requests` in each fixed window of `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests admitted per window.
    pub requests: u64,
    /// The window's length, in seconds (at least 1).
    pub window_secs: u32,
}

impl RateLimit {
    /// A merchant's default budget: 100 requests per 5 s window, i.e. 20 per second
    /// sustained, with bursts of up to 100.
    pub const PER_MERCHANT: Self = Self {
        requests: 100,
        window_secs: 5,
    };

    /// The default budget of requests with a missing or wrong API key, per source
    /// address: 10 per minute.
    pub const BAD_KEY_PER_SOURCE: Self = Self {
        requests: 10,
        window_secs: 60,
    };

    /// The window `now_ms` falls in.
    fn window_at(self, now_ms: i64) -> Window {
        let length_ms = i64::from(self.window_secs.max(1)) * 1000;
        let start_ms = now_ms.div_euclid(length_ms) * length_ms;
        Window {
            start_ms,
            end_ms: start_ms.saturating_add(length_ms),
        }
    }
}

/// One fixed window, in unix milliseconds: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    start_ms: i64,
    end_ms: i64,
}

/// The 429 for a key refused until `end_ms`: `Retry-After` is the whole seconds left (at least 1).
fn refused_until(end_ms: i64, now_ms: i64) -> ApiError {
    let wait_ms = u64::try_from(end_ms.saturating_sub(now_ms)).unwrap_or(0);
    ApiError::rate_limited(wait_ms.div_ceil(1000).max(1))
}

/// The counter key of a merchant's requests.
fn merchant_key(merchant_id: &str) -> String {
    format!("merchant:{merchant_id}")
}

/// The counter key of a source's requests with a missing or wrong API key: its IPv4
/// address, or its IPv6 /64 (a client holds a whole /64 and could rotate through it). An
/// unknown source (a router called in-process, without a peer address) is one source.
pub(crate) fn bad_key_source(source: Option<IpAddr>) -> String {
    match source.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(ip)) => format!("bad-key:{ip}"),
        Some(IpAddr::V6(ip)) => {
            let prefix = Ipv6Addr::from_bits(ip.to_bits() & (u128::MAX << (128 - IPV6_SOURCE_PREFIX_BITS)));
            format!("bad-key:{prefix}/{IPV6_SOURCE_PREFIX_BITS}")
        }
        None => "bad-key:unknown".to_owned(),
    }
}

/// The limits of one API instance, counted in a shared store.
pub(crate) struct Limiter {
    per_merchant: RateLimit,
    bad_key_per_source: RateLimit,
    /// Keys seen over their limit, with the end of the window they are refused in.
    refused: Mutex<HashMap<String, i64>>,
    /// Whether the last count failed, so that an outage is logged once.
    store_failing: AtomicBool,
}

impl Limiter {
    /// A merchant may make `per_merchant`; a source may send `bad_key_per_source`
    /// requests with a missing or wrong key.
    pub(crate) fn new(per_merchant: RateLimit, bad_key_per_source: RateLimit) -> Self {
        Self {
            per_merchant,
            bad_key_per_source,
            refused: Mutex::default(),
            store_failing: AtomicBool::new(false),
        }
    }

    /// The same limits with another per-merchant budget.
    pub(crate) fn with_per_merchant(self, per_merchant: RateLimit) -> Self {
        Self { per_merchant, ..self }
    }

    /// The same limits with another budget of bad-key requests per source.
    pub(crate) fn with_bad_key_per_source(self, bad_key_per_source: RateLimit) -> Self {
        Self {
            bad_key_per_source,
            ..self
        }
    }

    /// Counts a request of the merchant: a 429 once it is over its budget.
    pub(crate) async fn admit_merchant(
        &self,
        store: &impl RequestCounters,
        merchant_id: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        self.count(store, self.per_merchant, merchant_key(merchant_id), now_ms)
            .await
    }

    /// A 429 if `source` (from [`bad_key_source`]) is already over its budget of bad-key
    /// requests; it counts nothing, so that a valid key from the source costs no write.
    pub(crate) async fn check_source(
        &self,
        store: &impl RequestCounters,
        source: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let limit = self.bad_key_per_source;
        let window = limit.window_at(now_ms);
        if let Some(refused) = self.remembered(source, now_ms) {
            return Err(refused);
        }
        let counted = store.request_count(source, window.start_ms).await;
        self.judge(counted, limit, source, window, now_ms)
    }

    /// Counts a request of `source` with a missing or wrong key: a 429 once it is over.
    pub(crate) async fn count_bad_key(
        &self,
        store: &impl RequestCounters,
        source: &str,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        self.count(store, self.bad_key_per_source, source.to_owned(), now_ms)
            .await
    }

    async fn count(
        &self,
        store: &impl RequestCounters,
        limit: RateLimit,
        key: String,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        let window = limit.window_at(now_ms);
        if let Some(refused) = self.remembered(&key, now_ms) {
            return Err(refused);
        }
        let counted = store.count_request(&key, window.start_ms, window.end_ms).await;
        self.judge(counted, limit, &key, window, now_ms)
    }

    /// Admits unless `counted` is over the limit (remembering the refusal); admits when the
    /// store failed.
    fn judge(
        &self,
        counted: Result<u64, StoreError>,
        limit: RateLimit,
        key: &str,
        window: Window,
        now_ms: i64,
    ) -> Result<(), ApiError> {
        match counted {
            Ok(count) => {
                if self.store_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the request counters answer again: rate limits apply");
                }
                if count <= limit.requests {
                    return Ok(());
                }
                self.remember(key, window.end_ms, now_ms);
                Err(refused_until(window.end_ms, now_ms))
            }
            Err(error) => {
                if !self.store_failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(%error, "the request counters failed: requests are admitted without rate limits until they answer");
                }
                Ok(())
            }
        }
    }

    /// The 429 for `key` if this process saw it refused in a window that has not ended.
    fn remembered(&self, key: &str, now_ms: i64) -> Option<ApiError> {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        match refused.get(key) {
            Some(&end_ms) if end_ms > now_ms => Some(refused_until(end_ms, now_ms)),
            Some(_) => {
                refused.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `key` is refused until `end_ms`, forgetting the windows that ended.
    fn remember(&self, key: &str, end_ms: i64, now_ms: i64) {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.len() >= MAX_REMEMBERED_REFUSALS {
            refused.retain(|_, end| *end > now_ms);
        }
        if refused.len() < MAX_REMEMBERED_REFUSALS {
            refused.insert(key.to_owned(), end_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// Counters in memory that count the store calls made, or fail every call.
    #[derive(Default)]
    struct Counters {
        counts: Mutex<HashMap<(String, i64), u64>>,
        calls: AtomicU64,
        failing: bool,
    }

    impl Counters {
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }

        fn answer(&self) -> Result<(), StoreError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            match self.failing {
                true => Err(StoreError::backend("test.count", "unreachable")),
                false => Ok(()),
            }
        }
    }

    impl RequestCounters for Counters {
        async fn count_request(&self, key: &str, window_start_ms: i64, _: i64) -> Result<u64, StoreError> {
            self.answer()?;
            let mut counts = self.counts.lock().unwrap();
            let count = counts.entry((key.to_owned(), window_start_ms)).or_default();
            *count += 1;
            Ok(*count)
        }

        async fn request_count(&self, key: &str, window_start_ms: i64) -> Result<u64, StoreError> {
            self.answer()?;
            let counts = self.counts.lock().unwrap();
            Ok(counts.get(&(key.to_owned(), window_start_ms)).copied().unwrap_or(0))
        }
    }

    const THREE_PER_TEN_SECONDS: RateLimit = RateLimit {
        requests: 3,
        window_secs: 10,
    };
    /// 2026-01-01T00:00:00Z, the start of a window of every length used here.
    const T0: i64 = 1_767_225_600_000;

    fn limiter() -> Limiter {
        Limiter::new(THREE_PER_TEN_SECONDS, RateLimit::BAD_KEY_PER_SOURCE)
    }

    #[test]
    fn windows_are_aligned_on_the_epoch_and_the_default_is_100_per_5_seconds() {
        let window = RateLimit::PER_MERCHANT.window_at(T0 + 7_250);
        assert_eq!((window.start_ms, window.end_ms), (T0 + 5_000, T0 + 10_000));
        assert_eq!(RateLimit::PER_MERCHANT.requests / 5, 20, "20 per second sustained");
        let zero = RateLimit {
            requests: 1,
            window_secs: 0,
        };
        assert_eq!(
            zero.window_at(T0 + 1).end_ms,
            T0 + 1_000,
            "a window is at least a second"
        );
        assert_eq!(refused_until(T0 + 10_000, T0 + 7_250).retry_after_secs, Some(3));
        assert_eq!(refused_until(T0 + 10_000, T0 + 9_999).retry_after_secs, Some(1));
    }

    #[tokio::test]
    async fn a_merchant_is_refused_for_the_rest_of_the_window_once_over_its_budget() {
        let (limiter, store) = (limiter(), Counters::default());
        for _ in 0..3 {
            assert_eq!(limiter.admit_merchant(&store, "m_a", T0 + 1_000).await, Ok(()));
        }
        let refused = limiter.admit_merchant(&store, "m_a", T0 + 1_000).await.unwrap_err();
        assert_eq!((refused.code, refused.retry_after_secs), ("rate_limited", Some(9)));
        assert_eq!(limiter.admit_merchant(&store, "m_b", T0 + 1_000).await, Ok(()));
        assert_eq!(
            limiter.admit_merchant(&store, "m_a", T0 + 10_000).await,
            Ok(()),
            "a new window"
        );
    }

    #[tokio::test]
    async fn a_refused_key_is_answered_without_the_store_until_its_window_ends() {
        let (limiter, store) = (limiter(), Counters::default());
        for _ in 0..4 {
            let _ = limiter.admit_merchant(&store, "m_a", T0).await;
        }
        assert_eq!(store.calls(), 4);
        let refused = limiter.admit_merchant(&store, "m_a", T0 + 9_500).await.unwrap_err();
        assert_eq!(refused.retry_after_secs, Some(1));
        assert_eq!(store.calls(), 4, "remembered, not counted");
        assert_eq!(limiter.admit_merchant(&store, "m_a", T0 + 10_000).await, Ok(()));
        assert_eq!(store.calls(), 5);
    }

    #[tokio::test]
    async fn a_source_over_its_bad_key_budget_is_refused_before_any_key_is_checked() {
        let (limiter, store) = (limiter(), Counters::default());
        let source = bad_key_source(Some(IpAddr::from([203, 0, 113, 7])));
        for _ in 0..10 {
            assert_eq!(limiter.check_source(&store, &source, T0).await, Ok(()));
            assert_eq!(limiter.count_bad_key(&store, &source, T0).await, Ok(()));
        }
        assert_eq!(
            limiter.check_source(&store, &source, T0).await,
            Ok(()),
            "at the limit, not over"
        );
        let refused = limiter.count_bad_key(&store, &source, T0).await.unwrap_err();
        assert_eq!(refused.retry_after_secs, Some(60));
        let other = Limiter::new(THREE_PER_TEN_SECONDS, RateLimit::BAD_KEY_PER_SOURCE);
        let refused = other.check_source(&store, &source, T0 + 30_000).await.unwrap_err();
        assert_eq!(
            refused.retry_after_secs,
            Some(30),
            "read from the store by another instance"
        );
        assert_eq!(other.check_source(&store, "bad-key:198.51.100.1", T0).await, Ok(()));
    }

    #[tokio::test]
    async fn a_failing_store_admits_every_request() {
        let limiter = limiter();
        let store = Counters {
            failing: true,
            ..Counters::default()
        };
        for _ in 0..10 {
            assert_eq!(limiter.admit_merchant(&store, "m_a", T0).await, Ok(()));
            assert_eq!(limiter.check_source(&store, "bad-key:unknown", T0).await, Ok(()));
            assert_eq!(limiter.count_bad_key(&store, "bad-key:unknown", T0).await, Ok(()));
        }
        assert!(limiter.store_failing.load(Ordering::Relaxed));
    }

    #[test]
    fn sources_are_ipv4_addresses_or_ipv6_64s() {
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        let same_64: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        assert_eq!(bad_key_source(Some(v4)), "bad-key:203.0.113.7");
        assert_eq!(bad_key_source(Some(mapped)), "bad-key:203.0.113.7");
        assert_eq!(bad_key_source(Some(v6)), "bad-key:2001:db8:1:2::/64");
        assert_eq!(bad_key_source(Some(same_64)), bad_key_source(Some(v6)));
        assert_eq!(bad_key_source(None), "bad-key:unknown");
    }
}
