//! Settings, the same names everywhere (DESIGN §6): environment variables in Lambda, and
//! environment variables or flags in the local stack. Each field has a documented default
//! and its unit in its name.

use std::time::Duration;

use webhooks_domain::auth::{
    DEFAULT_AUTH_CALLBACK_TIMEOUT_MS, MAX_AUTH_CALLBACK_TIMEOUT_MS, MIN_AUTH_CALLBACK_TIMEOUT_MS,
};
use webhooks_domain::health::DEFAULT_PROBE_SLOTS;
use webhooks_domain::retry::RetryScheduleError;
use webhooks_domain::{RetrySchedule, UrlPolicy};

use webhooks_storage::{DEFAULT_SUBSCRIPTION_SHARDS, MAX_SUBSCRIPTION_SHARDS};

use crate::logging::LogFormat;

/// Where the binary runs; it decides the defaults of the operator switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// AWS Lambda: https only, no private targets, JSON logs.
    Lambda,
    /// The local stack: http and private targets allowed, text logs.
    Local,
}

/// Every setting of the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Delays before each retry (`WEBHOOKS_RETRY_SCHEDULE`, default `5s,5m,30m,2h,5h,10h,10h`).
    pub retry_schedule: RetrySchedule,
    /// One webhook request, connect to last byte read (`WEBHOOKS_DELIVERY_TIMEOUT_MS`, default 10000).
    pub delivery_timeout_ms: u64,
    /// One auth-callback decision whose merchant sets no `timeoutMs`
    /// (`WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS`, default 3000, 100 to 5000 like a merchant's).
    pub auth_callback_timeout_ms: u64,
    /// `WEBHOOKS_ALLOW_HTTP` and `WEBHOOKS_ALLOW_PRIVATE_URLS` (true locally, false in Lambda).
    pub url_policy: UrlPolicy,
    /// How long an endpoint may fail before it is disabled (`WEBHOOKS_DISABLE_AFTER`, a
    /// number and a unit `s`, `m`, `h` or `d`; default `5d`).
    pub disable_after: Duration,
    /// Attempts that may reach a failing endpoint at once, across all containers
    /// (`WEBHOOKS_PROBE_SLOTS`, default 2, 1 to 10).
    pub probe_slots: u32,
    /// How long events and attempts are kept (`WEBHOOKS_RETENTION_DAYS`, default 30).
    pub retention_days: u32,
    /// How many partitions each subscription's attempt log and held deliveries are spread
    /// over on DynamoDB (`WEBHOOKS_SUBSCRIPTION_SHARDS`, default 8, 1 to 1024; the table keeps the highest
    /// count any function started with, so lowering it has no effect). The embedded
    /// backend has no partitions and ignores it.
    pub subscription_shards: u32,
    /// `WEBHOOKS_LOG_FORMAT`: `json` (Lambda default) or `text` (local default).
    pub log_format: LogFormat,
    /// The DynamoDB table (`WEBHOOKS_TABLE_NAME`).
    pub table_name: Option<String>,
    /// The events queue (`WEBHOOKS_EVENTS_QUEUE_URL`).
    pub events_queue_url: Option<String>,
    /// The events DLQ, where malformed events go (`WEBHOOKS_EVENTS_DLQ_URL`).
    pub events_dlq_url: Option<String>,
    /// The deliveries queue (`WEBHOOKS_DELIVERIES_QUEUE_URL`).
    pub deliveries_queue_url: Option<String>,
    /// The deliveries DLQ, where exhausted deliveries go (`WEBHOOKS_DELIVERIES_DLQ_URL`).
    pub deliveries_dlq_url: Option<String>,
    /// The KMS key (id, ARN or alias) that wraps the data keys of sealed secrets
    /// (`WEBHOOKS_KMS_KEY_ID`); only the functions that sign or call have it.
    pub kms_key_id: Option<String>,
    /// The CloudWatch namespace of the functions' metrics (`WEBHOOKS_METRICS_NAMESPACE`,
    /// default `Webhooks`; the template sets `Webhooks/{stack}`).
    pub metrics_namespace: String,
}

