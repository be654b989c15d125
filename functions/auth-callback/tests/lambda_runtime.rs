//! The auth-callback bootstrap on a Lambda Runtime API emulator, with DynamoDB on moto:
//! direct-invoke payloads `{merchantId, email, action}` in, `{allowed, reason, latencyMs,
//! cached}` out. Prints its init time and RSS (run with `--nocapture`; docs/benchmarks.md
//! has the figures).

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, IsoTime, Merchant, NewApiKey};
use webhooks_storage::{AuthCallbackStore, MerchantStore};
use webhooks_tests::lambda_emulator::{FunctionProcess, LambdaEmulator, MotoDeployment, bootstrap_binary};
use webhooks_tests::merchant::TestMerchant;

const INVOKE: Duration = Duration::from_secs(10);

async fn add_merchant(aws: &MotoDeployment, name: &str) -> String {
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: name.into(),
        created_at: IsoTime::new(OffsetDateTime::now_utc()).unwrap(),
    };
    aws.store
        .create_merchant(&merchant, &NewApiKey::generate().hash)
        .await
        .unwrap();
    merchant.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_callback_bootstrap_answers_a_direct_invoke_on_the_runtime_api() {
    let aws = MotoDeployment::start().await;
    let callback = TestMerchant::start().await;
    let configured = add_merchant(&aws, "With a callback").await;
    let config = AuthCallbackConfig {
        // Answers 200 "ok": truthy.
        url: callback.url("/ok"),
        auth: AuthMethod::None,
        timeout_ms: None,
        cache_ttl_seconds: None,
    };
    aws.store.put_auth_callback(&configured, &config).await.unwrap();
    let unconfigured = add_merchant(&aws, "Without a callback").await;

    let emulator = LambdaEmulator::start("webhooks-auth-callback").await.unwrap();
    let binary = bootstrap_binary("auth-callback", env!("CARGO_BIN_EXE_auth-callback"));
    let mut env = aws.function_env();
    // template.yaml gives auth-callback 512 MB; the callback is on loopback, over http.
    env.push(("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "512".into()));
    env.push(("WEBHOOKS_ALLOW_HTTP".into(), "true".into()));
    env.push(("WEBHOOKS_ALLOW_PRIVATE_URLS".into(), "true".into()));
    let mut function = FunctionProcess::spawn(&binary, &emulator, &env).unwrap();
    function
        .wait_until_polling(&emulator, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let payload = json!({ "merchantId": configured, "email": "user@example.com", "action": "buy" });
    let allowed = emulator.invoke(payload, INVOKE).await;
    let figures = function.measure(&emulator).unwrap();
    let allowed = allowed.unwrap_or_else(|e| panic!("{e}\n{}", function.log()));
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(allowed["reason"], "allowed");
    assert_eq!(allowed["cached"], false);
    assert!(allowed["latencyMs"].is_u64(), "{allowed}");
    let asked = callback.requests_to("/ok");
    assert_eq!(asked.len(), 1);
    let question: Value = serde_json::from_str(&asked[0].body).unwrap();
    assert_eq!(question, json!({ "email": "user@example.com", "action": "buy" }));

    let payload = json!({ "merchantId": unconfigured, "email": "user@example.com", "action": "sell" });
    let denied = emulator.invoke(payload, INVOKE).await.unwrap();
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["reason"], "no_callback_configured");

    let denied = emulator
        .invoke(json!({ "merchantId": configured }), INVOKE)
        .await
        .unwrap();
    assert_eq!(denied["allowed"], false, "{denied}");
    assert_eq!(denied["reason"], "bad_request");
    assert_eq!(
        callback.requests().len(),
        1,
        "only the first decision asks the merchant"
    );

    println!("{figures}");
    function.stop();
}
