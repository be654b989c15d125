//! Subscriptions and their secrets, route by route.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use webhooks_domain::EventName;
use webhooks_storage::SubscriptionStore;

use crate::support::{Reply, STRICT, TestApi, Transport, UNLIMITED, both_transports};

both_transports!(
    create_shows_the_secret_and_defaults_to_all_events,
    create_keeps_a_chosen_secret_events_and_description,
    create_refuses_urls_the_policy_refuses,
    urls_are_kept_as_sent,
    create_refuses_bad_events_descriptions_and_secrets,
    malformed_bodies_are_400_and_change_nothing,
    bodies_over_64_kib_are_413,
    list_pages_through_subscriptions_without_secrets,
    list_refuses_bad_limits_and_cursors,
    get_shows_no_secret_and_unknown_ids_are_404,
    patch_changes_only_the_given_properties,
    patch_refuses_an_empty_change_and_bad_values,
    delete_removes_the_subscription,
    secret_route_reveals_the_current_secret,
    rotation_keeps_the_old_secret_signing_headers_for_a_day,
);

const URL: &str = "https://merchant.example.com/webhooks";

fn assert_no_secret(subscription: &Value) {
    assert!(subscription.get("secret").is_none(), "{subscription}");
    assert!(subscription.get("standardWebhooksSecret").is_none(), "{subscription}");
    assert!(subscription.get("secrets").is_none(), "{subscription}");
}

async fn create_shows_the_secret_and_defaults_to_all_events(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("sub_") && id.len() == 36, "{id}");
    assert_eq!(created["url"], URL);
    let all: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(created["events"], json!(all));
    assert_eq!(created["description"], "");
    assert_eq!(created["enabled"], true);
    let now = api.clock.iso_now().to_string();
    assert_eq!(created["createdAt"], now);
    assert_eq!(created["updatedAt"], now);
    let secret = created["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        created["standardWebhooksSecret"],
        format!("whsec_{}", B64.encode(secret))
    );
    let (stored, secrets) = api
        .store
        .get_subscription_with_secrets(&api.a.0, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrets.current, secret);
    assert_eq!(stored.merchant_id, api.a.0);
}

async fn create_keeps_a_chosen_secret_events_and_description(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(
            api.key_a(),
            json!({
                "url": "http://127.0.0.1:9/hook",
                "events": ["crypto_delivered", "payment_received"],
                "description": "Crypto leg — ünïcode",
                "secret": "my-own-secret-1234567890",
            }),
        )
        .await;
    assert_eq!(created["events"], json!(["crypto_delivered", "payment_received"]));
    assert_eq!(created["description"], "Crypto leg — ünïcode");
    assert_eq!(created["secret"], "my-own-secret-1234567890");
    assert_eq!(
        created["standardWebhooksSecret"],
        "whsec_bXktb3duLXNlY3JldC0xMjM0NTY3ODkw"
    );
}

