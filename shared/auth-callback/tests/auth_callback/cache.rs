//! The per-merchant decision cache: positive decisions only, for `cacheTtlSeconds`.

use webhooks_domain::{AuthCallbackConfig, AuthMethod};
use webhooks_storage::AuthCallbackStore;

use crate::support::{MerchantServer, Platform, assert_allowed, assert_denied, callback};

fn cached_for(url: String, seconds: u64) -> AuthCallbackConfig {
    AuthCallbackConfig {
        cache_ttl_seconds: Some(seconds),
        ..callback(url, AuthMethod::None)
    }
}

#[tokio::test]
async fn a_positive_decision_is_reused_within_the_ttl() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;

    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    let again = platform.ask(&id, "ann@example.com").await;
    assert!(again.allowed && again.cached && again.reason == "allowed", "{again:?}");
    assert_eq!(merchant.hits("/auth"), 1);

    platform.clock.advance(time::Duration::seconds(61));
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/auth"), 2, "expired after the ttl");
}

#[tokio::test]
async fn a_cached_decision_is_for_one_merchant_email_and_action() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let first = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;
    let second = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;

    assert_allowed(&platform.ask_to(&first, "ann@example.com", "buy").await);
    assert_allowed(&platform.ask_to(&first, "bob@example.com", "buy").await);
    assert_allowed(&platform.ask_to(&first, "ann@example.com", "sell").await);
    assert_allowed(&platform.ask_to(&second, "ann@example.com", "buy").await);
    assert_eq!(merchant.hits("/auth"), 4);
    assert!(platform.ask_to(&first, "ann@example.com", "buy").await.cached);
}

#[tokio::test]
async fn negative_decisions_are_never_cached() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "false").await;
    let id = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;

    for _ in 0..3 {
        assert_denied(&platform.ask(&id, "ann@example.com").await, "not_truthy");
    }
    assert_eq!(merchant.hits("/auth"), 3);
}

#[tokio::test]
async fn the_cache_is_off_unless_configured() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let default = platform.merchant_calling(merchant.url("/auth")).await;
    let zero = platform.merchant(Some(cached_for(merchant.url("/auth"), 0))).await;

    for id in [&default, &default, &zero, &zero] {
        assert_allowed(&platform.ask(id, "ann@example.com").await);
    }
    assert_eq!(merchant.hits("/auth"), 4);
}

#[tokio::test]
async fn a_configuration_change_takes_effect_at_once() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;
    assert_allowed(&platform.ask(&id, "ann@example.com").await);

    platform
        .store
        .put_auth_callback(&id, &cached_for(merchant.url("/auth"), 0))
        .await
        .expect("put");
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    platform.store.delete_auth_callback(&id).await.expect("delete");
    assert_denied(&platform.ask(&id, "ann@example.com").await, "no_callback_configured");
    assert_eq!(merchant.hits("/auth"), 2);
}

#[tokio::test]
async fn a_new_revision_of_the_configuration_asks_the_merchant_again() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let config = cached_for(merchant.url("/auth"), 60);
    let id = platform.merchant(Some(config.clone())).await;
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert!(platform.ask(&id, "ann@example.com").await.cached);

    // The API's process replaces the configuration: same settings, a new revision.
    let replaced = AuthCallbackConfig {
        revision: "rev-2".into(),
        ..config
    };
    platform.store.put_auth_callback(&id, &replaced).await.expect("put");
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/auth"), 2, "the allow of rev-1 is not reused");
    assert!(
        platform.ask(&id, "ann@example.com").await.cached,
        "rev-2's own allow is"
    );
    assert_eq!(merchant.hits("/auth"), 2);
}

#[tokio::test]
async fn after_a_delete_the_decision_is_denied_not_served_from_the_cache() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = platform.merchant(Some(cached_for(merchant.url("/auth"), 60))).await;
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert!(platform.ask(&id, "ann@example.com").await.cached);

    platform.store.delete_auth_callback(&id).await.expect("delete");
    for _ in 0..2 {
        assert_denied(&platform.ask(&id, "ann@example.com").await, "no_callback_configured");
    }
    assert_eq!(merchant.hits("/auth"), 1);
}

#[tokio::test]
async fn testing_a_configuration_neither_reads_nor_writes_the_cache() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let config = cached_for(merchant.url("/auth"), 60);
    let id = platform.merchant(Some(config.clone())).await;

    for _ in 0..2 {
        let decision = platform
            .auth
            .decide_with_config(&id, &config, "ann@example.com", "buy")
            .await;
        assert_allowed(&decision);
    }
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/auth"), 3);
}
