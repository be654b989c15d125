//! Auth callbacks: the merchant's configuration and how its answer is judged (DESIGN §5).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The default time the whole decision may take, in milliseconds.
pub const DEFAULT_AUTH_CALLBACK_TIMEOUT_MS: u64 = 3_000;
/// The shortest time a decision may be given (a merchant's `timeoutMs`, the operator's
/// default), in milliseconds.
pub const MIN_AUTH_CALLBACK_TIMEOUT_MS: u64 = 100;
/// The longest time a decision may be given (a merchant's `timeoutMs`, the operator's
/// default), in milliseconds (DESIGN §5): a user is waiting, and the decision must end well
/// inside the auth-callback function's timeout (template.yaml).
pub const MAX_AUTH_CALLBACK_TIMEOUT_MS: u64 = 5_000;
/// How deep `{"data":{"result":{"allowed":true}}}`-style nesting is followed.
const MAX_ANSWER_DEPTH: usize = 4;
/// Object fields whose value decides, in the order they are looked at.
const DECIDING_FIELDS: [&str; 7] = ["allowed", "valid", "authorized", "ok", "success", "data", "result"];
/// Strings that count as yes (compared trimmed and case-insensitively).
const POSITIVE_WORDS: [&str; 5] = ["true", "1", "yes", "ok", "allowed"];
/// Words that make a deciding field negative (any case, trimmed).
const NEGATIVE_WORDS: [&str; 4] = ["false", "0", "no", "denied"];
/// What `Debug` shows instead of a credential.
const REDACTED: &str = "<redacted>";
/// Headers an `api_key` may not name (compared case-insensitively): the HTTP client sets
/// them, or they steer the connection, a proxy or the message's framing.
const RESERVED_HEADERS: [&str; 14] = [
    "accept",
    "connection",
    "content-length",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];
/// The prefix of our Standard Webhooks signature headers, which an `api_key` may not use.
const SIGNATURE_HEADER_PREFIX: &str = "webhook-";

/// A merchant's auth-callback configuration. Its `Debug` shows no credential (see
/// [`AuthMethod`]) and the URL redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthCallbackConfig {
    /// Where we POST `{"email","action"}`.
    pub url: String,
    /// How we authenticate to the merchant.
    pub auth: AuthMethod,
    /// The merchant's own budget for a decision, in milliseconds (default: the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How long a positive decision is reused, in seconds (default 0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_seconds: Option<u64>,
    /// Which version of the configuration this is: a new random id at every `PUT`, so that
    /// decisions cached under an older one are not reused. Empty in configurations stored
    /// before revisions existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
}

/// A merchant's `timeoutMs` outside what it may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "timeoutMs must be between {min} and {max} milliseconds, not {0}",
    min = MIN_AUTH_CALLBACK_TIMEOUT_MS,
    max = MAX_AUTH_CALLBACK_TIMEOUT_MS
)]
pub struct BadAuthTimeout(pub u64);

impl AuthCallbackConfig {
    /// Checks the merchant's `timeoutMs`: absent, or [`MIN_AUTH_CALLBACK_TIMEOUT_MS`] to
    /// [`MAX_AUTH_CALLBACK_TIMEOUT_MS`].
    pub fn check_timeout(&self) -> Result<(), BadAuthTimeout> {
        match self.timeout_ms {
            Some(ms) if !(MIN_AUTH_CALLBACK_TIMEOUT_MS..=MAX_AUTH_CALLBACK_TIMEOUT_MS).contains(&ms) => {
                Err(BadAuthTimeout(ms))
            }
            _ => Ok(()),
        }
    }

    /// The merchant's `timeoutMs` as it applies: one stored before the cap (when the API
    /// took up to 10 s) counts as [`MAX_AUTH_CALLBACK_TIMEOUT_MS`].
    pub fn applied_timeout_ms(&self) -> Option<u64> {
        self.timeout_ms.map(|ms| ms.min(MAX_AUTH_CALLBACK_TIMEOUT_MS))
    }
}

/// The six ways we authenticate to a merchant's callback. Its `Debug` shows `<redacted>`
/// instead of each credential (token, password, key, client secret, signing secret).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum AuthMethod {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// A named header carrying a key.
    ApiKey {
        /// The header's name, e.g. `x-api-key`.
        header: String,
        /// The key.
        value: String,
    },
    /// An OAuth 2 client-credentials token, fetched from `token_url` and cached.
    Oauth2ClientCredentials {
        /// The merchant's token endpoint.
        token_url: String,
        /// Our client id.
        client_id: String,
        /// Our client secret.
        client_secret: String,
        /// The scope to ask for, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// Standard Webhooks headers signed with this secret.
    Hmac {
        /// The signing secret.
        secret: String,
    },
}

