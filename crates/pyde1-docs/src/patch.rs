//! pyDE1 PATCH bodies → typed [`Change`]s, with the field path of the first problem.
//!
//! The body is walked against the document's [`mapping`](crate::mapping): every key must
//! be declared and writable, every value of the declared type and range. A body that
//! fails anywhere produces no change at all. Used by the HTTP API for requests and by the
//! controller for `[de1] patch_on_connect`.

use std::fmt;

use ipc_schema::command::Change;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::mapping::{Node, Ty};

/// Why a PATCH body is refused: a machine-readable kind (`unknown_key`, `wrong_type`,
/// `out_of_range`, `bad_value`, `read_only`, `not_supported`), the `:`-separated path of
/// the offending key (`body` for the body itself) and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PatchError {
    pub kind: &'static str,
    pub path: String,
    pub message: String,
}

impl PatchError {
    pub fn new(kind: &'static str, path: impl Into<String>, message: impl Into<String>) -> Self {
        PatchError {
            kind,
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A JSON document that keeps the order of object keys (PATCH changes are applied in body
/// order) and refuses duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// null, a boolean, a number or a string.
    Scalar(Value),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The order-keeping form of a plain value (object keys in the value's order).
    pub fn from_value(v: &Value) -> Json {
        match v {
            Value::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            Value::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            ),
            other => Json::Scalar(other.clone()),
        }
    }

    /// The plain value (objects keep their keys, sorted).
    pub fn to_value(&self) -> Value {
        match self {
            Json::Scalar(v) => v.clone(),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }

    /// What kind of JSON value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Scalar(Value::Null) => "null",
            Json::Scalar(Value::Bool(_)) => "a boolean",
            Json::Scalar(Value::Number(n)) if n.is_f64() => "a non-integer number",
            Json::Scalar(Value::Number(_)) => "an integer",
            Json::Scalar(Value::String(_)) => "a string",
            Json::Scalar(_) => "a value",
            Json::Array(_) => "a list",
            Json::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Scalar(Value::Null))
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Scalar(Value::Null))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Scalar(Value::Bool(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Scalar(Value::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Scalar(Value::from(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v)
            .map(|n| Json::Scalar(Value::Number(n)))
            .ok_or_else(|| E::custom("number is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Scalar(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Scalar(Value::String(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut out: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value()?;
            out.push((key, value));
        }
        Ok(Json::Object(out))
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}:{key}")
    }
}

/// Validates a parsed PATCH body against a document's mapping and returns the changes in
/// body order. `{}` is valid and yields no change. Nothing is returned unless the whole
/// body is valid.
pub fn changes(node: &Node, doc: &Json) -> Result<Vec<Change>, PatchError> {
    let mut changes = Vec::new();
    walk(node, doc, "", &mut changes)?;
    Ok(changes)
}

/// [`changes`] for a [`serde_json::Value`] (a configuration table, for instance). Object
/// keys are taken in the value's order, which is sorted unless serde_json keeps order.
pub fn changes_from_value(node: &Node, value: &Value) -> Result<Vec<Change>, PatchError> {
    changes(node, &Json::from_value(value))
}

/// The changes of a document applied like `PATCH /de1` (e.g. the `[de1] patch_on_connect`
/// table of the configuration): any serializable value, checked against the whole DE1
/// mapping.
pub fn de1_changes<T: serde::Serialize + ?Sized>(doc: &T) -> Result<Vec<Change>, PatchError> {
    let value = serde_json::to_value(doc)
        .map_err(|e| PatchError::new("wrong_type", "body", format!("not a JSON document: {e}")))?;
    changes_from_value(&crate::mapping::DE1, &value)
}

/// Parses a JSON text into an order-keeping [`Json`] (duplicate keys are refused).
pub fn parse(text: &[u8]) -> Result<Json, serde_json::Error> {
    serde_json::from_slice(text)
}

fn walk(node: &Node, doc: &Json, path: &str, out: &mut Vec<Change>) -> Result<(), PatchError> {
    match node {
        Node::Object(fields) => {
            // A read-only document (`read_once`, `state`, `feature_flags`) cannot be
            // written, not even with `{}`; pyDE1's empty placeholders can.
            if !path.is_empty() && !fields.is_empty() && !node.is_writable() {
                return Err(PatchError::new(
                    "read_only",
                    path,
                    "this document cannot be written",
                ));
            }
            let Json::Object(entries) = doc else {
                let at = if path.is_empty() { "body" } else { path };
                return Err(PatchError::new(
                    "wrong_type",
                    at,
                    format!("expected an object, not {}", doc.kind()),
                ));
            };
            for (key, value) in entries {
                let here = join(path, key);
                let field = node.field(key).ok_or_else(|| {
                    PatchError::new("unknown_key", &here, format!("no key {key:?} here"))
                })?;
                walk(&field.node, value, &here, out)?;
            }
            Ok(())
        }
        Node::Leaf(leaf) => {
            let Some(write) = leaf.write else {
                return Err(PatchError::new(
                    "read_only",
                    path,
                    "this key cannot be written",
                ));
            };
            let value = check_value(leaf.input_ty(), leaf.nullable, doc, path)?;
            match write(&value) {
                Ok(Some(change)) => {
                    out.push(change);
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(r) => Err(PatchError::new(r.kind, path, r.message)),
            }
        }
    }
}

/// Checks one value against its type, nullability and range; returns it as a plain value.
fn check_value(ty: Ty, nullable: bool, doc: &Json, path: &str) -> Result<Value, PatchError> {
    let wrong = |expected: String| {
        PatchError::new(
            "wrong_type",
            path,
            format!(
                "expected {expected}{}, not {}",
                if nullable { " or null" } else { "" },
                doc.kind()
            ),
        )
    };
    if let Json::Scalar(Value::Null) = doc {
        return if nullable {
            Ok(Value::Null)
        } else {
            Err(wrong(describe(ty)))
        };
    }
    match ty {
        Ty::Number { min, max } => {
            let Json::Scalar(Value::Number(n)) = doc else {
                return Err(wrong(describe(ty)));
            };
            let x = n.as_f64().ok_or_else(|| wrong(describe(ty)))?;
            in_range(x, min, max, path)?;
            Ok(Value::Number(n.clone()))
        }
        Ty::Integer { min, max } => {
            let Json::Scalar(Value::Number(n)) = doc else {
                return Err(wrong(describe(ty)));
            };
            let Some(i) = n.as_i64() else {
                if n.as_u64().is_some() {
                    return Err(out_of_range(&n.to_string(), min as f64, max as f64, path));
                }
                return Err(wrong(describe(ty)));
            };
            if i < min || i > max {
                return Err(out_of_range(&i.to_string(), min as f64, max as f64, path));
            }
            Ok(Value::from(i))
        }
        Ty::Bool => match doc {
            Json::Scalar(v @ Value::Bool(_)) => Ok(v.clone()),
            _ => Err(wrong(describe(ty))),
        },
        Ty::String => match doc {
            Json::Scalar(v @ Value::String(_)) => Ok(v.clone()),
            _ => Err(wrong(describe(ty))),
        },
        Ty::Enum(names) => match doc {
            Json::Scalar(Value::String(s)) if names.contains(&s.as_str()) => {
                Ok(Value::String(s.clone()))
            }
            Json::Scalar(Value::String(s)) => Err(PatchError::new(
                "bad_value",
                path,
                format!("{s:?} is not one of {}", quoted(names)),
            )),
            _ => Err(wrong(describe(ty))),
        },
        Ty::NumberList { max_len, min, max } => {
            let Json::Array(items) = doc else {
                return Err(wrong(describe(ty)));
            };
            if items.len() > max_len {
                return Err(PatchError::new(
                    "out_of_range",
                    path,
                    format!("at most {max_len} entries, not {}", items.len()),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let here = join(path, &i.to_string());
                out.push(check_value(Ty::Number { min, max }, true, item, &here)?);
            }
            Ok(Value::Array(out))
        }
    }
}

fn in_range(x: f64, min: f64, max: f64, path: &str) -> Result<(), PatchError> {
    if x < min || x > max {
        Err(out_of_range(&x.to_string(), min, max, path))
    } else {
        Ok(())
    }
}

fn out_of_range(value: &str, min: f64, max: f64, path: &str) -> PatchError {
    PatchError::new(
        "out_of_range",
        path,
        format!("{value} is out of range ({min}–{max})"),
    )
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A phrase for a type, e.g. `a number (0–10)`.
pub fn describe(ty: Ty) -> String {
    match ty {
        Ty::Number { min, max } if max >= 1.0e6 => format!("a number ≥ {min}"),
        Ty::Number { min, max } => format!("a number ({min}–{max})"),
        Ty::Integer { min, max } if max >= 1 << 31 => format!("an integer ≥ {min}"),
        Ty::Integer { min, max } => format!("an integer ({min}–{max})"),
        Ty::Bool => "true or false".into(),
        Ty::String => "a string".into(),
        Ty::Enum(names) => format!("one of {}", quoted(names)),
        Ty::NumberList { max_len, .. } => format!("a list of at most {max_len} numbers or nulls"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping;
    use ipc_schema::command::{ControlChange, SettingChange};

    #[test]
    fn a_value_patch_gives_typed_changes() {
        let v = serde_json::json!({
            "setting": {"fan_threshold": {"temperature": 42}},
            "control": {"espresso": {"stop_at_weight": 0}},
        });
        let c = changes_from_value(&mapping::DE1, &v).expect("valid");
        assert!(c.contains(&Change::Setting(SettingChange::FanThreshold(42))));
        assert!(c.contains(&Change::Control(ControlChange::EspressoStopAtWeight(None))));
    }

    #[test]
    fn the_documented_patch_on_connect_example_is_valid() {
        let v = serde_json::json!({
            "setting": {"auto_off_time": {"time": 30}, "steam": {"purge_deferred": true, "temperature": 160}},
            "control": {"espresso": {"profile_can_override_stop_limits": false}},
        });
        assert_eq!(de1_changes(&v).expect("valid").len(), 4);
    }

    #[test]
    fn errors_name_the_key() {
        let v = serde_json::json!({"setting": {"steam": {"temperature": 200}}});
        let e = changes_from_value(&mapping::DE1, &v).expect_err("out of range");
        assert_eq!(
            (e.kind, e.path.as_str()),
            ("out_of_range", "setting:steam:temperature")
        );
        let v = serde_json::json!({"settings": {}});
        let e = changes_from_value(&mapping::DE1, &v).expect_err("unknown");
        assert_eq!((e.kind, e.path.as_str()), ("unknown_key", "settings"));
        assert_eq!(e.to_string(), "settings: no key \"settings\" here");
    }

    #[test]
    fn parsed_bodies_keep_their_order_and_refuse_duplicates() {
        let doc = parse(br#"{"b": 1, "a": 2}"#).expect("valid");
        assert_eq!(
            doc,
            Json::Object(vec![
                ("b".into(), Json::Scalar(1.into())),
                ("a".into(), Json::Scalar(2.into()))
            ])
        );
        assert!(parse(br#"{"a": 1, "a": 2}"#).is_err());
    }
}
