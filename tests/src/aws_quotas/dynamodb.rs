//! DynamoDB requests checked against DynamoDB's constraints, with the key schemas learnt
//! from the tables' descriptions.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::create_table::CreateTableOutput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

use super::key_condition::{self, KeySchema};
use super::quota::{
    DYNAMODB_BATCH_WRITE_MAX, DYNAMODB_MAX_ITEM_BYTES, DYNAMODB_MAX_PARTITION_KEY_BYTES, DYNAMODB_MAX_SORT_KEY_BYTES,
    DYNAMODB_TRANSACT_WRITE_MAX, DYNAMODB_TRANSACT_WRITE_MAX_BYTES, Quota, QuotaExceeded,
};

type Item = HashMap<String, AttributeValue>;

/// The key schemas of the tables (index `None`) and their indexes, by (table, index).
pub(super) type KeySchemas = HashMap<(String, Option<String>), KeySchema>;

/// Refuses `input` if DynamoDB would. Keys are checked against `schemas` where the table's
/// is known; a table the layer has not seen described gets the checks that need no keys.
pub(super) fn check(input: &Input, schemas: &KeySchemas) -> Result<(), QuotaExceeded> {
    let schema = |table: Option<&str>| schemas.get(&(table.unwrap_or_default().to_owned(), None));
    let empty = Item::new();
    if let Some(put) = input.downcast_ref::<PutItemInput>() {
        return check_item(schema(put.table_name()), put.item().unwrap_or(&empty));
    }
    if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
        let key = update.key().unwrap_or(&empty);
        check_key(schema(update.table_name()), key)?;
        // The item after the update is unknown here; what the request carries (key and
        // values) is a lower bound of it.
        let carried = item_size(key) + update.expression_attribute_values().map_or(0, item_size);
        return check_size(carried);
    }
    if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
        return check_key(schema(delete.table_name()), delete.key().unwrap_or(&empty));
    }
    if let Some(get) = input.downcast_ref::<GetItemInput>() {
        return check_key(schema(get.table_name()), get.key().unwrap_or(&empty));
    }
    if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
        return check_batch_write(batch, schemas);
    }
    if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
        return check_transaction(transaction, schemas);
    }
    if let Some(query) = input.downcast_ref::<QueryInput>() {
        let key = (
            query.table_name().unwrap_or_default().to_owned(),
            query.index_name().map(str::to_owned),
        );
        return check_query(query, schemas.get(&key));
    }
    Ok(())
}

/// Learns the key schemas of a table and its indexes from its description in `output`.
pub(super) fn learn(output: &Output, schemas: &mut KeySchemas) {
    let table = output
        .downcast_ref::<DescribeTableOutput>()
        .and_then(|o| o.table())
        .or_else(|| {
            output
                .downcast_ref::<CreateTableOutput>()
                .and_then(|o| o.table_description())
        });
    let Some(table) = table else { return };
    let name = table.table_name().unwrap_or_default();
    let global = table
        .global_secondary_indexes()
        .iter()
        .map(|i| (i.index_name(), i.key_schema()));
    let local = table
        .local_secondary_indexes()
        .iter()
        .map(|i| (i.index_name(), i.key_schema()));
    for (index, elements) in std::iter::once((None, table.key_schema())).chain(global).chain(local) {
        if let Some(schema) = key_schema(elements) {
            schemas.insert((name.to_owned(), index.map(str::to_owned)), schema);
        }
    }
}

fn key_schema(elements: &[KeySchemaElement]) -> Option<KeySchema> {
    let named = |key_type: KeyType| {
        elements
            .iter()
            .find(|e| *e.key_type() == key_type)
            .map(|e| e.attribute_name().to_owned())
    };
    Some(KeySchema {
        partition: named(KeyType::Hash)?,
        sort: named(KeyType::Range),
    })
}

