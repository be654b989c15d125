//! Why a decision is a denial before or instead of the merchant's own answer.

use webhooks_outbound::Failure;
use webhooks_storage::StoreError;

/// A denial, with the detail that goes to the log (never a credential or a URL).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Denial {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("no such merchant")]
    UnknownMerchant,
    #[error("the merchant has no auth callback")]
    NoCallback,
    #[error("cannot read the configuration: {0}")]
    Store(#[from] StoreError),
    /// The request to the merchant failed (blocked, timed out, no connection, ...).
    #[error(transparent)]
    Outbound(#[from] Failure),
    #[error("cannot get an OAuth 2 token: {0}")]
    Token(String),
}

impl Denial {
    /// The decision's `reason`: one machine-readable word.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Denial::BadRequest(_) => "bad_request",
            Denial::UnknownMerchant => "unknown_merchant",
            Denial::NoCallback => "no_callback_configured",
            Denial::Store(_) => "store_error",
            Denial::Outbound(failure) => failure.kind(),
            Denial::Token(_) => "token_error",
        }
    }
}
