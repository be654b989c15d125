//! The merchant's auth-callback configuration, whose credentials are write-only, and a way
//! to try it: the decision exactly as the platform would get it.

use axum::Json;
use axum::http::StatusCode;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;
use webhooks_auth_callback::AuthDecision;
use webhooks_domain::auth::check_api_key_header;
use webhooks_domain::subscription::validate_secret;
use webhooks_domain::{AuthCallbackConfig, AuthMethod};
use webhooks_storage::{Backend, QueueSender};

use crate::error::ApiError;
use crate::extract::{Body, Caller};
use crate::{Api, ApiState};

/// The longest decision cache a merchant may set (`cacheTtlSeconds`), in seconds.
const MAX_CACHE_TTL_SECONDS: u64 = 3_600;
/// The action `POST /v1/auth-callback/test` asks about when none is given.
const DEFAULT_TEST_ACTION: &str = "view_private";

/// The configuration as the API shows it: the auth type and its non-secret fields, and the
/// `timeoutMs` that applies.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigView {
    url: String,
    auth: AuthView,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_ttl_seconds: Option<u64>,
}

/// An auth method without its credentials.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
enum AuthView {
    None,
    Bearer,
    Basic {
        username: String,
    },
    ApiKey {
        header: String,
    },
    Oauth2ClientCredentials {
        token_url: String,
        client_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    Hmac,
}

impl From<AuthCallbackConfig> for ConfigView {
    fn from(config: AuthCallbackConfig) -> Self {
        let timeout_ms = config.applied_timeout_ms();
        let auth = match config.auth {
            AuthMethod::None => AuthView::None,
            AuthMethod::Bearer { .. } => AuthView::Bearer,
            AuthMethod::Basic { username, .. } => AuthView::Basic { username },
            AuthMethod::ApiKey { header, .. } => AuthView::ApiKey { header },
            AuthMethod::Oauth2ClientCredentials {
                token_url,
                client_id,
                scope,
                ..
            } => AuthView::Oauth2ClientCredentials {
                token_url,
                client_id,
                scope,
            },
            AuthMethod::Hmac { .. } => AuthView::Hmac,
        };
        Self {
            url: config.url,
            auth,
            timeout_ms,
            cache_ttl_seconds: config.cache_ttl_seconds,
        }
    }
}

/// `PUT /v1/auth-callback`: the domain's configuration, refusing `{"type":"none"}` with
/// other properties too (serde lets a unit variant of an internally tagged enum ignore
/// unknown fields, where every other variant refuses them), and a `revision`, which only
/// the API sets.
pub(crate) struct PutRequest(AuthCallbackConfig);

impl<'de> Deserialize<'de> for PutRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        if value.get("revision").is_some() {
            return Err(D::Error::custom(
                "unknown field `revision`, expected one of `url`, `auth`, `timeoutMs`, `cacheTtlSeconds`",
            ));
        }
        let extra = value
            .get("auth")
            .filter(|auth| auth.get("type").and_then(Value::as_str) == Some("none"))
            .and_then(Value::as_object)
            .and_then(|auth| auth.keys().find(|name| *name != "type"));
        if let Some(name) = extra {
            return Err(D::Error::custom(format!("unknown field `{name}`, expected `type`")));
        }
        serde_json::from_value(value).map(PutRequest).map_err(D::Error::custom)
    }
}

/// `POST /v1/auth-callback/test`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestRequest {
    email: String,
    action: Option<String>,
}

