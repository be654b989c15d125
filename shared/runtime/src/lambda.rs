//! What every Lambda `main` starts from: settings, logging, the SDK and the table; and
//! the runtime loop of the functions behind an SQS event source.

use std::future::Future;

use anyhow::Context;
use aws_config::SdkConfig;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};
use webhooks_storage::Keyring;
use webhooks_storage::aws::{DynamoStore, SdkTimeouts, SqsQueue, kms_keyring, sdk_config_from_env};

use crate::batch::BatchError;
use crate::budget::Budget;
use crate::logging::init_logging;
use crate::settings::{Environment, Settings, SettingsError};

/// The platform's two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueName {
    /// Platform services -> ingest.
    Events,
    /// Ingest -> deliver, and retries.
    Deliveries,
}

/// Whether a function opens the secrets at rest, which decides its keyring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretAccess {
    /// It signs webhooks, calls merchants or shows secrets: it opens them with the KMS key
    /// `WEBHOOKS_KMS_KEY_ID` (required), and its role holds kms:Decrypt.
    Opens,
    /// It never reads a secret (ingest, the scheduler): no key, and no KMS permission.
    Never,
}

/// Settings, the SDK configuration and the store, built once per container.
pub struct LambdaContext {
    /// The settings from the environment.
    pub settings: Settings,
    /// The SDK configuration (credentials and region from the environment).
    pub sdk: SdkConfig,
    /// The table named by `WEBHOOKS_TABLE_NAME`.
    pub store: DynamoStore,
}

impl LambdaContext {
    /// Reads the settings, installs logging and the metrics recorder (EMF), configures the SDK and connects to the table
    /// with the keyring `access` calls for.
    pub async fn start(access: SecretAccess) -> anyhow::Result<Self> {
        let settings = Settings::from_env(Environment::Lambda)?;
        init_logging(settings.log_format);
        crate::metrics::install_emf(&settings.metrics_namespace);
        let sdk = sdk_config_from_env(SdkTimeouts::INSIDE_LAMBDA).await;
        let table = Settings::required(&settings.table_name, "WEBHOOKS_TABLE_NAME")?;
        let keyring = match access {
            SecretAccess::Opens => kms_keyring(&sdk, Settings::required(&settings.kms_key_id, "WEBHOOKS_KMS_KEY_ID")?),
            SecretAccess::Never => Keyring::withheld(),
        };
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let store = DynamoStore::connect(client, table, settings.retention(), keyring)
            .await
            .context("connect to the table")?;
        Ok(Self { settings, sdk, store })
    }

    /// One of the queues, with its DLQ, from `WEBHOOKS_{EVENTS,DELIVERIES}_{QUEUE,DLQ}_URL`.
    pub fn queue(&self, name: QueueName) -> Result<SqsQueue, SettingsError> {
        let s = &self.settings;
        let (url, dlq) = match name {
            QueueName::Events => (
                Settings::required(&s.events_queue_url, "WEBHOOKS_EVENTS_QUEUE_URL")?,
                Settings::required(&s.events_dlq_url, "WEBHOOKS_EVENTS_DLQ_URL")?,
            ),
            QueueName::Deliveries => (
                Settings::required(&s.deliveries_queue_url, "WEBHOOKS_DELIVERIES_QUEUE_URL")?,
                Settings::required(&s.deliveries_dlq_url, "WEBHOOKS_DELIVERIES_DLQ_URL")?,
            ),
        };
        Ok(SqsQueue::new(
            aws_sdk_sqs::Client::new(&self.sdk),
            url,
            Some(dlq.to_owned()),
        ))
    }
}

/// Runs the Lambda runtime loop of a function behind an SQS event source: each invocation's
/// batch goes to `handle` with the invocation's time [`Budget`], and its partial-failure
/// answer (ReportBatchItemFailures) back; the metrics it recorded are flushed after it.
pub async fn serve_sqs_batches<F, Fut>(handle: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(SqsEvent, Budget) -> Fut,
    Fut: Future<Output = Result<SqsBatchResponse, BatchError>>,
{
    let handle = &handle;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async move {
        let budget = Budget::of_invocation(&event.context);
        let answer = handle(event.payload, budget).await.map_err(lambda_runtime::Error::from);
        crate::metrics::flush_emf();
        answer
    }))
    .await
}
