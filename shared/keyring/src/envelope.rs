//! The stored form of a sealed secret: `wsec1.<provider>.<wrapped key>.<sealed>`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::KeyringError;

/// The version tag every sealed value starts with.
const VERSION: &str = "wsec1";

/// A sealed secret, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// Who wrapped the data key: `kms`, or `local-<key id>`.
    pub(crate) provider: String,
    /// The data key, encrypted by the provider.
    pub(crate) wrapped_key: Vec<u8>,
    /// Nonce, ciphertext and tag.
    pub(crate) sealed: Vec<u8>,
}

impl Envelope {
    /// The one-line ASCII form.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{VERSION}.{}.{}.{}",
            self.provider,
            URL_SAFE_NO_PAD.encode(&self.wrapped_key),
            URL_SAFE_NO_PAD.encode(&self.sealed)
        )
    }

    /// Parses [`Envelope::encode`]'s form.
    pub(crate) fn decode(stored: &str) -> Result<Self, KeyringError> {
        let mut parts = stored.split('.');
        let (Some(version), Some(provider), Some(wrapped), Some(sealed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyringError::Malformed("not four dot-separated parts"));
        };
        if version != VERSION {
            return Err(KeyringError::Malformed("unknown version"));
        }
        let bytes = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| KeyringError::Malformed("not base64url"))
        };
        Ok(Self {
            provider: provider.to_owned(),
            wrapped_key: bytes(wrapped)?,
            sealed: bytes(sealed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_malformed_ones_are_refused() {
        let envelope = Envelope {
            provider: "local-0a1b2c3d".into(),
            wrapped_key: vec![1, 2, 3],
            sealed: vec![250; 40],
        };
        assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope.clone()));
        for bad in [
            "",
            "wsec1",
            "wsec1.kms.AQ",
            "wsec2.kms.AQ.AQ",
            "wsec1.kms.AQ.AQ.AQ",
            "wsec1.kms.!!.AQ",
        ] {
            assert!(
                matches!(Envelope::decode(bad), Err(KeyringError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
