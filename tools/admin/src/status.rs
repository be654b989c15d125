//! `status`: a stack at a glance, what an operator reads first when an alarm goes off
//! (`docs/operations.md`, section 5): each queue and DLQ, the parked retries, the failing
//! and disabled endpoints, and the merchants with the most failed attempts in the last hour.
//!
//! Merchants, their subscriptions (with their health) and the most overdue parked retry are
//! read through the store ports; the counts of the due-time index and of an hour of an
//! attempt log through the DynamoDB store's operator reads (`count_parked`,
//! `count_attempts`), which use the keys the ports write; the queue counts through the SQS
//! queue's `counts`.
//!
//! The age of the oldest message is peeked in the DLQs only: a receive counts towards a
//! queue's `maxReceiveCount`, and the main queues move a message to their DLQ after 5
//! (events) or 6 (deliveries) receives, so a peek there could dead-letter a message. The DLQs
//! have no redrive policy; a peek only raises their messages' `ApproximateReceiveCount`.
//! SQS's own `ApproximateAgeOfOldestMessage` is a CloudWatch metric only, and this tool does
//! not link a CloudWatch client: the main queues' age is on the dashboard.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::task::{JoinError, JoinSet};
use webhooks_domain::{Clock, HealthStatus, IsoTime, Merchant, Subscription, redact_url};
use webhooks_storage::aws::{DynamoStore, QueueCounts, SqsQueue};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{DUE_INDEX_SHARDS, PageRequest, ParkedRetries, QueueReceiver, StoreError, SubscriptionStore};

use crate::cli::QueueKind;
use crate::error::AdminError;
use crate::merchants::list_merchants;

/// How many merchants the failures section lists at most.
pub const TOP_FAILING_MERCHANTS: usize = 10;
/// How far back the failures section counts attempts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// How long a DLQ peek waits for its first message: a long poll asks every SQS server, a
/// short one only a sample of them.
const PEEK_WAIT: Duration = Duration::from_secs(1);
/// Merchants whose subscriptions and attempt logs are read at once.
const MERCHANTS_AT_ONCE: usize = 8;
/// Subscriptions read per page.
const SUBSCRIPTION_PAGE_SIZE: usize = 100;
/// The first instant past year 9999, in unix milliseconds: what [`IsoTime`] can show.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// A stack at a glance; printed as text or, with `--json`, as camelCase JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// When it was read.
    pub at: IsoTime,
    /// Each queue and its DLQ: events, events-dlq, deliveries, deliveries-dlq.
    pub queues: Vec<QueueStatus>,
    /// The due-time index of parked retries.
    pub parked_retries: ParkedRetriesStatus,
    /// Every subscription whose endpoint is failing or disabled, by merchant and subscription id.
    pub unhealthy_endpoints: Vec<UnhealthyEndpoint>,
    /// The merchants with the most failed attempts in the last [`FAILURE_WINDOW`], at most
    /// [`TOP_FAILING_MERCHANTS`], most failures first; only merchants with a failure.
    pub most_failed_merchants: Vec<MerchantFailures>,
}

/// One queue's messages, as SQS counts them (approximate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// `events`, `events-dlq`, `deliveries` or `deliveries-dlq`.
    pub queue: String,
    /// Waiting to be received (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet deleted (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Sent with a delay that has not passed (`ApproximateNumberOfMessagesDelayed`): on the
    /// deliveries queue, retries due within 15 minutes.
    pub delayed: u64,
    /// The age of its oldest message, where it was looked for.
    pub oldest: OldestMessage,
}

/// The age of a queue's oldest message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum OldestMessage {
    /// Not looked for: a main queue, where a peek would count as a receive towards its
    /// redrive policy. Its `ApproximateAgeOfOldestMessage` is on the dashboard.
    Dashboard,
    /// Peeked: up to 10 messages received with a visibility timeout of 0 (so not hidden),
    /// and the oldest `SentTimestamp` among them. A sample: the queue's true oldest may be
    /// older. A move to a DLQ keeps the timestamp, so for a message SQS moved this is when
    /// it was first sent, which is also what the DLQ's 14-day retention counts from.
    Peeked {
        /// How many messages the peek returned (0: it found the queue empty).
        messages: usize,
        /// The oldest `SentTimestamp` among them.
        sent_at: Option<IsoTime>,
        /// Its age when read, in seconds.
        age_seconds: Option<i64>,
    },
}