impl AuthMethod {
    /// The `type` name, e.g. `oauth2_client_credentials`.
    pub fn type_name(&self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Bearer { .. } => "bearer",
            AuthMethod::Basic { .. } => "basic",
            AuthMethod::ApiKey { .. } => "api_key",
            AuthMethod::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
            AuthMethod::Hmac { .. } => "hmac",
        }
    }
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMethod::None => f.write_str("None"),
            AuthMethod::Bearer { token: _ } => f.debug_struct("Bearer").field("token", &REDACTED).finish(),
            AuthMethod::Basic { username, password: _ } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &REDACTED)
                .finish(),
            AuthMethod::ApiKey { header, value: _ } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("value", &REDACTED)
                .finish(),
            AuthMethod::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret: _,
                scope,
            } => f
                .debug_struct("Oauth2ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &REDACTED)
                .field("scope", scope)
                .finish(),
            AuthMethod::Hmac { secret: _ } => f.debug_struct("Hmac").field("secret", &REDACTED).finish(),
        }
    }
}

/// Why a header name cannot carry an `api_key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadApiKeyHeader {
    /// Not an HTTP header name (RFC 9110 token: letters, digits and ``!#$%&'*+-.^_`|~``).
    #[error("auth.header must be an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), not {0:?}")]
    NotAName(String),
    /// `authorization`, which the other auth types set.
    #[error(
        "auth.header must not be authorization: use the auth type bearer, basic or \
         oauth2_client_credentials, which set that header"
    )]
    Authorization,
    /// One of our Standard Webhooks signature headers (`webhook-*`).
    #[error("auth.header must not be {0}: webhook-* headers carry our signatures (auth type hmac)")]
    Signature(String),
    /// A header the HTTP client sets, or one that steers the connection, a proxy or the
    /// message's framing.
    #[error("auth.header must not be {0}: the platform's HTTP client sets it or it controls the connection")]
    Reserved(String),
}

/// Checks the header name of an `api_key`: an HTTP header name that is neither
/// `authorization`, a `webhook-*` signature header, nor one that the HTTP client sets or
/// that steers the connection, a proxy or the framing (`host`, `content-length`,
/// `transfer-encoding`, `connection`, `keep-alive`, `proxy-authorization`,
/// `proxy-connection`, `te`, `trailer`, `upgrade`, `expect`, `content-type`, `accept`,
/// `user-agent`), in any case. `cookie` is allowed: we never set it, and some merchants'
/// gateways authenticate by one.
pub fn check_api_key_header(name: &str) -> Result<(), BadApiKeyHeader> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(BadApiKeyHeader::NotAName(name.to_owned()));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "authorization" {
        Err(BadApiKeyHeader::Authorization)
    } else if lower.starts_with(SIGNATURE_HEADER_PREFIX) {
        Err(BadApiKeyHeader::Signature(lower))
    } else if RESERVED_HEADERS.contains(&lower.as_str()) {
        Err(BadApiKeyHeader::Reserved(lower))
    } else {
        Ok(())
    }
}

/// Whether `byte` may appear in an HTTP token (RFC 9110 §5.6.2), e.g. a header name.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// A yes or no, with the reason in a machine-readable word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Whether the user may act.
    pub allowed: bool,
    /// `allowed`, or why not: `http_status_<n>`, `not_truthy`, ...
    pub reason: String,
}

impl Verdict {
    /// A denial with `reason`.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
        }
    }

    /// An approval.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            reason: "allowed".into(),
        }
    }
}

/// Judges a merchant's answer (DESIGN §5): allowed only on a 2xx whose body resembles a
/// positive boolean: `true`, `1`, `"true"`, `"1"`, `"yes"`, `"ok"`, `"allowed"` (any case,
/// trimmed), or an object in which at least one deciding field (`allowed`, `valid`,
/// `authorized`, `ok`, `success`, `result`, `data`) is positive and none is negative. A
/// field is negative when it is `false`, `0`, `null`, `"false"`, `"no"`, `"denied"` or an
/// object that is itself negative; an object without deciding fields is neutral. So
/// `{"success":true,"data":{"allowed":false}}` is denied. A body that is not JSON is read
/// as a bare word.
pub fn judge_auth_answer(status: u16, body: &[u8]) -> Verdict {
    if !(200..300).contains(&status) {
        return Verdict::deny(format!("http_status_{status}"));
    }
    let positive = match serde_json::from_slice::<Value>(body) {
        Ok(value) => judge(&value, MAX_ANSWER_DEPTH) == Judgement::Positive,
        Err(_) => std::str::from_utf8(body).is_ok_and(|text| judge_word(text) == Judgement::Positive),
    };
    if positive {
        Verdict::allow()
    } else {
        Verdict::deny("not_truthy")
    }
}

