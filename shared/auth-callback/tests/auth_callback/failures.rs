//! Everything that is not a merchant's truthy answer fails closed, with a reason.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::json;
use webhooks_auth_callback::AuthDecision;
use webhooks_domain::{AuthMethod, UrlPolicy};
use webhooks_runtime::Budget;

use crate::support::{
    LOOPBACK, MerchantServer, Platform, Raw, RawServer, STRICT, assert_allowed, assert_denied, callback, refused_url,
    serve,
};

/// A merchant that takes 10 s to say yes.
async fn slow_merchant() -> String {
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "true"
    };
    serve(Router::new().route("/auth", post(slow)).route("/token", post(slow))).await
}

/// Generous: the decision must come well before the merchant's 10 s.
const WELL_BEFORE_THE_MERCHANT_MS: u64 = 5_000;

#[tokio::test]
async fn a_merchant_slower_than_its_timeout_is_denied_as_timeout() {
    let platform = Platform::new();
    let base = slow_merchant().await;
    let mut config = callback(format!("{base}/auth"), AuthMethod::None);
    config.timeout_ms = Some(200);
    let id = platform.merchant(Some(config)).await;

    let decision = platform.ask(&id, "ann@example.com").await;
    assert_denied(&decision, "timeout");
    assert!(decision.latency_ms < WELL_BEFORE_THE_MERCHANT_MS, "{decision:?}");
}

#[tokio::test]
async fn without_a_merchant_timeout_the_operator_default_applies() {
    let platform = Platform::with(LOOPBACK, Duration::from_millis(200));
    let base = slow_merchant().await;
    let id = platform.merchant_calling(format!("{base}/auth")).await;

    let decision = platform.ask(&id, "ann@example.com").await;
    assert_denied(&decision, "timeout");
    assert!(decision.latency_ms < WELL_BEFORE_THE_MERCHANT_MS, "{decision:?}");
}

#[tokio::test]
async fn a_slow_token_endpoint_counts_against_the_timeout() {
    let platform = Platform::with(LOOPBACK, Duration::from_millis(200));
    let base = slow_merchant().await;
    let auth = AuthMethod::Oauth2ClientCredentials {
        token_url: format!("{base}/token"),
        client_id: "c".into(),
        client_secret: "s".into(),
        scope: None,
    };
    let id = platform.merchant(Some(callback(format!("{base}/auth"), auth))).await;

    assert_denied(&platform.ask(&id, "ann@example.com").await, "timeout");
}

#[tokio::test]
async fn a_refused_connection_is_denied_as_connect_error() {
    let platform = Platform::new();
    let id = platform.merchant_calling(refused_url().await).await;

    assert_denied(&platform.ask(&id, "ann@example.com").await, "connect_error");
}

#[tokio::test]
async fn a_reset_or_hung_up_connection_is_retried_once_then_denied_as_connect_error() {
    let platform = Platform::new();
    let resetting = RawServer::start(|_| Raw::Reset).await;
    let hanging_up = RawServer::start(|_| Raw::Reply(Vec::new())).await;
    for merchant in [resetting, hanging_up] {
        let id = platform.merchant_calling(format!("{}/auth", merchant.base)).await;
        assert_denied(&platform.ask(&id, "ann@example.com").await, "connect_error");
        assert_eq!(merchant.connections(), 2, "one retry");
    }
}

