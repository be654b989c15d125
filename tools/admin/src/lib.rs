//! `webhooks-admin`: the operator's CLI for a deployed stack (DESIGN §6).
//!
//! It mints merchants and their API keys in the table, revokes keys, lists merchants,
//! counts and redrives the dead-letter queues, re-seals every secret under the current
//! KMS key (`rekey`), and shows the stack at a glance (`status`: queues, parked retries,
//! failing endpoints, failures by merchant). Each operation is a plain async function over
//! the storage ports ([`MerchantStore`](webhooks_storage::MerchantStore), [`QueueReceiver`],
//! [`QueueSender`](webhooks_storage::QueueSender)), so the tests drive the same code against
//! moto; [`run`] only resolves the resources from flags, environment or the stack name and
//! dispatches.
//!
//! Resources: `--table` / `WEBHOOKS_TABLE_NAME` and the four `--*-url` flags /
//! `WEBHOOKS_{EVENTS,DELIVERIES}_{QUEUE,DLQ}_URL`; whatever is not given is derived from
//! `--stack NAME`, whose template names them `NAME-table`, `NAME-events`, `NAME-events-dlq`,
//! `NAME-deliveries` and `NAME-deliveries-dlq` (queue URLs looked up with `GetQueueUrl`).

mod cli;
mod deployment;
mod error;
mod keys;
mod merchants;
mod redrive;
mod rekey;
mod report;
mod status;

pub use cli::{Cli, Command, DlqCommand, KeyCommand, MerchantCommand, QueueKind, ResourceArgs};
pub use error::AdminError;
pub use keys::{add_key, revoke_key};
pub use merchants::{CreatedMerchant, MAX_NAME_CHARS, create_merchant, list_merchants};
pub use redrive::redrive;
pub use rekey::rekey;
pub use report::Report;
pub use status::{
    FAILURE_WINDOW, MerchantFailures, OldestMessage, ParkedRetriesStatus, QueueStatus, Status, TOP_FAILING_MERCHANTS,
    UnhealthyEndpoint,
};

use webhooks_domain::SystemClock;
use webhooks_storage::QueueReceiver;

use crate::deployment::Deployment;
use crate::status::{StatusSources, status};

/// Runs one command line against the resources it names.
pub async fn run(cli: Cli) -> Result<Report, AdminError> {
    let deployment = Deployment::new(cli.resources).await;
    Ok(match cli.command {
        Command::Merchant(MerchantCommand::Create { name }) => {
            let created = create_merchant(&deployment.store().await?, &name, &SystemClock).await?;
            Report::MerchantCreated {
                merchant_id: created.merchant.id,
                name: created.merchant.name,
                api_key: created.key.clear_text,
            }
        }
        Command::Merchant(MerchantCommand::List) => Report::Merchants {
            merchants: list_merchants(&deployment.store().await?).await?,
        },
        Command::Key(KeyCommand::Add { merchant }) => {
            let key = add_key(&deployment.store().await?, &merchant).await?;
            Report::KeyAdded {
                merchant_id: merchant,
                api_key: key.clear_text,
            }
        }
        Command::Key(KeyCommand::Revoke { key }) => Report::KeyRevoked {
            merchant_id: revoke_key(&deployment.store().await?, &key).await?.id,
        },
        Command::Dlq(DlqCommand::Redrive { queue, max }) => {
            let (target, dlq) = deployment.queues(queue).await?;
            Report::Redriven {
                queue,
                moved: redrive(&dlq, &target, max).await?,
            }
        }
        Command::Rekey => {
            let (merchants, resealed) = rekey(&deployment.store_with_secrets_key().await?).await?;
            Report::Rekeyed { merchants, resealed }
        }
        Command::Dlq(DlqCommand::Count) => {
            let (_, events_dlq) = deployment.queues(QueueKind::Events).await?;
            let (_, deliveries_dlq) = deployment.queues(QueueKind::Deliveries).await?;
            Report::DlqCounts {
                events_dlq: events_dlq.approximate_len().await?,
                deliveries_dlq: deliveries_dlq.approximate_len().await?,
            }
        }
        Command::Status => {
            let (events, events_dlq) = deployment.queues(QueueKind::Events).await?;
            let (deliveries, deliveries_dlq) = deployment.queues(QueueKind::Deliveries).await?;
            let sources = StatusSources {
                store: deployment.store().await?,
                queues: vec![
                    (QueueKind::Events, events, events_dlq),
                    (QueueKind::Deliveries, deliveries, deliveries_dlq),
                ],
            };
            Report::Status(Box::new(status(&sources, &SystemClock).await?))
        }
    })
}
