//! The auth-callback configuration (credentials write-only) and its test route, against a
//! real merchant on 127.0.0.1.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};
use webhooks_auth_callback::{AuthCallback, AuthRequest};
use webhooks_domain::AuthMethod;
use webhooks_storage::AuthCallbackStore;
use webhooks_tests::merchant::TestMerchant;

use crate::support::{LOOPBACK, STRICT, TestApi, Transport, UNLIMITED, both_transports};

both_transports!(
    config_is_stored_whole_and_shown_without_credentials,
    get_and_delete_are_404_when_nothing_is_configured,
    config_is_validated_before_it_is_stored,
    timeout_ms_is_at_most_five_seconds,
    test_route_answers_the_decision_the_platform_would_get,
    api_key_headers_the_platform_sets_or_that_steer_the_connection_are_refused,
    a_put_leaves_decisions_cached_under_the_old_config_unused_and_a_delete_denies,
);

const URL: &str = "https://merchant.example.com/auth";

/// Each auth type with its credentials, and the view the API must show instead.
fn every_auth_type() -> Vec<(Value, Value, &'static [&'static str])> {
    vec![
        (json!({ "type": "none" }), json!({ "type": "none" }), &[]),
        (
            json!({ "type": "bearer", "token": "tok-SECRET-1" }),
            json!({ "type": "bearer" }),
            &["tok-SECRET-1"],
        ),
        (
            json!({ "type": "basic", "username": "platform", "password": "pw-SECRET-2" }),
            json!({ "type": "basic", "username": "platform" }),
            &["pw-SECRET-2"],
        ),
        (
            json!({ "type": "api_key", "header": "X-Api-Key", "value": "key-SECRET-3" }),
            json!({ "type": "api_key", "header": "X-Api-Key" }),
            &["key-SECRET-3"],
        ),
        (
            json!({
                "type": "oauth2_client_credentials", "tokenUrl": "https://login.merchant.example.com/token",
                "clientId": "platform-client", "clientSecret": "cs-SECRET-4", "scope": "auth:check",
            }),
            json!({
                "type": "oauth2_client_credentials", "tokenUrl": "https://login.merchant.example.com/token",
                "clientId": "platform-client", "scope": "auth:check",
            }),
            &["cs-SECRET-4"],
        ),
        (
            json!({ "type": "hmac", "secret": "hmac-SECRET-5-0123456789" }),
            json!({ "type": "hmac" }),
            &["hmac-SECRET-5-0123456789"],
        ),
    ]
}

async fn config_is_stored_whole_and_shown_without_credentials(t: Transport) {
    let api = TestApi::start(t).await;
    let mut revisions = HashSet::new();
    for (auth, view, credentials) in every_auth_type() {
        let config = json!({ "url": URL, "auth": auth, "timeoutMs": 2000, "cacheTtlSeconds": 60 });
        let put = api
            .call(api.key_a(), "PUT", "/v1/auth-callback", Some(config.clone()))
            .await;
        let expected = json!({ "url": URL, "auth": view, "timeoutMs": 2000, "cacheTtlSeconds": 60 });
        assert_eq!(put.expect(200), &expected);
        let got = api.call(api.key_a(), "GET", "/v1/auth-callback", None).await;
        assert_eq!(got.expect(200), &expected);
        for credential in credentials {
            assert!(!put.body.to_string().contains(credential));
            assert!(!got.body.to_string().contains(credential));
        }
        let mut stored = serde_json::to_value(api.store.get_auth_callback(&api.a.0).await.unwrap().unwrap()).unwrap();
        let revision = stored.as_object_mut().unwrap().remove("revision").expect("a revision");
        assert_eq!(stored, config);
        assert!(!put.body.to_string().contains(revision.as_str().unwrap()));
        assert!(revisions.insert(revision), "a new revision at every PUT");
    }
    let minimal = json!({ "url": URL, "auth": { "type": "bearer", "token": "t" } });
    let put = api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(minimal)).await;
    assert_eq!(put.expect(200), &json!({ "url": URL, "auth": { "type": "bearer" } }));
    let oauth_without_scope = json!({
        "url": URL,
        "auth": { "type": "oauth2_client_credentials", "tokenUrl": URL, "clientId": "c", "clientSecret": "s" },
    });
    let put = api
        .call(api.key_a(), "PUT", "/v1/auth-callback", Some(oauth_without_scope))
        .await;
    assert_eq!(
        put.expect(200)["auth"],
        json!({ "type": "oauth2_client_credentials", "tokenUrl": URL, "clientId": "c" })
    );
}

