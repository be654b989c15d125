//! Queues with SQS semantics in the store's file: the `messages` table, one row per
//! message, labelled with its queue's name.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use uuid::Uuid;

use super::connection::{Db, write_tx};
use crate::StoreError;
use crate::ports::{
    MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, OutgoingMessage, QueueReceiver, QueueSender, ReceivedMessage,
};
use crate::rules::unix_time::{millis, now_ms};

/// The longest a long-polling receiver sleeps before looking at the table again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The DLQ reason of a message received more than its queue's maximum receive count.
pub const MAX_RECEIVE_REASON: &str = "max receive count exceeded";

/// How a queue dead-letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue that takes messages received too often (`None`: messages never move on their own).
    pub dlq: Option<String>,
    /// A message already received this many times goes to the DLQ instead of a consumer.
    pub max_receive_count: u32,
}

/// A queue with SQS semantics in the store's SQLite file (the `messages` table).
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    db: Arc<Db>,
    name: String,
    dlq: Option<String>,
    max_receive_count: u32,
    notify: Arc<Notify>,
}

/// Moves the row `row_id` to the queue `dlq`, visible at once, with `reason`.
fn dead_letter(conn: &Connection, row_id: i64, dlq: &str, reason: &str, now: i64) -> rusqlite::Result<usize> {
    let sql = "UPDATE messages SET queue = ?1, receipt = NULL, receive_count = 0, visible_at_ms = ?2, \
               dlq_reason = ?3 WHERE id = ?4";
    conn.execute(sql, params![dlq, now, reason, row_id])
}

fn check_visibility(op: &'static str, visibility: Duration) -> Result<(), StoreError> {
    if visibility > MAX_VISIBILITY {
        return Err(StoreError::backend(op, "visibility timeout exceeds 12 hours"));
    }
    Ok(())
}

impl EmbeddedQueue {
    /// The queue `name` on `db`.
    pub(super) fn new(db: Arc<Db>, name: &str, settings: QueueSettings) -> Self {
        Self {
            notify: db.notifier(name),
            db,
            name: name.to_owned(),
            dlq: settings.dlq,
            max_receive_count: settings.max_receive_count,
        }
    }

