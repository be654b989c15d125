//! Passing an endpoint's held tasks on to the deliveries queue, oldest first: deliver does
//! it when the endpoint recovers (and for its probes), the merchant API when a merchant
//! recovers a time range. Both go through [`pass_on_held`], under the endpoint's release
//! lease, so that no held task is sent twice by two of them at once.

use std::time::Duration;

use uuid::Uuid;

use crate::StoreError;
use crate::ports::{EndpointBreaker, MAX_BATCH, OutgoingMessage, QueueSender};

/// How long a release may hold the endpoint's lease: a page of [`MAX_BATCH`]-message sends
/// and deletes ends well within it; a release that died meanwhile frees it when it runs out.
pub const RELEASE_LEASE: Duration = Duration::from_secs(30);

/// Which held tasks to pass on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldRelease<'a> {
    /// The endpoint, `{merchantId}#{subscriptionId}`.
    pub endpoint: &'a str,
    /// Held from (unix ms, included).
    pub since_ms: i64,
    /// Held before (unix ms, excluded).
    pub until_ms: i64,
    /// At most this many.
    pub limit: usize,
    /// Sent with this delay.
    pub delay: Duration,
}

impl<'a> HeldRelease<'a> {
    /// Up to `limit` of every task the endpoint holds, sent with `delay`.
    pub fn all(endpoint: &'a str, limit: usize, delay: Duration) -> Self {
        Self {
            endpoint,
            since_ms: 0,
            until_ms: i64::MAX,
            limit,
            delay,
        }
    }
}

/// What a release found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// This many held tasks were sent (and taken out of the index).
    Sent(usize),
    /// Another release holds the endpoint's lease: nothing was sent.
    Busy,
}

/// Sends the held tasks `release` names to `queue`, oldest first, and takes them out of the
/// index, under the endpoint's release lease. A task is deleted only after it was sent: one
/// whose release died between the two is sent again by the next (at least once).
pub async fn pass_on_held<S: EndpointBreaker, Q: QueueSender>(
    store: &S,
    queue: &Q,
    release: HeldRelease<'_>,
    now_ms: i64,
) -> Result<Released, StoreError> {
    let lease = Uuid::new_v4().to_string();
    let until_ms = now_ms + i64::try_from(RELEASE_LEASE.as_millis()).expect("30 s fits");
    if !store
        .take_release_lease(release.endpoint, &lease, now_ms, until_ms)
        .await?
    {
        return Ok(Released::Busy);
    }
    let sent = send_held(store, queue, &release).await;
    if let Err(error) = store.end_release_lease(release.endpoint, &lease).await {
        tracing::warn!(%error, "release lease not ended; it runs out");
    }
    sent.map(Released::Sent)
}

async fn send_held<S: EndpointBreaker, Q: QueueSender>(
    store: &S,
    queue: &Q,
    release: &HeldRelease<'_>,
) -> Result<usize, StoreError> {
    let held = store
        .held_tasks(release.endpoint, release.since_ms, release.until_ms, release.limit)
        .await?;
    for chunk in held.chunks(MAX_BATCH) {
        let messages = chunk
            .iter()
            .map(|task| OutgoingMessage {
                body: task.body.clone(),
                delay: release.delay,
            })
            .collect();
        for result in queue.send_batch(messages).await? {
            result?;
        }
        store.unhold(release.endpoint, chunk).await?;
    }
    Ok(held.len())
}
