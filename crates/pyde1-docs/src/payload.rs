//! Event → pyDE1's MQTT payloads, byte-for-byte what pyDE1 2.0 publishes
//! (`pyde1-mqtt-api.md` §3–§6): keys in pyDE1's order, written straight into a byte
//! buffer by serde_json with [`PyFormatter`].
//!
//! Topics, retain flags and the plain-text `log` line are the MQTT process's business;
//! this module only writes the JSON.

use ipc_schema::command::{Calibration, Controls, Settings};
use ipc_schema::event::{
    AreaDocument, AutoTareAction, AvailabilityState, ConnectivityState, DeviceAvailability,
    DeviceRole, Estimate, Event, FirmwareUploadState, Gate, GateAction, LogEntry, LogLevel,
    ProfileIdUpdate, ScaleClass, Sender, Stamp, StateUpdate, StopAtAction, StopAtKind,
    TemperatureUnits,
};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::pyjson::PyFormatter;

/// A payload class published on `<root>/<class name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    StateUpdate,
    ShotSampleWithVolumesUpdate,
    WaterLevelUpdate,
    WeightAndFlowUpdate,
    ScaleTareSeen,
    ScaleButtonPress,
    ScaleChange,
    SequencerGateNotification,
    StopAtNotification,
    AutoTareNotification,
    DeviceAvailability,
    ConnectivityChange,
    FirmwareUpload,
    ScanResults,
    BlueDotUpdate,
}

impl Class {
    pub const ALL: [Class; 15] = [
        Class::StateUpdate,
        Class::ShotSampleWithVolumesUpdate,
        Class::WaterLevelUpdate,
        Class::WeightAndFlowUpdate,
        Class::ScaleTareSeen,
        Class::ScaleButtonPress,
        Class::ScaleChange,
        Class::SequencerGateNotification,
        Class::StopAtNotification,
        Class::AutoTareNotification,
        Class::DeviceAvailability,
        Class::ConnectivityChange,
        Class::FirmwareUpload,
        Class::ScanResults,
        Class::BlueDotUpdate,
    ];

    /// The payload's `class` and the last topic level.
    pub const fn name(self) -> &'static str {
        match self {
            Class::StateUpdate => "StateUpdate",
            Class::ShotSampleWithVolumesUpdate => "ShotSampleWithVolumesUpdate",
            Class::WaterLevelUpdate => "WaterLevelUpdate",
            Class::WeightAndFlowUpdate => "WeightAndFlowUpdate",
            Class::ScaleTareSeen => "ScaleTareSeen",
            Class::ScaleButtonPress => "ScaleButtonPress",
            Class::ScaleChange => "ScaleChange",
            Class::SequencerGateNotification => "SequencerGateNotification",
            Class::StopAtNotification => "StopAtNotification",
            Class::AutoTareNotification => "AutoTareNotification",
            Class::DeviceAvailability => "DeviceAvailability",
            Class::ConnectivityChange => "ConnectivityChange",
            Class::FirmwareUpload => "FirmwareUpload",
            Class::ScanResults => "ScanResults",
            Class::BlueDotUpdate => "BlueDOTUpdate",
        }
    }

    /// The payload's semantic `version` in pyDE1 2.0.
    pub const fn version(self) -> &'static str {
        match self {
            Class::ShotSampleWithVolumesUpdate => "1.2.0",
            Class::ScaleChange
            | Class::SequencerGateNotification
            | Class::StopAtNotification
            | Class::DeviceAvailability
            | Class::ConnectivityChange => "1.1.0",
            _ => "1.0.0",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// pyDE1's `sender` string.
pub const fn sender_name(sender: Sender) -> &'static str {
    match sender {
        Sender::De1 => "DE1",
        Sender::ScaleProcessor => "ScaleProcessor",
        Sender::FlowSequencer => "FlowSequencerImpl",
        Sender::BluetoothScanner => "BluetoothScanner",
        Sender::BlueDot => "BlueDOT",
        Sender::Scale(class) => scale_class_name(class),
    }
}

