//! AWS's quotas, enforced in tests where moto forgives them: [`QuotaLayer`] is an AWS SDK
//! interceptor on the DynamoDB and SQS clients the harness builds ([`crate::moto`]). It
//! refuses what AWS refuses, before the request leaves ([`Quota`], [`QuotaExceeded`]),
//! keeps the in-flight SQS messages (received, not deleted, still hidden) with the instant
//! of their receive, and counts every request by service and operation.
//!
//! It reads the SDK's typed inputs and outputs, not the wire, so it does not depend on the
//! protocol a service speaks. `docs/reliability.md` ("AWS quotas the tests enforce") lists
//! the quotas; the embedded queue enforces the SQS ones itself.

mod dynamodb;
mod in_flight;
mod key_condition;
mod quota;
mod sqs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

pub use self::quota::{
    DYNAMODB_BATCH_WRITE_MAX, DYNAMODB_MAX_ITEM_BYTES, DYNAMODB_MAX_PARTITION_KEY_BYTES, DYNAMODB_MAX_SORT_KEY_BYTES,
    DYNAMODB_TRANSACT_WRITE_MAX, DYNAMODB_TRANSACT_WRITE_MAX_BYTES, Quota, QuotaExceeded, SQS_MAX_BATCH_ENTRIES,
    SQS_MAX_DELAY, SQS_MAX_IN_FLIGHT, SQS_MAX_MESSAGE_BYTES, SQS_MAX_RECEIVE, SQS_MAX_VISIBILITY,
};

/// Requests sent, by (service, operation), e.g. `("SQS", "ReceiveMessage")`.
pub type RequestCounts = BTreeMap<(String, String), u64>;

/// The quota-checking, request-counting interceptor; clones share one state. Attach it
/// with [`QuotaLayer::dynamodb`] and [`QuotaLayer::sqs`].
#[derive(Debug, Clone, Default)]
pub struct QuotaLayer {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    counts: RequestCounts,
    retries: RequestCounts,
    in_flight: in_flight::InFlight,
    key_schemas: dynamodb::KeySchemas,
}

impl QuotaLayer {
    /// A layer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A DynamoDB client for `config` whose requests go through this layer. It learns a
    /// table's keys (to check key lengths, repeated items and key conditions) from the
    /// table's `DescribeTable` or `CreateTable` answer through such a client.
    pub fn dynamodb(&self, config: &SdkConfig) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(config).interceptor(self.clone());
        aws_sdk_dynamodb::Client::from_conf(config.build())
    }

    /// An SQS client for `config` whose requests go through this layer.
    pub fn sqs(&self, config: &SdkConfig) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::config::Builder::from(config).interceptor(self.clone());
        aws_sdk_sqs::Client::from_conf(config.build())
    }

    /// The requests sent through the layer since it was made or [`QuotaLayer::reset`],
    /// retries included; refused ones were not sent and are not counted.
    pub fn counts(&self) -> RequestCounts {
        self.lock().counts.clone()
    }

    /// Of [`QuotaLayer::counts`], the attempts the SDK retried (a throttle, a conflict, an
    /// error it retries): what the code asked for is the difference.
    pub fn retries(&self) -> RequestCounts {
        self.lock().retries.clone()
    }

    /// Starts counting requests from zero (the in-flight messages and the key schemas stay).
    pub fn reset(&self) {
        let mut state = self.lock();
        state.counts.clear();
        state.retries.clear();
    }

    /// How many messages of the queue at `queue_url` are in flight: received through the
    /// layer, not deleted, still hidden.
    pub fn in_flight(&self, queue_url: &str) -> usize {
        self.lock().in_flight.count(queue_url, Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Intercept for QuotaLayer {
    fn name(&self) -> &'static str {
        "QuotaLayer"
    }

    /// Refuses a request over a quota (the call then fails without being sent), and leaves
    /// what its response must settle in the call's state.
    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let state = self.lock();
        dynamodb::check(input, &state.key_schemas)?;
        if let Some(pending) = sqs::check(input, &state.in_flight, Instant::now())? {
            cfg.interceptor_state().store_put(pending);
        }
        Ok(())
    }

    /// Counts the request, once per attempt (and apart, the attempts that are retries).
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or_else(
            || ("unknown".to_owned(), "unknown".to_owned()),
            |m| (m.service().to_owned(), m.name().to_owned()),
        );
        let retry = cfg
            .load::<RequestAttempts>()
            .is_some_and(|attempts| attempts.attempts() > 1);
        let mut state = self.lock();
        if retry {
            *state.retries.entry(operation.clone()).or_default() += 1;
        }
        *state.counts.entry(operation).or_default() += 1;
        Ok(())
    }

    /// Learns from a successful answer: messages received, deleted or hidden again, and
    /// tables' key schemas.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let mut state = self.lock();
        dynamodb::learn(output, &mut state.key_schemas);
        if let Some(pending) = cfg.load::<sqs::Pending>() {
            sqs::settle(pending, output, &mut state.in_flight, Instant::now());
        }
        Ok(())
    }
}
