//! The scheduler (DESIGN §3): a retry due more than 15 minutes out waits in the table's
//! due-time index, never in a message's visibility timeout; once a minute (EventBridge in
//! AWS, a short tick in the local stack) this moves every task that is due to the
//! deliveries queue, earliest first, shard by shard. It also passes on any hand-off that
//! deliver recorded but could not pass on itself (a crash or a queue failure right after
//! the record): a retry to the queue, an exhausted delivery to the dead-letter queue.
//!
//! Idempotent: a task is sent, then removed from the index. A crash in between sends it
//! again next time; the deliver step records each attempt once, so a duplicate starts no
//! second chain. A run that was missed is caught up by the next: it takes everything due
//! by now, however late.

use std::sync::Arc;
use std::time::Duration;

use webhooks_domain::{Clock, unix_millis};
use webhooks_runtime::metrics;
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{DUE_INDEX_SHARDS, OutgoingMessage, ParkedRetries, ParkedTask, QueueSender, StoreError};

/// Parked tasks read from one shard at a time.
pub const DUE_PAGE_SIZE: usize = 100;
/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveReport {
    /// Tasks sent on (retries to the queue, dead letters to the DLQ).
    pub moved: usize,
    /// How late the most overdue of them was: the backlog's age (zero when the scheduler
    /// keeps up, growing when it does not).
    pub oldest_due_age: Duration,
}

/// Why a run stopped early; what it moved before stays moved.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store or the queue failed; the next run takes over.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some tasks were refused by the queue; they stay parked for the next run.
    #[error("{refused} of {total} due tasks were not enqueued: {first}")]
    Enqueue {
        /// Entries refused.
        refused: usize,
        /// Entries sent.
        total: usize,
        /// The first refusal.
        first: StoreError,
    },
}

/// The scheduler's dependencies: the store (its due-time index), the deliveries queue and
/// the clock.
pub struct Scheduler<S, Q> {
    store: S,
    deliveries: Q,
    clock: Arc<dyn Clock>,
}

impl<S: ParkedRetries, Q: QueueSender> Scheduler<S, Q> {
    /// The scheduler over these ports.
    pub fn new(store: S, deliveries: Q, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            deliveries,
            clock,
        }
    }

    /// Moves every task due by now to the deliveries queue.
    pub async fn move_due_tasks(&self) -> Result<MoveReport, SchedulerError> {
        let now = self.clock.now();
        let now_ms = unix_millis(now);
        let mut moved = 0;
        let mut earliest_due_ms = now_ms;
        for shard in 0..DUE_INDEX_SHARDS {
            loop {
                let due = self.store.due_tasks(shard, now_ms, DUE_PAGE_SIZE).await?;
                if let Some(first) = due.first() {
                    earliest_due_ms = earliest_due_ms.min(first.due_ms);
                }
                let (dead_letters, retries): (Vec<ParkedTask>, Vec<ParkedTask>) =
                    due.iter().cloned().partition(|task| task.dead_letter_reason.is_some());
                for batch in retries.chunks(MAX_BATCH) {
                    moved += self.move_batch(batch).await?;
                }
                for dead_letter in &dead_letters {
                    self.move_dead_letter(dead_letter).await?;
                    moved += 1;
                }
                if due.len() < DUE_PAGE_SIZE {
                    break;
                }
            }
        }
        let oldest_due_age = Duration::from_millis(u64::try_from(now_ms - earliest_due_ms).unwrap_or(0));
        if moved > 0 {
            tracing::info!(
                moved,
                oldest_due_age_ms = oldest_due_age.as_millis(),
                "due retries moved to the deliveries queue"
            );
        }
        metrics::count(metrics::RETRIES_RELEASED, moved as u64);
        metrics::gauge_seconds(metrics::OLDEST_PARKED_RETRY_AGE, oldest_due_age);
        Ok(MoveReport { moved, oldest_due_age })
    }

    /// Sends an exhausted delivery's hand-off to the dead-letter queue, then removes it.
    async fn move_dead_letter(&self, task: &ParkedTask) -> Result<(), SchedulerError> {
        let reason = task.dead_letter_reason.as_deref().unwrap_or_default();
        self.deliveries.send_dead_letter(&task.body, reason).await?;
        self.store.unpark(std::slice::from_ref(task)).await?;
        Ok(())
    }

    /// Sends up to ten due tasks at once, then removes those the queue took.
    async fn move_batch(&self, batch: &[ParkedTask]) -> Result<usize, SchedulerError> {
        let messages = batch
            .iter()
            .map(|task| OutgoingMessage {
                body: task.body.clone(),
                delay: Duration::ZERO,
            })
            .collect();
        let results = self.deliveries.send_batch(messages).await?;
        let sent: Vec<ParkedTask> = batch
            .iter()
            .zip(&results)
            .filter(|(_, result)| result.is_ok())
            .map(|(task, _)| task.clone())
            .collect();
        self.store.unpark(&sent).await?;
        let mut refusals = results.into_iter().filter_map(Result::err);
        match refusals.next() {
            None => Ok(sent.len()),
            Some(first) => Err(SchedulerError::Enqueue {
                refused: 1 + refusals.count(),
                total: batch.len(),
                first,
            }),
        }
    }
}
