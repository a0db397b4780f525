//! Event → MQTT publication: topic, pyDE1-shaped JSON payload, retain flag.
//!
//! Pure and allocation-light: payloads are written straight into a byte buffer by
//! serde_json with [`PyFormatter`], keys in pyDE1's order (`pyde1-mqtt-api.md` §3–§6).
//! Every publication is QoS 0, as in pyDE1.

use std::io::Write;
use std::sync::Arc;

use ipc_schema::event::{
    AutoTareAction, AvailabilityState, ConnectivityState, DeviceRole, Estimate, Event,
    FirmwareUploadState, Gate, GateAction, LogEntry, LogLevel, Presence, ProcessRole, ScaleClass,
    Sender, SettingsArea, Stamp, StopAtAction, StopAtKind, TemperatureUnits,
};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::localtime;
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

    const fn index(self) -> usize {
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

const fn firmware_state_name(state: FirmwareUploadState) -> &'static str {
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

/// The retained payload of a status topic.
pub const fn presence_payload(presence: Presence) -> &'static str {
    match presence {
        Presence::Here => "Here",
        Presence::Gone => "Gone",
        Presence::Died => "Died",
    }
}

/// A status topic (`<root>/status/…`), pyDE1-mqtt-api.md §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusTopic {
    /// `status/mqtt/notification`: this process's event connection.
    Notification,
    /// `status/mqtt/logging`: this process's log publishing.
    Logging,
    /// `status/controller`, `status/http`, `status/db_recorder`.
    Process(ProcessRole),
}

impl StatusTopic {
    pub const fn suffix(self) -> &'static str {
        match self {
            StatusTopic::Notification => "status/mqtt/notification",
            StatusTopic::Logging => "status/mqtt/logging",
            StatusTopic::Process(ProcessRole::Controller) => "status/controller",
            StatusTopic::Process(ProcessRole::Http) => "status/http",
            StatusTopic::Process(ProcessRole::Recorder) => "status/db_recorder",
        }
    }
}

/// Why an event could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("settings document for {area:?} is not a JSON object: {reason}")]
    BadDocument { area: SettingsArea, reason: String },
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing payload: {0}")]
    Io(#[from] std::io::Error),
}

/// One MQTT publication (QoS 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: Arc<str>,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// Full topic names, built once.
#[derive(Debug, Clone)]
pub struct Topics {
    root: String,
    classes: Vec<Arc<str>>,
    log: Arc<str>,
    log_record: Arc<str>,
    control: Arc<str>,
    setting: Arc<str>,
    calibration: Arc<str>,
    profile_id: Arc<str>,
}

