//! Pagination: page sizes, and opaque cursors that clients cannot forge.
//!
//! A cursor is `base64url(position) "." base64url(HMAC_SHA256(key, scope "\n" position))`,
//! with the MAC at its full 32 bytes: a shorter one is refused (a 1-byte MAC would be
//! forged in at most 256 tries),
//! where the scope names the listing (`subscriptions:m_123`) so that a cursor from one
//! merchant's listing is refused in another's. The key is made once per store and kept in
//! it, so every process serving the store accepts the cursors of the others.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::StoreError;

/// The default page size of the merchant API.
pub const DEFAULT_PAGE_SIZE: usize = 20;
/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: usize = 100;

/// One page of a listing: how many, and after which cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (1..=1000; the API allows 1..=100).
    pub limit: usize,
    /// The `nextCursor` of the previous page, as the client sent it.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { limit, cursor: None }
    }
}

/// A page of items and the cursor of the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts.
    pub next_cursor: Option<String>,
}

/// Seals and opens cursors with the store's key.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

impl CursorCodec {
    /// A codec with `key` (random bytes made once and kept by the store).
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    /// Seals an adapter's position (the sort key of the last item returned) for `scope`.
    pub fn seal(&self, scope: &str, position: &str) -> String {
        format!("{}.{}", B64.encode(position), B64.encode(self.tag(scope, position)))
    }

    /// Opens a cursor sealed for `scope`; anything else is [`StoreError::BadCursor`].
    pub fn open(&self, scope: &str, cursor: &str) -> Result<String, StoreError> {
        let (position, tag) = cursor.split_once('.').ok_or(StoreError::BadCursor)?;
        let position = String::from_utf8(B64.decode(position).map_err(|_| StoreError::BadCursor)?)
            .map_err(|_| StoreError::BadCursor)?;
        let tag = B64.decode(tag).map_err(|_| StoreError::BadCursor)?;
        // Constant time, and only a MAC of the full length matches.
        self.mac(scope, &position)
            .verify_slice(&tag)
            .map_err(|_| StoreError::BadCursor)?;
        Ok(position)
    }

    fn tag(&self, scope: &str, position: &str) -> Vec<u8> {
        self.mac(scope, position).finalize().into_bytes().to_vec()
    }

    fn mac(&self, scope: &str, position: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(scope.as_bytes());
        mac.update(b"\n");
        mac.update(position.as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_open_only_in_their_scope_and_untampered() {
        let codec = CursorCodec::new(vec![7; 32]);
        let cursor = codec.seal("subscriptions:m_1", r#"{"sk":"SUB#sub_9"}"#);
        assert_eq!(
            codec.open("subscriptions:m_1", &cursor).unwrap(),
            r#"{"sk":"SUB#sub_9"}"#
        );
        assert_eq!(codec.open("subscriptions:m_2", &cursor), Err(StoreError::BadCursor));
        let other_key = CursorCodec::new(vec![8; 32]);
        assert_eq!(other_key.open("subscriptions:m_1", &cursor), Err(StoreError::BadCursor));
        let (position, tag) = cursor.split_once('.').unwrap();
        let forged = format!("{}.{tag}", B64.encode(r#"{"sk":"SUB#sub_0"}"#));
        assert_eq!(codec.open("subscriptions:m_1", &forged), Err(StoreError::BadCursor));
        for garbage in [
            "",
            ".",
            "abc",
            "!!!.###",
            &format!("{position}."),
            &format!("{position}.{tag}x"),
        ] {
            assert_eq!(
                codec.open("subscriptions:m_1", garbage),
                Err(StoreError::BadCursor),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn a_cursor_with_a_shortened_or_altered_mac_is_refused() {
        let codec = CursorCodec::new(vec![7; 32]);
        let cursor = codec.seal("attempts:m_1:sub_1", "ATTEMPT#0001795000000000#evt_1#00001");
        let (position, tag) = cursor.split_once('.').unwrap();
        let tag = B64.decode(tag).unwrap();
        assert_eq!(tag.len(), 32, "the full HMAC-SHA256");
        for length in 0..tag.len() {
            let shortened = format!("{position}.{}", B64.encode(&tag[..length]));
            assert_eq!(
                codec.open("attempts:m_1:sub_1", &shortened),
                Err(StoreError::BadCursor),
                "a {length}-byte MAC"
            );
        }
        for bit in 0..tag.len() * 8 {
            let mut flipped = tag.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let altered = format!("{position}.{}", B64.encode(&flipped));
            assert_eq!(
                codec.open("attempts:m_1:sub_1", &altered),
                Err(StoreError::BadCursor),
                "bit {bit} flipped"
            );
        }
        assert!(codec.open("attempts:m_1:sub_1", &cursor).is_ok());
    }
}
