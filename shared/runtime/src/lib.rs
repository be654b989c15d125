//! What every function binary shares: typed [`settings`] read from the environment,
//! [`logging`] set up once, [`metrics`] recorded through one facade, the [`lambda`] start-up, time [`budget`]s that end work before
//! the Lambda deadline, and the SQS [`batch`] lifter that runs one-message handlers
//! concurrently and reports partial failures.

pub mod batch;
pub mod budget;
pub mod lambda;
pub mod logging;
pub mod metrics;
pub mod settings;

pub use batch::{BatchError, BatchMemo, QueueRecord, batch_response, process_batch, sqs_event};
pub use budget::{Budget, LAMBDA_DEADLINE_MARGIN};
pub use settings::{Environment, Settings, SettingsError};