/// A setting that is missing or does not parse; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A required variable is unset.
    #[error("{0} is required")]
    Missing(&'static str),
    /// A variable does not parse.
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env(environment: Environment) -> Result<Self, SettingsError> {
        Self::from_lookup(environment, |name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (the environment, flags, or a test's map).
    pub fn from_lookup(
        environment: Environment,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let local = environment == Environment::Local;
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let parse = |name: &'static str, default: &str| -> Result<String, SettingsError> {
            Ok(get(name).unwrap_or_else(|| default.to_owned()))
        };
        let invalid =
            |name: &'static str, value: String, reason: String| SettingsError::Invalid { name, value, reason };
        let number = |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            let value = parse(name, &default.to_string())?;
            match value.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(invalid(name, value, format!("expected a whole number in {range:?}"))),
            }
        };
        let flag = |name: &'static str, default: bool| {
            let value = parse(name, if default { "true" } else { "false" })?;
            match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(name, value, "expected true or false".into())),
            }
        };

        let schedule_text = parse(
            "WEBHOOKS_RETRY_SCHEDULE",
            webhooks_domain::retry::DEFAULT_RETRY_SCHEDULE,
        )?;
        let retry_schedule = schedule_text.parse().map_err(|e: RetryScheduleError| {
            invalid("WEBHOOKS_RETRY_SCHEDULE", schedule_text.clone(), e.to_string())
        })?;
        let log_text = parse("WEBHOOKS_LOG_FORMAT", if local { "text" } else { "json" })?;
        let log_format = log_text
            .parse()
            .map_err(|reason| invalid("WEBHOOKS_LOG_FORMAT", log_text.clone(), reason))?;
        let disable_text = parse("WEBHOOKS_DISABLE_AFTER", "5d")?;
        let disable_after = parse_span(&disable_text).ok_or_else(|| {
            invalid(
                "WEBHOOKS_DISABLE_AFTER",
                disable_text.clone(),
                "expected e.g. 5d, 36h or 90m".into(),
            )
        })?;
        Ok(Settings {
            retry_schedule,
            disable_after,
            probe_slots: number("WEBHOOKS_PROBE_SLOTS", u64::from(DEFAULT_PROBE_SLOTS), 1..=10)? as u32,
            delivery_timeout_ms: number("WEBHOOKS_DELIVERY_TIMEOUT_MS", 10_000, 100..=900_000)?,
            auth_callback_timeout_ms: number(
                "WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS",
                DEFAULT_AUTH_CALLBACK_TIMEOUT_MS,
                MIN_AUTH_CALLBACK_TIMEOUT_MS..=MAX_AUTH_CALLBACK_TIMEOUT_MS,
            )?,
            url_policy: UrlPolicy {
                allow_http: flag("WEBHOOKS_ALLOW_HTTP", local)?,
                allow_private: flag("WEBHOOKS_ALLOW_PRIVATE_URLS", local)?,
            },
            retention_days: number("WEBHOOKS_RETENTION_DAYS", 30, 1..=3650)? as u32,
            subscription_shards: number(
                "WEBHOOKS_SUBSCRIPTION_SHARDS",
                u64::from(DEFAULT_SUBSCRIPTION_SHARDS),
                1..=u64::from(MAX_SUBSCRIPTION_SHARDS),
            )? as u32,
            log_format,
            table_name: get("WEBHOOKS_TABLE_NAME"),
            events_queue_url: get("WEBHOOKS_EVENTS_QUEUE_URL"),
            events_dlq_url: get("WEBHOOKS_EVENTS_DLQ_URL"),
            deliveries_queue_url: get("WEBHOOKS_DELIVERIES_QUEUE_URL"),
            deliveries_dlq_url: get("WEBHOOKS_DELIVERIES_DLQ_URL"),
            kms_key_id: get("WEBHOOKS_KMS_KEY_ID"),
            metrics_namespace: get("WEBHOOKS_METRICS_NAMESPACE").unwrap_or_else(|| "Webhooks".to_owned()),
        })
    }

    /// The webhook request timeout.
    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    /// The auth-callback decision budget.
    pub fn auth_callback_timeout(&self) -> Duration {
        Duration::from_millis(self.auth_callback_timeout_ms)
    }

    /// The retention of events and attempts.
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 24 * 3600)
    }

    /// A setting a binary cannot run without, e.g. `required(&s.table_name, "WEBHOOKS_TABLE_NAME")`.
    pub fn required<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, SettingsError> {
        value.as_deref().ok_or(SettingsError::Missing(name))
    }
}

