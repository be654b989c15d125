//! Test data: merchants, subscriptions and platform events, with every field a test does not
//! name filled in the same way everywhere. A test that cares about one more field sets it
//! on the value it gets (`Subscription { enabled: false, ..subscription(...) }`).

use serde_json::json;
use webhooks_domain::{EventName, IsoTime, Merchant, PlatformEvent, SigningSecrets, Subscription};

/// The order every fixture event is about.
pub const ORDER_ID: &str = "5a3288ea-0bd4-44d2-af11-aae1f88bbd61";

/// When fixture merchants and subscriptions were created.
fn created_at() -> IsoTime {
    IsoTime::parse_rfc3339("2026-11-27T00:00:00Z").expect("a valid RFC 3339 literal")
}

/// When fixture events happened (the example of the design document).
fn happened_at() -> IsoTime {
    IsoTime::parse_rfc3339("2022-10-26T22:36:41.658Z").expect("a valid RFC 3339 literal")
}

/// The merchant `id`, named `Merchant {id}`.
pub fn merchant(id: &str) -> Merchant {
    Merchant {
        id: id.into(),
        name: format!("Merchant {id}"),
        created_at: created_at(),
    }
}

/// The secret every fixture subscription is created with ([`secrets`]).
pub const SECRET: &str = "fixture-signing-secret-0123456789";

/// The signing secrets to create a fixture subscription with: [`SECRET`], never rotated.
pub fn secrets() -> SigningSecrets {
    SigningSecrets::new(Some(SECRET.into()))
}

/// The enabled subscription `id` of `merchant_id`, sending every event to `url` (created
/// with [`secrets`]).
pub fn subscription(merchant_id: &str, id: &str, url: &str) -> Subscription {
    Subscription {
        id: id.into(),
        merchant_id: merchant_id.into(),
        url: url.into(),
        events: EventName::ALL.to_vec(),
        description: String::new(),
        enabled: true,
        rate_limit_per_second: None,
        created_at: created_at(),
        updated_at: created_at(),
        version: 0,
        health: Default::default(),
    }
}

/// The event `event_id`: `crypto_delivered` for the order [`ORDER_ID`] of `merchant_id`.
pub fn event(merchant_id: &str, event_id: &str) -> PlatformEvent {
    PlatformEvent {
        event_id: event_id.into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::CryptoDelivered,
        order_id: ORDER_ID.into(),
        time_stamp: happened_at(),
    }
}

/// `event` as a platform service sends it to the events queue: the JSON ingest reads,
/// written field by field so that it does not follow the domain's own serialisation.
pub fn event_message(event: &PlatformEvent) -> String {
    json!({
        "eventId": event.event_id,
        "merchantId": event.merchant_id,
        "eventName": event.event_name.as_str(),
        "orderId": event.order_id,
        "timeStamp": event.time_stamp.to_string(),
    })
    .to_string()
}
