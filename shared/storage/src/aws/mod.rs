//! The AWS adapters: one DynamoDB table ([`DynamoStore`], layout in `docs/data-model.md`)
//! and SQS queues ([`SqsQueue`]).

mod dynamo;
mod kms;
mod sqs;

pub use dynamo::DynamoStore;
pub use kms::kms_keyring;
pub use sqs::{QueueCounts, SqsQueue, create_queue_with_dlq};

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::{Builder as HttpClientBuilder, tls};

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

use crate::StoreError;
use crate::ports::{DELIVERIES_MAX_RECEIVE_COUNT, EVENTS_MAX_RECEIVE_COUNT};

/// The SDK configuration for the environment: credentials and region from the usual
/// chain (Lambda sets them), one rustls (ring) HTTPS client shared by every AWS client, and
/// `timeouts` on every call. `AWS_ENDPOINT_URL` (moto, LocalStack) is honoured by the SDK itself.
pub async fn sdk_config_from_env(timeouts: SdkTimeouts) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts.config())
        .load()
        .await
}

/// Bounds on every AWS call, so that a stuck endpoint fails the call (the decision, the
/// attempt or the request ends with an error, and SQS redelivers what was not done) instead
/// of holding its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkTimeouts {
    /// Opening a connection (TCP and TLS).
    pub connect: Duration,
    /// One attempt of a call, connecting included.
    pub attempt: Duration,
    /// A call with its retries.
    pub operation: Duration,
}

impl SdkTimeouts {
    /// Inside a Lambda function: connect 1 s (in the endpoint's region a handshake takes
    /// milliseconds; from across the world, a few hundred), attempt 2 s (over a hundred times
    /// DynamoDB's and SQS's usual latency), call 3 s.
    ///
    /// The 3 s sit inside the shortest function timeouts (template.yaml): a merchant's 5 s
    /// auth-callback decision plus one call plus the 0.5 s Lambda deadline margin is 8.5 s,
    /// under auth-callback's 10 s; deliver's longest webhook request (20 s) with a call
    /// before it and two after (record the attempt, schedule the retry) plus the margin is
    /// 29.5 s, under its 30 s; the merchant API's slowest request (two calls and a 5 s
    /// decision) is 11 s, under subscriptions' 15 s; a cold start's two calls (the table's
    /// CONFIG item) take at most 6 s of Lambda's 10 s init.
    pub const INSIDE_LAMBDA: Self = Self {
        connect: Duration::from_secs(1),
        attempt: Duration::from_secs(2),
        operation: Duration::from_secs(3),
    };

    /// Outside Lambda (the local stack, the admin CLI, tests): no invocation deadline to fit
    /// in, and the endpoint may be an emulator answering one request at a time under load:
    /// connect 3 s, attempt 25 s, call 60 s.
    pub const PATIENT: Self = Self {
        connect: Duration::from_secs(3),
        attempt: Duration::from_secs(25),
        operation: Duration::from_secs(60),
    };

    /// The SDK's form of these bounds.
    pub fn config(self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// An SDK configuration for a local endpoint such as moto server: region us-east-1 and
/// static dummy credentials, so nothing is looked up on the network; [`SdkTimeouts::PATIENT`].
pub fn sdk_config_for_endpoint(endpoint_url: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(SdkTimeouts::PATIENT.config())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint_url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build()
}

fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    HttpClientBuilder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Names of the resources one deployment uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    /// The DynamoDB table.
    pub table: String,
    /// The events queue (platform services -> ingest).
    pub events_queue: String,
    /// The deliveries queue (ingest -> deliver, and retries).
    pub deliveries_queue: String,
    /// The alias of the KMS key that wraps the data keys of sealed secrets.
    pub secrets_key: String,
}

impl ResourceNames {
    /// Names with a common prefix: `{prefix}-table`, `{prefix}-events`, `{prefix}-deliveries`,
    /// `alias/{prefix}-secrets`; each queue's DLQ is its name with `-dlq`.
    pub fn with_prefix(prefix: &str) -> Self {
        Self {
            table: format!("{prefix}-table"),
            events_queue: format!("{prefix}-events"),
            deliveries_queue: format!("{prefix}-deliveries"),
            secrets_key: format!("alias/{prefix}-secrets"),
        }
    }
}

/// The queue URLs of a created or looked-up deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// The events queue.
    pub events: String,
    /// Its DLQ.
    pub events_dlq: String,
    /// The deliveries queue.
    pub deliveries: String,
    /// Its DLQ.
    pub deliveries_dlq: String,
}

/// Creates the table (on-demand, TTL on `expiresAt`), both queues with their DLQs and
/// redrive policies ([`EVENTS_MAX_RECEIVE_COUNT`], [`DELIVERIES_MAX_RECEIVE_COUNT`]) and
/// the secrets' KMS key, as template.yaml does in a real deployment. Existing ones are reused.
pub async fn create_resources(config: &SdkConfig, names: &ResourceNames) -> Result<QueueUrls, StoreError> {
    dynamo::create_table(&aws_sdk_dynamodb::Client::new(config), &names.table).await?;
    kms::create_secrets_key(config, &names.secrets_key).await?;
    let sqs = aws_sdk_sqs::Client::new(config);
    let (events, events_dlq) = sqs::create_queue_with_dlq(&sqs, &names.events_queue, EVENTS_MAX_RECEIVE_COUNT).await?;
    let (deliveries, deliveries_dlq) =
        sqs::create_queue_with_dlq(&sqs, &names.deliveries_queue, DELIVERIES_MAX_RECEIVE_COUNT).await?;
    Ok(QueueUrls {
        events,
        events_dlq,
        deliveries,
        deliveries_dlq,
    })
}

/// A [`StoreError::Backend`] for an SDK error, with AWS's error code and message when it has them.
pub fn backend<E: ProvideErrorMetadata + std::fmt::Debug>(op: &'static str, error: E) -> StoreError {
    let message = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{error:?}"),
    };
    StoreError::backend(op, message)
}

/// The URLs of existing queues (made by the template or [`create_resources`]).
pub async fn queue_urls(config: &SdkConfig, names: &ResourceNames) -> Result<QueueUrls, StoreError> {
    let sqs = aws_sdk_sqs::Client::new(config);
    let url = |name: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .map_err(|e| backend("sqs.GetQueueUrl", e))?
                .queue_url
                .ok_or_else(|| StoreError::backend("sqs.GetQueueUrl", format!("no URL for {name}")))
        }
    };
    Ok(QueueUrls {
        events: url(names.events_queue.clone()).await?,
        events_dlq: url(format!("{}-dlq", names.events_queue)).await?,
        deliveries: url(names.deliveries_queue.clone()).await?,
        deliveries_dlq: url(format!("{}-dlq", names.deliveries_queue)).await?,
    })
}
