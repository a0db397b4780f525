//! The typed GET documents (`ipc_schema::command::Document`) built from what the
//! controller knows, and the JSON text of the `update/de1/<area>` pushes.
//!
//! Values come from the DE1 mirror (never assumed), the sequencer's settings and the
//! controller-local settings. A value the DE1 has not reported (or that its firmware does
//! not have) is `None`.

use std::fmt::Write as _;

use de1_protocol::mmr::{MmrRegister as R, MmrValue};
use ipc_schema::command::{
    Availability, BeforeFlow, Calibration, ConnectivityMode, Controls, De1State, DeviceId,
    EspressoControl, FeatureFlags, HotWaterControl, HotWaterRinseControl, ReadOnce, Settings,
    SteamControl, SteamSetting, TankWaterThreshold, VersionBlock,
};
use ipc_schema::event::{AvailabilityState, StateUpdate};

use crate::de1::Mirror;
use crate::link::LinkStatus;
use crate::sequencer::SequencerSettings;

/// `*/id`.
pub fn device_id(status: &LinkStatus) -> DeviceId {
    DeviceId {
        address: status.address.as_ref().map(|a| a.to_string()),
        name: status.name.clone(),
    }
}

/// `*/availability`.
pub fn availability(status: &LinkStatus) -> Availability {
    Availability {
        state: status.availability,
        last_event: status.last_event.clone(),
    }
}

/// `*/connectivity`.
pub fn connectivity(status: &LinkStatus) -> ConnectivityMode {
    match status.availability {
        AvailabilityState::Ready => ConnectivityMode::Ready,
        AvailabilityState::Captured => ConnectivityMode::Connected,
        _ => ConnectivityMode::NotConnected,
    }
}

fn int(m: &Mirror, r: R) -> Option<u32> {
    match m.register(r)?.value {
        MmrValue::Integer(n) => Some(n),
        MmrValue::Number(x) if x >= 0.0 && x <= f64::from(u32::MAX) => Some(x as u32),
        _ => None,
    }
}

fn num(m: &Mirror, r: R) -> Option<f64> {
    m.register_f64(r)
}

fn flag(m: &Mirror, r: R) -> Option<bool> {
    if !m.features().has_register(r) {
        return None;
    }
    m.register_bool(r)
}

fn raw(m: &Mirror, r: R) -> Option<[u8; 4]> {
    match m.register(r)?.value {
        MmrValue::Raw(b) => Some(b),
        _ => None,
    }
}

/// `de1/state`.
pub fn de1_state(m: &Mirror, last_update: Option<StateUpdate>) -> Option<De1State> {
    let s = m.state?;
    Some(De1State {
        state: s.value.state,
        substate: s.value.substate,
        last_updated: s.updated,
        last_update,
    })
}

/// `de1/control`: the sequencer's values, and the DE1's for the limits it enforces.
pub fn controls(m: Option<&Mirror>, settings: &SequencerSettings) -> Controls {
    let shot = m.and_then(|m| m.shot_settings.map(|s| s.value));
    let e = &settings.espresso;
    let rinse_time = match m {
        Some(m) if m.features().rinse_control() => num(m, R::FlushTimeout).filter(|t| *t > 0.0),
        _ => settings.hot_water_rinse.stop_at_time,
    };
    Controls {
        espresso: EspressoControl {
            stop_at_time: e.stop_at_time,
            stop_at_volume: e.stop_at_volume,
            stop_at_weight: e.stop_at_weight,
            move_on_weight: e.move_on_weight.clone(),
            disable_auto_tare: e.disable_auto_tare,
            profile_can_override_stop_limits: e.profile_can_override_stop_limits,
            profile_can_override_tank_temperature: e.profile_can_override_tank_temperature,
            first_drops_threshold: e.first_drops_threshold,
            last_drops_minimum_time: e.last_drops_minimum_time,
        },
        steam: SteamControl {
            stop_at_time: shot.map(|s| s.target_steam_length),
            disable_auto_tare: settings.steam.disable_auto_tare,
        },
        hot_water: HotWaterControl {
            stop_at_time: shot.map(|s| s.target_hot_water_length),
            stop_at_volume: shot.map(|s| s.target_hot_water_vol),
            stop_at_weight: settings.hot_water.stop_at_weight,
            disable_auto_tare: settings.hot_water.disable_auto_tare,
            temperature: shot.map(|s| s.target_hot_water_temp),
        },
        hot_water_rinse: HotWaterRinseControl {
            stop_at_time: rinse_time,
            disable_auto_tare: settings.hot_water_rinse.disable_auto_tare,
            temperature: m.and_then(|m| num(m, R::FlushTemp)),
            flow: m.and_then(|m| num(m, R::FlushFlowRate)),
        },
        tank_water_threshold: TankWaterThreshold {
            temperature: m.and_then(|m| int(m, R::TankTemp)),
        },
    }
}

