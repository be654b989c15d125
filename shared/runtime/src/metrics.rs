//! The platform's metrics, through the `metrics` facade: every name, unit and label is
//! written here once (docs/operations.md lists them), and the functions record through the
//! helpers below. In Lambda they become CloudWatch Embedded Metric Format lines on stdout,
//! flushed after each invocation ([`install_emf`], [`flush_emf`]); the local stack serves
//! them as Prometheus text at `GET /metrics` ([`install_prometheus`]).
//!
//! Labels are bounded: outcomes, event names, reason codes, route templates and status
//! codes; never a merchant, a URL or an id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_cloudwatch_embedded::Collector;
use metrics_exporter_prometheus::PrometheusBuilder;
pub use metrics_exporter_prometheus::PrometheusHandle;
use webhooks_domain::EventName;

/// Delivery tasks handled, by `outcome` and `event_name`.
pub const DELIVERIES: &str = "deliveries";
/// One webhook request, connect to last byte, by `outcome` (`success`, `failure`).
pub const ATTEMPT_LATENCY: &str = "attempt_latency";
/// Retries due in more than 15 minutes, parked in the due-time index.
pub const RETRIES_PARKED: &str = "retries_parked";
/// Parked retries the scheduler sent to the deliveries queue.
pub const RETRIES_RELEASED: &str = "retries_released";
/// How overdue the most overdue parked retry was at the scheduler's last run, in seconds.
pub const OLDEST_PARKED_RETRY_AGE: &str = "oldest_parked_retry_age";
/// Endpoints that became failing.
pub const ENDPOINTS_FAILING: &str = "endpoints_failing";
/// Subscriptions disabled after failing too long.
pub const ENDPOINTS_DISABLED: &str = "endpoints_disabled";
/// Auth-callback decisions, by `decision` and `reason`.
pub const AUTH_DECISIONS: &str = "auth_decisions";
/// One auth-callback decision, as the platform service waits for it.
pub const AUTH_LATENCY: &str = "auth_latency";
/// Events recorded and fanned out, by `event_name`.
pub const EVENTS_INGESTED: &str = "events_ingested";
/// Events already recorded (a redelivery, or a producer sending twice).
pub const EVENTS_DUPLICATE: &str = "events_duplicate";
/// Events refused as malformed, by `reason`.
pub const EVENTS_MALFORMED: &str = "events_malformed";
/// Merchant API requests, by `route` and `status`.
pub const API_REQUESTS: &str = "api_requests";
/// Merchant API request handling, by `route`.
pub const API_LATENCY: &str = "api_latency";

/// How a metric is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Added up.
    Counter,
    /// The last value.
    Gauge,
    /// Every value (latencies).
    Histogram,
}

/// Every metric: name, kind, unit, what it measures (docs/operations.md, section 1).
pub const ALL: [(&str, Kind, Unit, &str); 14] = [
    (
        DELIVERIES,
        Kind::Counter,
        Unit::Count,
        "delivery tasks handled, by outcome and event name",
    ),
    (
        ATTEMPT_LATENCY,
        Kind::Histogram,
        Unit::Milliseconds,
        "one webhook request, connect to last byte",
    ),
    (
        RETRIES_PARKED,
        Kind::Counter,
        Unit::Count,
        "retries parked in the due-time index",
    ),
    (
        RETRIES_RELEASED,
        Kind::Counter,
        Unit::Count,
        "parked retries sent to the deliveries queue",
    ),
    (
        OLDEST_PARKED_RETRY_AGE,
        Kind::Gauge,
        Unit::Seconds,
        "how overdue the most overdue parked retry was",
    ),
    (
        ENDPOINTS_FAILING,
        Kind::Counter,
        Unit::Count,
        "endpoints that became failing",
    ),
    (
        ENDPOINTS_DISABLED,
        Kind::Counter,
        Unit::Count,
        "subscriptions disabled after failing too long",
    ),
    (
        AUTH_DECISIONS,
        Kind::Counter,
        Unit::Count,
        "auth-callback decisions, by decision and reason",
    ),
    (
        AUTH_LATENCY,
        Kind::Histogram,
        Unit::Milliseconds,
        "one auth-callback decision",
    ),
    (
        EVENTS_INGESTED,
        Kind::Counter,
        Unit::Count,
        "events recorded and fanned out, by event name",
    ),
    (EVENTS_DUPLICATE, Kind::Counter, Unit::Count, "events already recorded"),
    (
        EVENTS_MALFORMED,
        Kind::Counter,
        Unit::Count,
        "events refused as malformed, by reason",
    ),
    (
        API_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "merchant API requests, by route and status",
    ),
    (
        API_LATENCY,
        Kind::Histogram,
        Unit::Milliseconds,
        "merchant API request handling, by route",
    ),
];

