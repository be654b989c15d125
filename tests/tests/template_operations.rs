//! template.yaml's operations (docs/operations.md): the alarms every function, queue, the API
//! and the table must have, each paging the alarm topic; the dashboard's widgets; the prod
//! canary whose rollback triggers are each function's alarms; Lambda's REPORT lines and the
//! metric lines kept in the logs; and a runbook entry for every alarm.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

const FUNCTIONS: [&str; 5] = [
    "IngestFunction",
    "DeliverFunction",
    "SchedulerFunction",
    "SubscriptionsFunction",
    "AuthCallbackFunction",
];

/// The custom metrics the functions emit (Embedded Metric Format), as docs/operations.md
/// lists them.
const CUSTOM_METRICS: [&str; 13] = [
    "deliveries",
    "attempt_latency",
    "retries_parked",
    "retries_released",
    "endpoints_failing",
    "endpoints_disabled",
    "auth_decisions",
    "auth_latency",
    "events_ingested",
    "events_duplicate",
    "events_malformed",
    "api_requests",
    "api_latency",
];

const DASHBOARD_WIDGETS: [&str; 21] = [
    "Alarms",
    "Queue depths",
    "Oldest message age",
    "Dead-letter queues",
    "Deliveries by outcome",
    "Attempt latency p99",
    "Retries parked and released",
    "Endpoints failing and disabled",
    "Events ingested",
    "Auth decisions",
    "Auth decision latency p99",
    "Auth denials by reason",
    "API requests by route and status",
    "API latency p99 by route",
    "API Gateway requests, 4xx and 5xx",
    "DynamoDB throttles",
    "Lambda errors",
    "Lambda throttles",
    "Lambda duration p99",
    "Lambda concurrency",
    "Cold starts and memory (REPORT lines)",
];

fn repository_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn template() -> Value {
    serde_norway::from_str(&repository_file("template.yaml")).unwrap()
}

fn resources<'t>(template: &'t Value, kind: &str) -> BTreeMap<String, &'t Value> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(name, resource)| (name.as_str().unwrap().to_owned(), resource))
        .collect()
}

/// The function of an intrinsic (`Ref`, `GetAtt`, `If`, ...) and its argument.
fn intrinsic(value: &Value) -> Option<(String, &Value)> {
    match value {
        Value::Tagged(tagged) => Some((tagged.tag.to_string().trim_start_matches('!').to_owned(), &tagged.value)),
        Value::Mapping(map) if map.len() == 1 => {
            let (key, argument) = map.iter().next().unwrap();
            let key = key.as_str()?;
            let function = key.strip_prefix("Fn::").or((key == "Ref").then_some(key))?;
            Some((function.to_owned(), argument))
        }
        _ => None,
    }
}

/// The logical id a `!Ref X` or `!GetAtt X.Attribute` names.
fn target(value: &Value) -> Option<String> {
    let (function, argument) = intrinsic(value)?;
    let name = match function.as_str() {
        "Ref" => argument.as_str()?,
        "GetAtt" => match argument {
            Value::Sequence(parts) => parts.first()?.as_str()?,
            other => other.as_str()?.split('.').next()?,
        },
        _ => return None,
    };
    Some(name.to_owned())
}

/// Every logical id referenced anywhere inside `value`.
fn references(value: &Value) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    if let Some(name) = target(value) {
        found.insert(name);
    }
    match value {
        Value::Tagged(tagged) => found.extend(references(&tagged.value)),
        Value::Sequence(items) => items.iter().for_each(|item| found.extend(references(item))),
        Value::Mapping(map) => map.iter().for_each(|(_, item)| found.extend(references(item))),
        _ => {}
    }
    found
}

/// One metric an alarm reads: namespace, metric name, the resource its dimension names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Watch {
    namespace: String,
    metric: String,
    resource: String,
}

fn watch(namespace: &str, metric: &str, resource: &str) -> Watch {
    Watch {
        namespace: namespace.to_owned(),
        metric: metric.to_owned(),
        resource: resource.to_owned(),
    }
}

fn watches_of(alarm: &Value) -> Vec<Watch> {
    let properties = &alarm["Properties"];
    let mut metrics: Vec<&Value> = vec![properties];
    if let Some(queries) = properties["Metrics"].as_sequence() {
        metrics.extend(queries.iter().map(|query| &query["MetricStat"]["Metric"]));
    }
    metrics
        .into_iter()
        .filter_map(|metric| {
            // A metric of the stack's own namespace may have no dimension: no resource.
            let resource = match metric["Dimensions"].as_sequence().and_then(|d| d.first()) {
                Some(dimension) => target(&dimension["Value"])?,
                None => String::new(),
            };
            Some(Watch {
                namespace: namespace_of(&metric["Namespace"])?,
                metric: metric["MetricName"].as_str()?.to_owned(),
                resource,
            })
        })
        .collect()
}