/// `de1/setting`.
pub fn settings(m: &Mirror, auto_off_time: Option<f64>) -> Settings {
    let shot = m.shot_settings.map(|s| s.value);
    Settings {
        auto_off_time,
        fan_threshold: int(m, R::FanThreshold),
        start_fill_level: m.water_levels.map(|w| w.value.start_fill_level.to_f64()),
        before_flow: BeforeFlow {
            heater_phase1_flow: num(m, R::HeaterUp1Flow),
            heater_phase2_flow: num(m, R::HeaterUp2Flow),
            heater_phase2_timeout: num(m, R::HeaterUp2Timeout),
            heater_idle_temperature: num(m, R::WaterHeaterIdleTemp),
        },
        target_group_temp: shot.map(|s| s.target_group_temp.to_f64()),
        usb_outlet: flag(m, R::AllowUsbCharging),
        refill_kit: flag(m, R::RefillKitPresent),
        steam: SteamSetting {
            temperature: shot
                .and_then(|s| (s.target_steam_temp != 0).then_some(s.target_steam_temp)),
            flow: num(m, R::TargetSteamFlow),
            high_flow_time: num(m, R::SteamStartSecs),
            purge_deferred: flag(m, R::SteamPurgeMode),
        },
        time: m.set_time.map_or(0, |t| t.value.timestamp),
    }
}

/// `de1/calibration`.
pub fn calibration(m: Option<&Mirror>, line_frequency: u32) -> Calibration {
    Calibration {
        line_frequency,
        flow_multiplier: m.and_then(|m| num(m, R::CalFlowEst)),
    }
}

/// `de1/read_once_values`.
pub fn read_once(m: &Mirror) -> ReadOnce {
    let block = |v: Option<de1_protocol::packets::FirmwareVersion>| match v {
        Some(v) => VersionBlock {
            api: v.api_version,
            release: v.release.to_f64(),
            commits: v.commits,
            changes: v.changes,
            sha: v.sha,
        },
        None => VersionBlock {
            api: 0,
            release: 0.0,
            commits: 0,
            changes: 0,
            sha: 0,
        },
    };
    let versions = m.versions.map(|v| v.value);
    ReadOnce {
        hw_config: raw(m, R::HwConfig),
        model: raw(m, R::Model),
        cpu_board_model: num(m, R::CpuBoardModel),
        firmware_model: match m.register(R::V13Model).map(|s| &s.value) {
            Some(MmrValue::Model(model)) => Some(model.to_raw()),
            _ => None,
        },
        firmware_build_number: m.firmware_build(),
        ghc_info: m.ghc_info().map(|g| g.0),
        serial_number: raw(m, R::SerialNumber),
        heater_voltage: match m.register(R::HeaterVoltage).map(|s| &s.value) {
            Some(MmrValue::HeaterVoltage(h)) => {
                Some(h.volts + if h.set_manually { 1000 } else { 0 })
            }
            _ => None,
        },
        version_ble: block(versions.map(|v| v.ble)),
        version_lv: block(versions.map(|v| v.firmware)),
    }
}

/// `de1/feature_flags`.
pub fn feature_flags(m: &Mirror) -> FeatureFlags {
    let f = m.features();
    let known = f.build.is_some();
    let opt = |b: bool| known.then_some(b);
    FeatureFlags {
        fw_version: f.build,
        ghc_active: m.ghc_info().map(|g| g.is_active()),
        last_mmr0x80: known.then(|| f.last_mmr0x80() & 0xFFFF),
        safe_to_read_mmr_continuous: opt(f.safe_to_read_mmr_continuous()),
        skip_to_next: opt(f.skip_to_next()),
        rinse_control: opt(f.rinse_control()),
        sched_idle: opt(f.sched_idle()),
        steam_purge_mode: opt(f.user_present()),
        allow_usb_charging: opt(f.user_present()),
        app_feature_flag_user_present: opt(f.user_present()),
        user_present: opt(f.user_present()),
        refill_kit_present: opt(f.user_present()),
        hot_water_flow_control: opt(false),
        mmr_max_shot_press: opt(false),
        mmr_pref_ghc_mci: opt(false),
    }
}

