//! Platform events: the messages platform services put on the events queue (DESIGN §2).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// The largest events-queue message we accept, in bytes (SQS's own limit).
pub const MAX_EVENT_MESSAGE_BYTES: usize = 256 * 1024;
/// The longest `merchantId`, in characters.
pub const MAX_MERCHANT_ID_CHARS: usize = 64;
/// The longest `orderId`, in characters.
pub const MAX_ORDER_ID_CHARS: usize = 128;
/// The longest `eventId`, in characters.
pub const MAX_EVENT_ID_CHARS: usize = 128;

/// The namespace of the UUID v5 ids derived for events that come without an `eventId`.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_6f0e_94f4_4a52_9d0b_7b7e_5e0b_c3a1);

/// What happened: to an order (the six events a merchant can subscribe to, [`EventName::ALL`]),
/// or to one of the merchant's endpoints (the operational events, [`EventName::OPERATIONAL`],
/// taken only by subscriptions that name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventName {
    /// The user's payment arrived.
    PaymentReceived,
    /// The user's payment was refused.
    PaymentRejected,
    /// The user did not pay in time.
    PaymentExpired,
    /// The crypto transaction was broadcast.
    CryptoTxSent,
    /// The crypto arrived at the user's wallet.
    CryptoDelivered,
    /// The crypto transaction failed.
    CryptoTxFailed,
    /// Operational: one of the merchant's endpoints was disabled after failing too long;
    /// `orderId` carries that subscription's id.
    EndpointDisabled,
}

impl EventName {
    /// All six, in the order DESIGN lists them.
    pub const ALL: [EventName; 6] = [
        EventName::PaymentReceived,
        EventName::PaymentRejected,
        EventName::PaymentExpired,
        EventName::CryptoTxSent,
        EventName::CryptoDelivered,
        EventName::CryptoTxFailed,
    ];

    /// The operational events: never in a default events list, taken by naming them.
    pub const OPERATIONAL: [EventName; 1] = [EventName::EndpointDisabled];

    /// The wire name, e.g. `crypto_delivered`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::PaymentReceived => "payment_received",
            EventName::PaymentRejected => "payment_rejected",
            EventName::PaymentExpired => "payment_expired",
            EventName::CryptoTxSent => "crypto_tx_sent",
            EventName::CryptoDelivered => "crypto_delivered",
            EventName::CryptoTxFailed => "crypto_tx_failed",
            EventName::EndpointDisabled => "endpoint_disabled",
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event name that is not one of the six nor an operational one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event name {0:?}: expected one of payment_received, payment_rejected, \
     payment_expired, crypto_tx_sent, crypto_delivered, crypto_tx_failed, endpoint_disabled"
)]
pub struct UnknownEventName(pub String);

impl FromStr for EventName {
    type Err = UnknownEventName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventName::ALL
            .into_iter()
            .chain(EventName::OPERATIONAL)
            .find(|name| name.as_str() == s)
            .ok_or_else(|| UnknownEventName(s.to_owned()))
    }
}

/// An instant with JavaScript `Date` precision, written as `Date.toISOString()` does:
/// UTC, three fractional digits, `Z` (`2022-10-26T22:36:41.658Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsoTime(OffsetDateTime);

impl IsoTime {
    /// Truncates `instant` to milliseconds and moves it to UTC; `None` outside years 0..=9999.
    pub fn new(instant: OffsetDateTime) -> Option<Self> {
        let utc = instant.checked_to_offset(UtcOffset::UTC)?;
        if !(0..=9999).contains(&utc.year()) {
            return None;
        }
        let millis = utc.nanosecond() / 1_000_000;
        utc.replace_nanosecond(millis * 1_000_000).ok().map(Self)
    }

    /// Parses an RFC 3339 timestamp (any offset, any fraction).
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        OffsetDateTime::parse(text, &Rfc3339).ok().and_then(Self::new)
    }

    /// The instant itself.
    pub fn instant(self) -> OffsetDateTime {
        self.0
    }

    /// Milliseconds since the unix epoch.
    pub fn unix_millis(self) -> i64 {
        crate::clock::unix_millis(self.0)
    }
}

impl fmt::Display for IsoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl Serialize for IsoTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IsoTime::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {text:?}")))
    }
}