/// pyDE1's class name of a scale object.
pub const fn scale_class_name(class: ScaleClass) -> &'static str {
    match class {
        ScaleClass::Generic => "GenericScale",
        ScaleClass::AtomaxSkaleII => "AtomaxSkaleII",
        ScaleClass::AcaiaAcaia => "AcaiaAcaia",
        ScaleClass::AcaiaLunar => "AcaiaLunar",
        ScaleClass::AcaiaProch => "AcaiaProch",
        ScaleClass::AcaiaPearlS => "AcaiaPearlS",
        ScaleClass::AcaiaPyxis => "AcaiaPyxis",
        ScaleClass::FelicitaArc => "FelicitaArc",
    }
}

pub const fn role_name(role: DeviceRole) -> &'static str {
    match role {
        DeviceRole::De1 => "de1",
        DeviceRole::Scale => "scale",
        DeviceRole::Thermometer => "thermometer",
        DeviceRole::Other => "other",
        DeviceRole::Unknown => "unknown",
    }
}

pub const fn availability_name(state: AvailabilityState) -> &'static str {
    match state {
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

pub const fn connectivity_name(state: ConnectivityState) -> &'static str {
    match state {
        ConnectivityState::Initial => "initial",
        ConnectivityState::Unknown => "unknown",
        ConnectivityState::Connecting => "connecting",
        ConnectivityState::Connected => "connected",
        ConnectivityState::Ready => "ready",
        ConnectivityState::NotReady => "not_ready",
        ConnectivityState::Disconnecting => "disconnecting",
        ConnectivityState::Disconnected => "disconnected",
    }
}

pub const fn gate_name(gate: Gate) -> &'static str {
    match gate {
        Gate::SequenceStart => "sequence_start",
        Gate::FlowBegin => "sequence_flow_begin",
        Gate::ExpectDrops => "sequence_expect_drops",
        Gate::ExitPreinfuse => "sequence_exit_preinfuse",
        Gate::FlowEnd => "sequence_flow_end",
        Gate::FlowStateExit => "sequence_flow_state_exit",
        Gate::LastDrops => "sequence_last_drops",
        Gate::SequenceComplete => "sequence_complete",
    }
}

const fn gate_action_name(action: GateAction) -> &'static str {
    match action {
        GateAction::Set => "set",
        GateAction::Clear => "clear",
    }
}

const fn stop_at_name(kind: StopAtKind) -> &'static str {
    match kind {
        StopAtKind::Time => "time",
        StopAtKind::Volume => "volume",
        StopAtKind::Weight => "weight",
        StopAtKind::MoveOnByWeight => "move on by weight",
        StopAtKind::SteamToTemperature => "steam to temperature",
    }
}

const fn stop_at_action_name(action: StopAtAction) -> &'static str {
    match action {
        StopAtAction::Enabled => "enabled",
        StopAtAction::Triggered => "triggered",
        StopAtAction::Disabled => "disabled",
        StopAtAction::De1Controlled => "de1 controlled",
    }
}

const fn auto_tare_name(action: AutoTareAction) -> &'static str {
    match action {
        AutoTareAction::Enabled => "enabled",
        AutoTareAction::Disabled => "disabled",
    }
}

pub const fn firmware_state_name(state: FirmwareUploadState) -> &'static str {
    match state {
        FirmwareUploadState::Starting => "starting",
        FirmwareUploadState::Uploading => "uploading",
        FirmwareUploadState::Completed => "completed",
        FirmwareUploadState::Failed => "failed",
        FirmwareUploadState::Canceled => "canceled",
    }
}

/// Python's `levelname`.
pub const fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
        LogLevel::Critical => "CRITICAL",
    }
}

/// Python's `levelno`.
pub const fn level_number(level: LogLevel) -> u8 {
    match level {
        LogLevel::Debug => 10,
        LogLevel::Info => 20,
        LogLevel::Warning => 30,
        LogLevel::Error => 40,
        LogLevel::Critical => 50,
    }
}

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing payload: {0}")]
    Io(#[from] std::io::Error),
}

