//! The publisher: a steady stream of events to `/local/events`, as platform services send
//! them, some re-sent on purpose. An event is accepted once the stack answered 202; until
//! then it is sent again (the stack may be down for a restart), as a service would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// The six event names.
pub const EVENT_NAMES: [&str; 6] = [
    "payment_received",
    "payment_rejected",
    "payment_expired",
    "crypto_tx_sent",
    "crypto_delivered",
    "crypto_tx_failed",
];

/// One accepted event.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Index of the merchant in the soak's list.
    pub merchant: usize,
    pub event_name: String,
    pub order_id: String,
    /// When the stack first answered 202 for it.
    pub accepted_at: Instant,
    /// How many times it was accepted (1 + duplicates published).
    pub copies: u32,
}

/// What the publisher did.
#[derive(Debug, Default)]
pub struct Published {
    /// By event id.
    pub events: HashMap<String, Accepted>,
    /// Messages re-sent on purpose (accepted again, same event id).
    pub duplicates: u64,
    /// Sends that got no 202 (connection refused or reset during a restart, 5xx) and were
    /// sent again.
    pub resends: u64,
    /// A duplicate answered with another event id than its original (must be none).
    pub id_mismatches: Vec<String>,
}

#[derive(Default)]
struct Shared {
    published: Mutex<Published>,
    /// Accepted messages, as sent, for duplicates: (body, event id).
    sent: Mutex<Vec<(String, String)>>,
    resends: AtomicU64,
}

/// Publishes `per_second` events until `until`, to random merchants with random event names;
/// about `duplicate_percent` % of the messages are re-sends of an accepted one. Returns once
/// every message sent was accepted.
pub async fn publish(
    stack_url: String,
    merchants: Vec<String>,
    per_second: f64,
    until: Instant,
    seed: u64,
    duplicate_percent: u32,
) -> Published {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let shared = Arc::new(Shared::default());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sends = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    while Instant::now() < until {
        ticks.tick().await;
        n += 1;
        let duplicate_of = if rng.random_range(0..100) < duplicate_percent {
            shared.sent.lock().expect("sent").choose(&mut rng).cloned()
        } else {
            None
        };
        let (body, original_id, merchant, event_name, order_id) = match duplicate_of {
            Some((body, id)) => {
                let message: Value = serde_json::from_str(&body).expect("our own JSON");
                let merchant = merchants
                    .iter()
                    .position(|m| m == message["merchantId"].as_str().unwrap_or_default())
                    .expect("a soak merchant");
                let (name, order) = (message["eventName"].as_str(), message["orderId"].as_str());
                (
                    body,
                    Some(id),
                    merchant,
                    name.unwrap().to_owned(),
                    order.unwrap().to_owned(),
                )
            }
            None => {
                let merchant = rng.random_range(0..merchants.len());
                let event_name = (*EVENT_NAMES.choose(&mut rng).expect("names")).to_owned();
                let order_id = format!("order-{seed:x}-{n}-{:08x}", rng.random::<u32>());
                let mut message = json!({
                    "merchantId": merchants[merchant],
                    "eventName": event_name,
                    "orderId": order_id,
                });
                // Half carry their own id; of those, half leave the time to the stack (so a
                // duplicate differs in timeStamp, and only the id makes it the same event).
                // The others are identified by their content, time included.
                let roll = rng.random_range(0..4);
                if roll < 2 {
                    message["eventId"] = json!(format!("evt_soak_{seed:x}_{n}"));
                }
                if roll != 0 {
                    message["timeStamp"] = json!(iso_now());
                }
                (message.to_string(), None, merchant, event_name, order_id)
            }
        };
        let (client, url, shared) = (client.clone(), stack_url.clone(), shared.clone());
        sends.spawn(async move {
            let (event_id, accepted_at) = send_until_accepted(&client, &url, &body, &shared.resends).await;
            let mut published = shared.published.lock().expect("published");
            match original_id {
                Some(original) => {
                    published.duplicates += 1;
                    if original != event_id {
                        published
                            .id_mismatches
                            .push(format!("{body} was {original}, now {event_id}"));
                    }
                }
                None => shared.sent.lock().expect("sent").push((body, event_id.clone())),
            }
            published
                .events
                .entry(event_id)
                .and_modify(|e| {
                    e.copies += 1;
                    e.accepted_at = e.accepted_at.min(accepted_at);
                })
                .or_insert(Accepted {
                    merchant,
                    event_name,
                    order_id,
                    accepted_at,
                    copies: 1,
                });
        });
    }
    while let Some(done) = sends.join_next().await {
        done.expect("a publish task");
    }
    let shared = Arc::into_inner(shared).expect("all sends done");
    let mut published = shared.published.into_inner().expect("published");
    published.resends = shared.resends.into_inner();
    published
}

/// POSTs the message until the stack answers 202, backing off between tries as a well-behaved
/// service does (0.2 s doubling to 5 s, with jitter); returns the event id and when.
async fn send_until_accepted(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    resends: &AtomicU64,
) -> (String, Instant) {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(200);
    loop {
        let answer = client
            .post(format!("{url}/local/events"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().as_u16() == 202 => {
                let accepted_at = Instant::now();
                let answer: Value = response.json().await.expect("a JSON answer");
                let id = answer["eventId"].as_str().expect("an eventId").to_owned();
                return (id, accepted_at);
            }
            Ok(response) if response.status().is_server_error() => {}
            Ok(response) => {
                let status = response.status();
                panic!(
                    "{body} was refused: {status} {}",
                    response.text().await.unwrap_or_default()
                )
            }
            Err(_) => {}
        }
        resends.fetch_add(1, Ordering::Relaxed);
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the stack did not accept {body} for three minutes"
        );
        let jitter = rand::rng().random_range(0.5..1.0);
        tokio::time::sleep(backoff.mul_f64(jitter)).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Now, as JavaScript's `Date.toISOString()`.
fn iso_now() -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::now_utc().format(&format).expect("formats")
}
