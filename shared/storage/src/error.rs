//! What can go wrong in a store or queue, in words a caller may pass on.

use std::fmt;

/// What can go wrong in a store or queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The item to change does not exist.
    #[error("not found")]
    NotFound,
    /// The item to create exists already; the payload says what kind of item, the same on
    /// every backend and safe to show to an API client.
    #[error("{0} already exists")]
    Conflict(Entity),
    /// The item changed since its writer read it: another write got there first, and the
    /// writer must read it again before it replaces it.
    #[error("changed since it was read")]
    VersionConflict,
    /// A pagination cursor we did not issue, or one issued for another listing.
    #[error("invalid cursor")]
    BadCursor,
    /// A receipt handle that is unknown or expired.
    #[error("invalid receipt handle")]
    BadReceipt,
    /// The backend failed (network, throttling, disk); retrying may help.
    #[error("{operation} failed: {message}")]
    Backend {
        /// The operation, e.g. `dynamodb.PutItem`.
        operation: &'static str,
        /// What the backend said.
        message: String,
    },
    /// Stored data that does not decode: a bug or manual tampering.
    #[error("stored item does not decode: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A [`StoreError::Backend`] for `operation` from any displayable error.
    pub fn backend(operation: &'static str, error: impl fmt::Display) -> Self {
        StoreError::Backend {
            operation,
            message: error.to_string(),
        }
    }
}

/// The kinds of item whose creation can conflict with one that exists
/// ([`StoreError::Conflict`]). Displayed as a client-safe noun: no id, no key, no
/// operation name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// A merchant with the same id.
    Merchant,
    /// An API key with the same hash (on any merchant).
    ApiKey,
    /// A subscription with the same id for the same merchant.
    Subscription,
}

impl Entity {
    /// The noun shown to clients: `merchant`, `API key`, `subscription`.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Merchant => "merchant",
            Entity::ApiKey => "API key",
            Entity::Subscription => "subscription",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_names_the_kind_of_item_and_nothing_else() {
        assert_eq!(
            StoreError::Conflict(Entity::ApiKey).to_string(),
            "API key already exists"
        );
        assert_eq!(Entity::Subscription.to_string(), "subscription");
        assert_eq!(Entity::Merchant.to_string(), "merchant");
    }
}
