//! The call to the merchant: credentials from the configuration (and an OAuth 2 token),
//! the request through the outbound client, one retry after a connection error.

use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::time::Instant;
use uuid::Uuid;
use webhooks_domain::auth::check_api_key_header;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, Verdict, judge_auth_answer};
use webhooks_outbound::{BodyLimit, CheckedUrl, Failure, Reply};
use webhooks_signing::standard::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};

use crate::denial::Denial;
use crate::oauth::{TokenKey, TokenResponse};
use crate::{AuthCallback, MAX_RESPONSE_BYTES};

/// A connection error is retried once only if at least this much budget is left (and no
/// less than the failed attempt took).
const MIN_RETRY_BUDGET: Duration = Duration::from_millis(100);

/// How one request authenticates, resolved from the configuration (and a token).
enum Credentials<'a> {
    None,
    Bearer(&'a str),
    Basic { username: &'a str, password: &'a str },
    Header { name: &'a str, value: &'a str },
    Hmac { secret: &'a str },
}

impl<S> AuthCallback<S> {
    /// Asks the merchant of `config` about `email` and `action`, by `deadline`.
    pub(crate) async fn call(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
        email: &str,
        action: &str,
        deadline: Instant,
    ) -> Result<Verdict, Denial> {
        let url = self.client.check(&config.url)?;
        let body = serde_json::json!({ "email": email, "action": action }).to_string();
        let credentials = match &config.auth {
            AuthMethod::None => Credentials::None,
            AuthMethod::Bearer { token } => Credentials::Bearer(token),
            AuthMethod::Basic { username, password } => Credentials::Basic { username, password },
            AuthMethod::ApiKey { header, value } => Credentials::Header { name: header, value },
            AuthMethod::Hmac { secret } => Credentials::Hmac { secret },
            AuthMethod::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let key = TokenKey::new(merchant_id, token_url, client_id, client_secret, scope.as_deref());
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                ];
                form.extend(scope.as_deref().map(|scope| ("scope", scope)));
                return self.call_with_token(&url, &body, deadline, key, &form).await;
            }
        };
        let answer = self.post_with_retry(&url, &credentials, &body, deadline).await?;
        Ok(judge_auth_answer(answer.status, &answer.body))
    }

    /// Calls with a bearer token from the cache or the token endpoint; a cached token the
    /// merchant refuses (401) is replaced by a fresh one once.
    async fn call_with_token(
        &self,
        url: &CheckedUrl,
        body: &str,
        deadline: Instant,
        key: TokenKey,
        form: &[(&str, &str)],
    ) -> Result<Verdict, Denial> {
        let cached = self.tokens.get(&key, self.clock.now());
        let token = match &cached {
            Some(token) => token.clone(),
            None => self.fetch_token(&key, form, deadline).await?,
        };
        let mut answer = self
            .post_with_retry(url, &Credentials::Bearer(&token), body, deadline)
            .await?;
        if answer.status == 401 && cached.is_some() {
            tracing::debug!(
                merchant_id = key.merchant_id,
                "cached OAuth 2 token refused, fetching a fresh one"
            );
            self.tokens.forget(&key, &token);
            let token = self.fetch_token(&key, form, deadline).await?;
            answer = self
                .post_with_retry(url, &Credentials::Bearer(&token), body, deadline)
                .await?;
        }
        Ok(judge_auth_answer(answer.status, &answer.body))
    }

    /// Fetches a client-credentials token (client authentication in the form body) and
    /// caches it. A blocked token URL and a timeout keep their own reasons; every other
    /// failure is a `token_error`.
    async fn fetch_token(&self, key: &TokenKey, form: &[(&str, &str)], deadline: Instant) -> Result<String, Denial> {
        let token_url = self.client.check(&key.token_url)?;
        let request = self
            .client
            .post(&token_url)
            .header(ACCEPT, "application/json")
            .form(form);
        let reply = match self
            .client
            .exchange(request, BodyLimit::SuccessUpTo(MAX_RESPONSE_BYTES), deadline)
            .await
        {
            Ok(reply) => reply,
            Err(failure @ (Failure::BlockedUrl(_) | Failure::Timeout)) => return Err(failure.into()),
            Err(other) => return Err(Denial::Token(other.to_string())),
        };
        if !reply.is_success() {
            return Err(Denial::Token(format!("the token endpoint answered {}", reply.status)));
        }
        let (access_token, usable_for) = serde_json::from_slice::<TokenResponse>(&reply.body)
            .map_err(|_| "the token endpoint did not answer a JSON object with an access_token")
            .and_then(TokenResponse::into_bearer)
            .map_err(|message| Denial::Token(message.into()))?;
        self.tokens
            .put(key.clone(), access_token.clone(), usable_for, self.clock.now());
        Ok(access_token)
    }

    /// Posts, and once more after a connection error if the budget still allows.
    async fn post_with_retry(
        &self,
        url: &CheckedUrl,
        credentials: &Credentials<'_>,
        body: &str,
        deadline: Instant,
    ) -> Result<Reply, Denial> {
        let attempt_started = Instant::now();
        match self.post(url, credentials, body, deadline).await {
            Err(Denial::Outbound(Failure::Connect(error)))
                if deadline.saturating_duration_since(Instant::now())
                    >= attempt_started.elapsed().max(MIN_RETRY_BUDGET) =>
            {
                tracing::debug!(%error, "connection error, retrying once");
                self.post(url, credentials, body, deadline).await
            }
            outcome => outcome,
        }
    }

    /// One POST; the status alone decides a non-2xx answer, so its body is not read.
    async fn post(
        &self,
        url: &CheckedUrl,
        credentials: &Credentials<'_>,
        body: &str,
        deadline: Instant,
    ) -> Result<Reply, Denial> {
        let request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json");
        let request = match *credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { username, password } => request.basic_auth(username, Some(password)),
            Credentials::Header { name, value } => {
                // A configuration stored before the API refused such names is refused here.
                check_api_key_header(name).map_err(|refusal| Failure::Request(refusal.to_string()))?;
                let invalid = |what: &str| Failure::Request(format!("the api_key {what} is not valid in a header"));
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("header name"))?;
                let mut value = HeaderValue::from_str(value).map_err(|_| invalid("value"))?;
                value.set_sensitive(true);
                request.header(name, value)
            }
            Credentials::Hmac { secret } => {
                let id = format!("msg_{}", Uuid::new_v4().simple());
                let timestamp = self.clock.now().unix_timestamp();
                let signature = signature_header(&[secret.as_bytes()], &id, timestamp, body.as_bytes());
                request
                    .header(HEADER_ID, id)
                    .header(HEADER_TIMESTAMP, timestamp)
                    .header(HEADER_SIGNATURE, signature)
            }
        };
        let request = request.body(body.to_owned());
        Ok(self
            .client
            .exchange(request, BodyLimit::SuccessUpTo(MAX_RESPONSE_BYTES), deadline)
            .await?)
    }
}