    /// Why the message with this id (in any queue) was dead-lettered, if it was.
    pub async fn dlq_reason(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        self.db.call("queue.dlq_reason", |conn| {
            let sql = "SELECT dlq_reason FROM messages WHERE message_id = ?1";
            Ok(conn
                .query_row(sql, [message_id], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
    }

    /// One receive without waiting: the messages, and the earliest `visible_at_ms` left in
    /// the queue (for the long poll to know when to look again).
    fn receive_now(&self, max: usize, visibility: Duration) -> Result<(Vec<ReceivedMessage>, Option<i64>), StoreError> {
        let (limit, hide) = (i64::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(1), millis(visibility));
        let (received, moved, next) = self.db.call("queue.receive", |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let sql = "SELECT id, message_id, body, receive_count FROM messages \
                       WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY visible_at_ms, id LIMIT ?3";
            let rows = tx
                .prepare_cached(sql)?
                .query_map(params![self.name, now, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<Vec<(i64, String, String, u32)>, _>>()?;
            let (mut received, mut moved) = (Vec::new(), 0usize);
            for (row_id, message_id, body, count) in rows {
                match &self.dlq {
                    Some(dlq) if count >= self.max_receive_count => {
                        moved += dead_letter(&tx, row_id, dlq, MAX_RECEIVE_REASON, now)?;
                    }
                    _ => {
                        let receipt = Uuid::new_v4().to_string();
                        let sql = "UPDATE messages SET receive_count = receive_count + 1, visible_at_ms = ?1, \
                                   receipt = ?2 WHERE id = ?3";
                        tx.execute(sql, params![now.saturating_add(hide), receipt, row_id])?;
                        received.push(ReceivedMessage {
                            message_id,
                            receipt_handle: receipt,
                            body,
                            receive_count: count.saturating_add(1),
                        });
                    }
                }
            }
            let sql = "SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1";
            let next: Option<i64> = tx.query_row(sql, [&self.name], |row| row.get(0))?;
            tx.commit()?;
            Ok((received, moved, next))
        })?;
        if let Some(dlq) = &self.dlq
            && moved > 0
        {
            tracing::warn!(queue = %self.name, dlq = %dlq, moved, "{MAX_RECEIVE_REASON}: moved to the DLQ");
            self.db.notifier(dlq).notify_waiters();
        }
        Ok((received, next))
    }

    /// Deletes the message this receipt handed out; whether there was one.
    fn delete_received(conn: &Connection, queue: &str, receipt_handle: &str) -> rusqlite::Result<bool> {
        let sql = "DELETE FROM messages WHERE queue = ?1 AND receipt = ?2";
        Ok(conn.prepare_cached(sql)?.execute(params![queue, receipt_handle])? > 0)
    }
}

impl QueueSender for EmbeddedQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<(), StoreError> {
        self.send_batch(vec![message])
            .await?
            .into_iter()
            .next()
            .unwrap_or(Ok(()))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if messages.len() > MAX_BATCH {
            let why = format!("{} messages, at most {MAX_BATCH} per batch", messages.len());
            return Err(StoreError::backend("queue.send_batch", why));
        }
        let results = self.db.call("queue.send_batch", |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let mut results = Vec::with_capacity(messages.len());
            {
                let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count) \
                           VALUES (?1, ?2, ?3, ?4, 0)";
                let mut insert = tx.prepare_cached(sql)?;
                for message in &messages {
                    if message.delay > MAX_DELAY {
                        results.push(Err(StoreError::backend("queue.send", "delay exceeds 15 minutes")));
                        continue;
                    }
                    let visible_at = now.saturating_add(millis(message.delay));
                    insert.execute(params![self.name, Uuid::new_v4().to_string(), message.body, visible_at])?;
                    results.push(Ok(()));
                }
            }
            tx.commit()?;
            Ok(results)
        })?;
        self.notify.notify_waiters();
        Ok(results)
    }

    async fn send_dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let Some(dlq) = &self.dlq else {
            let why = format!("queue {} has no dead-letter queue", self.name);
            return Err(StoreError::backend("queue.send_dead_letter", why));
        };
        self.db.call("queue.send_dead_letter", |conn| {
            let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count, dlq_reason) \
                       VALUES (?1, ?2, ?3, ?4, 0, ?5)";
            conn.prepare_cached(sql)?
                .execute(params![dlq, Uuid::new_v4().to_string(), body, now_ms(), reason])?;
            Ok(())
        })?;
        self.db.notifier(dlq).notify_waiters();
        Ok(())
    }
}