/// The due-time index of parked retries (`DUE#{shard}`, all 16 shards): retries due more
/// than 15 minutes after their failure, and, briefly, each attempt's hand-off until deliver
/// has passed it on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedRetriesStatus {
    /// Tasks in the index.
    pub parked: u64,
    /// Of those, tasks due now or earlier: the scheduler moves them within a minute.
    pub overdue: u64,
    /// When the most overdue task was due.
    pub most_overdue_due_at: Option<IsoTime>,
    /// How overdue it is, in seconds (what the `parked-retries-backlog` alarm watches).
    pub most_overdue_seconds: Option<i64>,
}

/// A subscription whose endpoint is failing or disabled, as its stored health says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyEndpoint {
    /// The merchant.
    pub merchant_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// Its URL, without user name, password, query or fragment (they may hold a token).
    pub endpoint: String,
    /// `failing` or `disabled`.
    pub status: HealthStatus,
    /// When its run of failures began, or when it was disabled.
    pub since: Option<IsoTime>,
    /// Failed attempts in a row.
    pub consecutive_failures: u32,
    /// The last failure: a status code or an error kind.
    pub last_error: Option<String>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
}

impl UnhealthyEndpoint {
    /// The subscription's, if its endpoint is failing or disabled.
    fn of(subscription: &Subscription) -> Option<Self> {
        let health = &subscription.health;
        (health.status != HealthStatus::Healthy).then(|| Self {
            merchant_id: subscription.merchant_id.clone(),
            subscription_id: subscription.id.clone(),
            endpoint: redact_url(&subscription.url),
            status: health.status,
            since: health.since,
            consecutive_failures: health.consecutive_failures,
            last_error: health.last_error.clone(),
            disabled_reason: health.disabled_reason.clone(),
        })
    }
}

/// One merchant's attempts in the last [`FAILURE_WINDOW`], over its current subscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MerchantFailures {
    /// The merchant.
    pub merchant_id: String,
    /// Its name.
    pub name: String,
    /// Attempts that failed.
    pub failed: u64,
    /// All attempts (succeeded, failed, skipped).
    pub attempts: u64,
}

/// Where `status` reads from.
pub(crate) struct StatusSources {
    /// The table, through the store ports.
    pub(crate) store: DynamoStore,
    /// Each queue and its DLQ.
    pub(crate) queues: Vec<(QueueKind, SqsQueue, SqsQueue)>,
}

/// Reads the status of the stack at `sources` at the clock's now. Costs: one
/// `GetQueueAttributes` per queue, one `ReceiveMessage` per DLQ, two `Query` (`COUNT`) per
/// due-time shard and one more per shard with an overdue task, one `Query` per page of
/// merchants and of each merchant's subscriptions, and one `Query` per subscription (more
/// when its last hour of attempts exceeds 1 MB), 8 merchants at a time.
pub(crate) async fn status(sources: &StatusSources, clock: &dyn Clock) -> Result<Status, AdminError> {
    let now = clock.now();
    let at = IsoTime::new(now).ok_or_else(|| StoreError::Corrupt(format!("clock out of range: {now}")))?;
    let mut queues = Vec::with_capacity(2 * sources.queues.len());
    for (kind, queue, dlq) in &sources.queues {
        queues.push(queue_status(kind.to_string(), queue, None).await?);
        queues.push(queue_status(format!("{kind}-dlq"), dlq, Some(at)).await?);
    }
    let parked_retries = parked_retries(&sources.store, at).await?;
    let (unhealthy_endpoints, most_failed_merchants) = endpoints_and_failures(sources, at).await?;
    Ok(Status {
        at,
        queues,
        parked_retries,
        unhealthy_endpoints,
        most_failed_merchants,
    })
}

/// A queue's counts, and, with `peek_at` (a DLQ), the age at that instant of the oldest
/// message a peek finds.
async fn queue_status(name: String, queue: &SqsQueue, peek_at: Option<IsoTime>) -> Result<QueueStatus, StoreError> {
    // Counted before the peek, which the counts should not see.
    let QueueCounts {
        visible,
        in_flight,
        delayed,
    } = queue.counts().await?;
    let oldest = match peek_at {
        Some(now) => peek_oldest(queue, now).await?,
        None => OldestMessage::Dashboard,
    };
    Ok(QueueStatus {
        queue: name,
        visible,
        in_flight,
        delayed,
        oldest,
    })
}

