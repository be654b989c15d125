//! The SQS batch lifter: handlers process one message; this runs a batch of them
//! concurrently and turns their failures into `batchItemFailures`, so that SQS redelivers
//! exactly the failed messages (ReportBatchItemFailures).

use std::fmt::Display;
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use webhooks_storage::ReceivedMessage;

/// A batch that cannot be reported record by record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A record failed and has no message id to report it by: the whole batch must fail,
    /// or SQS would delete the failed record with the rest.
    #[error("a failed record has no messageId; failing the whole batch so that nothing is lost")]
    UnidentifiedFailure,
}

/// Runs `handle` on every record at once and reports the failed ones by message id.
pub async fn process_batch<F, Fut, E>(event: SqsEvent, handle: F) -> Result<SqsBatchResponse, BatchError>
where
    F: Fn(SqsMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let outcomes = join_all(event.records.into_iter().map(|record| {
        let message_id = record.message_id.clone();
        let handled = handle(record);
        async move { (message_id, handled.await) }
    }))
    .await;
    batch_response(outcomes)
}

/// The partial-failure answer for each record's message id and outcome: the failed ones
/// reported by message id; a failed one without an id fails the whole batch.
pub fn batch_response<E: Display>(
    outcomes: impl IntoIterator<Item = (Option<String>, Result<(), E>)>,
) -> Result<SqsBatchResponse, BatchError> {
    let mut response = SqsBatchResponse::default();
    for (message_id, outcome) in outcomes {
        let Err(error) = outcome else { continue };
        let Some(message_id) = message_id else {
            tracing::error!(%error, "record without messageId failed");
            return Err(BatchError::UnidentifiedFailure);
        };
        tracing::info!(message_id = %message_id, %error, "record left for SQS to redeliver");
        response.add_failure(message_id);
    }
    Ok(response)
}

/// Reads shared by the records of one batch: the first record that asks for `key` reads it,
/// the others (running at the same time) wait for that read and take a copy. A failed read
/// is not kept: the next one asking reads again. The records of a batch run at once, so
/// sharing a read among them sees what each reading it at that moment would have seen; it
/// saves the repeated reads of a batch whose records concern one subscription or merchant.
pub struct BatchMemo<K, V> {
    cells: std::sync::Mutex<std::collections::HashMap<K, std::sync::Arc<tokio::sync::OnceCell<V>>>>,
}

impl<K, V> Default for BatchMemo<K, V> {
    fn default() -> Self {
        Self {
            cells: std::sync::Mutex::default(),
        }
    }
}

impl<K: Eq + std::hash::Hash, V: Clone> BatchMemo<K, V> {
    /// The value for `key`: read by `read` once per batch.
    pub async fn get_or_read<E, Fut>(&self, key: K, read: impl FnOnce() -> Fut) -> Result<V, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = self
            .cells
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_try_init(read).await.cloned()
    }

    /// Keeps `value` as what `key` reads to, for this batch, unless it was read already
    /// (what a batch read found for its records before they start).
    pub fn fill(&self, key: K, value: V) {
        let mut cells = self.cells.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // A cell already there holds, or is getting, what its own read found.
        let _ = cells.entry(key).or_default().set(value);
    }
}

/// One queue message, as a poller outside Lambda received it.
#[derive(Debug, Clone, Copy)]
pub struct QueueRecord<'a> {
    /// The queue's id for the message.
    pub message_id: &'a str,
    /// The handle of this receive.
    pub receipt_handle: &'a str,
    /// The body.
    pub body: &'a str,
    /// How many times it has been received.
    pub receive_count: u32,
    /// When it was sent to the queue, in unix milliseconds (SQS's `SentTimestamp`).
    pub sent_at_ms: i64,
}

impl<'a> From<&'a ReceivedMessage> for QueueRecord<'a> {
    fn from(message: &'a ReceivedMessage) -> Self {
        Self {
            message_id: &message.message_id,
            receipt_handle: &message.receipt_handle,
            body: &message.body,
            receive_count: message.receive_count,
            sent_at_ms: message.sent_at_ms,
        }
    }
}

/// The SQS event Lambda's event source mapping would deliver for these messages, so that
/// pollers (the local stack, tests) call the handlers exactly as Lambda does.
pub fn sqs_event<'a>(queue_arn: &str, records: impl IntoIterator<Item = QueueRecord<'a>>) -> SqsEvent {
    let records: Vec<SqsMessage> = records
        .into_iter()
        .map(|record| {
            let mut message = SqsMessage::default();
            message.message_id = Some(record.message_id.to_owned());
            message.receipt_handle = Some(record.receipt_handle.to_owned());
            message.body = Some(record.body.to_owned());
            message
                .attributes
                .insert("ApproximateReceiveCount".into(), record.receive_count.to_string());
            message
                .attributes
                .insert("SentTimestamp".into(), record.sent_at_ms.to_string());
            message.event_source = Some("aws:sqs".into());
            message.event_source_arn = Some(queue_arn.to_owned());
            message.aws_region = Some("us-east-1".into());
            message
        })
        .collect();
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn event(bodies: &[&str]) -> SqsEvent {
        let records: Vec<serde_json::Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                serde_json::json!({
                    "messageId": format!("id-{i}"), "receiptHandle": format!("rh-{i}"), "body": body,
                    "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events",
                    "awsRegion": "us-east-1"
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn reports_only_the_failed_records() {
        let response = process_batch(event(&["ok", "fail", "ok", "fail"]), |record| async move {
            if record.body.as_deref() == Some("fail") {
                Err("boom")
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["id-1", "id-3"]);
    }

    #[tokio::test]
    async fn records_run_concurrently() {
        // The fast record finishes while the slow one is still waiting: it is not queued behind it.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<&'static str>();
        let response = process_batch(event(&["slow", "fast"]), |record| {
            let done = done_tx.clone();
            async move {
                if record.body.as_deref() == Some("slow") {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    done.send("slow").unwrap();
                } else {
                    done.send("fast").unwrap();
                }
                Ok::<(), &str>(())
            }
        })
        .await
        .unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(done_rx.try_iter().collect::<Vec<_>>(), ["fast", "slow"]);
    }

    #[tokio::test]
    async fn a_failure_without_message_id_fails_the_whole_batch() {
        let mut batch = event(&["fail"]);
        batch.records[0].message_id = None;
        let result = process_batch(batch, |_| async { Err::<(), _>("boom") }).await;
        assert_eq!(result, Err(BatchError::UnidentifiedFailure));
    }
}
