//! Typed snapshots → pyDE1's JSON documents, and the JSON text pyDE1 writes.
//!
//! pyDE1 answers with `json.dumps(doc, sort_keys=True, indent=4) + "\n"`; [`to_pretty`]
//! writes the same text (sorted keys, four-space indent, `\uXXXX` for non-ASCII, Python's
//! float notation). The `mqtt` strings inside `de1/state` and `*/availability` are the
//! compact MQTT payloads pyDE1 published last ([`state_update_payload`],
//! [`availability_payload`]).

use ipc_schema::command::{
    Availability, Calibration, ConnectivityMode, Controls, De1Document, De1State, DeviceId,
    Document, FeatureFlags, FirmwareProgress, ReadOnce, Resource, ScaleDocument, Settings,
    ThermometerDocument, VersionBlock,
};
use ipc_schema::event::{
    AvailabilityState, DeviceAvailability, DeviceRole, FirmwareUploadState, ScaleClass, Sender,
    StateUpdate,
};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

/// pyDE1's resource and mapping versions, which de1d's documents follow.
pub const RESOURCE_VERSION: &str = "5.0.0";
pub const MAPPING_VERSION: &str = "7.0.0";

/// Renders the GET document of `resource` from the controller's answer. `prune` is the
/// `http.prune_empty_nodes` setting: when false, keys pyDE1 declares but never reports are
/// rendered as `null` and empty aggregates as `{}`.
pub fn document(resource: Resource, doc: &Document, prune: bool) -> Result<Value, ApiError> {
    use Resource as R;
    let mismatch = || {
        ApiError::internal(format!(
            "the controller answered a GET of {resource} with a {:?} document",
            doc.kind()
        ))
    };
    Ok(match (resource, doc) {
        (R::De1, Document::De1(d)) => de1(d, prune),
        (R::De1Id | R::ThermometerId, Document::DeviceId(d)) => device_id(d),
        (R::ScaleId, Document::DeviceId(d)) => scale_id(d, prune),
        (R::De1State, Document::De1State(s)) => state(s),
        (R::De1FeatureFlags, Document::FeatureFlags(f)) => json!({ "feature_flags": flags(f) }),
        (R::De1ProfileId, Document::ProfileId(id)) => json!({ "id": id.map(hex::encode) }),
        (R::De1Firmware, Document::FirmwareProgress(p)) => firmware(p),
        (R::De1FirmwareId, Document::FirmwareId(id)) => json!({ "id": id }),
        (
            R::De1Availability | R::ScaleAvailability | R::ThermometerAvailability,
            Document::Availability(a),
        ) => availability(a),
        (R::De1Connectivity | R::ScaleConnectivity, Document::Connectivity(c)) => connectivity(*c),
        (R::De1Control, Document::Controls(c)) => controls(c, prune),
        (R::De1ControlEspresso, Document::Controls(c)) => espresso(c),
        (R::De1ControlSteam, Document::Controls(c)) => steam(c, prune),
        (R::De1ControlHotWater, Document::Controls(c)) => hot_water(c),
        (R::De1ControlHotWaterRinse, Document::Controls(c)) => rinse(c, prune),
        (R::De1ControlTankWaterThreshold, Document::Controls(c)) => {
            json!({ "temperature": c.tank_water_threshold.temperature })
        }
        (R::De1Setting, Document::Settings(s)) => settings(s),
        (R::De1SettingAutoOffTime, Document::Settings(s)) => json!({ "time": s.auto_off_time }),
        (R::De1SettingFanThreshold, Document::Settings(s)) => {
            json!({ "temperature": s.fan_threshold })
        }
        (R::De1SettingStartFillLevel, Document::Settings(s)) => {
            json!({ "start_fill_level": s.start_fill_level })
        }
        (R::De1SettingBeforeFlow, Document::Settings(s)) => before_flow(s),
        (R::De1SettingTargetGroupTemp, Document::Settings(s)) => {
            json!({ "temperature": s.target_group_temp })
        }
        (R::De1SettingUsbOutlet, Document::Settings(s)) => json!({ "enabled": s.usb_outlet }),
        (R::De1SettingRefillKit, Document::Settings(s)) => json!({ "present": s.refill_kit }),
        (R::De1SettingSteam, Document::Settings(s)) => steam_setting(s),
        (R::De1SettingTime, Document::Settings(s)) => json!({ "timestamp": s.time }),
        (R::De1Calibration, Document::Calibration(c)) => calibration(c),
        (R::De1CalibrationLineFrequency, Document::Calibration(c)) => {
            json!({ "hz": c.line_frequency })
        }
        (R::De1CalibrationFlowMultiplier, Document::Calibration(c)) => {
            json!({ "multiplier": c.flow_multiplier })
        }
        (R::De1ReadOnceValues, Document::ReadOnce(r)) => read_once(r),
        (R::De1Presence, Document::Presence(p)) => json!({ "user": p }),
        (R::Scale, Document::Scale(s)) => scale(s, prune),
        (R::Thermometer, Document::Thermometer(t)) => thermometer(t),
        _ => return Err(mismatch()),
    })
}