async fn create_refuses_urls_the_policy_refuses(t: Transport) {
    let api = TestApi::start_with(t, STRICT, UNLIMITED).await;
    let too_long = format!("https://merchant.example.com/{}", "a".repeat(2048));
    for (url, says) in [
        ("http://merchant.example.com/hook", "scheme \"http\""),
        ("ftp://merchant.example.com/hook", "scheme \"ftp\""),
        ("https://localhost/hook", "local name"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://2130706433/hook", "loopback"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fd00::1]/hook", "unique-local"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("not a url", "does not parse"),
        (too_long.as_str(), "2048"),
    ] {
        let reply = api
            .call(api.key_a(), "POST", "/v1/subscriptions", Some(json!({ "url": url })))
            .await;
        reply.expect(422);
        assert_eq!(reply.code(), "url_not_allowed", "{url}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{url}: {message}");
    }
    let list = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(list.expect(200)["items"], json!([]));
    api.subscribe(api.key_a(), json!({ "url": URL })).await;
}

async fn urls_are_kept_as_sent(t: Transport) {
    let api = TestApi::start(t).await;
    let url = "HTTPS://Bücher.Example:443/a b?q=ü#top";
    let created = api.subscribe(api.key_a(), json!({ "url": url })).await;
    assert_eq!(created["url"], url);
    let id = created["id"].as_str().unwrap();
    let stored = api.store.get_subscription(&api.a.0, id).await.unwrap().unwrap();
    assert_eq!(stored.url, url, "deliveries check and parse the text the merchant sent");
    let at_limit = format!("https://merchant.example.com/{}", "a".repeat(2048 - 29));
    assert_eq!(at_limit.len(), 2048);
    let patched = api
        .call(
            api.key_a(),
            "PATCH",
            &format!("/v1/subscriptions/{id}"),
            Some(json!({ "url": at_limit })),
        )
        .await;
    assert_eq!(patched.expect(200)["url"], at_limit);
}

async fn create_refuses_bad_events_descriptions_and_secrets(t: Transport) {
    let api = TestApi::start(t).await;
    let cases = [
        (json!({ "url": URL, "events": [] }), "invalid_events"),
        (json!({ "url": URL, "events": ["order_shipped"] }), "invalid_events"),
        (
            json!({ "url": URL, "events": ["payment_received", "payment_received"] }),
            "invalid_events",
        ),
        (json!({ "url": URL, "description": "é".repeat(257) }), "invalid_value"),
        (json!({ "url": URL, "secret": "too-short" }), "invalid_secret"),
        (
            json!({ "url": URL, "secret": "has a space 0123456789" }),
            "invalid_secret",
        ),
        (json!({ "url": URL, "secret": "x".repeat(129) }), "invalid_secret"),
        (json!({ "url": URL, "secret": "ünicode-0123456789" }), "invalid_secret"),
    ];
    for (body, code) in cases {
        let reply = api
            .call(api.key_a(), "POST", "/v1/subscriptions", Some(body.clone()))
            .await;
        reply.expect(422);
        assert_eq!(reply.code(), code, "{body}");
    }
    let unknown = api
        .call(
            api.key_a(),
            "POST",
            "/v1/subscriptions",
            Some(json!({ "url": URL, "events": ["nope"] })),
        )
        .await;
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("\"nope\""));
    let edge = api
        .subscribe(
            api.key_a(),
            json!({ "url": URL, "description": "é".repeat(256), "secret": "~".repeat(128) }),
        )
        .await;
    assert_eq!(edge["secret"], "~".repeat(128));
}