impl<S: Backend + 'static, Q: QueueSender + 'static> Api<S, Q> {
    /// Refuses URLs the policy refuses, out-of-range numbers, credentials that cannot be
    /// sent (empty, or not fit for an HTTP header) and `api_key` header names the domain
    /// refuses ([`check_api_key_header`]).
    fn check_auth_callback(&self, config: &AuthCallbackConfig) -> Result<(), ApiError> {
        self.check_url(&config.url)?;
        config.check_timeout().map_err(|e| invalid(e.to_string()))?;
        if config
            .cache_ttl_seconds
            .is_some_and(|secs| secs > MAX_CACHE_TTL_SECONDS)
        {
            return Err(invalid(format!(
                "cacheTtlSeconds must be between 0 and {MAX_CACHE_TTL_SECONDS}"
            )));
        }
        match &config.auth {
            AuthMethod::None => Ok(()),
            AuthMethod::Bearer { token } => header_safe("auth.token", token),
            AuthMethod::Basic { username, .. } => not_empty("auth.username", username),
            AuthMethod::ApiKey { header, value } => {
                check_api_key_header(header).map_err(|refusal| invalid(refusal.to_string()))?;
                header_safe("auth.value", value)
            }
            AuthMethod::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                ..
            } => {
                self.check_url(token_url)?;
                not_empty("auth.clientId", client_id)?;
                not_empty("auth.clientSecret", client_secret)
            }
            AuthMethod::Hmac { secret } => {
                validate_secret(secret).map_err(|e| ApiError::unprocessable("invalid_secret", e.to_string()))
            }
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::unprocessable("invalid_value", message)
}

fn not_empty(field: &str, value: &str) -> Result<(), ApiError> {
    match value.is_empty() {
        true => Err(invalid(format!("{field} must not be empty"))),
        false => Ok(()),
    }
}

/// Not empty, and printable ASCII only, so that it can travel in a header.
fn header_safe(field: &str, value: &str) -> Result<(), ApiError> {
    not_empty(field, value)?;
    match value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        true => Ok(()),
        false => Err(invalid(format!("{field} must be printable ASCII"))),
    }
}

/// `GET /v1/auth-callback`: the configuration without credentials; 404 when none.
pub(crate) async fn get<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
) -> Result<Json<ConfigView>, ApiError> {
    let config = api.store.get_auth_callback(&caller.merchant_id).await?;
    config
        .map(|config| Json(config.into()))
        .ok_or_else(|| ApiError::not_found("auth callback"))
}

/// `PUT /v1/auth-callback`: creates or replaces the configuration, under a new revision so
/// that no decision cached under the one it replaces is reused.
pub(crate) async fn put<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    Body(PutRequest(mut config)): Body<PutRequest>,
) -> Result<Json<ConfigView>, ApiError> {
    api.check_auth_callback(&config)?;
    config.revision = Uuid::new_v4().simple().to_string();
    api.store.put_auth_callback(&caller.merchant_id, &config).await?;
    tracing::info!(merchant_id = %caller.merchant_id, auth_type = config.auth.type_name(), "auth callback configured");
    Ok(Json(config.into()))
}

/// `DELETE /v1/auth-callback`: 204; 404 when none.
pub(crate) async fn delete<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    if !api.store.delete_auth_callback(&caller.merchant_id).await? {
        return Err(ApiError::not_found("auth callback"));
    }
    tracing::info!(merchant_id = %caller.merchant_id, "auth callback removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/auth-callback/test`: the decision the platform would get now (without the
/// decision cache), or `no_callback_configured`.
pub(crate) async fn test<S: Backend + 'static, Q: QueueSender + 'static>(
    api: ApiState<S, Q>,
    caller: Caller,
    Body(request): Body<TestRequest>,
) -> Result<Json<AuthDecision>, ApiError> {
    let action = request.action.unwrap_or_else(|| DEFAULT_TEST_ACTION.into());
    not_empty("email", &request.email)?;
    not_empty("action", &action)?;
    let decision = match api.store.get_auth_callback(&caller.merchant_id).await? {
        Some(config) => {
            api.auth_callback
                .decide_with_config(&caller.merchant_id, &config, &request.email, &action)
                .await
        }
        None => AuthDecision {
            allowed: false,
            reason: "no_callback_configured".into(),
            latency_ms: 0,
            cached: false,
        },
    };
    Ok(Json(decision))
}