/// Initial payload buffer size: a shot sample is about 700 bytes.
pub const PAYLOAD_CAPACITY: usize = 1024;

type JsonSer<'b> = serde_json::Serializer<&'b mut Vec<u8>, PyFormatter>;
type Map<'s, 'b> = serde_json::ser::Compound<'s, &'b mut Vec<u8>, PyFormatter>;
type JsonResult = Result<(), serde_json::Error>;

/// Writes the JSON payload of an event class into `buf`; returns its class, or `None`
/// for events that are not class payloads (heartbeats, process status, logs, `update/…`).
pub fn event_payload(event: &Event, buf: &mut Vec<u8>) -> Result<Option<Class>, RenderError> {
    let mut ser = JsonSer::with_formatter(buf, PyFormatter);
    let class = match event {
        Event::StateUpdate(e) => {
            let c = Class::StateUpdate;
            envelope(&mut ser, &e.stamp, c, "DE1", |m| {
                m.serialize_entry("state", e.state.as_str())?;
                m.serialize_entry("substate", e.substate.as_str())?;
                m.serialize_entry("previous_state", e.previous_state.as_str())?;
                m.serialize_entry("previous_substate", e.previous_substate.as_str())?;
                m.serialize_entry("is_error_state", &e.is_error_state)
            })?;
            c
        }
        Event::ShotSampleWithVolumesUpdate(e) => {
            let c = Class::ShotSampleWithVolumesUpdate;
            envelope(&mut ser, &e.stamp, c, "DE1", |m| {
                m.serialize_entry("sample_time", &e.sample_time)?;
                m.serialize_entry("group_pressure", &e.group_pressure)?;
                m.serialize_entry("group_flow", &e.group_flow)?;
                m.serialize_entry("mix_temp", &e.mix_temp)?;
                m.serialize_entry("head_temp", &e.head_temp)?;
                m.serialize_entry("set_mix_temp", &e.set_mix_temp)?;
                m.serialize_entry("set_head_temp", &e.set_head_temp)?;
                m.serialize_entry("set_group_pressure", &e.set_group_pressure)?;
                m.serialize_entry("set_group_flow", &e.set_group_flow)?;
                m.serialize_entry("frame_number", &e.frame_number)?;
                m.serialize_entry("steam_temp", &e.steam_temp)?;
                m.serialize_entry("de1_time", &e.de1_time)?;
                m.serialize_entry("volume_preinfuse", &Volume(e.volume_preinfuse))?;
                m.serialize_entry("volume_pour", &Volume(e.volume_pour))?;
                m.serialize_entry("volume_total", &Volume(e.volume_total))?;
                m.serialize_entry("volume_by_frames", &Volumes(e.volume_by_frames.as_ref()))
            })?;
            c
        }
        Event::WaterLevelUpdate(e) => {
            let c = Class::WaterLevelUpdate;
            envelope(&mut ser, &e.stamp, c, "DE1", |m| {
                m.serialize_entry("level", &e.level)?;
                m.serialize_entry("start_fill_level", &e.start_fill_level)
            })?;
            c
        }
        Event::WeightAndFlowUpdate(e) => {
            let c = Class::WeightAndFlowUpdate;
            envelope(&mut ser, &e.stamp, c, "ScaleProcessor", |m| {
                m.serialize_entry("scale_time", &e.scale_time)?;
                m.serialize_entry("current_weight", &e.current_weight)?;
                m.serialize_entry("current_weight_time", &e.scale_time)?;
                estimate(m, "average_flow", "average_flow_time", e.average_flow)?;
                estimate(m, "median_weight", "median_weight_time", e.median_weight)?;
                estimate(m, "median_flow", "median_flow_time", e.median_flow)
            })?;
            c
        }
        Event::ScaleTareSeen(e) => {
            let c = Class::ScaleTareSeen;
            envelope(&mut ser, &e.stamp, c, sender_name(e.sender), |_| Ok(()))?;
            c
        }
        Event::ScaleButtonPress(e) => {
            let c = Class::ScaleButtonPress;
            envelope(&mut ser, &e.stamp, c, sender_name(e.sender), |m| {
                m.serialize_entry("button", &e.button)
            })?;
            c
        }
        Event::ScaleChange(e) => {
            let c = Class::ScaleChange;
            envelope(&mut ser, &e.stamp, c, sender_name(e.sender), |m| {
                m.serialize_entry("state", availability_name(e.state))?;
                m.serialize_entry("role", role_name(DeviceRole::Unknown))?;
                m.serialize_entry("id", &e.id)?;
                m.serialize_entry("name", &e.name)
            })?;
            c
        }
        Event::SequencerGateNotification(e) => {
            let c = Class::SequencerGateNotification;
            let id = e.sequence_id.to_ascii();
            let id = std::str::from_utf8(&id).unwrap_or_default();
            envelope(&mut ser, &e.stamp, c, "FlowSequencerImpl", |m| {
                m.serialize_entry("name", gate_name(e.name))?;
                m.serialize_entry("action", gate_action_name(e.action))?;
                m.serialize_entry("sequence_id", id)?;
                m.serialize_entry("active_state", &e.active_state.map(|s| s.as_str()))
            })?;
            c
        }
        Event::StopAtNotification(e) => {
            let c = Class::StopAtNotification;
            envelope(&mut ser, &e.stamp, c, "FlowSequencerImpl", |m| {
                m.serialize_entry("stop_at", stop_at_name(e.stop_at))?;
                m.serialize_entry("action", stop_at_action_name(e.action))?;
                m.serialize_entry("target_value", &e.target_value)?;
                // pyDE1's volumes start as the integer 0 (see `Volume`).
                match (e.stop_at, e.current_value) {
                    (StopAtKind::Volume, Some(v)) => {
                        m.serialize_entry("current_value", &Volume(v))?
                    }
                    (_, v) => m.serialize_entry("current_value", &v)?,
                }
                m.serialize_entry("active_state", e.active_state.as_str())?;
                m.serialize_entry("current_frame", &e.current_frame)
            })?;
            c
        }
        Event::AutoTareNotification(e) => {
            let c = Class::AutoTareNotification;
            envelope(&mut ser, &e.stamp, c, "FlowSequencerImpl", |m| {
                m.serialize_entry("action", auto_tare_name(e.action))
            })?;
            c
        }
        Event::DeviceAvailability(e) => {
            let c = Class::DeviceAvailability;
            envelope(&mut ser, &e.stamp, c, sender_name(e.sender), |m| {
                m.serialize_entry("state", availability_name(e.state))?;
                m.serialize_entry("role", role_name(e.role))?;
                m.serialize_entry("id", &e.id)?;
                m.serialize_entry("name", &e.name)?;
                if e.simulated {
                    m.serialize_entry("simulated", &true)?;
                }
                Ok(())
            })?;
            c
        }
        Event::ConnectivityChange(e) => {
            let c = Class::ConnectivityChange;
            envelope(&mut ser, &e.stamp, c, sender_name(e.sender), |m| {
                m.serialize_entry("state", connectivity_name(e.state))?;
                m.serialize_entry("id", &e.id)?;
                m.serialize_entry("name", &e.name)
            })?;
            c
        }
        Event::FirmwareUpload(e) => {
            let c = Class::FirmwareUpload;
            envelope(&mut ser, &e.stamp, c, "DE1", |m| {
                m.serialize_entry("state", firmware_state_name(e.state))?;
                m.serialize_entry("uploaded", &e.uploaded)?;
                m.serialize_entry("total", &e.total)
            })?;
            c
        }
        Event::ScanResults(e) => {
            let c = Class::ScanResults;
            envelope(&mut ser, &e.stamp, c, "BluetoothScanner", |m| {
                m.serialize_entry("role", role_name(e.role))?;
                m.serialize_entry("scanning", &e.scanning)?;
                m.serialize_entry("devices", &ScanDevices(&e.devices))
            })?;
            c
        }
        Event::BlueDotUpdate(e) => {
            let c = Class::BlueDotUpdate;
            let units = match e.units {
                TemperatureUnits::Celsius => "C",
                TemperatureUnits::Fahrenheit => "F",
            };
            envelope(&mut ser, &e.stamp, c, "BlueDOT", |m| {
                m.serialize_entry("temperature", &e.temperature)?;
                m.serialize_entry("high_alarm", &e.high_alarm)?;
                m.serialize_entry("units", units)?;
                m.serialize_entry("alarm_byte", &Hex(&[e.alarm_byte]))?;
                m.serialize_entry("name", &e.name)
            })?;
            c
        }
        Event::Heartbeat
        | Event::AreaUpdate(_)
        | Event::ProfileIdUpdate(_)
        | Event::Log(_)
        | Event::ProcessStatus(_) => return Ok(None),
    };
    Ok(Some(class))
}

