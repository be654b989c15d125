//! SSRF at connect time: a hostname passes the create-time check, then resolves to a
//! blocked address (DNS rebinding). The delivery fails to connect and nothing reaches the
//! address. The names come from a fixed table standing in for a hostile DNS server.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use webhooks_deliver::{Deliver, DeliverConfig, USER_AGENT};
use webhooks_domain::{DeliveryTask, SystemClock, UrlPolicy};
use webhooks_outbound::{NameSource, OutboundClient};
use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
use webhooks_storage::{DeliveryLog, PageRequest, SubscriptionStore};
use webhooks_tests::fixtures::{event, secrets, subscription};
use webhooks_tests::merchant::TestMerchant;

/// http allowed (the receiver is plain HTTP), private targets not.
const POLICY: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: false,
};

#[tokio::test]
async fn names_resolving_to_blocked_addresses_are_refused_at_connect_time() {
    let merchant = TestMerchant::start().await;
    let port: u16 = merchant
        .url("/")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let hostile: Vec<(&str, Vec<&str>)> = vec![
        ("rebind.example", vec!["127.0.0.1"]),
        ("loopback-v6.example", vec!["::1"]),
        ("mapped.example", vec!["::ffff:127.0.0.1"]),
        ("metadata.example", vec!["169.254.169.254"]),
        ("private.example", vec!["10.0.0.1"]),
        ("all-bad.example", vec!["127.0.0.1", "::1", "192.168.1.1"]),
    ];
    let table: HashMap<String, Vec<IpAddr>> = hostile
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.iter().map(|ip| ip.parse().unwrap()).collect()))
        .collect();
    let client = OutboundClient::with_names(POLICY, USER_AGENT, NameSource::Fixed(Arc::new(table))).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store.sqlite3")).unwrap();
    let deliveries = store.queue(
        "deliveries",
        QueueSettings {
            dlq: Some("dlq".into()),
            max_receive_count: 5,
        },
    );
    let config = DeliverConfig {
        retry_schedule: "1s".parse().unwrap(),
        timeout: Duration::from_secs(5),
        ..DeliverConfig::default()
    };
    let deliver = Deliver::new(store.clone(), deliveries, client, config, Arc::new(SystemClock));

    for (i, (name, _)) in hostile.iter().enumerate() {
        let url = format!("http://{name}:{port}/ok");
        assert!(POLICY.check(&url).is_ok(), "{url} should pass the create-time check");
        let subscription = subscription("m_ssrf", &format!("sub_{i}"), &url);
        store.create_subscription(&subscription, &secrets()).await.unwrap();
        deliver
            .deliver(&DeliveryTask::first(
                event("m_ssrf", &format!("evt_{i}")),
                subscription.id.clone(),
            ))
            .await
            .unwrap();
        let attempts = store
            .list_attempts("m_ssrf", &subscription.id, PageRequest::first(1))
            .await
            .unwrap()
            .items;
        assert_eq!(attempts[0].error.as_deref(), Some("blocked_url"), "{name}");
    }
    assert!(
        merchant.requests().is_empty(),
        "a blocked address was reached: {:?}",
        merchant.requests()
    );
    println!("{} hostile names refused at connect time", hostile.len());
}
