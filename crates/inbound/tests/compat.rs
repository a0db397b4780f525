//! Compatibility with pyDE1 2.0: the recorded request cases (`tests/vectors/http/`) replayed in
//! order against de1d, comparing status codes and document shapes (keys and JSON types)
//! with pyDE1's answers. Every deliberate difference is listed below by name, with its
//! reason; any other difference fails the test.
//!
//! The main tests run the real controller with the built-in simulated DE1 and scale
//! (real-time pace), repeating the recording's waits for device states. The fake
//! controller covers what the simulator does not start in (nothing connected, right
//! after a shot) and checks that requests inbound rejects never reach the controller.

mod common;

use common::*;
use ipc_schema::command::{CommandErrorKind, MachineState, Substate};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

/// Request cases where the simulated DE1 and scale, reached through the real controller,
/// answer differently from pyDE1's recording: (case, de1d's status, why).
const SIMULATOR_DIFFERENCES: &[(&str, u16, &str)] = &[];

/// Requests sent to the simulator before a case, where the recording assumed a device
/// state the simulator reaches differently: (before case, method, path, body, why).
const SIMULATOR_SETUP: &[(&str, &str, &str, &str, &str)] = &[
    (
        "mode_sleep",
        "PATCH",
        "/de1/control/tank_water_threshold",
        r#"{"temperature": 0}"#,
        "the recording's `tank_water_threshold` case asks for a 40 °C tank; the simulated \
         tank starts colder and heats too slowly, so every flow would wait in HeatWaterTank",
    ),
    (
        "mode_steam",
        "PATCH",
        "/de1/setting/steam",
        r#"{"purge_deferred": false}"#,
        "the recording's `steam_flow_etc` case defers the steam purge; the simulated DE1 then \
         waits in SteamPuff for a second stop (as the firmware does), pyDE1's peer went Idle",
    ),
];

/// De1d's simulator marks its devices with `"simulated": true` (in `id` and
/// `availability`): an addition pyDE1 does not have. Removed before comparing shapes,
/// after checking it is `true`.
fn without_simulated(v: &mut Value, at: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(s) = m.remove("simulated") {
                if s != Value::Bool(true) {
                    out.push(format!("{at}: \"simulated\" is {s}"));
                }
            }
            for (k, v) in m.iter_mut() {
                without_simulated(v, &format!("{at}.{k}"), out);
            }
        }
        Value::Array(a) => a
            .iter_mut()
            .for_each(|v| without_simulated(v, &format!("{at}[]"), out)),
        _ => {}
    }
}

/// How long a recorded wait for a device state may take in the simulator.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

