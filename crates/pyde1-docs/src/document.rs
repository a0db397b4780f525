//! Typed snapshots (`ipc_schema::command::Document`) → pyDE1's HTTP GET documents.
//!
//! Documents are [`serde_json::Value`]s; [`crate::pyjson::to_pretty`] writes them as
//! pyDE1 does (`json.dumps(doc, sort_keys=True, indent=4)`). The `mqtt` strings inside
//! `de1/state` and `*/availability` are the MQTT payloads published last, written by
//! [`crate::payload`].
//!
//! de1d adds one key pyDE1 does not have: `simulated` in `*/id` and `*/availability`, so
//! that a simulated machine is never mistaken for a real one (pyDE1 clients ignore keys
//! they do not know).

use ipc_schema::command::{
    Availability, Calibration, ConnectivityMode, Controls, De1Document, De1State, DeviceId,
    Document, FeatureFlags, FirmwareProgress, ReadOnce, Resource, ScaleDocument, Settings,
    ThermometerDocument, VersionBlock,
};
use serde_json::{json, Map, Value};

use crate::payload::{
    availability_name, availability_payload, firmware_state_name, state_update_payload,
};

/// pyDE1's resource and mapping versions, which de1d's documents follow.
pub const RESOURCE_VERSION: &str = "5.0.0";
pub const MAPPING_VERSION: &str = "7.0.0";

/// A typed document that does not belong to the resource asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("the controller answered a GET of {resource} with a {kind} document")]
    Mismatch { resource: String, kind: String },
}

/// Renders the GET document of `resource` from the controller's answer. `prune` is the
/// `http.prune_empty_nodes` setting: when false, keys pyDE1 declares but never reports are
/// rendered as `null` and empty aggregates as `{}`.
pub fn document(resource: Resource, doc: &Document, prune: bool) -> Result<Value, DocError> {
    use Resource as R;
    let mismatch = || DocError::Mismatch {
        resource: resource.to_string(),
        kind: format!("{:?}", doc.kind()),
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
    let mut v = json!({ "id": d.address.as_deref().unwrap_or(""), "name": d.name });
    if d.simulated {
        v["simulated"] = Value::Bool(true);
    }
    v
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

fn availability(a: &Availability) -> Value {
    let mut m = Map::new();
    m.insert("mode".into(), json!(availability_name(a.state)));
    if let Some(e) = &a.last_event {
        m.insert("mqtt".into(), Value::String(availability_payload(e)));
    }
    if a.simulated {
        m.insert("simulated".into(), Value::Bool(true));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::event::AvailabilityState;

    #[test]
    fn the_simulator_is_announced_and_real_devices_keep_pyde1_documents() {
        let real = DeviceId {
            address: Some("D9:B2:48:AA:BB:CC".into()),
            name: "DE1".into(),
            simulated: false,
        };
        assert_eq!(
            device_id(&real),
            json!({"id": "D9:B2:48:AA:BB:CC", "name": "DE1"})
        );
        let sim = DeviceId {
            simulated: true,
            ..real
        };
        assert_eq!(device_id(&sim)["simulated"], json!(true));
        let availability = |simulated| Availability {
            state: AvailabilityState::Ready,
            last_event: None,
            simulated,
        };
        assert!(super::availability(&availability(false))
            .get("simulated")
            .is_none());
        assert_eq!(
            super::availability(&availability(true))["simulated"],
            json!(true)
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
    fn a_mismatched_document_is_an_error() {
        let e =
            document(Resource::De1Id, &Document::Presence(Some(true)), true).expect_err("mismatch");
        assert!(matches!(e, DocError::Mismatch { .. }));
    }
}