fn de1(d: &De1Document, prune: bool) -> Value {
    let mut m = Map::new();
    m.insert("availability".into(), availability(&d.availability));
    m.insert("calibration".into(), calibration(&d.calibration));
    m.insert("connectivity".into(), connectivity(d.connectivity));
    m.insert("control".into(), controls(&d.control, prune));
    m.insert("id".into(), device_id(&d.id));
    m.insert("read_once".into(), read_once(&d.read_once));
    m.insert("setting".into(), settings(&d.setting));
    m.insert("state".into(), state(&d.state));
    if !prune {
        m.insert("mode".into(), json!({ "mode": null }));
        m.insert("parameter_set".into(), json!({}));
    }
    Value::Object(m)
}

fn device_id(d: &DeviceId) -> Value {
    json!({ "id": d.address.as_deref().unwrap_or(""), "name": d.name })
}

fn scale_id(d: &DeviceId, prune: bool) -> Value {
    let mut v = device_id(d);
    if !prune {
        v["type"] = Value::Null;
    }
    v
}

fn state(s: &De1State) -> Value {
    let mut m = Map::new();
    if let Some(u) = &s.last_update {
        m.insert("mqtt".into(), Value::String(state_update_payload(u)));
    }
    m.insert(
        "state".into(),
        json!({
            "last_updated": s.last_updated,
            "state": s.state.as_str(),
            "substate": s.substate.as_str(),
        }),
    );
    Value::Object(m)
}

fn flags(f: &FeatureFlags) -> Value {
    json!({
        "allow_usb_charging": f.allow_usb_charging,
        "app_feature_flag_user_present": f.app_feature_flag_user_present,
        "fw_version": f.fw_version,
        "ghc_active": f.ghc_active,
        "hot_water_flow_control": f.hot_water_flow_control,
        "last_mmr0x80": f.last_mmr0x80,
        "mmr_max_shot_press": f.mmr_max_shot_press,
        "mmr_pref_ghc_mci": f.mmr_pref_ghc_mci,
        "refill_kit_present": f.refill_kit_present,
        "rinse_control": f.rinse_control,
        "safe_to_read_mmr_continuous": f.safe_to_read_mmr_continuous,
        "sched_idle": f.sched_idle,
        "skip_to_next": f.skip_to_next,
        "steam_purge_mode": f.steam_purge_mode,
        "user_present": f.user_present,
    })
}

fn firmware(p: &FirmwareProgress) -> Value {
    json!({
        "running": p.running,
        "state": p.last.map(|u| firmware_state_name(u.state)),
        "total": p.last.map_or(0, |u| u.total),
        "uploaded": p.last.map_or(0, |u| u.uploaded),
    })
}

/// `FirmwareUpload.state` as published.
pub fn firmware_state_name(s: FirmwareUploadState) -> &'static str {
    match s {
        FirmwareUploadState::Starting => "starting",
        FirmwareUploadState::Uploading => "uploading",
        FirmwareUploadState::Completed => "completed",
        FirmwareUploadState::Failed => "failed",
        FirmwareUploadState::Canceled => "canceled",
    }
}

