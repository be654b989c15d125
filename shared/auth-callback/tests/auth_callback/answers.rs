//! What the merchant answers decides: truthy 2xx answers allow, everything else denies.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::response::IntoResponse;
use webhooks_auth_callback::{AuthDecision, MAX_RESPONSE_BYTES};

use crate::support::{MerchantServer, Platform, Raw, RawServer, Seen, answer, assert_allowed, assert_denied};

/// A merchant answering the request whose email is `case<n>@example.com` with `answers[n]`.
async fn answering_by_case(answers: Vec<(u16, &'static str, &'static str)>) -> MerchantServer {
    let answers = Arc::new(answers);
    MerchantServer::start(move |seen: &Seen| {
        let case: usize = seen.email()["case".len()..]
            .split('@')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("case<n>@example.com");
        let (status, content_type, body) = answers[case];
        let status = StatusCode::from_u16(status).expect("a status");
        (status, [(CONTENT_TYPE, content_type)], body).into_response()
    })
    .await
}

/// Asks once per case of `answers`, each answered by its own row; the decisions, in order.
async fn decisions_for(answers: Vec<(u16, &'static str, &'static str)>) -> Vec<AuthDecision> {
    let count = answers.len();
    let platform = Platform::new();
    let merchant = answering_by_case(answers).await;
    let id = platform.merchant_calling(merchant.url("/auth")).await;
    let mut decisions = Vec::with_capacity(count);
    for case in 0..count {
        decisions.push(platform.ask(&id, &format!("case{case}@example.com")).await);
    }
    decisions
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

#[tokio::test]
async fn every_positive_answer_is_allowed() {
    let answers = vec![
        (200, JSON, "true"),
        (200, JSON, r#""true""#),
        (200, JSON, "1"),
        (200, JSON, r#""yes""#),
        (200, JSON, r#""ok""#),
        (200, JSON, r#""allowed""#),
        (200, JSON, r#""TRUE""#),
        (200, JSON, r#"" Yes ""#),
        (200, TEXT, "ok"),
        (200, TEXT, "Allowed\n"),
        (200, JSON, r#"{"allowed":true}"#),
        (200, JSON, r#"{"valid":"yes"}"#),
        (200, JSON, r#"{"authorized":1}"#),
        (200, JSON, r#"{"ok":"OK"}"#),
        (200, JSON, r#"{"success":true,"message":"welcome"}"#),
        (200, JSON, r#"{"data":true}"#),
        (200, JSON, r#"{"result":"allowed"}"#),
        (200, JSON, r#"{"data":{"allowed":true}}"#),
        (201, JSON, "true"),
        (202, JSON, r#"{"allowed":"true"}"#),
    ];
    for (case, decision) in decisions_for(answers).await.iter().enumerate() {
        assert!(decision.allowed, "case {case}: {decision:?}");
        assert_allowed(decision);
    }
}

#[tokio::test]
async fn every_other_answer_is_denied_as_not_truthy() {
    let answers = vec![
        (200, JSON, "false"),
        (200, JSON, "0"),
        (200, JSON, "2"),
        (200, JSON, r#""no""#),
        (200, JSON, r#""""#),
        (200, JSON, ""),
        (200, JSON, "null"),
        (200, JSON, r#""maybe""#),
        (200, JSON, r#"{"allowed":false}"#),
        (200, JSON, r#"{"allowed":"no"}"#),
        (200, JSON, r#"{"allowed":null}"#),
        (200, JSON, "{}"),
        (200, JSON, r#"{"status":"ok"}"#),
        (200, JSON, "[true]"),
        (200, "text/html", "<!doctype html><html><body>OK</body></html>"),
        (200, TEXT, "yes please"),
        (200, TEXT, "denied"),
        (200, JSON, r#""truee""#),
        (200, JSON, r#"{"allowed":false,"ok":true}"#),
        (204, JSON, ""),
    ];
    assert!(answers.len() >= 15);
    for (case, decision) in decisions_for(answers).await.iter().enumerate() {
        assert!(!decision.allowed, "case {case}: {decision:?}");
        assert_denied(decision, "not_truthy");
    }
}

#[tokio::test]
async fn an_answer_over_16_kib_is_denied_as_response_too_large() {
    let platform = Platform::new();
    // Exactly at the cap, a padded `true` still counts; one byte more does not.
    let at_cap = format!("{}true", " ".repeat(MAX_RESPONSE_BYTES - 4));
    let over_cap = format!(" {at_cap}");
    let five_mb = format!("{}true", " ".repeat(5 * 1024 * 1024));
    for (body, reason) in [
        (at_cap, "allowed"),
        (over_cap, "response_too_large"),
        (five_mb, "response_too_large"),
    ] {
        let merchant = MerchantServer::start(move |_| answer(200, body.clone())).await;
        let id = platform.merchant_calling(merchant.url("/auth")).await;
        assert_eq!(platform.ask(&id, "ann@example.com").await.reason, reason);
    }

    // 5 MB in chunks with no content-length: the read stops at the cap.
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    let chunked = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{}4\r\ntrue\r\n0\r\n\r\n",
        chunk.repeat(80)
    );
    let raw = RawServer::start(move |_| Raw::Reply(chunked.clone().into_bytes())).await;
    let id = platform.merchant_calling(format!("{}/auth", raw.base)).await;
    assert_denied(&platform.ask(&id, "ann@example.com").await, "response_too_large");
}

#[tokio::test]
async fn redirects_are_not_followed_and_deny_with_their_status() {
    let platform = Platform::new();
    let elsewhere = MerchantServer::answering(200, "true").await;
    let target = elsewhere.url("/auth");
    for status in [301, 302, 303, 307, 308] {
        let location = target.clone();
        let merchant = MerchantServer::start(move |_| {
            let status = StatusCode::from_u16(status).expect("a status");
            (status, [(LOCATION, location.clone())], "true").into_response()
        })
        .await;
        let id = platform.merchant_calling(merchant.url("/auth")).await;
        assert_denied(
            &platform.ask(&id, "ann@example.com").await,
            &format!("http_status_{status}"),
        );
    }
    assert!(elsewhere.seen().is_empty(), "no redirect was followed");
}

#[tokio::test]
async fn client_and_server_errors_deny_with_their_status_whatever_the_body() {
    let platform = Platform::new();
    for status in [400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504] {
        let merchant = MerchantServer::start(move |_| answer(status, r#"{"allowed":true}"#)).await;
        let id = platform.merchant_calling(merchant.url("/auth")).await;
        assert_denied(
            &platform.ask(&id, "ann@example.com").await,
            &format!("http_status_{status}"),
        );
    }
}
