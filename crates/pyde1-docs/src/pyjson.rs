//! JSON written the way Python's `json.dumps` writes it, so that payloads and documents
//! are byte-for-byte what pyDE1 clients have always received.
//!
//! Two forms: the default one of MQTT payloads ([`PyFormatter`], [`to_compact`]) and the
//! `sort_keys=True, indent=4` one of HTTP documents ([`to_pretty`]). Both share:
//!
//! * separators `", "` and `": "` (`","` at line ends when indented);
//! * floats as Python `repr` (shortest round-trip digits, always a `.` or an exponent,
//!   exponent form below 1e-4 and from 1e16 as `1e-05` / `1e+16`);
//! * `ensure_ascii`: every character outside printable ASCII is escaped as `\uXXXX`
//!   (surrogate pairs above U+FFFF).
//!
//! Non-finite floats are written as `null` (Python would write the invalid `NaN`).

use std::io::{self, Write};

use serde_json::ser::{CharEscape, Formatter};

/// A [`Formatter`] producing Python `json.dumps` output.
#[derive(Debug, Clone, Copy, Default)]
pub struct PyFormatter;

impl Formatter for PyFormatter {
    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_py_float(writer, value)
    }

    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        write_py_float(writer, f64::from(value))
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (' '..='~').contains(&c) {
                continue;
            }
            writer.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                write!(writer, "\\u{:04x}", unit)?;
            }
            start = i + c.len_utf8();
        }
        writer.write_all(&bytes[start..])
    }

    fn write_char_escape<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        // Same escapes as Python: \" \\ \b \f \n \r \t, others as \u00xx.
        let s: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(writer, "\\u{:04x}", byte),
        };
        writer.write_all(s)
    }
}