async fn get_and_delete_are_404_when_nothing_is_configured(t: Transport) {
    let api = TestApi::start(t).await;
    for method in ["GET", "DELETE"] {
        let reply = api.call(api.key_a(), method, "/v1/auth-callback", None).await;
        reply.expect(404);
        assert_eq!(reply.code(), "not_found");
    }
    let config = json!({ "url": URL, "auth": { "type": "none" } });
    api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(config))
        .await
        .expect(200);
    let deleted = api.call(api.key_a(), "DELETE", "/v1/auth-callback", None).await;
    deleted.expect(204);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(api.store.get_auth_callback(&api.a.0).await.unwrap(), None);
    api.call(api.key_a(), "GET", "/v1/auth-callback", None)
        .await
        .expect(404);
    api.call(api.key_a(), "DELETE", "/v1/auth-callback", None)
        .await
        .expect(404);
}

async fn config_is_validated_before_it_is_stored(t: Transport) {
    let api = TestApi::start_with(t, STRICT, UNLIMITED).await;
    let with = |auth: Value| json!({ "url": URL, "auth": auth });
    let cases = [
        (
            json!({ "url": "http://merchant.example.com/auth", "auth": { "type": "none" } }),
            422,
            "url_not_allowed",
        ),
        (
            json!({ "url": "https://127.0.0.1/auth", "auth": { "type": "none" } }),
            422,
            "url_not_allowed",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": 99 }),
            422,
            "invalid_value",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": 5_001 }),
            422,
            "invalid_value",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "cacheTtlSeconds": 3601 }),
            422,
            "invalid_value",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": -1 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": 1.5 }),
            400,
            "invalid_request",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "retries": 3 }),
            400,
            "invalid_request",
        ),
        (json!({ "url": URL }), 400, "invalid_request"),
        (with(json!({ "type": "kerberos" })), 400, "invalid_request"),
        (with(json!({ "type": "none", "token": "t" })), 400, "invalid_request"),
        (with(json!({ "type": "bearer" })), 400, "invalid_request"),
        (
            with(json!({ "type": "bearer", "token": "t", "extra": 1 })),
            400,
            "invalid_request",
        ),
        (with(json!({ "type": "bearer", "token": "" })), 422, "invalid_value"),
        (
            with(json!({ "type": "bearer", "token": "line\nbreak" })),
            422,
            "invalid_value",
        ),
        (
            with(json!({ "type": "basic", "username": "", "password": "p" })),
            422,
            "invalid_value",
        ),
        (
            with(json!({ "type": "api_key", "header": "X Api Key", "value": "v" })),
            422,
            "invalid_value",
        ),
        (
            with(json!({ "type": "api_key", "header": "X-Api-Key", "value": "ü" })),
            422,
            "invalid_value",
        ),
        (
            with(json!({ "type": "api_key", "header": "host", "value": "v" })),
            422,
            "invalid_value",
        ),
        (
            json!({ "url": URL, "auth": { "type": "none" }, "revision": "mine" }),
            400,
            "invalid_request",
        ),
        (
            with(
                json!({ "type": "oauth2_client_credentials", "tokenUrl": "https://10.0.0.1/token", "clientId": "c", "clientSecret": "s" }),
            ),
            422,
            "url_not_allowed",
        ),
        (
            with(json!({ "type": "oauth2_client_credentials", "tokenUrl": URL, "clientId": "c", "clientSecret": "" })),
            422,
            "invalid_value",
        ),
        (
            with(json!({ "type": "hmac", "secret": "short" })),
            422,
            "invalid_secret",
        ),
    ];
    for (body, status, code) in cases {
        let reply = api
            .call(api.key_a(), "PUT", "/v1/auth-callback", Some(body.clone()))
            .await;
        reply.expect(status);
        assert_eq!(reply.code(), code, "{body}");
    }
    assert_eq!(api.store.get_auth_callback(&api.a.0).await.unwrap(), None);
    // JSON Schema counts 150.0 as an integer, and so does the API.
    let integral = json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": 150.0, "cacheTtlSeconds": 0 });
    let put = api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(integral)).await;
    assert_eq!(put.expect(200)["timeoutMs"], 150);
}

