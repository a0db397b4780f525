//! Request bodies → typed commands, with the field path of the first problem.
//!
//! Everything a request carries is checked here, completely, before any command is sent:
//! a body that fails anywhere produces no change at all.

use ipc_schema::command::{Change, ProfileId};
use ipc_schema::event::DeviceRole;
use pyde1_docs::mapping::Node;
use pyde1_docs::patch::{self as docs_patch, PatchError};
use serde_json::Value;

use crate::error::ApiError;

pub use pyde1_docs::patch::{describe, Json};

/// Parses a JSON body (PATCH, `PUT de1/profile/id`).
pub fn parse_json(body: &[u8]) -> Result<Json, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the body is empty; expected a JSON object",
        ));
    }
    docs_patch::parse(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}")))
}

/// Validates a PATCH body against the resource's mapping and returns the changes in body
/// order. `{}` is valid and yields no change.
pub fn patch(node: &Node, body: &[u8]) -> Result<Vec<Change>, ApiError> {
    let doc = parse_json(body)?;
    docs_patch::changes(node, &doc).map_err(field_error)
}

fn field_error(e: PatchError) -> ApiError {
    ApiError::field(e.kind, e.path, e.message)
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
