//! SQS requests checked against SQS's quotas, and the in-flight leases their responses
//! start and end.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityInput;
use aws_sdk_sqs::operation::change_message_visibility_batch::{
    ChangeMessageVisibilityBatchInput, ChangeMessageVisibilityBatchOutput,
};
use aws_sdk_sqs::operation::delete_message::DeleteMessageInput;
use aws_sdk_sqs::operation::delete_message_batch::{DeleteMessageBatchInput, DeleteMessageBatchOutput};
use aws_sdk_sqs::operation::receive_message::{ReceiveMessageInput, ReceiveMessageOutput};
use aws_sdk_sqs::operation::send_message::SendMessageInput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchInput;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use super::in_flight::InFlight;
use super::quota::{
    Quota, QuotaExceeded, SQS_MAX_BATCH_ENTRIES, SQS_MAX_DELAY, SQS_MAX_IN_FLIGHT, SQS_MAX_MESSAGE_BYTES,
    SQS_MAX_RECEIVE, SQS_MAX_VISIBILITY,
};

/// The visibility timeout of a receive that gives none: SQS's default for a queue (the
/// layer does not read the queue's own `VisibilityTimeout`; the adapter always gives one).
const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);

/// What a request leaves for its response to settle in the in-flight leases.
#[derive(Debug, Clone)]
pub(super) enum Pending {
    /// A receive from `queue_url`, sent at `sent_at`, hiding what it gets for `visibility`.
    Receive {
        queue_url: String,
        sent_at: Instant,
        visibility: Duration,
    },
    /// Messages deleted if the response says so, by receipt handle.
    Delete(Vec<Entry>),
    /// Messages hidden again for a time, by receipt handle.
    Hide(Vec<(Entry, Duration)>),
}

impl Storable for Pending {
    type Storer = StoreReplace<Self>;
}

/// One receipt handle in a request, with its batch entry id (`None` outside a batch).
#[derive(Debug, Clone)]
pub(super) struct Entry {
    id: Option<String>,
    receipt_handle: String,
}

impl Entry {
    fn single(receipt_handle: Option<&str>) -> Self {
        Self {
            id: None,
            receipt_handle: receipt_handle.unwrap_or_default().to_owned(),
        }
    }

    fn batched(id: &str, receipt_handle: &str) -> Self {
        Self {
            id: Some(id.to_owned()),
            receipt_handle: receipt_handle.to_owned(),
        }
    }

    /// Whether the call succeeded for this entry: the whole call did, and a batch response
    /// lists the entry among its successes.
    fn succeeded(&self, successful_ids: &[&str]) -> bool {
        self.id.as_deref().is_none_or(|id| successful_ids.contains(&id))
    }
}

