//! Request bodies → typed commands, with the field path of the first problem.
//!
//! Everything a request carries is checked here, completely, before any command is sent:
//! a body that fails anywhere produces no change at all.

use std::fmt;

use ipc_schema::command::{Change, ProfileId};
use ipc_schema::event::DeviceRole;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::error::ApiError;
use crate::mapping::{Node, Ty};

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

/// Parses a JSON body (PATCH, `PUT de1/profile/id`).
pub fn parse_json(body: &[u8]) -> Result<Json, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}")))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}:{key}")
    }
}

/// Validates a PATCH body against the resource's mapping and returns the changes in body
/// order. `{}` is valid and yields no change.
pub fn patch(node: &Node, body: &[u8]) -> Result<Vec<Change>, ApiError> {
    let doc = parse_json(body)?;
    let mut changes = Vec::new();
    walk(node, &doc, "", &mut changes)?;
    Ok(changes)
}

fn walk(node: &Node, doc: &Json, path: &str, out: &mut Vec<Change>) -> Result<(), ApiError> {
    match node {
        Node::Object(fields) => {
            // A read-only document (`read_once`, `state`, `feature_flags`) cannot be
            // written, not even with `{}`; pyDE1's empty placeholders can.
            if !path.is_empty() && !fields.is_empty() && !node.is_writable() {
                return Err(ApiError::field(
                    "read_only",
                    path,
                    "this document cannot be written",
                ));
            }
            let Json::Object(entries) = doc else {
                let at = if path.is_empty() { "body" } else { path };
                return Err(ApiError::field(
                    "wrong_type",
                    at,
                    format!("expected an object, not {}", doc.kind()),
                ));
            };
            for (key, value) in entries {
                let here = join(path, key);
                let field = node.field(key).ok_or_else(|| {
                    ApiError::field("unknown_key", &here, format!("no key {key:?} here"))
                })?;
                walk(&field.node, value, &here, out)?;
            }
            Ok(())
        }
        Node::Leaf(leaf) => {
            let Some(write) = leaf.write else {
                return Err(ApiError::field(
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
                Err(r) => Err(ApiError::field(r.kind, path, r.message)),
            }
        }
    }
}

/// Checks one value against its type, nullability and range; returns it as a plain value.
fn check_value(ty: Ty, nullable: bool, doc: &Json, path: &str) -> Result<Value, ApiError> {
    let wrong = |expected: String| {
        ApiError::field(
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
            Json::Scalar(Value::String(s)) => Err(ApiError::field(
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
                return Err(ApiError::field(
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

fn in_range(x: f64, min: f64, max: f64, path: &str) -> Result<(), ApiError> {
    if x < min || x > max {
        Err(out_of_range(&x.to_string(), min, max, path))
    } else {
        Ok(())
    }
}

fn out_of_range(value: &str, min: f64, max: f64, path: &str) -> ApiError {
    ApiError::field(
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

/// `PUT scan`: the body is the bare role name (not JSON), e.g. `de1`.
pub fn scan_role(body: &[u8]) -> Result<DeviceRole, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("bad_value", "the body is not UTF-8 text"))?
        .trim();
    match text {
        "de1" => Ok(DeviceRole::De1),
        "scale" => Ok(DeviceRole::Scale),
        "thermometer" => Ok(DeviceRole::Thermometer),
        "other" => Ok(DeviceRole::Other),
        "unknown" => Ok(DeviceRole::Unknown),
        "" => Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; expected a device role: de1, scale, thermometer, other or unknown",
        )),
        other => Err(ApiError::field(
            "bad_value",
            "body",
            format!(
                "{other:?} is not a device role (de1, scale, thermometer, other or unknown; \
                 plain text, not JSON)"
            ),
        )),
    }
}

/// `PUT de1/profile/id`: `{"id": "<40 hex digits>"}`. An id that cannot be a profile id
/// is a 404, as an unknown one is.
pub fn profile_id(body: &[u8]) -> Result<ProfileId, ApiError> {
    let doc = parse_json(body)?;
    let Json::Object(entries) = &doc else {
        return Err(ApiError::field(
            "wrong_type",
            "body",
            format!("expected an object, not {}", doc.kind()),
        ));
    };
    let mut id = None;
    for (key, value) in entries {
        if key != "id" {
            return Err(ApiError::field(
                "unknown_key",
                key,
                format!("no key {key:?} here"),
            ));
        }
        match value {
            Json::Scalar(Value::String(s)) => id = Some(s.clone()),
            other => {
                return Err(ApiError::field(
                    "wrong_type",
                    "id",
                    format!("expected a string, not {}", other.kind()),
                ))
            }
        }
    }
    let id = id.ok_or_else(|| ApiError::field("missing_key", "id", "the profile id is missing"))?;
    let mut out = [0u8; 20];
    match hex::decode_to_slice(&id, &mut out) {
        Ok(()) => Ok(out),
        Err(_) => Err(ApiError::not_found(format!("no profile record for {id:?}"))),
    }
}

/// `PUT de1/profile` and `de1/profile/store`: the whole profile is validated and encoded
/// here first, so that a bad profile is refused before the controller sees it (the
/// controller encodes it again before writing).
pub fn profile(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; expected a JSON v2 profile",
        ));
    }
    match de1_protocol::profile::encode_profile(body) {
        Ok(_) => Ok(()),
        Err(e) => Err(ApiError::field(
            "invalid_profile",
            e.path().to_owned(),
            e.kind.to_string(),
        )),
    }
}

/// `PUT de1/firmware`: checks the image as the controller will.
pub fn firmware(image: &[u8]) -> Result<(), ApiError> {
    if image.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; expected a DE1 firmware image",
        ));
    }
    de1_protocol::firmware::FirmwareImage::parse(image.to_vec())
        .map(|_| ())
        .map_err(|e| ApiError::bad_request("invalid_firmware", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping;
    use ipc_schema::command::{
        CaptureRequest, ControlChange, Device, DeviceSelection, ModeRequest, SettingChange,
    };

    fn err(node: &Node, body: &str) -> ApiError {
        patch(node, body.as_bytes()).expect_err(body)
    }

    #[test]
    fn changes_come_in_body_order() {
        let body = r#"{"setting": {"fan_threshold": {"temperature": 42}},
                       "control": {"espresso": {"stop_at_weight": 33.3}},
                       "mode": {"mode": "Espresso"}}"#;
        let changes = patch(&mapping::DE1, body.as_bytes()).expect("valid");
        assert_eq!(
            changes,
            vec![
                Change::Setting(SettingChange::FanThreshold(42)),
                Change::Control(ControlChange::EspressoStopAtWeight(Some(33.3))),
                Change::Mode(ModeRequest::Espresso),
            ]
        );
    }

    #[test]
    fn stop_at_zero_means_none_and_null_is_accepted() {
        let c = patch(
            &mapping::CONTROL_ESPRESSO,
            br#"{"stop_at_weight": 0, "stop_at_time": null, "stop_at_volume": 40}"#,
        )
        .expect("valid");
        assert_eq!(
            c,
            vec![
                Change::Control(ControlChange::EspressoStopAtWeight(None)),
                Change::Control(ControlChange::EspressoStopAtTime(None)),
                Change::Control(ControlChange::EspressoStopAtVolume(Some(40.0))),
            ]
        );
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let e = err(&mapping::DE1, r#"{"setting": {"nope": {"x": 1}}}"#);
        assert_eq!(
            (e.kind, e.path.as_deref()),
            ("unknown_key", Some("setting:nope"))
        );
        let e = err(&mapping::CONTROL_ESPRESSO, r#"{"stop_at_weight": "abc"}"#);
        assert_eq!(
            (e.kind, e.path.as_deref()),
            ("wrong_type", Some("stop_at_weight"))
        );
        let e = err(&mapping::CONTROL_ESPRESSO, r#"{"stop_at_weight": true}"#);
        assert_eq!(e.kind, "wrong_type");
        let e = err(&mapping::CONTROL_ESPRESSO, r#"{"stop_at_weight": -3}"#);
        assert_eq!(
            (e.kind, e.path.as_deref()),
            ("out_of_range", Some("stop_at_weight"))
        );
        let e = err(&mapping::DE1_ID, r#"{"name": "x"}"#);
        assert_eq!((e.kind, e.path.as_deref()), ("read_only", Some("name")));
        let e = err(&mapping::DE1_SETTING, r#"{"steam": 5}"#);
        assert_eq!((e.kind, e.path.as_deref()), ("wrong_type", Some("steam")));
        let e = err(&mapping::CONTROL_ESPRESSO, "[1, 2]");
        assert_eq!((e.kind, e.path.as_deref()), ("wrong_type", Some("body")));
        let e = err(&mapping::SETTING_FAN_THRESHOLD, r#"{"temperature": 45.5}"#);
        assert_eq!(e.kind, "wrong_type");
        let e = err(&mapping::SETTING_STEAM, r#"{"temperature": 170}"#);
        assert_eq!(e.kind, "out_of_range");
        let e = err(&mapping::CALIBRATION_LINE_FREQUENCY, r#"{"hz": 55}"#);
        assert_eq!((e.kind, e.path.as_deref()), ("bad_value", Some("hz")));
        let e = err(&mapping::DE1_MODE, r#"{"mode": "espresso"}"#);
        assert_eq!((e.kind, e.path.as_deref()), ("bad_value", Some("mode")));
        let e = err(&mapping::DE1_MODE, r#"{"mode": 4}"#);
        assert_eq!(e.kind, "wrong_type");
        let e = err(&mapping::DE1_CONNECTIVITY, r#"{"mode": "ready"}"#);
        assert_eq!(e.kind, "bad_value");
        let e = err(&mapping::DE1_AVAILABILITY, r#"{"mode": "capture"}"#);
        assert_eq!(e.kind, "bad_value");
        let e = err(&mapping::CONTROL_ESPRESSO, r#"{"move_on_weight": ["a"]}"#);
        assert_eq!(e.path.as_deref(), Some("move_on_weight:0"));
        let e = err(
            &mapping::CONTROL_ESPRESSO,
            r#"{"stop_at_weight": 1, "stop_at_weight": 2}"#,
        );
        assert_eq!(e.kind, "invalid_json");
        let e = err(&mapping::CONTROL_ESPRESSO, "{bad");
        assert_eq!(e.kind, "invalid_json");
        let e = err(&mapping::CONTROL_ESPRESSO, "  ");
        assert_eq!(e.kind, "empty_body");
        let e = err(&mapping::CONTROL_STEAM, r#"{"stop_at_weight": 3}"#);
        assert_eq!(e.kind, "not_supported");
        let e = err(&mapping::DE1_FEATURE_FLAGS, r#"{"feature_flags": {}}"#);
        assert_eq!(e.kind, "read_only");
        let e = err(&mapping::EMPTY, r#"{"x": 1}"#);
        assert_eq!(e.kind, "unknown_key");
        let e = err(&mapping::DE1_ID, r#"{"id": "not an address"}"#);
        assert_eq!(e.kind, "bad_value");
        for e in [
            err(&mapping::DE1, r#"{"setting": {"nope": 1}}"#),
            err(&mapping::CONTROL_ESPRESSO, "[1, 2]"),
        ] {
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn a_late_error_rejects_the_whole_body() {
        let e = err(
            &mapping::DE1,
            r#"{"control": {"espresso": {"stop_at_weight": 30}}, "setting": {"steam": {"temperature": 200}}}"#,
        );
        assert_eq!(e.path.as_deref(), Some("setting:steam:temperature"));
    }

    #[test]
    fn device_requests() {
        let c = patch(&mapping::SCALE_ID, br#"{"id": "scan"}"#).expect("valid");
        assert_eq!(
            c,
            vec![Change::SelectDevice {
                device: Device::Scale,
                selection: DeviceSelection::Scan
            }]
        );
        let c = patch(&mapping::DE1_ID, br#"{"id": null}"#).expect("valid");
        assert!(matches!(
            c[..],
            [Change::SelectDevice {
                selection: DeviceSelection::Forget,
                ..
            }]
        ));
        let c = patch(&mapping::SCALE_AVAILABILITY, br#"{"mode": "C"}"#).expect("valid");
        assert_eq!(
            c,
            vec![Change::Availability {
                device: Device::Scale,
                request: CaptureRequest::Capture
            }]
        );
        let c = patch(&mapping::DE1_CONNECTIVITY, br#"{"mode": "not_connected"}"#).expect("ok");
        assert_eq!(
            c,
            vec![Change::Connectivity {
                device: Device::De1,
                request: CaptureRequest::Release
            }]
        );
        assert!(patch(&mapping::SCALE_TARE, br#"{"tare": false}"#)
            .expect("valid")
            .is_empty());
        assert_eq!(
            patch(&mapping::SCALE_TARE, br#"{"tare": true}"#).expect("valid"),
            vec![Change::ScaleTare]
        );
    }

    #[test]
    fn move_on_weight_is_trimmed() {
        let c = patch(
            &mapping::CONTROL_ESPRESSO,
            br#"{"move_on_weight": [null, 5.5, 12, null, 0]}"#,
        )
        .expect("valid");
        assert_eq!(
            c,
            vec![Change::Control(ControlChange::EspressoMoveOnWeight(vec![
                None,
                Some(5.5),
                Some(12.0)
            ]))]
        );
    }

    #[test]
    fn raw_put_bodies() {
        assert_eq!(scan_role(b"de1"), Ok(DeviceRole::De1));
        assert_eq!(scan_role(b"thermometer\n"), Ok(DeviceRole::Thermometer));
        assert_eq!(scan_role(b"\"de1\"").map_err(|e| e.kind), Err("bad_value"));
        assert_eq!(scan_role(b"").map_err(|e| e.kind), Err("empty_body"));
        assert_eq!(
            scan_role(&[0xff, 0xfe]).map_err(|e| e.kind),
            Err("bad_value")
        );

        let id = "a402a58a478df7e83740fdb8b43c2ff2ee6fa90b";
        let parsed = profile_id(format!("{{\"id\": \"{id}\"}}").as_bytes()).expect("valid");
        assert_eq!(hex::encode(parsed), id);
        assert_eq!(
            profile_id(br#"{"id": "nonexistent"}"#).map_err(|e| e.status.as_u16()),
            Err(404)
        );
        assert_eq!(
            profile_id(br#"{"id": 5}"#).map_err(|e| e.kind),
            Err("wrong_type")
        );
        assert_eq!(
            profile_id(br#"{"ident": "x"}"#).map_err(|e| e.kind),
            Err("unknown_key")
        );
        assert_eq!(profile_id(b"{}").map_err(|e| e.kind), Err("missing_key"));

        assert_eq!(profile(b"").map_err(|e| e.kind), Err("empty_body"));
        assert_eq!(profile(b"[]").map_err(|e| e.kind), Err("invalid_profile"));
        assert_eq!(
            profile(br#"{"version": "1", "steps": []}"#).map_err(|e| e.kind),
            Err("invalid_profile")
        );
        assert_eq!(firmware(b"").map_err(|e| e.kind), Err("empty_body"));
        assert_eq!(
            firmware(&[0u8; 100]).map_err(|e| e.kind),
            Err("invalid_firmware")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let body = "[".repeat(100_000);
        assert_eq!(
            patch(&mapping::DE1, body.as_bytes()).map_err(|e| e.kind),
            Err("invalid_json")
        );
        let body = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
        assert!(patch(&mapping::DE1, body.as_bytes()).is_err());
    }
}