/// A namespace as written: plain, or `!Sub Webhooks/${AWS::StackName}`.
fn namespace_of(namespace: &Value) -> Option<String> {
    match namespace {
        Value::String(plain) => Some(plain.clone()),
        Value::Tagged(tagged) if tagged.tag == "Sub" => tagged.value.as_str().map(str::to_owned),
        _ => None,
    }
}

/// Every alarm, by logical id, with what it watches.
fn alarms(template: &Value) -> BTreeMap<String, (Vec<Watch>, &Value)> {
    resources(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(name, alarm)| (name, (watches_of(alarm), alarm)))
        .collect()
}

/// The alarms that watch `wanted`.
fn watching(template: &Value, wanted: &Watch) -> BTreeSet<String> {
    alarms(template)
        .into_iter()
        .filter(|(_, (watches, _))| watches.contains(wanted))
        .map(|(name, _)| name)
        .collect()
}

/// What the template must watch, and the alarm that does: every function's errors and
/// throttles, auth-callback's p99 duration, the API's 5xx, the table's throttles, each queue's
/// oldest message and each DLQ's growth and age.
fn required_alarms() -> Vec<(&'static str, Watch)> {
    let lambda = |metric, function| watch("AWS/Lambda", metric, function);
    let sqs = |metric, queue| watch("AWS/SQS", metric, queue);
    vec![
        ("IngestErrorsAlarm", lambda("Errors", "IngestFunction")),
        ("DeliverErrorsAlarm", lambda("Errors", "DeliverFunction")),
        ("SchedulerErrorsAlarm", lambda("Errors", "SchedulerFunction")),
        ("SubscriptionsErrorsAlarm", lambda("Errors", "SubscriptionsFunction")),
        ("AuthCallbackErrorsAlarm", lambda("Errors", "AuthCallbackFunction")),
        ("IngestThrottlesAlarm", lambda("Throttles", "IngestFunction")),
        ("DeliverThrottlesAlarm", lambda("Throttles", "DeliverFunction")),
        ("SchedulerThrottlesAlarm", lambda("Throttles", "SchedulerFunction")),
        (
            "SubscriptionsThrottlesAlarm",
            lambda("Throttles", "SubscriptionsFunction"),
        ),
        (
            "AuthCallbackThrottlesAlarm",
            lambda("Throttles", "AuthCallbackFunction"),
        ),
        ("AuthCallbackDurationAlarm", lambda("Duration", "AuthCallbackFunction")),
        ("Api5xxAlarm", watch("AWS/ApiGateway", "5xx", "HttpApi")),
        (
            "ParkedRetriesBacklogAlarm",
            watch("Webhooks/${AWS::StackName}", "oldest_parked_retry_age", ""),
        ),
        (
            "TableThrottlesAlarm",
            watch("AWS/DynamoDB", "ReadThrottleEvents", "Table"),
        ),
        (
            "TableThrottlesAlarm",
            watch("AWS/DynamoDB", "WriteThrottleEvents", "Table"),
        ),
        ("EventsDlqAlarm", sqs("ApproximateNumberOfMessagesVisible", "EventsDlq")),
        (
            "DeliveriesDlqAlarm",
            sqs("ApproximateNumberOfMessagesVisible", "DeliveriesDlq"),
        ),
        ("EventsDlqAgeAlarm", sqs("ApproximateAgeOfOldestMessage", "EventsDlq")),
        (
            "DeliveriesDlqAgeAlarm",
            sqs("ApproximateAgeOfOldestMessage", "DeliveriesDlq"),
        ),
        (
            "IngestBacklogAlarm",
            sqs("ApproximateAgeOfOldestMessage", "EventsQueue"),
        ),
        (
            "DeliveriesBacklogAlarm",
            sqs("ApproximateAgeOfOldestMessage", "DeliveriesQueue"),
        ),
    ]
}

/// The `!Sub` name of an alarm without its `${AWS::StackName}-` prefix.
fn alarm_name(alarm: &Value) -> String {
    let name = alarm["Properties"]["AlarmName"].as_str().unwrap();
    name.strip_prefix("${AWS::StackName}-")
        .unwrap_or_else(|| panic!("{name}: not named after the stack"))
        .to_owned()
}