/// The oldest message among up to 10 received without hiding them.
async fn peek_oldest(dlq: &impl QueueReceiver, now: IsoTime) -> Result<OldestMessage, StoreError> {
    let messages = dlq.receive(MAX_BATCH, Duration::ZERO, PEEK_WAIT).await?;
    // The adapter reads a missing SentTimestamp as 0.
    let oldest_ms = messages.iter().map(|m| m.sent_at_ms).filter(|&ms| ms > 0).min();
    let sent_at = oldest_ms.and_then(|ms| iso_at(now, ms));
    Ok(OldestMessage::Peeked {
        messages: messages.len(),
        sent_at,
        age_seconds: sent_at.map(|at| seconds_between(at, now)),
    })
}

/// The due-time index's counts, and its most overdue task.
async fn parked_retries(store: &DynamoStore, now: IsoTime) -> Result<ParkedRetriesStatus, StoreError> {
    let now_ms = now.unix_millis();
    let (mut parked, mut overdue, mut most_overdue_ms) = (0, 0, None::<i64>);
    for shard in 0..DUE_INDEX_SHARDS {
        parked += store.count_parked(shard, None).await?;
        let shard_overdue = store.count_parked(shard, Some(now_ms)).await?;
        overdue += shard_overdue;
        if shard_overdue > 0
            && let Some(first) = store.due_tasks(shard, now_ms, 1).await?.first()
        {
            most_overdue_ms = Some(most_overdue_ms.map_or(first.due_ms, |ms| ms.min(first.due_ms)));
        }
    }
    let most_overdue_due_at = most_overdue_ms.and_then(|ms| iso_at(now, ms));
    Ok(ParkedRetriesStatus {
        parked,
        overdue,
        most_overdue_due_at,
        most_overdue_seconds: most_overdue_due_at.map(|at| seconds_between(at, now)),
    })
}

/// Every merchant's failing and disabled endpoints and its failures in the last hour,
/// [`MERCHANTS_AT_ONCE`] merchants at a time.
async fn endpoints_and_failures(
    sources: &StatusSources,
    now: IsoTime,
) -> Result<(Vec<UnhealthyEndpoint>, Vec<MerchantFailures>), AdminError> {
    let merchants = list_merchants(&sources.store).await?;
    let window_ms = i64::try_from(FAILURE_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let window = (now.unix_millis().saturating_sub(window_ms), now.unix_millis() + 1);
    let mut tasks = JoinSet::new();
    let mut done = Vec::with_capacity(merchants.len());
    for merchant in merchants {
        if tasks.len() >= MERCHANTS_AT_ONCE
            && let Some(finished) = tasks.join_next().await
        {
            done.push(joined(finished)?);
        }
        tasks.spawn(merchant_status(sources.store.clone(), merchant, window));
    }
    while let Some(finished) = tasks.join_next().await {
        done.push(joined(finished)?);
    }
    let (unhealthy, mut failures): (Vec<Vec<UnhealthyEndpoint>>, Vec<MerchantFailures>) = done.into_iter().unzip();
    let mut unhealthy: Vec<UnhealthyEndpoint> = unhealthy.into_iter().flatten().collect();
    unhealthy.sort_by(|a, b| (&a.merchant_id, &a.subscription_id).cmp(&(&b.merchant_id, &b.subscription_id)));
    failures.retain(|f| f.failed > 0);
    failures.sort_by(|a, b| b.failed.cmp(&a.failed).then_with(|| a.merchant_id.cmp(&b.merchant_id)));
    failures.truncate(TOP_FAILING_MERCHANTS);
    Ok((unhealthy, failures))
}

/// A merchant task's result; a task that panicked panics here too.
fn joined<T>(finished: Result<Result<T, StoreError>, JoinError>) -> Result<T, StoreError> {
    match finished {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(StoreError::backend("status", error)),
    }
}

/// One merchant's failing and disabled endpoints, and its attempts from `window.0`
/// (included) to `window.1` (excluded), in unix milliseconds.
async fn merchant_status(
    store: DynamoStore,
    merchant: Merchant,
    window: (i64, i64),
) -> Result<(Vec<UnhealthyEndpoint>, MerchantFailures), StoreError> {
    let mut unhealthy = Vec::new();
    let mut failures = MerchantFailures {
        merchant_id: merchant.id,
        name: merchant.name,
        failed: 0,
        attempts: 0,
    };
    let mut page = PageRequest::first(SUBSCRIPTION_PAGE_SIZE);
    loop {
        let found = store.list_subscriptions(&failures.merchant_id, page.clone()).await?;
        for subscription in &found.items {
            unhealthy.extend(UnhealthyEndpoint::of(subscription));
            let (attempts, failed) = store
                .count_attempts(&failures.merchant_id, &subscription.id, window.0, window.1)
                .await?;
            failures.attempts += attempts;
            failures.failed += failed;
        }
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok((unhealthy, failures)),
        }
    }
}

