//! The AWS quotas the layer enforces, under the names AWS's documentation gives them, their
//! values, and the refusal the layer returns in place of AWS's `ValidationException`.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use webhooks_storage::ports;

/// SQS "Message timer": the longest `DelaySeconds` (900 s).
pub const SQS_MAX_DELAY: Duration = ports::MAX_DELAY;
/// SQS "Message visibility timeout": a message is hidden at most 12 h, counted from the
/// receive that hid it.
pub const SQS_MAX_VISIBILITY: Duration = ports::MAX_VISIBILITY;
/// SQS "Message batch": entries in one `SendMessageBatch`, `DeleteMessageBatch` or
/// `ChangeMessageVisibilityBatch`.
pub const SQS_MAX_BATCH_ENTRIES: usize = ports::MAX_BATCH;
/// SQS `ReceiveMessage` `MaxNumberOfMessages`: at most 10 per receive.
pub const SQS_MAX_RECEIVE: usize = ports::MAX_BATCH;
/// SQS "Message size": a message's body and attributes, in bytes (the queue attribute
/// `MaximumMessageSize`, whose default template.yaml keeps). The layer holds a batch's total
/// payload to the same 256 KiB.
pub const SQS_MAX_MESSAGE_BYTES: usize = ports::MAX_MESSAGE_BYTES;
/// SQS "In-flight messages per queue": received, not deleted, still hidden, for a standard queue.
pub const SQS_MAX_IN_FLIGHT: usize = ports::MAX_IN_FLIGHT;
/// DynamoDB "Item size": attribute names and values, in bytes (400 KB, DynamoDB's KB being 1,024 bytes).
pub const DYNAMODB_MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB "Partition key length": the longest partition key value, in bytes.
pub const DYNAMODB_MAX_PARTITION_KEY_BYTES: usize = 2048;
/// DynamoDB "Sort key length": the longest sort key value, in bytes.
pub const DYNAMODB_MAX_SORT_KEY_BYTES: usize = 1024;
/// DynamoDB "BatchWriteItem": put and delete requests in one call.
pub const DYNAMODB_BATCH_WRITE_MAX: usize = 25;
/// DynamoDB "TransactWriteItems": actions in one call.
pub const DYNAMODB_TRANSACT_WRITE_MAX: usize = 100;
/// DynamoDB "TransactWriteItems": the items of one call together, in bytes (4 MB).
pub const DYNAMODB_TRANSACT_WRITE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// An AWS quota the layer enforces (the embedded queue enforces the SQS ones too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// [`SQS_MAX_DELAY`].
    SqsMessageTimer,
    /// [`SQS_MAX_VISIBILITY`].
    SqsVisibilityTimeout,
    /// [`SQS_MAX_BATCH_ENTRIES`].
    SqsMessageBatch,
    /// [`SQS_MAX_MESSAGE_BYTES`] for one message.
    SqsMessageSize,
    /// [`SQS_MAX_MESSAGE_BYTES`] for a whole `SendMessageBatch`.
    SqsBatchPayload,
    /// [`SQS_MAX_RECEIVE`].
    SqsReceiveMax,
    /// [`SQS_MAX_IN_FLIGHT`].
    SqsInFlight,
    /// [`DYNAMODB_MAX_ITEM_BYTES`].
    DynamoDbItemSize,
    /// [`DYNAMODB_MAX_PARTITION_KEY_BYTES`].
    DynamoDbPartitionKeyLength,
    /// [`DYNAMODB_MAX_SORT_KEY_BYTES`].
    DynamoDbSortKeyLength,
    /// [`DYNAMODB_BATCH_WRITE_MAX`], and no item twice in one call.
    DynamoDbBatchWriteItem,
    /// [`DYNAMODB_TRANSACT_WRITE_MAX`], [`DYNAMODB_TRANSACT_WRITE_MAX_BYTES`], and one action per item.
    DynamoDbTransactWriteItems,
    /// A Query's key condition: an equality on the partition key, at most one condition on
    /// the sort key (`=`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `begins_with`), nothing else.
    DynamoDbKeyCondition,
}

impl Quota {
    /// The quota's name in AWS's documentation ("Amazon SQS message quotas", "Amazon SQS
    /// queue quotas", "Constraints in Amazon DynamoDB", the API references).
    pub const fn aws_name(self) -> &'static str {
        match self {
            Quota::SqsMessageTimer => "Message timer",
            Quota::SqsVisibilityTimeout => "Message visibility timeout",
            Quota::SqsMessageBatch => "Message batch",
            Quota::SqsMessageSize => "Message size",
            Quota::SqsBatchPayload => "Maximum total payload size",
            Quota::SqsReceiveMax => "MaxNumberOfMessages",
            Quota::SqsInFlight => "In-flight messages per queue",
            Quota::DynamoDbItemSize => "Item size",
            Quota::DynamoDbPartitionKeyLength => "Partition key length",
            Quota::DynamoDbSortKeyLength => "Sort key length",
            Quota::DynamoDbBatchWriteItem => "BatchWriteItem",
            Quota::DynamoDbTransactWriteItems => "TransactWriteItems",
            Quota::DynamoDbKeyCondition => "Key condition expression",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.aws_name())
    }
}

/// A request the layer refused because AWS would: the SDK call fails with this as the
/// source of its error (where AWS would answer `ValidationException` or the like).
#[derive(Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// Which quota.
    pub quota: Quota,
    /// What the request asked for, against the quota's value.
    pub detail: String,
}

impl QuotaExceeded {
    /// A refusal under `quota`.
    pub(super) fn new(quota: Quota, detail: impl Into<String>) -> Self {
        Self {
            quota,
            detail: detail.into(),
        }
    }

    /// The refusal somewhere in `error`'s chain of sources, if the layer refused the call.
    pub fn find<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a QuotaExceeded> {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(refusal) = error.downcast_ref::<QuotaExceeded>() {
                return Some(refusal);
            }
            next = error.source();
        }
        None
    }
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} quota: {} (AWS refuses this; moto may not)",
            self.quota, self.detail
        )
    }
}

/// Written as [`fmt::Display`] is, so that an adapter that formats the SDK error with `{:?}`
/// still names the quota as AWS does.
impl fmt::Debug for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QuotaExceeded({self})")
    }
}

impl Error for QuotaExceeded {}
