//! A subscription's `rateLimitPerSecond`: set on creation, changed or removed by PATCH,
//! shown in every view, refused outside 1..=1000.

use serde_json::{Value, json};
use webhooks_storage::SubscriptionStore;

use crate::support::{TestApi, Transport, both_transports};

both_transports!(
    a_rate_limit_is_set_on_creation_and_shown_in_every_view,
    patch_changes_the_rate_limit_and_0_removes_it,
    rate_limits_outside_1_to_1000_are_refused_and_change_nothing,
);

const URL: &str = "https://merchant.example.com/webhooks";

/// The caller's subscription `id` as the store holds it: its limit.
async fn stored_limit(api: &TestApi, id: &str) -> Option<u32> {
    let stored = api.store.get_subscription(&api.a.0, id).await.unwrap().unwrap();
    stored.rate_limit_per_second
}

async fn a_rate_limit_is_set_on_creation_and_shown_in_every_view(t: Transport) {
    let api = TestApi::start(t).await;
    let unlimited = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    assert_eq!(
        unlimited["rateLimitPerSecond"],
        Value::Null,
        "shown, as null: {unlimited}"
    );
    let limited = api
        .subscribe(api.key_a(), json!({ "url": URL, "rateLimitPerSecond": 5 }))
        .await;
    assert_eq!(limited["rateLimitPerSecond"], 5);
    let id = limited["id"].as_str().unwrap();
    assert_eq!(stored_limit(&api, id).await, Some(5));

    let got = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}"), None)
        .await;
    assert_eq!(got.expect(200)["rateLimitPerSecond"], 5);
    let list = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    let limits: Vec<(&Value, &Value)> = list.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (&s["id"], &s["rateLimitPerSecond"]))
        .collect();
    assert_eq!(limits.len(), 2);
    assert!(limits.contains(&(&unlimited["id"], &Value::Null)), "{limits:?}");
    assert!(limits.contains(&(&limited["id"], &json!(5))), "{limits:?}");
}

async fn patch_changes_the_rate_limit_and_0_removes_it(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let id = created["id"].as_str().unwrap();
    let uri = format!("/v1/subscriptions/{id}");
    let patch = |body: Value| {
        let (api, uri) = (&api, &uri);
        async move { api.call(api.key_a(), "PATCH", uri, Some(body)).await }
    };

    let limited = patch(json!({ "rateLimitPerSecond": 1000 })).await;
    let limited = limited.expect(200).clone();
    assert_eq!(limited["rateLimitPerSecond"], 1000);
    for same in ["url", "events", "description", "enabled"] {
        assert_eq!(limited[same], created[same], "{same}");
    }
    let paused = patch(json!({ "enabled": false })).await;
    assert_eq!(paused.expect(200)["rateLimitPerSecond"], 1000, "kept when not given");
    let lowered = patch(json!({ "rateLimitPerSecond": 1, "enabled": true })).await;
    assert_eq!(lowered.expect(200)["rateLimitPerSecond"], 1);
    assert_eq!(stored_limit(&api, id).await, Some(1));

    let removed = patch(json!({ "rateLimitPerSecond": 0 })).await;
    assert_eq!(removed.expect(200)["rateLimitPerSecond"], Value::Null);
    assert_eq!(stored_limit(&api, id).await, None);
    let got = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(got.expect(200)["rateLimitPerSecond"], Value::Null);
}

async fn rate_limits_outside_1_to_1000_are_refused_and_change_nothing(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": URL, "rateLimitPerSecond": 7 }))
        .await;
    let uri = format!("/v1/subscriptions/{}", created["id"].as_str().unwrap());
    let refused = [
        (json!(1001), 422, "invalid_value"),
        (json!(-1), 422, "invalid_value"),
        (json!(4_294_967_301_u64), 422, "invalid_value"),
        (json!(2.5), 400, "invalid_request"),
        (json!("5"), 400, "invalid_request"),
        (Value::Null, 400, "invalid_request"),
    ];
    for (limit, status, code) in refused.iter().cloned().chain([(json!(0), 422, "invalid_value")]) {
        let body = json!({ "url": URL, "rateLimitPerSecond": limit });
        let reply = api.call(api.key_a(), "POST", "/v1/subscriptions", Some(body)).await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "POST {limit}");
    }
    for (limit, status, code) in refused {
        let body = json!({ "rateLimitPerSecond": limit });
        let reply = api.call(api.key_a(), "PATCH", &uri, Some(body)).await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "PATCH {limit}");
    }
    let reply = api
        .call(
            api.key_a(),
            "POST",
            "/v1/subscriptions",
            Some(json!({ "url": URL, "rateLimitPerSecond": 1001 })),
        )
        .await;
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert_eq!(message, "rateLimitPerSecond must be between 1 and 1000, not 1001");

    let list = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(list.expect(200)["items"].as_array().unwrap().len(), 1, "none created");
    let got = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(got.expect(200)["rateLimitPerSecond"], 7);
    assert_eq!(got.body["updatedAt"], created["updatedAt"]);
}
