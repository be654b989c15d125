//! Each `auth.type` authenticates exactly as a merchant expects.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use webhooks_domain::AuthMethod;
use webhooks_signing::standard::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, standard_webhooks_secret};
use webhooks_storage::AuthCallbackStore;

use crate::support::{MerchantServer, Platform, Seen, answer, assert_allowed, assert_denied, callback};

#[tokio::test]
async fn none_posts_the_email_and_action_as_json_without_credentials() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let id = platform.merchant_calling(merchant.url("/auth")).await;

    assert_allowed(&platform.ask_to(&id, "ann@example.com", "view_private").await);

    let [seen] = merchant.seen().try_into().expect("one request");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/auth");
    assert_eq!(seen.body, br#"{"email":"ann@example.com","action":"view_private"}"#);
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn bearer_sends_the_token_in_the_authorization_header() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let auth = AuthMethod::Bearer {
        token: "tok_live_123".into(),
    };
    let id = platform.merchant(Some(callback(merchant.url("/auth"), auth))).await;

    assert_allowed(&platform.ask(&id, "ann@example.com").await);

    assert_eq!(merchant.seen()[0].header("authorization"), Some("Bearer tok_live_123"));
}

#[tokio::test]
async fn basic_sends_base64_of_username_colon_password() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let known = AuthMethod::Basic {
        username: "Aladdin".into(),
        password: "open sesame".into(),
    };
    let unusual = AuthMethod::Basic {
        username: "shop-42".into(),
        password: "p@ss:wörd €".into(),
    };
    let known_id = platform.merchant(Some(callback(merchant.url("/auth"), known))).await;
    let unusual_id = platform.merchant(Some(callback(merchant.url("/auth"), unusual))).await;

    assert_allowed(&platform.ask(&known_id, "ann@example.com").await);
    assert_allowed(&platform.ask(&unusual_id, "ann@example.com").await);

    let seen = merchant.seen();
    // RFC 7617's own example.
    assert_eq!(
        seen[0].header("authorization"),
        Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
    );
    let expected = format!("Basic {}", BASE64.encode("shop-42:p@ss:wörd €"));
    assert_eq!(seen[1].header("authorization"), Some(expected.as_str()));
}

#[tokio::test]
async fn api_key_sends_the_value_in_the_named_header() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let auth = AuthMethod::ApiKey {
        header: "X-Merchant-Key".into(),
        value: "key_abc123".into(),
    };
    let id = platform.merchant(Some(callback(merchant.url("/auth"), auth))).await;

    assert_allowed(&platform.ask(&id, "ann@example.com").await);

    let seen = &merchant.seen()[0];
    assert_eq!(seen.header("x-merchant-key"), Some("key_abc123"));
    assert_eq!(seen.header("authorization"), None);
}

#[tokio::test]
async fn an_api_key_that_cannot_be_a_header_or_names_a_reserved_one_is_a_request_error_and_nothing_is_sent() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let bad_name = AuthMethod::ApiKey {
        header: "X Merchant Key".into(),
        value: "key".into(),
    };
    let bad_value = AuthMethod::ApiKey {
        header: "x-api-key".into(),
        value: "line\nbreak".into(),
    };
    // Stored before the API refused these names: refused when sent, too.
    let reserved = ["Host", "content-length", "authorization", "webhook-signature"].map(|name| AuthMethod::ApiKey {
        header: name.into(),
        value: "key".into(),
    });
    for auth in [bad_name, bad_value].into_iter().chain(reserved) {
        let id = platform.merchant(Some(callback(merchant.url("/auth"), auth))).await;
        assert_denied(&platform.ask(&id, "ann@example.com").await, "request_error");
    }
    assert!(merchant.seen().is_empty());
}

