//! Every recorded pyDE1 profile vector, checked against de1d's encoder.
//!
//! Vectors are read from `<workspace>/tests/vectors/profiles/` (shipped with de1d) and,
//! when it exists, `<workspace>/../shared/reference/profiles/` (so vectors added there
//! are checked without copying them). Each `NAME.json` has a `NAME.expected.json`
//! recording what pyDE1 2.0.0 did with it.
//!
//! Accepted by pyDE1 (200): de1d accepts it and writes the same bytes, except the tail
//! frame. pyDE1 packs the tail's MaxTotalVolume (`target_volume | 0x8000`) little-endian
//! by mistake, so the firmware, which reads every GATT field big-endian, sees another
//! number (36 mL → `24 80` → 0x2480); de1d sends Decent de1app's tail instead
//! (MaxTotalVolume 0, no flags) and stops at volume in the app. The id, the fingerprint
//! (which pyDE1 computes over its own tail bytes) and the taken values must be equal.
//!
//! Rejected by pyDE1 (400, or 500 where pyDE1 crashed): de1d rejects it with a
//! `ProfileError` that names the offending field.
//!
//! One deliberate difference: pyDE1 accepts a profile with no steps; de1d refuses it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use de1_protocol::characteristic::Characteristic;
use de1_protocol::packets::frame_write::FrameWrite;
use de1_protocol::profile::{encode_profile, EncodedProfile, ProfileError};
use serde_json::Value;

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

struct Vector {
    label: String,
    source: Vec<u8>,
    expected: Value,
}

fn vector_dirs() -> Vec<PathBuf> {
    let root = Path::new(WORKSPACE);
    let mut dirs = vec![root.join("tests/vectors/profiles")];
    let shared = root.join("../shared/reference/profiles");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

fn load_dir(dir: &Path) -> Vec<Vector> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|path| {
            let expected_path = path.with_extension("expected.json");
            let label = format!(
                "{}/{}",
                dir.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                path.file_name().and_then(|n| n.to_str()).unwrap_or("?")
            );
            let source = fs::read(&path).unwrap_or_else(|e| panic!("{label}: {e}"));
            let expected_text = fs::read(&expected_path)
                .unwrap_or_else(|e| panic!("{label}: no {}: {e}", expected_path.display()));
            let expected = serde_json::from_slice(&expected_text)
                .unwrap_or_else(|e| panic!("{label}: bad expected file: {e}"));
            Vector {
                label,
                source,
                expected,
            }
        })
        .collect()
}

fn all_vectors() -> Vec<Vector> {
    vector_dirs().iter().flat_map(|d| load_dir(d)).collect()
}

