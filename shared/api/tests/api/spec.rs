//! openapi.yaml and the router describe the same API.

use std::collections::BTreeSet;

use serde_norway::Value;
use webhooks_api::ROUTES;

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    serde_norway::from_str(&text).expect("openapi.yaml is YAML")
}

/// The merchant API's operations: every one not tagged `local` (those the local stack serves)
/// nor `portal` (the web page and its files, served beside the API without a key).
fn merchant_operations(spec: &Value) -> Vec<(String, String, &Value)> {
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, operation) in item.as_mapping().expect("a path item") {
            let method = method.as_str().expect("a key");
            let local = operation["tags"]
                .as_sequence()
                .is_some_and(|tags| tags.iter().any(|tag| matches!(tag.as_str(), Some("local" | "portal"))));
            if METHODS.contains(&method) && !local {
                let path = path.as_str().expect("a path").to_owned();
                operations.push((method.to_uppercase(), path, operation));
            }
        }
    }
    operations
}

#[test]
fn router_serves_exactly_the_routes_in_openapi_yaml() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = merchant_operations(&spec)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), (*path).to_owned()))
        .collect();
    assert_eq!(served, documented);
}

#[test]
fn every_operation_documents_the_errors_every_route_can_answer() {
    let spec = spec();
    for (method, path, operation) in merchant_operations(&spec) {
        let responses = operation["responses"].as_mapping().expect("responses");
        let documented = |status: &str| responses.contains_key(Value::from(status));
        let mut expected = vec!["401", "429", "503"];
        if operation.get("requestBody").is_some() {
            expected.extend(["400", "413"]);
        }
        if path.contains("{id}") {
            expected.push("404");
        }
        for status in expected {
            assert!(documented(status), "{method} {path} does not document {status}");
        }
        assert!(
            operation["security"][0].get("bearerAuth").is_some(),
            "{method} {path} needs the bearer key"
        );
    }
}
