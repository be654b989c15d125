//! The command line: flags, each with the environment variable of the same setting.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Where the local stack keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// SQLite in `--data-dir`: durable, no AWS.
    Embedded,
    /// The real DynamoDB and SQS adapters against `AWS_ENDPOINT_URL` (moto, LocalStack, AWS).
    Aws,
}

/// `webhooks-local`: the whole platform in one process.
#[derive(Debug, Clone, Parser)]
#[command(name = "webhooks-local", version, about)]
pub struct Options {
    /// Port of the HTTP server (merchant API and `/local/*`).
    #[arg(long, env = "WEBHOOKS_PORT", default_value_t = 3000)]
    pub port: u16,
    /// Where data is kept: the SQLite store, and the first merchant's credentials.
    #[arg(long, env = "WEBHOOKS_DATA_DIR", default_value = "./.webhooks")]
    pub data_dir: PathBuf,
    /// Which adapters to run on.
    #[arg(long, value_enum, env = "WEBHOOKS_BACKEND", default_value = "embedded")]
    pub backend: BackendKind,
    /// With `--backend aws`: create the table and queues first.
    #[arg(long)]
    pub create_resources: bool,
    /// With `--backend aws`: the prefix of the table and queue names.
    #[arg(long, env = "WEBHOOKS_RESOURCE_PREFIX", default_value = "webhooks-local")]
    pub resource_prefix: String,
    /// Delays before each retry, e.g. `5s,5m,30m,2h,5h,10h,10h`.
    #[arg(long, env = "WEBHOOKS_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// Webhook request timeout in milliseconds (default 10000).
    #[arg(long, env = "WEBHOOKS_DELIVERY_TIMEOUT_MS")]
    pub delivery_timeout_ms: Option<String>,
    /// Auth-callback decision timeout in milliseconds (default 3000).
    #[arg(long, env = "WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS")]
    pub auth_callback_timeout_ms: Option<String>,
    /// Allow http:// URLs (default true locally).
    #[arg(long, env = "WEBHOOKS_ALLOW_HTTP")]
    pub allow_http: Option<String>,
    /// Allow loopback and private targets (default true locally).
    #[arg(long, env = "WEBHOOKS_ALLOW_PRIVATE_URLS")]
    pub allow_private_urls: Option<String>,
    /// `text` (default) or `json`.
    #[arg(long, env = "WEBHOOKS_LOG_FORMAT")]
    pub log_format: Option<String>,
}

impl Options {
    /// The value a flag (or its environment variable) gives a setting, for
    /// `Settings::from_lookup`.
    pub fn setting(&self, name: &str) -> Option<String> {
        match name {
            "WEBHOOKS_RETRY_SCHEDULE" => self.retry_schedule.clone(),
            "WEBHOOKS_DELIVERY_TIMEOUT_MS" => self.delivery_timeout_ms.clone(),
            "WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS" => self.auth_callback_timeout_ms.clone(),
            "WEBHOOKS_ALLOW_HTTP" => self.allow_http.clone(),
            "WEBHOOKS_ALLOW_PRIVATE_URLS" => self.allow_private_urls.clone(),
            "WEBHOOKS_LOG_FORMAT" => self.log_format.clone(),
            other => std::env::var(other).ok(),
        }
    }
}
