//! The webhook platform's domain, free of AWS: what events, subscriptions, deliveries and
//! auth-callback answers are, and the rules that judge them.

pub mod auth;
pub mod clock;
pub mod delivery;
pub mod event;
pub mod health;
pub mod merchant;
pub mod recent_outcomes;
pub mod recovery;
pub mod redact;
pub mod retry;
pub mod subscription;
pub mod url_policy;

pub use auth::{AuthCallbackConfig, AuthMethod, Verdict, judge_auth_answer};
pub use clock::{Clock, SystemClock, unix_millis};
pub use delivery::{AttemptOutcome, DeliveryAttempt, DeliveryStatus, DeliveryTask};
pub use event::{EventError, EventName, IsoTime, PlatformEvent};
pub use health::{EndpointHealth, HealthStatus};
pub use merchant::{Merchant, NewApiKey, hash_api_key};
pub use recent_outcomes::RecentOutcomes;
pub use recovery::{RECOVERABLE, RecoveryWindow};
pub use redact::Redacted;
pub use retry::{FailureKind, RetrySchedule};
pub use subscription::{SigningSecrets, Subscription};
pub use url_policy::{BlockedClass, UrlPolicy, UrlRefusal, redact_url};
