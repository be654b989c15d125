//! `webhooks-admin`: the operator's CLI for a deployed stack (DESIGN §6).
//!
//! It mints merchants and their API keys in the table, revokes keys, lists merchants, and
//! counts and redrives the dead-letter queues. Each operation is a plain async function over
//! the storage ports ([`MerchantStore`], [`Queue`]), so the tests drive the same code against
//! moto; [`run`] only resolves the resources from flags, environment or the stack name and
//! dispatches.
//!
//! Resources: `--table` / `WEBHOOKS_TABLE_NAME` and the four `--*-url` flags /
//! `WEBHOOKS_{EVENTS,DELIVERIES}_{QUEUE,DLQ}_URL`; whatever is not given is derived from
//! `--stack NAME`, whose template names them `NAME-table`, `NAME-events`, `NAME-events-dlq`,
//! `NAME-deliveries` and `NAME-deliveries-dlq` (queue URLs looked up with `GetQueueUrl`).

use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use webhooks_domain::{Clock, IsoTime, Merchant, NewApiKey, SystemClock, hash_api_key};
use webhooks_storage::aws::{
    DynamoStore, ResourceNames, SqsQueue, queue_urls, sdk_config_for_endpoint, sdk_config_from_env,
};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{DEFAULT_RETENTION, MerchantStore, OutgoingMessage, PageRequest, Queue, StoreError};

/// The longest merchant name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Merchants read per page while listing.
const LIST_PAGE_SIZE: usize = 100;
/// How long a message taken from a DLQ stays hidden while it is being redriven: if the
/// redrive stops half-way, the message reappears in the DLQ after this.
const REDRIVE_VISIBILITY: Duration = Duration::from_secs(60);
/// The long poll of each DLQ receive; an empty answer after it ends the redrive.
const REDRIVE_WAIT: Duration = Duration::from_secs(1);

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "webhooks-admin",
    version,
    about = "Operate a deployed webhooks stack: merchants, API keys, dead-letter queues."
)]
pub struct Cli {
    /// Where the table and queues are.
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Print the result as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The table and queues to work on, and how to reach them.
#[derive(Debug, Clone, Default, Args)]
pub struct ResourceArgs {
    /// The stack deployed from template.yaml; names whatever is not given below.
    #[arg(long, global = true, value_name = "NAME")]
    pub stack: Option<String>,
    /// The DynamoDB table.
    #[arg(long, env = "WEBHOOKS_TABLE_NAME", global = true)]
    pub table: Option<String>,
    /// The events queue (platform services -> ingest).
    #[arg(long, env = "WEBHOOKS_EVENTS_QUEUE_URL", global = true, value_name = "URL")]
    pub events_queue_url: Option<String>,
    /// The events dead-letter queue.
    #[arg(long, env = "WEBHOOKS_EVENTS_DLQ_URL", global = true, value_name = "URL")]
    pub events_dlq_url: Option<String>,
    /// The deliveries queue (ingest -> deliver, and retries).
    #[arg(long, env = "WEBHOOKS_DELIVERIES_QUEUE_URL", global = true, value_name = "URL")]
    pub deliveries_queue_url: Option<String>,
    /// The deliveries dead-letter queue.
    #[arg(long, env = "WEBHOOKS_DELIVERIES_DLQ_URL", global = true, value_name = "URL")]
    pub deliveries_dlq_url: Option<String>,
    /// An emulator endpoint (moto, LocalStack), reached with region us-east-1 and dummy
    /// credentials. Without it the SDK's usual chain applies, `AWS_ENDPOINT_URL` included.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and list merchants.
    #[command(subcommand)]
    Merchant(MerchantCommand),
    /// Mint and revoke merchant API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Count and redrive the dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

/// `merchant ...`
#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Create a merchant with its first API key; the key is printed once.
    Create {
        /// A name for operators.
        #[arg(long)]
        name: String,
    },
    /// List every merchant.
    List,
}

/// `key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Mint another API key for a merchant (e.g. to rotate: add, switch, revoke the old one).
    Add {
        /// The merchant id (`m_...`).
        #[arg(long, value_name = "MERCHANT_ID")]
        merchant: String,
    },
    /// Revoke an API key, given in clear text (only its hash is stored).
    Revoke {
        /// The key (`whk_...`).
        #[arg(long)]
        key: String,
    },
}

/// `dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Move messages from a DLQ back to its source queue.
    Redrive {
        /// Which queue's DLQ.
        #[arg(long, value_enum)]
        queue: QueueKind,
        /// Move at most this many (default: as many as the DLQ held when the redrive began).
        #[arg(long)]
        max: Option<usize>,
    },
    /// How many messages each DLQ holds (approximate, as SQS counts).
    Count,
}

