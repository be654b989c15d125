//! The router fed 20,000 random raw requests (method, path, query, headers, body), seeded
//! and mutated from valid ones: nothing a client sends yields a 5xx or a panic.
//! (Coverage-guided fuzzing of the same surface is schemathesis's job in CI; this runs in
//! every test run, on stable, in under a few seconds.)

use axum::body::Body;
use axum::http::Request;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tower::ServiceExt;
use webhooks_api::ROUTES;

use crate::support::{TestApi, Transport};

const REQUESTS: usize = 20_000;

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn junk(rng: &mut StdRng, max: usize) -> String {
    const PIECES: [&str; 16] = [
        "a", "0", "%", "%2F", "/", "..", "\u{e9}", "😀", " ", "?", "#", "{", "\"", "sub_", "%00", "\\",
    ];
    (0..rng.random_range(0..max)).map(|_| *pick(rng, &PIECES)).collect()
}

fn body(rng: &mut StdRng, subscription_id: &str) -> Vec<u8> {
    let valid = [
        r#"{"url":"https://merchant.example/hook"}"#.to_owned(),
        r#"{"url":"http://127.0.0.1:9/h","events":["crypto_delivered"],"description":"d","secret":"0123456789abcdef"}"#
            .to_owned(),
        r#"{"enabled":false,"events":["payment_received"]}"#.to_owned(),
        r#"{"url":"https://m.example/auth","auth":{"type":"basic","username":"u","password":"p"},"timeoutMs":500}"#
            .to_owned(),
        r#"{"email":"a@b.c","action":"buy"}"#.to_owned(),
        r#"{"eventName":"payment_expired"}"#.to_owned(),
        format!(r#"{{"id":"{subscription_id}"}}"#),
    ];
    let mut bytes = pick(rng, &valid).clone().into_bytes();
    match rng.random_range(0..8) {
        0 => bytes.clear(),
        1 => bytes.truncate(rng.random_range(0..=bytes.len())),
        2 => {
            for _ in 0..rng.random_range(1..6) {
                let i = rng.random_range(0..bytes.len().max(1));
                if let Some(b) = bytes.get_mut(i) {
                    *b = rng.random();
                }
            }
        }
        3 => bytes = format!("{}{}{}", "[".repeat(200), "1", "]".repeat(200)).into_bytes(),
        4 => bytes = vec![b'x'; rng.random_range(60_000..70_000)],
        5 => {
            bytes = format!(
                r#"{{"url":{},"events":{},"enabled":"{}"}}"#,
                rng.random::<f64>(),
                rng.random::<u32>(),
                junk(rng, 8)
            )
            .into_bytes()
        }
        _ => {}
    }
    bytes
}

#[tokio::test]
async fn random_raw_requests_never_get_a_5xx() {
    let api = TestApi::start(Transport::Router).await;
    let created = api
        .subscribe(api.key_a(), serde_json::json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let subscription_id = created["id"].as_str().unwrap().to_owned();
    let router = api.router();
    let mut rng = StdRng::seed_from_u64(20261127);
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW",
    ];
    let content_types = [
        "application/json",
        "text/plain",
        "application/json; charset=utf-8",
        "",
        "multipart/form-data",
    ];
    let (mut built, mut by_status) = (0, std::collections::BTreeMap::<u16, usize>::new());
    for _ in 0..REQUESTS {
        let (route_method, template, _) = pick(&mut rng, &ROUTES);
        let id = match rng.random_range(0..4) {
            0 => subscription_id.clone(),
            1 => junk(&mut rng, 40),
            2 => format!("sub_{}", "f".repeat(rng.random_range(0..80))),
            _ => "sub_00000000000000000000000000000000".to_owned(),
        };
        let mut path = template.replace("{id}", &id).replace("{eventId}", &junk(&mut rng, 20));
        if rng.random_bool(0.1) {
            path.push_str(&junk(&mut rng, 10));
        }
        if rng.random_bool(0.3) {
            path = format!("{path}?limit={}&cursor={}", junk(&mut rng, 5), junk(&mut rng, 30));
        }
        let method = if rng.random_bool(0.7) {
            route_method.as_str()
        } else {
            pick(&mut rng, &methods)
        };
        let mut request = Request::builder().method(method).uri(&path);
        match rng.random_range(0..5) {
            0 => {}
            1 => request = request.header("authorization", format!("Bearer {}", junk(&mut rng, 70))),
            2 => request = request.header("authorization", "Basic dXNlcjpwYXNz"),
            _ => request = request.header("authorization", format!("Bearer {}", api.key_a())),
        }
        let content_type = pick(&mut rng, &content_types);
        if !content_type.is_empty() {
            request = request.header("content-type", *content_type);
        }
        let Ok(request) = request.body(Body::from(body(&mut rng, &subscription_id))) else {
            continue;
        };
        built += 1;
        let response = router.clone().oneshot(request).await.expect("the router is infallible");
        let status = response.status().as_u16();
        assert!(status < 500, "{method} {path} answered {status}");
        *by_status.entry(status).or_default() += 1;
    }
    assert!(built > REQUESTS / 2, "only {built} requests were valid HTTP");
    println!("{built} random requests, statuses: {by_status:?}");
}