impl QueueReceiver for EmbeddedQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        check_visibility("queue.receive", visibility)?;
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(wait).unwrap_or(start + Duration::from_secs(86_400));
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (received, next_visible_ms) = self.receive_now(max, visibility)?;
            let now = tokio::time::Instant::now();
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let mut wake = deadline.min(now + POLL_INTERVAL);
            if let Some(at) = next_visible_ms {
                let until_visible = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                wake = wake.min(now + Duration::from_millis(until_visible));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn change_visibility(&self, receipt_handle: &str, visibility: Duration) -> Result<(), StoreError> {
        check_visibility("queue.change_visibility", visibility)?;
        let sql = "UPDATE messages SET visible_at_ms = ?1 WHERE queue = ?2 AND receipt = ?3";
        let visible_at = now_ms().saturating_add(millis(visibility));
        let args = params![visible_at, self.name, receipt_handle];
        match self.db.exec("queue.change_visibility", sql, args)? {
            0 => Err(StoreError::BadReceipt),
            _ => {
                self.notify.notify_waiters();
                Ok(())
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        let deleted = self.db.call("queue.delete", |conn| {
            Ok(Self::delete_received(conn, &self.name, receipt_handle)?)
        })?;
        if deleted { Ok(()) } else { Err(StoreError::BadReceipt) }
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if receipt_handles.len() > MAX_BATCH {
            let why = format!("{} handles, at most {MAX_BATCH} per batch", receipt_handles.len());
            return Err(StoreError::backend("queue.delete_batch", why));
        }
        self.db.call("queue.delete_batch", |conn| {
            let tx = write_tx(conn)?;
            let mut results = Vec::with_capacity(receipt_handles.len());
            for receipt in &receipt_handles {
                let deleted = Self::delete_received(&tx, &self.name, receipt)?;
                results.push(if deleted { Ok(()) } else { Err(StoreError::BadReceipt) });
            }
            tx.commit()?;
            Ok(results)
        })
    }

    async fn approximate_len(&self) -> Result<usize, StoreError> {
        let count: i64 = self.db.call("queue.len", |conn| {
            let sql = "SELECT COUNT(*) FROM messages WHERE queue = ?1";
            Ok(conn.query_row(sql, [&self.name], |row| row.get(0))?)
        })?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::open_temporary;

    const NO_WAIT: Duration = Duration::ZERO;
    const LONG: Duration = Duration::from_secs(30);

    fn message(body: &str, delay_ms: u64) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            delay: Duration::from_millis(delay_ms),
        }
    }

    #[tokio::test]
    async fn a_delay_hides_the_message_until_it_is_due() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("later", 300)).await.unwrap();
        assert!(queue.receive(10, LONG, NO_WAIT).await.unwrap().is_empty());
        assert_eq!(queue.approximate_len().await.unwrap(), 1);
        let got = queue.receive(10, LONG, Duration::from_secs(5)).await.unwrap();
        assert_eq!((got.len(), got[0].body.as_str(), got[0].receive_count), (1, "later", 1));
    }

    #[tokio::test]
    async fn an_ended_visibility_timeout_hands_the_message_out_again() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("again", 0)).await.unwrap();
        let first = queue.receive(1, Duration::from_millis(200), NO_WAIT).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(queue.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
        let second = queue.receive(1, LONG, Duration::from_secs(5)).await.unwrap();
        assert_eq!(second[0].message_id, first[0].message_id);
        assert_eq!(second[0].receive_count, 2);
        assert_eq!(
            queue.delete(&first[0].receipt_handle).await,
            Err(StoreError::BadReceipt)
        );
        queue.delete(&second[0].receipt_handle).await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn messages_go_to_the_dlq_after_max_receives_or_when_sent_there_with_the_reason() {
        let (_dir, store) = open_temporary();
        let settings = QueueSettings {
            dlq: Some("tasks-dlq".into()),
            max_receive_count: 2,
        };
        let queue = store.queue("tasks", settings);
        let dlq = store.queue("tasks-dlq", QueueSettings::default());
        queue.send(message("poison", 0)).await.unwrap();
        for expected in 1..=2 {
            let got = queue.receive(1, Duration::ZERO, NO_WAIT).await.unwrap();
            assert_eq!(got[0].receive_count, expected);
        }
        assert!(queue.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
        let dead = dlq.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!((dead[0].body.as_str(), dead[0].receive_count), ("poison", 1));
        assert_eq!(
            dlq.dlq_reason(&dead[0].message_id).await.unwrap().as_deref(),
            Some(MAX_RECEIVE_REASON)
        );

        queue.send_dead_letter("bad", "invalid_json").await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
        let refused = dlq.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!(refused[0].body, "bad");
        assert_eq!(
            queue.dlq_reason(&refused[0].message_id).await.unwrap().as_deref(),
            Some("invalid_json")
        );
        assert!(matches!(
            dlq.send_dead_letter("nowhere", "no dlq").await,
            Err(StoreError::Backend { .. })
        ));
    }

    #[tokio::test]
    async fn a_send_wakes_a_long_poll_at_once() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        let poller = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.receive(1, LONG, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = std::time::Instant::now();
        queue.send(message("wake", 0)).await.unwrap();
        let got = poller.await.expect("join").expect("receive");
        assert_eq!(got[0].body, "wake");
        assert!(
            sent.elapsed() < POLL_INTERVAL * 8 / 10,
            "woken by polling, not by the send"
        );
    }
}