/// Waits as the recording did after a case (`"after": {"wait": [what, value]}`): for a
/// machine state or substate, a connectivity, or a pause. Returns why it failed.
async fn wait_as_recorded(h: &Harness, wait: &Value) -> Result<(), String> {
    let (what, value) = (wait[0].as_str().unwrap_or_default(), &wait[1]);
    if what == "sleep" {
        let secs = value.as_f64().ok_or("a sleep without seconds")?;
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        return Ok(());
    }
    let (path, pointer) = match what {
        "state" => ("/de1/state", "/state/state"),
        "substate" => ("/de1/state", "/state/substate"),
        "connectivity" => ("/de1/connectivity", "/mode"),
        "scale_connectivity" => ("/scale/connectivity", "/mode"),
        other => return Err(format!("unknown recorded wait {other:?}")),
    };
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        let r = h.get(path).await;
        // A released device has no state document: its connectivity still answers.
        let now = if r.status == 200 {
            r.json().pointer(pointer).cloned().unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        if &now == value {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("{path} {pointer} is {now}, not {value}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The DE1 address pyDE1's recording used (in bodies that name the connected DE1).
fn recorded_de1_address() -> String {
    recorded_gets("connected")
        .iter()
        .find(|r| r["path"] == "/de1/id")
        .and_then(|r| r["json"]["id"].as_str())
        .expect("recorded /de1/id")
        .to_owned()
}

/// Replays every recorded request case against `h`; returns the problems found and the
/// listed differences that were applied. `extra` lists further expected differences.
/// With `live` (a real controller), the recording's waits for device states are repeated
/// and the recorded DE1 address in request bodies is replaced by the connected one.
async fn replay_requests(
    h: &Harness,
    extra: &[(&'static str, u16, &str)],
    live: bool,
) -> (Vec<String>, Vec<&'static str>) {
    let cases = recorded_requests();
    let kinds = controller_kinds();
    let mut problems = Vec::new();
    let mut differences_seen = Vec::new();
    let addresses = if live {
        let ours = h.get("/de1/id").await.json()["id"]
            .as_str()
            .expect("the connected DE1's address")
            .to_owned();
        Some((recorded_de1_address(), ours))
    } else {
        None
    };
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let method = case["method"].as_str().expect("method");
        let path = case["path"].as_str().expect("path");
        let mut body = body_of(case, &cases);
        if let (Some((theirs, ours)), Some(b)) = (&addresses, &body) {
            let text = String::from_utf8_lossy(b);
            if text.contains(theirs.as_str()) {
                body = Some(text.replace(theirs.as_str(), ours).into_bytes());
            }
        }
        if live {
            for (_, m, p, b, _) in SIMULATOR_SETUP.iter().filter(|s| s.0 == name) {
                let r = h.request(m, p, Some(b.as_bytes()), &[]).await;
                if r.status != 200 {
                    problems.push(format!("{name}: setup {m} {p}: {} {}", r.status, r.text()));
                }
            }
        }
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
        if live {
            if let Some(wait) = case.pointer("/after/wait") {
                if let Err(e) = wait_as_recorded(h, wait).await {
                    problems.push(format!("{name}: after {method} {path}: {e}"));
                }
            }
        }
        let difference = REQUEST_DIFFERENCES
            .iter()
            .chain(extra)
            .find(|d| d.0 == name);
        let expected = match (difference, case["status"].as_u64()) {
            (Some(d), _) => {
                differences_seen.push(d.0);
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
                let mut ours = resp.json();
                if live {
                    without_simulated(&mut ours, name, &mut problems);
                }
                compare_shape(name, &ours, theirs, &mut problems);
            }
        }
    }
    (problems, differences_seen)
}

/// The issue's compatibility test: de1d with the simulated DE1 and scale (the real
/// controller, in-process) answers the recorded requests as pyDE1 did.
#[tokio::test]
async fn recorded_requests_get_pyde1s_answers_from_the_simulator() {
    let h = start_simulated().await;
    let (problems, seen) = replay_requests(&h, SIMULATOR_DIFFERENCES, true).await;
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    eprintln!(
        "allowed {} times: {INT_FOR_FLOAT}",
        INT_FOR_FLOAT_USED.load(Ordering::Relaxed)
    );
    for d in REQUEST_DIFFERENCES.iter().chain(SIMULATOR_DIFFERENCES) {
        assert!(
            seen.contains(&d.0),
            "listed difference {} matches no case",
            d.0
        );
    }
}

/// The same cases against the fake controller, which starts with nothing connected as
/// the recording did, and also checks that what inbound rejects never reaches the
/// controller.
#[tokio::test]
async fn recorded_requests_get_pyde1s_answers_from_the_fake() {
    let h = start(|_, _| {}).await;
    if let Some(f) = &h.fake {
        // The recording starts with nothing connected, then selects both devices.
        f.set(FakeState::disconnected());
    }
    let (problems, seen) = replay_requests(&h, &[], false).await;
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
    assert_eq!(
        seen.len(),
        REQUEST_DIFFERENCES.len(),
        "a listed difference no longer matches a case"
    );
}

/// GETs every recorded resource of one situation; returns the problems found. With
/// `live`, the simulator's `"simulated"` marks are checked and removed first.
async fn check_gets(h: &Harness, situation: &str, live: bool) -> Vec<String> {
    let mut problems = Vec::new();
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
                let at = format!("{situation} {path}");
                let mut ours = resp.json();
                if live {
                    without_simulated(&mut ours, &at, &mut problems);
                }
                compare_shape(&at, &ours, theirs, &mut problems);
            }
        }
    }
    problems
}

/// Every resource, read from the simulated DE1 and scale through the real controller,
/// has pyDE1's status and shape (the recording's "connected" situation).
#[tokio::test]
async fn recorded_gets_get_pyde1s_answers_from_the_simulator() {
    let h = start_simulated().await;
    std::fs::write(h.log_dir.join("pyde1.log"), "a log line\n").expect("log file");
    let problems = check_gets(&h, "connected", true).await;
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

/// The situations the simulator does not start in (nothing connected; right after a
/// shot), from the fake controller.
#[tokio::test]
async fn recorded_gets_get_pyde1s_answers_from_the_fake() {
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
        problems.extend(check_gets(&h, situation, false).await);
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