impl Topics {
    pub fn new(root: &str) -> Self {
        let t = |suffix: &str| -> Arc<str> { format!("{root}/{suffix}").into() };
        Topics {
            root: root.to_owned(),
            classes: Class::ALL.iter().map(|c| t(c.name())).collect(),
            log: t("log"),
            log_record: t("log/record"),
            control: t("update/de1/control"),
            setting: t("update/de1/setting"),
            calibration: t("update/de1/calibration"),
            profile_id: t("update/de1/profile/id"),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<root>/<class>`.
    pub fn class(&self, class: Class) -> &Arc<str> {
        // `classes` is built from `Class::ALL`, indexed by discriminant.
        &self.classes[class.index()]
    }

    pub fn status(&self, status: StatusTopic) -> String {
        format!("{}/{}", self.root, status.suffix())
    }

    pub fn log(&self) -> &Arc<str> {
        &self.log
    }

    pub fn log_record(&self) -> &Arc<str> {
        &self.log_record
    }

    pub fn area(&self, area: SettingsArea) -> &Arc<str> {
        match area {
            SettingsArea::Control => &self.control,
            SettingsArea::Setting => &self.setting,
            SettingsArea::Calibration => &self.calibration,
        }
    }

    pub fn profile_id(&self) -> &Arc<str> {
        &self.profile_id
    }
}

/// Turns events into publications.
#[derive(Debug, Clone)]
pub struct Renderer {
    topics: Topics,
    log_level: LogLevel,
}

/// Initial payload buffer size: a shot sample is about 700 bytes.
const PAYLOAD_CAPACITY: usize = 1024;

type JsonSer<'b> = serde_json::Serializer<&'b mut Vec<u8>, PyFormatter>;
type Map<'s, 'b> = serde_json::ser::Compound<'s, &'b mut Vec<u8>, PyFormatter>;
type JsonResult = Result<(), serde_json::Error>;

impl Renderer {
    /// `log_level`: the lowest level of log records to publish.
    pub fn new(topic_root: &str, log_level: LogLevel) -> Self {
        Renderer {
            topics: Topics::new(topic_root),
            log_level,
        }
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Appends the publications for `event` to `out` (none for events that are not
    /// published, such as heartbeats, process status and filtered log records).
    pub fn render(&self, event: &Event, out: &mut Vec<Outgoing>) -> Result<(), RenderError> {
        match event {
            Event::Heartbeat | Event::ProcessStatus(_) => Ok(()),
            Event::Log(record) => self.render_log(record, out),
            Event::AreaUpdate(u) => {
                let payload = area_payload(u.area, &u.document, u.timestamp)?;
                out.push(Outgoing {
                    topic: self.topics.area(u.area).clone(),
                    payload,
                    retain: false,
                });
                Ok(())
            }
            Event::ProfileIdUpdate(u) => {
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
                out.push(Outgoing {
                    topic: self.topics.profile_id().clone(),
                    payload: buf,
                    retain: false,
                });
                Ok(())
            }
            _ => {
                let mut payload = Vec::with_capacity(PAYLOAD_CAPACITY);
                let Some(class) = self.render_event_payload(event, &mut payload)? else {
                    return Ok(());
                };
                out.push(Outgoing {
                    topic: self.topics.class(class).clone(),
                    payload,
                    retain: false,
                });
                Ok(())
            }
        }
    }

    /// Writes the JSON payload of an event class into `buf`; returns its class, or
    /// `None` for events that are not class payloads.
    pub fn render_event_payload(
        &self,
        event: &Event,
        buf: &mut Vec<u8>,
    ) -> Result<Option<Class>, RenderError> {
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
                    m.serialize_entry("name", &e.name)
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

    fn render_log(&self, record: &LogEntry, out: &mut Vec<Outgoing>) -> Result<(), RenderError> {
        if record.level < self.log_level {
            return Ok(());
        }
        // `<root>/log`: "%(asctime)s %(levelname)s [%(processName)s] %(name)s: %(message)s"
        let mut text = Vec::with_capacity(64 + record.message.len());
        localtime::write_asctime(&mut text, record.created)?;
        write!(
            text,
            " {} [{}] {}: {}",
            level_name(record.level),
            record.process_name,
            record.name,
            record.message
        )?;
        out.push(Outgoing {
            topic: self.topics.log().clone(),
            payload: text,
            retain: false,
        });

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
        out.push(Outgoing {
            topic: self.topics.log_record().clone(),
            payload: json,
            retain: false,
        });
        Ok(())
    }
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

/// The `update/de1/<area>` payload: the area document with `"timestamp"` appended as
/// its last key.
fn area_payload(
    area: SettingsArea,
    document: &str,
    timestamp: f64,
) -> Result<Vec<u8>, RenderError> {
    let bad = |reason: String| RenderError::BadDocument { area, reason };
    serde_json::from_str::<serde::de::IgnoredAny>(document).map_err(|e| bad(e.to_string()))?;
    let trimmed = document.trim();
    let inner = trimmed
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("not an object".into()))?;
    let mut out = Vec::with_capacity(trimmed.len() + 32);
    out.push(b'{');
    if !inner.trim().is_empty() {
        out.extend_from_slice(inner.as_bytes());
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"\"timestamp\": ");
    crate::pyjson::write_py_float(&mut out, timestamp)?;
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_document_gets_timestamp_last() {
        let p = area_payload(
            SettingsArea::Calibration,
            r#"{"flow_multiplier": {"multiplier": 1.1}, "line_frequency": {"hz": 60}}"#,
            1795508575.373483,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(p).unwrap(),
            r#"{"flow_multiplier": {"multiplier": 1.1}, "line_frequency": {"hz": 60}, "timestamp": 1795508575.373483}"#
        );
        let p = area_payload(SettingsArea::Control, " {} ", 1.5).unwrap();
        assert_eq!(p, b"{\"timestamp\": 1.5}");
        assert!(area_payload(SettingsArea::Control, "[1]", 1.0).is_err());
        assert!(area_payload(SettingsArea::Control, "{\"a\": ", 1.0).is_err());
    }

    #[test]
    fn class_topics_follow_the_root() {
        let t = Topics::new("KEpyDE1");
        assert_eq!(&**t.class(Class::BlueDotUpdate), "KEpyDE1/BlueDOTUpdate");
        assert_eq!(&**t.class(Class::StateUpdate), "KEpyDE1/StateUpdate");
        assert_eq!(&**t.profile_id(), "KEpyDE1/update/de1/profile/id");
        assert_eq!(
            t.status(StatusTopic::Process(ProcessRole::Recorder)),
            "KEpyDE1/status/db_recorder"
        );
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