/// Refuses `input` if SQS would; otherwise what its response will settle, if anything.
pub(super) fn check(input: &Input, in_flight: &InFlight, now: Instant) -> Result<Option<Pending>, QuotaExceeded> {
    if let Some(send) = input.downcast_ref::<SendMessageInput>() {
        check_delay(send.delay_seconds())?;
        let size = message_size(send.message_body().unwrap_or_default(), send.message_attributes());
        if size > SQS_MAX_MESSAGE_BYTES {
            let detail = format!("{size} bytes, at most {SQS_MAX_MESSAGE_BYTES}");
            return Err(QuotaExceeded::new(Quota::SqsMessageSize, detail));
        }
        return Ok(None);
    }
    if let Some(batch) = input.downcast_ref::<SendMessageBatchInput>() {
        check_batch_len(batch.entries().len())?;
        let mut payload = 0;
        for entry in batch.entries() {
            check_delay(entry.delay_seconds())?;
            payload += message_size(entry.message_body(), entry.message_attributes());
        }
        if payload > SQS_MAX_MESSAGE_BYTES {
            let detail = format!("{payload} bytes in one batch, at most {SQS_MAX_MESSAGE_BYTES}");
            return Err(QuotaExceeded::new(Quota::SqsBatchPayload, detail));
        }
        return Ok(None);
    }
    if let Some(receive) = input.downcast_ref::<ReceiveMessageInput>() {
        let max = receive.max_number_of_messages().unwrap_or(1);
        if !usize::try_from(max).is_ok_and(|max| (1..=SQS_MAX_RECEIVE).contains(&max)) {
            let detail = format!("{max} messages asked for, 1 to {SQS_MAX_RECEIVE} allowed");
            return Err(QuotaExceeded::new(Quota::SqsReceiveMax, detail));
        }
        let queue_url = receive.queue_url().unwrap_or_default().to_owned();
        in_flight.check_receive(&queue_url, now, SQS_MAX_IN_FLIGHT)?;
        let visibility = match receive.visibility_timeout() {
            Some(seconds) => visibility_timeout(seconds)?,
            None => DEFAULT_VISIBILITY,
        };
        return Ok(Some(Pending::Receive {
            queue_url,
            sent_at: now,
            visibility,
        }));
    }
    if let Some(delete) = input.downcast_ref::<DeleteMessageInput>() {
        return Ok(Some(Pending::Delete(vec![Entry::single(delete.receipt_handle())])));
    }
    if let Some(batch) = input.downcast_ref::<DeleteMessageBatchInput>() {
        check_batch_len(batch.entries().len())?;
        let entries = batch
            .entries()
            .iter()
            .map(|e| Entry::batched(e.id(), e.receipt_handle()));
        return Ok(Some(Pending::Delete(entries.collect())));
    }
    if let Some(change) = input.downcast_ref::<ChangeMessageVisibilityInput>() {
        let entry = Entry::single(change.receipt_handle());
        let hide = hide(in_flight, entry, change.visibility_timeout(), now)?;
        return Ok(Some(Pending::Hide(vec![hide])));
    }
    if let Some(batch) = input.downcast_ref::<ChangeMessageVisibilityBatchInput>() {
        check_batch_len(batch.entries().len())?;
        let hides = batch
            .entries()
            .iter()
            .map(|e| {
                hide(
                    in_flight,
                    Entry::batched(e.id(), e.receipt_handle()),
                    e.visibility_timeout(),
                    now,
                )
            })
            .collect::<Result<_, _>>()?;
        return Ok(Some(Pending::Hide(hides)));
    }
    Ok(None)
}

/// Settles what a request left pending, now that `output` came back for it at `now`.
pub(super) fn settle(pending: &Pending, output: &Output, in_flight: &mut InFlight, now: Instant) {
    match pending {
        Pending::Receive {
            queue_url,
            sent_at,
            visibility,
        } => {
            let messages = output.downcast_ref::<ReceiveMessageOutput>().map(|o| o.messages());
            for receipt in messages.unwrap_or_default().iter().filter_map(|m| m.receipt_handle()) {
                in_flight.received(queue_url, receipt, *sent_at, now + *visibility);
            }
        }
        Pending::Delete(entries) => {
            let successful = successful_ids(output);
            for entry in entries.iter().filter(|e| e.succeeded(&successful)) {
                in_flight.deleted(&entry.receipt_handle);
            }
        }
        Pending::Hide(hides) => {
            let successful = successful_ids(output);
            for (entry, timeout) in hides.iter().filter(|(e, _)| e.succeeded(&successful)) {
                in_flight.hidden_until(&entry.receipt_handle, now + *timeout);
            }
        }
    }
}

/// The entry ids a batch response lists as done (none for the answer to a single call).
fn successful_ids(output: &Output) -> Vec<&str> {
    if let Some(deleted) = output.downcast_ref::<DeleteMessageBatchOutput>() {
        return deleted.successful().iter().map(|s| s.id()).collect();
    }
    if let Some(changed) = output.downcast_ref::<ChangeMessageVisibilityBatchOutput>() {
        return changed.successful().iter().map(|s| s.id()).collect();
    }
    Vec::new()
}

