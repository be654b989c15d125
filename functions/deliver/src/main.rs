//! The deliver Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::SystemClock;
use webhooks_runtime::lambda::{LambdaContext, QueueName, SecretAccess, serve_sqs_batches};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start(SecretAccess::Opens).await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let events = context.queue(QueueName::Events)?;
    let settings = &context.settings;
    let config = DeliverConfig {
        retry_schedule: settings.retry_schedule.clone(),
        timeout: settings.delivery_timeout(),
        disable_after: settings.disable_after,
        probe_slots: settings.probe_slots,
    };
    let client = http_client(&settings.url_policy);
    // Deliver alone writes attempts: it raises the table's shard count before it spreads them.
    let store = context
        .store
        .with_subscription_shards(settings.subscription_shards)
        .await?;
    let deliver =
        Deliver::new(store, deliveries, client, config, Arc::new(SystemClock)).raising_operational_events_on(events);
    serve_sqs_batches(|batch, budget| deliver.handle_batch_within(batch, budget)).await
}