fn availability(a: &Availability) -> Value {
    let mut m = Map::new();
    m.insert("mode".into(), json!(availability_name(a.state)));
    if let Some(e) = &a.last_event {
        m.insert("mqtt".into(), Value::String(availability_payload(e)));
    }
    Value::Object(m)
}

fn connectivity(c: ConnectivityMode) -> Value {
    json!({ "mode": match c {
        ConnectivityMode::NotConnected => "not_connected",
        ConnectivityMode::Connected => "connected",
        ConnectivityMode::Ready => "ready",
    }})
}

fn controls(c: &Controls, prune: bool) -> Value {
    json!({
        "espresso": espresso(c),
        "hot_water": hot_water(c),
        "hot_water_rinse": rinse(c, prune),
        "steam": steam(c, prune),
        "tank_water_threshold": { "temperature": c.tank_water_threshold.temperature },
    })
}

fn espresso(c: &Controls) -> Value {
    let e = &c.espresso;
    json!({
        "disable_auto_tare": e.disable_auto_tare,
        "first_drops_threshold": e.first_drops_threshold,
        "last_drops_minimum_time": e.last_drops_minimum_time,
        "move_on_weight": e.move_on_weight,
        "profile_can_override_stop_limits": e.profile_can_override_stop_limits,
        "profile_can_override_tank_temperature": e.profile_can_override_tank_temperature,
        "stop_at_time": e.stop_at_time,
        "stop_at_volume": e.stop_at_volume,
        "stop_at_weight": e.stop_at_weight,
    })
}

fn steam(c: &Controls, prune: bool) -> Value {
    let mut v = json!({
        "disable_auto_tare": c.steam.disable_auto_tare,
        "stop_at_time": c.steam.stop_at_time,
    });
    if !prune {
        v["stop_at_volume"] = Value::Null;
        v["stop_at_weight"] = Value::Null;
    }
    v
}

fn hot_water(c: &Controls) -> Value {
    let h = &c.hot_water;
    json!({
        "disable_auto_tare": h.disable_auto_tare,
        "stop_at_time": h.stop_at_time,
        "stop_at_volume": h.stop_at_volume,
        "stop_at_weight": h.stop_at_weight,
        "temperature": h.temperature,
    })
}

fn rinse(c: &Controls, prune: bool) -> Value {
    let r = &c.hot_water_rinse;
    let mut v = json!({
        "disable_auto_tare": r.disable_auto_tare,
        "flow": r.flow,
        "stop_at_time": r.stop_at_time,
        "temperature": r.temperature,
    });
    if !prune {
        v["stop_at_volume"] = Value::Null;
        v["stop_at_weight"] = Value::Null;
    }
    v
}

fn settings(s: &Settings) -> Value {
    json!({
        "auto_off_time": { "time": s.auto_off_time },
        "before_flow": before_flow(s),
        "fan_threshold": { "temperature": s.fan_threshold },
        "refill_kit": { "present": s.refill_kit },
        "start_fill_level": { "start_fill_level": s.start_fill_level },
        "steam": steam_setting(s),
        "target_group_temp": { "temperature": s.target_group_temp },
        "time": { "timestamp": s.time },
        "usb_outlet": { "enabled": s.usb_outlet },
    })
}

fn before_flow(s: &Settings) -> Value {
    let b = &s.before_flow;
    json!({
        "heater_idle_temperature": b.heater_idle_temperature,
        "heater_phase1_flow": b.heater_phase1_flow,
        "heater_phase2_flow": b.heater_phase2_flow,
        "heater_phase2_timeout": b.heater_phase2_timeout,
    })
}

fn steam_setting(s: &Settings) -> Value {
    let st = &s.steam;
    json!({
        "flow": st.flow,
        "high_flow_time": st.high_flow_time,
        "purge_deferred": st.purge_deferred,
        "temperature": st.temperature,
    })
}