async fn malformed_bodies_are_400_and_change_nothing(t: Transport) {
    let api = TestApi::start(t).await;
    let auth = format!("Bearer {}", api.key_a());
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let cases: [(&[u8], &str); 12] = [
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b"not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[]", "invalid_request"),
        (b"\"https://merchant.example.com\"", "invalid_request"),
        (b"{}", "invalid_request"),
        (br#"{"url": 42}"#, "invalid_request"),
        (
            br#"{"url": "https://merchant.example.com", "events": "payment_received"}"#,
            "invalid_request",
        ),
        (
            br#"{"url": "https://merchant.example.com", "urll": "x"}"#,
            "invalid_request",
        ),
        (
            br#"{"url": "https://merchant.example.com", "description": null}"#,
            "invalid_request",
        ),
        (
            br#"{"url": "https://merchant.example.com", "events": [null]}"#,
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let reply = api
            .raw("POST", "/v1/subscriptions", &headers, Some(body.to_vec()))
            .await;
        reply.expect(400);
        assert_eq!(reply.code(), code, "{}", String::from_utf8_lossy(body));
    }
    let list = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(list.expect(200)["items"], json!([]));
}

async fn bodies_over_64_kib_are_413(t: Transport) {
    let api = TestApi::start(t).await;
    let padded = |len: usize| {
        let fixed = json!({ "url": URL, "description": "" }).to_string().len();
        json!({ "url": URL, "description": "d".repeat(len - fixed) })
    };
    let too_large = api
        .call(api.key_a(), "POST", "/v1/subscriptions", Some(padded(64 * 1024 + 1)))
        .await;
    too_large.expect(413);
    assert_eq!(too_large.code(), "payload_too_large");
    // Exactly 64 KiB is read, and refused only for the description's length.
    let at_limit = api
        .call(api.key_a(), "POST", "/v1/subscriptions", Some(padded(64 * 1024)))
        .await;
    at_limit.expect(422);
    assert_eq!(at_limit.code(), "invalid_value");
}

async fn list_pages_through_subscriptions_without_secrets(t: Transport) {
    let api = TestApi::start(t).await;
    let empty = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(empty.expect(200), &json!({ "items": [], "nextCursor": null }));
    let mut created = Vec::new();
    for n in 0..5 {
        let url = format!("{URL}/{n}");
        created.push(api.subscribe(api.key_a(), json!({ "url": url })).await["id"].clone());
    }
    created.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    let mut seen = Vec::new();
    let mut uri = "/v1/subscriptions?limit=2".to_owned();
    loop {
        let page = api.call(api.key_a(), "GET", &uri, None).await;
        let body = page.expect(200);
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for item in items {
            assert_no_secret(item);
            seen.push(item["id"].clone());
        }
        match body["nextCursor"].as_str() {
            Some(cursor) => uri = format!("/v1/subscriptions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, created);
    let default_page = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(default_page.expect(200)["items"].as_array().unwrap().len(), 5);
}

async fn list_refuses_bad_limits_and_cursors(t: Transport) {
    let api = TestApi::start(t).await;
    for n in 0..3 {
        api.subscribe(api.key_a(), json!({ "url": format!("{URL}/{n}") })).await;
    }
    for limit in ["0", "101", "-1", "abc", "1.5", ""] {
        let reply = api
            .call(api.key_a(), "GET", &format!("/v1/subscriptions?limit={limit}"), None)
            .await;
        reply.expect(400);
        assert_eq!(reply.code(), "invalid_request", "limit={limit}");
    }
    for limit in ["1", "100"] {
        let reply = api
            .call(api.key_a(), "GET", &format!("/v1/subscriptions?limit={limit}"), None)
            .await;
        reply.expect(200);
    }
    let page = api.call(api.key_a(), "GET", "/v1/subscriptions?limit=1", None).await;
    let cursor = page.expect(200)["nextCursor"].as_str().unwrap().to_owned();
    let (position, tag) = cursor.split_once('.').unwrap();
    let forged = format!("{}.{tag}", B64.encode("{\"id\":\"sub_0\"}").trim_end_matches('='));
    for bad in [
        "garbage".to_owned(),
        format!("{position}.AAAAAAAAAAAAAAAAAAAAAA"),
        forged,
        format!("{cursor}x"),
        String::new(),
    ] {
        let reply = api
            .call(api.key_a(), "GET", &format!("/v1/subscriptions?cursor={bad}"), None)
            .await;
        reply.expect(400);
        assert_eq!(reply.code(), "invalid_cursor", "{bad}");
    }
}

async fn get_shows_no_secret_and_unknown_ids_are_404(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let id = created["id"].as_str().unwrap();
    let got = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}"), None)
        .await;
    let got = got.expect(200);
    assert_no_secret(got);
    let mut expected = created.clone();
    let fields = expected.as_object_mut().unwrap();
    fields.remove("secret");
    fields.remove("standardWebhooksSecret");
    assert_eq!(got, &expected);
    for unknown in [
        "sub_00000000000000000000000000000000",
        "sub_nope",
        "x",
        &id.to_uppercase(),
        "%F0%9F%A6%80",
        &"s".repeat(5000),
    ] {
        let reply = api
            .call(api.key_a(), "GET", &format!("/v1/subscriptions/{unknown}"), None)
            .await;
        reply.expect(404);
        assert_eq!(reply.code(), "not_found", "{unknown}");
    }
}

async fn patch_changes_only_the_given_properties(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": URL, "description": "first" }))
        .await;
    let uri = format!("/v1/subscriptions/{}", created["id"].as_str().unwrap());
    api.clock.advance(time::Duration::minutes(5));
    let paused = api
        .call(api.key_a(), "PATCH", &uri, Some(json!({ "enabled": false })))
        .await;
    let paused = paused.expect(200).clone();
    assert_no_secret(&paused);
    assert_eq!(paused["enabled"], false);
    for same in ["id", "url", "events", "description", "createdAt"] {
        assert_eq!(paused[same], created[same], "{same}");
    }
    assert_eq!(paused["updatedAt"], api.clock.iso_now().to_string());
    assert_ne!(paused["updatedAt"], created["updatedAt"]);
    let changes = json!({
        "url": "https://merchant.example.com/v2",
        "events": ["payment_expired"],
        "description": "",
        "enabled": true,
    });
    let changed = api.call(api.key_a(), "PATCH", &uri, Some(changes.clone())).await;
    let changed = changed.expect(200).clone();
    for (name, value) in changes.as_object().unwrap() {
        assert_eq!(&changed[name], value, "{name}");
    }
    let got = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(got.expect(200), &changed);
    let secret = api.call(api.key_a(), "GET", &format!("{uri}/secret"), None).await;
    assert_eq!(secret.expect(200)["secret"], created["secret"]);
}

async fn patch_refuses_an_empty_change_and_bad_values(t: Transport) {
    let api = TestApi::start_with(t, STRICT, UNLIMITED).await;
    let created = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let uri = format!("/v1/subscriptions/{}", created["id"].as_str().unwrap());
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (json!({ "secret": "my-own-secret-1234567890" }), 400, "invalid_request"),
        (json!({ "enabled": "no" }), 400, "invalid_request"),
        (json!({ "url": null }), 400, "invalid_request"),
        (json!({ "url": "https://192.168.0.1/" }), 422, "url_not_allowed"),
        (json!({ "events": [] }), 422, "invalid_events"),
        (json!({ "description": "d".repeat(257) }), 422, "invalid_value"),
        (json!({ "enabled": false, "events": ["nope"] }), 422, "invalid_events"),
    ] {
        let reply = api.call(api.key_a(), "PATCH", &uri, Some(body.clone())).await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "{body}");
    }
    let got = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(got.expect(200)["enabled"], true);
    assert_eq!(got.body["updatedAt"], created["updatedAt"]);
    let unknown = api
        .call(
            api.key_a(),
            "PATCH",
            "/v1/subscriptions/sub_00000000000000000000000000000000",
            Some(json!({ "enabled": false })),
        )
        .await;
    unknown.expect(404);
}

async fn delete_removes_the_subscription(t: Transport) {
    let api = TestApi::start(t).await;
    let kept = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let gone = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let uri = format!("/v1/subscriptions/{}", gone["id"].as_str().unwrap());
    let deleted = api.call(api.key_a(), "DELETE", &uri, None).await;
    deleted.expect(204);
    assert_eq!(deleted.body, Value::Null);
    for (method, path) in [
        ("GET", uri.clone()),
        ("DELETE", uri.clone()),
        ("GET", format!("{uri}/secret")),
    ] {
        let reply = api.call(api.key_a(), method, &path, None).await;
        reply.expect(404);
    }
    let list = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    let ids: Vec<&Value> = list.expect(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, vec![&kept["id"]]);
}

async fn secret_route_reveals_the_current_secret(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api.subscribe(api.key_a(), json!({ "url": URL })).await;
    let uri = format!("/v1/subscriptions/{}/secret", created["id"].as_str().unwrap());
    let secret = api.call(api.key_a(), "GET", &uri, None).await;
    assert_eq!(
        secret.expect(200),
        &json!({
            "secret": created["secret"],
            "standardWebhooksSecret": created["standardWebhooksSecret"],
        })
    );
}

async fn rotation_keeps_the_old_secret_signing_headers_for_a_day(t: Transport) {
    let api = TestApi::start(t).await;
    let created = api
        .subscribe(api.key_a(), json!({ "url": URL, "secret": "first-secret-0123456789" }))
        .await;
    let id = created["id"].as_str().unwrap();
    api.clock.advance(time::Duration::hours(1));
    let rotated = api
        .call(
            api.key_a(),
            "POST",
            &format!("/v1/subscriptions/{id}/secret/rotate"),
            None,
        )
        .await;
    let rotated = rotated.expect(200).clone();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, "first-secret-0123456789");
    assert_eq!(new_secret.len(), 64);
    assert_eq!(
        rotated["standardWebhooksSecret"],
        format!("whsec_{}", B64.encode(new_secret))
    );
    let now = api.clock.iso_now();
    let expires = webhooks_domain::IsoTime::new(now.instant() + time::Duration::hours(24)).unwrap();
    assert_eq!(rotated["previousSecretExpiresAt"], expires.to_string());
    let secret = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}/secret"), None)
        .await;
    assert_eq!(secret.expect(200)["secret"], new_secret);
    let (stored, secrets) = api
        .store
        .get_subscription_with_secrets(&api.a.0, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrets.active(now), vec![new_secret, "first-secret-0123456789"]);
    assert_eq!(secrets.active(expires), vec![new_secret]);
    assert_eq!(stored.updated_at, now);
}

