//! The SQS adapter of the queue ports ([`QueueSender`], [`QueueReceiver`]).

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use super::backend;
use crate::StoreError;
use crate::ports::{MAX_BATCH, MAX_WAIT, OutgoingMessage, QueueReceiver, QueueSender, ReceivedMessage};

/// The message attribute that carries why a message was sent to a DLQ.
pub const FAILURE_REASON_ATTRIBUTE: &str = "failure_reason";
/// How many times entries of a batch that failed on the server side are sent again.
const BATCH_RESENDS: usize = 3;

/// One SQS queue, and the DLQ that dead letters are sent to.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    dlq_url: Option<String>,
}

impl SqsQueue {
    /// The queue at `url`; `dlq_url` receives what [`QueueSender::send_dead_letter`] sends.
    pub fn new(client: Client, url: impl Into<String>, dlq_url: Option<String>) -> Self {
        Self {
            client,
            url: url.into(),
            dlq_url,
        }
    }

    /// The queue's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the queue holds, by state (SQS's approximate counts, one `GetQueueAttributes`).
    pub async fn counts(&self) -> Result<QueueCounts, StoreError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| backend("sqs.GetQueueAttributes", e))?;
        let attributes = output.attributes.unwrap_or_default();
        let count = |name: QueueAttributeName| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(QueueCounts {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}

/// A queue's messages by state, as SQS approximates them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Ready to be received.
    pub visible: u64,
    /// Received, not deleted, still hidden.
    pub in_flight: u64,
    /// Sent with a delay not yet over.
    pub delayed: u64,
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

impl QueueSender for SqsQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .delay_seconds(seconds(message.delay))
            .send()
            .await
            .map_err(|e| backend("sqs.SendMessage", e))?;
        Ok(())
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if messages.len() > MAX_BATCH {
            return Err(StoreError::backend(
                "sqs.SendMessageBatch",
                format!("{} entries, at most 10", messages.len()),
            ));
        }
        let mut results: Vec<Option<Result<(), StoreError>>> = vec![None; messages.len()];
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        for _ in 0..BATCH_RESENDS {
            if pending.is_empty() {
                break;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&messages[i].body)
                        .delay_seconds(seconds(messages[i].delay))
                        .build()
                        .map_err(|e| StoreError::backend("sqs.SendMessageBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| backend("sqs.SendMessageBatch", e))?;
            for ok in output.successful() {
                if let Ok(i) = ok.id().parse::<usize>() {
                    results[i] = Some(Ok(()));
                }
            }
            let mut retry = Vec::new();
            for failed in output.failed() {
                let Ok(i) = failed.id().parse::<usize>() else { continue };
                let error = StoreError::backend(
                    "sqs.SendMessageBatch",
                    format!("{}: {}", failed.code(), failed.message().unwrap_or_default()),
                );
                results[i] = Some(Err(error));
                // A sender fault will fail again as it is; a server-side failure may not.
                if !failed.sender_fault() {
                    retry.push(i);
                }
            }
            pending = retry;
        }
        // An entry SQS neither accepted nor refused is reported as failed, never assumed sent.
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::backend("sqs.SendMessageBatch", "no result for entry"))))
            .collect())
    }

    async fn send_dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let dlq = self
            .dlq_url
            .as_deref()
            .ok_or_else(|| StoreError::backend("sqs.send_dead_letter", "queue has no DLQ"))?;
        let reason_value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| StoreError::backend("sqs.send_dead_letter", e))?;
        self.client
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes(FAILURE_REASON_ATTRIBUTE, reason_value)
            .send()
            .await
            .map_err(|e| backend("sqs.SendMessage(dlq)", e))?;
        Ok(())
    }
}