fn check_batch_write(batch: &BatchWriteItemInput, schemas: &KeySchemas) -> Result<(), QuotaExceeded> {
    let tables = batch.request_items().into_iter().flatten();
    let count: usize = tables.clone().map(|(_, requests)| requests.len()).sum();
    if !(1..=DYNAMODB_BATCH_WRITE_MAX).contains(&count) {
        let detail = format!("{count} put and delete requests, 1 to {DYNAMODB_BATCH_WRITE_MAX} allowed");
        return Err(QuotaExceeded::new(Quota::DynamoDbBatchWriteItem, detail));
    }
    let mut seen = HashSet::new();
    for (table, requests) in tables {
        let schema = schemas.get(&(table.clone(), None));
        for request in requests {
            let key = match (request.put_request(), request.delete_request()) {
                (Some(put), _) => {
                    check_item(schema, put.item())?;
                    put.item()
                }
                (None, Some(delete)) => {
                    check_key(schema, delete.key())?;
                    delete.key()
                }
                (None, None) => continue,
            };
            if let Some(identity) = schema.map(|s| item_identity(table, s, key))
                && !seen.insert(identity)
            {
                let detail = format!("an item of {table} written twice in one call");
                return Err(QuotaExceeded::new(Quota::DynamoDbBatchWriteItem, detail));
            }
        }
    }
    Ok(())
}

fn check_transaction(transaction: &TransactWriteItemsInput, schemas: &KeySchemas) -> Result<(), QuotaExceeded> {
    let actions = transaction.transact_items();
    if !(1..=DYNAMODB_TRANSACT_WRITE_MAX).contains(&actions.len()) {
        let detail = format!("{} actions, 1 to {DYNAMODB_TRANSACT_WRITE_MAX} allowed", actions.len());
        return Err(QuotaExceeded::new(Quota::DynamoDbTransactWriteItems, detail));
    }
    let (mut seen, mut total) = (HashSet::new(), 0);
    for action in actions {
        let (table, key) = if let Some(put) = action.put() {
            let schema = schemas.get(&(put.table_name().to_owned(), None));
            check_item(schema, put.item())?;
            total += item_size(put.item());
            (put.table_name(), put.item())
        } else if let Some(update) = action.update() {
            (update.table_name(), update.key())
        } else if let Some(delete) = action.delete() {
            (delete.table_name(), delete.key())
        } else if let Some(condition) = action.condition_check() {
            (condition.table_name(), condition.key())
        } else {
            continue;
        };
        let schema = schemas.get(&(table.to_owned(), None));
        check_key(schema, key)?;
        if let Some(identity) = schema.map(|s| item_identity(table, s, key))
            && !seen.insert(identity)
        {
            let detail = format!("two actions on one item of {table}");
            return Err(QuotaExceeded::new(Quota::DynamoDbTransactWriteItems, detail));
        }
    }
    if total > DYNAMODB_TRANSACT_WRITE_MAX_BYTES {
        let detail = format!("{total} bytes of items, at most {DYNAMODB_TRANSACT_WRITE_MAX_BYTES}");
        return Err(QuotaExceeded::new(Quota::DynamoDbTransactWriteItems, detail));
    }
    Ok(())
}

/// Refuses a query whose key condition DynamoDB would, or whose placeholders do not match
/// its `ExpressionAttributeNames` and `ExpressionAttributeValues` one for one.
fn check_query(query: &QueryInput, schema: Option<&KeySchema>) -> Result<(), QuotaExceeded> {
    let refuse = |detail: String| QuotaExceeded::new(Quota::DynamoDbKeyCondition, detail);
    let Some(key_condition) = query.key_condition_expression() else {
        return match query.key_conditions() {
            Some(_) => Ok(()),
            None => Err(refuse("a query needs a KeyConditionExpression".into())),
        };
    };
    key_condition::check(key_condition, query.expression_attribute_names(), schema).map_err(refuse)?;
    let mut used = HashSet::new();
    for expression in [
        Some(key_condition),
        query.filter_expression(),
        query.projection_expression(),
    ]
    .into_iter()
    .flatten()
    {
        used.extend(key_condition::placeholders(expression).map_err(refuse)?);
    }
    let defined: HashSet<String> = query
        .expression_attribute_names()
        .into_iter()
        .flat_map(HashMap::keys)
        .chain(query.expression_attribute_values().into_iter().flat_map(HashMap::keys))
        .cloned()
        .collect();
    if let Some(missing) = used.difference(&defined).next() {
        return Err(refuse(format!("{missing} is used but not defined")));
    }
    if let Some(unused) = defined.difference(&used).next() {
        return Err(refuse(format!("{unused} is defined but not used")));
    }
    Ok(())
}

/// Refuses an item over DynamoDB's item size or with an over-long key.
fn check_item(schema: Option<&KeySchema>, item: &Item) -> Result<(), QuotaExceeded> {
    check_key(schema, item)?;
    check_size(item_size(item))
}

