//! `dlq redrive`: dead letters back to the queue they came from.

use std::time::Duration;

use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{OutgoingMessage, QueueReceiver, QueueSender};

use crate::error::AdminError;

/// How long a message taken from a DLQ stays hidden while it is being redriven: if the
/// redrive stops half-way, the message reappears in the DLQ after this.
const REDRIVE_VISIBILITY: Duration = Duration::from_secs(60);
/// The long poll of each DLQ receive; an empty answer after it ends the redrive.
const REDRIVE_WAIT: Duration = Duration::from_secs(1);

/// Moves messages from `dlq` to `target` (send first, then delete, so a failure leaves a
/// duplicate, never a loss), until the DLQ is empty or `max` messages were moved. Without
/// `max`, at most as many as the DLQ held at the start: a message that fails again and
/// returns to the DLQ during the redrive is not sent round a second time.
pub async fn redrive(
    dlq: &impl QueueReceiver,
    target: &impl QueueSender,
    max: Option<usize>,
) -> Result<usize, AdminError> {
    let limit = match max {
        Some(max) => max,
        None => dlq.approximate_len().await?,
    };
    let mut moved = 0;
    while moved < limit {
        let incomplete = move |source| AdminError::RedriveIncomplete { moved, source };
        let messages = dlq
            .receive((limit - moved).min(MAX_BATCH), REDRIVE_VISIBILITY, REDRIVE_WAIT)
            .await
            .map_err(incomplete)?;
        if messages.is_empty() {
            break;
        }
        let outgoing = messages
            .iter()
            .map(|m| OutgoingMessage {
                body: m.body.clone(),
                delay: Duration::ZERO,
            })
            .collect();
        let sent = target.send_batch(outgoing).await.map_err(incomplete)?;
        let mut first_failure = None;
        for (message, result) in messages.iter().zip(sent) {
            match result {
                Ok(()) => {
                    dlq.delete(&message.receipt_handle)
                        .await
                        .map_err(|source| AdminError::RedriveIncomplete { moved, source })?;
                    moved += 1;
                }
                // Not sent: it stays in the DLQ and reappears after the visibility timeout.
                Err(error) => {
                    first_failure.get_or_insert(error);
                }
            }
        }
        if let Some(source) = first_failure {
            return Err(AdminError::RedriveIncomplete { moved, source });
        }
    }
    Ok(moved)
}
