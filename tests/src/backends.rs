//! The two backends every whole-system test runs on: the embedded SQLite store and queues,
//! and DynamoDB + SQS on a real moto server.

use std::time::Duration;

use webhooks_storage::aws::{
    DynamoStore, ResourceNames, SqsQueue, create_queue_with_dlq, create_resources, sdk_config_for_endpoint,
};
use webhooks_storage::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use webhooks_storage::{Backend, Queue};

use crate::moto::MotoServer;

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
}

/// DynamoDB and SQS on a moto server of its own.
pub struct Aws {
    store: DynamoStore,
    sqs: aws_sdk_sqs::Client,
    _moto: MotoServer,
}

impl Aws {
    /// A fresh backend.
    pub async fn new() -> Self {
        let moto = MotoServer::start();
        let config = sdk_config_for_endpoint(moto.endpoint());
        let names = ResourceNames::with_prefix("conformance");
        create_resources(&config, &names, 5).await.unwrap();
        let store = DynamoStore::connect(
            aws_sdk_dynamodb::Client::new(&config),
            names.table,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
        Self {
            store,
            sqs: aws_sdk_sqs::Client::new(&config),
            _moto: moto,
        }
    }
}

impl Harness for Aws {
    type Store = DynamoStore;
    type Queue = SqsQueue;
    fn store(&self) -> &DynamoStore {
        &self.store
    }
    async fn queue_pair(&self, name: &str, max_receive_count: u32) -> (SqsQueue, SqsQueue) {
        let (url, dlq_url) = create_queue_with_dlq(&self.sqs, name, max_receive_count).await.unwrap();
        (
            SqsQueue::new(self.sqs.clone(), url, Some(dlq_url.clone())),
            SqsQueue::new(self.sqs.clone(), dlq_url, None),
        )
    }
}