fn calibration(c: &Calibration) -> Value {
    json!({
        "flow_multiplier": { "multiplier": c.flow_multiplier },
        "line_frequency": { "hz": c.line_frequency },
    })
}

fn read_once(r: &ReadOnce) -> Value {
    json!({
        "cpu_board_model": r.cpu_board_model,
        "firmware_build_number": r.firmware_build_number,
        "firmware_model": r.firmware_model.map(model_name),
        "ghc_info": r.ghc_info.map(ghc_names),
        "heater_voltage": r.heater_voltage,
        "hw_config_hexstr": r.hw_config.map(hex::encode),
        "model_hexstr": r.model.map(hex::encode),
        "serial_number_hexstr": r.serial_number.map(hex::encode),
        "version_ble": version_block(&r.version_ble),
        "version_lv": version_block(&r.version_lv),
    })
}

fn version_block(v: &VersionBlock) -> Value {
    json!({
        "api": v.api,
        "blesha_hexstr": v.sha,
        "changes": v.changes,
        "commits": v.commits,
        "release": v.release,
    })
}

/// V13_MODEL as pyDE1 names it.
pub fn model_name(raw: u32) -> &'static str {
    match raw {
        0 => "UNSET",
        1 => "DE1",
        2 => "DE1PLUS",
        3 => "DE1PRO",
        4 => "DE1XL",
        5 => "DE1CAFE",
        6 => "DE1XXL",
        _ => "UNRECOGNIZED",
    }
}

/// GHC_INFO flag names, low bit first (as Python 3.11 lists them); `NONE_SET` when empty.
pub fn ghc_names(bits: u32) -> String {
    const NAMES: [(u32, &str); 4] = [
        (0x1, "LED_CONTROLLER_PRESENT"),
        (0x2, "TOUCH_CONTROLLER_PRESENT"),
        (0x4, "GHC_ACTIVE"),
        (0x8000_0000, "FACTORY_MODE"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "NONE_SET".to_owned()
    } else {
        names.join("|")
    }
}

fn scale(s: &ScaleDocument, prune: bool) -> Value {
    let mut v = json!({
        "availability": availability(&s.availability),
        "connectivity": connectivity(s.connectivity),
        "id": scale_id(&s.id, prune),
    });
    if !prune {
        v["display"] = json!({ "display_on": null });
        v["tare"] = json!({ "tare": null });
    }
    v
}

fn thermometer(t: &ThermometerDocument) -> Value {
    json!({
        "availability": availability(&t.availability),
        "id": device_id(&t.id),
    })
}

/// `*/availability` `mode` names.
pub fn availability_name(s: AvailabilityState) -> &'static str {
    match s {
        AvailabilityState::Initial => "initial",
        AvailabilityState::Unknown => "unknown",
        AvailabilityState::Capturing => "capturing",
        AvailabilityState::Captured => "captured",
        AvailabilityState::Ready => "ready",
        AvailabilityState::NotReady => "not ready",
        AvailabilityState::Releasing => "releasing",
        AvailabilityState::Released => "released",
    }
}

fn role_name(r: DeviceRole) -> &'static str {
    match r {
        DeviceRole::De1 => "de1",
        DeviceRole::Scale => "scale",
        DeviceRole::Thermometer => "thermometer",
        DeviceRole::Other => "other",
        DeviceRole::Unknown => "unknown",
    }
}

fn sender_name(s: Sender) -> &'static str {
    match s {
        Sender::De1 => "DE1",
        Sender::ScaleProcessor => "ScaleProcessor",
        Sender::FlowSequencer => "FlowSequencerImpl",
        Sender::BluetoothScanner => "BluetoothScanner",
        Sender::BlueDot => "BlueDOT",
        Sender::Scale(c) => match c {
            ScaleClass::Generic => "GenericScale",
            ScaleClass::AtomaxSkaleII => "AtomaxSkaleII",
            ScaleClass::AcaiaAcaia => "AcaiaAcaia",
            ScaleClass::AcaiaLunar => "AcaiaLunar",
            ScaleClass::AcaiaProch => "AcaiaProch",
            ScaleClass::AcaiaPearlS => "AcaiaPearlS",
            ScaleClass::AcaiaPyxis => "AcaiaPyxis",
            ScaleClass::FelicitaArc => "FelicitaArc",
        },
    }
}

