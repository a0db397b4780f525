//! Events published by the controller for the outbound MQTT API (and other listeners).
//!
//! There is one variant per payload class pyDE1 2.0 publishes on MQTT (`pyde1-mqtt-api.md`
//! §2–§6), named as that class. Each carries what the outbound process needs to render
//! pyDE1's payload exactly; fixed parts of the payload (the class name, its semantic
//! version, the sender when it never varies) are known to the renderer and not sent.
//!
//! Times are epoch seconds as `f64`, as pyDE1 stamps them. Events that arrive several
//! times a second ([`ShotSampleWithVolumesUpdate`], [`WeightAndFlowUpdate`],
//! [`WaterLevelUpdate`], [`StateUpdate`]) are `Copy` and hold no heap data.
//!
//! These types are bincode 1.3 encoded between processes, so they use only plain serde
//! derives (no tagging, flattening or skipping).

pub use de1_protocol::state::{MachineState, Substate};
use serde::{Deserialize, Serialize};

/// Something that happened in the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// Keeps a quiet connection observably alive; not published.
    Heartbeat,
    /// Every DE1 StateInfo notification, repeats included (`StateUpdate` 1.0.0).
    StateUpdate(StateUpdate),
    /// Every DE1 ShotSample notification (`ShotSampleWithVolumesUpdate` 1.2.0).
    ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate),
    /// Every DE1 WaterLevels notification (`WaterLevelUpdate` 1.0.0).
    WaterLevelUpdate(WaterLevelUpdate),
    /// Every accepted scale weight report (`WeightAndFlowUpdate` 1.0.0).
    WeightAndFlowUpdate(WeightAndFlowUpdate),
    /// A tare request was confirmed by a near-zero weight (`ScaleTareSeen` 1.0.0).
    ScaleTareSeen(ScaleTareSeen),
    /// A scale button was pressed (`ScaleButtonPress` 1.0.0).
    ScaleButtonPress(ScaleButtonPress),
    /// The scale object changed class, address or name (`ScaleChange` 1.1.0).
    ScaleChange(ScaleChange),
    /// A flow-sequencer gate was set or cleared (`SequencerGateNotification` 1.1.0).
    SequencerGateNotification(SequencerGateNotification),
    /// Stop-at / move-on / steam-to-temperature armed, triggered or disarmed
    /// (`StopAtNotification` 1.1.0).
    StopAtNotification(StopAtNotification),
    /// The scale's tare-and-hold was switched (`AutoTareNotification` 1.0.0).
    AutoTareNotification(AutoTareNotification),
    /// A device's capture/readiness changed (`DeviceAvailability` 1.1.0).
    DeviceAvailability(DeviceAvailability),
    /// The older form of [`Event::DeviceAvailability`], sent right after each of them
    /// (`ConnectivityChange` 1.1.0; see [`ConnectivityState::from_availability`]).
    ConnectivityChange(ConnectivityChange),
    /// Firmware upload progress (`FirmwareUpload` 1.0.0).
    FirmwareUpload(FirmwareUpload),
    /// Bluetooth scan progress (`ScanResults` 1.0.0).
    ScanResults(ScanResults),
    /// A BlueDOT thermometer report (`BlueDOTUpdate` 1.0.0).
    BlueDotUpdate(BlueDotUpdate),
    /// A whole settings area after a PATCH/PUT (`update/de1/control|setting|calibration`).
    AreaUpdate(AreaUpdate),
    /// The profile id after `PUT de1/profile/id` (`update/de1/profile/id`).
    ProfileIdUpdate(ProfileIdUpdate),
    /// A log record for the `log` and `log/record` topics.
    Log(LogEntry),
    /// A process came up, stopped, or died (retained `status/...` topics).
    ProcessStatus(ProcessStatus),
}

impl Event {
    /// High-rate measurements that a congested consumer may drop (the oldest first)
    /// without losing state: shot samples, weight reports and water levels.
    pub const fn is_droppable(&self) -> bool {
        matches!(
            self,
            Event::ShotSampleWithVolumesUpdate(_)
                | Event::WeightAndFlowUpdate(_)
                | Event::WaterLevelUpdate(_)
        )
    }
}

/// The three times of pyDE1's payload envelope, epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    /// When the triggering data arrived (e.g. the Bluetooth notification).
    pub arrival_time: f64,
    /// When the payload was created.
    pub create_time: f64,
    /// When the event was dispatched.
    pub event_time: f64,
}