/// How many PATCH-and-rotate pairs race, one subscription each.
const RACING_PAIRS: usize = 40;

/// Sends merchant A's request on a thread of its own, so that requests sent together run
/// in parallel (a blocking-pool thread: the Lambda transport makes `call` not `Send`).
fn spawn_call(api: &Arc<TestApi>, method: &'static str, uri: String, body: Option<Value>) -> JoinHandle<Reply> {
    let api = Arc::clone(api);
    let runtime = Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(api.call(api.key_a(), method, &uri, body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patch_racing_a_rotation_keeps_both_changes() {
    let api = Arc::new(TestApi::start(Transport::Router).await);
    let first_secret = "first-secret-0123456789";
    for round in 0..RACING_PAIRS {
        let created = api
            .subscribe(api.key_a(), json!({ "url": URL, "secret": first_secret }))
            .await;
        let id = created["id"].as_str().unwrap();
        let uri = format!("/v1/subscriptions/{id}");
        let description = format!("patched in round {round}");
        let change = json!({ "description": description, "enabled": false });
        let (patched, rotated) = tokio::join!(
            spawn_call(&api, "PATCH", uri.clone(), Some(change)),
            spawn_call(&api, "POST", format!("{uri}/secret/rotate"), None),
        );
        let (patched, rotated) = (patched.unwrap(), rotated.unwrap());
        patched.expect(200);
        let rotated_secret = rotated.expect(200)["secret"].as_str().unwrap();

        let secret = api.call(api.key_a(), "GET", &format!("{uri}/secret"), None).await;
        assert_eq!(secret.expect(200)["secret"], rotated_secret, "round {round}");
        let got = api.call(api.key_a(), "GET", &uri, None).await;
        assert_eq!(got.expect(200)["description"], description, "round {round}");
        assert_eq!(got.body["enabled"], false, "round {round}");
        let (stored, secrets) = api
            .store
            .get_subscription_with_secrets(&api.a.0, id)
            .await
            .unwrap()
            .unwrap();
        let previous = secrets.previous.expect("the rotation kept the first secret");
        assert_eq!(previous.secret, first_secret, "round {round}");
        assert_eq!(
            stored.version, 2,
            "round {round}: both writes were stored, one after the other"
        );
    }
}