/// One of the platform's two queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Platform services -> ingest.
    Events,
    /// Ingest -> deliver, and retries.
    Deliveries,
}

impl fmt::Display for QueueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueueKind::Events => "events",
            QueueKind::Deliveries => "deliveries",
        })
    }
}

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

/// What a command did; printed as text or, with `--json`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    /// `dlq count`.
    DlqCounts {
        /// Messages in the events DLQ.
        events_dlq: usize,
        /// Messages in the deliveries DLQ.
        deliveries_dlq: usize,
    },
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
            Report::DlqCounts {
                events_dlq,
                deliveries_dlq,
            } => writeln!(f, "events-dlq: {events_dlq}\ndeliveries-dlq: {deliveries_dlq}"),
        }
    }
}

/// A merchant just created, with the clear text of its first key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedMerchant {
    /// The stored merchant.
    pub merchant: Merchant,
    /// Its first API key (clear text and hash).
    pub key: NewApiKey,
}

/// Creates a merchant named `name` (trimmed) with a freshly minted API key.
pub async fn create_merchant(
    store: &impl MerchantStore,
    name: &str,
    clock: &dyn Clock,
) -> Result<CreatedMerchant, AdminError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(AdminError::BadName(chars));
    }
    let now = clock.now();
    let created_at = IsoTime::new(now).ok_or_else(|| StoreError::Corrupt(format!("clock out of range: {now}")))?;
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: name.to_owned(),
        created_at,
    };
    let key = NewApiKey::generate();
    store.create_merchant(&merchant, &key.hash).await?;
    Ok(CreatedMerchant { merchant, key })
}

/// Every merchant, page by page.
pub async fn list_merchants(store: &impl MerchantStore) -> Result<Vec<Merchant>, AdminError> {
    let mut page = PageRequest::first(LIST_PAGE_SIZE);
    let mut merchants = Vec::new();
    loop {
        let found = store.list_merchants(page.clone()).await?;
        merchants.extend(found.items);
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(merchants),
        }
    }
}