impl Stamp {
    /// All three times equal.
    pub const fn at(t: f64) -> Self {
        Stamp {
            arrival_time: t,
            create_time: t,
            event_time: t,
        }
    }
}

/// The object that published a payload (pyDE1's `sender`, a Python class name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Sender {
    /// `DE1`
    De1,
    /// `ScaleProcessor`
    ScaleProcessor,
    /// `FlowSequencerImpl`
    FlowSequencer,
    /// `BluetoothScanner`
    BluetoothScanner,
    /// `BlueDOT`
    BlueDot,
    /// A scale object of the given class.
    Scale(ScaleClass),
}

/// The class of the scale object (pyDE1 class names; the scale's `name` is
/// `"<class>: <advertised name>"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScaleClass {
    /// `GenericScale`: no specific scale chosen yet.
    Generic,
    /// `AtomaxSkaleII`
    AtomaxSkaleII,
    /// `AcaiaAcaia`
    AcaiaAcaia,
    /// `AcaiaLunar`
    AcaiaLunar,
    /// `AcaiaProch`
    AcaiaProch,
    /// `AcaiaPearlS`
    AcaiaPearlS,
    /// `AcaiaPyxis`
    AcaiaPyxis,
    /// `FelicitaArc`
    FelicitaArc,
}

/// `StateUpdate`. Sender `DE1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StateUpdate {
    pub stamp: Stamp,
    #[serde(with = "state_byte")]
    pub state: MachineState,
    #[serde(with = "substate_byte")]
    pub substate: Substate,
    /// State of the previous notification (`NoRequest` before the first).
    #[serde(with = "state_byte")]
    pub previous_state: MachineState,
    /// Substate of the previous notification (`NoState` before the first).
    #[serde(with = "substate_byte")]
    pub previous_substate: Substate,
    /// FatalError or a substate from 200.
    pub is_error_state: bool,
}

/// Number of per-frame volume accumulators (`volume_by_frames`).
pub const VOLUME_FRAMES: usize = 20;

/// `ShotSampleWithVolumesUpdate`: a DE1 ShotSample with the running volumes. Sender `DE1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ShotSampleWithVolumesUpdate {
    pub stamp: Stamp,
    /// DE1 clock, AC half-cycles, wrapping.
    pub sample_time: u16,
    /// bar
    pub group_pressure: f64,
    /// mL/s
    pub group_flow: f64,
    /// °C
    pub mix_temp: f64,
    /// °C (group head)
    pub head_temp: f64,
    /// °C
    pub set_mix_temp: f64,
    /// °C
    pub set_head_temp: f64,
    /// bar
    pub set_group_pressure: f64,
    /// mL/s
    pub set_group_flow: f64,
    pub frame_number: u8,
    /// °C
    pub steam_temp: u8,
    /// Epoch seconds of the sample (pyDE1: equal to `arrival_time`).
    pub de1_time: f64,
    /// mL accumulated in preinfuse frames of the current sequence.
    pub volume_preinfuse: f64,
    /// mL accumulated after the preinfuse frames.
    pub volume_pour: f64,
    /// mL, preinfuse + pour.
    pub volume_total: f64,
    /// mL per profile frame; `None` before the first sequence since start or
    /// connection (rendered `[]`).
    pub volume_by_frames: Option<[f64; VOLUME_FRAMES]>,
}

/// `WaterLevelUpdate`. Sender `DE1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WaterLevelUpdate {
    pub stamp: Stamp,
    /// mm above the sensor reference.
    pub level: f64,
    /// Refill threshold, mm.
    pub start_fill_level: f64,
}

/// An estimate of the scale processor and the mean time of the samples it used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub time: f64,
}

/// `WeightAndFlowUpdate`. Sender `ScaleProcessor`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightAndFlowUpdate {
    pub stamp: Stamp,
    /// When the weight was on the scale (arrival − sensor lag); also
    /// `current_weight_time`.
    pub scale_time: f64,
    /// Latest weight, scale units (normally g).
    pub current_weight: f64,
    /// g/s over the last 11 samples; `None` until there is enough history (rendered
    /// as integer `0` value and time, as pyDE1 does).
    pub average_flow: Option<Estimate>,
    /// Median of the last 11 weights; `None` until there is enough history.
    pub median_weight: Option<Estimate>,
    /// g/s from two medians; `None` until there is enough history.
    pub median_flow: Option<Estimate>,
}

