//! What every function's `lambda_runtime` test stands on: the platform's table and queues
//! on moto, the function's bootstrap polling an emulator of its own, and the seeding steps
//! those tests share.

use std::path::Path;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Map, Value, json};
use webhooks_domain::NewApiKey;
use webhooks_storage::{MerchantStore, OutgoingMessage, QueueSender};

use super::{FunctionProcess, LambdaEmulator, REGION};
use crate::fixtures;
use crate::moto::MotoDeployment;

/// How long a bootstrap may take to reach its first `GET /next`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`LambdaStack::sqs_event_carrying`] waits for its message to come back, in
/// seconds (an SQS long poll).
const RECEIVE_WAIT_SECONDS: i32 = 5;

/// The settings that let a function call a merchant on loopback over plain http, as the
/// local stack allows (Lambda's own policy is https to public hosts only).
pub const LOOPBACK_URLS: &[(&str, &str)] = &[("WEBHOOKS_ALLOW_HTTP", "true"), ("WEBHOOKS_ALLOW_PRIVATE_URLS", "true")];

/// The metrics namespace the functions are started with (their EMF lines carry it).
pub const METRICS_NAMESPACE: &str = "Webhooks/lambda-test";

/// One function as Lambda runs it, against the platform's table and queues on moto.
pub struct LambdaStack {
    /// The table and queues.
    pub aws: MotoDeployment,
    /// The Runtime API the function polls.
    pub emulator: LambdaEmulator,
    /// The function's bootstrap, polling.
    pub function: FunctionProcess,
}

impl LambdaStack {
    /// Deploys the platform on moto, starts `binary` as the function `function_name` with
    /// the deployment's environment (dummy credentials, `AWS_ENDPOINT_URL` pointed at moto,
    /// the `WEBHOOKS_*` table and queue settings) and then `env` (which may override it), and
    /// waits until the function polls. Panics with the function's log when it does not.
    pub async fn start(function_name: &str, binary: &Path, env: &[(&str, &str)]) -> Self {
        let aws = MotoDeployment::start().await;
        let emulator = LambdaEmulator::start(function_name)
            .await
            .expect("start the Runtime API");
        let env: Vec<(String, String)> = deployment_env(&aws)
            .iter()
            .chain(env)
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let mut function = FunctionProcess::spawn(binary, &emulator, &env).expect("spawn the bootstrap");
        function
            .wait_until_polling(&emulator, START_TIMEOUT)
            .await
            .unwrap_or_else(|not_polling| panic!("{not_polling}"));
        Self {
            aws,
            emulator,
            function,
        }
    }

    /// Stores the merchant `merchant_id` ([`fixtures::merchant`]) with a fresh API key, and
    /// returns the key.
    pub async fn add_merchant(&self, merchant_id: &str) -> NewApiKey {
        let key = NewApiKey::generate();
        self.aws
            .store
            .create_merchant(&fixtures::merchant(merchant_id), &key.hash)
            .await
            .expect("store the merchant on moto");
        key
    }

    /// Sends `body` to the queue at `queue_url`, receives what is then visible there (up to
    /// 10 messages) and returns the event an SQS event source mapping would invoke with:
    /// each record with moto's message id, receipt handle, MD5 and system attributes
    /// (`ApproximateReceiveCount`, `SentTimestamp`, ...), `messageAttributes` empty (the
    /// platform sets none), `eventSource` `aws:sqs` and the queue's ARN.
    pub async fn sqs_event_carrying(&self, queue_url: &str, body: String) -> Value {
        let message = OutgoingMessage {
            body,
            delay: Duration::ZERO,
        };
        self.aws
            .queue(queue_url)
            .send(message)
            .await
            .expect("send to the queue on moto");
        self.receive_sqs_event(queue_url)
            .await
            .expect("receive from the queue on moto")
    }

    /// The receiving half of [`LambdaStack::sqs_event_carrying`].
    async fn receive_sqs_event(&self, queue_url: &str) -> Result<Value, aws_sdk_sqs::Error> {
        let sqs = &self.aws.sqs;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let messages = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(RECEIVE_WAIT_SECONDS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        let records: Vec<Value> = messages
            .into_iter()
            .map(|message| {
                let attributes: Map<String, Value> = message
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name.as_str().to_owned(), Value::String(value)))
                    .collect();
                json!({
                    "messageId": message.message_id,
                    "receiptHandle": message.receipt_handle,
                    "body": message.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": message.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        Ok(json!({ "Records": records }))
    }
}

/// What a function needs to reach `aws`: dummy credentials, `AWS_ENDPOINT_URL` pointed at
/// moto, and the `WEBHOOKS_*` table, queue and key settings (the key is ignored by the
/// functions that never open a secret).
fn deployment_env(aws: &MotoDeployment) -> [(&str, &str); 10] {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", aws.endpoint()),
        ("WEBHOOKS_TABLE_NAME", &aws.names.table),
        ("WEBHOOKS_EVENTS_QUEUE_URL", &aws.queues.events),
        ("WEBHOOKS_EVENTS_DLQ_URL", &aws.queues.events_dlq),
        ("WEBHOOKS_DELIVERIES_QUEUE_URL", &aws.queues.deliveries),
        ("WEBHOOKS_DELIVERIES_DLQ_URL", &aws.queues.deliveries_dlq),
        ("WEBHOOKS_KMS_KEY_ID", &aws.names.secrets_key),
        ("WEBHOOKS_METRICS_NAMESPACE", METRICS_NAMESPACE),
    ]
}
