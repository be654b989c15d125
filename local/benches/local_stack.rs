//! The local stack under load, for docs/benchmarks.md (a bench, not a test).
//!
//! Each scenario starts a fresh `webhooks-local` (release build, embedded backend, logs at
//! `warn`), a loopback receiver in this process answering 200, and publishes through
//! `POST /local/events`:
//!
//! - 10,000 events to 1 subscription, as fast as 32 concurrent publishers go;
//! - 100 events to 100 subscriptions each (10,000 deliveries);
//! - a steady 500 events/s for 20 s to 1 subscription;
//! - next to them, the raw capacity: the same generator posting webhook-sized bodies
//!   straight to the receiver.
//!
//! Reported: deliveries/s, publish-to-receipt latency p50/p95/p99/max, and the stack's peak
//! RSS. Run with `cargo bench -p webhooks-local --bench local_stack`.

#[path = "../tests/e2e/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::json;
use tokio::sync::Semaphore;

use harness::Stack;

const PUBLISHERS: usize = 32;

/// First arrival of each (subscription path, webhook-id).
#[derive(Default)]
struct Arrivals {
    first: Mutex<HashMap<(String, String), Instant>>,
}

async fn receive(State(arrivals): State<Arc<Arrivals>>, Path(path): Path<String>, headers: HeaderMap) -> &'static str {
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    arrivals
        .first
        .lock()
        .unwrap()
        .entry((path, id))
        .or_insert_with(Instant::now);
    "ok"
}

async fn start_receiver() -> (String, Arc<Arrivals>) {
    let arrivals = Arc::new(Arrivals::default());
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(name: &str, deliveries: usize, elapsed: Duration, mut latencies: Vec<Duration>, rss_mb: Option<f64>) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: {deliveries} deliveries in {:.2} s = {:.0}/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms{}",
        elapsed.as_secs_f64(),
        deliveries as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.95)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap()),
        rss_mb
            .map(|mb| format!("; stack peak RSS {mb:.1} MB"))
            .unwrap_or_default(),
    );
}

/// Runs one scenario: `subscriptions` subscriptions, `events` events published at
/// `rate` per second (None: as fast as the publishers go).
async fn scenario(name: &str, subscriptions: usize, events: usize, rate: Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[("RUST_LOG", "warn")], &[]);
    let (receiver, arrivals) = start_receiver().await;
    for i in 0..subscriptions {
        stack.subscribe(&format!("{receiver}/sub{i}"), &[]).await;
    }
    let stack = Arc::new(stack);
    let published: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let gate = Arc::new(Semaphore::new(PUBLISHERS));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..events {
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        }
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (stack, published) = (stack.clone(), published.clone());
        tasks.push(tokio::spawn(async move {
            let at = Instant::now();
            let event = json!({"merchantId": stack.merchant_id, "eventName": "crypto_delivered", "orderId": format!("order-{i}")});
            let id = stack.publish(event).await;
            published.lock().unwrap().push((id, at));
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let expected = events * subscriptions;
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrivals.first.lock().unwrap().len() < expected {
        assert!(
            Instant::now() < deadline,
            "{name}: only {} of {expected} arrived",
            arrivals.first.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_mb = stack.peak_rss_mb();
    let published: HashMap<String, Instant> = published.lock().unwrap().iter().cloned().collect();
    let arrived = arrivals.first.lock().unwrap();
    let latencies: Vec<Duration> = arrived
        .iter()
        .map(|((_, id), at)| at.duration_since(published[id]))
        .collect();
    let last = arrived.values().max().unwrap();
    report(name, expected, last.duration_since(started), latencies, rss_mb);
}

/// The same generator straight to the receiver: what the machine does without the stack.
async fn raw_capacity(name: &str, requests: usize, rate: Option<f64>) {
    let (receiver, arrivals) = start_receiver().await;
    let client = reqwest::Client::new();
    let body = r#"{"eventName":"crypto_delivered","orderId":"5a3288ea-0bd4-44d2-af11-aae1f88bbd61","timeStamp":"2022-10-26T22:36:41.658Z","signature":"d9e424d4a7b6e6ab2d43b17b62d1032183d19053e4c552981dd8e139962ed4da"}"#;
    let gate = Arc::new(Semaphore::new(PUBLISHERS));
    let started = Instant::now();
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..requests {
        if let Some(rate) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
        }
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (client, url, sent) = (client.clone(), format!("{receiver}/raw"), sent.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("raw-{i}");
            sent.lock().unwrap().insert(id.clone(), Instant::now());
            client
                .post(url)
                .header("webhook-id", &id)
                .body(body)
                .send()
                .await
                .unwrap();
            drop(permit);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sent = sent.lock().unwrap();
    let arrived = arrivals.first.lock().unwrap();
    let latencies: Vec<Duration> = arrived
        .iter()
        .map(|((_, id), at)| at.duration_since(sent[id]))
        .collect();
    let last = arrived.values().max().unwrap();
    report(name, requests, last.duration_since(started), latencies, None);
}

#[tokio::main]
async fn main() {
    scenario("10,000 events x 1 subscription", 1, 10_000, None).await;
    raw_capacity("raw: 10,000 posts straight to the receiver", 10_000, None).await;
    scenario("100 events x 100 subscriptions", 100, 100, None).await;
    scenario("steady 500 events/s for 20 s x 1 subscription", 1, 10_000, Some(500.0)).await;
    raw_capacity(
        "raw: steady 500 posts/s for 20 s straight to the receiver",
        10_000,
        Some(500.0),
    )
    .await;
}