/// `ScaleTareSeen`. Sender: the scale object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleTareSeen {
    pub stamp: Stamp,
    pub sender: Sender,
}

/// `ScaleButtonPress`. Sender: the scale object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScaleButtonPress {
    pub stamp: Stamp,
    pub sender: Sender,
    /// Scale specific (Skale II: 1 = tare button).
    pub button: u8,
}

/// A device's role (`DeviceAvailability.role`, `ScanResults.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceRole {
    /// `de1`
    De1,
    /// `scale`
    Scale,
    /// `thermometer`
    Thermometer,
    /// `other`
    Other,
    /// `unknown`
    Unknown,
}

/// Capture/readiness of a device (`DeviceAvailability.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AvailabilityState {
    /// `initial`
    Initial,
    /// `unknown`
    Unknown,
    /// `capturing`
    Capturing,
    /// `captured`
    Captured,
    /// `ready`
    Ready,
    /// `not ready`
    NotReady,
    /// `releasing`
    Releasing,
    /// `released`
    Released,
}

/// `ScaleChange`. Sender: the scale object after the change. pyDE1 never fills in the
/// role, so it is always rendered `"unknown"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleChange {
    pub stamp: Stamp,
    pub sender: Sender,
    pub state: AvailabilityState,
    /// Device address, `""` if none.
    pub id: String,
    /// e.g. `"AtomaxSkaleII: Skale"`, `"GenericScale: (unknown)"`.
    pub name: String,
}

/// `DeviceAvailability`. Sender: the device object (`DE1`, a scale class, `BlueDOT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceAvailability {
    pub stamp: Stamp,
    pub sender: Sender,
    pub state: AvailabilityState,
    pub role: DeviceRole,
    /// Device address, `""` if none.
    pub id: String,
    /// e.g. `"DE1"`, `"DE1_None"`, `"AtomaxSkaleII: Skale"`.
    pub name: String,
    /// True for de1d's built-in simulator: rendered as an extra `"simulated": true`
    /// so nobody mistakes it for their machine (absent for real devices, whose
    /// documents stay exactly pyDE1's).
    pub simulated: bool,
}

/// Connection state in the deprecated `ConnectivityChange` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectivityState {
    /// `initial`
    Initial,
    /// `unknown`
    Unknown,
    /// `connecting`
    Connecting,
    /// `connected`
    Connected,
    /// `ready`
    Ready,
    /// `not_ready`
    NotReady,
    /// `disconnecting`
    Disconnecting,
    /// `disconnected`
    Disconnected,
}

impl ConnectivityState {
    /// The `ConnectivityChange` state sent alongside a `DeviceAvailability` state.
    /// `None` for `Unknown`: pyDE1 then repeats the previously sent connectivity state.
    pub const fn from_availability(state: AvailabilityState) -> Option<Self> {
        Some(match state {
            AvailabilityState::Initial => Self::Initial,
            AvailabilityState::Unknown => return None,
            AvailabilityState::Capturing => Self::Connecting,
            AvailabilityState::Captured => Self::Connected,
            AvailabilityState::Ready => Self::Ready,
            AvailabilityState::NotReady => Self::NotReady,
            AvailabilityState::Releasing => Self::Disconnecting,
            AvailabilityState::Released => Self::Disconnected,
        })
    }
}

/// `ConnectivityChange`. Sender as for the matching [`DeviceAvailability`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectivityChange {
    pub stamp: Stamp,
    pub sender: Sender,
    pub state: ConnectivityState,
    pub id: String,
    pub name: String,
}

/// The flow sequencer's gates, in the order they are cleared at sequence start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gate {
    /// `sequence_start`
    SequenceStart,
    /// `sequence_flow_begin`
    FlowBegin,
    /// `sequence_expect_drops`
    ExpectDrops,
    /// `sequence_exit_preinfuse`
    ExitPreinfuse,
    /// `sequence_flow_end`
    FlowEnd,
    /// `sequence_flow_state_exit`
    FlowStateExit,
    /// `sequence_last_drops`
    LastDrops,
    /// `sequence_complete`
    SequenceComplete,
}

impl Gate {
    /// All gates in clearing order.
    pub const ALL: [Gate; 8] = [
        Gate::SequenceStart,
        Gate::FlowBegin,
        Gate::ExpectDrops,
        Gate::ExitPreinfuse,
        Gate::FlowEnd,
        Gate::FlowStateExit,
        Gate::LastDrops,
        Gate::SequenceComplete,
    ];
}