async fn timeout_ms_is_at_most_five_seconds(t: Transport) {
    let api = TestApi::start(t).await;
    let with_timeout = |ms: u64| json!({ "url": URL, "auth": { "type": "none" }, "timeoutMs": ms });
    let put = api
        .call(api.key_a(), "PUT", "/v1/auth-callback", Some(with_timeout(5_000)))
        .await;
    assert_eq!(put.expect(200)["timeoutMs"], 5_000);

    for refused in [5_001, 10_000, 30_000] {
        let reply = api
            .call(api.key_a(), "PUT", "/v1/auth-callback", Some(with_timeout(refused)))
            .await;
        reply.expect(422);
        assert_eq!(reply.code(), "invalid_value");
        assert_eq!(
            reply.body["error"]["message"],
            format!("timeoutMs must be between 100 and 5000 milliseconds, not {refused}")
        );
    }
    let kept = api.store.get_auth_callback(&api.a.0).await.unwrap().unwrap();
    assert_eq!(kept.timeout_ms, Some(5_000), "a refused config changes nothing");

    // One stored when the API took up to 10 s is shown, as it applies, as 5 s.
    let mut older = kept;
    older.timeout_ms = Some(10_000);
    api.store.put_auth_callback(&api.a.0, &older).await.unwrap();
    let got = api.call(api.key_a(), "GET", "/v1/auth-callback", None).await;
    assert_eq!(got.expect(200)["timeoutMs"], 5_000);
}

async fn test_route_answers_the_decision_the_platform_would_get(t: Transport) {
    let api = TestApi::start(t).await;
    let test = |body: Value| api.call(api.key_a(), "POST", "/v1/auth-callback/test", Some(body));
    let unconfigured = test(json!({ "email": "alice@example.com" })).await;
    assert_eq!(
        unconfigured.expect(200),
        &json!({ "allowed": false, "reason": "no_callback_configured", "latencyMs": 0, "cached": false })
    );

    let merchant = TestMerchant::start().await;
    let config = json!({
        "url": merchant.url("/ok"),
        "auth": { "type": "bearer", "token": "tok-0123" },
        "cacheTtlSeconds": 600,
    });
    api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(config))
        .await
        .expect(200);
    for (body, action) in [
        (json!({ "email": "alice@example.com" }), "view_private"),
        (json!({ "email": "alice@example.com", "action": "buy" }), "buy"),
        (json!({ "email": "alice@example.com", "action": "buy" }), "buy"),
    ] {
        let decision = test(body).await;
        let decision = decision.expect(200);
        assert_eq!(decision["allowed"], true, "{decision}");
        assert_eq!(decision["reason"], "allowed");
        assert_eq!(
            decision["cached"], false,
            "the test route never uses the decision cache"
        );
        assert!(decision["latencyMs"].is_u64());
        let asked = merchant.requests_to("/ok").pop().expect("the merchant was asked");
        assert_eq!(asked.headers["authorization"], "Bearer tok-0123");
        let sent: Value = serde_json::from_str(&asked.body).unwrap();
        assert_eq!(sent, json!({ "email": "alice@example.com", "action": action }));
    }
    assert_eq!(merchant.requests_to("/ok").len(), 3);

    let mut stored = api.store.get_auth_callback(&api.a.0).await.unwrap().unwrap();
    stored.url = merchant.url("/status/503");
    stored.auth = AuthMethod::None;
    api.store.put_auth_callback(&api.a.0, &stored).await.unwrap();
    let denied = test(json!({ "email": "alice@example.com" })).await;
    assert_eq!(denied.expect(200)["reason"], "http_status_503");
    let blank = test(json!({ "email": "  " })).await;
    assert_eq!(blank.expect(200)["reason"], "bad_request");

    for (body, status) in [
        (json!({ "email": "" }), 422),
        (json!({ "email": "a@example.com", "action": "" }), 422),
        (json!({}), 400),
        (json!({ "email": "a@example.com", "merchantId": "m_other" }), 400),
        (json!({ "email": ["a@example.com"] }), 400),
    ] {
        test(body).await.expect(status);
    }
}

