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
//!   straight to the receiver;
//! - then the first two again with Node at both ends (`tests/verifiers/loadgen.js`, 32
//!   closed-loop senders with keep-alive, and `tests/verifiers/receiver.js`), next to that
//!   generator's raw rate straight to that receiver, in the same run.
//!
//! Reported: deliveries/s, publish-to-receipt latency p50/p95/p99/max, and the stack's peak
//! RSS; for the Node runs, deliveries/s and the share of the raw rate. Run with
//! `cargo bench -p webhooks-local --bench local_stack` (`npm ci --prefix tests/verifiers`
//! first, as `scripts/test` does); `-- fanout` (or `one`, `steady`, `node-one`,
//! `node-fanout`, several at once) runs only those.

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

/// What the stack used for a scenario: its peak RSS, and its CPU time per delivery.
#[derive(Clone, Copy)]
struct StackUse {
    peak_rss_mb: Option<f64>,
    cpu_us_per_delivery: Option<f64>,
}

impl std::fmt::Display for StackUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(mb) = self.peak_rss_mb {
            write!(f, "; stack peak RSS {mb:.1} MB")?;
        }
        if let Some(us) = self.cpu_us_per_delivery {
            write!(f, "; stack CPU {us:.0} µs per delivery")?;
        }
        Ok(())
    }
}

/// CPU milliseconds spread over `count` requests, in µs each.
fn us_each(cpu_ms: f64, count: usize) -> f64 {
    cpu_ms * 1000.0 / count as f64
}

/// The stack's CPU time since `cpu_ms_before` over `deliveries`, and its peak RSS.
fn stack_use(stack: &Stack, cpu_ms_before: Option<f64>, deliveries: usize) -> StackUse {
    let cpu_ms = stack.cpu_ms().zip(cpu_ms_before).map(|(after, before)| after - before);
    StackUse {
        peak_rss_mb: stack.peak_rss_mb(),
        cpu_us_per_delivery: cpu_ms.map(|ms| us_each(ms, deliveries)),
    }
}

fn report(name: &str, deliveries: usize, elapsed: Duration, mut latencies: Vec<Duration>, used: Option<StackUse>) {
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
        used.map(|used| used.to_string()).unwrap_or_default(),
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
    let cpu_ms_before = stack.cpu_ms();
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
    let used = stack_use(&stack, cpu_ms_before, expected);
    let published: HashMap<String, Instant> = published.lock().unwrap().iter().cloned().collect();
    let arrived = arrivals.first.lock().unwrap();
    let latencies: Vec<Duration> = arrived
        .iter()
        .map(|((_, id), at)| at.duration_since(published[id]))
        .collect();
    let last = arrived.values().max().unwrap();
    report(name, expected, last.duration_since(started), latencies, Some(used));
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

/// The Node receiver of `tests/verifiers`, on a port of its own; killed when dropped.
struct NodeReceiver {
    child: std::process::Child,
    url: String,
}

impl NodeReceiver {
    fn start() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("node")
            .arg(verifiers_dir().join("receiver.js"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node runs tests/verifiers/receiver.js");
        let mut port = String::new();
        let stdout = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(stdout).read_line(&mut port).expect("its port");
        let url = format!("http://127.0.0.1:{}", port.trim());
        Self { child, url }
    }

    /// How many webhooks arrived, when the last did (unix ms), and the receiver's CPU time
    /// meanwhile (ms), since it started or was last reset.
    async fn stats(&self) -> (usize, i64, f64) {
        let stats: serde_json::Value = reqwest::get(format!("{}/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            stats["received"].as_u64().unwrap() as usize,
            stats["lastAt"].as_i64().unwrap_or(0),
            stats["cpuMs"].as_f64().unwrap(),
        )
    }

    async fn reset(&self) {
        reqwest::Client::new()
            .delete(format!("{}/stats", self.url))
            .send()
            .await
            .unwrap();
    }
}

impl Drop for NodeReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verifiers_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/verifiers")
}

/// Runs the Node generator: `requests` POSTs to `url`; its JSON report.
async fn node_loadgen(url: String, requests: usize, extra: Vec<String>) -> serde_json::Value {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(verifiers_dir().join("loadgen.js"))
            .arg(url)
            .arg(requests.to_string())
            .args(extra)
            .output()
            .expect("node runs tests/verifiers/loadgen.js")
    })
    .await
    .unwrap();
    serde_json::from_slice(&output.stdout).expect("the generator's report")
}

