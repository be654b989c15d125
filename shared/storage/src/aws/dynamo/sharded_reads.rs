//! Reads of a write-sharded key: every shard queried at once from the same position, and
//! the pages merged by sort key into one order. Sort keys are unique across a key's
//! shards (they name the event or task), so a position in the merged order is one sort key.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{StreamExt, TryStreamExt};

use super::{DynamoStore, Item, PARALLEL_SHARD_READS, sort_key};
use crate::StoreError;
use crate::aws::backend;

/// A sort-key range of every shard of one key, read oldest (lowest) first.
pub(super) struct ShardedRange<'a> {
    /// The operation name in errors.
    pub(super) op: &'static str,
    /// The shards' partition keys.
    pub(super) partitions: &'a [String],
    /// The lowest and the highest sort key read, both included.
    pub(super) first: &'a str,
    pub(super) last: &'a str,
    /// Read past this sort key only.
    pub(super) after: Option<&'a str>,
    /// `ProjectionExpression`, if not every attribute is wanted.
    pub(super) projection: Option<&'static str>,
    /// Strongly consistent reads.
    pub(super) consistent: bool,
}

/// What [`DynamoStore::read_sharded_range`] found: items with the index of their shard.
pub(super) struct MergedPage {
    /// Up to `limit` + 1 items in sort-key order, each with the index of its partition.
    pub(super) items: Vec<(usize, Item)>,
    /// Whether the range goes on past the first `limit` items.
    pub(super) more: bool,
}

impl DynamoStore {
    /// Up to `limit` + 1 items of the range, merged from every shard in sort-key order.
    pub(super) async fn read_sharded_range(
        &self,
        range: &ShardedRange<'_>,
        limit: usize,
    ) -> Result<MergedPage, StoreError> {
        // Collected first: the compiler cannot prove a stream over a borrowing closure `Send`.
        let reads: Vec<_> = range
            .partitions
            .iter()
            .enumerate()
            .map(|(shard, pk)| self.read_shard(range, shard, pk, limit.saturating_add(1)))
            .collect();
        let shards: Vec<(Vec<(usize, Item)>, bool)> = futures::stream::iter(reads)
            .buffer_unordered(PARALLEL_SHARD_READS)
            .try_collect()
            .await?;
        // Past a shard's last item, while that shard goes on, it is unknown: the merged
        // items stop there.
        let known_until = shards
            .iter()
            .filter(|(_, goes_on)| *goes_on)
            .filter_map(|(items, _)| items.last().map(|(_, item)| sort_key(item).to_owned()))
            .min();
        let mut items: Vec<(usize, Item)> = shards.into_iter().flat_map(|(items, _)| items).collect();
        items.sort_by(|(_, a), (_, b)| sort_key(a).cmp(sort_key(b)));
        if let Some(bound) = &known_until {
            items.retain(|(_, item)| sort_key(item) <= bound.as_str());
        }
        let more = items.len() > limit || known_until.is_some();
        Ok(MergedPage { items, more })
    }

    /// Up to `wanted` items of one shard's part of the range, and whether the shard goes on
    /// past them (`wanted` reached, or DynamoDB's 1 MB page).
    async fn read_shard(
        &self,
        range: &ShardedRange<'_>,
        shard: usize,
        pk: &str,
        wanted: usize,
    ) -> Result<(Vec<(usize, Item)>, bool), StoreError> {
        // A position in the merged order, not necessarily an item of this shard.
        let start = range.after.map(|sk| {
            HashMap::from([
                ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
                ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
            ])
        });
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .expression_attribute_values(":first", AttributeValue::S(range.first.to_owned()))
            .expression_attribute_values(":last", AttributeValue::S(range.last.to_owned()))
            .set_projection_expression(range.projection.map(str::to_owned))
            .consistent_read(range.consistent)
            .scan_index_forward(true)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(wanted).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| backend(range.op, e))?;
        let goes_on = output.last_evaluated_key.as_ref().is_some_and(|key| !key.is_empty());
        let items = output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| (shard, item))
            .collect();
        Ok((items, goes_on))
    }
}