/// The `StateUpdate` MQTT payload (version 1.0.0), keys in pyDE1's order.
pub fn state_update_payload(u: &StateUpdate) -> String {
    compact(&[
        ("arrival_time", json!(u.stamp.arrival_time)),
        ("create_time", json!(u.stamp.create_time)),
        ("state", json!(u.state.as_str())),
        ("substate", json!(u.substate.as_str())),
        ("previous_state", json!(u.previous_state.as_str())),
        ("previous_substate", json!(u.previous_substate.as_str())),
        ("is_error_state", json!(u.is_error_state)),
        ("version", json!("1.0.0")),
        ("event_time", json!(u.stamp.event_time)),
        ("sender", json!("DE1")),
        ("class", json!("StateUpdate")),
    ])
}

/// The `DeviceAvailability` MQTT payload (version 1.1.0), keys in pyDE1's order.
pub fn availability_payload(e: &DeviceAvailability) -> String {
    compact(&[
        ("arrival_time", json!(e.stamp.arrival_time)),
        ("create_time", json!(e.stamp.create_time)),
        ("state", json!(availability_name(e.state))),
        ("role", json!(role_name(e.role))),
        ("id", json!(e.id)),
        ("name", json!(e.name)),
        ("version", json!("1.1.0")),
        ("event_time", json!(e.stamp.event_time)),
        ("sender", json!(sender_name(e.sender))),
        ("class", json!("DeviceAvailability")),
    ])
}

/// The `version` document: pyDE1's keys where they make sense for de1d (no Python), plus
/// de1d's own version.
pub fn version() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    json!({
        "de1d_version": v,
        "mapping_version": MAPPING_VERSION,
        "module_versions": { "de1d": v },
        "platform": std::env::consts::OS,
        "resource_version": RESOURCE_VERSION,
        "source_data": null,
    })
}

// --- JSON text ------------------------------------------------------------------------

/// pyDE1's response text: sorted keys, 4-space indent (no trailing newline; callers add it).
pub fn to_pretty(v: &Value) -> String {
    let mut out = String::new();
    write_pretty(v, 0, &mut out);
    out
}

/// A whole response body: [`to_pretty`] plus the trailing newline.
pub fn body(v: &Value) -> String {
    let mut s = to_pretty(v);
    s.push('\n');
    s
}

fn write_pretty(v: &Value, depth: usize, out: &mut String) {
    const INDENT: &str = "    ";
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&INDENT.repeat(depth + 1));
                write_pretty(item, depth + 1, out);
            }
            out.push('\n');
            out.push_str(&INDENT.repeat(depth));
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&INDENT.repeat(depth + 1));
                write_string(k, out);
                out.push_str(": ");
                if let Some(item) = map.get(k) {
                    write_pretty(item, depth + 1, out);
                }
            }
            out.push('\n');
            out.push_str(&INDENT.repeat(depth));
            out.push('}');
        }
        other => write_scalar(other, out),
    }
}

/// Python's `json.dumps` default (compact with `", "` and `": "`), keys in the given order.
pub fn compact(entries: &[(&str, Value)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(k, &mut out);
        out.push_str(": ");
        write_compact(v, &mut out);
    }
    out.push('}');
    out
}

fn write_compact(v: &Value, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(k, out);
                out.push_str(": ");
                write_compact(item, out);
            }
            out.push('}');
        }
        other => write_scalar(other, out),
    }
}