/// `set` or `clear`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GateAction {
    Set,
    Clear,
}

/// A sequence id: a random (version 4) UUID, rendered in the usual hyphenated
/// lowercase form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SequenceId(pub [u8; 16]);

impl SequenceId {
    /// A version-4 UUID from 16 random bytes (sets the version and variant bits).
    pub const fn from_random_bytes(mut bytes: [u8; 16]) -> Self {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        SequenceId(bytes)
    }

    /// The 36-character hyphenated form, as ASCII bytes.
    pub fn to_ascii(&self) -> [u8; 36] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut pos = 0;
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                pos += 1;
            }
            out[pos] = HEX[usize::from(b >> 4)];
            out[pos + 1] = HEX[usize::from(b & 0x0f)];
            pos += 2;
        }
        out
    }
}

impl std::fmt::Display for SequenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ascii = self.to_ascii();
        // Only hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&ascii).map_err(|_| std::fmt::Error)?)
    }
}

/// `SequencerGateNotification`. Sender `FlowSequencerImpl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SequencerGateNotification {
    pub stamp: Stamp,
    pub name: Gate,
    pub action: GateAction,
    pub sequence_id: SequenceId,
    /// The sequence's flow state; `None` before the first sequence.
    #[serde(with = "opt_state_byte")]
    pub active_state: Option<MachineState>,
}

/// What a [`StopAtNotification`] is about (`stop_at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopAtKind {
    /// `time`
    Time,
    /// `volume`
    Volume,
    /// `weight`
    Weight,
    /// `move on by weight`
    MoveOnByWeight,
    /// `steam to temperature`
    SteamToTemperature,
}

/// `action` of a [`StopAtNotification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopAtAction {
    /// `enabled`
    Enabled,
    /// `triggered`
    Triggered,
    /// `disabled`
    Disabled,
    /// `de1 controlled`
    De1Controlled,
}

/// `StopAtNotification`. Sender `FlowSequencerImpl`; pyDE1 sets `arrival_time` equal to
/// `create_time`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StopAtNotification {
    pub stamp: Stamp,
    pub stop_at: StopAtKind,
    pub action: StopAtAction,
    /// Target (s, mL, g, degrees); `None` renders `null`.
    pub target_value: Option<f64>,
    /// Value at the time of the notification; `None` renders `null`.
    pub current_value: Option<f64>,
    #[serde(with = "state_byte")]
    pub active_state: MachineState,
    /// Profile frame, only during espresso flow.
    pub current_frame: Option<u8>,
}

/// `enabled` / `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AutoTareAction {
    Enabled,
    Disabled,
}

/// `AutoTareNotification`. Sender `FlowSequencerImpl`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AutoTareNotification {
    pub stamp: Stamp,
    pub action: AutoTareAction,
}

/// `FirmwareUpload.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FirmwareUploadState {
    /// `starting`
    Starting,
    /// `uploading`
    Uploading,
    /// `completed`
    Completed,
    /// `failed`
    Failed,
    /// `canceled`
    Canceled,
}

/// `FirmwareUpload`. Sender `DE1`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirmwareUpload {
    pub stamp: Stamp,
    pub state: FirmwareUploadState,
    /// Bytes sent so far (16-byte steps; may exceed `total` by up to 15).
    pub uploaded: u32,
    /// Bytes in the image.
    pub total: u32,
}

/// One device found by a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanDevice {
    pub address: String,
    pub name: String,
    pub rssi: i16,
}

/// `ScanResults`. Sender `BluetoothScanner`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanResults {
    pub stamp: Stamp,
    pub role: DeviceRole,
    /// `false` in the final report.
    pub scanning: bool,
    /// Everything found so far in this scan.
    pub devices: Vec<ScanDevice>,
}

/// Units of a BlueDOT thermometer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TemperatureUnits {
    /// `C`
    Celsius,
    /// `F`
    Fahrenheit,
}

/// `BlueDOTUpdate`. Sender `BlueDOT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlueDotUpdate {
    pub stamp: Stamp,
    /// In the thermometer's display units.
    pub temperature: i32,
    /// Alarm threshold, same units.
    pub high_alarm: i32,
    pub units: TemperatureUnits,
    /// Rendered as two lowercase hex digits.
    pub alarm_byte: u8,
    pub name: String,
}

