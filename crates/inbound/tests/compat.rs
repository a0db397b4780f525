//! Compatibility with pyDE1 2.0: the recorded request cases (`tests/vectors/http/`) replayed in
//! order against de1d, comparing status codes and document shapes (keys and JSON types)
//! with pyDE1's answers. Every deliberate difference is listed below by name, with its
//! reason; any other difference fails the test.

mod common;

use common::*;
use ipc_schema::command::{CommandErrorKind, MachineState, Substate};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Request cases where de1d answers differently on purpose: (case, de1d's status, why).
const REQUEST_DIFFERENCES: &[(&str, u16, &str)] = &[
    (
        "patch_bool_for_float",
        400,
        "a boolean is not a number: pyDE1 stores `true` as a stop-at weight and reports it back",
    ),
    (
        "patch_scalar_for_dict",
        400,
        "pyDE1 closes the connection without answering",
    ),
    (
        "mow_list",
        200,
        "move_on_weight is writable; pyDE1 2.0's validator rejects every list",
    ),
    (
        "put_profile_not_json",
        400,
        "a bad profile is the client's error: 400 with the reason, not 500 with a traceback",
    ),
    ("put_profile_version_1", 400, "as put_profile_not_json"),
    ("put_profile_no_version", 400, "as put_profile_not_json"),
    ("put_profile_no_steps", 400, "as put_profile_not_json"),
    ("put_profile_bad_pump", 400, "as put_profile_not_json"),
    ("put_profile_json_array", 400, "as put_profile_not_json"),
    (
        "put_profile_negative_pressure",
        400,
        "as put_profile_not_json; pyDE1 had already written the header and frame 0",
    ),
];

/// GET paths where de1d answers differently on purpose: (path, de1d's status, why).
const GET_DIFFERENCES: &[(&str, u16, &str)] = &[
    (
        "/scan/devices",
        501,
        "pyDE1 2.0 closes the connection without answering (the resource lost its mapping)",
    ),
    (
        "/de1/calibration/internal",
        501,
        "pyDE1 closes the connection without answering (declared, never implemented)",
    ),
    (
        "/de1/firmware/cancel",
        405,
        "pyDE1 closes the connection without answering; cancel is PUT only",
    ),
    (
        "/de1/firmware",
        200,
        "de1d addition: GET reports the firmware upload's progress (pyDE1: 405)",
    ),
];

/// GET paths whose document shape differs on purpose.
const SHAPE_DIFFERENCES: &[(&str, &str)] = &[
    (
        "/version",
        "de1d's own versions: `de1d_version` and `module_versions.de1d`; no Python keys",
    ),
    ("/log/pyde1.log", "a log file, not JSON"),
];

/// Shape differences allowed everywhere, by name and reason.
const INT_FOR_FLOAT: &str = "a float-valued key is always reported as a float: pyDE1 reports \
    back the integer a client wrote (`stop_at_weight: 20` after PATCH 20), de1d `20.0`";

/// How often [`INT_FOR_FLOAT`] was applied (reported, so that the difference stays visible).
static INT_FOR_FLOAT_USED: AtomicUsize = AtomicUsize::new(0);

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// Compares keys and JSON types; `null` matches any type (values differ between the
/// recording and the fake), and the `mqtt` strings may be absent on either side (they
/// exist only once an MQTT message of that kind was sent).
fn compare_shape(at: &str, ours: &Value, theirs: &Value, out: &mut Vec<String>) {
    match (ours, theirs) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().filter(|k| !b.contains_key(*k) && *k != "mqtt") {
                out.push(format!("{at}: de1d has extra key {k:?}"));
            }
            for k in b.keys().filter(|k| !a.contains_key(*k) && *k != "mqtt") {
                out.push(format!("{at}: de1d lacks key {k:?}"));
            }
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    compare_shape(&format!("{at}.{k}"), v, w, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                compare_shape(&format!("{at}[0]"), x, y, out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() && !b.is_f64() => {
            INT_FOR_FLOAT_USED.fetch_add(1, Ordering::Relaxed);
        }
        (a, b) if json_type(a) != json_type(b) => out.push(format!(
            "{at}: de1d has {} ({a}), pyDE1 {} ({b})",
            json_type(a),
            json_type(b)
        )),
        _ => {}
    }
}

fn controller_kinds() -> Vec<&'static str> {
    CommandErrorKind::ALL.iter().map(|k| k.as_str()).collect()
}

/// The body a recorded case sent (rebuilt when only its start was recorded).
fn body_of(case: &Value, cases: &[Value]) -> Option<Vec<u8>> {
    if let Some(b) = case["request_body"].as_str() {
        return Some(b.as_bytes().to_vec());
    }
    let len = case["request_body_length"].as_u64()? as usize;
    match case["name"].as_str() {
        Some("patch_too_large") => {
            let head = r#"{"stop_at_weight": 1.0, "pad": ""#;
            let mut s = String::from(head);
            s.push_str(&"x".repeat(len - head.len() - 2));
            s.push_str("\"}");
            Some(s.into_bytes())
        }
        Some("put_profile_21_steps") => {
            // The recorded profile with its three steps repeated to 21.
            let ok = cases
                .iter()
                .find(|c| c["name"] == "put_profile_ok")
                .and_then(|c| c["request_body"].as_str())
                .expect("put_profile_ok");
            let mut p: Value = serde_json::from_str(ok).expect("profile");
            let steps = p["steps"].as_array().expect("steps").clone();
            p["steps"] = Value::Array(steps.iter().cycle().take(21).cloned().collect());
            Some(serde_json::to_vec(&p).expect("json"))
        }
        other => panic!("no way to rebuild the body of {other:?}"),
    }
}

#[tokio::test]
async fn recorded_requests_get_pyde1s_answers() {
    let h = start(|_, _| {}).await;
    if let Some(f) = &h.fake {
        // The recording starts with nothing connected, then selects both devices.
        f.set(FakeState::disconnected());
    }
    let cases = recorded_requests();
    let kinds = controller_kinds();
    let mut problems = Vec::new();
    let mut differences_seen = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let method = case["method"].as_str().expect("method");
        let path = case["path"].as_str().expect("path");
        let body = body_of(case, &cases);
        let before = h.commands();
        let resp = if case["request_without_content_length"] == true {
            let mut raw =
                format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .into_bytes();
            raw.extend_from_slice(body.as_deref().unwrap_or_default());
            parse(&exchange(h.addr, &raw).await)
        } else {
            h.request(method, path, body.as_deref(), &[]).await
        };
        let difference = REQUEST_DIFFERENCES.iter().find(|d| d.0 == name);
        let expected = match (difference, case["status"].as_u64()) {
            (Some(d), _) => {
                differences_seen.push(name);
                u64::from(d.1)
            }
            (None, Some(s)) => s,
            (None, None) => panic!("{name}: pyDE1 gave no answer and no difference is listed"),
        };
        if u64::from(resp.status) != expected {
            problems.push(format!(
                "{name}: {method} {path}: status {} (expected {expected}) {}",
                resp.status,
                resp.text()
            ));
            continue;
        }
        if !resp.extra.is_empty() {
            problems.push(format!("{name}: more than one response"));
        }
        if resp.status >= 400 {
            let kind = resp.error_kind();
            if !kinds.contains(&kind.as_str()) && h.commands() != before {
                problems.push(format!(
                    "{name}: rejected by inbound ({kind}) but a command reached the controller"
                ));
            }
        } else if difference.is_none() {
            if let Some(theirs) = case.get("json") {
                compare_shape(name, &resp.json(), theirs, &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    eprintln!(
        "allowed {} times: {INT_FOR_FLOAT}",
        INT_FOR_FLOAT_USED.load(Ordering::Relaxed)
    );
    assert_eq!(
        differences_seen.len(),
        REQUEST_DIFFERENCES.len(),
        "a listed difference no longer matches a case"
    );
}

#[tokio::test]
async fn recorded_gets_get_pyde1s_answers() {
    let h = start(|_, _| {}).await;
    std::fs::write(h.log_dir.join("pyde1.log"), "a log line\n").expect("log file");
    let mut problems = Vec::new();
    for situation in ["disconnected", "connected", "after_shot"] {
        if let Some(f) = &h.fake {
            let mut s = match situation {
                "disconnected" => FakeState::disconnected(),
                _ => FakeState::connected(),
            };
            if situation == "after_shot" {
                s.controls.espresso.stop_at_weight = Some(24.0);
                s.current_profile = Some([0x50; 20]);
                s.state = MachineState::Espresso;
                s.substate = Substate::Flush;
                s.set_state(MachineState::Idle, Substate::NoState);
            }
            f.set(s);
        } else if situation != "connected" {
            continue;
        }
        for r in &recorded_gets(situation) {
            let path = r["path"].as_str().expect("path");
            let resp = h.get(path).await;
            let difference = GET_DIFFERENCES.iter().find(|d| d.0 == path);
            let expected = match (difference, r["status"].as_u64()) {
                (Some(d), _) => u64::from(d.1),
                (None, Some(s)) => s,
                (None, None) => panic!("{path}: pyDE1 gave no answer and no difference is listed"),
            };
            if u64::from(resp.status) != expected {
                problems.push(format!(
                    "{situation} GET {path}: status {} (expected {expected}) {}",
                    resp.status,
                    resp.text()
                ));
                continue;
            }
            if !resp.extra.is_empty() {
                problems.push(format!("{situation} GET {path}: more than one response"));
            }
            let shape_differs = SHAPE_DIFFERENCES.iter().any(|d| d.0 == path);
            if resp.status == 200 && difference.is_none() && !shape_differs {
                if let Some(theirs) = r.get("json") {
                    compare_shape(
                        &format!("{situation} {path}"),
                        &resp.json(),
                        theirs,
                        &mut problems,
                    );
                }
            }
        }
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

#[tokio::test]
async fn the_version_document_names_de1d_and_the_api_versions() {
    let h = start(|_, _| {}).await;
    let v = h.get("/version").await.json();
    assert_eq!(v["resource_version"], "5.0.0");
    assert_eq!(v["mapping_version"], "7.0.0");
    assert_eq!(v["de1d_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["module_versions"]["de1d"], env!("CARGO_PKG_VERSION"));
}
