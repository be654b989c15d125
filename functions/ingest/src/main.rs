//! The ingest Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use webhooks_domain::SystemClock;
use webhooks_ingest::Ingest;
use webhooks_runtime::lambda::{LambdaContext, QueueName};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start().await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let events = context.queue(QueueName::Events)?;
    let ingest = Ingest::new(context.store, deliveries, events, Arc::new(SystemClock));
    let ingest = &ingest;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        ingest
            .handle_batch(event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
