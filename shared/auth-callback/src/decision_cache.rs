//! Positive decisions kept for the TTL the merchant's configuration sets, each under the
//! revision of the configuration that made it: a `PUT` (in the API's process) gives the
//! configuration a new revision, and so leaves every decision of the old one unused.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

/// The most positive decisions kept; beyond it expired ones are dropped, then new ones are not kept.
const MAX_CACHED_DECISIONS: usize = 10_000;

/// Whose positive decision, under which configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DecisionKey {
    pub(crate) merchant_id: String,
    /// The [`AuthCallbackConfig::revision`](webhooks_domain::AuthCallbackConfig::revision)
    /// that made the decision.
    pub(crate) revision: String,
    pub(crate) email: String,
    pub(crate) action: String,
}

/// When a positive decision was made, and until when its configuration's TTL kept it.
#[derive(Debug, Clone, Copy)]
struct CachedAllow {
    decided_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// The positive decisions of the process, shared by every decision.
#[derive(Debug, Default)]
pub(crate) struct DecisionCache {
    allows: Mutex<HashMap<DecisionKey, CachedAllow>>,
}

impl DecisionCache {
    /// Whether `key` was allowed less than `ttl` before `now` (the TTL of the current
    /// configuration: lowering it takes effect at once).
    pub(crate) fn is_allowed(&self, key: &DecisionKey, ttl: Duration, now: OffsetDateTime) -> bool {
        let allows = self.allows.lock().unwrap_or_else(PoisonError::into_inner);
        allows
            .get(key)
            .is_some_and(|entry| now < entry.expires_at && now < entry.decided_at.saturating_add(ttl))
    }

    /// Keeps a positive decision made at `now` for `ttl`.
    pub(crate) fn remember_allow(&self, key: DecisionKey, ttl: Duration, now: OffsetDateTime) {
        let mut allows = self.allows.lock().unwrap_or_else(PoisonError::into_inner);
        if allows.len() >= MAX_CACHED_DECISIONS {
            allows.retain(|_, entry| now < entry.expires_at);
        }
        if allows.len() < MAX_CACHED_DECISIONS || allows.contains_key(&key) {
            let expires_at = now.saturating_add(ttl);
            allows.insert(
                key,
                CachedAllow {
                    decided_at: now,
                    expires_at,
                },
            );
        }
    }
}
