//! What every function binary shares: typed [`settings`] read from the environment,
//! [`logging`] set up once, the [`lambda`] start-up, and the SQS [`batch`] lifter that runs one-message handlers
//! concurrently and reports partial failures.

pub mod batch;
pub mod lambda;
pub mod logging;
pub mod settings;

pub use batch::{BatchError, QueueRecord, process_batch, sqs_event};
pub use settings::{Environment, Settings, SettingsError};
