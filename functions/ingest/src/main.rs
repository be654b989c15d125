//! The ingest Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use webhooks_domain::SystemClock;
use webhooks_ingest::Ingest;
use webhooks_runtime::lambda::{LambdaContext, QueueName, SecretAccess, serve_sqs_batches};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start(SecretAccess::Never).await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let events = context.queue(QueueName::Events)?;
    let ingest = Ingest::new(context.store, deliveries, events, Arc::new(SystemClock));
    serve_sqs_batches(|batch, _| ingest.handle_batch(batch)).await
}