/// Node at both ends: the generator's raw rate straight to the receiver, then `events`
/// events to `subscriptions` subscriptions through the stack, in one run; with the CPU time
/// each process used per request (the generator's per event published).
async fn node_comparison(name: &str, subscriptions: usize, events: usize) {
    const RAW_REQUESTS: usize = 20_000;
    let receiver = NodeReceiver::start();
    receiver.reset().await;
    let raw = node_loadgen(format!("{}/raw", receiver.url), RAW_REQUESTS, Vec::new()).await;
    assert_eq!(raw["failed"], 0, "{raw}");
    let raw_rate = raw["perSecond"].as_f64().unwrap();
    let (_, _, raw_receiver_cpu_ms) = receiver.stats().await;
    println!(
        "node: raw CPU per request: generator {:.0} µs, receiver {:.0} µs",
        us_each(raw["cpuMs"].as_f64().unwrap(), RAW_REQUESTS),
        us_each(raw_receiver_cpu_ms, RAW_REQUESTS),
    );
    receiver.reset().await;

    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(dir.path(), &[("RUST_LOG", "warn")], &[]);
    for i in 0..subscriptions {
        stack.subscribe(&format!("{}/sub{i}", receiver.url), &[]).await;
    }
    let extra = vec![
        "--bearer".to_owned(),
        stack.api_key.clone(),
        "--merchant".to_owned(),
        stack.merchant_id.clone(),
    ];
    let cpu_ms_before = stack.cpu_ms();
    let sent = node_loadgen(format!("{}/local/events", stack.url), events, extra).await;
    assert_eq!(sent["failed"], 0, "{sent}");
    let expected = events * subscriptions;
    let deadline = Instant::now() + Duration::from_secs(300);
    let (last_at, receiver_cpu_ms) = loop {
        let (received, last_at, cpu_ms) = receiver.stats().await;
        if received >= expected {
            assert_eq!(received, expected, "{name}: each webhook once");
            break (last_at, cpu_ms);
        }
        assert!(
            Instant::now() < deadline,
            "{name}: only {received} of {expected} arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = (last_at - sent["startedAt"].as_i64().unwrap()) as f64 / 1000.0;
    let rate = expected as f64 / seconds;
    let used = stack_use(&stack, cpu_ms_before, expected);
    println!(
        "node: {name}: {expected} deliveries in {seconds:.2} s = {rate:.0}/s; the generator straight to the receiver: {raw_rate:.0}/s; {:.0} % of it{used}; CPU: generator {:.0} µs per event published, receiver {:.0} µs per webhook",
        100.0 * rate / raw_rate,
        us_each(sent["cpuMs"].as_f64().unwrap(), events),
        us_each(receiver_cpu_ms, expected),
    );
}

/// The scenarios the bench knows, by the names that choose them.
const SCENARIOS: [&str; 5] = ["one", "fanout", "steady", "node-one", "node-fanout"];

/// The scenarios to run: each argument that is not a flag names one of [`SCENARIOS`]; none
/// runs them all. An unknown name stops the bench rather than run nothing.
fn chosen_scenarios() -> Vec<String> {
    let chosen: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    for name in &chosen {
        assert!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name:?}: choose from {SCENARIOS:?}"
        );
    }
    chosen
}

#[tokio::main]
async fn main() {
    let chosen = chosen_scenarios();
    let runs = |name: &str| chosen.is_empty() || chosen.iter().any(|c| c == name);
    if runs("one") {
        scenario("10,000 events x 1 subscription", 1, 10_000, None).await;
        raw_capacity("raw: 10,000 posts straight to the receiver", 10_000, None).await;
    }
    if runs("fanout") {
        scenario("100 events x 100 subscriptions", 100, 100, None).await;
    }
    if runs("steady") {
        scenario("steady 500 events/s for 20 s x 1 subscription", 1, 10_000, Some(500.0)).await;
        raw_capacity(
            "raw: steady 500 posts/s for 20 s straight to the receiver",
            10_000,
            Some(500.0),
        )
        .await;
    }
    if runs("node-one") {
        node_comparison("10,000 events x 1 subscription", 1, 10_000).await;
    }
    if runs("node-fanout") {
        node_comparison("100 events x 100 subscriptions", 100, 100).await;
    }
}
