//! Tenant isolation: merchant B against every route, aimed at merchant A's resources.

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_api::{Endpoint, ROUTES};
use webhooks_domain::{AttemptOutcome, DeliveryAttempt, DeliveryStatus, EventName, IsoTime, PlatformEvent};
use webhooks_storage::{AuthCallbackStore, DeliveryLog, EventStore, QueueReceiver, SubscriptionStore};

use crate::errors::concrete;
use crate::support::{TestApi, Transport, both_transports};

both_transports!(merchant_b_cannot_see_or_change_anything_of_merchant_a);

/// Everything of A's the API can show or the store holds.
async fn snapshot(api: &TestApi, id: &str) -> Value {
    let get = |uri: String| async move { api.call(api.key_a(), "GET", &uri, None).await.expect(200).clone() };
    let stored = api.store.get_subscription(&api.a.0, id).await.unwrap().unwrap();
    json!({
        "subscription": get(format!("/v1/subscriptions/{id}")).await,
        "secret": get(format!("/v1/subscriptions/{id}/secret")).await,
        "deliveries": get(format!("/v1/subscriptions/{id}/deliveries")).await,
        "list": get("/v1/subscriptions".into()).await,
        "authCallback": get("/v1/auth-callback".into()).await,
        "storedSubscription": serde_json::to_value(stored).unwrap(),
        "storedAuthCallback": serde_json::to_value(api.store.get_auth_callback(&api.a.0).await.unwrap()).unwrap(),
        "queued": api.deliveries.approximate_len().await.unwrap(),
    })
}

async fn merchant_b_cannot_see_or_change_anything_of_merchant_a(t: Transport) {
    let api = TestApi::start(t).await;
    // A has a subscription with a delivered event, a page of subscriptions and an auth callback.
    let created = api
        .subscribe(api.key_a(), json!({ "url": "https://a.example.com/hook" }))
        .await;
    api.subscribe(api.key_a(), json!({ "url": "https://a.example.com/other" }))
        .await;
    let id = created["id"].as_str().unwrap();
    let event = PlatformEvent {
        event_id: "evt_of_a".into(),
        merchant_id: api.a.0.clone(),
        event_name: EventName::PaymentReceived,
        order_id: "order_a".into(),
        time_stamp: api.clock.iso_now(),
    };
    api.store.record_event(&event, Duration::ZERO).await.unwrap();
    let attempt = DeliveryAttempt {
        event_id: event.event_id.clone(),
        subscription_id: id.into(),
        merchant_id: api.a.0.clone(),
        event_name: event.event_name,
        attempt: 1,
        attempted_at: event.time_stamp,
        outcome: AttemptOutcome::Failed,
        status_code: Some(500),
        error: Some("http_status".into()),
        latency_ms: 3,
        response_excerpt: None,
        next_attempt_at: None,
        manual: false,
    };
    api.store.record_attempt(&attempt).await.unwrap();
    api.store
        .set_delivery_status(&api.a.0, &event.event_id, id, DeliveryStatus::Failed)
        .await
        .unwrap();
    let a_config = json!({ "url": "https://a.example.com/auth", "auth": { "type": "bearer", "token": "a-token" } });
    api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(a_config))
        .await
        .expect(200);
    let a_cursor = api
        .call(api.key_a(), "GET", "/v1/subscriptions?limit=1", None)
        .await
        .expect(200)["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = snapshot(&api, id).await;

    for (method, path, endpoint) in ROUTES {
        let uri = concrete(path, id, &event.event_id);
        let b = |body: Option<Value>| api.call(api.key_b(), method.as_str(), &uri, body);
        match endpoint {
            Endpoint::GetSubscription
            | Endpoint::DeleteSubscription
            | Endpoint::GetSecret
            | Endpoint::RotateSecret
            | Endpoint::ListDeliveries
            | Endpoint::SubscriptionStats
            | Endpoint::RetryDelivery => {
                let reply = b(None).await;
                reply.expect(404);
                assert_eq!(reply.code(), "not_found", "{method} {path}");
            }
            Endpoint::UpdateSubscription | Endpoint::SendTestEvent | Endpoint::RecoverDeliveries => {
                let body = match endpoint {
                    Endpoint::UpdateSubscription => json!({ "url": "https://b.example.com/stolen", "enabled": false }),
                    // A window around A's failed delivery.
                    Endpoint::RecoverDeliveries => json!({
                        "since": IsoTime::new(event.time_stamp.instant() - time::Duration::hours(1)),
                        "until": IsoTime::new(event.time_stamp.instant() + time::Duration::hours(1)),
                    }),
                    _ => json!({ "eventName": "payment_received" }),
                };
                let reply = b(Some(body)).await;
                reply.expect(404);
                assert_eq!(reply.code(), "not_found", "{method} {path}");
            }
            Endpoint::ListSubscriptions => {
                assert_eq!(b(None).await.expect(200), &json!({ "items": [], "nextCursor": null }));
                let with_a_cursor = api
                    .call(api.key_b(), "GET", &format!("{uri}?cursor={a_cursor}"), None)
                    .await;
                with_a_cursor.expect(400);
                assert_eq!(with_a_cursor.code(), "invalid_cursor");
            }
            // B's own writes touch only B's resources; each is undone so that B stays empty.
            Endpoint::CreateSubscription => {
                let mine = b(Some(json!({ "url": "https://b.example.com/hook" }))).await;
                let mine = mine.expect(201)["id"].as_str().unwrap().to_owned();
                assert_ne!(mine, id);
                let delete = format!("/v1/subscriptions/{mine}");
                api.call(api.key_b(), "DELETE", &delete, None).await.expect(204);
            }
            Endpoint::GetAuthCallback | Endpoint::DeleteAuthCallback => {
                b(None).await.expect(404);
            }
            Endpoint::TestAuthCallback => {
                let decision = b(Some(json!({ "email": "alice@example.com" }))).await;
                assert_eq!(decision.expect(200)["reason"], "no_callback_configured");
            }
            Endpoint::PutAuthCallback => {
                let config = json!({ "url": "https://b.example.com/auth", "auth": { "type": "none" } });
                assert_eq!(b(Some(config)).await.expect(200)["url"], "https://b.example.com/auth");
                api.call(api.key_b(), "DELETE", &uri, None).await.expect(204);
            }
        }
    }
    assert_eq!(snapshot(&api, id).await, before);
    assert!(api.queued_tasks().await.is_empty());
    assert_eq!(
        api.store.delivery_status(&event.event_id, id).await.unwrap(),
        Some(DeliveryStatus::Failed),
        "not claimed by B's recovery"
    );
}