#[tokio::test]
async fn a_connection_reset_once_is_retried_and_the_retry_decides() {
    let platform = Platform::new();
    let merchant = RawServer::start(|connection| match connection {
        0 => Raw::Reset,
        _ => Raw::Reply(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ntrue".to_vec()),
    })
    .await;
    let id = platform.merchant_calling(format!("{}/auth", merchant.base)).await;

    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.connections(), 2);
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_denied_as_request_error() {
    let platform = Platform::new();
    let merchant = RawServer::start(|_| Raw::Reply(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
    let id = platform.merchant_calling(format!("{}/auth", merchant.base)).await;

    assert_denied(&platform.ask(&id, "ann@example.com").await, "request_error");
    assert_eq!(merchant.connections(), 1, "not a connection error: no retry");
}

#[tokio::test]
async fn an_unknown_merchant_is_denied_as_unknown_merchant() {
    let platform = Platform::new();
    assert_denied(&platform.ask("m_nobody", "ann@example.com").await, "unknown_merchant");
}

#[tokio::test]
async fn a_merchant_without_a_callback_is_denied_as_no_callback_configured() {
    let platform = Platform::new();
    let id = platform.merchant(None).await;
    assert_denied(&platform.ask(&id, "ann@example.com").await, "no_callback_configured");
}

#[tokio::test]
async fn urls_the_policy_refuses_are_denied_as_blocked_url_without_a_request() {
    let merchant = MerchantServer::answering(200, "true").await;
    let port = merchant.url("").rsplit(':').next().expect("a port").to_owned();
    let http_only = UrlPolicy {
        allow_http: true,
        allow_private: false,
    };
    let cases = [
        (STRICT, merchant.url("/auth")),
        (STRICT, format!("https://127.0.0.1:{port}/auth")),
        (http_only, merchant.url("/auth")),
        (http_only, format!("http://localhost:{port}/auth")),
        (http_only, format!("http://[::ffff:127.0.0.1]:{port}/auth")),
        (http_only, format!("http://2130706433:{port}/auth")),
        (LOOPBACK, format!("ftp://127.0.0.1:{port}/auth")),
        (LOOPBACK, "not a url".to_owned()),
    ];
    for (policy, url) in cases {
        let platform = Platform::with(policy, Duration::from_secs(3));
        let id = platform.merchant_calling(url.clone()).await;
        let decision = platform.ask(&id, "ann@example.com").await;
        assert!(decision.reason == "blocked_url", "{url}: {decision:?}");
        assert_denied(&decision, "blocked_url");
    }
    assert!(merchant.seen().is_empty());
}

#[tokio::test]
async fn malformed_payloads_are_denied_as_bad_request() {
    let platform = Platform::new();
    let id = platform.merchant(None).await;
    let payloads = [
        json!(null),
        json!("ann@example.com"),
        json!({}),
        json!({ "merchantId": id, "email": "ann@example.com" }),
        json!({ "merchantId": id, "email": 42, "action": "buy" }),
        json!({ "merchantId": id, "email": "ann@example.com", "action": "buy", "password": "x" }),
        json!({ "merchant_id": id, "email": "ann@example.com", "action": "buy" }),
        json!({ "merchantId": id, "email": "", "action": "buy" }),
        json!({ "merchantId": id, "email": "ann@example.com", "action": "  " }),
        json!({ "merchantId": "", "email": "ann@example.com", "action": "buy" }),
    ];
    for payload in payloads {
        let decision = platform.auth.decide_payload(payload.clone(), Budget::default()).await;
        assert!(decision.reason == "bad_request", "{payload}: {decision:?}");
        assert_denied(&decision, "bad_request");
    }
}

#[tokio::test]
async fn a_lambda_payload_is_answered_with_allowed_reason_latency_and_cached() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = platform.merchant_calling(merchant.url("/auth")).await;

    let decision = platform
        .auth
        .decide_payload(
            json!({ "merchantId": id, "email": "ann@example.com", "action": "sell" }),
            Budget::default(),
        )
        .await;

    assert_allowed(&decision);
    let answer = serde_json::to_value(&decision).expect("JSON");
    let keys: Vec<&str> = answer
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["allowed", "reason", "latencyMs", "cached"]);
    assert_eq!(
        serde_json::from_value::<AuthDecision>(answer).expect("round trip"),
        decision
    );
    assert_eq!(
        merchant.seen()[0].body,
        br#"{"email":"ann@example.com","action":"sell"}"#
    );
}