/// Mints another API key for an existing merchant.
pub async fn add_key(store: &impl MerchantStore, merchant_id: &str) -> Result<NewApiKey, AdminError> {
    let key = NewApiKey::generate();
    match store.add_api_key(merchant_id, &key.hash).await {
        Ok(()) => Ok(key),
        Err(StoreError::NotFound) => Err(AdminError::MerchantNotFound(merchant_id.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Revokes the key whose clear text is `key`; returns the merchant it belonged to.
pub async fn revoke_key(store: &impl MerchantStore, key: &str) -> Result<Merchant, AdminError> {
    let hash = hash_api_key(key.trim());
    let merchant = store
        .merchant_for_api_key(&hash)
        .await?
        .ok_or(AdminError::KeyNotFound)?;
    if store.revoke_api_key(&hash).await? {
        Ok(merchant)
    } else {
        // Revoked by someone else between the lookup and the delete.
        Err(AdminError::KeyNotFound)
    }
}

/// Moves messages from `dlq` to `target` (send first, then delete, so a failure leaves a
/// duplicate, never a loss), until the DLQ is empty or `max` messages were moved. Without
/// `max`, at most as many as the DLQ held at the start: a message that fails again and
/// returns to the DLQ during the redrive is not sent round a second time.
pub async fn redrive(dlq: &impl Queue, target: &impl Queue, max: Option<usize>) -> Result<usize, AdminError> {
    let limit = match max {
        Some(max) => max,
        None => dlq.approximate_len().await?,
    };
    let mut moved = 0;
    while moved < limit {
        let incomplete = move |source| AdminError::RedriveIncomplete { moved, source };
        let messages = dlq
            .receive((limit - moved).min(MAX_BATCH), REDRIVE_VISIBILITY, REDRIVE_WAIT)
            .await
            .map_err(incomplete)?;
        if messages.is_empty() {
            break;
        }
        let outgoing = messages
            .iter()
            .map(|m| OutgoingMessage {
                body: m.body.clone(),
                delay: Duration::ZERO,
            })
            .collect();
        let sent = target.send_batch(outgoing).await.map_err(incomplete)?;
        let mut first_failure = None;
        for (message, result) in messages.iter().zip(sent) {
            match result {
                Ok(()) => {
                    dlq.delete(&message.receipt_handle)
                        .await
                        .map_err(|source| AdminError::RedriveIncomplete { moved, source })?;
                    moved += 1;
                }
                // Not sent: it stays in the DLQ and reappears after the visibility timeout.
                Err(error) => {
                    first_failure.get_or_insert(error);
                }
            }
        }
        if let Some(source) = first_failure {
            return Err(AdminError::RedriveIncomplete { moved, source });
        }
    }
    Ok(moved)
}

/// The resolved resources of one invocation, and the SDK configuration to reach them.
struct Deployment {
    sdk: SdkConfig,
    resources: ResourceArgs,
}

impl Deployment {
    async fn new(resources: ResourceArgs) -> Self {
        let sdk = match &resources.endpoint_url {
            Some(endpoint) => sdk_config_for_endpoint(endpoint),
            None => sdk_config_from_env().await,
        };
        Self { sdk, resources }
    }

    async fn store(&self) -> Result<DynamoStore, AdminError> {
        let table = match (&self.resources.table, &self.resources.stack) {
            (Some(table), _) => table.clone(),
            (None, Some(stack)) => ResourceNames::with_prefix(stack).table,
            (None, None) => {
                return Err(AdminError::Missing {
                    what: "table",
                    flag: "table",
                    variable: "WEBHOOKS_TABLE_NAME",
                });
            }
        };
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        Ok(DynamoStore::connect(client, table, DEFAULT_RETENTION).await?)
    }

    /// The queue of `kind` and its DLQ, each from its flag or else from the stack.
    async fn queues(&self, kind: QueueKind) -> Result<(SqsQueue, SqsQueue), AdminError> {
        let r = &self.resources;
        let (queue, dlq, missing) = match kind {
            QueueKind::Events => (
                &r.events_queue_url,
                &r.events_dlq_url,
                [
                    ("events-queue-url", "WEBHOOKS_EVENTS_QUEUE_URL"),
                    ("events-dlq-url", "WEBHOOKS_EVENTS_DLQ_URL"),
                ],
            ),
            QueueKind::Deliveries => (
                &r.deliveries_queue_url,
                &r.deliveries_dlq_url,
                [
                    ("deliveries-queue-url", "WEBHOOKS_DELIVERIES_QUEUE_URL"),
                    ("deliveries-dlq-url", "WEBHOOKS_DELIVERIES_DLQ_URL"),
                ],
            ),
        };
        let (queue_url, dlq_url) = match (queue, dlq, &r.stack) {
            (Some(queue), Some(dlq), _) => (queue.clone(), dlq.clone()),
            (_, _, Some(stack)) => {
                let urls = queue_urls(&self.sdk, &ResourceNames::with_prefix(stack)).await?;
                let (stack_queue, stack_dlq) = match kind {
                    QueueKind::Events => (urls.events, urls.events_dlq),
                    QueueKind::Deliveries => (urls.deliveries, urls.deliveries_dlq),
                };
                (queue.clone().unwrap_or(stack_queue), dlq.clone().unwrap_or(stack_dlq))
            }
            (queue, _, None) => {
                let (flag, variable) = if queue.is_none() { missing[0] } else { missing[1] };
                return Err(AdminError::Missing {
                    what: "queue URL",
                    flag,
                    variable,
                });
            }
        };
        let client = aws_sdk_sqs::Client::new(&self.sdk);
        Ok((
            SqsQueue::new(client.clone(), queue_url, None),
            SqsQueue::new(client, dlq_url, None),
        ))
    }
}

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
        Command::Dlq(DlqCommand::Count) => {
            let (_, events_dlq) = deployment.queues(QueueKind::Events).await?;
            let (_, deliveries_dlq) = deployment.queues(QueueKind::Deliveries).await?;
            Report::DlqCounts {
                events_dlq: events_dlq.approximate_len().await?,
                deliveries_dlq: deliveries_dlq.approximate_len().await?,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("webhooks-admin").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_command_line_reads_like_the_docs() {
        <Cli as clap::CommandFactory>::command().debug_assert();
        let cli = parse(&[
            "dlq",
            "redrive",
            "--queue",
            "deliveries",
            "--max",
            "5",
            "--stack",
            "webhooks-dev",
        ]);
        assert!(matches!(
            cli.command,
            Command::Dlq(DlqCommand::Redrive {
                queue: QueueKind::Deliveries,
                max: Some(5)
            })
        ));
        assert_eq!(cli.resources.stack.as_deref(), Some("webhooks-dev"));
        let cli = parse(&["--json", "key", "revoke", "--key", "whk_abc"]);
        assert!(cli.json);
        assert!(matches!(cli.command, Command::Key(KeyCommand::Revoke { key }) if key == "whk_abc"));
    }

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