#[tokio::test]
async fn hmac_headers_verify_with_the_npm_standardwebhooks_library() {
    const SECRET: &str = "merchant-chosen-secret-0123456789";
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, r#"{"allowed":true}"#).await;
    let auth = AuthMethod::Hmac { secret: SECRET.into() };
    let id = platform.merchant(Some(callback(merchant.url("/auth"), auth))).await;

    for email in ["ann@example.com", "bob+tag@example.org", "ünïcödé@example.com"] {
        assert_allowed(&platform.ask(&id, email).await);
    }

    let seen = merchant.seen();
    let message = |seen: &Seen, body: &[u8]| {
        json!({
            "id": seen.header(HEADER_ID),
            "timestamp": seen.header(HEADER_TIMESTAMP),
            "signature": seen.header(HEADER_SIGNATURE),
            "body": String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        })
    };
    let mut messages: Vec<_> = seen.iter().map(|seen| message(seen, &seen.body)).collect();
    messages.push(message(&seen[0], br#"{"email":"mallory@example.com","action":"buy"}"#));
    let verdicts = webhooks_tests::verifiers::node(
        "sw-verify",
        &json!({ "secret": standard_webhooks_secret(SECRET), "messages": messages }),
    );
    let verdicts = verdicts.as_array().expect("an array");
    assert_eq!(verdicts[..3], [json!("ok"), json!("ok"), json!("ok")], "{verdicts:?}");
    assert_ne!(verdicts[3], json!("ok"), "a changed body must not verify");

    let ids: Vec<&str> = seen.iter().filter_map(|seen| seen.header(HEADER_ID)).collect();
    assert!(ids.iter().all(|id| id.starts_with("msg_")), "{ids:?}");
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "a fresh id per request: {ids:?}");
}

/// A merchant with `/token` (issuing `tok-<generation>`) and `/auth` (accepting only the
/// current generation's token).
fn oauth_merchant(generation: Arc<AtomicUsize>, expires_in: u64) -> impl Fn(&Seen) -> Response {
    move |seen| {
        let current = format!("tok-{}", generation.load(Ordering::SeqCst));
        match seen.path.as_str() {
            "/token" => answer(
                200,
                json!({ "access_token": current, "token_type": "Bearer", "expires_in": expires_in }).to_string(),
            ),
            _ if seen.header("authorization") == Some(format!("Bearer {current}").as_str()) => answer(200, "true"),
            _ => answer(401, r#"{"error":"invalid_token"}"#),
        }
    }
}

fn oauth(merchant: &MerchantServer, scope: Option<&str>) -> AuthMethod {
    AuthMethod::Oauth2ClientCredentials {
        token_url: merchant.url("/token"),
        client_id: "platform-client".into(),
        client_secret: "s3cr&t=+/ é".into(),
        scope: scope.map(Into::into),
    }
}

#[tokio::test]
async fn oauth2_posts_the_client_credentials_form_then_sends_the_bearer_token() {
    let platform = Platform::new();
    let merchant = MerchantServer::start(oauth_merchant(Arc::new(AtomicUsize::new(1)), 3600)).await;
    let with_scope = platform
        .merchant(Some(callback(
            merchant.url("/auth"),
            oauth(&merchant, Some("auth:check")),
        )))
        .await;
    let without_scope = platform
        .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
        .await;

    assert_allowed(&platform.ask(&with_scope, "ann@example.com").await);
    assert_allowed(&platform.ask(&without_scope, "ann@example.com").await);

    let token_requests: Vec<Seen> = merchant.seen().into_iter().filter(|s| s.path == "/token").collect();
    let form =
        |seen: &Seen| -> Vec<(String, String)> { url::form_urlencoded::parse(&seen.body).into_owned().collect() };
    let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    assert_eq!(
        form(&token_requests[0]),
        [
            pair("grant_type", "client_credentials"),
            pair("client_id", "platform-client"),
            pair("client_secret", "s3cr&t=+/ é"),
            pair("scope", "auth:check"),
        ]
    );
    assert_eq!(form(&token_requests[1]).len(), 3, "no scope when none is configured");
    assert_eq!(token_requests[0].method, "POST");
    assert_eq!(
        token_requests[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let callbacks: Vec<Seen> = merchant.seen().into_iter().filter(|s| s.path == "/auth").collect();
    assert!(
        callbacks
            .iter()
            .all(|s| s.header("authorization") == Some("Bearer tok-1"))
    );
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_for_many_decisions_and_once_per_merchant() {
    let platform = Platform::new();
    let merchant = MerchantServer::start(oauth_merchant(Arc::new(AtomicUsize::new(1)), 3600)).await;
    let first = platform
        .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
        .await;
    let second = platform
        .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
        .await;

    for n in 0..20 {
        assert_allowed(&platform.ask(&first, &format!("user{n}@example.com")).await);
    }
    assert_eq!((merchant.hits("/token"), merchant.hits("/auth")), (1, 20));

    assert_allowed(&platform.ask(&second, "ann@example.com").await);
    assert_eq!(merchant.hits("/token"), 2, "tokens are not shared between merchants");
}

#[tokio::test]
async fn oauth2_a_changed_client_secret_or_scope_fetches_a_new_token() {
    let platform = Platform::new();
    let merchant = MerchantServer::start(oauth_merchant(Arc::new(AtomicUsize::new(1)), 3600)).await;
    let with = |client_secret: &str, scope: Option<&str>| {
        let auth = AuthMethod::Oauth2ClientCredentials {
            token_url: merchant.url("/token"),
            client_id: "platform-client".into(),
            client_secret: client_secret.into(),
            scope: scope.map(Into::into),
        };
        callback(merchant.url("/auth"), auth)
    };
    let id = platform.merchant(Some(with("secret-1", None))).await;
    let token_requests = || {
        let seen = merchant.seen().into_iter().filter(|seen| seen.path == "/token");
        seen.map(|seen| url::form_urlencoded::parse(&seen.body).into_owned().collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };

    for (config, fetches) in [
        (with("secret-1", None), 1),
        (with("secret-2", None), 2),
        (with("secret-2", Some("auth:check")), 3),
        (with("secret-2", Some("auth:check admin")), 4),
        (with("secret-1", None), 4),
    ] {
        platform.store.put_auth_callback(&id, &config).await.expect("put");
        assert_allowed(&platform.ask(&id, "ann@example.com").await);
        assert_eq!(token_requests().len(), fetches, "{:?}", config.auth);
    }
    let last = token_requests().pop().expect("a token request");
    let sent = |name: &str| last.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    assert_eq!(sent("client_secret").as_deref(), Some("secret-2"));
    assert_eq!(sent("scope").as_deref(), Some("auth:check admin"));
}

#[tokio::test]
async fn oauth2_token_is_fetched_again_30_seconds_before_it_expires() {
    let platform = Platform::new();
    let merchant = MerchantServer::start(oauth_merchant(Arc::new(AtomicUsize::new(1)), 60)).await;
    let id = platform
        .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
        .await;

    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    platform.clock.advance(time::Duration::seconds(29));
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/token"), 1, "still 31 s to live");

    platform.clock.advance(time::Duration::seconds(2));
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/token"), 2, "29 s to live: refreshed");
}

#[tokio::test]
async fn oauth2_token_refused_with_401_is_fetched_again_once() {
    let platform = Platform::new();
    let generation = Arc::new(AtomicUsize::new(1));
    let merchant = MerchantServer::start(oauth_merchant(Arc::clone(&generation), 3600)).await;
    let id = platform
        .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
        .await;
    assert_allowed(&platform.ask(&id, "ann@example.com").await);

    // The merchant revokes its tokens: the cached one now gets a 401.
    generation.store(2, Ordering::SeqCst);
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!((merchant.hits("/token"), merchant.hits("/auth")), (2, 3));
    assert_allowed(&platform.ask(&id, "ann@example.com").await);
    assert_eq!(merchant.hits("/token"), 2, "the fresh token is cached");

    // A merchant that refuses every token: one fresh fetch, then the 401 stands.
    let refusing = MerchantServer::start(|seen: &Seen| match seen.path.as_str() {
        "/token" => answer(200, r#"{"access_token":"never-good","expires_in":3600}"#),
        _ => answer(401, ""),
    })
    .await;
    let id = platform
        .merchant(Some(callback(refusing.url("/auth"), oauth(&refusing, None))))
        .await;
    assert_denied(&platform.ask(&id, "ann@example.com").await, "http_status_401");
    assert_eq!(
        (refusing.hits("/token"), refusing.hits("/auth")),
        (1, 1),
        "a fresh token is not refetched"
    );
    assert_denied(&platform.ask(&id, "ann@example.com").await, "http_status_401");
    assert_eq!(
        (refusing.hits("/token"), refusing.hits("/auth")),
        (2, 3),
        "a cached one is, once"
    );
}

#[tokio::test]
async fn oauth2_token_endpoint_failures_are_token_errors() {
    let platform = Platform::new();
    let token_answers = [
        (400, r#"{"error":"invalid_client"}"#),
        (500, r#"{"access_token":"t"}"#),
        (200, "<html>login</html>"),
        (200, r#"{"token":"t"}"#),
        (200, r#"{"access_token":""}"#),
        (200, r#"{"access_token":"t","token_type":"mac"}"#),
        (200, r#"{"access_token":"t","expires_in":"soon"}"#),
    ];
    for (status, body) in token_answers {
        let merchant = MerchantServer::start(move |seen: &Seen| match seen.path.as_str() {
            "/token" => answer(status, body),
            _ => answer(200, "true"),
        })
        .await;
        let id = platform
            .merchant(Some(callback(merchant.url("/auth"), oauth(&merchant, None))))
            .await;
        assert_denied(&platform.ask(&id, "ann@example.com").await, "token_error");
        assert_eq!(merchant.hits("/auth"), 0, "{status} {body}");
    }
}

#[tokio::test]
async fn oauth2_token_url_is_checked_by_the_url_policy() {
    let platform = Platform::new();
    let merchant = MerchantServer::answering(200, "true").await;
    let auth = AuthMethod::Oauth2ClientCredentials {
        token_url: "file:///etc/passwd".into(),
        client_id: "c".into(),
        client_secret: "s".into(),
        scope: None,
    };
    let id = platform.merchant(Some(callback(merchant.url("/auth"), auth))).await;
    assert_denied(&platform.ask(&id, "ann@example.com").await, "blocked_url");
    assert!(merchant.seen().is_empty());
}
