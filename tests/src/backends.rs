//! The two backends every whole-system test runs on: the embedded SQLite store and queues,
//! and DynamoDB + SQS on a real moto server behind the AWS quota layer. Both refuse what
//! AWS refuses, and both count in-flight messages.

use webhooks_storage::aws::{DynamoStore, SqsQueue, create_queue_with_dlq};
use webhooks_storage::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use webhooks_storage::{Backend, Queue};

use crate::moto::MotoDeployment;

/// A backend under test: its store, and queues with DLQs made on demand.
#[allow(async_fn_in_trait)]
pub trait Harness {
    /// The store.
    type Store: Backend + Clone + 'static;
    /// A queue.
    type Queue: Queue + Clone + 'static;
    /// The store.
    fn store(&self) -> &Self::Store;
    /// A fresh queue whose messages go to the returned DLQ after `max_receive_count` receives.
    async fn queue_pair(&self, name: &str, max_receive_count: u32) -> (Self::Queue, Self::Queue);
    /// How many of `queue`'s messages are in flight (received, not deleted, still hidden),
    /// as counted against SQS's in-flight quota.
    async fn in_flight(&self, queue: &Self::Queue) -> usize;
}

/// The embedded backend in a temporary directory.
pub struct Embedded {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

impl Embedded {
    /// A fresh backend.
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("store.sqlite3")).unwrap();
        Self { store, _dir: dir }
    }
}

impl Harness for Embedded {
    type Store = EmbeddedStore;
    type Queue = EmbeddedQueue;
    fn store(&self) -> &EmbeddedStore {
        &self.store
    }
    async fn queue_pair(&self, name: &str, max_receive_count: u32) -> (EmbeddedQueue, EmbeddedQueue) {
        let dlq_name = format!("{name}-dlq");
        let queue = self.store.queue(
            name,
            QueueSettings {
                dlq: Some(dlq_name.clone()),
                max_receive_count,
            },
        );
        let dlq = self.store.queue(
            &dlq_name,
            QueueSettings {
                dlq: None,
                max_receive_count: 0,
            },
        );
        (queue, dlq)
    }
    async fn in_flight(&self, queue: &EmbeddedQueue) -> usize {
        queue.in_flight().await.expect("count the messages in flight")
    }
}

/// DynamoDB and SQS on a moto server of its own: a [`MotoDeployment`], whose clients go
/// through the AWS quota layer.
pub struct Aws {
    deployment: MotoDeployment,
}

impl Aws {
    /// A fresh backend.
    pub async fn new() -> Self {
        Self {
            deployment: MotoDeployment::start().await,
        }
    }

    /// The deployment: its clients, resource names and quota layer.
    pub fn deployment(&self) -> &MotoDeployment {
        &self.deployment
    }
}

impl Harness for Aws {
    type Store = DynamoStore;
    type Queue = SqsQueue;
    fn store(&self) -> &DynamoStore {
        &self.deployment.store
    }
    async fn queue_pair(&self, name: &str, max_receive_count: u32) -> (SqsQueue, SqsQueue) {
        let sqs = &self.deployment.sqs;
        let (url, dlq_url) = create_queue_with_dlq(sqs, name, max_receive_count).await.unwrap();
        (
            SqsQueue::new(sqs.clone(), url, Some(dlq_url.clone())),
            SqsQueue::new(sqs.clone(), dlq_url, None),
        )
    }
    async fn in_flight(&self, queue: &SqsQueue) -> usize {
        self.deployment.quota_layer().in_flight(queue.url())
    }
}

/// Runs each named case of the calling test file's `cases` module once per backend, as
/// `embedded::case` and `aws_on_moto::case` (multi-threaded runtimes, two workers).
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $case() { super::cases::$case(&$crate::backends::Embedded::new().await).await })*
        }
        mod aws_on_moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $case() { super::cases::$case(&$crate::backends::Aws::new().await).await })*
        }
    };
}
