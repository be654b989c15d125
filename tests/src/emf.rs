//! The CloudWatch Embedded Metric Format lines a function printed, checked against the
//! metrics table of docs/operations.md: each document's metric is documented, with the
//! documented unit and exactly the documented dimensions.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::verifiers::repo_root;

/// A metric as docs/operations.md documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    /// `Count`, `Milliseconds`, `Seconds`.
    pub unit: String,
    /// Its dimensions, in the table's order.
    pub dimensions: Vec<String>,
}

/// The metrics table of docs/operations.md, by name.
pub fn documented_metrics() -> BTreeMap<String, Documented> {
    let doc = std::fs::read_to_string(repo_root().join("docs/operations.md")).expect("read docs/operations.md");
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | `name` | Unit | dimensions | emitted by | counts |
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let unit = cells.get(2)?;
            if !["Count", "Milliseconds", "Seconds"].contains(unit) {
                return None;
            }
            let dimensions = backticked_outside_parentheses(cells.get(3)?);
            Some((
                name.to_owned(),
                Documented {
                    unit: (*unit).to_owned(),
                    dimensions,
                },
            ))
        })
        .collect()
}

/// `` `outcome` (`a`, `b`), `event_name` `` -> `["outcome", "event_name"]`.
fn backticked_outside_parentheses(cell: &str) -> Vec<String> {
    let (mut depth, mut outside) = (0, String::new());
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 => outside.push(c),
            _ => {}
        }
    }
    outside.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Every EMF document in a function's log (a JSON line with an `_aws` member).
pub fn emf_documents(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

/// Checks every EMF document of `log` against the documentation (namespace `namespace`,
/// documented names, units and dimensions, a value for each metric and dimension) and that
/// each of `expected` was emitted; returns the documents.
pub fn assert_emf_as_documented(log: &str, namespace: &str, expected: &[&str]) -> Vec<Value> {
    let documented = documented_metrics();
    assert!(
        documented.len() >= 10,
        "the metrics table was not found: {documented:?}"
    );
    let documents = emf_documents(log);
    let mut emitted = Vec::new();
    for document in &documents {
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], namespace, "{document}");
        let dimensions: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .expect("one dimension set")
            .iter()
            .map(|d| d.as_str().expect("a dimension name").to_owned())
            .collect();
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("a metric name");
            let doc = documented
                .get(name)
                .unwrap_or_else(|| panic!("{name} is not in docs/operations.md: {document}"));
            assert_eq!(metric["Unit"], doc.unit.as_str(), "{name}'s unit");
            let mut sorted = dimensions.clone();
            sorted.sort();
            let mut expected_dimensions = doc.dimensions.clone();
            expected_dimensions.sort();
            assert_eq!(sorted, expected_dimensions, "{name}'s dimensions: {document}");
            assert!(document.get(name).is_some(), "{name} has a value: {document}");
            emitted.push(name.to_owned());
        }
        for dimension in &dimensions {
            assert!(
                document[dimension].is_string(),
                "dimension {dimension} has a value: {document}"
            );
        }
    }
    for name in expected {
        assert!(
            emitted.iter().any(|e| e == name),
            "{name} was not emitted; emitted {emitted:?}\n{log}"
        );
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_with_units_and_dimensions() {
        let documented = documented_metrics();
        assert_eq!(
            documented["deliveries"],
            Documented {
                unit: "Count".into(),
                dimensions: vec!["outcome".into(), "event_name".into()]
            }
        );
        assert_eq!(documented["auth_latency"].dimensions, Vec::<String>::new());
        assert_eq!(documented["attempt_latency"].unit, "Milliseconds");
    }
}