#[test]
fn every_function_queue_dlq_the_api_and_the_table_have_their_alarms_and_each_pages_the_topic() {
    let template = template();
    let alarms = alarms(&template);
    for (name, wanted) in required_alarms() {
        let (watches, _) = alarms
            .get(name)
            .unwrap_or_else(|| panic!("no alarm {name} (watching {wanted:?})"));
        assert!(watches.contains(&wanted), "{name} watches {watches:?}, not {wanted:?}");
    }
    // Growth, not presence, for the DLQs: a DIFF of the depth (a missing point filled as 0).
    for name in ["EventsDlqAlarm", "DeliveriesDlqAlarm"] {
        let (_, alarm) = &alarms[name];
        let expressions: Vec<&str> = alarm["Properties"]["Metrics"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|query| query["Expression"].as_str())
            .collect();
        assert_eq!(expressions, ["DIFF(FILL(visible, 0))"], "{name}");
    }
    let (_, duration) = &alarms["AuthCallbackDurationAlarm"];
    assert_eq!(duration["Properties"]["ExtendedStatistic"].as_str(), Some("p99"));

    let mut names = BTreeSet::new();
    for (name, (watches, alarm)) in &alarms {
        assert!(!watches.is_empty(), "{name} watches nothing the test can read");
        let properties = &alarm["Properties"];
        for actions in ["AlarmActions", "OKActions"] {
            assert!(
                references(&properties[actions]).contains("AlarmTopic"),
                "{name}: {actions} do not go to the alarm topic"
            );
        }
        assert!(names.insert(alarm_name(alarm)), "{name}: a second alarm with its name");
    }
}