/// A visibility change of `entry` to `seconds` from `now`, refused past 12 h from its receive.
fn hide(
    in_flight: &InFlight,
    entry: Entry,
    seconds: Option<i32>,
    now: Instant,
) -> Result<(Entry, Duration), QuotaExceeded> {
    let timeout = visibility_timeout(seconds.unwrap_or_default())?;
    in_flight.check_visibility(&entry.receipt_handle, now, timeout)?;
    Ok((entry, timeout))
}

/// A `VisibilityTimeout` parameter, refused outside 0 to 12 h.
fn visibility_timeout(seconds: i32) -> Result<Duration, QuotaExceeded> {
    seconds_within(seconds, SQS_MAX_VISIBILITY, Quota::SqsVisibilityTimeout)
}

/// Refuses a `DelaySeconds` outside 0 to 15 minutes.
fn check_delay(seconds: Option<i32>) -> Result<(), QuotaExceeded> {
    seconds_within(seconds.unwrap_or_default(), SQS_MAX_DELAY, Quota::SqsMessageTimer).map(drop)
}

/// `seconds` as a duration, refused under `quota` outside 0 to `max`.
fn seconds_within(seconds: i32, max: Duration, quota: Quota) -> Result<Duration, QuotaExceeded> {
    match u64::try_from(seconds).map(Duration::from_secs) {
        Ok(duration) if duration <= max => Ok(duration),
        _ => Err(QuotaExceeded::new(
            quota,
            format!("{seconds} s, 0 to {} s allowed", max.as_secs()),
        )),
    }
}

/// Refuses a batch of no entries or more than 10.
fn check_batch_len(entries: usize) -> Result<(), QuotaExceeded> {
    if !(1..=SQS_MAX_BATCH_ENTRIES).contains(&entries) {
        let detail = format!("{entries} entries, 1 to {SQS_MAX_BATCH_ENTRIES} allowed");
        return Err(QuotaExceeded::new(Quota::SqsMessageBatch, detail));
    }
    Ok(())
}

