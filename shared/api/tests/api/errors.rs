//! What every route shares: authentication, JSON errors for unknown routes and methods,
//! the rate limit, and a store failure answered with a 503 and never a 500.

use serde_json::json;
use webhooks_api::{ROUTES, RateLimit};

use crate::support::{LOOPBACK, TestApi, Transport, both_transports};

both_transports!(
    every_route_needs_a_valid_bearer_key,
    unknown_routes_are_404_and_other_methods_405,
    a_merchant_over_its_rate_limit_gets_429_and_others_do_not,
);

/// A concrete URI for a route of [`ROUTES`].
pub fn concrete(path: &str, subscription_id: &str, event_id: &str) -> String {
    path.replace("{id}", subscription_id).replace("{eventId}", event_id)
}

async fn every_route_needs_a_valid_bearer_key(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": "https://merchant.example.com/h" }))
        .await;
    let id = created["id"].as_str().unwrap();
    let wrong_key = format!("Bearer {}x", api.key_a());
    let basic = format!("Basic {}", api.key_a());
    let no_scheme = api.key_a().to_owned();
    for (method, path, _) in ROUTES {
        let uri = concrete(path, id, "evt_1");
        for authorization in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some(wrong_key.as_str()),
            Some(basic.as_str()),
            Some(no_scheme.as_str()),
        ] {
            let headers: Vec<(&str, &str)> = authorization
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            let reply = api.raw(method.as_str(), &uri, &headers, Some(b"{}".to_vec())).await;
            reply.expect(401);
            assert_eq!(reply.code(), "unauthorized", "{method} {uri} {authorization:?}");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
    }
    let lowercase = format!("bearer {}", api.key_a());
    let reply = api
        .raw(
            "GET",
            "/v1/subscriptions",
            &[("authorization", lowercase.as_str())],
            None,
        )
        .await;
    reply.expect(200);
}

async fn unknown_routes_are_404_and_other_methods_405(t: Transport) {
    let api = TestApi::start(t).await;
    for uri in [
        "/index.html",
        "/portal/nope.js",
        "/portal/",
        "/v1",
        "/v1/subscriptionz",
        "/v2/subscriptions",
        "/v1/subscriptions/a/b/c/d",
    ] {
        let reply = api.call(api.key_a(), "GET", uri, None).await;
        reply.expect(404);
        assert_eq!(reply.code(), "not_found", "{uri}");
    }
    for (method, uri) in [
        ("PUT", "/v1/subscriptions"),
        ("DELETE", "/v1/subscriptions"),
        ("POST", "/v1/subscriptions/sub_00000000000000000000000000000000"),
        ("GET", "/v1/subscriptions/sub_00000000000000000000000000000000/test"),
        ("POST", "/v1/auth-callback"),
    ] {
        let reply = api.call(api.key_a(), method, uri, None).await;
        reply.expect(405);
        assert_eq!(reply.code(), "method_not_allowed", "{method} {uri}");
        assert!(reply.headers.contains_key("allow"), "{method} {uri}");
    }
}

async fn a_merchant_over_its_rate_limit_gets_429_and_others_do_not(t: Transport) {
    let limit = RateLimit {
        requests: 3,
        window_secs: 100,
    };
    let api = TestApi::start_with(t, LOOPBACK, limit).await;
    for _ in 0..3 {
        api.call(api.key_a(), "GET", "/v1/subscriptions", None)
            .await
            .expect(200);
    }
    let limited = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    limited.expect(429);
    assert_eq!(limited.code(), "rate_limited");
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=100).contains(&wait), "{wait}");
    api.call(api.key_b(), "GET", "/v1/subscriptions", None)
        .await
        .expect(200);
}

#[tokio::test]
async fn a_store_failure_is_a_503_that_says_nothing_of_the_store() {
    let api = TestApi::start(Transport::Router).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": "https://merchant.example.com/h" }))
        .await;
    let id = created["id"].as_str().unwrap();
    let db = rusqlite::Connection::open(api.store_path()).unwrap();
    db.execute("UPDATE subscriptions SET json = '{\"not\":\"a subscription\"}'", [])
        .unwrap();
    let corrupt = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}"), None)
        .await;
    corrupt.expect(503);
    assert_eq!(corrupt.code(), "unavailable");
    db.execute("DROP TABLE subscriptions", []).unwrap();
    for (method, uri) in [
        ("GET", "/v1/subscriptions".to_owned()),
        ("GET", format!("/v1/subscriptions/{id}")),
    ] {
        let failed = api.call(api.key_a(), method, &uri, None).await;
        failed.expect(503);
        assert_eq!(
            failed.body,
            json!({ "error": { "code": "unavailable", "message": "the service is temporarily unavailable, try again" } })
        );
    }
}
