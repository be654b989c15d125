//! Queue pollers: what Lambda's SQS event source mapping does, for the local stack. Each
//! poller long-polls a queue for batches of up to 10, hands them to the function's handler
//! as a real SQS event, deletes the messages it handled and leaves the reported failures to
//! their visibility timeout.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures::future::BoxFuture;
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

/// Polls `queue` until `shutdown` turns true; a batch in hand is finished first. A
/// handled batch is deleted while the next one is received (as the event source mapping's
/// pollers do), so that a poller never waits for its delete.
pub async fn poll<Q, F, Fut>(queue: Q, config: PollerConfig, handler: F, mut shutdown: watch::Receiver<bool>)
where
    Q: QueueReceiver,
    F: Fn(SqsEvent) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, BatchError>>,
{
    let arn = format!("arn:aws:sqs:local:000000000000:{}", config.queue_name);
    let mut deleting: Option<BoxFuture<'_, ()>> = None;
    while !*shutdown.borrow() {
        let receiving = async {
            tokio::select! {
                _ = shutdown.changed() => None,
                received = queue.receive(config.batch_size, config.visibility, LONG_POLL) => Some(received),
            }
        };
        let previous_delete = async {
            if let Some(delete) = deleting.take() {
                delete.await;
            }
        };
        let ((), received) = futures::future::join(previous_delete, receiving).await;
        let messages = match received {
            None => break,
            Some(Ok(messages)) if messages.is_empty() => continue,
            Some(Ok(messages)) => messages,
            Some(Err(error)) => {
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
        if !handled.is_empty() {
            deleting = Some(Box::pin(delete_handled(&queue, config.queue_name, handled)));
        }
    }
    if let Some(delete) = deleting {
        delete.await;
    }
}

/// Deletes a handled batch; what is left undeleted comes back after its visibility timeout.
async fn delete_handled<Q: QueueReceiver>(queue: &Q, queue_name: &'static str, handled: Vec<String>) {
    let count = handled.len();
    match queue.delete_batch(handled).await {
        Ok(results) => {
            let undeleted = results.iter().filter(|r| r.is_err()).count();
            if undeleted > 0 {
                tracing::warn!(
                    queue = queue_name,
                    undeleted,
                    "delete failed; those messages will come back"
                );
            }
        }
        Err(error) => {
            tracing::warn!(queue = queue_name, count, %error, "delete failed; the batch will come back");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use webhooks_runtime::batch_response;
    use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
    use webhooks_storage::{OutgoingMessage, QueueReceiver, QueueSender};

    use super::*;

    #[tokio::test]
    async fn handled_messages_are_deleted_also_the_last_batch_and_failed_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.sqlite3")).unwrap();
        let queue = store.queue("work", QueueSettings::default());
        for n in 0..25 {
            let body = if n % 10 == 3 {
                "fail".to_owned()
            } else {
                format!("ok {n}")
            };
            let message = OutgoingMessage {
                body,
                delay: Duration::ZERO,
            };
            queue.send(message).await.unwrap();
        }
        let (stop, stopped) = watch::channel(false);
        let seen = Arc::new(AtomicUsize::new(0));
        let handler = |event: SqsEvent| {
            let (stop, seen) = (stop.clone(), seen.clone());
            async move {
                let outcomes: Vec<_> = event
                    .records
                    .into_iter()
                    .map(|record| {
                        let failed = record.body.as_deref() == Some("fail");
                        (record.message_id, if failed { Err("refused") } else { Ok(()) })
                    })
                    .collect();
                if seen.fetch_add(outcomes.len(), Ordering::SeqCst) + outcomes.len() == 25 {
                    // Stop once every message was handled: the last batch's delete is
                    // still to come, and must not be dropped.
                    stop.send(true).unwrap();
                }
                batch_response(outcomes)
            }
        };
        let config = PollerConfig {
            queue_name: "work",
            batch_size: 10,
            visibility: Duration::from_secs(60),
        };
        poll(queue.clone(), config, handler, stopped).await;
        assert_eq!(seen.load(Ordering::SeqCst), 25);
        assert_eq!(
            queue.approximate_len().await.unwrap(),
            3,
            "only the three refused messages are left, in flight"
        );
    }
}