/// A message's size as SQS counts it: the body's bytes, and each attribute's name, data type and value.
fn message_size(body: &str, attributes: Option<&HashMap<String, MessageAttributeValue>>) -> usize {
    let attribute = |(name, value): (&String, &MessageAttributeValue)| {
        name.len()
            + value.data_type().len()
            + value.string_value().map_or(0, str::len)
            + value.binary_value().map_or(0, |b| b.as_ref().len())
            + value.string_list_values().iter().map(String::len).sum::<usize>()
            + value
                .binary_list_values()
                .iter()
                .map(|b| b.as_ref().len())
                .sum::<usize>()
    };
    body.len() + attributes.into_iter().flatten().map(attribute).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, SendMessageBatchRequestEntry};

    use super::*;

    const QUEUE: &str = "http://moto/queue/tasks";

    fn refused(input: impl std::fmt::Debug + Send + Sync + 'static) -> Quota {
        let input = Input::erase(input);
        check(&input, &InFlight::default(), Instant::now()).unwrap_err().quota
    }

    fn send(body: &str, delay_seconds: i32) -> SendMessageInput {
        SendMessageInput::builder()
            .queue_url(QUEUE)
            .message_body(body)
            .delay_seconds(delay_seconds)
            .build()
            .unwrap()
    }

    fn batch_entry(i: usize, body: &str) -> SendMessageBatchRequestEntry {
        SendMessageBatchRequestEntry::builder()
            .id(i.to_string())
            .message_body(body)
            .build()
            .unwrap()
    }

    #[test]
    fn sends_over_the_delay_or_size_quota_are_refused() {
        let ok = Input::erase(send(&"x".repeat(SQS_MAX_MESSAGE_BYTES), 900));
        assert!(check(&ok, &InFlight::default(), Instant::now()).unwrap().is_none());
        assert_eq!(refused(send("x", 901)), Quota::SqsMessageTimer);
        assert_eq!(refused(send("x", -1)), Quota::SqsMessageTimer);
        assert_eq!(
            refused(send(&"x".repeat(SQS_MAX_MESSAGE_BYTES + 1), 0)),
            Quota::SqsMessageSize
        );
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value("why")
            .build()
            .unwrap();
        let with_attribute = SendMessageInput::builder()
            .queue_url(QUEUE)
            .message_body("x".repeat(SQS_MAX_MESSAGE_BYTES - 5))
            .message_attributes("reason", attribute)
            .build()
            .unwrap();
        assert_eq!(
            refused(with_attribute),
            Quota::SqsMessageSize,
            "attributes count towards the size"
        );
    }

    #[test]
    fn batches_over_ten_entries_or_the_total_payload_are_refused() {
        let batch = |entries: Vec<SendMessageBatchRequestEntry>| {
            SendMessageBatchInput::builder()
                .queue_url(QUEUE)
                .set_entries(Some(entries))
                .build()
                .unwrap()
        };
        let eleven = (0..=SQS_MAX_BATCH_ENTRIES).map(|i| batch_entry(i, "x")).collect();
        assert_eq!(refused(batch(eleven)), Quota::SqsMessageBatch);
        assert_eq!(refused(batch(Vec::new())), Quota::SqsMessageBatch);
        let big = "x".repeat(100 * 1024);
        let three = (0..3).map(|i| batch_entry(i, &big)).collect();
        assert_eq!(refused(batch(three)), Quota::SqsBatchPayload);
        let visibility = ChangeMessageVisibilityBatchInput::builder()
            .queue_url(QUEUE)
            .set_entries(Some(
                (0..=SQS_MAX_BATCH_ENTRIES)
                    .map(|i| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle("r")
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
            .unwrap();
        assert_eq!(refused(visibility), Quota::SqsMessageBatch);
    }

    #[test]
    fn receives_of_more_than_ten_or_longer_than_twelve_hours_are_refused() {
        let receive = |max: i32, visibility: i32| {
            ReceiveMessageInput::builder()
                .queue_url(QUEUE)
                .max_number_of_messages(max)
                .visibility_timeout(visibility)
                .build()
                .unwrap()
        };
        assert_eq!(refused(receive(11, 30)), Quota::SqsReceiveMax);
        assert_eq!(refused(receive(0, 30)), Quota::SqsReceiveMax);
        assert_eq!(refused(receive(10, 43_201)), Quota::SqsVisibilityTimeout);
        let ok = Input::erase(receive(10, 43_200));
        assert!(matches!(
            check(&ok, &InFlight::default(), Instant::now()),
            Ok(Some(Pending::Receive { .. }))
        ));
    }

    #[test]
    fn a_receive_starts_leases_that_a_delete_ends() {
        let mut in_flight = InFlight::default();
        let start = Instant::now();
        let pending = Pending::Receive {
            queue_url: QUEUE.into(),
            sent_at: start,
            visibility: Duration::from_secs(30),
        };
        let message = |receipt: &str| aws_sdk_sqs::types::Message::builder().receipt_handle(receipt).build();
        let received = ReceiveMessageOutput::builder()
            .messages(message("a"))
            .messages(message("b"))
            .build();
        settle(&pending, &Output::erase(received), &mut in_flight, start);
        assert_eq!(in_flight.count(QUEUE, start), 2);
        let delete = Pending::Delete(vec![Entry::batched("0", "a"), Entry::batched("1", "b")]);
        let only_first = DeleteMessageBatchOutput::builder()
            .successful(
                aws_sdk_sqs::types::DeleteMessageBatchResultEntry::builder()
                    .id("0")
                    .build()
                    .unwrap(),
            )
            .set_failed(Some(Vec::new()))
            .build()
            .unwrap();
        settle(&delete, &Output::erase(only_first), &mut in_flight, start);
        assert_eq!(in_flight.count(QUEUE, start), 1, "the failed entry is still in flight");
    }
}
