//! The scheduler Lambda: wiring only. EventBridge invokes it every minute; each invocation
//! moves every retry that is due to the deliveries queue and answers how many it moved.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use webhooks_domain::SystemClock;
use webhooks_runtime::lambda::{LambdaContext, QueueName};
use webhooks_scheduler::Scheduler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start().await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let scheduler = Scheduler::new(context.store, deliveries, Arc::new(SystemClock));
    let scheduler = &scheduler;
    // The scheduled event carries nothing the scheduler needs: it is only the tick.
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async move {
        let moved = scheduler.move_due_tasks().await?;
        Ok::<_, lambda_runtime::Error>(json!({ "moved": moved }))
    }))
    .await
}
