//! Every SSRF target of `tests/fixtures/ssrf-targets.txt` is refused when a merchant saves
//! it, as a subscription URL and as an auth-callback URL, under Lambda's strict policy.

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
