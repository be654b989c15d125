//! Extractors whose every rejection is an [`ApiError`]: the authenticated caller, JSON
//! bodies, path parameters and pagination; and the address a request came from.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use webhooks_storage::PageRequest;
use webhooks_storage::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

use crate::error::ApiError;

/// The authenticated merchant, put in the request by the router's guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// The merchant the API key belongs to.
    pub(crate) merchant_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The address a request came from: API Gateway's `requestContext.http.sourceIp` in
/// Lambda, else the socket peer when the server passes it (`axum::serve` with
/// `into_make_service_with_connect_info::<SocketAddr>()`, as the local stack does); `None`
/// for a router called in-process.
pub(crate) fn source_address(request: &Request) -> Option<IpAddr> {
    let extensions = request.extensions();
    let from_api_gateway = match extensions.get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    from_api_gateway.or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
    })
}

/// A JSON body of type `T`. `null` is refused anywhere in it: an optional property is
/// left out, never sent as `null`.
pub(crate) struct Body<T>(pub(crate) T);

/// Like [`Body`], but an empty body stands for `T::default()`.
pub(crate) struct OptionalBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(too_large_or_bad)?;
        parse(&bytes).map(Body)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(too_large_or_bad)?;
        if bytes.is_empty() {
            return Ok(OptionalBody(T::default()));
        }
        parse(&bytes).map(OptionalBody)
    }
}

fn too_large_or_bad(rejection: BytesRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(),
        _ => ApiError::bad_request(rejection.body_text()),
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::from_json(&e))?;
    normalize(&mut value, "")?;
    serde_json::from_value(value).map_err(|e| ApiError::from_json(&e))
}

/// Refuses `null` anywhere, and writes integral numbers such as `150.0` as integers (JSON
/// Schema counts them as integers). `at` is the JSON pointer of `value`.
fn normalize(value: &mut Value, at: &str) -> Result<(), ApiError> {
    /// Integers up to 2^53 are exact as `f64`.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Null => Err(ApiError::bad_request(format!(
            "{} is null: leave optional properties out instead",
            if at.is_empty() { "the body" } else { at }
        ))),
        Value::Number(n) => {
            if let Some(f) = n
                .as_f64()
                .filter(|f| n.is_f64() && f.fract() == 0.0 && f.abs() <= EXACT)
            {
                *value = if f < 0.0 {
                    Value::from(f as i64)
                } else {
                    Value::from(f as u64)
                };
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .try_for_each(|(i, item)| normalize(item, &format!("{at}/{i}"))),
        Value::Object(fields) => fields
            .iter_mut()
            .try_for_each(|(name, field)| normalize(field, &format!("{at}/{name}"))),
        Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Path parameters of type `T` (a malformed one, e.g. bad percent-encoding, is a 400).
pub(crate) struct PathParams<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(PathParams(params)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// `?limit=&cursor=`: `limit` 1..=100 (default 20), `cursor` a previous page's `nextCursor`.
pub(crate) struct Paging(pub(crate) PageRequest);

#[derive(Deserialize)]
struct RawPaging {
    limit: Option<String>,
    cursor: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Paging {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawPaging>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        let limit = match raw.limit {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => text
                .parse()
                .ok()
                .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
                .ok_or_else(|| ApiError::bad_request(format!("limit must be between 1 and {MAX_PAGE_SIZE}")))?,
        };
        Ok(Paging(PageRequest {
            limit,
            cursor: raw.cursor,
        }))
    }
}