impl QueueReceiver for SqsQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        // Cut here, not refused by SQS: the port's receivers may ask for longer.
        let wait = wait.min(MAX_WAIT);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            // Passed as asked: SQS refuses more than ten, as the embedded queue does.
            .max_number_of_messages(i32::try_from(max).unwrap_or(i32::MAX))
            .visibility_timeout(seconds(visibility))
            .wait_time_seconds(seconds(wait))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .customize()
            .config_override(long_poll_timeouts(&self.client, wait))
            .send()
            .await
            .map_err(|e| backend("sqs.ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attribute = |name: &MessageSystemAttributeName| m.attributes.as_ref()?.get(name)?.parse().ok();
                let receive_count = attribute(&MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1);
                let sent_at_ms = attribute(&MessageSystemAttributeName::SentTimestamp).unwrap_or(0);
                Some(ReceivedMessage {
                    message_id: m.message_id?,
                    receipt_handle: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    receive_count: u32::try_from(receive_count).unwrap_or(u32::MAX),
                    sent_at_ms,
                })
            })
            .collect())
    }

    async fn change_visibility(&self, receipt_handle: &str, visibility: Duration) -> Result<(), StoreError> {
        let result = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds(visibility))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_bad_receipt(e.code()) => Err(StoreError::BadReceipt),
            Err(e) => Err(backend("sqs.ChangeMessageVisibility", e)),
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_bad_receipt(e.code()) => Err(StoreError::BadReceipt),
            Err(e) => Err(backend("sqs.DeleteMessage", e)),
        }
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let op = "sqs.DeleteMessageBatch";
        if receipt_handles.len() > MAX_BATCH {
            return Err(StoreError::backend(
                op,
                format!("{} entries, at most 10", receipt_handles.len()),
            ));
        }
        if receipt_handles.is_empty() {
            return Ok(Vec::new());
        }
        let entries = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, receipt)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|e| StoreError::backend(op, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| backend(op, e))?;
        let mut results: Vec<Result<(), StoreError>> = vec![Ok(()); receipt_handles.len()];
        for failed in output.failed() {
            if let Some(slot) = failed.id().parse::<usize>().ok().and_then(|i| results.get_mut(i)) {
                *slot = Err(if is_bad_receipt(Some(failed.code())) {
                    StoreError::BadReceipt
                } else {
                    StoreError::backend(
                        op,
                        format!("{}: {}", failed.code(), failed.message().unwrap_or_default()),
                    )
                });
            }
        }
        Ok(results)
    }

    async fn approximate_len(&self) -> Result<usize, StoreError> {
        let counts = self.counts().await?;
        let total = counts.visible + counts.in_flight + counts.delayed;
        Ok(usize::try_from(total).unwrap_or(usize::MAX))
    }
}

/// SQS's codes for an unknown, malformed or expired receipt handle.
fn is_bad_receipt(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("ReceiptHandleIsInvalid" | "AWS.SimpleQueueService.ReceiptHandleIsInvalid" | "InvalidParameterValue")
            | Some("MessageNotInflight" | "AWS.SimpleQueueService.MessageNotInflight")
    )
}

/// Creates `{name}-dlq` and `name` with a redrive policy after `max_receive_count` receives;
/// returns both URLs. Existing queues with the same attributes are reused.
pub async fn create_queue_with_dlq(
    client: &Client,
    name: &str,
    max_receive_count: u32,
) -> Result<(String, String), StoreError> {
    let op = "sqs.CreateQueue";
    let dlq_name = format!("{name}-dlq");
    let dlq = client
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .map_err(|e| backend(op, e))?;
    let dlq_url = dlq.queue_url.ok_or_else(|| StoreError::backend(op, "no DLQ URL"))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| backend("sqs.GetQueueAttributes", e))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| StoreError::backend(op, "no DLQ ARN"))?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()});
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| backend(op, e))?;
    let url = queue.queue_url.ok_or_else(|| StoreError::backend(op, "no queue URL"))?;
    Ok((url, dlq_url))
}

/// The client's timeouts stretched by the long poll's `wait`: a receive that waits for
/// messages is not a stuck call.
fn long_poll_timeouts(client: &Client, wait: Duration) -> aws_sdk_sqs::config::Builder {
    let configured = client.config().timeout_config();
    let bound = |get: fn(&aws_config::timeout::TimeoutConfig) -> Option<Duration>| configured.and_then(get);
    let mut timeouts = aws_config::timeout::TimeoutConfig::builder();
    timeouts.set_operation_attempt_timeout(bound(|t| t.operation_attempt_timeout()).map(|t| t + wait));
    timeouts.set_operation_timeout(bound(|t| t.operation_timeout()).map(|t| t + wait));
    aws_sdk_sqs::config::Builder::default().timeout_config(timeouts.build())
}
