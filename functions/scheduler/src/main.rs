//! The scheduler Lambda: wiring only. EventBridge invokes it every minute; each invocation
//! moves every retry that is due to the deliveries queue, prints its figures as an
//! Embedded Metric Format line (the backlog alarm reads them) and answers them.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use webhooks_domain::{Clock, SystemClock, unix_millis};
use webhooks_runtime::lambda::{LambdaContext, QueueName, SecretAccess};
use webhooks_scheduler::Scheduler;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start(SecretAccess::Never).await?;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let clock = Arc::new(SystemClock);
    let scheduler = Scheduler::new(context.store, deliveries, clock.clone());
    let scheduler = &scheduler;
    let function_name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "scheduler".into());
    let function_name = function_name.as_str();
    let clock = clock.as_ref();
    // The scheduled event carries nothing the scheduler needs: it is only the tick.
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async move {
        let report = scheduler.move_due_tasks().await?;
        let now_ms = unix_millis(clock.now());
        println!("{}", report.emf(function_name, now_ms));
        Ok::<_, lambda_runtime::Error>(json!({ "moved": report.moved }))
    }))
    .await
}