// ------------------------------------------------------------------------ area JSON

/// A JSON object written the way Python's `json.dumps` writes it by default
/// (`", "` and `": "` separators, keys in insertion order), which is how pyDE1's
/// `update/…` payloads look.
struct PyObject {
    out: String,
    first: bool,
}

impl PyObject {
    fn new() -> PyObject {
        PyObject {
            out: String::from("{"),
            first: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push_str(", ");
        }
        self.first = false;
        let _ = write!(self.out, "\"{k}\": ");
    }

    fn f64(mut self, k: &str, v: Option<f64>) -> Self {
        self.key(k);
        push_f64(&mut self.out, v);
        self
    }

    fn int(mut self, k: &str, v: Option<u64>) -> Self {
        self.key(k);
        match v {
            Some(n) => {
                let _ = write!(self.out, "{n}");
            }
            None => self.out.push_str("null"),
        }
        self
    }

    fn bool(mut self, k: &str, v: Option<bool>) -> Self {
        self.key(k);
        self.out.push_str(match v {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        });
        self
    }

    fn list(mut self, k: &str, v: &[Option<f64>]) -> Self {
        self.key(k);
        self.out.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            push_f64(&mut self.out, *x);
        }
        self.out.push(']');
        self
    }

    fn object(mut self, k: &str, v: PyObject) -> Self {
        self.key(k);
        self.out.push_str(&v.finish());
        self
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// A float as Python's `repr` writes it (`85.0`, `0.7`); non-finite values, which
/// JSON cannot carry, as `null`.
fn push_f64(out: &mut String, v: Option<f64>) {
    match v {
        Some(x) if x.is_finite() => {
            let s = serde_json::to_string(&x).unwrap_or_else(|_| "null".into());
            out.push_str(&s);
            if !s.contains(['.', 'e', 'E']) {
                out.push_str(".0");
            }
        }
        _ => out.push_str("null"),
    }
}

/// `update/de1/control` document (pyDE1's key order).
pub fn controls_json(c: &Controls) -> String {
    let e = &c.espresso;
    let u8o = |v: Option<u8>| v.map(u64::from);
    PyObject::new()
        .object(
            "espresso",
            PyObject::new()
                .f64("stop_at_time", e.stop_at_time)
                .f64("stop_at_volume", e.stop_at_volume)
                .f64("stop_at_weight", e.stop_at_weight)
                .list("move_on_weight", &e.move_on_weight)
                .bool("disable_auto_tare", Some(e.disable_auto_tare))
                .bool(
                    "profile_can_override_stop_limits",
                    Some(e.profile_can_override_stop_limits),
                )
                .bool(
                    "profile_can_override_tank_temperature",
                    Some(e.profile_can_override_tank_temperature),
                )
                .f64("first_drops_threshold", e.first_drops_threshold)
                .f64("last_drops_minimum_time", Some(e.last_drops_minimum_time)),
        )
        .object(
            "steam",
            PyObject::new()
                .int("stop_at_time", u8o(c.steam.stop_at_time))
                .bool("disable_auto_tare", Some(c.steam.disable_auto_tare)),
        )
        .object(
            "hot_water",
            PyObject::new()
                .int("stop_at_time", u8o(c.hot_water.stop_at_time))
                .int("stop_at_volume", u8o(c.hot_water.stop_at_volume))
                .f64("stop_at_weight", c.hot_water.stop_at_weight)
                .bool("disable_auto_tare", Some(c.hot_water.disable_auto_tare))
                .int("temperature", u8o(c.hot_water.temperature)),
        )
        .object(
            "hot_water_rinse",
            PyObject::new()
                .f64("stop_at_time", c.hot_water_rinse.stop_at_time)
                .bool(
                    "disable_auto_tare",
                    Some(c.hot_water_rinse.disable_auto_tare),
                )
                .f64("temperature", c.hot_water_rinse.temperature)
                .f64("flow", c.hot_water_rinse.flow),
        )
        .object(
            "tank_water_threshold",
            PyObject::new().int(
                "temperature",
                c.tank_water_threshold.temperature.map(u64::from),
            ),
        )
        .finish()
}

/// `update/de1/setting` document.
pub fn settings_json(s: &Settings) -> String {
    let b = &s.before_flow;
    PyObject::new()
        .object(
            "auto_off_time",
            PyObject::new().f64("time", s.auto_off_time),
        )
        .object(
            "fan_threshold",
            PyObject::new().int("temperature", s.fan_threshold.map(u64::from)),
        )
        .object(
            "start_fill_level",
            PyObject::new().f64("start_fill_level", s.start_fill_level),
        )
        .object(
            "before_flow",
            PyObject::new()
                .f64("heater_phase1_flow", b.heater_phase1_flow)
                .f64("heater_phase2_flow", b.heater_phase2_flow)
                .f64("heater_phase2_timeout", b.heater_phase2_timeout)
                .f64("heater_idle_temperature", b.heater_idle_temperature),
        )
        .object(
            "target_group_temp",
            PyObject::new().f64("temperature", s.target_group_temp),
        )
        .object("usb_outlet", PyObject::new().bool("enabled", s.usb_outlet))
        .object("refill_kit", PyObject::new().bool("present", s.refill_kit))
        .object(
            "steam",
            PyObject::new()
                .int("temperature", s.steam.temperature.map(u64::from))
                .f64("flow", s.steam.flow)
                .f64("high_flow_time", s.steam.high_flow_time)
                .bool("purge_deferred", s.steam.purge_deferred),
        )
        .object("time", PyObject::new().int("timestamp", Some(s.time)))
        .finish()
}

/// `update/de1/calibration` document.
pub fn calibration_json(c: &Calibration) -> String {
    PyObject::new()
        .object(
            "flow_multiplier",
            PyObject::new().f64("multiplier", c.flow_multiplier),
        )
        .object(
            "line_frequency",
            PyObject::new().int("hz", Some(u64::from(c.line_frequency))),
        )
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sequencer::SequencerSettings;

    #[test]
    fn control_area_matches_the_recorded_pyde1_push() {
        // pyDE1 2.0 published this (reference/mqtt/connect_shot.jsonl) with
        // stop_at_weight 24 and the DE1's steam 90 s, hot water 45 s / 120 mL / 85 °C,
        // flush 20 s at 85 °C and 6 mL/s, tank threshold 0.
        let mut settings = SequencerSettings::default();
        settings.espresso.stop_at_weight = Some(24.0);
        let mut c = controls(None, &settings);
        c.steam.stop_at_time = Some(90);
        c.hot_water.stop_at_time = Some(45);
        c.hot_water.stop_at_volume = Some(120);
        c.hot_water.temperature = Some(85);
        c.hot_water_rinse.stop_at_time = Some(20.0);
        c.hot_water_rinse.temperature = Some(85.0);
        c.hot_water_rinse.flow = Some(6.0);
        c.tank_water_threshold.temperature = Some(0);
        assert_eq!(
            controls_json(&c),
            r#"{"espresso": {"stop_at_time": null, "stop_at_volume": null, "stop_at_weight": 24.0, "move_on_weight": [], "disable_auto_tare": false, "profile_can_override_stop_limits": true, "profile_can_override_tank_temperature": true, "first_drops_threshold": 0.0, "last_drops_minimum_time": 3.0}, "steam": {"stop_at_time": 90, "disable_auto_tare": false}, "hot_water": {"stop_at_time": 45, "stop_at_volume": 120, "stop_at_weight": null, "disable_auto_tare": false, "temperature": 85}, "hot_water_rinse": {"stop_at_time": 20.0, "disable_auto_tare": false, "temperature": 85.0, "flow": 6.0}, "tank_water_threshold": {"temperature": 0}}"#
        );
    }

    #[test]
    fn floats_print_as_python_does() {
        let mut s = String::new();
        for v in [
            Some(0.7),
            Some(85.0),
            Some(1795509490.3559139),
            None,
            Some(f64::NAN),
        ] {
            push_f64(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0.7 85.0 1795509490.3559139 null null ");
        let cal = calibration_json(&Calibration {
            line_frequency: 60,
            flow_multiplier: Some(1.1),
        });
        assert_eq!(
            cal,
            r#"{"flow_multiplier": {"multiplier": 1.1}, "line_frequency": {"hz": 60}}"#
        );
        serde_json::from_str::<serde_json::Value>(&cal).expect("valid JSON");
        let s = settings_json(&settings(&crate::de1::Mirror::default(), Some(30.0)));
        let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
        assert_eq!(v["auto_off_time"]["time"], 30.0);
        assert!(v["fan_threshold"]["temperature"].is_null());
    }
}