/// A validated platform event, as ingest stores and fans it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformEvent {
    /// Unique id: given by the platform service, or derived (see [`derive_event_id`]).
    pub event_id: String,
    /// The merchant whose order changed.
    pub merchant_id: String,
    /// What happened.
    pub event_name: EventName,
    /// The order it happened to.
    pub order_id: String,
    /// When it happened.
    pub time_stamp: IsoTime,
}

/// Why an events-queue message was refused. Each case names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The message is larger than [`MAX_EVENT_MESSAGE_BYTES`].
    #[error("message is {0} bytes, more than the 262144 allowed")]
    TooLarge(usize),
    /// The message is not JSON.
    #[error("message is not valid JSON: {0}")]
    NotJson(String),
    /// The message is JSON but not an object.
    #[error("message must be a JSON object")]
    NotAnObject,
    /// A required field is absent or null.
    #[error("field {0} is required")]
    MissingField(&'static str),
    /// A field is present but not a string.
    #[error("field {0} must be a string")]
    NotAString(&'static str),
    /// A field is an empty or all-blank string.
    #[error("field {0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than its limit.
    #[error("field {field} is {chars} characters, more than the {max} allowed")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in characters.
        chars: usize,
        /// The limit in characters.
        max: usize,
    },
    /// A field holds characters it may not (control characters; for eventId, anything
    /// but letters, digits and `._:-`).
    #[error("field {0} contains characters that are not allowed")]
    BadCharacters(&'static str),
    /// `eventName` is not one of the six.
    #[error(transparent)]
    UnknownEvent(#[from] UnknownEventName),
    /// `timeStamp` is not an RFC 3339 timestamp between years 0 and 9999.
    #[error("field timeStamp is not an RFC 3339 timestamp: {0:?}")]
    BadTimestamp(String),
}

impl EventError {
    /// A short machine-readable code for logs, DLQ reasons and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::TooLarge(_) => "too_large",
            EventError::NotJson(_) => "invalid_json",
            EventError::NotAnObject => "not_an_object",
            EventError::MissingField(_) => "missing_field",
            EventError::NotAString(_) => "not_a_string",
            EventError::EmptyField(_) => "empty_field",
            EventError::TooLong { .. } => "too_long",
            EventError::BadCharacters(_) => "bad_characters",
            EventError::UnknownEvent(_) => "unknown_event",
            EventError::BadTimestamp(_) => "bad_timestamp",
        }
    }
}

impl PlatformEvent {
    /// The event as an events-queue message (what a platform service sends, section 2).
    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("platform events serialize")
    }

    /// Parses and validates one events-queue message. `now` stands in for a missing timeStamp.
    pub fn parse(message: &[u8], now: OffsetDateTime) -> Result<Self, EventError> {
        if message.len() > MAX_EVENT_MESSAGE_BYTES {
            return Err(EventError::TooLarge(message.len()));
        }
        let value: Value = serde_json::from_slice(message).map_err(|e| EventError::NotJson(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(EventError::NotAnObject);
        };
        let field = |name: &'static str| -> Result<Option<&str>, EventError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Err(EventError::EmptyField(name)),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(EventError::NotAString(name)),
            }
        };
        let required = |name: &'static str| field(name)?.ok_or(EventError::MissingField(name));

        let merchant_id = checked_text(required("merchantId")?, "merchantId", MAX_MERCHANT_ID_CHARS)?;
        let event_name: EventName = required("eventName")?.parse()?;
        let order_id = checked_text(required("orderId")?, "orderId", MAX_ORDER_ID_CHARS)?;
        let time_stamp = match field("timeStamp")? {
            Some(text) => IsoTime::parse_rfc3339(text).ok_or_else(|| EventError::BadTimestamp(text.into()))?,
            None => IsoTime::new(now).ok_or_else(|| EventError::BadTimestamp(now.to_string()))?,
        };
        let event_id = match field("eventId")? {
            Some(id) => checked_event_id(id)?,
            None => derive_event_id(merchant_id, event_name, order_id, time_stamp),
        };
        Ok(PlatformEvent {
            event_id,
            merchant_id: merchant_id.to_owned(),
            event_name,
            order_id: order_id.to_owned(),
            time_stamp,
        })
    }
}

