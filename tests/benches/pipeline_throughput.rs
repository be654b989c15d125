//! Pipeline throughput, for docs/benchmarks.md (not a test).
//!
//! - deliver: 1,000 tasks in batches of 10 to a loopback receiver (Node, in its own process)
//!   answering 200, on the embedded backend; deliveries per second, and this process's CPU
//!   time per delivery (signing, HTTP client, store writes: the receiver's CPU is not counted);
//! - ingest: one event fanned out to 1,000 subscriptions.
//!
//! Run with `cargo bench -p webhooks-tests --bench pipeline_throughput`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::{DeliveryTask, SystemClock, UrlPolicy};
use webhooks_ingest::Ingest;
use webhooks_runtime::{QueueRecord, sqs_event};
use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
use webhooks_storage::{QueueReceiver, SubscriptionStore};
use webhooks_tests::fixtures::{event, event_message, secrets, subscription};
use webhooks_tests::verifiers::verifiers_dir;

const TASKS: usize = 1_000;
const SUBSCRIPTIONS: usize = 1_000;
const MERCHANT: &str = "m_bench";
const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};

/// User + system CPU time of this process, from /proc (10 ms resolution).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[tokio::main]
async fn main() {
    let mut receiver = Command::new("node")
        .arg(verifiers_dir().join("receiver.js"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the node receiver");
    let mut port = String::new();
    BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let url = format!("http://127.0.0.1:{}/hook", port.trim());

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("bench.sqlite3")).unwrap();
    let deliveries = store.queue(
        "deliveries",
        QueueSettings {
            dlq: Some("deliveries-dlq".into()),
            max_receive_count: 5,
        },
    );
    let events = store.queue(
        "events",
        QueueSettings {
            dlq: Some("events-dlq".into()),
            max_receive_count: 5,
        },
    );
    store
        .create_subscription(&subscription(MERCHANT, "sub_target", &url), &secrets())
        .await
        .unwrap();

    let config = DeliverConfig {
        retry_schedule: "5s".parse().unwrap(),
        timeout: Duration::from_secs(10),
        ..DeliverConfig::default()
    };
    let deliver = Deliver::new(
        store.clone(),
        deliveries.clone(),
        http_client(&LOOPBACK),
        config,
        Arc::new(SystemClock),
    );
    let bodies: Vec<String> = (0..TASKS)
        .map(|i| DeliveryTask::first(event(MERCHANT, &format!("evt_{i}")), "sub_target".into()).to_message_body())
        .collect();
    // Warm up the connection pool and the store.
    let warm = sqs_event(
        "arn:aws:sqs:us-east-1:1:deliveries",
        [QueueRecord {
            message_id: "w",
            receipt_handle: "w",
            body: &bodies[0],
            receive_count: 1,
            sent_at_ms: 0,
        }],
    );
    deliver.handle_batch(warm).await.unwrap();

    let (cpu_before, started) = (cpu_time(), Instant::now());
    for (batch_index, batch) in bodies.chunks(10).enumerate() {
        let ids: Vec<String> = (0..batch.len()).map(|i| format!("m{batch_index}-{i}")).collect();
        let event = sqs_event(
            "arn:aws:sqs:us-east-1:1:deliveries",
            batch.iter().zip(&ids).map(|(body, id)| QueueRecord {
                message_id: id,
                receipt_handle: id,
                body,
                receive_count: 1,
                sent_at_ms: 0,
            }),
        );
        let response = deliver.handle_batch(event).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    let (elapsed, cpu) = (started.elapsed(), cpu_time() - cpu_before);
    println!(
        "deliver: {TASKS} tasks in batches of 10, one batch at a time: {:.0} deliveries/s, {:.0} µs wall and {:.0} µs CPU per delivery",
        TASKS as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / TASKS as f64,
        cpu.as_micros() as f64 / TASKS as f64,
    );

    for i in 0..SUBSCRIPTIONS {
        store
            .create_subscription(&subscription(MERCHANT, &format!("sub_{i:04}"), &url), &secrets())
            .await
            .unwrap();
    }
    let ingest = Ingest::new(store.clone(), deliveries.clone(), events, Arc::new(SystemClock));
    let message = event_message(&event(MERCHANT, "evt_fan"));
    let before = deliveries.approximate_len().await.unwrap();
    let (cpu_before, started) = (cpu_time(), Instant::now());
    let event = sqs_event(
        "arn:aws:sqs:us-east-1:1:events",
        [QueueRecord {
            message_id: "e1",
            receipt_handle: "e1",
            body: &message,
            receive_count: 1,
            sent_at_ms: 0,
        }],
    );
    assert!(ingest.handle_batch(event).await.unwrap().batch_item_failures.is_empty());
    let (elapsed, cpu) = (started.elapsed(), cpu_time() - cpu_before);
    let fanned = deliveries.approximate_len().await.unwrap() - before;
    println!(
        "ingest: 1 event to {fanned} subscriptions in {:.1} ms ({:.0} tasks/s), {:.1} ms CPU",
        elapsed.as_secs_f64() * 1000.0,
        fanned as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0
    );
    let _ = receiver.kill();
    let _ = receiver.wait();
}
