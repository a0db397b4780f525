//! The typed GET documents (`ipc_schema::command::Document`) and `update/de1/<area>`
//! values built from what the controller knows (the JSON is written elsewhere, by
//! `pyde1-docs`).
//!
//! Values come from the DE1 mirror (never assumed), the sequencer's settings and the
//! controller-local settings. A value the DE1 has not reported (or that its firmware does
//! not have) is `None`.

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
        simulated: status.simulated,
    }
}

/// `*/availability`.
pub fn availability(status: &LinkStatus) -> Availability {
    Availability {
        state: status.availability,
        last_event: status.last_event.clone(),
        simulated: status.simulated,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_carry_the_sequencer_settings_without_a_de1() {
        let mut settings = SequencerSettings::default();
        settings.espresso.stop_at_weight = Some(24.0);
        let c = controls(None, &settings);
        assert_eq!(c.espresso.stop_at_weight, Some(24.0));
        // Values only the DE1 knows are unknown, not guessed.
        assert_eq!(c.steam.stop_at_time, None);
        assert_eq!(c.hot_water_rinse.temperature, None);
    }

    #[test]
    fn settings_report_what_the_mirror_lacks_as_unknown() {
        let s = settings(&crate::de1::Mirror::default(), Some(30.0));
        assert_eq!(s.auto_off_time, Some(30.0));
        assert_eq!(s.fan_threshold, None);
        let c = calibration(None, 60);
        assert_eq!((c.line_frequency, c.flow_multiplier), (60, None));
    }
}
