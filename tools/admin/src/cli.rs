//! The command line: the subcommands, and the flags that name the table and queues.

use std::fmt;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use webhooks_domain::Redacted;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "webhooks-admin",
    version,
    about = "Operate a deployed webhooks stack: merchants, API keys, dead-letter queues, secrets at rest, status."
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
    /// The KMS key (id, ARN or alias) that wraps the data keys of sealed secrets.
    #[arg(long, env = "WEBHOOKS_KMS_KEY_ID", global = true, value_name = "KEY")]
    pub kms_key_id: Option<String>,
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
    /// Re-seal every secret at rest under the current KMS key (`--kms-key-id`, or the
    /// stack's `alias/NAME-secrets`); also seals any an older version stored in clear.
    Rekey,
    /// The stack at a glance: queues and DLQs, parked retries, failing and disabled
    /// endpoints, the merchants with the most failed attempts in the last hour.
    ///
    /// Queues: for each of events, deliveries and their DLQs, the messages visible, in
    /// flight and delayed (GetQueueAttributes, approximate). The age of the oldest message
    /// is shown for the DLQs only: a peek receives up to 10 messages with a visibility
    /// timeout of 0 (none is hidden) and reports the oldest SentTimestamp among them, a
    /// sample (the true oldest may be older). The main queues are not peeked: a receive
    /// counts towards their redrive policy (5 receives on events, 6 on deliveries, then the
    /// DLQ); the DLQs have none, so a peek there only raises a receive count. The main
    /// queues' age is CloudWatch's ApproximateAgeOfOldestMessage: see the dashboard.
    ///
    /// Parked retries: the tasks in the due-time index (16 shards, counted with Query
    /// COUNT), how many are overdue, and when the most overdue was due.
    ///
    /// Endpoints: every subscription whose stored health is failing or disabled, with
    /// since when, its last error and why it was disabled (one Query per page of merchants
    /// and of each merchant's subscriptions).
    ///
    /// Failures: the 10 merchants with the most failed attempts in the last hour, over
    /// their current subscriptions. This costs one Query per subscription (over the last
    /// hour of its attempt log), 8 merchants at a time: on a large stack it takes a while
    /// and reads every attempt of the hour.
    Status,
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
#[derive(Subcommand)]
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

/// Hides the key to revoke.
impl fmt::Debug for KeyCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyCommand::Add { merchant } => f.debug_struct("Add").field("merchant", merchant).finish(),
            KeyCommand::Revoke { .. } => f.debug_struct("Revoke").field("key", &Redacted).finish(),
        }
    }
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
        let cli = parse(&["status", "--stack", "webhooks-prod", "--json"]);
        assert!(cli.json && matches!(cli.command, Command::Status));
        let cli = parse(&["--json", "key", "revoke", "--key", "whk_abc"]);
        assert!(cli.json);
        assert!(!format!("{cli:?}").contains("whk_abc"), "{cli:?}");
        assert!(matches!(cli.command, Command::Key(KeyCommand::Revoke { key }) if key == "whk_abc"));
    }
}
