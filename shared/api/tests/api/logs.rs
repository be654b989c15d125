//! No log line ever holds a secret, an API key, an auth-callback credential or a URL's
//! query string: a whole scenario runs with every log line captured as Lambda writes them
//! (JSON), then the capture is searched for each of them.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;
use uuid::Uuid;
use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::RetrySchedule;
use webhooks_tests::merchant::TestMerchant;

use crate::support::{LOOPBACK, TestApi, Transport};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A distinctive secret-looking string.
fn secret(label: &str) -> String {
    format!("{label}-{}", Uuid::new_v4().simple())
}

#[tokio::test]
async fn no_log_line_holds_a_secret_an_api_key_or_a_credential() {
    let capture = Capture::default();
    let writer = capture.clone();
    let filter = EnvFilter::new("info,webhooks_api=trace,webhooks_auth_callback=trace,webhooks_deliver=trace");
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");

    let api = TestApi::start(Transport::Router).await;
    let merchant = TestMerchant::start().await;
    // A credential in the query string of the webhook and auth-callback URLs.
    let query_token = secret("query");
    let hook = merchant.url(&format!("/ok?token={query_token}"));
    let mut never_logged: Vec<String> = vec![api.a.1.clone(), api.b.1.clone(), query_token];

    // Subscriptions: a chosen secret, a generated one, a rotated one, each revealed.
    let chosen = secret("chosen");
    let created = api
        .subscribe(api.key_a(), json!({ "url": hook, "secret": chosen }))
        .await;
    let generated = api.subscribe(api.key_a(), json!({ "url": merchant.url("/ok") })).await;
    let id = created["id"].as_str().unwrap();
    let revealed = api
        .call(api.key_a(), "GET", &format!("/v1/subscriptions/{id}/secret"), None)
        .await;
    let rotated = api
        .call(
            api.key_a(),
            "POST",
            &format!("/v1/subscriptions/{id}/secret/rotate"),
            None,
        )
        .await;
    for shown in [&created, &generated, revealed.expect(200), rotated.expect(200)] {
        never_logged.push(shown["secret"].as_str().unwrap().to_owned());
        never_logged.push(shown["standardWebhooksSecret"].as_str().unwrap().to_owned());
    }

    // A test event delivered for real, signed with the rotated secrets.
    api.call(api.key_a(), "POST", &format!("/v1/subscriptions/{id}/test"), None)
        .await
        .expect(202);
    let config = DeliverConfig {
        retry_schedule: RetrySchedule::default(),
        timeout: Duration::from_secs(5),
        ..DeliverConfig::default()
    };
    let deliver = Deliver::new(
        api.store.clone(),
        api.deliveries.clone(),
        http_client(&LOOPBACK),
        config,
        api.clock.clone(),
    );
    for task in api.queued_tasks().await {
        deliver.deliver(&task).await.expect("delivered");
    }

    // Refused requests that carry secrets where they do not belong.
    let wrong_key = secret("whk_wrong");
    let bad_secret = format!("has a space {}", secret("bad"));
    let misplaced = secret("misplaced");
    let as_field_name = secret("fieldname");
    never_logged.extend([
        wrong_key.clone(),
        bad_secret.clone(),
        misplaced.clone(),
        as_field_name.clone(),
    ]);
    api.call(&wrong_key, "GET", "/v1/subscriptions", None).await.expect(401);
    let url = merchant.url("/ok");
    let mut unknown_field = json!({ "url": url });
    unknown_field[as_field_name.as_str()] = json!(1);
    for (method, uri, body, status) in [
        (
            "POST",
            "/v1/subscriptions",
            json!({ "url": url, "secret": bad_secret }),
            422,
        ),
        (
            "POST",
            "/v1/subscriptions",
            json!({ "url": url, "secret": [misplaced] }),
            400,
        ),
        ("POST", "/v1/subscriptions", unknown_field, 400),
        (
            "PUT",
            "/v1/auth-callback",
            json!({ "url": url, "auth": { "type": "none" }, "timeoutMs": misplaced }),
            400,
        ),
    ] {
        api.call(api.key_a(), method, uri, Some(body)).await.expect(status);
    }

    // Every auth type, configured, shown and tried against the merchant.
    let credentials: Vec<(Value, String)> = {
        let c = |label: &str| secret(label);
        let (token, password, key, client_secret, hmac) = (c("tok"), c("pw"), c("key"), c("cs"), c("hmac"));
        vec![
            (json!({ "type": "bearer", "token": token }), token),
            (
                json!({ "type": "basic", "username": "platform", "password": password }),
                password,
            ),
            (json!({ "type": "api_key", "header": "X-Api-Key", "value": key }), key),
            (
                json!({
                    "type": "oauth2_client_credentials", "tokenUrl": merchant.url("/ok"),
                    "clientId": "platform", "clientSecret": client_secret,
                }),
                client_secret,
            ),
            (json!({ "type": "hmac", "secret": hmac }), hmac),
        ]
    };
    for (auth, credential) in credentials {
        let config = json!({ "url": hook, "auth": auth });
        api.call(api.key_a(), "PUT", "/v1/auth-callback", Some(config))
            .await
            .expect(200);
        api.call(api.key_a(), "GET", "/v1/auth-callback", None)
            .await
            .expect(200);
        let test = json!({ "email": "alice@example.com", "action": "buy" });
        api.call(api.key_a(), "POST", "/v1/auth-callback/test", Some(test))
            .await
            .expect(200);
        never_logged.push(credential);
    }
    assert!(merchant.requests().len() >= 6, "the merchant was really called");

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("merchant api request"), "the capture works:\n{logs}");
    assert!(logs.contains(&api.a.0), "requests are logged with the merchant id");
    assert!(logs.contains("auth decision") && logs.contains("delivery attempt"));
    let shown = format!("\"url\":\"{}\"", merchant.url("/ok"));
    assert!(
        logs.contains(&shown),
        "the attempt shows the URL without its query:\n{logs}"
    );
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        for secret in &never_logged {
            assert!(!line.contains(secret.as_str()), "a log line holds {secret:?}:\n{line}");
        }
    }
}
