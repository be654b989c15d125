//! The rate limits count in the shared store: two instances of the API over one store (two
//! Lambda containers) hold a merchant to one limit and a source to one budget of bad-key
//! requests, not one each. The test clock stands still within a window; moving it a whole
//! window on starts the next one.

use std::net::{IpAddr, Ipv4Addr};

use axum::Router;
use webhooks_api::RateLimit;

use crate::support::{CLIENT, Reply, TestApi, Transport, UNLIMITED, both_transports};

both_transports!(
    a_merchant_is_held_to_one_limit_across_two_instances,
    bad_keys_from_one_source_are_limited_across_two_instances_and_other_sources_still_get_401,
    a_store_that_cannot_count_admits_requests,
);

const FOUR_PER_MINUTE: RateLimit = RateLimit {
    requests: 4,
    window_secs: 60,
};
const THREE_PER_MINUTE: RateLimit = RateLimit {
    requests: 3,
    window_secs: 60,
};
const A_WINDOW: time::Duration = time::Duration::seconds(60);
/// Another client than [`CLIENT`].
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));

/// `GET /v1/subscriptions` from `source` through `instance`, with `authorization` if any.
async fn list(api: &TestApi, instance: &Router, source: IpAddr, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    api.send_to(instance, source, "GET", "/v1/subscriptions", &headers, None)
        .await
}

#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.expect(429);
    assert_eq!(reply.code(), "rate_limited");
    let wait: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
}

async fn a_merchant_is_held_to_one_limit_across_two_instances(t: Transport) {
    let api = TestApi::start(t).await;
    let instances = [
        api.instance(FOUR_PER_MINUTE, UNLIMITED),
        api.instance(FOUR_PER_MINUTE, UNLIMITED),
    ];
    let (key_a, key_b) = (format!("Bearer {}", api.key_a()), format!("Bearer {}", api.key_b()));
    for n in 0..4 {
        list(&api, &instances[n % 2], CLIENT, Some(&key_a)).await.expect(200);
    }
    for instance in &instances {
        assert_rate_limited(&list(&api, instance, CLIENT, Some(&key_a)).await);
    }
    list(&api, &instances[0], CLIENT, Some(&key_b)).await.expect(200);

    api.clock.advance(A_WINDOW);
    list(&api, &instances[1], CLIENT, Some(&key_a)).await.expect(200);
}

async fn bad_keys_from_one_source_are_limited_across_two_instances_and_other_sources_still_get_401(t: Transport) {
    let api = TestApi::start(t).await;
    let instances = [
        api.instance(UNLIMITED, THREE_PER_MINUTE),
        api.instance(UNLIMITED, THREE_PER_MINUTE),
    ];
    let valid = format!("Bearer {}", api.key_a());
    let wrong = format!("Bearer {}x", api.key_a());
    for (n, authorization) in [Some(wrong.as_str()), None, Some("Bearer")].into_iter().enumerate() {
        let reply = list(&api, &instances[n % 2], CLIENT, authorization).await;
        reply.expect(401);
    }
    assert_rate_limited(&list(&api, &instances[1], CLIENT, Some(&wrong)).await);
    assert_rate_limited(&list(&api, &instances[0], CLIENT, Some(&valid)).await);

    for instance in &instances {
        list(&api, instance, OTHER_CLIENT, Some(&wrong)).await.expect(401);
    }
    list(&api, &instances[1], OTHER_CLIENT, Some(&valid)).await.expect(200);

    api.clock.advance(A_WINDOW);
    list(&api, &instances[0], CLIENT, Some(&valid)).await.expect(200);
    list(&api, &instances[1], CLIENT, Some(&wrong)).await.expect(401);
}

async fn a_store_that_cannot_count_admits_requests(t: Transport) {
    let api = TestApi::start(t).await;
    let instance = api.instance(
        RateLimit {
            requests: 1,
            window_secs: 60,
        },
        RateLimit {
            requests: 1,
            window_secs: 60,
        },
    );
    let db = rusqlite::Connection::open(api.store_path()).unwrap();
    db.execute("DROP TABLE request_counts", []).unwrap();
    let (valid, wrong) = (format!("Bearer {}", api.key_a()), format!("Bearer {}x", api.key_a()));
    for _ in 0..3 {
        list(&api, &instance, CLIENT, Some(&valid)).await.expect(200);
        list(&api, &instance, CLIENT, Some(&wrong)).await.expect(401);
    }
}
