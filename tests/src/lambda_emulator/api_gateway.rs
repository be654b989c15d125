//! The events an API Gateway HTTP API (payload format 2.0) sends a function.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::{ACCOUNT_ID, REGION};

/// The API Gateway HTTP API the events of [`api_gateway_v2_event`] come through.
const API_ID: &str = "abc123";
/// The client address of those events (TEST-NET-3).
const SOURCE_IP: &str = "203.0.113.7";

/// The event an API Gateway HTTP API (payload format 2.0, `$default` route and stage) sends
/// for `method target` (`target` is the path and query, e.g. `/v1/subscriptions?limit=5`)
/// with the client's headers and a text body: header names lowercase and repeated ones
/// joined with commas, `host`, `content-length` and the `x-forwarded-*` headers set as API
/// Gateway sets them, `queryStringParameters` decoded, `isBase64Encoded` false.
pub fn api_gateway_v2_event(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let domain = format!("{API_ID}.execute-api.{REGION}.amazonaws.com");
    let mut gateway = vec![
        ("host", domain.clone()),
        ("x-forwarded-for", SOURCE_IP.to_owned()),
        ("x-forwarded-port", "443".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ];
    if let Some(body) = body {
        gateway.push(("content-length", body.len().to_string()));
    }
    let mut all = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !gateway.iter().any(|(set, _)| *set == name) {
            join_into(&mut all, name, value);
        }
    }
    for (name, value) in gateway {
        all.insert(name.to_owned(), value.into());
    }
    let user_agent = all.get("user-agent").cloned().unwrap_or_else(|| "".into());
    let now = OffsetDateTime::now_utc();
    let time = now
        .format(format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let request_id = &Uuid::new_v4().simple().to_string()[..16];
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": user_agent,
            },
            "requestId": format!("{request_id}="),
            "routeKey": "$default",
            "stage": "$default",
            "time": time,
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        let mut parameters = Map::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            join_into(&mut parameters, name.into_owned(), &value);
        }
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if let Some(body) = body {
        event["body"] = body.into();
    }
    event
}

/// Adds `value` under `name`, after a comma when `name` is already there (API Gateway v2).
fn join_into(map: &mut Map<String, Value>, name: String, value: &str) {
    match map.get_mut(&name) {
        Some(Value::String(existing)) => {
            existing.push(',');
            existing.push_str(value);
        }
        _ => {
            map.insert(name, value.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_api_events_carry_what_api_gateway_adds() {
        let event = api_gateway_v2_event(
            "GET",
            "/v1/subscriptions?limit=5&tag=a%20b&tag=c",
            &[
                ("Authorization", "Bearer whk_x"),
                ("X-Forwarded-Proto", "http"),
                ("Accept", "application/json"),
                ("accept", "text/plain"),
            ],
            None,
        );
        assert_eq!(event["rawPath"], "/v1/subscriptions");
        assert_eq!(event["rawQueryString"], "limit=5&tag=a%20b&tag=c");
        assert_eq!(event["queryStringParameters"], json!({"limit": "5", "tag": "a b,c"}));
        assert_eq!(event["headers"]["authorization"], "Bearer whk_x");
        assert_eq!(event["headers"]["x-forwarded-proto"], "https");
        assert_eq!(event["headers"]["accept"], "application/json,text/plain");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert!(event.get("body").is_none());
        let posted = api_gateway_v2_event("POST", "/v1/subscriptions", &[], Some("{}"));
        assert_eq!(posted["headers"]["content-length"], "2");
        assert_eq!(posted["body"], "{}");
        assert!(posted.get("queryStringParameters").is_none());
    }
}