/// A settings area published whole after a PATCH/PUT under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SettingsArea {
    /// `update/de1/control`
    Control,
    /// `update/de1/setting`
    Setting,
    /// `update/de1/calibration`
    Calibration,
}

/// `update/de1/<area>`: the area's values, as HTTP GET reports them, plus `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaUpdate {
    /// Epoch seconds, taken just before the area was read; appended as the last key.
    pub timestamp: f64,
    /// The area's typed values (the MQTT process writes the JSON).
    pub document: AreaDocument,
}

impl AreaUpdate {
    /// Which area this is (the topic it is published on).
    pub fn area(&self) -> SettingsArea {
        self.document.area()
    }
}

/// The typed values of one settings area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AreaDocument {
    Control(crate::command::Controls),
    Setting(crate::command::Settings),
    Calibration(crate::command::Calibration),
}

impl AreaDocument {
    pub fn area(&self) -> SettingsArea {
        match self {
            AreaDocument::Control(_) => SettingsArea::Control,
            AreaDocument::Setting(_) => SettingsArea::Setting,
            AreaDocument::Calibration(_) => SettingsArea::Calibration,
        }
    }
}

/// `update/de1/profile/id`: `{"id": <hex or null>, "timestamp": <epoch>}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProfileIdUpdate {
    /// SHA-1 of the profile source; `None` when the selection failed.
    pub id: Option<[u8; 20]>,
    pub timestamp: f64,
}

/// Python logging levels (`levelname`, `levelno`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    /// `DEBUG`, 10
    Debug,
    /// `INFO`, 20
    Info,
    /// `WARNING`, 30
    Warning,
    /// `ERROR`, 40
    Error,
    /// `CRITICAL`, 50
    Critical,
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warning,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug | log::Level::Trace => LogLevel::Debug,
        }
    }
}

/// A log record for `log` (formatted text) and `log/record` (JSON 1.0.0), with the
/// fields of a Python `LogRecord` that pyDE1 publishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Epoch seconds when the record was made.
    pub created: f64,
    pub level: LogLevel,
    pub message: String,
    /// Logger name.
    pub name: String,
    pub process: u32,
    /// e.g. `Controller`, `Inbound`.
    pub process_name: String,
    pub thread: u64,
    pub thread_name: String,
}

impl LogEntry {
    /// The entry for a record forwarded by a child process (`process`, `process_name`:
    /// the child's pid and name, e.g. [`crate::envelope::Role::process_name`]).
    pub fn from_record(
        record: &crate::log_record::LogRecord,
        process: u32,
        process_name: &str,
    ) -> Self {
        use crate::log_record::Level;
        LogEntry {
            created: record.time_us as f64 / 1e6,
            level: match record.level {
                Level::Error => LogLevel::Error,
                Level::Warn => LogLevel::Warning,
                Level::Info => LogLevel::Info,
                Level::Debug | Level::Trace => LogLevel::Debug,
            },
            message: record.message.clone(),
            name: record.target.clone(),
            process,
            process_name: process_name.to_owned(),
            thread: 0,
            thread_name: "MainThread".to_owned(),
        }
    }
}

/// A de1d process with a retained `status/...` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessRole {
    /// `status/controller`
    Controller,
    /// `status/http`
    Http,
    /// `status/db_recorder`
    Recorder,
}

/// The retained payload of a status topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Presence {
    /// `Here`: running.
    Here,
    /// `Gone`: stopped in an orderly way.
    Gone,
    /// `Died`: ended unexpectedly.
    Died,
}

/// A process's status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub process: ProcessRole,
    pub presence: Presence,
}

/// Serde for [`MachineState`] as its raw byte: compact, and keeps unknown values.
mod state_byte {
    use super::MachineState;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &MachineState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.to_u8())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MachineState, D::Error> {
        u8::deserialize(d).map(MachineState::from_u8)
    }
}

/// Serde for `Option<MachineState>` as an optional raw byte.
mod opt_state_byte {
    use super::MachineState;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<MachineState>, s: S) -> Result<S::Ok, S::Error> {
        v.map(MachineState::to_u8).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MachineState>, D::Error> {
        Option::<u8>::deserialize(d).map(|o| o.map(MachineState::from_u8))
    }
}