async fn api_key_headers_the_platform_sets_or_that_steer_the_connection_are_refused(t: Transport) {
    let api = TestApi::start(t).await;
    let put = |header: &str| {
        let auth = json!({ "type": "api_key", "header": header, "value": "key-123" });
        api.call(
            api.key_a(),
            "PUT",
            "/v1/auth-callback",
            Some(json!({ "url": URL, "auth": auth })),
        )
    };
    for (header, message) in [
        (
            "Host",
            "auth.header must not be host: the platform's HTTP client sets it or it controls the connection",
        ),
        (
            "transfer-encoding",
            "auth.header must not be transfer-encoding: the platform's HTTP client sets it or it controls the connection",
        ),
        (
            "authorization",
            "auth.header must not be authorization: use the auth type bearer, basic or \
             oauth2_client_credentials, which set that header",
        ),
        (
            "Webhook-Signature",
            "auth.header must not be webhook-signature: webhook-* headers carry our signatures (auth type hmac)",
        ),
        (
            "x api key",
            r#"auth.header must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), not "x api key""#,
        ),
    ] {
        let reply = put(header).await;
        reply.expect(422);
        assert_eq!(reply.code(), "invalid_value", "{header}");
        assert_eq!(reply.body["error"]["message"], message, "{header}");
    }
    assert_eq!(api.store.get_auth_callback(&api.a.0).await.unwrap(), None);
    for header in ["X-Api-Key", "cookie", "x-webhook-key"] {
        assert_eq!(put(header).await.expect(200)["auth"]["header"], header);
    }
}

/// The API and the auth-callback function run in different processes and share only the
/// store: a `PUT` must still make the function stop reusing the old configuration's allows.
async fn a_put_leaves_decisions_cached_under_the_old_config_unused_and_a_delete_denies(t: Transport) {
    let api = TestApi::start(t).await;
    let function = AuthCallback::new(
        api.store.clone(),
        LOOPBACK,
        std::time::Duration::from_secs(3),
        Arc::clone(&api.clock) as _,
    )
    .expect("the auth-callback function");
    let ask = || {
        function.decide(AuthRequest {
            merchant_id: api.a.0.clone(),
            email: "alice@example.com".into(),
            action: "buy".into(),
        })
    };
    let merchant = TestMerchant::start().await;
    let config = json!({ "url": merchant.url("/ok"), "auth": { "type": "none" }, "cacheTtlSeconds": 600 });
    let put = || api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(config.clone()));

    put().await.expect(200);
    let first = ask().await;
    assert!(first.allowed && !first.cached, "{first:?}");
    assert!(ask().await.cached);
    assert_eq!(merchant.requests_to("/ok").len(), 1);

    // The same configuration again: a new revision all the same.
    put().await.expect(200);
    let after_put = ask().await;
    assert!(after_put.allowed && !after_put.cached, "{after_put:?}");
    assert_eq!(merchant.requests_to("/ok").len(), 2, "the merchant is asked again");
    assert!(ask().await.cached);

    api.call(api.key_a(), "DELETE", "/v1/auth-callback", None)
        .await
        .expect(204);
    let after_delete = ask().await;
    assert_eq!(
        (after_delete.allowed, after_delete.reason.as_str(), after_delete.cached),
        (false, "no_callback_configured", false)
    );
    assert_eq!(merchant.requests_to("/ok").len(), 2);
}
