//! Queue pollers: what Lambda's SQS event source mapping does, for the local stack. Each
//! poller long-polls a queue for batches of up to 10, hands them to the function's handler
//! as a real SQS event, deletes the messages it handled and leaves the reported failures to
//! their visibility timeout.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use tokio::sync::watch;
use webhooks_runtime::{BatchError, QueueRecord, sqs_event};
use webhooks_storage::QueueReceiver;

/// The longest a poller waits for a message before looking at the shutdown signal again.
const LONG_POLL: Duration = Duration::from_secs(1);
/// The pause after a failed receive.
const RECEIVE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How one queue is consumed.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// For logs and the event's `eventSourceARN`.
    pub queue_name: &'static str,
    /// Messages per batch (at most 10).
    pub batch_size: usize,
    /// How long a received batch stays hidden from other pollers (>= 6x the handler's time).
    pub visibility: Duration,
}

/// Polls `queue` until `shutdown` turns true; a batch in hand is finished first.
pub async fn poll<Q, F, Fut>(queue: Q, config: PollerConfig, handler: F, mut shutdown: watch::Receiver<bool>)
where
    Q: QueueReceiver,
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, BatchError>>,
{
    let arn = format!("arn:aws:sqs:local:000000000000:{}", config.queue_name);
    while !*shutdown.borrow() {
        let received = tokio::select! {
            _ = shutdown.changed() => break,
            received = queue.receive(config.batch_size, config.visibility, LONG_POLL) => received,
        };
        let messages = match received {
            Ok(messages) if messages.is_empty() => continue,
            Ok(messages) => messages,
            Err(error) => {
                tracing::error!(queue = config.queue_name, %error, "receive failed");
                tokio::time::sleep(RECEIVE_ERROR_PAUSE).await;
                continue;
            }
        };
        let event = sqs_event(&arn, messages.iter().map(QueueRecord::from));
        let failed: Vec<String> = match handler(event).await {
            Ok(response) => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(error) => {
                tracing::error!(queue = config.queue_name, %error, "batch failed as a whole; SQS semantics redeliver it");
                continue;
            }
        };
        let handled: Vec<String> = messages
            .iter()
            .filter(|m| !failed.contains(&m.message_id))
            .map(|m| m.receipt_handle.clone())
            .collect();
        if handled.is_empty() {
            continue;
        }
        let count = handled.len();
        match queue.delete_batch(handled).await {
            Ok(results) => {
                let undeleted = results.iter().filter(|r| r.is_err()).count();
                if undeleted > 0 {
                    tracing::warn!(
                        queue = config.queue_name,
                        undeleted,
                        "delete failed; those messages will come back"
                    );
                }
            }
            Err(error) => {
                tracing::warn!(queue = config.queue_name, count, %error, "delete failed; the batch will come back");
            }
        }
    }
}
