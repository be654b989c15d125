//! Differential: `JSON.stringify`-exact output parses back with serde_json to the same value
//! (numbers compared as the doubles JavaScript would hold).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use webhooks_signing::js_json::stringify;

/// Numbers as JavaScript holds them: doubles.
fn as_doubles(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(as_doubles).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), as_doubles(v))).collect()),
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let written = stringify(&value);
    let parsed: Value = serde_json::from_str(&written).expect("our JSON parses");
    assert_eq!(as_doubles(&parsed), as_doubles(&value), "{written}");
    assert_eq!(stringify(&parsed), written, "stringify is stable");
});
