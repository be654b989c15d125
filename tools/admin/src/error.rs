//! What can go wrong in a command, with the input it concerns.

use webhooks_storage::StoreError;

use crate::merchants::MAX_NAME_CHARS;

/// What went wrong, with the input it concerns.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A resource was named neither by a flag, nor the environment, nor `--stack`.
    #[error("no {what}: pass --{flag}, set {variable}, or pass --stack")]
    Missing {
        /// The resource, e.g. `table`.
        what: &'static str,
        /// The flag that names it.
        flag: &'static str,
        /// The environment variable that names it.
        variable: &'static str,
    },
    /// The merchant name is empty or too long.
    #[error("merchant name must be 1 to {MAX_NAME_CHARS} characters, got {0}")]
    BadName(usize),
    /// No merchant has this id.
    #[error("no merchant {0}")]
    MerchantNotFound(String),
    /// No stored key has this clear text's hash.
    #[error("no such API key (it may be revoked already)")]
    KeyNotFound,
    /// A redrive stopped part-way; the messages not moved are still in the DLQ.
    #[error("redrive stopped after moving {moved} messages: {source}")]
    RedriveIncomplete {
        /// Messages moved before the failure.
        moved: usize,
        /// The failure.
        source: StoreError,
    },
    /// The table or a queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_resource_names_its_flag_and_variable() {
        let error = AdminError::Missing {
            what: "table",
            flag: "table",
            variable: "WEBHOOKS_TABLE_NAME",
        };
        assert_eq!(
            error.to_string(),
            "no table: pass --table, set WEBHOOKS_TABLE_NAME, or pass --stack"
        );
    }
}
