//! A real DynamoDB and SQS wire protocol for tests: `moto_server` from the repo's `.venv`,
//! started on a free loopback port and stopped when the guard drops ([`MotoServer`]), and
//! the platform's table and queues made on it as template.yaml makes them
//! ([`MotoDeployment`]), reached through clients that enforce AWS's quotas ([`QuotaLayer`]).
//! Every test on moto starts from these two.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use webhooks_storage::DEFAULT_RETENTION;
use webhooks_storage::aws::{
    DynamoStore, QueueUrls, ResourceNames, SqsQueue, create_resources, kms_keyring, sdk_config_for_endpoint,
};

use crate::aws_quotas::QuotaLayer;
use crate::verifiers::repo_root;

/// How long moto may take to start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The stack a [`MotoDeployment`] is deployed as: its resources are named as template.yaml
/// names a stack's, `{STACK_NAME}-table`, `{STACK_NAME}-events`, `{STACK_NAME}-events-dlq`, ...
pub const STACK_NAME: &str = "webhooks-test";

/// A running moto server; killed on drop.
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts moto's server and waits until it accepts connections: `$WEBHOOKS_TEST_MOTO`
    /// (a `moto_server` executable) if set, else `tests/moto_server.py` on the repo's
    /// `.venv` Python (moto with DynamoDB's atomic writes). Panics with the install command
    /// when it is missing.
    pub fn start() -> Self {
        let (binary, script) = match std::env::var_os("WEBHOOKS_TEST_MOTO") {
            Some(binary) => (PathBuf::from(binary), None),
            None => (
                repo_root().join(".venv/bin/python"),
                Some(repo_root().join("tests/moto_server.py")),
            ),
        };
        assert!(
            binary.exists(),
            "moto server is not installed at {}: run `python3 -m venv .venv && \
             .venv/bin/pip install -r tests/requirements.txt` (or set WEBHOOKS_TEST_MOTO)",
            binary.display()
        );
        let port = free_port();
        let child = Command::new(&binary)
            .args(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto server exited at start-up: {status}");
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "moto server did not listen within {STARTUP_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The endpoint URL to give the AWS SDK, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The subscription shards every store on a moto deployment writes: more than one, so that
/// every test that lists, counts or recovers attempts reads merged shards.
pub const TEST_SUBSCRIPTION_SHARDS: u32 = 4;

/// The platform's table and queues on a moto server of their own, made as template.yaml
/// makes them for the stack [`STACK_NAME`]; moto stops when this drops. Its clients go
/// through a [`QuotaLayer`], so a request AWS would refuse fails here too.
pub struct MotoDeployment {
    /// The table, through the platform's own adapter (on [`MotoDeployment::dynamodb`]).
    pub store: DynamoStore,
    /// A DynamoDB client on moto, through the quota layer.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// An SQS client on moto, through the quota layer.
    pub sqs: aws_sdk_sqs::Client,
    /// The names of the table and queues.
    pub names: ResourceNames,
    /// Both queues and their DLQs.
    pub queues: QueueUrls,
    quotas: QuotaLayer,
    server: MotoServer,
}

impl MotoDeployment {
    /// Starts moto, creates the table and both queues with their DLQs and redrive policies
    /// ([`create_resources`]), shows the table to the quota layer and connects to it. The
    /// layer's request counts start after this set-up.
    pub async fn start() -> Self {
        let server = MotoServer::start();
        let config = sdk_config_for_endpoint(server.endpoint());
        let names = ResourceNames::with_prefix(STACK_NAME);
        let queues = create_resources(&config, &names)
            .await
            .expect("create the table and queues on moto");
        let quotas = QuotaLayer::new();
        let dynamodb = quotas.dynamodb(&config);
        // The layer learns the table's keys from its description.
        dynamodb
            .describe_table()
            .table_name(&names.table)
            .send()
            .await
            .expect("describe the table on moto");
        let keyring = kms_keyring(&config, names.secrets_key.clone());
        let store = DynamoStore::connect(dynamodb.clone(), names.table.clone(), DEFAULT_RETENTION, keyring)
            .await
            .expect("connect to the table on moto")
            .with_subscription_shards(TEST_SUBSCRIPTION_SHARDS)
            .await
            .expect("raise the subscription shards on moto");
        quotas.reset();
        Self {
            store,
            dynamodb,
            sqs: quotas.sqs(&config),
            names,
            queues,
            quotas,
            server,
        }
    }

    /// The quota layer every client of this deployment goes through: its request counts
    /// and in-flight messages.
    pub fn quota_layer(&self) -> &QuotaLayer {
        &self.quotas
    }

    /// The moto endpoint.
    pub fn endpoint(&self) -> &str {
        self.server.endpoint()
    }

    /// The queue at `url` (one of [`MotoDeployment::queues`]), through the platform's adapter.
    pub fn queue(&self, url: &str) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), url, None)
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a loopback port")
}
