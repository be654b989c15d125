//! The table's keys (`docs/data-model.md`, section 2). Attempt sort keys are shared with
//! the embedded store: `rules::attempt_key`.

/// The partition of every merchant profile.
pub(super) const MERCHANTS_PK: &str = "MERCHANTS";
/// What every merchant profile's sort key begins with.
pub(super) const MERCHANT_PREFIX: &str = "MERCHANT#";
/// What every subscription's (and delivery status's) sort key begins with.
pub(super) const SUBSCRIPTION_PREFIX: &str = "SUB#";
/// The sort key of an API key item.
pub(super) const API_KEY_SK: &str = "APIKEY";
/// The sort key of an event item.
pub(super) const EVENT_SK: &str = "EVENT";
/// The sort key of a merchant's auth-callback item.
pub(super) const AUTH_CALLBACK_SK: &str = "AUTH_CALLBACK";

/// A merchant's partition (subscriptions, auth callback), also its profile's sort key.
pub(super) fn merchant_pk(merchant_id: &str) -> String {
    format!("{MERCHANT_PREFIX}{merchant_id}")
}

/// The sort key of a subscription in its merchant's partition, or of a delivery status.
pub(super) fn subscription_sk(subscription_id: &str) -> String {
    format!("{SUBSCRIPTION_PREFIX}{subscription_id}")
}

/// The partition of an API key item.
pub(super) fn api_key_pk(hash: &str) -> String {
    format!("APIKEY#{hash}")
}

/// The partition of an event item.
pub(super) fn event_pk(event_id: &str) -> String {
    format!("EVENT#{event_id}")
}

/// The partition of an event's delivery statuses.
pub(super) fn delivery_pk(event_id: &str) -> String {
    format!("DELIVERY#{event_id}")
}

/// The partition of shard `shard` of a subscription's delivery attempts
/// (`rules::attempt_key::attempt_log_shard`). Shard 0 has no suffix: it is the whole log
/// written before the log was sharded, so raising the shard count strands nothing.
pub(super) fn attempts_pk(merchant_id: &str, subscription_id: &str, shard: u32) -> String {
    match shard {
        0 => format!("ATTEMPTS#{merchant_id}#{subscription_id}"),
        shard => format!("ATTEMPTS#{merchant_id}#{subscription_id}#{shard}"),
    }
}

/// The partition of one shard of the due-time index of parked retries.
pub(super) fn due_pk(shard: u32) -> String {
    format!("DUE#{shard:02}")
}

/// The partition of the request counter `key` (one item per window).
pub(super) fn limit_pk(key: &str) -> String {
    format!("LIMIT#{key}")
}

/// The sort key of a request counter's window: its start in unix milliseconds, 13 digits
/// (clamped at 0), so that a counter's windows sort by time.
pub(super) fn window_sk(window_start_ms: i64) -> String {
    format!("WINDOW#{:013}", window_start_ms.max(0))
}

/// The partition of a failing endpoint's probe slots (`{merchantId}#{subscriptionId}`).
pub(super) fn probe_pk(endpoint: &str) -> String {
    format!("PROBE#{endpoint}")
}

/// The partition of shard `shard` of the deliveries held back from an endpoint. Shard 0
/// has no suffix, as for the attempt log.
pub(super) fn held_pk(endpoint: &str, shard: u32) -> String {
    match shard {
        0 => format!("HELD#{endpoint}"),
        shard => format!("HELD#{endpoint}#{shard}"),
    }
}
