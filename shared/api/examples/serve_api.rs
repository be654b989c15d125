//! Serves the merchant API on 127.0.0.1 over an embedded store in a temporary directory,
//! with one merchant, for schemathesis (`schemathesis.sh`) and for trying the API by hand.
//!
//! `cargo run -p webhooks-api --example serve_api [PORT]` prints `URL=...`,
//! `API_KEY=...`, and `RETRY_SUBSCRIPTION_ID=...` with `RETRY_EVENT_ID=...` (a subscription
//! with one failed delivery, for the retry route), then serves until killed. Settings are the
//! local stack's (`WEBHOOKS_ALLOW_HTTP`, `WEBHOOKS_ALLOW_PRIVATE_URLS`, ... from the
//! environment); the rate limit is lifted so that a fuzzer is never slowed down.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use webhooks_api::{Api, RateLimit, router};
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::subscription::SigningSecrets;
use webhooks_domain::{
    AttemptOutcome, DeliveryAttempt, DeliveryStatus, EventName, IsoTime, Merchant, NewApiKey, PlatformEvent,
    Subscription, SystemClock,
};
use webhooks_runtime::logging::init_logging;
use webhooks_runtime::{Environment, Settings};
use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
use webhooks_storage::{DeliveryLog, EventStore, MerchantStore, StoreError, SubscriptionStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).map(|p| p.parse()).transpose()?.unwrap_or(0);
    let settings = Settings::from_env(Environment::Local)?;
    init_logging(settings.log_format);
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("store.sqlite3"))?;
    let deliveries = store.queue("deliveries", QueueSettings::default());
    let clock = Arc::new(SystemClock);
    let auth_callback = AuthCallback::new(
        store.clone(),
        settings.url_policy,
        settings.auth_callback_timeout(),
        clock.clone(),
    )?;
    let key = NewApiKey::generate();
    let now = IsoTime::new(time::OffsetDateTime::now_utc()).ok_or("clock out of range")?;
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: "schemathesis".into(),
        created_at: now,
    };
    store.create_merchant(&merchant, &key.hash).await?;
    let (retry_subscription, retry_event) = seed_failed_delivery(&store, &merchant.id, now).await?;
    let unlimited = RateLimit {
        requests: u64::MAX,
        window_secs: 1,
    };
    let api = Api::new(store, deliveries, settings.url_policy, auth_callback, clock)
        .with_rate_limit(unlimited)
        .with_bad_key_limit(unlimited);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let mut out = std::io::stdout();
    writeln!(out, "URL=http://{}", listener.local_addr()?)?;
    writeln!(out, "API_KEY={}", key.clear_text)?;
    writeln!(out, "RETRY_SUBSCRIPTION_ID={retry_subscription}")?;
    writeln!(out, "RETRY_EVENT_ID={retry_event}")?;
    out.flush()?;
    axum::serve(listener, router(Arc::new(api))).await?;
    Ok(())
}

/// A subscription whose one delivery failed, as the deliver function would have recorded
/// it; returns the subscription and event ids.
async fn seed_failed_delivery(
    store: &EmbeddedStore,
    merchant_id: &str,
    now: IsoTime,
) -> Result<(String, String), StoreError> {
    let subscription = Subscription {
        id: Subscription::new_id(),
        merchant_id: merchant_id.into(),
        url: "https://merchant.example.com/webhooks".into(),
        events: EventName::ALL.to_vec(),
        description: "a failed delivery to retry".into(),
        enabled: true,
        rate_limit_per_second: None,
        created_at: now,
        updated_at: now,
        version: 0,
        health: Default::default(),
    };
    store
        .create_subscription(&subscription, &SigningSecrets::new(None))
        .await?;
    let event = PlatformEvent {
        event_id: "evt_seeded_failure".into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::PaymentReceived,
        order_id: "order_seeded".into(),
        time_stamp: now,
    };
    store.record_event(&event, Duration::ZERO).await?;
    let attempt = DeliveryAttempt {
        event_id: event.event_id.clone(),
        subscription_id: subscription.id.clone(),
        merchant_id: merchant_id.into(),
        event_name: event.event_name,
        attempt: 1,
        attempted_at: now,
        outcome: AttemptOutcome::Failed,
        status_code: Some(503),
        error: Some("http_status".into()),
        latency_ms: 42,
        response_excerpt: Some("Service Unavailable".into()),
        next_attempt_at: None,
        manual: false,
    };
    store.record_attempt(&attempt).await?;
    store
        .set_delivery_status(merchant_id, &event.event_id, &subscription.id, DeliveryStatus::Failed)
        .await?;
    Ok((subscription.id, event.event_id))
}