fn check_size(size: usize) -> Result<(), QuotaExceeded> {
    if size > DYNAMODB_MAX_ITEM_BYTES {
        let detail = format!("{size} bytes (estimated from above), at most {DYNAMODB_MAX_ITEM_BYTES}");
        return Err(QuotaExceeded::new(Quota::DynamoDbItemSize, detail));
    }
    Ok(())
}

/// Refuses key values longer than DynamoDB's partition and sort key lengths.
fn check_key(schema: Option<&KeySchema>, attributes: &Item) -> Result<(), QuotaExceeded> {
    let Some(schema) = schema else { return Ok(()) };
    let keys = [
        (
            Some(&schema.partition),
            DYNAMODB_MAX_PARTITION_KEY_BYTES,
            Quota::DynamoDbPartitionKeyLength,
        ),
        (
            schema.sort.as_ref(),
            DYNAMODB_MAX_SORT_KEY_BYTES,
            Quota::DynamoDbSortKeyLength,
        ),
    ];
    for (name, max, quota) in keys {
        let Some(value) = name.and_then(|name| attributes.get(name)) else {
            continue;
        };
        let length = value_size(value);
        if length > max {
            return Err(QuotaExceeded::new(quota, format!("{length} bytes, at most {max}")));
        }
    }
    Ok(())
}

/// Which item of `table` the key attributes in `attributes` name.
fn item_identity(table: &str, schema: &KeySchema, attributes: &Item) -> String {
    let sort = schema.sort.as_ref().and_then(|sort| attributes.get(sort));
    format!("{table}\u{0}{:?}\u{0}{sort:?}", attributes.get(&schema.partition))
}

