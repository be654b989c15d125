//! One webhook request: the signed body and headers (DESIGN §3), POSTed through the
//! outbound client within the attempt's budget.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::time::Instant;
use webhooks_domain::{DeliveryTask, IsoTime, SigningSecrets, Subscription};
use webhooks_outbound::{BodyLimit, OutboundClient};
use webhooks_runtime::Budget;
use webhooks_signing::seed::SeedPayload;
use webhooks_signing::standard::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};

use crate::answer::{Answer, RESPONSE_READ_CAP_BYTES};

/// Signs `task`'s body and headers at `now` and POSTs them to the subscription's URL,
/// ending by the earlier of `timeout` and the `budget`; a URL the policy refuses is not
/// sent. The answer and how long the exchange took.
pub(crate) async fn post_webhook(
    client: &OutboundClient,
    subscription: &Subscription,
    secrets: &SigningSecrets,
    task: &DeliveryTask,
    now: IsoTime,
    budget: Budget,
    timeout: Duration,
) -> (Answer, Duration) {
    let url = match client.check(&subscription.url) {
        Ok(url) => url,
        Err(blocked) => return (Err(blocked), Duration::ZERO),
    };
    let event = &task.event;
    let time_stamp = event.time_stamp.to_string();
    let payload = SeedPayload {
        event_name: event.event_name.as_str(),
        order_id: &event.order_id,
        time_stamp: &time_stamp,
    };
    let body = payload.signed_body(secrets.current.as_bytes());
    let timestamp = now.instant().unix_timestamp();
    let keys: Vec<&[u8]> = secrets.active(now).into_iter().map(str::as_bytes).collect();
    let signature = signature_header(&keys, &event.event_id, timestamp, body.as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let header = |value: &str| HeaderValue::from_str(value).expect("ids, numbers and base64 are header-safe");
    headers.insert(HEADER_ID, header(&event.event_id));
    headers.insert(HEADER_TIMESTAMP, header(&timestamp.to_string()));
    headers.insert(HEADER_SIGNATURE, header(&signature));
    let started = Instant::now();
    let request = client.post(&url).headers(headers).body(body);
    let limit = BodyLimit::Truncate(RESPONSE_READ_CAP_BYTES);
    let answer = client.exchange(request, limit, budget.ends_at(started, timeout)).await;
    (answer, started.elapsed())
}
