//! What a create or a replace requires of the item it writes, and the error each backend
//! returns when that does not hold, so that both refuse the same writes the same way.
//! DynamoDB states the requirement as a condition expression; the embedded store sees it
//! as a statement that changed no row.

use webhooks_domain::Subscription;

use crate::{Entity, StoreError};

/// What a write requires of the item it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Creating: no item may exist at the key yet ([`StoreError::Conflict`] otherwise).
    Absent(Entity),
    /// Changing: the item must exist ([`StoreError::NotFound`] otherwise).
    Present,
}

impl Precondition {
    /// The error of a write this precondition refused.
    pub(crate) fn refused(self) -> StoreError {
        match self {
            Precondition::Absent(entity) => StoreError::Conflict(entity),
            Precondition::Present => StoreError::NotFound,
        }
    }

    /// The outcome of a write that changed `rows` rows: none means the precondition failed.
    pub(crate) fn check(self, rows: usize) -> Result<(), StoreError> {
        match rows {
            0 => Err(self.refused()),
            _ => Ok(()),
        }
    }
}

/// A versioned replace of a subscription: it is stored only if the stored one is still at
/// the version its writer read, and then one version on. Of two writers that read the same
/// version, the second is refused with [`StoreError::VersionConflict`] and must read again,
/// so neither undoes the other's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionedReplace {
    /// The version the writer read, which the stored subscription must still be at. One
    /// stored before subscriptions had versions is at version 0.
    pub(crate) read: u64,
    /// What to store: the writer's subscription, one version on.
    pub(crate) next: Subscription,
}

impl VersionedReplace {
    /// The replace of the subscription as `subscription` was read and then changed.
    pub(crate) fn of(subscription: &Subscription) -> Self {
        let read = subscription.version;
        let next = Subscription {
            version: read.saturating_add(1),
            ..subscription.clone()
        };
        Self { read, next }
    }

    /// The error of a replace that was refused, given whether the subscription still
    /// exists: gone is [`StoreError::NotFound`]; changed is [`StoreError::VersionConflict`].
    pub(crate) fn refused(&self, exists: bool) -> StoreError {
        match exists {
            true => StoreError::VersionConflict,
            false => StoreError::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use webhooks_domain::{EventName, IsoTime};

    use super::*;

    #[test]
    fn a_refused_create_is_a_conflict_naming_the_entity_and_a_refused_change_is_not_found() {
        assert_eq!(
            Precondition::Absent(Entity::ApiKey).refused(),
            StoreError::Conflict(Entity::ApiKey)
        );
        assert_eq!(Precondition::Present.refused(), StoreError::NotFound);
        assert_eq!(Precondition::Present.check(1), Ok(()));
        assert_eq!(
            Precondition::Absent(Entity::Subscription).check(0),
            Err(StoreError::Conflict(Entity::Subscription))
        );
    }

    #[test]
    fn a_versioned_replace_requires_the_version_read_and_stores_the_next() {
        let created_at = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let read_at_3 = Subscription {
            id: "sub_1".into(),
            merchant_id: "m_1".into(),
            url: "https://merchant.example/hook".into(),
            events: EventName::ALL.to_vec(),
            description: String::new(),
            enabled: true,
            rate_limit_per_second: None,
            created_at,
            updated_at: created_at,
            version: 3,
            health: Default::default(),
        };
        let replace = VersionedReplace::of(&read_at_3);
        assert_eq!(replace.read, 3);
        assert_eq!(replace.next.version, 4);
        assert_eq!(
            Subscription {
                version: 3,
                health: Default::default(),
                ..replace.next.clone()
            },
            read_at_3
        );
        assert_eq!(replace.refused(true), StoreError::VersionConflict);
        assert_eq!(replace.refused(false), StoreError::NotFound);
    }
}
