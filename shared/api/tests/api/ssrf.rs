//! Every SSRF target of `tests/fixtures/ssrf-targets.txt` is refused when a merchant saves
//! it, as a subscription URL and as an auth-callback URL, under Lambda's strict policy; so
//! is a URL with credentials before its host (a query string is fine).

use serde_json::json;

use crate::support::{STRICT, TestApi, Transport, UNLIMITED};

fn targets() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ssrf-targets.txt");
    std::fs::read_to_string(path)
        .expect("read the SSRF targets")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_ssrf_target_is_refused_at_create_time() {
    let api = TestApi::start_with(Transport::Router, STRICT, UNLIMITED).await;
    let targets = targets();
    assert!(targets.len() >= 60, "only {} targets", targets.len());
    for url in &targets {
        let created = api
            .call(api.key_a(), "POST", "/v1/subscriptions", Some(json!({"url": url})))
            .await;
        assert_eq!(
            created.status.as_u16(),
            422,
            "subscription to {url}: {:?}",
            created.body
        );
        let config = json!({"url": url, "auth": {"type": "none"}});
        let stored = api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(config)).await;
        assert_eq!(stored.status.as_u16(), 422, "auth callback at {url}: {:?}", stored.body);
    }
    let listed = api.call(api.key_a(), "GET", "/v1/subscriptions", None).await;
    assert_eq!(listed.expect(200)["items"], json!([]), "a refused URL was stored");
    println!(
        "{} SSRF targets refused at create time, as subscriptions and as auth callbacks",
        targets.len()
    );
}

#[tokio::test]
async fn urls_with_credentials_before_the_host_are_refused_at_save_time() {
    let api = TestApi::start_with(Transport::Router, STRICT, UNLIMITED).await;
    let with_credentials = "https://merchant:pw-S3CRET@merchant.example.com/hook?token=Q-S3CRET";
    let with_query = "https://merchant.example.com/hook?token=T0KEN";
    let oauth = |token_url: &str| {
        json!({"url": with_query, "auth": {
            "type": "oauth2_client_credentials", "tokenUrl": token_url, "clientId": "c", "clientSecret": "s",
        }})
    };
    let created = api.subscribe(api.key_a(), json!({"url": with_query})).await;
    assert_eq!(created["url"], with_query, "a query string is allowed and kept");
    let patch = format!("/v1/subscriptions/{}", created["id"].as_str().unwrap());
    for (method, uri, body) in [
        ("POST", "/v1/subscriptions", json!({"url": with_credentials})),
        (
            "POST",
            "/v1/subscriptions",
            json!({"url": "https://token@merchant.example.com/"}),
        ),
        ("PATCH", patch.as_str(), json!({"url": with_credentials})),
        (
            "PUT",
            "/v1/auth-callback",
            json!({"url": with_credentials, "auth": {"type": "none"}}),
        ),
        ("PUT", "/v1/auth-callback", oauth(with_credentials)),
    ] {
        let refused = api.call(api.key_a(), method, uri, Some(body)).await;
        refused.expect(422);
        assert_eq!(refused.code(), "url_not_allowed", "{method} {uri}");
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("user name or password"), "{message}");
        assert!(!message.contains("S3CRET"), "{message}");
    }
    let kept = api.call(api.key_a(), "GET", &patch, None).await;
    assert_eq!(kept.expect(200)["url"], with_query, "the refused change was not made");
    api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(oauth(with_query)))
        .await
        .expect(200);
}
