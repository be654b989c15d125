//! A failing endpoint sent a burst of deliveries, for docs/reliability.md (not a test):
//! the most requests it saw at once, how many deliveries were held, and what the AWS
//! requests of one held-back delivery are (counted by the quota layer on moto), and of
//! releasing them when a probe succeeds.
//!
//! Run with `cargo bench -p webhooks-tests --bench failing_endpoint`
//! (`FAILING_DELIVERIES`, default 10,000 on the embedded backend; 1,000 on moto).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use webhooks_deliver::{Deliver, DeliverConfig, TaskOutcome, http_client};
use webhooks_domain::{DeliveryTask, SystemClock, UrlPolicy};
use webhooks_storage::SubscriptionStore;
use webhooks_tests::backends::{Aws, Embedded, Harness};
use webhooks_tests::fixtures::{event, secrets, subscription};
use webhooks_tests::merchant::TestMerchant;

const MERCHANT: &str = "m_bench";
const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};
/// Deliveries in progress at once in this process: 8 pollers of 10, as the local stack.
const CONCURRENT: usize = 80;

/// Sends `count` deliveries to an endpoint answering 503 after 200 ms, `CONCURRENT` at a
/// time, and returns (most requests at once at the merchant, requests made, held).
async fn burst<H: Harness>(h: &H, count: usize) -> (usize, usize, usize) {
    let merchant = TestMerchant::start().await;
    let path = "/slow-flaky/1000000";
    let (deliveries, _) = h.queue_pair("failing-bench", 5).await;
    let config = DeliverConfig {
        timeout: Duration::from_secs(5),
        ..DeliverConfig::default()
    };
    let deliver = Deliver::new(
        h.store().clone(),
        deliveries,
        http_client(&LOOPBACK),
        config,
        Arc::new(SystemClock),
    );
    let sub = subscription(MERCHANT, "sub_down", &merchant.url(path));
    h.store().create_subscription(&sub, &secrets()).await.unwrap();
    for n in 0..3 {
        deliver
            .deliver(&DeliveryTask::first(
                event(MERCHANT, &format!("evt_warm_{n}")),
                "sub_down".into(),
            ))
            .await
            .unwrap();
    }
    let held = futures::stream::iter(0..count)
        .map(|n| {
            let deliver = &deliver;
            async move {
                let task = DeliveryTask::first(event(MERCHANT, &format!("evt_{n:05}")), "sub_down".into());
                deliver.deliver(&task).await.unwrap()
            }
        })
        .buffer_unordered(CONCURRENT)
        .filter(|outcome| std::future::ready(*outcome == TaskOutcome::Held))
        .count()
        .await;
    (merchant.max_in_flight(path), merchant.requests().len() - 3, held)
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("FAILING_DELIVERIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let embedded = Embedded::new().await;
    let (most, sent, held) = burst(&embedded, count).await;
    println!(
        "embedded: {count} deliveries to a failing endpoint: at most {most} requests at once, {sent} sent, {held} held"
    );

    let aws = Aws::new().await;
    let on_moto = (count / 10).max(100);
    let layer = aws.deployment().quota_layer().clone();
    layer.reset();
    let (most, sent, held) = burst(&aws, on_moto).await;
    let counts = layer.counts();
    let total: u64 = counts.values().sum();
    println!("moto: {on_moto} deliveries: at most {most} requests at once, {sent} sent, {held} held");
    for ((service, operation), n) in &counts {
        println!("  {service}.{operation}: {n}");
    }
    println!(
        "  all AWS requests: {total}, {:.2} per delivery of the burst",
        total as f64 / on_moto as f64
    );
}