/// A class payload as a string (`None` for events without one), for the `mqtt` keys of
/// HTTP documents.
pub fn event_payload_string(event: &Event) -> Option<String> {
    let mut buf = Vec::with_capacity(PAYLOAD_CAPACITY);
    match event_payload(event, &mut buf) {
        Ok(Some(_)) => String::from_utf8(buf).ok(),
        _ => None,
    }
}

/// The `StateUpdate` payload, as the `mqtt` key of `de1/state`.
pub fn state_update_payload(u: &StateUpdate) -> String {
    event_payload_string(&Event::StateUpdate(*u)).unwrap_or_default()
}

/// The `DeviceAvailability` payload, as the `mqtt` key of `*/availability`.
pub fn availability_payload(e: &DeviceAvailability) -> String {
    event_payload_string(&Event::DeviceAvailability(e.clone())).unwrap_or_default()
}

/// The `log/record` payload: the Python `LogRecord` fields pyDE1 publishes.
pub fn log_record_payload(record: &LogEntry) -> Result<Vec<u8>, RenderError> {
    let mut json = Vec::with_capacity(192 + record.message.len());
    {
        let mut ser = JsonSer::with_formatter(&mut json, PyFormatter);
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("version", "1.0.0")?;
        m.serialize_entry("created", &record.created)?;
        m.serialize_entry("levelname", level_name(record.level))?;
        m.serialize_entry("levelno", &level_number(record.level))?;
        m.serialize_entry("message", &record.message)?;
        m.serialize_entry("name", &record.name)?;
        m.serialize_entry("process", &record.process)?;
        m.serialize_entry("processName", &record.process_name)?;
        m.serialize_entry("thread", &record.thread)?;
        m.serialize_entry("threadName", &record.thread_name)?;
        SerializeMap::end(m)?;
    }
    Ok(json)
}

