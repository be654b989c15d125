//! A merchant that is down with thousands of pending deliveries must not hold up the other
//! merchants, nor fill the deliveries queue's in-flight quota: a message is in flight only
//! while its attempt runs (its retries wait as delayed messages or in the due-time index).
//!
//! Prints the healthy merchant's publish-to-receipt latency with and without the outage
//! (figures, not assertions: tests never assert on time) and asserts the in-flight count.
//! The down merchant has 10,000 deliveries on the embedded backend and 500 on the DynamoDB
//! and SQS adapters against moto (what moto serves in reasonable time); `OUTAGE_PENDING`
//! overrides both.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::json;
use webhooks_storage::aws::{ResourceNames, sdk_config_for_endpoint};
use webhooks_tests::merchant::refused_url;
use webhooks_tests::moto::MotoServer;

use crate::harness::Stack;

/// The pace of the healthy merchant's events.
const HEALTHY_INTERVAL: Duration = Duration::from_millis(50);
/// How often one event is sent before the test gives up on it.
const PUBLISH_TRIES: usize = 20;
/// The most messages the local stack's deliver pollers hold in flight: each a batch of
/// up to 10 in hand, and its last batch while that is being deleted.
const BATCHES_IN_HAND: usize = webhooks_local::DELIVER_POLLERS * 10 * 2;
/// How often the in-flight count is read from the store file.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// A merchant that answers 200 and notes when each webhook (by `webhook-id`) arrived.
pub(crate) struct LatencyReceiver {
    /// Where it listens.
    pub(crate) url: String,
    arrivals: Arc<Mutex<HashMap<String, Instant>>>,
}

impl LatencyReceiver {
    /// Starts it on a free loopback port.
    pub(crate) async fn start() -> Self {
        let arrivals: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let noted = arrivals.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap| {
                let noted = noted.clone();
                async move {
                    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                        noted.lock().unwrap().entry(id.to_owned()).or_insert_with(Instant::now);
                    }
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, arrivals }
    }

    /// When the webhook of `event_id` first arrived.
    pub(crate) fn arrived(&self, event_id: &str) -> Option<Instant> {
        self.arrivals.lock().unwrap().get(event_id).copied()
    }
}

fn event(merchant_id: &str, name: &str, order: &str) -> serde_json::Value {
    json!({"merchantId": merchant_id, "eventName": name, "orderId": order, "timeStamp": "2026-11-27T00:00:00.000Z"})
}

/// Publishes one event straight to `/local/events`, sending it again after a 503 (the
/// store or queue was too slow: what a platform service does); its id.
async fn publish(client: &reqwest::Client, stack_url: &str, event: &serde_json::Value) -> String {
    for _ in 0..PUBLISH_TRIES {
        let response = client
            .post(format!("{stack_url}/local/events"))
            .json(event)
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().await.unwrap();
        return body["eventId"].as_str().unwrap().to_owned();
    }
    panic!("{PUBLISH_TRIES} publishes of {event} were refused");
}

