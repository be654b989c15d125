//! Delivery tasks (one per event and subscription, on the deliveries queue) and the record
//! of each attempt.

use serde::{Deserialize, Serialize};

use crate::event::{IsoTime, PlatformEvent};

/// One webhook to deliver: an event for one subscription, at a given attempt.
///
/// Each retry is a new queue message carrying `attempt + 1`, so the attempt number comes
/// from the message itself, not from SQS's approximate receive count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryTask {
    /// The event to deliver.
    pub event: PlatformEvent,
    /// The subscription it goes to.
    pub subscription_id: String,
    /// The attempt this message is for, from 1.
    pub attempt: u32,
    /// Not before this instant (delays beyond one queue hop are made of several hops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<IsoTime>,
    /// A merchant-asked retry: one attempt, never rescheduled.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual: bool,
    /// A manual attempt sent by a recovery, which claimed the delivery (its status set to
    /// pending): recorded once, with the delivery's status, succeeded or failed again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovery: bool,
}

impl DeliveryTask {
    /// The first, immediate attempt of `event` for `subscription_id`.
    pub fn first(event: PlatformEvent, subscription_id: String) -> Self {
        Self {
            event,
            subscription_id,
            attempt: 1,
            not_before: None,
            manual: false,
            recovery: false,
        }
    }

    /// What names this attempt of this delivery: `{eventId}#{subscriptionId}#{attempt}`.
    pub fn key(&self) -> String {
        format!("{}#{}#{}", self.event.event_id, self.subscription_id, self.attempt)
    }

    /// The task as a deliveries-queue message body: the one encoding of a task.
    pub fn to_message_body(&self) -> String {
        serde_json::to_string(self).expect("delivery tasks serialize")
    }

    /// A task from a deliveries-queue message body.
    pub fn from_message_body(body: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(body)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The merchant answered 2xx.
    Succeeded,
    /// Anything else.
    Failed,
    /// Not sent: the subscription was deleted or disabled.
    Skipped,
}

/// The record of one attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    /// The event delivered.
    pub event_id: String,
    /// The subscription it went to.
    pub subscription_id: String,
    /// Its owner.
    pub merchant_id: String,
    /// The event's name.
    pub event_name: crate::event::EventName,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// When the request started.
    pub attempted_at: IsoTime,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The merchant's status code, when it answered.
    pub status_code: Option<u16>,
    /// What went wrong: `timeout`, `connect_error`, `http_status`, `blocked_url`, ...
    pub error: Option<String>,
    /// From request start to the end of the (capped) response read, in milliseconds.
    pub latency_ms: u64,
    /// The first KiB of the response body, lossily decoded.
    pub response_excerpt: Option<String>,
    /// When the next attempt is due, when one is scheduled.
    pub next_attempt_at: Option<IsoTime>,
    /// Whether a merchant asked for this attempt by hand.
    pub manual: bool,
}

/// Where the delivery of one event to one subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Queued or waiting for a retry.
    Pending,
    /// Delivered.
    Succeeded,
    /// All attempts failed; the task is in the DLQ.
    Failed,
    /// The subscription was gone or disabled.
    Skipped,
    /// Held back: its endpoint is failing or was disabled for failing. Kept in the
    /// endpoint's held index until a probe succeeds, or until the merchant recovers it.
    Held,
}