/// `update/de1/profile/id`: `{"id": <hex or null>, "timestamp": <epoch>}`.
pub fn profile_id_payload(u: &ProfileIdUpdate) -> Result<Vec<u8>, RenderError> {
    let mut buf = Vec::with_capacity(96);
    {
        let mut ser = JsonSer::with_formatter(&mut buf, PyFormatter);
        let mut m = ser.serialize_map(None)?;
        match &u.id {
            Some(id) => m.serialize_entry("id", &Hex(id))?,
            None => m.serialize_entry("id", &())?,
        }
        m.serialize_entry("timestamp", &u.timestamp)?;
        SerializeMap::end(m)?;
    }
    Ok(buf)
}

/// `update/de1/<area>`: the area document in pyDE1's key order, `"timestamp"` last.
pub fn area_payload(document: &AreaDocument, timestamp: f64) -> Result<Vec<u8>, RenderError> {
    let mut buf = Vec::with_capacity(PAYLOAD_CAPACITY);
    {
        let mut ser = JsonSer::with_formatter(&mut buf, PyFormatter);
        let mut m = ser.serialize_map(None)?;
        match document {
            AreaDocument::Control(c) => control_entries(&mut m, c)?,
            AreaDocument::Setting(s) => setting_entries(&mut m, s)?,
            AreaDocument::Calibration(c) => calibration_entries(&mut m, c)?,
        }
        m.serialize_entry("timestamp", &timestamp)?;
        SerializeMap::end(m)?;
    }
    Ok(buf)
}