/// Publishes the healthy merchant's events at a steady rate and waits for each; the
/// publish-to-receipt latencies, sorted.
async fn healthy_latencies(stack: &Stack, receiver: &LatencyReceiver, load: &Load, phase: &str) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut published = Vec::with_capacity(load.healthy);
    let mut tick = tokio::time::interval(HEALTHY_INTERVAL);
    for n in 0..load.healthy {
        tick.tick().await;
        let at = Instant::now();
        let id = publish(
            &client,
            &stack.url,
            &event(&stack.merchant_id, "crypto_delivered", &format!("{phase}-{n}")),
        )
        .await;
        published.push((id, at));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latencies = Vec::with_capacity(load.healthy);
    for (id, at) in &published {
        loop {
            if let Some(arrived) = receiver.arrived(id) {
                latencies.push(arrived - *at);
                break;
            }
            assert!(Instant::now() < deadline, "the healthy merchant never got {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Where the deliveries queue's in-flight count is read.
enum InFlightProbe {
    /// The embedded store's file, as a second reader (WAL): received, not deleted, still hidden.
    Sqlite(std::sync::Mutex<rusqlite::Connection>),
    /// SQS's `ApproximateNumberOfMessagesNotVisible` of the deliveries queue.
    Sqs(aws_sdk_sqs::Client, String),
}

impl InFlightProbe {
    fn sqlite(path: &Path) -> Self {
        let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        Self::Sqlite(std::sync::Mutex::new(db))
    }

    async fn sqs(endpoint: &str) -> Self {
        let client = aws_sdk_sqs::Client::new(&sdk_config_for_endpoint(endpoint));
        let url = client
            .get_queue_url()
            .queue_name(ResourceNames::with_prefix(RESOURCE_PREFIX).deliveries_queue)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self::Sqs(client, url)
    }

    /// The count now, if it could be read.
    async fn in_flight(&self) -> Option<usize> {
        match self {
            Self::Sqlite(db) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let sql = "SELECT COUNT(*) FROM messages \
                           WHERE queue = 'deliveries' AND receipt IS NOT NULL AND visible_at_ms > ?1";
                let db = db.lock().unwrap();
                Some(db.query_row(sql, [now], |row| row.get::<_, i64>(0)).unwrap() as usize)
            }
            Self::Sqs(client, url) => {
                let name = QueueAttributeName::ApproximateNumberOfMessagesNotVisible;
                // A read moto is too busy to answer in time is skipped, not counted as zero.
                let answer = client
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(name.clone());
                let attributes = answer.send().await.ok()?.attributes.unwrap_or_default();
                attributes.get(&name).and_then(|n| n.parse().ok())
            }
        }
    }
}

/// The resource prefix the local stack uses by default.
const RESOURCE_PREFIX: &str = "webhooks-local";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_down_with_thousands_of_pending_deliveries_does_not_hold_up_a_healthy_one() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[], &[]);
    let probe = InFlightProbe::sqlite(&dir.path().join("store.sqlite3"));
    let load = Load {
        pending: pending_or(10_000),
        publishers: 16,
        healthy: 200,
    };
    outage(&stack, probe, &load, "embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_aws_adapters_a_down_merchant_does_not_hold_up_a_healthy_one() {
    let moto = MotoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start_on_moto(dir.path(), moto.endpoint());
    let probe = InFlightProbe::sqs(moto.endpoint()).await;
    // moto serves one request at a time, some 10 of them per webhook: a load it serves in
    // reasonable time, with calls inside the SDK's timeouts.
    let load = Load {
        pending: pending_or(100),
        publishers: 2,
        healthy: 40,
    };
    outage(&stack, probe, &load, "aws adapters on moto").await;
}

fn pending_or(default: usize) -> usize {
    std::env::var("OUTAGE_PENDING")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// How hard an outage run pushes.
struct Load {
    /// Deliveries to the down merchant.
    pending: usize,
    /// Concurrent publishers of them.
    publishers: usize,
    /// The healthy merchant's events in each phase.
    healthy: usize,
}

/// The outage on `stack`: the healthy merchant alone, then beside the down merchant's
/// deliveries; prints the figures and asserts the in-flight count `probe` reads.
async fn outage(stack: &Stack, probe: InFlightProbe, load: &Load, backend: &str) {
    let Load {
        pending, publishers, ..
    } = *load;
    let receiver = LatencyReceiver::start().await;
    stack.subscribe(&refused_url(), &["payment_received"]).await;
    stack.subscribe(&receiver.url, &["crypto_delivered"]).await;

    let baseline = healthy_latencies(stack, &receiver, load, "baseline").await;

    // The outage: the down merchant's deliveries published as fast as the stack takes them.
    let flood_started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for publisher in 0..publishers {
        let (url, merchant_id) = (stack.url.clone(), stack.merchant_id.clone());
        flood.spawn(async move {
            let client = reqwest::Client::new();
            for n in (publisher..pending).step_by(publishers) {
                publish(
                    &client,
                    &url,
                    &event(&merchant_id, "payment_received", &format!("down-{n}")),
                )
                .await;
            }
        });
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut most, mut reads) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(count) = probe.in_flight().await {
                    most = most.max(count);
                    reads += 1;
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            (most, reads)
        })
    };
    let during = healthy_latencies(stack, &receiver, load, "outage").await;
    while flood.join_next().await.is_some() {}
    let flood_took = flood_started.elapsed();
    // The first attempts and their 5 s retries run while the flood drains.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most_in_flight, reads) = sampler.await.unwrap();
    assert!(reads > 0, "the in-flight count was never read");

    println!("outage ({backend}): {pending} deliveries to a down merchant published in {flood_took:.1?}");
    println!(
        "healthy merchant, publish to receipt ({} events at {}/s): without the outage p50 {:.1?} p99 {:.1?}; during it p50 {:.1?} p99 {:.1?}",
        load.healthy,
        1000 / HEALTHY_INTERVAL.as_millis(),
        percentile(&baseline, 0.5),
        percentile(&baseline, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
    );
    println!(
        "deliveries queue in flight during the outage: at most {most_in_flight} (batches in hand: {BATCHES_IN_HAND})"
    );
    assert!(
        most_in_flight <= BATCHES_IN_HAND,
        "{most_in_flight} in flight: messages wait in flight beyond the batches in hand"
    );
}
