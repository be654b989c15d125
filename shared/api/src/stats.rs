//! `GET /v1/subscriptions/{id}/stats?hours=24`: a subscription's attempts of the last hours,
//! counted per hour by outcome with their p50 and p99 latency, computed from its delivery
//! log (newest first, at most [`MAX_ATTEMPTS_READ`] of them; `complete: false` says the
//! window had more).

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use webhooks_domain::{AttemptOutcome, DeliveryAttempt, IsoTime};
use webhooks_storage::{Backend, DeliveryLog, PageRequest, QueueSender};

use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Caller, PathParams};

/// The most attempts one request reads (ten pages of the log).
pub const MAX_ATTEMPTS_READ: usize = 10_000;
/// Attempts read per page of the log.
const PAGE: usize = 1_000;
/// The longest window, in hours (a week).
const MAX_HOURS: u32 = 168;
const BUCKET_SECONDS: i64 = 3_600;

/// `?hours=`: 1 to 168, default 24.
pub(crate) struct Hours(u32);

#[derive(Deserialize)]
struct RawHours {
    hours: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Hours {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawHours>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        match raw.hours {
            None => Ok(Hours(24)),
            Some(text) => text
                .parse()
                .ok()
                .filter(|hours| (1..=MAX_HOURS).contains(hours))
                .map(Hours)
                .ok_or_else(|| ApiError::bad_request(format!("hours must be between 1 and {MAX_HOURS}"))),
        }
    }
}

/// Attempts of one hour (or of the whole window), by outcome, with their latencies.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Tally {
    succeeded: u64,
    failed: u64,
    p50_latency_ms: Option<u64>,
    p99_latency_ms: Option<u64>,
}

/// One hour of the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Bucket {
    start: IsoTime,
    #[serde(flatten)]
    tally: Tally,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stats {
    from: IsoTime,
    until: IsoTime,
    bucket_seconds: i64,
    buckets: Vec<Bucket>,
    totals: Tally,
    complete: bool,
}

/// `GET /v1/subscriptions/{id}/stats`: 404 for an unknown or another merchant's
/// subscription; 400 for `hours` outside 1..168.
pub(crate) async fn stats<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    Hours(hours): Hours,
) -> Result<Json<Stats>, ApiError> {
    let subscription = api.subscription(&caller, &id).await?;
    let until = api.now();
    let until_ms = until.unix_millis();
    // Whole hours: the window starts at the hour `hours - 1` hours before this one.
    let first_bucket_ms = (until_ms.div_euclid(BUCKET_SECONDS * 1000) - i64::from(hours) + 1) * BUCKET_SECONDS * 1000;
    let (attempts, complete) = read_window(&api.store, &caller.merchant_id, &subscription.id, first_bucket_ms).await?;
    Ok(Json(tally(&attempts, first_bucket_ms, hours, until, complete)))
}

/// The subscription's attempts made since `from_ms`, newest first, and whether that is all.
async fn read_window<S: DeliveryLog>(
    store: &S,
    merchant_id: &str,
    subscription_id: &str,
    from_ms: i64,
) -> Result<(Vec<DeliveryAttempt>, bool), ApiError> {
    let mut attempts = Vec::new();
    let mut page = PageRequest::first(PAGE);
    loop {
        let read = store.list_attempts(merchant_id, subscription_id, page).await?;
        for attempt in read.items {
            if attempt.attempted_at.unix_millis() < from_ms {
                return Ok((attempts, true));
            }
            if attempts.len() == MAX_ATTEMPTS_READ {
                return Ok((attempts, false));
            }
            attempts.push(attempt);
        }
        match read.next_cursor {
            Some(cursor) => {
                page = PageRequest {
                    limit: PAGE,
                    cursor: Some(cursor),
                }
            }
            None => return Ok((attempts, true)),
        }
    }
}

fn tally(attempts: &[DeliveryAttempt], first_bucket_ms: i64, hours: u32, until: IsoTime, complete: bool) -> Stats {
    let bucket_ms = BUCKET_SECONDS * 1000;
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); hours as usize];
    let mut buckets: Vec<Tally> = vec![Tally::default(); hours as usize];
    let mut totals = Tally::default();
    let mut all_latencies = Vec::new();
    for attempt in attempts {
        let index = usize::try_from((attempt.attempted_at.unix_millis() - first_bucket_ms) / bucket_ms).unwrap_or(0);
        let Some(bucket) = buckets.get_mut(index) else { continue };
        match attempt.outcome {
            AttemptOutcome::Succeeded => (bucket.succeeded += 1, totals.succeeded += 1),
            AttemptOutcome::Failed => (bucket.failed += 1, totals.failed += 1),
            AttemptOutcome::Skipped => continue,
        };
        latencies[index].push(attempt.latency_ms);
        all_latencies.push(attempt.latency_ms);
    }
    for (bucket, mut hour) in buckets.iter_mut().zip(latencies) {
        (bucket.p50_latency_ms, bucket.p99_latency_ms) = percentiles(&mut hour);
    }
    (totals.p50_latency_ms, totals.p99_latency_ms) = percentiles(&mut all_latencies);
    let at = |ms: i64| {
        IsoTime::new(OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(until.instant()))
            .unwrap_or(until)
    };
    Stats {
        from: at(first_bucket_ms),
        until,
        bucket_seconds: BUCKET_SECONDS,
        buckets: buckets
            .into_iter()
            .enumerate()
            .map(|(n, tally)| Bucket {
                start: at(first_bucket_ms + n as i64 * bucket_ms),
                tally,
            })
            .collect(),
        totals,
        complete,
    }
}

/// The nearest-rank p50 and p99 of `values` (none when empty).
fn percentiles(values: &mut [u64]) -> (Option<u64>, Option<u64>) {
    if values.is_empty() {
        return (None, None);
    }
    values.sort_unstable();
    let rank = |p: f64| values[((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1];
    (Some(rank(0.50)), Some(rank(0.99)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentiles(&mut []), (None, None));
        assert_eq!(percentiles(&mut [7]), (Some(7), Some(7)));
        let mut hundred: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut hundred), (Some(50), Some(99)));
    }
}