/// A span of time written as a number and a unit, `s`, `m`, `h` or `d`: `5d`, `36h`. Not zero.
fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    let seconds = number.parse::<u64>().ok()?.checked_mul(seconds_per_unit)?;
    (seconds > 0).then(|| Duration::from_secs(seconds))
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(environment: Environment, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(environment, |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_environment() {
        let lambda = settings(Environment::Lambda, &[]).unwrap();
        assert_eq!(lambda.retry_schedule, RetrySchedule::default());
        assert_eq!(lambda.delivery_timeout_ms, 10_000);
        assert_eq!(lambda.auth_callback_timeout_ms, 3_000);
        assert_eq!(
            lambda.url_policy,
            UrlPolicy {
                allow_http: false,
                allow_private: false
            }
        );
        assert_eq!(lambda.log_format, LogFormat::Json);
        assert_eq!(lambda.retention_days, 30);
        assert_eq!(lambda.subscription_shards, 8);
        let local = settings(Environment::Local, &[]).unwrap();
        assert_eq!(
            local.url_policy,
            UrlPolicy {
                allow_http: true,
                allow_private: true
            }
        );
        assert_eq!(local.log_format, LogFormat::Text);
        assert_eq!(
            Settings::required(&local.table_name, "WEBHOOKS_TABLE_NAME"),
            Err(SettingsError::Missing("WEBHOOKS_TABLE_NAME"))
        );
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let custom = settings(
            Environment::Lambda,
            &[
                ("WEBHOOKS_RETRY_SCHEDULE", "1s,1s,1s"),
                ("WEBHOOKS_DELIVERY_TIMEOUT_MS", "2500"),
                ("WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS", "5000"),
                ("WEBHOOKS_ALLOW_HTTP", "yes"),
                ("WEBHOOKS_TABLE_NAME", "webhooks"),
                ("WEBHOOKS_SUBSCRIPTION_SHARDS", "128"),
            ],
        )
        .unwrap();
        assert_eq!(custom.subscription_shards, 128);
        assert_eq!(custom.retry_schedule.max_attempts(), 4);
        assert_eq!(custom.delivery_timeout(), Duration::from_millis(2500));
        assert_eq!(custom.auth_callback_timeout(), Duration::from_secs(5));
        assert!(custom.url_policy.allow_http && !custom.url_policy.allow_private);
        assert_eq!(custom.table_name.as_deref(), Some("webhooks"));
        for (name, value) in [
            ("WEBHOOKS_RETRY_SCHEDULE", "5 minutes"),
            ("WEBHOOKS_DELIVERY_TIMEOUT_MS", "ten"),
            ("WEBHOOKS_DELIVERY_TIMEOUT_MS", "0"),
            ("WEBHOOKS_AUTH_CALLBACK_TIMEOUT_MS", "5001"),
            ("WEBHOOKS_ALLOW_PRIVATE_URLS", "maybe"),
            ("WEBHOOKS_LOG_FORMAT", "xml"),
            ("WEBHOOKS_SUBSCRIPTION_SHARDS", "0"),
            ("WEBHOOKS_SUBSCRIPTION_SHARDS", "1025"),
        ] {
            match settings(Environment::Lambda, &[(name, value)]) {
                Err(SettingsError::Invalid { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
