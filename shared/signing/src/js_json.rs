//! JSON exactly as JavaScript's `JSON.stringify` writes it.
//!
//! Object keys keep their order (the workspace enables serde_json's `preserve_order`),
//! strings use the same escapes (`\"`, `\\`, `\b \f \n \r \t`, other control characters
//! as lowercase `\u00xx`, everything else including U+2028 written as is), and numbers
//! are formatted as `Number.prototype.toString` does (`1e+21`, `1e-7`, `-0` as `0`),
//! after the same conversion to a double that `JSON.parse` applies.

use serde_json::Value;

/// `JSON.stringify(value)` for a JSON value.
pub fn stringify(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Appends `JSON.stringify(value)` to `out`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Appends a number as JavaScript formats it; non-finite numbers become `null`, as in JS.
pub fn write_number(out: &mut String, number: f64) {
    if number.is_finite() {
        out.push_str(ryu_js::Buffer::new().format_finite(number));
    } else {
        out.push_str("null");
    }
}

/// Appends a quoted, escaped string as `JSON.stringify` writes it.
pub fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let mut clean_from = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[clean_from..i]);
        clean_from = i + 1;
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[clean_from..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_like_javascript() {
        let cases = [
            ("plain", r#""plain""#),
            ("quote\"back\\slash", r#""quote\"back\\slash""#),
            ("\u{8}\u{c}\n\r\t", r#""\b\f\n\r\t""#),
            ("\u{0}\u{1f}\u{7f}", "\"\\u0000\\u001f\u{7f}\""),
            ("line\u{2028}sep\u{2029}", "\"line\u{2028}sep\u{2029}\""),
            ("slash/é😀", "\"slash/é😀\""),
        ];
        for (input, expected) in cases {
            assert_eq!(stringify(&json!(input)), expected, "input {input:?}");
        }
    }

    #[test]
    fn formats_numbers_like_javascript() {
        let cases = [
            (json!(0.1), "0.1"),
            (json!(1e21), "1e+21"),
            (json!(1e-7), "1e-7"),
            (json!(-0.0), "0"),
            (json!(9_007_199_254_740_993u64), "9007199254740992"),
            (json!(123), "123"),
            (json!(-5.5), "-5.5"),
        ];
        for (input, expected) in cases {
            assert_eq!(stringify(&input), expected, "input {input}");
        }
    }

    #[test]
    fn parsed_numbers_are_correctly_rounded_as_in_javascript() {
        // Found by fuzzing: without serde_json's float_roundtrip, "6E84" parsed one ulp off.
        for (text, expected) in [
            ("6E84", "6e+84"),
            ("6.000000000000001e+84", "6.000000000000001e+84"),
            ("1.7976931348623157e308", "1.7976931348623157e+308"),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(stringify(&value), expected, "{text}");
        }
    }

    #[test]
    fn keeps_key_order_and_nests() {
        let value: Value = serde_json::from_str(r#"{"z":1,"a":[true,null,{"b":"c"}]}"#).unwrap();
        assert_eq!(stringify(&value), r#"{"z":1,"a":[true,null,{"b":"c"}]}"#);
    }
}