/// The id of an event that came without one: a UUID v5 over its four defining fields, so
/// the same event enqueued twice gets the same id (and so one webhook per subscription).
pub fn derive_event_id(merchant_id: &str, event_name: EventName, order_id: &str, time_stamp: IsoTime) -> String {
    // A JSON array keeps the fields apart whatever characters they hold.
    let name = serde_json::json!([merchant_id, event_name.as_str(), order_id, time_stamp.to_string()]).to_string();
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
}

fn checked_text<'a>(text: &'a str, field: &'static str, max: usize) -> Result<&'a str, EventError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(EventError::TooLong { field, chars, max });
    }
    if text.chars().any(char::is_control) {
        return Err(EventError::BadCharacters(field));
    }
    Ok(text)
}

/// Event ids travel in the `webhook-id` header, so they keep to a header-safe alphabet.
fn checked_event_id(id: &str) -> Result<String, EventError> {
    checked_text(id, "eventId", MAX_EVENT_ID_CHARS)?;
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(EventError::BadCharacters("eventId"));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-27 05:00:00.123456 UTC);

    fn parse(message: &str) -> Result<PlatformEvent, EventError> {
        PlatformEvent::parse(message.as_bytes(), NOW)
    }

    #[test]
    fn parses_the_design_example() {
        let event = parse(
            r#"{"eventId":"evt_1","merchantId":"m_123","eventName":"crypto_delivered",
                "orderId":"5a3288ea-0bd4-44d2-af11-aae1f88bbd61","timeStamp":"2022-10-26T22:36:41.658Z"}"#,
        )
        .unwrap();
        assert_eq!(event.event_id, "evt_1");
        assert_eq!(event.merchant_id, "m_123");
        assert_eq!(event.event_name, EventName::CryptoDelivered);
        assert_eq!(event.order_id, "5a3288ea-0bd4-44d2-af11-aae1f88bbd61");
        assert_eq!(event.time_stamp.to_string(), "2022-10-26T22:36:41.658Z");
    }

    #[test]
    fn timestamps_are_written_as_to_iso_string() {
        let cases = [
            ("2022-10-26T22:36:41.658Z", "2022-10-26T22:36:41.658Z"),
            ("2022-10-26T22:36:41Z", "2022-10-26T22:36:41.000Z"),
            ("2022-10-26T22:36:41.6589999Z", "2022-10-26T22:36:41.658Z"),
            ("2022-10-26T22:36:41.5+02:00", "2022-10-26T20:36:41.500Z"),
            ("2022-10-26t22:36:41.1z", "2022-10-26T22:36:41.100Z"),
            ("2022-12-31T23:30:00-01:00", "2023-01-01T00:30:00.000Z"),
        ];
        for (input, expected) in cases {
            let message =
                format!(r#"{{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":"{input}"}}"#);
            assert_eq!(parse(&message).unwrap().time_stamp.to_string(), expected, "{input}");
        }
        let without = parse(r#"{"merchantId":"m","eventName":"payment_received","orderId":"o"}"#).unwrap();
        assert_eq!(without.time_stamp.to_string(), "2026-11-27T05:00:00.123Z");
    }

    #[test]
    fn missing_event_id_is_derived_deterministically() {
        let message = r#"{"merchantId":"m_1","eventName":"payment_expired","orderId":"o_1","timeStamp":"2022-10-26T22:36:41.658Z"}"#;
        let first = parse(message).unwrap();
        assert_eq!(first.event_id, parse(message).unwrap().event_id);
        assert!(Uuid::parse_str(&first.event_id).is_ok());
        // The same instant written differently is the same event.
        let same_instant = message.replace("22:36:41.658Z", "23:36:41.658+01:00");
        assert_eq!(parse(&same_instant).unwrap().event_id, first.event_id);
        for other in [
            message.replace("m_1", "m_2"),
            message.replace("payment_expired", "payment_rejected"),
            message.replace("o_1", "o_2"),
            message.replace(".658Z", ".659Z"),
        ] {
            assert_ne!(parse(&other).unwrap().event_id, first.event_id, "{other}");
        }
    }

    #[test]
    fn every_invalid_message_gets_its_own_clear_error() {
        let long_order = "o".repeat(129);
        let long_merchant = "m".repeat(65);
        let long_event_id = "e".repeat(129);
        let huge = format!(
            r#"{{"merchantId":"m","eventName":"payment_received","orderId":"o","pad":"{}"}}"#,
            "x".repeat(MAX_EVENT_MESSAGE_BYTES)
        );
        let cases: Vec<(String, EventError)> = vec![
            (huge.clone(), EventError::TooLarge(huge.len())),
            ("{not json".into(), EventError::NotJson("key must be a string at line 1 column 2".into())),
            ("[1,2]".into(), EventError::NotAnObject),
            (r#"{"eventName":"payment_received","orderId":"o"}"#.into(), EventError::MissingField("merchantId")),
            (r#"{"merchantId":null,"eventName":"payment_received","orderId":"o"}"#.into(), EventError::MissingField("merchantId")),
            (r#"{"merchantId":"m","orderId":"o"}"#.into(), EventError::MissingField("eventName")),
            (r#"{"merchantId":"m","eventName":"payment_received"}"#.into(), EventError::MissingField("orderId")),
            (r#"{"merchantId":"","eventName":"payment_received","orderId":"o"}"#.into(), EventError::EmptyField("merchantId")),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"  "}"#.into(), EventError::EmptyField("orderId")),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","eventId":""}"#.into(), EventError::EmptyField("eventId")),
            (r#"{"merchantId":7,"eventName":"payment_received","orderId":"o"}"#.into(), EventError::NotAString("merchantId")),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":["o"]}"#.into(), EventError::NotAString("orderId")),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":1666823801}"#.into(), EventError::NotAString("timeStamp")),
            (format!(r#"{{"merchantId":"m","eventName":"payment_received","orderId":"{long_order}"}}"#), EventError::TooLong { field: "orderId", chars: 129, max: 128 }),
            (format!(r#"{{"merchantId":"{long_merchant}","eventName":"payment_received","orderId":"o"}}"#), EventError::TooLong { field: "merchantId", chars: 65, max: 64 }),
            (format!(r#"{{"merchantId":"m","eventName":"payment_received","orderId":"o","eventId":"{long_event_id}"}}"#), EventError::TooLong { field: "eventId", chars: 129, max: 128 }),
            (r#"{"merchantId":"m\n1","eventName":"payment_received","orderId":"o"}"#.into(), EventError::BadCharacters("merchantId")),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","eventId":"a b"}"#.into(), EventError::BadCharacters("eventId")),
            (r#"{"merchantId":"m","eventName":"payment_refunded","orderId":"o"}"#.into(), EventError::UnknownEvent(UnknownEventName("payment_refunded".into()))),
            (r#"{"merchantId":"m","eventName":"Payment_Received","orderId":"o"}"#.into(), EventError::UnknownEvent(UnknownEventName("Payment_Received".into()))),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":"yesterday"}"#.into(), EventError::BadTimestamp("yesterday".into())),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":"2022-10-26T22:36:41"}"#.into(), EventError::BadTimestamp("2022-10-26T22:36:41".into())),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":"2022-02-30T00:00:00Z"}"#.into(), EventError::BadTimestamp("2022-02-30T00:00:00Z".into())),
            (r#"{"merchantId":"m","eventName":"payment_received","orderId":"o","timeStamp":"0000-01-01T00:00:00+01:00"}"#.into(), EventError::BadTimestamp("0000-01-01T00:00:00+01:00".into())),
        ];
        let mut codes = std::collections::BTreeSet::new();
        for (message, expected) in cases {
            let got = parse(&message);
            assert_eq!(
                got.as_ref().err(),
                Some(&expected),
                "message {}",
                &message[..message.len().min(120)]
            );
            codes.insert(expected.code());
        }
        // Every kind of refusal is exercised, and each has its own code.
        assert_eq!(codes.len(), 10, "{codes:?}");
    }

    #[test]
    fn unknown_event_error_names_the_allowed_ones() {
        let error = "refund".parse::<EventName>().unwrap_err().to_string();
        for name in EventName::ALL.into_iter().chain(EventName::OPERATIONAL) {
            assert!(error.contains(name.as_str()), "{error}");
        }
    }

    #[test]
    fn event_names_round_trip_through_serde() {
        for name in EventName::ALL.into_iter().chain(EventName::OPERATIONAL) {
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<EventName>(&json).unwrap(), name);
        }
    }
}