/// An item's size as DynamoDB counts it ("Item sizes and formats"): each attribute name's
/// UTF-8 bytes plus its value's size.
pub(super) fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// A value's size: strings and binaries their bytes, numbers [`number_size`], booleans
/// and nulls 1, sets their elements, lists and maps 3 bytes plus 1 per element plus the
/// elements (and a map's names).
fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// A number's size: DynamoDB stores about one byte per two significant digits, plus one.
/// Counting every digit (leading and trailing zeros too) errs on the large side, never under.
fn number_size(number: &str) -> usize {
    number.bytes().filter(u8::is_ascii_digit).count().div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::primitives::Blob;
    use aws_sdk_dynamodb::types::{Put, PutRequest, TableDescription, TransactWriteItem, WriteRequest};

    use super::*;

    const TABLE: &str = "webhooks-test-table";

    fn schemas() -> KeySchemas {
        let schema = KeySchema {
            partition: "pk".into(),
            sort: Some("sk".into()),
        };
        HashMap::from([((TABLE.to_owned(), None), schema)])
    }

    fn item(pk: &str, sk: &str, data: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk.into())),
            ("sk".to_owned(), AttributeValue::S(sk.into())),
            ("data".to_owned(), AttributeValue::S(data.into())),
        ])
    }

    fn verdict(input: impl std::fmt::Debug + Send + Sync + 'static) -> Result<(), Quota> {
        check(&Input::erase(input), &schemas()).map_err(|refused| refused.quota)
    }

    fn put(item: Item) -> PutItemInput {
        PutItemInput::builder()
            .table_name(TABLE)
            .set_item(Some(item))
            .build()
            .unwrap()
    }

    #[test]
    fn sizes_follow_dynamodbs_rules_rounding_up() {
        let sized = HashMap::from([
            ("s".to_owned(), AttributeValue::S("héllo".into())),
            ("n".to_owned(), AttributeValue::N("-12345".into())),
            ("b".to_owned(), AttributeValue::B(Blob::new(vec![0; 10]))),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("l".to_owned(), AttributeValue::L(vec![AttributeValue::Null(true)])),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([("k".to_owned(), AttributeValue::S("v".into()))])),
            ),
        ]);
        // names 6; values: 6 + (3 + 1) + 10 + 1 + (3 + 1 + 1) + (3 + 1 + 1 + 1)
        assert_eq!(item_size(&sized), 6 + 6 + 4 + 10 + 1 + 5 + 6);
    }

    #[test]
    fn items_over_400_kb_or_with_long_keys_are_refused() {
        let name_and_keys = "pkskdata".len() + 2;
        let fits = "x".repeat(DYNAMODB_MAX_ITEM_BYTES - name_and_keys);
        assert_eq!(verdict(put(item("p", "s", &fits))), Ok(()));
        let over = "x".repeat(DYNAMODB_MAX_ITEM_BYTES - name_and_keys + 1);
        assert_eq!(verdict(put(item("p", "s", &over))), Err(Quota::DynamoDbItemSize));
        let long_pk = "p".repeat(DYNAMODB_MAX_PARTITION_KEY_BYTES + 1);
        assert_eq!(
            verdict(put(item(&long_pk, "s", ""))),
            Err(Quota::DynamoDbPartitionKeyLength)
        );
        let long_sk = "s".repeat(DYNAMODB_MAX_SORT_KEY_BYTES + 1);
        assert_eq!(verdict(put(item("p", &long_sk, ""))), Err(Quota::DynamoDbSortKeyLength));
    }

    #[test]
    fn batch_writes_over_25_requests_or_repeating_an_item_are_refused() {
        let batch = |sks: &[String]| {
            let requests = sks
                .iter()
                .map(|sk| {
                    let put = PutRequest::builder().set_item(Some(item("p", sk, ""))).build().unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            BatchWriteItemInput::builder()
                .request_items(TABLE, requests)
                .build()
                .unwrap()
        };
        let sks: Vec<String> = (0..=DYNAMODB_BATCH_WRITE_MAX).map(|i| i.to_string()).collect();
        assert_eq!(verdict(batch(&sks[..DYNAMODB_BATCH_WRITE_MAX])), Ok(()));
        assert_eq!(verdict(batch(&sks)), Err(Quota::DynamoDbBatchWriteItem));
        assert_eq!(
            verdict(batch(&["a".into(), "a".into()])),
            Err(Quota::DynamoDbBatchWriteItem)
        );
    }

    #[test]
    fn transactions_over_100_actions_or_twice_on_one_item_are_refused() {
        let transaction = |sks: Vec<String>| {
            let actions = sks
                .into_iter()
                .map(|sk| {
                    let put = Put::builder()
                        .table_name(TABLE)
                        .set_item(Some(item("p", &sk, "")))
                        .build()
                        .unwrap();
                    TransactWriteItem::builder().put(put).build()
                })
                .collect();
            TransactWriteItemsInput::builder()
                .set_transact_items(Some(actions))
                .build()
                .unwrap()
        };
        let sks = |n: usize| (0..n).map(|i| i.to_string()).collect();
        assert_eq!(verdict(transaction(sks(DYNAMODB_TRANSACT_WRITE_MAX))), Ok(()));
        assert_eq!(
            verdict(transaction(sks(DYNAMODB_TRANSACT_WRITE_MAX + 1))),
            Err(Quota::DynamoDbTransactWriteItems)
        );
        assert_eq!(
            verdict(transaction(vec!["a".into(), "a".into()])),
            Err(Quota::DynamoDbTransactWriteItems)
        );
    }

    #[test]
    fn queries_need_a_key_condition_and_placeholders_that_match() {
        let query = |condition: &str, values: &[&str]| {
            let mut builder = QueryInput::builder()
                .table_name(TABLE)
                .key_condition_expression(condition);
            for value in values {
                builder = builder.expression_attribute_values(*value, AttributeValue::S("v".into()));
            }
            builder.build().unwrap()
        };
        assert_eq!(
            verdict(query("pk = :pk AND begins_with(sk, :prefix)", &[":pk", ":prefix"])),
            Ok(())
        );
        assert_eq!(verdict(query("sk = :s", &[":s"])), Err(Quota::DynamoDbKeyCondition));
        assert_eq!(
            verdict(query("pk = :pk", &[":pk", ":unused"])),
            Err(Quota::DynamoDbKeyCondition)
        );
        assert_eq!(verdict(query("pk = :pk", &[])), Err(Quota::DynamoDbKeyCondition));
        let no_condition = QueryInput::builder().table_name(TABLE).build().unwrap();
        assert_eq!(verdict(no_condition), Err(Quota::DynamoDbKeyCondition));
    }

    #[test]
    fn key_schemas_are_learnt_from_a_table_description() {
        let element = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .unwrap()
        };
        let table = TableDescription::builder()
            .table_name(TABLE)
            .key_schema(element("pk", KeyType::Hash))
            .key_schema(element("sk", KeyType::Range))
            .build();
        let output = DescribeTableOutput::builder().table(table).build();
        let mut learnt = KeySchemas::new();
        learn(&Output::erase(output), &mut learnt);
        assert_eq!(learnt, schemas());
    }
}
