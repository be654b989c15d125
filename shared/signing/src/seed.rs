//! The seed scheme: a hex HMAC of `JSON.stringify({eventName, orderId, timeStamp})`,
//! carried in the body's `signature` field.
//!
//! A merchant verifies it in Node with
//! `crypto.createHmac('sha256', secret).update(JSON.stringify(payload)).digest('hex')`
//! where `payload` is the parsed body without `signature`.

use hmac::Mac;
use serde_json::Value;

use crate::VerifyError;
use crate::js_json::{stringify, write_string};

/// The three signed fields of a webhook body, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedPayload<'a> {
    /// One of the six event names, e.g. `crypto_delivered`.
    pub event_name: &'a str,
    /// The order the event is about.
    pub order_id: &'a str,
    /// The event time as `Date.toISOString()` writes it.
    pub time_stamp: &'a str,
}

impl SeedPayload<'_> {
    /// `JSON.stringify({eventName, orderId, timeStamp})`: the bytes the signature covers.
    pub fn signed_json(&self) -> String {
        let mut out = String::with_capacity(160 + self.order_id.len());
        self.write_fields(&mut out);
        out.push('}');
        out
    }

    /// The webhook body: the three fields, then `"signature":"<hex>"`, compact JSON.
    pub fn signed_body(&self, secret: &[u8]) -> String {
        let mut body = self.signed_json();
        let signature = sign_json(secret, &body);
        body.pop(); // the closing brace: the signature goes last
        body.push_str(",\"signature\":\"");
        body.push_str(&signature);
        body.push_str("\"}");
        body
    }

    /// Writes `{"eventName":…,"orderId":…,"timeStamp":…` without the closing brace.
    fn write_fields(&self, out: &mut String) {
        out.push_str("{\"eventName\":");
        write_string(out, self.event_name);
        out.push_str(",\"orderId\":");
        write_string(out, self.order_id);
        out.push_str(",\"timeStamp\":");
        write_string(out, self.time_stamp);
    }
}

/// `hex(HMAC_SHA256(secret, json))`.
pub fn sign_json(secret: &[u8], json: &str) -> String {
    hex::encode(crate::hmac_sha256_digest(secret, json.as_bytes()))
}

/// Checks a received body the way a merchant's Node code does: parse it, take out
/// `signature`, `JSON.stringify` the rest and compare the HMAC in constant time.
pub fn verify_body(secret: &[u8], body: &[u8]) -> Result<(), VerifyError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| VerifyError::MalformedBody(e.to_string()))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| VerifyError::MalformedBody("not an object".into()))?;
    let signature = match object.shift_remove("signature") {
        Some(Value::String(signature)) => signature,
        _ => return Err(VerifyError::MissingSignature),
    };
    let claimed = hex::decode(signature).map_err(|_| VerifyError::Mismatch)?;
    let mut mac = crate::hmac_sha256(secret);
    mac.update(stringify(&value).as_bytes());
    mac.verify_slice(&claimed).map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOAD: SeedPayload<'static> = SeedPayload {
        event_name: "crypto_delivered",
        order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
        time_stamp: "2022-10-26T22:36:41.658Z",
    };

    #[test]
    fn body_has_the_contract_key_order() {
        let body = PAYLOAD.signed_body(b"secret");
        assert!(body.starts_with(
            r#"{"eventName":"crypto_delivered","orderId":"5a3288ea-0bd4-44d2-af11-aae1f88bbd61","timeStamp":"2022-10-26T22:36:41.658Z","signature":""#
        ));
        let signature = body.rsplit_once(":\"").unwrap().1.trim_end_matches("\"}");
        assert_eq!(signature, sign_json(b"secret", &PAYLOAD.signed_json()));
        assert_eq!(signature.len(), 64);
    }

    #[test]
    fn signed_body_verifies_and_tampering_does_not() {
        let body = PAYLOAD.signed_body(b"secret");
        assert_eq!(verify_body(b"secret", body.as_bytes()), Ok(()));
        assert_eq!(verify_body(b"other", body.as_bytes()), Err(VerifyError::Mismatch));
        let tampered = body.replace("crypto_delivered", "crypto_tx_failed");
        assert_eq!(verify_body(b"secret", tampered.as_bytes()), Err(VerifyError::Mismatch));
        assert_eq!(
            verify_body(b"secret", br#"{"eventName":"x"}"#),
            Err(VerifyError::MissingSignature)
        );
        assert!(matches!(
            verify_body(b"secret", b"[1]"),
            Err(VerifyError::MalformedBody(_))
        ));
    }
}
