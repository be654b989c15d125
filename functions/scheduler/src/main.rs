//! The scheduler Lambda: wiring only. EventBridge invokes it every minute; each invocation
//! moves every retry that is due to the deliveries queue, writes its metrics (retries
//! released, the backlog's age, which an alarm reads) and answers its figures.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use webhooks_domain::SystemClock;
use webhooks_runtime::lambda::{LambdaContext, QueueName, SecretAccess};
use webhooks_runtime::metrics::flush_emf;
use webhooks_scheduler::Scheduler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start(SecretAccess::Never).await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let scheduler = Scheduler::new(context.store, deliveries, Arc::new(SystemClock));
    let scheduler = &scheduler;
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async move {
        let report = scheduler.move_due_tasks().await;
        flush_emf();
        let report = report?;
        Ok::<_, lambda_runtime::Error>(
            json!({ "moved": report.moved, "oldestDueAgeMs": report.oldest_due_age.as_millis() }),
        )
    }))
    .await
}
