//! What a create or a replace requires of the item it writes, and the error each backend
//! returns when that does not hold, so that both refuse the same writes the same way.
//! DynamoDB states the requirement as a condition expression; the embedded store sees it
//! as a statement that changed no row.

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

#[cfg(test)]
mod tests {
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
}