/// `Some(number)` / `None` for a JSON number / null.
fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn check_accepted(v: &Vector, failures: &mut Vec<String>) {
    let steps_empty = serde_json::from_slice::<Value>(&v.source)
        .ok()
        .and_then(|j| j.get("steps").and_then(Value::as_array).map(Vec::is_empty))
        .unwrap_or(false);
    let result = encode_profile(&v.source);
    if steps_empty {
        // Deliberate difference: the machine has nothing to run.
        match result {
            Err(e) if e.path() == "steps" => {}
            other => failures.push(format!(
                "{}: a profile with no steps must be refused at `steps`, got {other:?}",
                v.label
            )),
        }
        return;
    }
    let p = match result {
        Ok(p) => p,
        Err(e) => {
            failures.push(format!("{}: pyDE1 accepted it, de1d says: {e}", v.label));
            return;
        }
    };
    let mut fail = |what: String| failures.push(format!("{}: {what}", v.label));
    let exp = &v.expected;

    let expected_writes: Vec<(String, String)> = exp["writes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|w| {
                    (
                        w["characteristic"].as_str().unwrap_or("").to_owned(),
                        w["hex"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let ours: Vec<(String, String)> = p
        .writes()
        .iter()
        .map(|(c, b)| (c.name().to_owned(), hex::encode(b)))
        .collect();
    if ours.len() != expected_writes.len() || ours.is_empty() {
        fail(format!(
            "{} writes, pyDE1 made {}",
            ours.len(),
            expected_writes.len()
        ));
        return;
    }
    let last = ours.len() - 1;
    for (i, (o, e)) in ours.iter().zip(&expected_writes).enumerate().take(last) {
        if o != e {
            fail(format!("write {i}: ours {o:?}, pyDE1 {e:?}"));
        }
    }
    check_tail(&p, &ours[last], &expected_writes[last], &mut fail);

    if exp["id"].as_str() != Some(p.id.as_str()) {
        fail(format!("id {} != pyDE1 {}", p.id, exp["id"]));
    }
    if exp["fingerprint"].as_str() != Some(p.fingerprint.as_str()) {
        fail(format!(
            "fingerprint {} != pyDE1 {}",
            p.fingerprint, exp["fingerprint"]
        ));
    }
    if opt_f64(&exp["target_weight"]) != p.target_weight {
        fail(format!(
            "target_weight {:?} != pyDE1 {}",
            p.target_weight, exp["target_weight"]
        ));
    }
    if opt_f64(&exp["target_volume"]) != Some(p.target_volume) {
        fail(format!(
            "target_volume {} != pyDE1 {}",
            p.target_volume, exp["target_volume"]
        ));
    }
    if opt_f64(&exp["tank_temperature"]) != p.tank_temperature {
        fail(format!(
            "tank_temperature {:?} != pyDE1 {}",
            p.tank_temperature, exp["tank_temperature"]
        ));
    }
    if exp["number_of_preinfuse_frames"].as_u64() != Some(u64::from(p.number_of_preinfuse_frames)) {
        fail(format!(
            "number_of_preinfuse_frames {} != pyDE1 {}",
            p.number_of_preinfuse_frames, exp["number_of_preinfuse_frames"]
        ));
    }
    let expected_mow: Option<Vec<Option<f64>>> = exp["move_on_weight_list"]
        .as_array()
        .map(|a| a.iter().map(opt_f64).collect());
    if expected_mow.as_ref() != Some(&p.move_on_weight_list) {
        fail(format!(
            "move_on_weight_list {:?} != pyDE1 {}",
            p.move_on_weight_list, exp["move_on_weight_list"]
        ));
    }
}

/// The tail: de1d sends de1app's form; pyDE1's little-endian form is reproduced for the
/// fingerprint and shown to mean something else to the firmware.
fn check_tail(
    p: &EncodedProfile,
    ours: &(String, String),
    pyde1: &(String, String),
    fail: &mut impl FnMut(String),
) {
    let n = p.header.number_of_frames;
    let de1app_tail = format!("{n:02x}00000000000000");
    if *ours
        != (
            Characteristic::FrameWrite.name().to_owned(),
            de1app_tail.clone(),
        )
    {
        fail(format!("tail {ours:?}, expected de1app's {de1app_tail}"));
    }
    if pyde1.1 != hex::encode(p.pyde1_tail()) {
        fail(format!(
            "pyDE1 tail {} not reproduced ({})",
            pyde1.1,
            hex::encode(p.pyde1_tail())
        ));
        return;
    }
    let Ok(bytes) = hex::decode(&pyde1.1) else {
        fail(format!("pyDE1 tail {} is not hex", pyde1.1));
        return;
    };
    // What pyDE1 meant: the volume's low ten bits plus "ignore preinfusion" (0x8000).
    let intended = ((p.target_volume.round_ties_even().rem_euclid(1024.0)) as u16) | 0x8000;
    assert_eq!(
        u16::from_le_bytes([bytes[1], bytes[2]]),
        intended,
        "pyDE1's tail is its intended value in little-endian order"
    );
    // What the firmware reads: the big-endian field, as every decoder does.
    match FrameWrite::decode(&bytes, Some(n)) {
        Ok(FrameWrite::Tail { frame, .. }) => {
            let seen = frame.max_total_volume.0;
            // Only byte-symmetric values (128, 385, 642, 899 mL) read the same both ways.
            if bytes[1] != bytes[2] && seen == intended {
                fail(format!(
                    "pyDE1 tail {seen:#06x} unexpectedly reads as intended"
                ));
            }
            if bytes[1] != bytes[2] {
                assert_ne!(
                    (
                        frame.max_total_volume.value(),
                        frame.max_total_volume.flags()
                    ),
                    (intended & 0x3FF, 0x8000),
                    "read big-endian, pyDE1's tail is another volume/flag combination"
                );
            }
        }
        other => fail(format!("pyDE1 tail does not decode as a tail: {other:?}")),
    }
    // de1d's own tail decodes to "no firmware volume limit".
    if let Some(FrameWrite::Tail { frame, .. }) = p.frames.last() {
        if frame.max_total_volume.0 != 0 {
            fail("de1d's tail sets a firmware volume limit".into());
        }
    }
}

/// The field a pyDE1 error message points at, where it can be told.
fn field_hint(pyde1_error: &str, source: &[u8]) -> Option<&'static str> {
    if serde_json::from_slice::<Value>(source).is_err() {
        return Some("profile");
    }
    let hints: [(&str, &str); 11] = [
        ("KeyError: 'steps'", "steps"),
        ("KeyError: 'version'", "version"),
        ("version", "version"),
        ("frame limit", "steps"),
        ("F8_1_7", ".seconds"),
        ("Unrecognized pump", ".pump"),
        ("Unrecognized sensor", ".sensor"),
        ("Unrecognized transition", ".transition"),
        ("Unrecognized exit condition", ".exit.condition"),
        ("Unrecognized exit type", ".exit.type"),
        (
            "KeyError: 'target_volume_count_start'",
            "target_volume_count_start",
        ),
    ];
    hints
        .iter()
        .find(|(needle, _)| pyde1_error.contains(needle))
        .map(|(_, field)| *field)
}

fn check_rejected(v: &Vector, failures: &mut Vec<String>) {
    let e: ProfileError = match encode_profile(&v.source) {
        Ok(p) => {
            failures.push(format!(
                "{}: pyDE1 rejected it ({}), de1d accepted it as {}",
                v.label, v.expected["pyde1_error"], p.fingerprint
            ));
            return;
        }
        Err(e) => e,
    };
    let msg = e.to_string();
    let path = e.path();
    let top_level = [
        "profile",
        "version",
        "steps",
        "target_volume_count_start",
        "target_volume",
        "target_weight",
        "tank_temperature",
    ];
    let names_a_field = top_level.contains(&path) || path.starts_with("steps[");
    if !names_a_field || !msg.starts_with(&format!("{path}: ")) || msg.contains('\n') {
        failures.push(format!(
            "{}: message does not name a field: {msg:?}",
            v.label
        ));
    }
    let pyde1_error = v.expected["pyde1_error"].as_str().unwrap_or("");
    if let Some(hint) = field_hint(pyde1_error, &v.source) {
        let ok = if hint.starts_with('.') {
            path.starts_with("steps[") && path.ends_with(hint)
        } else {
            path == hint
        };
        if !ok {
            failures.push(format!(
                "{}: pyDE1 said {pyde1_error:?}; de1d blames {path:?} ({msg})",
                v.label
            ));
        }
    }
}

#[test]
fn every_reference_profile_matches_pyde1() {
    let vectors = all_vectors();
    let mut failures = Vec::new();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for v in &vectors {
        let status = v.expected["pyde1_http_status"].as_u64().unwrap_or(0);
        *counts.entry(status).or_default() += 1;
        match status {
            200 => check_accepted(v, &mut failures),
            400..=599 => check_rejected(v, &mut failures),
            other => failures.push(format!("{}: unknown pyde1_http_status {other}", v.label)),
        }
    }
    eprintln!(
        "checked {} profile vectors by pyDE1 status: {counts:?}",
        vectors.len()
    );
    assert!(
        counts.get(&200).copied().unwrap_or(0) > 0 && counts.keys().any(|s| *s >= 400),
        "the shipped vectors include accepted and rejected profiles: {counts:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} vectors differ:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn shipped_vectors_are_present() {
    let shipped = load_dir(&Path::new(WORKSPACE).join("tests/vectors/profiles"));
    assert!(
        shipped.len() >= 38,
        "expected the 38 shipped vectors, found {}",
        shipped.len()
    );
}