/// Serde for [`Substate`] as its raw byte.
mod substate_byte {
    use super::Substate;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Substate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(v.to_u8())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Substate, D::Error> {
        u8::deserialize(d).map(Substate::from_u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(e: &Event) -> Event {
        let bytes = bincode::serialize(e).expect("serialize");
        bincode::deserialize(&bytes).expect("deserialize")
    }

    #[test]
    fn bincode_round_trips_and_keeps_unknown_state_bytes() {
        let e = Event::StateUpdate(StateUpdate {
            stamp: Stamp::at(1.5),
            state: MachineState::Unknown(0x40),
            substate: Substate::Unknown(230),
            previous_state: MachineState::Espresso,
            previous_substate: Substate::Pour,
            is_error_state: true,
        });
        assert_eq!(round_trip(&e), e);

        let g = Event::SequencerGateNotification(SequencerGateNotification {
            stamp: Stamp::at(2.0),
            name: Gate::SequenceComplete,
            action: GateAction::Set,
            sequence_id: SequenceId([7; 16]),
            active_state: None,
        });
        assert_eq!(round_trip(&g), g);

        let s = Event::ScanResults(ScanResults {
            stamp: Stamp::at(3.0),
            role: DeviceRole::Scale,
            scanning: false,
            devices: vec![ScanDevice {
                address: "CF:75:75:00:5C:A1".into(),
                name: "Skale".into(),
                rssi: -62,
            }],
        });
        assert_eq!(round_trip(&s), s);
    }

    #[test]
    fn shot_sample_is_small_enough_to_copy() {
        // A shot sample crosses the socket several times a second: keep it in one
        // small stack value (no heap data).
        assert!(std::mem::size_of::<ShotSampleWithVolumesUpdate>() <= 320);
        let bytes = bincode::serialize(&Event::ShotSampleWithVolumesUpdate(
            ShotSampleWithVolumesUpdate {
                stamp: Stamp::at(0.0),
                sample_time: 0,
                group_pressure: 0.0,
                group_flow: 0.0,
                mix_temp: 0.0,
                head_temp: 0.0,
                set_mix_temp: 0.0,
                set_head_temp: 0.0,
                set_group_pressure: 0.0,
                set_group_flow: 0.0,
                frame_number: 0,
                steam_temp: 0,
                de1_time: 0.0,
                volume_preinfuse: 0.0,
                volume_pour: 0.0,
                volume_total: 0.0,
                volume_by_frames: None,
            },
        ))
        .expect("serialize");
        assert!(bytes.len() < 160, "{} bytes", bytes.len());
    }

    #[test]
    fn sequence_id_formats_as_uuid4() {
        let id = SequenceId::from_random_bytes([0xff; 16]);
        assert_eq!(id.to_string(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = SequenceId([
            0xaa, 0xec, 0x14, 0x3f, 0x70, 0x78, 0x41, 0x9b, 0x9a, 0x85, 0xd1, 0xf3, 0x70, 0xee,
            0xe4, 0xa5,
        ]);
        assert_eq!(id.to_string(), "aaec143f-7078-419b-9a85-d1f370eee4a5");
    }

    #[test]
    fn connectivity_follows_availability() {
        use AvailabilityState as A;
        use ConnectivityState as C;
        assert_eq!(C::from_availability(A::NotReady), Some(C::NotReady));
        assert_eq!(C::from_availability(A::Capturing), Some(C::Connecting));
        assert_eq!(C::from_availability(A::Released), Some(C::Disconnected));
        assert_eq!(C::from_availability(A::Unknown), None);
    }

    #[test]
    fn log_entries_from_forwarded_records() {
        let rec = crate::log_record::LogRecord {
            time_us: 1_795_509_483_062_342,
            level: crate::log_record::Level::Warn,
            target: "controller::scale".into(),
            message: "scale lost".into(),
            dropped_before: 0,
        };
        let e = LogEntry::from_record(&rec, 42, "Controller");
        assert_eq!(e.level, LogLevel::Warning);
        assert!((e.created - 1_795_509_483.062_342).abs() < 1e-6);
        assert_eq!((e.name.as_str(), e.process), ("controller::scale", 42));
    }

    #[test]
    fn only_measurements_are_droppable() {
        assert!(Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(0.0),
            level: 1.0,
            start_fill_level: 5.0
        })
        .is_droppable());
        assert!(!Event::AutoTareNotification(AutoTareNotification {
            stamp: Stamp::at(0.0),
            action: AutoTareAction::Enabled
        })
        .is_droppable());
    }
}