// --- update/de1/<area>: pyDE1's key order (not sorted; `pyde1-mqtt-api.md` §5) ---------

/// `{"<key>": value}`: the one-key objects of the setting and calibration areas.
struct One<'a, T: Serialize>(&'static str, &'a T);

impl<T: Serialize> Serialize for One<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, self.1)?;
        m.end()
    }
}

#[derive(Serialize)]
struct EspressoArea<'a> {
    stop_at_time: Option<f64>,
    stop_at_volume: Option<f64>,
    stop_at_weight: Option<f64>,
    move_on_weight: &'a [Option<f64>],
    disable_auto_tare: bool,
    profile_can_override_stop_limits: bool,
    profile_can_override_tank_temperature: bool,
    first_drops_threshold: Option<f64>,
    last_drops_minimum_time: f64,
}

#[derive(Serialize)]
struct SteamArea {
    stop_at_time: Option<u8>,
    disable_auto_tare: bool,
}

#[derive(Serialize)]
struct HotWaterArea {
    stop_at_time: Option<u8>,
    stop_at_volume: Option<u8>,
    stop_at_weight: Option<f64>,
    disable_auto_tare: bool,
    temperature: Option<u8>,
}

#[derive(Serialize)]
struct RinseArea {
    stop_at_time: Option<f64>,
    disable_auto_tare: bool,
    temperature: Option<f64>,
    flow: Option<f64>,
}

#[derive(Serialize)]
struct BeforeFlowArea {
    heater_phase1_flow: Option<f64>,
    heater_phase2_flow: Option<f64>,
    heater_phase2_timeout: Option<f64>,
    heater_idle_temperature: Option<f64>,
}

#[derive(Serialize)]
struct SteamSettingArea {
    temperature: Option<u8>,
    flow: Option<f64>,
    high_flow_time: Option<f64>,
    purge_deferred: Option<bool>,
}

fn control_entries(m: &mut Map<'_, '_>, c: &Controls) -> JsonResult {
    let e = &c.espresso;
    m.serialize_entry(
        "espresso",
        &EspressoArea {
            stop_at_time: e.stop_at_time,
            stop_at_volume: e.stop_at_volume,
            stop_at_weight: e.stop_at_weight,
            move_on_weight: &e.move_on_weight,
            disable_auto_tare: e.disable_auto_tare,
            profile_can_override_stop_limits: e.profile_can_override_stop_limits,
            profile_can_override_tank_temperature: e.profile_can_override_tank_temperature,
            first_drops_threshold: e.first_drops_threshold,
            last_drops_minimum_time: e.last_drops_minimum_time,
        },
    )?;
    m.serialize_entry(
        "steam",
        &SteamArea {
            stop_at_time: c.steam.stop_at_time,
            disable_auto_tare: c.steam.disable_auto_tare,
        },
    )?;
    let h = &c.hot_water;
    m.serialize_entry(
        "hot_water",
        &HotWaterArea {
            stop_at_time: h.stop_at_time,
            stop_at_volume: h.stop_at_volume,
            stop_at_weight: h.stop_at_weight,
            disable_auto_tare: h.disable_auto_tare,
            temperature: h.temperature,
        },
    )?;
    let r = &c.hot_water_rinse;
    m.serialize_entry(
        "hot_water_rinse",
        &RinseArea {
            stop_at_time: r.stop_at_time,
            disable_auto_tare: r.disable_auto_tare,
            temperature: r.temperature,
            flow: r.flow,
        },
    )?;
    m.serialize_entry(
        "tank_water_threshold",
        &One("temperature", &c.tank_water_threshold.temperature),
    )
}