/// Python's `repr(float)` as a string (`null` if not finite).
pub fn py_float(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    // Writing into a Vec cannot fail.
    let _ = write_py_float(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// Serializes `value` in the compact form (keys in the order the value gives them).
pub fn to_compact_bytes<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// A [`serde_json::Value`] in the compact form (object keys in the map's order).
pub fn to_compact(value: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(128);
    write_value(value, None, 0, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// pyDE1's HTTP text: `json.dumps(v, sort_keys=True, indent=4)` (no trailing newline).
pub fn to_pretty(value: &serde_json::Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_value(value, Some(4), 0, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `s` as a JSON string with Python's escapes (`ensure_ascii`).
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, PyFormatter);
    // Strings always serialize, and a Vec never fails to grow.
    let _ = serde::Serialize::serialize(s, &mut ser);
}

/// `indent`: `None` for the compact form (keys in map order), `Some(n)` for the indented
/// form with sorted keys.
fn write_value(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut Vec<u8>) {
    use serde_json::Value;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        if let Some(n) = indent {
            out.push(b'\n');
            out.resize(out.len() + n * depth, b' ');
        }
    };
    let item_sep: &[u8] = if indent.is_some() { b"," } else { b", " };
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                let _ = write_py_float(out, n.as_f64().unwrap_or(f64::NAN));
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) if items.is_empty() => out.extend_from_slice(b"[]"),
        Value::Object(map) if map.is_empty() => out.extend_from_slice(b"{}"),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(item_sep);
                }
                newline(out, depth + 1);
                write_value(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            if indent.is_some() {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            out.push(b'{');
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(item_sep);
                }
                newline(out, depth + 1);
                write_str(k, out);
                out.extend_from_slice(b": ");
                write_value(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(b'}');
        }
    }
}

/// Writes `value` as Python's `repr(float)` would (`null` if not finite).
///
/// Ryu gives the same shortest round-trip digits as Python (ties to even included);
/// only the notation differs: Python switches to exponent form below 1e-4 (ryu below
/// 1e-5) and writes exponents with a sign and at least two digits (`1e-05`, `1e+16`).
pub fn write_py_float<W: ?Sized + Write>(writer: &mut W, value: f64) -> io::Result<()> {
    if !value.is_finite() {
        return writer.write_all(b"null");
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(value).as_bytes();
    let (sign, body) = match text.split_first() {
        Some((b'-', rest)) => (&b"-"[..], rest),
        _ => (&b""[..], text),
    };
    if let Some(e) = body.iter().position(|&b| b == b'e') {
        let (mantissa, exponent) = (&body[..e], &body[e + 1..]);
        let (exp_sign, exp_digits) = match exponent.split_first() {
            Some((b'-', rest)) => (b'-', rest),
            _ => (b'+', exponent),
        };
        writer.write_all(sign)?;
        writer.write_all(mantissa)?;
        writer.write_all(&[b'e', exp_sign])?;
        if exp_digits.len() < 2 {
            writer.write_all(b"0")?;
        }
        return writer.write_all(exp_digits);
    }
    // 0.0000ddd (1e-5 <= |value| < 1e-4) is d.dde-05 in Python.
    if let Some(digits) = body.strip_prefix(b"0.0000") {
        if digits.first().is_some_and(|d| *d != b'0') {
            writer.write_all(sign)?;
            writer.write_all(&digits[..1])?;
            if digits.len() > 1 {
                writer.write_all(b".")?;
                writer.write_all(&digits[1..])?;
            }
            return writer.write_all(b"e-05");
        }
    }
    writer.write_all(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    fn py(v: f64) -> String {
        let mut out = Vec::new();
        write_py_float(&mut out, v).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn dumps<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
        v.serialize(&mut ser).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    // Some literals are exact binary values written out in full on purpose.
    #[allow(clippy::excessive_precision)]
    fn floats_match_python_repr() {
        // Expected strings are Python 3 `repr` results.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (24.0, "24.0"),
            (150.0, "150.0"),
            (0.1, "0.1"),
            (4.699951171875, "4.699951171875"),
            (1795509487.313656, "1795509487.313656"),
            (1795509637.2086399, "1795509637.2086399"),
            (0.09999990952449526, "0.09999990952449526"),
            (1e-4, "0.0001"),
            (1.5e-4, "0.00015"),
            (1e-5, "1e-05"),
            (1.234e-5, "1.234e-05"),
            (-9.5e-5, "-9.5e-05"),
            (1e-6, "1e-06"),
            (-2.5e-7, "-2.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            // Exact ties between two shortest strings go to the even digit.
            (91.535064697265625, "91.53506469726562"),
            (0.3125, "0.3125"),
            (f64::MAX, "1.7976931348623157e+308"),
        ];
        for &(v, want) in cases {
            assert_eq!(py(v), want, "{v:?}");
        }
        assert_eq!(py(f64::NAN), "null");
        assert_eq!(py(f64::INFINITY), "null");
    }

    #[test]
    fn pretty_text_matches_python() {
        let v = serde_json::json!({"b": [1, 2.0], "a": {}, "c": [], "d": {"y": null, "x": "é\n"}});
        assert_eq!(
            to_pretty(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        2.0\n    ],\n    \"c\": [],\n    \
             \"d\": {\n        \"x\": \"\\u00e9\\n\",\n        \"y\": null\n    }\n}"
        );
        assert_eq!(to_pretty(&serde_json::json!([])), "[]");
        assert_eq!(py_float(1795508546.2630436), "1795508546.2630436");
    }

    #[test]
    fn compact_values_match_the_serializer() {
        let v = serde_json::json!({"a": [1, 2.5, null, {}], "b": "é\u{1F600}", "c": -3});
        assert_eq!(to_compact(&v), dumps(&v));
        assert_eq!(
            to_compact(&v),
            String::from_utf8(to_compact_bytes(&v).unwrap()).unwrap()
        );
    }

    #[test]
    fn separators_and_ascii_escapes_match_json_dumps() {
        let v = serde_json::json!({"a": [1, 2.5, null], "b": "é\u{1F600}\u{7f}\n\"\\/\u{1}"});
        assert_eq!(
            dumps(&v),
            r#"{"a": [1, 2.5, null], "b": "\u00e9\ud83d\ude00\u007f\n\"\\/\u0001"}"#
        );
    }
}