fn write_scalar(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&python_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// A JSON string as Python writes it with `ensure_ascii`: non-ASCII as `\uXXXX`.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation outside
/// 1e-4 ≤ |x| < 1e16, always a decimal point or exponent.
pub fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            let (a, b) = digits.split_at(point as usize);
            format!("{a}.{b}")
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

/// `x-pyde1-timestamp`: epoch seconds as Python prints a float.
pub fn timestamp_header(epoch: f64) -> String {
    python_float(epoch)
}

/// `Last-Modified` in pyDE1's form, in UTC: `Tue, 24 Nov 2026 08:22:26 +0000`.
pub fn http_date(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::command::{MachineState, Substate};
    use ipc_schema::event::Stamp;

    #[test]
    fn floats_print_as_python_does() {
        for (x, s) in [
            (1.0, "1.0"),
            (36.5, "36.5"),
            (0.1, "0.1"),
            (1795508546.2630436, "1795508546.2630436"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5, "-2.5"),
            (0.0390625, "0.0390625"),
            (1e22, "1e+22"),
        ] {
            assert_eq!(python_float(x), s, "{x}");
        }
    }

    #[test]
    fn pretty_text_matches_python() {
        let v = json!({"b": [1, 2.0], "a": {}, "c": [], "d": {"y": null, "x": "é\n"}});
        assert_eq!(
            body(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        2.0\n    ],\n    \"c\": [],\n    \
             \"d\": {\n        \"x\": \"\\u00e9\\n\",\n        \"y\": null\n    }\n}\n"
        );
        assert_eq!(body(&json!([])), "[]\n");
    }

    #[test]
    fn payload_strings_follow_pyde1() {
        let u = StateUpdate {
            stamp: Stamp {
                arrival_time: 1795509511.7125478,
                create_time: 1795509511.7126415,
                event_time: 1795509511.712669,
            },
            state: MachineState::Idle,
            substate: Substate::NoState,
            previous_state: MachineState::Espresso,
            previous_substate: Substate::Flush,
            is_error_state: false,
        };
        assert_eq!(
            state_update_payload(&u),
            "{\"arrival_time\": 1795509511.7125478, \"create_time\": 1795509511.7126415, \
             \"state\": \"Idle\", \"substate\": \"NoState\", \"previous_state\": \"Espresso\", \
             \"previous_substate\": \"Flush\", \"is_error_state\": false, \"version\": \"1.0.0\", \
             \"event_time\": 1795509511.712669, \"sender\": \"DE1\", \"class\": \"StateUpdate\"}"
        );
        let a = DeviceAvailability {
            stamp: Stamp {
                arrival_time: 1795509487.7380426,
                create_time: 1795509487.7380593,
                event_time: 1795509487.7390344,
            },
            sender: Sender::Scale(ScaleClass::AtomaxSkaleII),
            state: AvailabilityState::Ready,
            role: DeviceRole::Scale,
            id: "CF:75:75:00:5C:A1".into(),
            name: "AtomaxSkaleII: Skale".into(),
        };
        assert_eq!(
            availability_payload(&a),
            "{\"arrival_time\": 1795509487.7380426, \"create_time\": 1795509487.7380593, \
             \"state\": \"ready\", \"role\": \"scale\", \"id\": \"CF:75:75:00:5C:A1\", \
             \"name\": \"AtomaxSkaleII: Skale\", \"version\": \"1.1.0\", \
             \"event_time\": 1795509487.7390344, \"sender\": \"AtomaxSkaleII\", \
             \"class\": \"DeviceAvailability\"}"
        );
    }

    #[test]
    fn names() {
        assert_eq!(ghc_names(0), "NONE_SET");
        assert_eq!(
            ghc_names(7),
            "LED_CONTROLLER_PRESENT|TOUCH_CONTROLLER_PRESENT|GHC_ACTIVE"
        );
        assert_eq!(model_name(2), "DE1PLUS");
        assert_eq!(model_name(99), "UNRECOGNIZED");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(1795508546.26), "Tue, 24 Nov 2026 08:22:26 +0000");
        assert_eq!(http_date(0.0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(http_date(951782400.0), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn a_mismatched_document_is_an_internal_error() {
        let e =
            document(Resource::De1Id, &Document::Presence(Some(true)), true).expect_err("mismatch");
        assert_eq!(e.status.as_u16(), 500);
    }
}