/// The instant `ms` (unix milliseconds) as an [`IsoTime`], found from `now`; `None` outside
/// 1970 to 9999 (a corrupt value).
fn iso_at(now: IsoTime, ms: i64) -> Option<IsoTime> {
    if !(0..YEAR_10000_MS).contains(&ms) {
        return None;
    }
    let delta = ms - now.unix_millis();
    let shift = Duration::from_millis(delta.unsigned_abs());
    IsoTime::new(if delta < 0 {
        now.instant() - shift
    } else {
        now.instant() + shift
    })
}

/// Whole seconds from `earlier` to `later`, 0 if `earlier` is not earlier.
fn seconds_between(earlier: IsoTime, later: IsoTime) -> i64 {
    (later.unix_millis() - earlier.unix_millis()).max(0) / 1000
}

/// A span of seconds in its two largest units: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    let (days, hours, minutes, seconds) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// The word for `status` in the text report.
fn status_word(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "healthy",
        HealthStatus::Failing => "failing",
        HealthStatus::Disabled => "disabled",
    }
}

impl fmt::Display for OldestMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OldestMessage::Dashboard => f.write_str("not peeked (dashboard: Oldest message age)"),
            OldestMessage::Peeked { messages: 0, .. } => f.write_str("- (none found)"),
            OldestMessage::Peeked {
                messages,
                age_seconds: Some(age),
                ..
            } => write!(f, "{} (oldest of {messages} peeked)", span(*age)),
            OldestMessage::Peeked { messages, .. } => write!(f, "unknown ({messages} peeked, no SentTimestamp)"),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "status at {}", self.at)?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<16}{:>9}{:>11}{:>9}  OLDEST MESSAGE",
            "QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED"
        )?;
        for q in &self.queues {
            writeln!(
                f,
                "{:<16}{:>9}{:>11}{:>9}  {}",
                q.queue, q.visible, q.in_flight, q.delayed, q.oldest
            )?;
        }
        writeln!(f)?;
        let p = &self.parked_retries;
        write!(
            f,
            "parked retries: {} in the due-time index, {} overdue",
            p.parked, p.overdue
        )?;
        match (p.most_overdue_due_at, p.most_overdue_seconds) {
            (Some(at), Some(seconds)) => writeln!(f, "; the most overdue was due {at} ({} ago)", span(seconds))?,
            _ => writeln!(f)?,
        }
        writeln!(f)?;
        if self.unhealthy_endpoints.is_empty() {
            writeln!(f, "failing or disabled endpoints: none")?;
        } else {
            writeln!(f, "failing or disabled endpoints: {}", self.unhealthy_endpoints.len())?;
            writeln!(
                f,
                "{:<36}  {:<36}  {:<8}  {:<24}  ENDPOINT  DETAIL",
                "MERCHANT ID", "SUBSCRIPTION ID", "STATUS", "SINCE"
            )?;
            for e in &self.unhealthy_endpoints {
                let since = e.since.map_or_else(|| "-".to_owned(), |since| since.to_string());
                let last_error = e.last_error.as_deref().unwrap_or("unknown");
                let detail = match &e.disabled_reason {
                    Some(reason) => reason.clone(),
                    None => format!("{} failures in a row, last error {last_error}", e.consecutive_failures),
                };
                writeln!(
                    f,
                    "{:<36}  {:<36}  {:<8}  {:<24}  {}  {detail}",
                    e.merchant_id,
                    e.subscription_id,
                    status_word(e.status),
                    since,
                    e.endpoint
                )?;
            }
        }
        writeln!(f)?;
        if self.most_failed_merchants.is_empty() {
            writeln!(f, "failed attempts in the last hour: none")?;
        } else {
            writeln!(
                f,
                "most failed attempts in the last hour (top {TOP_FAILING_MERCHANTS}):"
            )?;
            writeln!(f, "{:<36}  {:>8}  {:>8}  NAME", "MERCHANT ID", "FAILED", "ATTEMPTS")?;
            for m in &self.most_failed_merchants {
                writeln!(
                    f,
                    "{:<36}  {:>8}  {:>8}  {}",
                    m.merchant_id, m.failed, m.attempts, m.name
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> IsoTime {
        IsoTime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn spans_read_in_their_two_largest_units() {
        assert_eq!(span(-3), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(725), "12m 5s");
        assert_eq!(span(12_000), "3h 20m");
        assert_eq!(span(187_200), "2d 4h");
    }

    #[test]
    fn instants_in_milliseconds_are_found_from_now() {
        let now = at("2026-11-27T21:05:45.123Z");
        assert_eq!(
            iso_at(now, now.unix_millis() - 600_000),
            Some(at("2026-11-27T20:55:45.123Z"))
        );
        assert_eq!(iso_at(now, now.unix_millis() + 1), Some(at("2026-11-27T21:05:45.124Z")));
        assert_eq!(iso_at(now, -1), None);
        assert_eq!(iso_at(now, i64::MAX), None);
        assert_eq!(seconds_between(at("2026-11-27T20:55:45.123Z"), now), 600);
        assert_eq!(seconds_between(now, at("2026-11-27T20:55:45.123Z")), 0);
    }

    #[test]
    fn the_status_prints_every_section_as_text_and_camel_case_json() {
        let status = Status {
            at: at("2026-11-27T21:05:45.123Z"),
            queues: vec![
                QueueStatus {
                    queue: "events".into(),
                    visible: 1,
                    in_flight: 2,
                    delayed: 3,
                    oldest: OldestMessage::Dashboard,
                },
                QueueStatus {
                    queue: "events-dlq".into(),
                    visible: 4,
                    in_flight: 0,
                    delayed: 0,
                    oldest: OldestMessage::Peeked {
                        messages: 4,
                        sent_at: Some(at("2026-11-25T17:05:45.123Z")),
                        age_seconds: Some(187_200),
                    },
                },
            ],
            parked_retries: ParkedRetriesStatus {
                parked: 2,
                overdue: 1,
                most_overdue_due_at: Some(at("2026-11-27T20:55:45.123Z")),
                most_overdue_seconds: Some(600),
            },
            unhealthy_endpoints: vec![UnhealthyEndpoint {
                merchant_id: "m_1".into(),
                subscription_id: "sub_1".into(),
                endpoint: "https://merchant.example".into(),
                status: HealthStatus::Failing,
                since: Some(at("2026-11-27T20:00:00Z")),
                consecutive_failures: 3,
                last_error: Some("503".into()),
                disabled_reason: None,
            }],
            most_failed_merchants: vec![MerchantFailures {
                merchant_id: "m_1".into(),
                name: "Acme".into(),
                failed: 3,
                attempts: 4,
            }],
        };
        let text = status.to_string();
        for line in [
            "status at 2026-11-27T21:05:45.123Z",
            "events                  1          2        3  not peeked (dashboard: Oldest message age)",
            "events-dlq              4          0        0  2d 4h (oldest of 4 peeked)",
            "parked retries: 2 in the due-time index, 1 overdue; the most overdue was due \
             2026-11-27T20:55:45.123Z (10m 0s ago)",
            "failing or disabled endpoints: 1",
            "3 failures in a row, last error 503",
            "most failed attempts in the last hour (top 10):",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["queues"][0]["oldest"], serde_json::json!({"source": "dashboard"}));
        assert_eq!(
            json["queues"][1]["oldest"],
            serde_json::json!({"source": "peeked", "messages": 4, "sentAt": "2026-11-25T17:05:45.123Z", "ageSeconds": 187_200})
        );
        assert_eq!(json["queues"][0]["inFlight"], 2);
        assert_eq!(json["parkedRetries"]["mostOverdueSeconds"], 600);
        assert_eq!(json["unhealthyEndpoints"][0]["status"], "failing");
        assert_eq!(json["unhealthyEndpoints"][0]["lastError"], "503");
        assert_eq!(json["mostFailedMerchants"][0]["failed"], 3);

        let quiet = Status {
            unhealthy_endpoints: vec![],
            most_failed_merchants: vec![],
            ..status
        };
        let text = quiet.to_string();
        assert!(text.contains("failing or disabled endpoints: none"), "{text}");
        assert!(text.contains("failed attempts in the last hour: none"), "{text}");
    }
}
