//! The auth-callback bootstrap on a Lambda Runtime API emulator, with DynamoDB on moto:
//! direct-invoke payloads `{merchantId, email, action}` in, `{allowed, reason, latencyMs,
//! cached}` out, always before the invocation's deadline. Prints its init time and RSS (run
//! with `--nocapture`; docs/benchmarks.md has the figures).

use std::time::Duration;

use serde_json::{Value, json};
use webhooks_domain::auth::MAX_AUTH_CALLBACK_TIMEOUT_MS;
use webhooks_domain::{AuthCallbackConfig, AuthMethod};
use webhooks_storage::AuthCallbackStore;
use webhooks_tests::emf::assert_emf_as_documented;
use webhooks_tests::lambda_emulator::{LOOPBACK_URLS, LambdaStack, METRICS_NAMESPACE, bootstrap_binary};
use webhooks_tests::merchant::TestMerchant;

const INVOKE: Duration = Duration::from_secs(10);
/// An invocation deadline nearer than the merchant's own 5 s timeout.
const SHORT_DEADLINE: Duration = Duration::from_secs(2);
/// A merchant with a callback configured.
const CONFIGURED: &str = "m_with_callback";
/// A merchant without one.
const UNCONFIGURED: &str = "m_without_callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_callback_bootstrap_answers_a_direct_invoke_on_the_runtime_api() {
    let binary = bootstrap_binary("auth-callback", env!("CARGO_BIN_EXE_auth-callback"));
    // template.yaml gives auth-callback 512 MB; the callback is on loopback, over http.
    let env = [LOOPBACK_URLS, &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")]].concat();
    let stack = LambdaStack::start("webhooks-auth-callback", &binary, &env).await;
    let (emulator, function) = (&stack.emulator, &stack.function);
    let callback = TestMerchant::start().await;
    stack.add_merchant(CONFIGURED).await;
    let config = AuthCallbackConfig {
        // Answers 200 "ok": truthy.
        url: callback.url("/ok"),
        auth: AuthMethod::None,
        timeout_ms: None,
        cache_ttl_seconds: None,
        revision: String::new(),
    };
    stack.aws.store.put_auth_callback(CONFIGURED, &config).await.unwrap();
    stack.add_merchant(UNCONFIGURED).await;

    let payload = json!({ "merchantId": CONFIGURED, "email": "user@example.com", "action": "buy" });
    let allowed = emulator.invoke(payload, INVOKE).await;
    let figures = function.measure(emulator).unwrap();
    let allowed = allowed.unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["reason"], "allowed");
    assert_eq!(allowed["cached"], false);
    assert!(allowed["latencyMs"].is_u64(), "{allowed}");
    let asked = callback.requests_to("/ok");
    assert_eq!(asked.len(), 1);
    let question: Value = serde_json::from_str(&asked[0].body).unwrap();
    assert_eq!(question, json!({ "email": "user@example.com", "action": "buy" }));

    let payload = json!({ "merchantId": UNCONFIGURED, "email": "user@example.com", "action": "sell" });
    let denied = emulator.invoke(payload, INVOKE).await.unwrap();
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["reason"], "no_callback_configured");

    let denied = emulator
        .invoke(json!({ "merchantId": CONFIGURED }), INVOKE)
        .await
        .unwrap();
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["reason"], "bad_request");
    assert_eq!(
        callback.requests().len(),
        1,
        "only the first decision asks the merchant"
    );
    let metrics = assert_emf_as_documented(&function.log(), METRICS_NAMESPACE, &["auth_decisions", "auth_latency"]);
    let reasons: Vec<&Value> = metrics.iter().filter_map(|document| document.get("reason")).collect();
    assert_eq!(
        reasons,
        [
            &json!("allowed"),
            &json!("no_callback_configured"),
            &json!("bad_request")
        ]
    );

    println!("{figures}");
    stack.function.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_slower_than_the_invocation_deadline_gets_a_timeout_denial_not_a_lambda_timeout() {
    let binary = bootstrap_binary("auth-callback", env!("CARGO_BIN_EXE_auth-callback"));
    let stack = LambdaStack::start("webhooks-auth-callback", &binary, LOOPBACK_URLS).await;
    let callback = TestMerchant::start().await;
    stack.add_merchant(CONFIGURED).await;
    let config = AuthCallbackConfig {
        // Answers after 30 s.
        url: callback.url("/hang"),
        auth: AuthMethod::None,
        timeout_ms: Some(MAX_AUTH_CALLBACK_TIMEOUT_MS),
        cache_ttl_seconds: None,
        revision: String::new(),
    };
    stack.aws.store.put_auth_callback(CONFIGURED, &config).await.unwrap();

    // The emulator sends `Lambda-Runtime-Deadline-Ms` SHORT_DEADLINE ahead, and answers
    // `Sandbox.Timedout` if the function has not answered by then.
    let payload = json!({ "merchantId": CONFIGURED, "email": "user@example.com", "action": "buy" });
    let decision = stack
        .emulator
        .invoke(payload, SHORT_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.function.log()));
    assert_eq!(decision["allowed"], false, "{decision}");
    assert_eq!(decision["reason"], "timeout", "{decision}");
    assert_eq!(callback.requests_to("/hang").len(), 1, "the merchant was asked");

    stack.function.stop();
}
