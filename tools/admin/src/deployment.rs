//! The table and queues one invocation works on, resolved from its flags, the environment
//! or the stack name, and the adapters that reach them.

use aws_config::SdkConfig;
use webhooks_storage::aws::{
    DynamoStore, ResourceNames, SdkTimeouts, SqsQueue, kms_keyring, queue_urls, sdk_config_for_endpoint,
    sdk_config_from_env,
};
use webhooks_storage::{DEFAULT_RETENTION, Keyring};

use crate::cli::{QueueKind, ResourceArgs};
use crate::error::AdminError;

/// The resolved resources of one invocation, and the SDK configuration to reach them.
pub(crate) struct Deployment {
    sdk: SdkConfig,
    resources: ResourceArgs,
}

impl Deployment {
    /// The SDK configuration for `--endpoint-url`, or else from the environment.
    pub(crate) async fn new(resources: ResourceArgs) -> Self {
        let sdk = match &resources.endpoint_url {
            Some(endpoint) => sdk_config_for_endpoint(endpoint),
            None => sdk_config_from_env(SdkTimeouts::PATIENT).await,
        };
        Self { sdk, resources }
    }

    /// The table from `--table` (or its variable), or else from the stack, without a key:
    /// for the commands that touch no secret.
    pub(crate) async fn store(&self) -> Result<DynamoStore, AdminError> {
        self.store_with(Keyring::withheld()).await
    }

    /// The same table with the secrets' KMS key from `--kms-key-id` (or its variable), or
    /// else the stack's `alias/NAME-secrets`.
    pub(crate) async fn store_with_secrets_key(&self) -> Result<DynamoStore, AdminError> {
        let r = &self.resources;
        let key = match (&r.kms_key_id, &r.stack) {
            (Some(key), _) => key.clone(),
            (None, Some(stack)) => ResourceNames::with_prefix(stack).secrets_key,
            (None, None) => {
                return Err(AdminError::Missing {
                    what: "KMS key of the secrets",
                    flag: "kms-key-id",
                    variable: "WEBHOOKS_KMS_KEY_ID",
                });
            }
        };
        self.store_with(kms_keyring(&self.sdk, key)).await
    }

    async fn store_with(&self, keyring: Keyring) -> Result<DynamoStore, AdminError> {
        let table = match (&self.resources.table, &self.resources.stack) {
            (Some(table), _) => table.clone(),
            (None, Some(stack)) => ResourceNames::with_prefix(stack).table,
            (None, None) => {
                return Err(AdminError::Missing {
                    what: "table",
                    flag: "table",
                    variable: "WEBHOOKS_TABLE_NAME",
                });
            }
        };
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        Ok(DynamoStore::connect(client, table, DEFAULT_RETENTION, keyring).await?)
    }

    /// The queue of `kind` and its DLQ, each from its flag or else from the stack.
    pub(crate) async fn queues(&self, kind: QueueKind) -> Result<(SqsQueue, SqsQueue), AdminError> {
        let r = &self.resources;
        let (queue, dlq, missing) = match kind {
            QueueKind::Events => (
                &r.events_queue_url,
                &r.events_dlq_url,
                [
                    ("events-queue-url", "WEBHOOKS_EVENTS_QUEUE_URL"),
                    ("events-dlq-url", "WEBHOOKS_EVENTS_DLQ_URL"),
                ],
            ),
            QueueKind::Deliveries => (
                &r.deliveries_queue_url,
                &r.deliveries_dlq_url,
                [
                    ("deliveries-queue-url", "WEBHOOKS_DELIVERIES_QUEUE_URL"),
                    ("deliveries-dlq-url", "WEBHOOKS_DELIVERIES_DLQ_URL"),
                ],
            ),
        };
        let (queue_url, dlq_url) = match (queue, dlq, &r.stack) {
            (Some(queue), Some(dlq), _) => (queue.clone(), dlq.clone()),
            (_, _, Some(stack)) => {
                let urls = queue_urls(&self.sdk, &ResourceNames::with_prefix(stack)).await?;
                let (stack_queue, stack_dlq) = match kind {
                    QueueKind::Events => (urls.events, urls.events_dlq),
                    QueueKind::Deliveries => (urls.deliveries, urls.deliveries_dlq),
                };
                (queue.clone().unwrap_or(stack_queue), dlq.clone().unwrap_or(stack_dlq))
            }
            (queue, _, None) => {
                let (flag, variable) = if queue.is_none() { missing[0] } else { missing[1] };
                return Err(AdminError::Missing {
                    what: "queue URL",
                    flag,
                    variable,
                });
            }
        };
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        Ok((
            SqsQueue::new(client.clone(), queue_url, None),
            SqsQueue::new(client, dlq_url, None),
        ))
    }
}
