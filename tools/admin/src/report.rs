//! What a command did, as the operator reads it: text, or camelCase JSON with `--json`.

use std::fmt;

use serde::Serialize;
use webhooks_domain::{Merchant, Redacted};

use crate::cli::QueueKind;
use crate::status::Status;

/// What a command did; printed as text or, with `--json`, as JSON. A new API key shows
/// there, once; its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum Report {
    /// `merchant create`: the clear-text key, shown this once.
    MerchantCreated {
        /// The new merchant's id.
        merchant_id: String,
        /// Its name.
        name: String,
        /// Its first API key.
        api_key: String,
    },
    /// `merchant list`.
    Merchants {
        /// Every merchant, by id.
        merchants: Vec<Merchant>,
    },
    /// `key add`: the clear-text key, shown this once.
    KeyAdded {
        /// The merchant.
        merchant_id: String,
        /// The new key.
        api_key: String,
    },
    /// `key revoke`.
    KeyRevoked {
        /// The merchant the key belonged to.
        merchant_id: String,
    },
    /// `dlq redrive`.
    Redriven {
        /// The queue whose DLQ was drained.
        queue: QueueKind,
        /// Messages moved back.
        moved: usize,
    },
    /// `rekey`.
    Rekeyed {
        /// Merchants gone through.
        merchants: usize,
        /// Items whose secrets were sealed again.
        resealed: usize,
    },
    /// `dlq count`.
    DlqCounts {
        /// Messages in the events DLQ.
        events_dlq: usize,
        /// Messages in the deliveries DLQ.
        deliveries_dlq: usize,
    },
    /// `status`.
    Status(Box<Status>),
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::MerchantCreated { merchant_id, name, .. } => f
                .debug_struct("MerchantCreated")
                .field("merchant_id", merchant_id)
                .field("name", name)
                .field("api_key", &Redacted)
                .finish(),
            Report::Merchants { merchants } => f.debug_struct("Merchants").field("merchants", merchants).finish(),
            Report::KeyAdded { merchant_id, .. } => f
                .debug_struct("KeyAdded")
                .field("merchant_id", merchant_id)
                .field("api_key", &Redacted)
                .finish(),
            Report::KeyRevoked { merchant_id } => {
                f.debug_struct("KeyRevoked").field("merchant_id", merchant_id).finish()
            }
            Report::Redriven { queue, moved } => f
                .debug_struct("Redriven")
                .field("queue", queue)
                .field("moved", moved)
                .finish(),
            Report::Rekeyed { merchants, resealed } => f
                .debug_struct("Rekeyed")
                .field("merchants", merchants)
                .field("resealed", resealed)
                .finish(),
            Report::DlqCounts {
                events_dlq,
                deliveries_dlq,
            } => f
                .debug_struct("DlqCounts")
                .field("events_dlq", events_dlq)
                .field("deliveries_dlq", deliveries_dlq)
                .finish(),
            Report::Status(status) => f.debug_tuple("Status").field(status).finish(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Report::MerchantCreated {
                merchant_id,
                name,
                api_key,
            } => {
                writeln!(f, "merchantId: {merchant_id}\nname: {name}\napiKey: {api_key}")?;
                writeln!(f, "The API key is shown only now; the table keeps its hash.")
            }
            Report::Merchants { merchants } if merchants.is_empty() => writeln!(f, "no merchants"),
            Report::Merchants { merchants } => {
                writeln!(f, "{:<36}  {:<24}  NAME", "MERCHANT ID", "CREATED")?;
                for m in merchants {
                    writeln!(f, "{:<36}  {:<24}  {}", m.id, m.created_at.to_string(), m.name)?;
                }
                Ok(())
            }
            Report::KeyAdded { merchant_id, api_key } => {
                writeln!(f, "merchantId: {merchant_id}\napiKey: {api_key}")?;
                writeln!(f, "The API key is shown only now; the table keeps its hash.")
            }
            Report::KeyRevoked { merchant_id } => writeln!(f, "revoked an API key of {merchant_id}"),
            Report::Redriven { queue, moved } => writeln!(f, "moved {moved} messages from {queue}-dlq to {queue}"),
            Report::Rekeyed { merchants, resealed } => {
                writeln!(
                    f,
                    "re-sealed {resealed} items of {merchants} merchants under the current key"
                )
            }
            Report::DlqCounts {
                events_dlq,
                deliveries_dlq,
            } => writeln!(f, "events-dlq: {events_dlq}\ndeliveries-dlq: {deliveries_dlq}"),
            Report::Status(status) => write!(f, "{status}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_print_as_text_and_camel_case_json() {
        let report = Report::MerchantCreated {
            merchant_id: "m_1".into(),
            name: "Acme".into(),
            api_key: "whk_1".into(),
        };
        assert!(
            report
                .to_string()
                .starts_with("merchantId: m_1\nname: Acme\napiKey: whk_1\n")
        );
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"merchantId": "m_1", "name": "Acme", "apiKey": "whk_1"})
        );
        let counts = Report::DlqCounts {
            events_dlq: 1,
            deliveries_dlq: 2,
        };
        assert_eq!(counts.to_string(), "events-dlq: 1\ndeliveries-dlq: 2\n");
        assert_eq!(
            serde_json::to_value(&counts).unwrap(),
            serde_json::json!({"eventsDlq": 1, "deliveriesDlq": 2})
        );
        let redriven = Report::Redriven {
            queue: QueueKind::Events,
            moved: 3,
        };
        assert_eq!(redriven.to_string(), "moved 3 messages from events-dlq to events\n");
        assert_eq!(
            serde_json::to_value(&redriven).unwrap(),
            serde_json::json!({"queue": "events", "moved": 3})
        );
    }

    #[test]
    fn a_reports_debug_hides_the_api_key() {
        let key = "whk_0123456789abcdef-not-for-logs";
        for report in [
            Report::MerchantCreated {
                merchant_id: "m_1".into(),
                name: "Acme".into(),
                api_key: key.into(),
            },
            Report::KeyAdded {
                merchant_id: "m_1".into(),
                api_key: key.into(),
            },
        ] {
            let shown = format!("{report:?} {report:#?}");
            assert!(!shown.contains(key), "{shown}");
            assert!(shown.contains("m_1") && shown.contains("<redacted>"), "{shown}");
        }
    }
}