/// The dashboard's body, as JSON: every `${...}` of its `!Sub` sits inside a JSON string.
fn dashboard(template: &Value) -> serde_json::Value {
    let dashboards = resources(template, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let body = &dashboards.values().next().unwrap()["Properties"]["DashboardBody"];
    let (function, text) = intrinsic(body).expect("the body is a !Sub");
    assert_eq!(function, "Sub");
    serde_json::from_str(text.as_str().unwrap()).unwrap()
}

#[test]
fn the_dashboard_has_its_widgets_every_alarm_and_every_custom_metric() {
    let template = template();
    let dashboard = dashboard(&template);
    let widgets = dashboard["widgets"].as_array().unwrap();
    let titles: BTreeSet<&str> = widgets
        .iter()
        .filter_map(|widget| widget["properties"]["title"].as_str())
        .collect();
    for wanted in DASHBOARD_WIDGETS {
        assert!(titles.contains(wanted), "no widget {wanted:?} (widgets: {titles:?})");
    }

    let shown: BTreeSet<&str> = widgets
        .iter()
        .filter(|widget| widget["type"] == "alarm")
        .flat_map(|widget| widget["properties"]["alarms"].as_array().unwrap())
        .map(|arn| arn.as_str().unwrap())
        .collect();
    for name in alarms(&template).keys() {
        assert!(
            shown.contains(format!("${{{name}.Arn}}").as_str()),
            "{name} is not on the dashboard"
        );
    }

    // Each custom metric, in the stack's namespace: plainly or through a SEARCH.
    let text = serde_json::to_string(widgets).unwrap();
    for metric in CUSTOM_METRICS {
        let plain = format!(r#""Webhooks/${{AWS::StackName}}","{metric}""#);
        let searched = format!(r#"MetricName=\"{metric}\""#);
        assert!(
            text.contains(&plain) || text.contains(&searched),
            "{metric} is on no widget"
        );
    }
    assert!(
        !text.contains("{Webhooks/"),
        "a SEARCH schema must quote the namespace (the stack name may hold a '-')"
    );
}

/// The alarms a function's canary rolls back on: its errors and throttles, and what its
/// users see (the API's 5xx, auth-callback's p99 duration).
fn canary_alarms(template: &Value, function: &str) -> BTreeSet<String> {
    let mut wanted = watching(template, &watch("AWS/Lambda", "Errors", function));
    wanted.extend(watching(template, &watch("AWS/Lambda", "Throttles", function)));
    match function {
        "SubscriptionsFunction" => wanted.extend(watching(template, &watch("AWS/ApiGateway", "5xx", "HttpApi"))),
        "AuthCallbackFunction" => wanted.extend(watching(template, &watch("AWS/Lambda", "Duration", function))),
        _ => {}
    }
    wanted
}

/// `!If [condition, then, else]`.
fn if_branches(value: &Value) -> (String, &Value, &Value) {
    let (function, argument) = intrinsic(value).unwrap_or_else(|| panic!("not an !If: {value:?}"));
    assert_eq!(function, "If");
    let parts = argument.as_sequence().unwrap();
    (parts[0].as_str().unwrap().to_owned(), &parts[1], &parts[2])
}

#[test]
fn prod_deploys_each_function_as_a_canary_rolled_back_by_its_alarms() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    assert!(
        globals["AutoPublishAlias"]
            .as_str()
            .is_some_and(|alias| !alias.is_empty())
    );

    // Canary when the condition holds, and the condition holds only in prod.
    let (condition, canary, otherwise) = if_branches(&globals["DeploymentPreference"]["Type"]);
    assert!(canary.as_str().unwrap().starts_with("Canary"), "{canary:?}");
    assert_eq!(otherwise.as_str(), Some("AllAtOnce"));
    let definition = serde_norway::to_string(&template["Conditions"][condition.as_str()]).unwrap();
    assert!(
        definition.contains("IsProd"),
        "{condition} is not limited to prod: {definition}"
    );
    let is_prod = serde_norway::to_string(&template["Conditions"]["IsProd"]).unwrap();
    assert!(is_prod.contains("Stage") && is_prod.contains("prod"), "{is_prod}");

    let functions = resources(&template, "AWS::Serverless::Function");
    assert_eq!(functions.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut sorted = FUNCTIONS.to_vec();
        sorted.sort_unstable();
        sorted
    });
    for function in FUNCTIONS {
        let properties = &functions[function]["Properties"];
        // A new version for any change of the function, not only of its code.
        assert_eq!(
            properties["AutoPublishAliasAllProperties"].as_bool(),
            Some(true),
            "{function}"
        );
        let (alarm_condition, alarms, none) = if_branches(&properties["DeploymentPreference"]["Alarms"]);
        assert_eq!(
            alarm_condition, condition,
            "{function}: alarms and canary under different conditions"
        );
        let alarms: BTreeSet<String> = alarms
            .as_sequence()
            .unwrap()
            .iter()
            .map(|alarm| target(alarm).unwrap())
            .collect();
        let wanted = canary_alarms(&template, function);
        assert!(
            wanted.len() >= 2,
            "{function}: its errors and throttles alarms are missing"
        );
        assert_eq!(alarms, wanted, "{function}: the canary's rollback alarms");
        assert_eq!(
            references(none),
            BTreeSet::from(["AWS::NoValue".to_owned()]),
            "{function}"
        );
    }
}

/// A function's `LoggingConfig` property: its own value, else the Globals'.
fn logging(template: &Value, function: &Value, key: &str) -> Option<String> {
    function["Properties"]["LoggingConfig"][key]
        .as_str()
        .or_else(|| template["Globals"]["Function"]["LoggingConfig"][key].as_str())
        .map(str::to_owned)
}

#[test]
fn every_function_keeps_lambdas_report_lines_and_its_metric_lines() {
    let template = template();
    let functions = resources(&template, "AWS::Serverless::Function");
    for function in FUNCTIONS {
        let definition = functions[function];
        assert_eq!(
            logging(&template, definition, "LogFormat").as_deref(),
            Some("JSON"),
            "{function}"
        );
        // platform.report (duration, max memory used, init duration) is an INFO system log.
        let system = logging(&template, definition, "SystemLogLevel");
        let system = system.as_deref();
        assert!(
            matches!(system, Some("INFO" | "DEBUG")),
            "{function}: SystemLogLevel {system:?}"
        );
        // Metric lines carry no level, which Lambda reads as INFO: never filter above it.
        let application = logging(&template, definition, "ApplicationLogLevel");
        let application = application.as_deref();
        assert!(
            matches!(application, None | Some("TRACE" | "DEBUG" | "INFO")),
            "{function}: ApplicationLogLevel {application:?} would drop the metric lines"
        );
    }
    let namespace = &template["Globals"]["Function"]["Environment"]["Variables"]["WEBHOOKS_METRICS_NAMESPACE"];
    assert_eq!(
        intrinsic(namespace).map(|(function, text)| (function, text.as_str())),
        Some(("Sub".to_owned(), Some("Webhooks/${AWS::StackName}")))
    );
}

#[test]
fn every_alarm_and_custom_metric_is_in_the_runbook() {
    let template = template();
    let runbook = repository_file("docs/operations.md");
    let headings: BTreeSet<&str> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(str::trim)
        .collect();
    for (name, (_, alarm)) in alarms(&template) {
        let title = alarm_name(alarm);
        assert!(
            headings.contains(title.as_str()),
            "{name}: docs/operations.md has no `### {title}` entry"
        );
        let description = alarm["Properties"]["AlarmDescription"].as_str().unwrap();
        assert!(
            description.contains(&format!("docs/operations.md#{title}")),
            "{name}: its description does not link its runbook entry"
        );
    }
    for metric in CUSTOM_METRICS {
        assert!(
            runbook.contains(&format!("| `{metric}` |")),
            "docs/operations.md does not list {metric}"
        );
    }
}
