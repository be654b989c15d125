//! Events: `EVENT#{id}` / `EVENT`, with `fannedOut`, `leaseUntil` (unix ms) and the TTL
//! beside `data`. What `record_event` does is decided by `rules::fan_out_lease`; here it
//! is carried out with conditional writes whose conditions state the same rule, so that
//! concurrent workers cannot both take the lease.

use std::time::Duration;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use webhooks_domain::PlatformEvent;

use super::keys::{EVENT_SK, event_pk};
use super::{
    DynamoStore, Item, TTL_ATTRIBUTE, bool_attr, condition, condition_failed, data, item, number, number_attr,
};
use crate::StoreError;
use crate::aws::backend;
use crate::ports::{EventStore, Recorded};
use crate::rules::fan_out_lease::{RecordDecision, StoredEventState, decide_record, lease_until_ms};
use crate::rules::retention::is_expired;
use crate::rules::unix_time::{from_unix_seconds, now_ms, unix_seconds};
use crate::rules::write_conditions::Precondition;

/// [`RecordDecision::Insert`] as a condition: nothing stored, or it has expired.
const INSERTABLE: &str = "attribute_not_exists(pk) OR expiresAt <= :now_s";
/// [`RecordDecision::RetakeLease`] as a condition: stored, not expired, not fanned out,
/// and its lease has run out.
const LEASE_RUN_OUT: &str = "expiresAt > :now_s AND fannedOut = :false AND leaseUntil <= :now_ms";
/// How many times `record_event` starts over when the stored event changed under it.
const RECORD_ROUNDS: usize = 3;

/// What an event item says of its fan-out.
fn event_state(item: &Item) -> Result<StoredEventState, StoreError> {
    Ok(StoredEventState {
        fanned_out: bool_attr(item, "fannedOut")?,
        lease_until_ms: number_attr(item, "leaseUntil")?,
        expires_at_ms: from_unix_seconds(number_attr(item, TTL_ATTRIBUTE)?),
    })
}

impl DynamoStore {
    /// Puts a new event item if [`INSERTABLE`]; otherwise returns the item stored.
    async fn insert_event(
        &self,
        event: &PlatformEvent,
        now_ms: i64,
        lease: Duration,
    ) -> Result<Option<Item>, StoreError> {
        let op = "dynamodb.record_event";
        let mut new = item(event_pk(&event.event_id), EVENT_SK.into(), event)?;
        new.insert("fannedOut".into(), AttributeValue::Bool(false));
        new.insert("leaseUntil".into(), number(lease_until_ms(now_ms, lease)));
        new.insert(TTL_ATTRIBUTE.into(), self.expires_at(now_ms));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(new))
            .condition_expression(INSERTABLE)
            .expression_attribute_values(":now_s", number(unix_seconds(now_ms)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => match &failed.item {
                    Some(stored) => Ok(Some(stored.clone())),
                    None => Err(StoreError::backend(op, "the refused put returned no stored item")),
                },
                _ => Err(backend(op, e)),
            },
        }
    }

    /// An `UpdateItem` of the event item with this id.
    fn update_event(&self, event_id: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(event_pk(event_id)))
            .key("sk", AttributeValue::S(EVENT_SK.into()))
    }

    /// Takes the lease of a stored event until `lease_until_ms` if [`LEASE_RUN_OUT`];
    /// whether it did.
    async fn retake_lease(&self, event_id: &str, now_ms: i64, lease_until_ms: i64) -> Result<bool, StoreError> {
        let result = self
            .update_event(event_id)
            .update_expression("SET leaseUntil = :until")
            .condition_expression(LEASE_RUN_OUT)
            .expression_attribute_values(":until", number(lease_until_ms))
            .expression_attribute_values(":now_ms", number(now_ms))
            .expression_attribute_values(":now_s", number(unix_seconds(now_ms)))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("dynamodb.record_event", e)),
        }
    }
}

impl EventStore for DynamoStore {
    async fn record_event(&self, event: &PlatformEvent, lease: Duration) -> Result<Recorded, StoreError> {
        for _ in 0..RECORD_ROUNDS {
            let now = now_ms();
            let Some(stored) = self.insert_event(event, now, lease).await? else {
                return Ok(Recorded::New);
            };
            let decision = decide_record(Some(&event_state(&stored)?), now, lease);
            let carried_out = match decision {
                // The refused put's condition states this same rule at the same instant, so
                // this does not happen; should it ever, start over.
                RecordDecision::Insert { .. } => false,
                RecordDecision::RetakeLease { lease_until_ms } => {
                    self.retake_lease(&event.event_id, now, lease_until_ms).await?
                }
                RecordDecision::InProgress | RecordDecision::AlreadyFannedOut => true,
            };
            if carried_out {
                return decision.recorded(|| data(&stored));
            }
        }
        Err(StoreError::backend(
            "dynamodb.record_event",
            "the stored event kept changing while it was recorded",
        ))
    }

    async fn mark_fanned_out(&self, event_id: &str) -> Result<(), StoreError> {
        let precondition = Precondition::Present;
        let result = self
            .update_event(event_id)
            .update_expression("SET fannedOut = :true")
            .condition_expression(condition(precondition))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(precondition.refused()),
            Err(e) => Err(backend("dynamodb.mark_fanned_out", e)),
        }
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<PlatformEvent>, StoreError> {
        // DynamoDB deletes an expired item some time after it expires: until then it is
        // hidden here, as the embedded store hides it.
        let Some(stored) = self.get("dynamodb.get_event", event_pk(event_id), EVENT_SK).await? else {
            return Ok(None);
        };
        if is_expired(from_unix_seconds(number_attr(&stored, TTL_ATTRIBUTE)?), now_ms()) {
            return Ok(None);
        }
        data(&stored).map(Some)
    }
}
