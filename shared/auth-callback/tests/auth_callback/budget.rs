//! The Lambda deadline bounds a decision: past the invocation's deadline minus the margin,
//! the caller gets a `timeout` denial, never a Lambda timeout (DESIGN §5).

use std::time::{Duration, SystemTime};

use serde_json::json;
use webhooks_domain::AuthMethod;
use webhooks_domain::auth::MAX_AUTH_CALLBACK_TIMEOUT_MS;
use webhooks_runtime::{Budget, LAMBDA_DEADLINE_MARGIN};

use crate::support::{MerchantServer, Platform, Raw, RawServer, assert_allowed, assert_denied, callback};

/// A merchant that gives itself the most time there is, 5 s, behind `url`; its id.
async fn patient_merchant(platform: &Platform, url: String) -> String {
    let mut config = callback(url, AuthMethod::None);
    config.timeout_ms = Some(MAX_AUTH_CALLBACK_TIMEOUT_MS);
    platform.merchant(Some(config)).await
}

/// Asks about `merchant_id` as the Lambda does, within `budget`.
async fn ask_within(platform: &Platform, merchant_id: &str, budget: Budget) -> webhooks_auth_callback::AuthDecision {
    let payload = json!({ "merchantId": merchant_id, "email": "ann@example.com", "action": "buy" });
    platform.auth.decide_payload(payload, budget).await
}

#[tokio::test]
async fn a_silent_merchant_is_denied_as_timeout_before_the_lambda_deadline() {
    let platform = Platform::new();
    let silent = RawServer::start(|_| Raw::Silence).await;
    let id = patient_merchant(&platform, format!("{}/auth", silent.base)).await;
    let budget = Budget::before(SystemTime::now() + Duration::from_secs(1));

    let decision = ask_within(&platform, &id, budget).await;

    assert_denied(&decision, "timeout");
    assert_eq!(silent.connections(), 1, "the merchant was asked");
    assert!(
        decision.latency_ms < MAX_AUTH_CALLBACK_TIMEOUT_MS,
        "the Lambda deadline ended it, not the merchant's 5 s: {decision:?}"
    );
}

#[tokio::test]
async fn a_lambda_deadline_inside_the_margin_is_a_timeout_without_asking_the_merchant() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = patient_merchant(&platform, merchant.url("/auth")).await;
    let budget = Budget::before(SystemTime::now() + LAMBDA_DEADLINE_MARGIN / 2);

    assert_denied(&ask_within(&platform, &id, budget).await, "timeout");
    assert!(merchant.seen().is_empty(), "a question whose answer could not be used");
}

#[tokio::test]
async fn a_lambda_deadline_farther_than_the_merchant_timeout_changes_nothing() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = patient_merchant(&platform, merchant.url("/auth")).await;
    let budget = Budget::before(SystemTime::now() + Duration::from_secs(60));

    assert_allowed(&ask_within(&platform, &id, budget).await);
}