fn setting_entries(m: &mut Map<'_, '_>, s: &Settings) -> JsonResult {
    let b = &s.before_flow;
    m.serialize_entry("auto_off_time", &One("time", &s.auto_off_time))?;
    m.serialize_entry("fan_threshold", &One("temperature", &s.fan_threshold))?;
    m.serialize_entry(
        "start_fill_level",
        &One("start_fill_level", &s.start_fill_level),
    )?;
    m.serialize_entry(
        "before_flow",
        &BeforeFlowArea {
            heater_phase1_flow: b.heater_phase1_flow,
            heater_phase2_flow: b.heater_phase2_flow,
            heater_phase2_timeout: b.heater_phase2_timeout,
            heater_idle_temperature: b.heater_idle_temperature,
        },
    )?;
    m.serialize_entry(
        "target_group_temp",
        &One("temperature", &s.target_group_temp),
    )?;
    m.serialize_entry(
        "steam",
        &SteamSettingArea {
            temperature: s.steam.temperature,
            flow: s.steam.flow,
            high_flow_time: s.steam.high_flow_time,
            purge_deferred: s.steam.purge_deferred,
        },
    )?;
    m.serialize_entry("time", &One("timestamp", &s.time))?;
    m.serialize_entry("usb_outlet", &One("enabled", &s.usb_outlet))?;
    m.serialize_entry("refill_kit", &One("present", &s.refill_kit))
}

fn calibration_entries(m: &mut Map<'_, '_>, c: &Calibration) -> JsonResult {
    m.serialize_entry("flow_multiplier", &One("multiplier", &c.flow_multiplier))?;
    m.serialize_entry("line_frequency", &One("hz", &c.line_frequency))
}

/// Writes `{arrival_time, create_time, <body>, version, event_time, sender, class}`.
fn envelope<'b>(
    ser: &mut JsonSer<'b>,
    stamp: &Stamp,
    class: Class,
    sender: &str,
    body: impl FnOnce(&mut Map<'_, 'b>) -> JsonResult,
) -> JsonResult {
    let mut m = ser.serialize_map(None)?;
    m.serialize_entry("arrival_time", &stamp.arrival_time)?;
    m.serialize_entry("create_time", &stamp.create_time)?;
    body(&mut m)?;
    m.serialize_entry("version", class.version())?;
    m.serialize_entry("event_time", &stamp.event_time)?;
    m.serialize_entry("sender", sender)?;
    m.serialize_entry("class", class.name())?;
    SerializeMap::end(m)
}

/// An estimate and its time; both integer `0` while there is not enough history.
fn estimate(m: &mut Map<'_, '_>, key: &str, time_key: &str, e: Option<Estimate>) -> JsonResult {
    match e {
        Some(e) => {
            m.serialize_entry(key, &e.value)?;
            m.serialize_entry(time_key, &e.time)
        }
        None => {
            m.serialize_entry(key, &0u8)?;
            m.serialize_entry(time_key, &0u8)
        }
    }
}

/// pyDE1 resets volumes to the integer 0 and adds floats to them, so a volume that has
/// not grown is written `0`, anything else as a float.
struct Volume(f64);

impl Serialize for Volume {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0.0 {
            s.serialize_u8(0)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// `volume_by_frames`: `[]` before the first sequence.
struct Volumes<'a>(Option<&'a [f64; ipc_schema::event::VOLUME_FRAMES]>);

impl Serialize for Volumes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let frames: &[f64] = self.0.map_or(&[], |f| f.as_slice());
        let mut seq = s.serialize_seq(Some(frames.len()))?;
        for v in frames {
            seq.serialize_element(&Volume(*v))?;
        }
        seq.end()
    }
}

