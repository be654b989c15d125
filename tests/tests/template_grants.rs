//! The roles of template.yaml grant what docs/deploy.md's table says and nothing wider:
//! only the functions that sign or call hold kms:Decrypt, only the API also seals, and every
//! DynamoDB write is limited to an allow-list of partitions (`dynamodb:LeadingKeys`).

use std::collections::BTreeMap;

use serde_norway::Value;

/// Each role's statements: (actions, the LeadingKeys allow-list if any, whether a KMS
/// statement requires the encryption context).
type Grants = BTreeMap<String, Vec<Statement>>;

#[derive(Debug)]
struct Statement {
    actions: Vec<String>,
    leading_keys: Option<Vec<String>>,
    excluded_keys: bool,
    kms_context: bool,
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(one) => vec![one.clone()],
        Value::Sequence(many) => many.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn grants() -> Grants {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let template: Value = serde_norway::from_str(&text).unwrap();
    let mut grants = Grants::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::IAM::Role") {
            continue;
        }
        let mut statements = Vec::new();
        for policy in resource["Properties"]["Policies"].as_sequence().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                let condition = &statement["Condition"];
                let allow_list = ["ForAllValues:StringLike", "ForAllValues:StringEquals"]
                    .iter()
                    .find_map(|operator| condition.get(operator).and_then(|c| c.get("dynamodb:LeadingKeys")));
                statements.push(Statement {
                    actions: strings(&statement["Action"]),
                    leading_keys: allow_list.map(strings),
                    excluded_keys: condition.get("ForAllValues:StringNotLike").is_some(),
                    kms_context: condition["StringEquals"]["kms:EncryptionContext:purpose"].as_str()
                        == Some("webhooks-secrets"),
                });
            }
        }
        grants.insert(name.as_str().unwrap().to_owned(), statements);
    }
    grants
}

fn kms_actions(statements: &[Statement]) -> Vec<&str> {
    let mut actions: Vec<&str> = statements
        .iter()
        .flat_map(|s| s.actions.iter().map(String::as_str))
        .filter(|action| action.starts_with("kms:"))
        .collect();
    actions.sort_unstable();
    actions
}

#[test]
fn only_the_functions_that_sign_or_call_can_open_secrets_and_only_the_api_seals() {
    let grants = grants();
    let expected: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("IngestRole", vec![]),
        ("SchedulerRole", vec![]),
        ("DeliverRole", vec!["kms:Decrypt"]),
        ("AuthCallbackRole", vec!["kms:Decrypt"]),
        ("SubscriptionsRole", vec!["kms:Decrypt", "kms:GenerateDataKey"]),
    ]);
    for (role, statements) in &grants {
        let want = expected
            .get(role.as_str())
            .unwrap_or_else(|| panic!("a role the test does not know: {role}"));
        assert_eq!(&kms_actions(statements), want, "{role}");
        for statement in statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| a.starts_with("kms:")))
        {
            assert!(statement.kms_context, "{role}: KMS use without the encryption context");
        }
    }
    assert_eq!(grants.len(), expected.len());
}

#[test]
fn every_table_write_is_limited_to_an_allow_list_of_partitions() {
    const WRITES: [&str; 4] = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    for (role, statements) in grants() {
        for statement in statements
            .iter()
            .filter(|s| s.actions.iter().any(|a| WRITES.contains(&a.as_str())))
        {
            assert!(!statement.excluded_keys, "{role}: a deny-list, not an allow-list");
            let keys = statement
                .leading_keys
                .as_ref()
                .unwrap_or_else(|| panic!("{role}: {:?} on every partition", statement.actions));
            // Merchant profiles and API keys are minted only by operators.
            for forbidden in ["MERCHANTS", "APIKEY#*", "*"] {
                assert!(!keys.iter().any(|key| key == forbidden), "{role} writes {forbidden}");
            }
        }
    }
}

#[test]
fn the_api_writes_only_merchant_event_counter_config_and_delivery_status_partitions() {
    let grants = grants();
    let mut written: Vec<&str> = grants["SubscriptionsRole"]
        .iter()
        .filter(|s| {
            s.actions
                .iter()
                .any(|a| a != "dynamodb:GetItem" && a != "dynamodb:Query" && a.starts_with("dynamodb:"))
        })
        .flat_map(|s| s.leading_keys.iter().flatten().map(String::as_str))
        .collect();
    written.sort_unstable();
    written.dedup();
    assert_eq!(written, ["CONFIG", "DELIVERY#*", "EVENT#*", "LIMIT#*", "MERCHANT#*"]);
}
