//! The deliver Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::SystemClock;
use webhooks_runtime::lambda::{LambdaContext, QueueName};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start().await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let settings = &context.settings;
    let config = DeliverConfig {
        url_policy: settings.url_policy,
        retry_schedule: settings.retry_schedule.clone(),
        timeout: settings.delivery_timeout(),
    };
    let client = http_client(&settings.url_policy);
    let deliver = Deliver::new(context.store, deliveries, client, config, Arc::new(SystemClock));
    let deliver = &deliver;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        deliver
            .handle_batch(event.payload)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