/// What one value of an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    Positive,
    Negative,
    Neutral,
}

fn judge(value: &Value, depth_left: usize) -> Judgement {
    match value {
        Value::Bool(true) => Judgement::Positive,
        Value::Bool(false) | Value::Null => Judgement::Negative,
        Value::Number(n) if n.as_f64() == Some(1.0) => Judgement::Positive,
        Value::Number(n) if n.as_f64() == Some(0.0) => Judgement::Negative,
        Value::String(s) => judge_word(s),
        Value::Object(fields) if depth_left > 0 => {
            let judgements: Vec<Judgement> = DECIDING_FIELDS
                .iter()
                .filter_map(|name| fields.get(*name))
                .map(|field| judge(field, depth_left - 1))
                .collect();
            if judgements.contains(&Judgement::Negative) {
                Judgement::Negative
            } else if judgements.contains(&Judgement::Positive) {
                Judgement::Positive
            } else {
                Judgement::Neutral
            }
        }
        _ => Judgement::Neutral,
    }
}

fn judge_word(text: &str) -> Judgement {
    let text = text.trim();
    let any = |words: &[&str]| words.iter().any(|word| text.eq_ignore_ascii_case(word));
    if any(&POSITIVE_WORDS) {
        Judgement::Positive
    } else if any(&NEGATIVE_WORDS) {
        Judgement::Negative
    } else {
        Judgement::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_positive_form_is_allowed() {
        let allowed: &[&str] = &[
            "true",
            "1",
            "1.0",
            r#""true""#,
            r#""TRUE""#,
            r#"" True ""#,
            r#""1""#,
            r#""yes""#,
            r#""Yes""#,
            r#""ok""#,
            r#""OK""#,
            r#""allowed""#,
            r#""ALLOWED""#,
            "yes",
            " ok\n",
            "Allowed",
            r#"{"allowed":true}"#,
            r#"{"valid":"yes"}"#,
            r#"{"authorized":1}"#,
            r#"{"ok":"OK"}"#,
            r#"{"success":true,"message":"fine"}"#,
            r#"{"data":true}"#,
            r#"{"result":"allowed"}"#,
            r#"{"data":{"allowed":true}}"#,
            r#"{"result":{"data":{"ok":"true"}}}"#,
        ];
        for body in allowed {
            for status in [200, 201, 204, 299] {
                assert_eq!(
                    judge_auth_answer(status, body.as_bytes()),
                    Verdict::allow(),
                    "{status} {body}"
                );
            }
        }
    }

    #[test]
    fn everything_else_is_denied_as_not_truthy() {
        let denied: &[&str] = &[
            "false",
            "0",
            "2",
            "-1",
            r#""no""#,
            r#""""#,
            "",
            "null",
            r#""maybe""#,
            r#"{"allowed":false}"#,
            r#"{"allowed":"no"}"#,
            r#"{"allowed":null}"#,
            r#"{}"#,
            r#"{"status":"ok"}"#,
            r#"{"Allowed":true}"#,
            "[true]",
            r#"["yes"]"#,
            "<html><body>OK page</body></html>",
            r#""truee""#,
            r#""yes please""#,
            "tru",
            r#"{"data":{"data":{"data":{"data":{"allowed":true}}}}}"#,
            "\u{0}true",
            r#"{"allowed":false,"ok":true}"#,
        ];
        for body in denied {
            assert_eq!(
                judge_auth_answer(200, body.as_bytes()),
                Verdict::deny("not_truthy"),
                "{body}"
            );
        }
        let invalid_utf8 = [0xff, 0xfe, b't'];
        assert_eq!(judge_auth_answer(200, &invalid_utf8), Verdict::deny("not_truthy"));
    }

    #[test]
    fn an_envelope_is_allowed_only_when_a_deciding_field_says_yes_and_none_says_no() {
        let cases: &[(&str, bool)] = &[
            (r#"{"success":true,"data":{"allowed":false}}"#, false),
            (r#"{"success":true,"data":{"allowed":true}}"#, true),
            (r#"{"success":true,"data":{"user":"ann"}}"#, true),
            (r#"{"ok":true,"data":null}"#, false),
            (r#"{"ok":true,"result":0}"#, false),
            (r#"{"ok":true,"valid":"denied"}"#, false),
            (r#"{"ok":true,"valid":"No"}"#, false),
            (r#"{"ok":true,"valid":"maybe"}"#, true),
            (r#"{"result":{"valid":"no"}}"#, false),
            (r#"{"data":{"result":{"authorized":true}},"success":"ok"}"#, true),
            (r#"{"data":{"result":{"authorized":false}},"success":"ok"}"#, false),
            (r#"{"data":{},"success":false}"#, false),
            (r#"{"data":{}}"#, false),
            (r#"{"message":"no","ok":1}"#, true),
        ];
        for (body, allowed) in cases {
            let verdict = judge_auth_answer(200, body.as_bytes());
            let expected = if *allowed {
                Verdict::allow()
            } else {
                Verdict::deny("not_truthy")
            };
            assert_eq!(verdict, expected, "{body}");
        }
    }

    #[test]
    fn non_2xx_is_denied_with_the_status() {
        for status in [100, 199, 300, 301, 302, 304, 400, 401, 403, 404, 429, 500, 502, 503] {
            assert_eq!(
                judge_auth_answer(status, b"true"),
                Verdict::deny(format!("http_status_{status}")),
                "{status}"
            );
        }
    }

    #[test]
    fn config_round_trips_with_every_auth_type() {
        let configs = [
            r#"{"url":"https://m.example/auth","auth":{"type":"none"}}"#,
            r#"{"url":"https://m.example/auth","auth":{"type":"bearer","token":"t"},"timeoutMs":1500}"#,
            r#"{"url":"https://m.example/auth","auth":{"type":"basic","username":"u","password":"p"}}"#,
            r#"{"url":"https://m.example/auth","auth":{"type":"api_key","header":"x-api-key","value":"v"}}"#,
            r#"{"url":"https://m.example/auth","auth":{"type":"oauth2_client_credentials","tokenUrl":"https://m.example/token","clientId":"c","clientSecret":"s","scope":"auth"},"cacheTtlSeconds":60}"#,
            r#"{"url":"https://m.example/auth","auth":{"type":"hmac","secret":"0123456789abcdef"}}"#,
        ];
        for text in configs {
            let config: AuthCallbackConfig = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(serde_json::to_string(&config).unwrap(), text);
        }
        let unknown_type = r#"{"url":"https://m.example","auth":{"type":"kerberos"}}"#;
        assert!(serde_json::from_str::<AuthCallbackConfig>(unknown_type).is_err());
    }

    #[test]
    fn a_merchant_timeout_is_at_most_five_seconds_and_an_older_longer_one_applies_as_five() {
        let with = |timeout_ms| AuthCallbackConfig {
            url: "https://m.example/auth".into(),
            auth: AuthMethod::None,
            timeout_ms,
            cache_ttl_seconds: None,
            revision: String::new(),
        };
        for allowed in [None, Some(100), Some(3_000), Some(5_000)] {
            assert_eq!(with(allowed).check_timeout(), Ok(()), "{allowed:?}");
        }
        for refused in [0, 99, 5_001, 10_000, 30_000] {
            assert_eq!(with(Some(refused)).check_timeout(), Err(BadAuthTimeout(refused)));
        }
        assert_eq!(with(Some(10_000)).applied_timeout_ms(), Some(5_000));
        assert_eq!(with(Some(1_500)).applied_timeout_ms(), Some(1_500));
        assert_eq!(with(None).applied_timeout_ms(), None);
        assert_eq!(
            BadAuthTimeout(5_001).to_string(),
            "timeoutMs must be between 100 and 5000 milliseconds, not 5001"
        );
    }

    #[test]
    fn a_config_carries_its_revision_and_one_stored_without_it_still_loads() {
        let stored_before = r#"{"url":"https://m.example/auth","auth":{"type":"none"}}"#;
        let config: AuthCallbackConfig = serde_json::from_str(stored_before).expect("loads");
        assert_eq!(config.revision, "");

        let revised = AuthCallbackConfig {
            revision: "rev-2".into(),
            ..config
        };
        let text = serde_json::to_string(&revised).expect("serializes");
        assert_eq!(
            text,
            r#"{"url":"https://m.example/auth","auth":{"type":"none"},"revision":"rev-2"}"#
        );
        assert_eq!(serde_json::from_str::<AuthCallbackConfig>(&text).ok(), Some(revised));
    }

    #[test]
    fn api_key_headers_are_http_names_the_platform_does_not_set() {
        let allowed = [
            "x-api-key",
            "X-Api-Key",
            "X-Merchant-Key",
            "apikey",
            "Cookie",
            "x_key.v2",
            "x-!#$%&'*+^`|~",
            "webhook",
            "x-webhook-id",
            "hostname",
            "authorization-key",
        ];
        for name in allowed {
            assert_eq!(check_api_key_header(name), Ok(()), "{name}");
        }
        let reserved = [
            "host",
            "Host",
            "content-length",
            "Transfer-Encoding",
            "connection",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "expect",
            "content-type",
            "accept",
            "USER-AGENT",
        ];
        for name in reserved {
            let lower = name.to_ascii_lowercase();
            assert_eq!(
                check_api_key_header(name),
                Err(BadApiKeyHeader::Reserved(lower)),
                "{name}"
            );
        }
        for name in ["authorization", "Authorization", "AUTHORIZATION"] {
            assert_eq!(check_api_key_header(name), Err(BadApiKeyHeader::Authorization));
        }
        for name in [
            "webhook-signature",
            "Webhook-Id",
            "webhook-timestamp",
            "webhook-anything",
        ] {
            let lower = name.to_ascii_lowercase();
            assert_eq!(check_api_key_header(name), Err(BadApiKeyHeader::Signature(lower)));
        }
        for name in [
            "",
            "X Api Key",
            "x-api-key:",
            ":path",
            "x-api-kéy",
            "x\tkey",
            "x\nkey",
            "(key)",
            "x/key",
            "\"key\"",
        ] {
            assert_eq!(
                check_api_key_header(name),
                Err(BadApiKeyHeader::NotAName(name.to_owned())),
                "{name:?}"
            );
        }
        assert_eq!(
            BadApiKeyHeader::Authorization.to_string(),
            "auth.header must not be authorization: use the auth type bearer, basic or \
             oauth2_client_credentials, which set that header"
        );
        assert_eq!(
            BadApiKeyHeader::Reserved("host".into()).to_string(),
            "auth.header must not be host: the platform's HTTP client sets it or it controls the connection"
        );
    }

    #[test]
    fn debug_shows_no_credential_of_any_auth_type() {
        let cases = [
            (
                AuthMethod::Bearer {
                    token: "tok-SECRET".into(),
                },
                "tok-SECRET",
            ),
            (
                AuthMethod::Basic {
                    username: "platform".into(),
                    password: "pw-SECRET".into(),
                },
                "pw-SECRET",
            ),
            (
                AuthMethod::ApiKey {
                    header: "x-api-key".into(),
                    value: "key-SECRET".into(),
                },
                "key-SECRET",
            ),
            (
                AuthMethod::Oauth2ClientCredentials {
                    token_url: "https://m.example/token".into(),
                    client_id: "platform-client".into(),
                    client_secret: "cs-SECRET".into(),
                    scope: Some("auth:check".into()),
                },
                "cs-SECRET",
            ),
            (
                AuthMethod::Hmac {
                    secret: "hmac-SECRET".into(),
                },
                "hmac-SECRET",
            ),
        ];
        for (auth, secret) in cases {
            let config = AuthCallbackConfig {
                url: "https://m.example/auth".into(),
                auth: auth.clone(),
                timeout_ms: None,
                cache_ttl_seconds: None,
                revision: "rev-1".into(),
            };
            for shown in [format!("{auth:?}"), format!("{auth:#?}"), format!("{config:?}")] {
                assert!(!shown.contains(secret), "{shown}");
                assert!(shown.contains("<redacted>"), "{shown}");
            }
        }
        let oauth = AuthMethod::Oauth2ClientCredentials {
            token_url: "https://m.example/token".into(),
            client_id: "platform-client".into(),
            client_secret: "cs-SECRET".into(),
            scope: Some("auth:check".into()),
        };
        assert_eq!(
            format!("{oauth:?}"),
            r#"Oauth2ClientCredentials { token_url: "https://m.example/token", client_id: "platform-client", client_secret: "<redacted>", scope: Some("auth:check") }"#
        );
        assert_eq!(format!("{:?}", AuthMethod::None), "None");
    }
}