/// Bytes as a lowercase hex string.
struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(self.0.len() * 2);
        for b in self.0 {
            text.push(char::from(DIGITS[usize::from(b >> 4)]));
            text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        s.serialize_str(&text)
    }
}

struct ScanDevices<'a>(&'a [ipc_schema::event::ScanDevice]);

impl Serialize for ScanDevices<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&ScanDevice(d))?;
        }
        seq.end()
    }
}

struct ScanDevice<'a>(&'a ipc_schema::event::ScanDevice);

impl Serialize for ScanDevice<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("address", &self.0.address)?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("rssi", &self.0.rssi)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_schema::command::{
        EspressoControl, HotWaterControl, HotWaterRinseControl, SteamControl, TankWaterThreshold,
    };

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).expect("UTF-8")
    }

    #[test]
    fn calibration_area_in_pyde1_order_with_timestamp_last() {
        let doc = AreaDocument::Calibration(Calibration {
            line_frequency: 60,
            flow_multiplier: Some(1.1),
        });
        assert_eq!(
            text(area_payload(&doc, 1795508575.373483).expect("payload")),
            r#"{"flow_multiplier": {"multiplier": 1.1}, "line_frequency": {"hz": 60}, "timestamp": 1795508575.373483}"#
        );
    }

    #[test]
    fn control_area_keeps_integers_and_floats_apart() {
        let c = Controls {
            espresso: EspressoControl {
                stop_at_time: None,
                stop_at_volume: None,
                stop_at_weight: Some(24.0),
                move_on_weight: vec![None, Some(5.0)],
                disable_auto_tare: false,
                profile_can_override_stop_limits: true,
                profile_can_override_tank_temperature: true,
                first_drops_threshold: Some(0.0),
                last_drops_minimum_time: 3.0,
            },
            steam: SteamControl {
                stop_at_time: Some(90),
                disable_auto_tare: false,
            },
            hot_water: HotWaterControl {
                stop_at_time: Some(45),
                stop_at_volume: Some(120),
                stop_at_weight: None,
                disable_auto_tare: false,
                temperature: Some(85),
            },
            hot_water_rinse: HotWaterRinseControl {
                stop_at_time: Some(20.0),
                disable_auto_tare: false,
                temperature: Some(f64::NAN),
                flow: Some(6.0),
            },
            tank_water_threshold: TankWaterThreshold {
                temperature: Some(0),
            },
        };
        assert_eq!(
            text(area_payload(&AreaDocument::Control(c), 1.5).expect("payload")),
            r#"{"espresso": {"stop_at_time": null, "stop_at_volume": null, "stop_at_weight": 24.0, "move_on_weight": [null, 5.0], "disable_auto_tare": false, "profile_can_override_stop_limits": true, "profile_can_override_tank_temperature": true, "first_drops_threshold": 0.0, "last_drops_minimum_time": 3.0}, "steam": {"stop_at_time": 90, "disable_auto_tare": false}, "hot_water": {"stop_at_time": 45, "stop_at_volume": 120, "stop_at_weight": null, "disable_auto_tare": false, "temperature": 85}, "hot_water_rinse": {"stop_at_time": 20.0, "disable_auto_tare": false, "temperature": null, "flow": 6.0}, "tank_water_threshold": {"temperature": 0}, "timestamp": 1.5}"#
        );
    }

    #[test]
    fn profile_id_payload_is_hex_or_null() {
        let u = ProfileIdUpdate {
            id: Some([0xab; 20]),
            timestamp: 2.0,
        };
        assert_eq!(
            text(profile_id_payload(&u).expect("payload")),
            format!("{{\"id\": \"{}\", \"timestamp\": 2.0}}", "ab".repeat(20))
        );
        let u = ProfileIdUpdate {
            id: None,
            timestamp: 2.0,
        };
        assert_eq!(
            text(profile_id_payload(&u).expect("payload")),
            r#"{"id": null, "timestamp": 2.0}"#
        );
    }
}