/// What became of a delivery task, as the `outcome` label of [`DELIVERIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The merchant answered 2xx.
    Delivered,
    /// The attempt failed; a retry is scheduled.
    RetryScheduled,
    /// The last attempt (or a manual one) failed.
    Failed,
    /// Held back by the circuit breaker, or kept for a disabled endpoint.
    Held,
    /// Held back by the subscription's rate limit.
    RateLimited,
    /// The subscription is gone or disabled by its merchant.
    Skipped,
}

impl DeliveryOutcome {
    fn label(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::RetryScheduled => "retry_scheduled",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Held => "held",
            DeliveryOutcome::RateLimited => "rate_limited",
            DeliveryOutcome::Skipped => "skipped",
        }
    }
}

/// Counts a delivery task's outcome.
pub fn delivery(outcome: DeliveryOutcome, event_name: EventName) {
    counter!(DELIVERIES, "outcome" => outcome.label(), "event_name" => event_name.as_str()).increment(1);
}

/// Records one webhook request's latency.
pub fn attempt_latency(succeeded: bool, latency: Duration) {
    let outcome = if succeeded { "success" } else { "failure" };
    histogram!(ATTEMPT_LATENCY, "outcome" => outcome).record(millis(latency));
}

/// Counts one unlabelled event (`RETRIES_PARKED`, `ENDPOINTS_FAILING`, ...) `n` times.
pub fn count(name: &'static str, n: u64) {
    counter!(name).increment(n);
}

/// Sets an unlabelled gauge to a span, in seconds.
pub fn gauge_seconds(name: &'static str, span: Duration) {
    gauge!(name).set(span.as_secs_f64());
}

/// Counts an auth-callback decision and records how long it took.
pub fn auth_decision(allowed: bool, reason: String, latency: Duration) {
    let decision = if allowed { "allow" } else { "deny" };
    counter!(AUTH_DECISIONS, "decision" => decision, "reason" => reason).increment(1);
    histogram!(AUTH_LATENCY).record(millis(latency));
}

/// Counts an event ingested.
pub fn event_ingested(event_name: EventName) {
    counter!(EVENTS_INGESTED, "event_name" => event_name.as_str()).increment(1);
}

/// Counts an event refused as malformed, by its error code.
pub fn event_malformed(reason: &'static str) {
    counter!(EVENTS_MALFORMED, "reason" => reason).increment(1);
}

/// Counts a merchant API request (`route` is its template, e.g. `/v1/subscriptions/{id}`)
/// and records how long it took.
pub fn api_request(route: &str, status: u16, latency: Duration) {
    let route = route.to_owned();
    counter!(API_REQUESTS, "route" => route.clone(), "status" => status.to_string()).increment(1);
    histogram!(API_LATENCY, "route" => route).record(millis(latency));
}

fn millis(span: Duration) -> f64 {
    span.as_secs_f64() * 1000.0
}

fn describe() {
    for (name, kind, unit, description) in ALL {
        match kind {
            Kind::Counter => describe_counter!(name, unit, description),
            Kind::Gauge => describe_gauge!(name, unit, description),
            Kind::Histogram => describe_histogram!(name, unit, description),
        }
    }
}

static EMF: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF recorder with `namespace` (Lambda). Metrics accumulate until
/// [`flush_emf`]. Does nothing if a recorder is installed already.
pub fn install_emf(namespace: &str) {
    let built = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .init();
    match built {
        Ok(collector) => {
            let _ = EMF.set(collector);
            describe();
        }
        Err(error) => tracing::warn!(%error, "metrics recorder not installed"),
    }
}

/// Writes the metrics recorded since the last flush as EMF lines on stdout, where Lambda's
/// log carries them to CloudWatch: after each invocation. Nothing without [`install_emf`].
pub fn flush_emf() {
    if let Some(collector) = EMF.get()
        && let Err(error) = collector.flush(std::io::stdout().lock())
    {
        tracing::warn!(%error, "metrics not written");
    }
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (the local stack), once per process, and returns the
/// handle that renders the text format for `GET /metrics`. Should another recorder be
/// installed already, the handle renders nothing (logged).
pub fn install_prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => describe(),
                Err(error) => tracing::warn!(%error, "metrics recorder not installed"),
            }
            handle
        })
        .clone()
}
