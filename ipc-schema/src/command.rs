//! Commands sent by the inbound HTTP API to the controller, and the controller's replies.
//!
//! The command set follows pyDE1's HTTP resource catalogue (`pyde1-http-api.md` §4), but
//! carries typed values only: inbound parses and validates every request body (JSON, raw
//! text) completely, turns it into one [`Command`], and renders the typed [`Reply`] into
//! pyDE1's JSON documents. The controller never sees JSON except the raw bytes of a profile,
//! which it must encode itself (`de1_protocol::profile::encode_profile`) before writing
//! anything.
//!
//! | HTTP | command | reply |
//! |---|---|---|
//! | `GET <resource>` | [`Command::Get`] | [`Reply::Document`] |
//! | `PATCH <resource>` | [`Command::Patch`] (the changes in body order) | [`Reply::Patched`] |
//! | `PUT de1/profile` | [`Command::UploadProfile`] | [`Reply::Profile`] |
//! | `PUT de1/profile/store` | [`Command::StoreProfile`] | [`Reply::Profile`] |
//! | `PUT de1/profile/id` | [`Command::SelectProfile`] | [`Reply::Done`] |
//! | `PUT de1/firmware` | [`Command::UploadFirmware`] | [`Reply::Done`] |
//! | `PUT de1/firmware/cancel` | [`Command::CancelFirmwareUpload`] | [`Reply::Done`] |
//! | `PUT scan` | [`Command::Scan`] | [`Reply::Done`] |
//!
//! Resources that need no controller (`version`, `logs`, `log/{id}`, `de1/parameters`,
//! `flow_sequencer`, `flow_sequencer/settings`, `flow_sequencer/parameter_set`) are answered
//! by inbound alone and have no command.
//!
//! Values a controller receives have already passed inbound's type and range checks (the
//! ranges are stated on each variant); the controller checks again and answers
//! [`CommandErrorKind::BadRequest`] rather than write an out-of-range value.
//!
//! Everything here is bincode 1.3 encoded: plain enums and structs only.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use de1_protocol::state::{MachineState, Substate};

use crate::event::{
    AvailabilityState, DeviceAvailability, DeviceRole, FirmwareUpload, StateUpdate,
};

/// SHA-1 of a profile's source bytes: the profile id of `de1/profile/id`.
pub type ProfileId = [u8; 20];

/// A request to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Does nothing; answers [`Reply::Pong`]. Used for liveness checks.
    Ping,
    /// `GET <resource>`: a typed snapshot of the resource; answered by
    /// [`Reply::Document`] with the variant [`Resource::document_kind`] names.
    ///
    /// The controller enforces pyDE1's connectivity requirement of the resource
    /// ([`Resource::get_needs`]): [`CommandErrorKind::NotConnected`] otherwise.
    Get(Resource),
    /// `PATCH <resource>` (any resource whose [`Resource::can_patch`] holds): apply
    /// `changes` in order; answered by [`Reply::Patched`].
    ///
    /// `resource` is the path that was patched: it decides pyDE1's client-synchronisation
    /// push (an `update/de1/control|setting|calibration` area after a PATCH of a path
    /// under that area, none after `PATCH de1`). An empty `changes` (body `{}`) is valid
    /// and changes nothing. Each change needs what [`Change::needs`] says.
    Patch {
        resource: Resource,
        changes: Vec<Change>,
    },
    /// `PUT de1/profile`: encode the JSON v2 profile `source` (raw request body, at most
    /// the HTTP body limit) completely, then write it to the DE1, store it in the profile
    /// database and make it the current profile (`de1/profile/id`), applying the
    /// profile-driven settings (`pyde1-sequencer.md` §10). Needs a ready DE1. Answered by
    /// [`Reply::Profile`]; an invalid profile is [`CommandErrorKind::BadRequest`] with
    /// nothing written.
    UploadProfile { source: Vec<u8> },
    /// `PUT de1/profile/store`: like [`Command::UploadProfile`] but only validates,
    /// fingerprints and stores the profile; nothing is sent to the DE1, which need not be
    /// connected. Answered by [`Reply::Profile`].
    StoreProfile { source: Vec<u8> },
    /// `PUT de1/profile/id` (`{"id": "<sha1 hex>"}`): load the stored profile with this id
    /// and upload it as [`Command::UploadProfile`] does. Unknown id:
    /// [`CommandErrorKind::NotFound`]. Answered by [`Reply::Done`]; publishes
    /// `update/de1/profile/id`.
    SelectProfile { id: ProfileId },
    /// `PUT de1/firmware`: start uploading the firmware image in the file at `path` (in
    /// the runtime directory, written by inbound, at most the firmware body limit, already
    /// checked by inbound with `de1_protocol::firmware`). The controller reads and checks
    /// the whole file before it answers; inbound deletes the file once the reply (of
    /// either kind) arrives. The upload then runs in the background, reported by
    /// `FirmwareUpload` events and `GET de1/firmware`. Needs a ready DE1; an upload already
    /// running is [`CommandErrorKind::Busy`]. Answered by [`Reply::Done`] once started.
    UploadFirmware { path: PathBuf },
    /// `PUT de1/firmware/cancel`: cancel the running firmware upload. None running:
    /// [`CommandErrorKind::Conflict`]. Answered by [`Reply::Done`].
    CancelFirmwareUpload,
    /// `PUT scan` (body `de1`, `scale`, `thermometer`, `other` or `unknown`): start a
    /// Bluetooth scan for devices of that role, cancelling a running one; results arrive as
    /// `ScanResults` events. Answered by [`Reply::Done`] at once.
    Scan { role: DeviceRole },
}

impl Command {
    /// Short name for log lines (no payload, so no profile or firmware bytes in the log).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping => "Ping",
            Command::Get(_) => "Get",
            Command::Patch { .. } => "Patch",
            Command::UploadProfile { .. } => "UploadProfile",
            Command::StoreProfile { .. } => "StoreProfile",
            Command::SelectProfile { .. } => "SelectProfile",
            Command::UploadFirmware { .. } => "UploadFirmware",
            Command::CancelFirmwareUpload => "CancelFirmwareUpload",
            Command::Scan { .. } => "Scan",
        }
    }
}

/// The controller's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Answer to [`Command::Ping`].
    Pong,
    /// Answer to [`Command::Get`].
    Document(Document),
    /// Answer to [`Command::Patch`]: what the setters returned, in order (pyDE1's PATCH
    /// result list; usually empty).
    Patched(Vec<PatchOutput>),
    /// Answer to [`Command::UploadProfile`] and [`Command::StoreProfile`].
    Profile(ProfileRef),
    /// The command was carried out (or, for uploads and scans, started).
    Done,
}

/// A profile as stored: HTTP `{"fingerprint": <hex>, "id": <hex>}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProfileRef {
    /// SHA-1 of the profile source bytes.
    pub id: ProfileId,
    /// SHA-1 of the header and frame bytes sent to the DE1
    /// (`EncodedProfile::fingerprint_bytes`).
    pub fingerprint: [u8; 20],
}

/// One element of a PATCH result list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PatchOutput {
    /// After a [`Change::SelectDevice`]: the device's address after the change (`""` when
    /// none), rendered as a JSON string.
    Address(String),
}

/// Why the controller could not carry out a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CommandError {
    pub kind: CommandErrorKind,
    /// For people: what went wrong, e.g. `DE1 not connected`.
    pub message: String,
    /// The offending field of the request, when one is to blame, as a path of keys joined
    /// by `:` the way pyDE1 names them (`control:espresso:stop_at_weight`, `steps:3:pump`).
    pub path: Option<String>,
}

impl CommandError {
    /// An error not tied to a field.
    pub fn new(kind: CommandErrorKind, message: impl Into<String>) -> CommandError {
        CommandError {
            kind,
            message: message.into(),
            path: None,
        }
    }

    /// An error about one field of the request.
    pub fn at(
        kind: CommandErrorKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> CommandError {
        CommandError {
            kind,
            message: message.into(),
            path: Some(path.into()),
        }
    }
}

/// The class of a [`CommandError`]; the HTTP API maps each to a status code (given in
/// brackets) and names it in its error body ([`CommandErrorKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandErrorKind {
    /// The request is malformed or a value is out of range; also an invalid profile or
    /// firmware image (400).
    BadRequest,
    /// The thing asked for does not exist, e.g. no stored profile with that id (404).
    NotFound,
    /// The device the request needs is not connected, or connected but not ready yet
    /// (409). pyDE1: `DE1NotConnectedError`.
    NotConnected,
    /// The device's state does not permit the request (e.g. `SkipToNext` while Idle,
    /// capture without an address, nothing to cancel) (409).
    Conflict,
    /// Another operation of the same kind is running (firmware upload, scan) (409).
    Busy,
    /// The device cannot do this at all, e.g. a machine whose group-head controller is
    /// active must be started at the group head (418).
    DeviceCannot,
    /// The controller did not finish in time (408).
    Timeout,
    /// Not implemented by this device, firmware or program (501).
    NotImplemented,
    /// Anything else, e.g. a Bluetooth failure (500).
    Internal,
}

impl CommandErrorKind {
    /// Every kind.
    pub const ALL: [CommandErrorKind; 9] = [
        CommandErrorKind::BadRequest,
        CommandErrorKind::NotFound,
        CommandErrorKind::NotConnected,
        CommandErrorKind::Conflict,
        CommandErrorKind::Busy,
        CommandErrorKind::DeviceCannot,
        CommandErrorKind::Timeout,
        CommandErrorKind::NotImplemented,
        CommandErrorKind::Internal,
    ];

    /// Stable snake_case name, e.g. `not_connected`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandErrorKind::BadRequest => "bad_request",
            CommandErrorKind::NotFound => "not_found",
            CommandErrorKind::NotConnected => "not_connected",
            CommandErrorKind::Conflict => "conflict",
            CommandErrorKind::Busy => "busy",
            CommandErrorKind::DeviceCannot => "device_cannot",
            CommandErrorKind::Timeout => "timeout",
            CommandErrorKind::NotImplemented => "not_implemented",
            CommandErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for CommandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------

/// A device the controller manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Device {
    De1,
    Scale,
    Thermometer,
}

/// What a request needs of a device before the controller may carry it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Needs {
    /// Nothing: works whatever the devices' state.
    Nothing,
    /// The DE1 connected and initialised.
    ReadyDe1,
    /// The scale connected and initialised.
    ReadyScale,
}

/// A pyDE1 resource (`pyde1-http-api.md` §4) that the controller serves or that a PATCH
/// targets. Named after pyDE1's `Resource` members; [`Resource::path`] gives the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Resource {
    /// `de1` (aggregate of id, state, availability, connectivity, control, setting,
    /// calibration, read_once).
    De1,
    /// `de1/id`
    De1Id,
    /// `de1/mode` (PATCH only)
    De1Mode,
    /// `de1/state` (GET only)
    De1State,
    /// `de1/feature_flags` (GET; PATCH passes the method check but nothing is writable)
    De1FeatureFlags,
    /// `de1/profile/id`
    De1ProfileId,
    /// `de1/firmware` — GET is a de1d addition: the upload progress.
    De1Firmware,
    /// `de1/firmware/id` (GET only)
    De1FirmwareId,
    /// `de1/availability`
    De1Availability,
    /// `de1/connectivity`
    De1Connectivity,
    /// `de1/control` (aggregate)
    De1Control,
    /// `de1/control/espresso`
    De1ControlEspresso,
    /// `de1/control/steam`
    De1ControlSteam,
    /// `de1/control/hot_water`
    De1ControlHotWater,
    /// `de1/control/hot_water_rinse`
    De1ControlHotWaterRinse,
    /// `de1/control/tank_water_threshold`
    De1ControlTankWaterThreshold,
    /// `de1/setting` (aggregate)
    De1Setting,
    /// `de1/setting/auto_off_time`
    De1SettingAutoOffTime,
    /// `de1/setting/fan_threshold`
    De1SettingFanThreshold,
    /// `de1/setting/start_fill_level`
    De1SettingStartFillLevel,
    /// `de1/setting/before_flow`
    De1SettingBeforeFlow,
    /// `de1/setting/target_group_temp`
    De1SettingTargetGroupTemp,
    /// `de1/setting/usb_outlet`
    De1SettingUsbOutlet,
    /// `de1/setting/refill_kit`
    De1SettingRefillKit,
    /// `de1/setting/steam`
    De1SettingSteam,
    /// `de1/setting/time`
    De1SettingTime,
    /// `de1/calibration` (aggregate)
    De1Calibration,
    /// `de1/calibration/line_frequency`
    De1CalibrationLineFrequency,
    /// `de1/calibration/flow_multiplier`
    De1CalibrationFlowMultiplier,
    /// `de1/read_once_values` (GET only)
    De1ReadOnceValues,
    /// `de1/presence`
    De1Presence,
    /// `scale` (aggregate of id, availability, connectivity)
    Scale,
    /// `scale/id`
    ScaleId,
    /// `scale/tare` (PATCH only)
    ScaleTare,
    /// `scale/display` (PATCH only)
    ScaleDisplay,
    /// `scale/availability`
    ScaleAvailability,
    /// `scale/connectivity`
    ScaleConnectivity,
    /// `thermometer` (aggregate of id, availability)
    Thermometer,
    /// `thermometer/id`
    ThermometerId,
    /// `thermometer/availability`
    ThermometerAvailability,
}

/// Which [`Document`] variant answers a [`Command::Get`] of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    De1,
    DeviceId,
    De1State,
    FeatureFlags,
    ProfileId,
    FirmwareProgress,
    FirmwareId,
    Availability,
    Connectivity,
    Controls,
    Settings,
    Calibration,
    ReadOnce,
    Presence,
    Scale,
    Thermometer,
}

impl Resource {
    /// Every resource, in catalogue order.
    pub const ALL: [Resource; 40] = [
        Resource::De1,
        Resource::De1Id,
        Resource::De1Mode,
        Resource::De1State,
        Resource::De1FeatureFlags,
        Resource::De1ProfileId,
        Resource::De1Firmware,
        Resource::De1FirmwareId,
        Resource::De1Availability,
        Resource::De1Connectivity,
        Resource::De1Control,
        Resource::De1ControlEspresso,
        Resource::De1ControlSteam,
        Resource::De1ControlHotWater,
        Resource::De1ControlHotWaterRinse,
        Resource::De1ControlTankWaterThreshold,
        Resource::De1Setting,
        Resource::De1SettingAutoOffTime,
        Resource::De1SettingFanThreshold,
        Resource::De1SettingStartFillLevel,
        Resource::De1SettingBeforeFlow,
        Resource::De1SettingTargetGroupTemp,
        Resource::De1SettingUsbOutlet,
        Resource::De1SettingRefillKit,
        Resource::De1SettingSteam,
        Resource::De1SettingTime,
        Resource::De1Calibration,
        Resource::De1CalibrationLineFrequency,
        Resource::De1CalibrationFlowMultiplier,
        Resource::De1ReadOnceValues,
        Resource::De1Presence,
        Resource::Scale,
        Resource::ScaleId,
        Resource::ScaleTare,
        Resource::ScaleDisplay,
        Resource::ScaleAvailability,
        Resource::ScaleConnectivity,
        Resource::Thermometer,
        Resource::ThermometerId,
        Resource::ThermometerAvailability,
    ];

    /// The resource path without the server root, e.g. `de1/control/espresso`.
    pub const fn path(self) -> &'static str {
        match self {
            Resource::De1 => "de1",
            Resource::De1Id => "de1/id",
            Resource::De1Mode => "de1/mode",
            Resource::De1State => "de1/state",
            Resource::De1FeatureFlags => "de1/feature_flags",
            Resource::De1ProfileId => "de1/profile/id",
            Resource::De1Firmware => "de1/firmware",
            Resource::De1FirmwareId => "de1/firmware/id",
            Resource::De1Availability => "de1/availability",
            Resource::De1Connectivity => "de1/connectivity",
            Resource::De1Control => "de1/control",
            Resource::De1ControlEspresso => "de1/control/espresso",
            Resource::De1ControlSteam => "de1/control/steam",
            Resource::De1ControlHotWater => "de1/control/hot_water",
            Resource::De1ControlHotWaterRinse => "de1/control/hot_water_rinse",
            Resource::De1ControlTankWaterThreshold => "de1/control/tank_water_threshold",
            Resource::De1Setting => "de1/setting",
            Resource::De1SettingAutoOffTime => "de1/setting/auto_off_time",
            Resource::De1SettingFanThreshold => "de1/setting/fan_threshold",
            Resource::De1SettingStartFillLevel => "de1/setting/start_fill_level",
            Resource::De1SettingBeforeFlow => "de1/setting/before_flow",
            Resource::De1SettingTargetGroupTemp => "de1/setting/target_group_temp",
            Resource::De1SettingUsbOutlet => "de1/setting/usb_outlet",
            Resource::De1SettingRefillKit => "de1/setting/refill_kit",
            Resource::De1SettingSteam => "de1/setting/steam",
            Resource::De1SettingTime => "de1/setting/time",
            Resource::De1Calibration => "de1/calibration",
            Resource::De1CalibrationLineFrequency => "de1/calibration/line_frequency",
            Resource::De1CalibrationFlowMultiplier => "de1/calibration/flow_multiplier",
            Resource::De1ReadOnceValues => "de1/read_once_values",
            Resource::De1Presence => "de1/presence",
            Resource::Scale => "scale",
            Resource::ScaleId => "scale/id",
            Resource::ScaleTare => "scale/tare",
            Resource::ScaleDisplay => "scale/display",
            Resource::ScaleAvailability => "scale/availability",
            Resource::ScaleConnectivity => "scale/connectivity",
            Resource::Thermometer => "thermometer",
            Resource::ThermometerId => "thermometer/id",
            Resource::ThermometerAvailability => "thermometer/availability",
        }
    }

    /// The resource at `path` (without the server root).
    pub fn from_path(path: &str) -> Option<Resource> {
        Resource::ALL.into_iter().find(|r| r.path() == path)
    }

    /// The document a GET answers with; `None` for resources that cannot be read
    /// (`de1/mode`, `scale/tare`, `scale/display`).
    pub const fn document_kind(self) -> Option<DocumentKind> {
        use DocumentKind as K;
        Some(match self {
            Resource::De1 => K::De1,
            Resource::De1Id | Resource::ScaleId | Resource::ThermometerId => K::DeviceId,
            Resource::De1State => K::De1State,
            Resource::De1FeatureFlags => K::FeatureFlags,
            Resource::De1ProfileId => K::ProfileId,
            Resource::De1Firmware => K::FirmwareProgress,
            Resource::De1FirmwareId => K::FirmwareId,
            Resource::De1Availability
            | Resource::ScaleAvailability
            | Resource::ThermometerAvailability => K::Availability,
            Resource::De1Connectivity | Resource::ScaleConnectivity => K::Connectivity,
            Resource::De1Control
            | Resource::De1ControlEspresso
            | Resource::De1ControlSteam
            | Resource::De1ControlHotWater
            | Resource::De1ControlHotWaterRinse
            | Resource::De1ControlTankWaterThreshold => K::Controls,
            Resource::De1Setting
            | Resource::De1SettingAutoOffTime
            | Resource::De1SettingFanThreshold
            | Resource::De1SettingStartFillLevel
            | Resource::De1SettingBeforeFlow
            | Resource::De1SettingTargetGroupTemp
            | Resource::De1SettingUsbOutlet
            | Resource::De1SettingRefillKit
            | Resource::De1SettingSteam
            | Resource::De1SettingTime => K::Settings,
            Resource::De1Calibration
            | Resource::De1CalibrationLineFrequency
            | Resource::De1CalibrationFlowMultiplier => K::Calibration,
            Resource::De1ReadOnceValues => K::ReadOnce,
            Resource::De1Presence => K::Presence,
            Resource::Scale => K::Scale,
            Resource::Thermometer => K::Thermometer,
            Resource::De1Mode | Resource::ScaleTare | Resource::ScaleDisplay => return None,
        })
    }

    /// True if the resource accepts PATCH (pyDE1's `can_patch`; `de1/feature_flags` passes
    /// although none of its keys is writable).
    pub const fn can_patch(self) -> bool {
        !matches!(
            self,
            Resource::De1State
                | Resource::De1ProfileId
                | Resource::De1Firmware
                | Resource::De1FirmwareId
                | Resource::De1ReadOnceValues
        )
    }

    /// What a GET of the resource needs (`pyde1-http-api.md` §2.3).
    pub const fn get_needs(self) -> Needs {
        match self {
            Resource::De1Id
            | Resource::De1Availability
            | Resource::De1Connectivity
            | Resource::De1ControlEspresso
            | Resource::De1Firmware
            | Resource::ScaleId
            | Resource::ScaleAvailability
            | Resource::ScaleConnectivity
            | Resource::Thermometer
            | Resource::ThermometerId
            | Resource::ThermometerAvailability => Needs::Nothing,
            Resource::Scale | Resource::ScaleTare | Resource::ScaleDisplay => Needs::ReadyScale,
            _ => Needs::ReadyDe1,
        }
    }

    /// The settings area a PATCH of this resource publishes afterwards
    /// (`update/de1/<area>`), if any. `de1` itself publishes nothing.
    pub const fn update_area(self) -> Option<crate::event::SettingsArea> {
        use crate::event::SettingsArea;
        match self.document_kind() {
            Some(DocumentKind::Controls) => Some(SettingsArea::Control),
            Some(DocumentKind::Settings) => Some(SettingsArea::Setting),
            Some(DocumentKind::Calibration) => Some(SettingsArea::Calibration),
            _ => None,
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

// ---------------------------------------------------------------------------------------
// GET documents
// ---------------------------------------------------------------------------------------

/// A typed snapshot answering [`Command::Get`]; inbound renders pyDE1's JSON from it.
///
/// For a leaf of an area (`de1/setting/fan_threshold`, `de1/control/steam`,
/// `de1/calibration/hz`…) the controller answers with the whole area; inbound renders the
/// leaf. Values that live on the DE1 and are re-read on every GET in pyDE1
/// (`usb_outlet`, `presence`) must be fresh when the request names them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Document {
    /// `de1`
    De1(Box<De1Document>),
    /// `de1/id`, `scale/id`, `thermometer/id`
    DeviceId(DeviceId),
    /// `de1/state`
    De1State(De1State),
    /// `de1/feature_flags`
    FeatureFlags(FeatureFlags),
    /// `de1/profile/id`: the id of the profile last uploaded in this connection.
    ProfileId(Option<ProfileId>),
    /// `de1/firmware` (de1d addition)
    FirmwareProgress(FirmwareProgress),
    /// `de1/firmware/id`: the firmware build number (MMR CPU_FIRMWARE_BUILD).
    FirmwareId(Option<u32>),
    /// `de1/availability`, `scale/availability`, `thermometer/availability`
    Availability(Availability),
    /// `de1/connectivity`, `scale/connectivity`
    Connectivity(ConnectivityMode),
    /// `de1/control` and each `de1/control/…`
    Controls(Controls),
    /// `de1/setting` and each `de1/setting/…`
    Settings(Settings),
    /// `de1/calibration` and each `de1/calibration/…`
    Calibration(Calibration),
    /// `de1/read_once_values`
    ReadOnce(ReadOnce),
    /// `de1/presence`: MMR USER_PRESENT (firmware ≥ 1320), `None` when not implemented.
    Presence(Option<bool>),
    /// `scale`
    Scale(ScaleDocument),
    /// `thermometer`
    Thermometer(ThermometerDocument),
}

impl Document {
    /// Which kind this is (to check it against [`Resource::document_kind`]).
    pub const fn kind(&self) -> DocumentKind {
        match self {
            Document::De1(_) => DocumentKind::De1,
            Document::DeviceId(_) => DocumentKind::DeviceId,
            Document::De1State(_) => DocumentKind::De1State,
            Document::FeatureFlags(_) => DocumentKind::FeatureFlags,
            Document::ProfileId(_) => DocumentKind::ProfileId,
            Document::FirmwareProgress(_) => DocumentKind::FirmwareProgress,
            Document::FirmwareId(_) => DocumentKind::FirmwareId,
            Document::Availability(_) => DocumentKind::Availability,
            Document::Connectivity(_) => DocumentKind::Connectivity,
            Document::Controls(_) => DocumentKind::Controls,
            Document::Settings(_) => DocumentKind::Settings,
            Document::Calibration(_) => DocumentKind::Calibration,
            Document::ReadOnce(_) => DocumentKind::ReadOnce,
            Document::Presence(_) => DocumentKind::Presence,
            Document::Scale(_) => DocumentKind::Scale,
            Document::Thermometer(_) => DocumentKind::Thermometer,
        }
    }
}

/// `de1`: the aggregate document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct De1Document {
    pub id: DeviceId,
    pub state: De1State,
    pub availability: Availability,
    pub connectivity: ConnectivityMode,
    pub control: Controls,
    pub setting: Settings,
    pub calibration: Calibration,
    /// Rendered under the key `read_once`.
    pub read_once: ReadOnce,
}

/// `scale`: the aggregate document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScaleDocument {
    pub id: DeviceId,
    pub availability: Availability,
    pub connectivity: ConnectivityMode,
}

/// `thermometer`: the aggregate document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThermometerDocument {
    pub id: DeviceId,
    pub availability: Availability,
}

/// `*/id`: `{"id": <address or "">, "name": <name>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceId {
    /// Bluetooth address; `None` renders `""`.
    pub address: Option<String>,
    /// The advertised name when known, else pyDE1's placeholder (`DE1_None`,
    /// `GenericScale: (unknown)`, `BlueDOT_None`…).
    pub name: String,
    /// True for de1d's built-in simulator: rendered as an extra `"simulated": true`
    /// so nobody mistakes it for their machine (absent for real devices, whose
    /// documents stay exactly pyDE1's).
    pub simulated: bool,
}

/// `de1/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct De1State {
    #[serde(with = "state_byte")]
    pub state: MachineState,
    #[serde(with = "substate_byte")]
    pub substate: Substate,
    /// Epoch seconds of the last StateInfo notification.
    pub last_updated: f64,
    /// The last `StateUpdate` published, rendered as the `mqtt` string (omitted if none).
    pub last_update: Option<StateUpdate>,
}

/// `*/availability` (GET).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    /// Rendered as `mode`: `initial`, `unknown`, `capturing`, `captured`, `ready`,
    /// `not ready`, `releasing`, `released`.
    pub state: AvailabilityState,
    /// The last `DeviceAvailability` published, rendered as the `mqtt` string (omitted if
    /// none).
    pub last_event: Option<DeviceAvailability>,
    /// True for de1d's built-in simulator: rendered as an extra `"simulated": true`
    /// so nobody mistakes it for their machine (absent for real devices, whose
    /// documents stay exactly pyDE1's).
    pub simulated: bool,
}

/// `*/connectivity` `mode` (GET; PATCH uses [`CaptureRequest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConnectivityMode {
    /// `not_connected`
    NotConnected,
    /// `connected`: captured, initialisation not finished.
    Connected,
    /// `ready`
    Ready,
}

/// `de1/feature_flags` `feature_flags`: what the connected firmware offers; `None` (null)
/// while the firmware version is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureFlags {
    pub fw_version: Option<u32>,
    /// GHC_INFO bit 0x04.
    pub ghc_active: Option<bool>,
    /// Last implemented MMR address (low 16 bits of 0x80xxxx), e.g. 0x3860.
    pub last_mmr0x80: Option<u32>,
    pub safe_to_read_mmr_continuous: Option<bool>,
    pub skip_to_next: Option<bool>,
    pub rinse_control: Option<bool>,
    pub sched_idle: Option<bool>,
    pub steam_purge_mode: Option<bool>,
    pub allow_usb_charging: Option<bool>,
    pub app_feature_flag_user_present: Option<bool>,
    pub user_present: Option<bool>,
    pub refill_kit_present: Option<bool>,
    pub hot_water_flow_control: Option<bool>,
    pub mmr_max_shot_press: Option<bool>,
    pub mmr_pref_ghc_mci: Option<bool>,
}

/// `de1/firmware` (GET, de1d addition): the current or last firmware upload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FirmwareProgress {
    /// True while an upload runs.
    pub running: bool,
    /// The last `FirmwareUpload` report of the current or last upload; `None` if none ran
    /// since the controller started.
    pub last: Option<FirmwareUpload>,
}

/// `de1/control`: the five control documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Controls {
    pub espresso: EspressoControl,
    pub steam: SteamControl,
    pub hot_water: HotWaterControl,
    pub hot_water_rinse: HotWaterRinseControl,
    pub tank_water_threshold: TankWaterThreshold,
}

/// `de1/control/espresso` (flow-sequencer values; no DE1 needed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EspressoControl {
    /// s; stored and reported, not acted on for espresso.
    pub stop_at_time: Option<f64>,
    /// mL of pour volume.
    pub stop_at_volume: Option<f64>,
    /// g.
    pub stop_at_weight: Option<f64>,
    /// g per profile frame (index = frame), trailing `None`s trimmed.
    pub move_on_weight: Vec<Option<f64>>,
    pub disable_auto_tare: bool,
    pub profile_can_override_stop_limits: bool,
    pub profile_can_override_tank_temperature: bool,
    /// bar.
    pub first_drops_threshold: Option<f64>,
    /// s.
    pub last_drops_minimum_time: f64,
}

/// `de1/control/steam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteamControl {
    /// s; ShotSettings.TargetSteamLength.
    pub stop_at_time: Option<u8>,
    pub disable_auto_tare: bool,
}

/// `de1/control/hot_water`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotWaterControl {
    /// s; ShotSettings.TargetHotWaterLength.
    pub stop_at_time: Option<u8>,
    /// mL; ShotSettings.TargetHotWaterVol.
    pub stop_at_volume: Option<u8>,
    /// g (flow sequencer).
    pub stop_at_weight: Option<f64>,
    pub disable_auto_tare: bool,
    /// °C; ShotSettings.TargetHotWaterTemp.
    pub temperature: Option<u8>,
}

/// `de1/control/hot_water_rinse` ("flush").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotWaterRinseControl {
    /// s; MMR FLUSH_TIMEOUT (firmware ≥ 1283) or the sequencer's timer.
    pub stop_at_time: Option<f64>,
    pub disable_auto_tare: bool,
    /// °C; MMR FLUSH_TEMP.
    pub temperature: Option<f64>,
    /// mL/s; MMR FLUSH_FLOW_RATE.
    pub flow: Option<f64>,
}

/// `de1/control/tank_water_threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TankWaterThreshold {
    /// °C; MMR TANK_TEMP (raw integer).
    pub temperature: Option<u32>,
}

/// `de1/setting`: the nine setting documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// `auto_off_time` `time`: minutes; `None`: disabled.
    pub auto_off_time: Option<f64>,
    /// `fan_threshold` `temperature`: °C, MMR FAN_THRESHOLD.
    pub fan_threshold: Option<u32>,
    /// `start_fill_level` `start_fill_level`: mm, WaterLevels.StartFillLevel decoded.
    pub start_fill_level: Option<f64>,
    /// `before_flow`.
    pub before_flow: BeforeFlow,
    /// `target_group_temp` `temperature`: °C, ShotSettings.TargetGroupTemp decoded.
    pub target_group_temp: Option<f64>,
    /// `usb_outlet` `enabled`: MMR ALLOW_USB_CHARGING (firmware ≥ 1320).
    pub usb_outlet: Option<bool>,
    /// `refill_kit` `present`: MMR REFILL_KIT_PRESENT (firmware ≥ 1320).
    pub refill_kit: Option<bool>,
    /// `steam`.
    pub steam: SteamSetting,
    /// `time` `timestamp`: epoch s last written with SetTime (0 if never).
    pub time: u64,
}

/// `de1/setting/before_flow` (MMR heater values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeforeFlow {
    /// mL/s; HEATER_UP1_FLOW.
    pub heater_phase1_flow: Option<f64>,
    /// mL/s; HEATER_UP2_FLOW.
    pub heater_phase2_flow: Option<f64>,
    /// s; HEATER_UP2_TIMEOUT.
    pub heater_phase2_timeout: Option<f64>,
    /// °C; WATER_HEATER_IDLE_TEMP.
    pub heater_idle_temperature: Option<f64>,
}

/// `de1/setting/steam`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SteamSetting {
    /// °C, ShotSettings.TargetSteamTemp; `None` when the DE1 reports 0 (heater off).
    pub temperature: Option<u8>,
    /// mL/s; MMR TARGET_STEAM_FLOW.
    pub flow: Option<f64>,
    /// s; MMR STEAM_START_SECS.
    pub high_flow_time: Option<f64>,
    /// MMR STEAM_PURGE_MODE (firmware ≥ 1320).
    pub purge_deferred: Option<bool>,
}

/// `de1/calibration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `line_frequency` `hz`: 50 or 60 (controller-local).
    pub line_frequency: u32,
    /// `flow_multiplier` `multiplier`: MMR CAL_FLOW_EST.
    pub flow_multiplier: Option<f64>,
}

/// `de1/read_once_values` (values read once after connecting; `None` renders null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadOnce {
    /// MMR HW_CONFIG, the bytes as read (rendered as lowercase hex).
    pub hw_config: Option<[u8; 4]>,
    /// MMR MODEL, the bytes as read.
    pub model: Option<[u8; 4]>,
    /// MMR CPU_BOARD_MODEL / 1000, e.g. 1.3.
    pub cpu_board_model: Option<f64>,
    /// MMR V13_MODEL raw value (rendered `UNSET`, `DE1`, `DE1PLUS`, … `UNRECOGNIZED`).
    pub firmware_model: Option<u32>,
    /// MMR CPU_FIRMWARE_BUILD.
    pub firmware_build_number: Option<u32>,
    /// MMR GHC_INFO raw bits (rendered as flag names joined by `|`).
    pub ghc_info: Option<u32>,
    /// MMR SERIAL_NUMBER, the bytes as read.
    pub serial_number: Option<[u8; 4]>,
    /// MMR HEATER_VOLTAGE raw (1000 added when set manually).
    pub heater_voltage: Option<u32>,
    /// Versions characteristic, BLE block.
    pub version_ble: VersionBlock,
    /// Versions characteristic, firmware ("LV") block.
    pub version_lv: VersionBlock,
}

/// One block of the Versions characteristic as pyDE1 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VersionBlock {
    pub api: u8,
    /// F8_1_7 decoded.
    pub release: f64,
    pub commits: u16,
    pub changes: u8,
    /// Rendered as an integer under the key `blesha_hexstr` (sic).
    pub sha: u32,
}

// ---------------------------------------------------------------------------------------
// PATCH changes
// ---------------------------------------------------------------------------------------

/// One validated change of a PATCH body, in body order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// `de1/id`, `scale/id`, `thermometer/id` `id`: assign, scan for, or forget the
    /// device; reports [`PatchOutput::Address`]. Needs nothing.
    SelectDevice {
        device: Device,
        selection: DeviceSelection,
    },
    /// `de1/mode` `mode` (`pyde1-http-api.md` §7). Needs a ready DE1.
    Mode(ModeRequest),
    /// `de1/availability`, `scale/availability`, `thermometer/availability` `mode`
    /// (`C`/`R`): queue a capture or release and return at once. Needs nothing.
    Availability {
        device: Device,
        request: CaptureRequest,
    },
    /// `de1/connectivity`, `scale/connectivity` `mode` (`connected`/`not_connected`):
    /// capture or release, waiting for the connection (or disconnection). Needs nothing.
    Connectivity {
        device: Device,
        request: CaptureRequest,
    },
    /// A key under `de1/control/…`.
    Control(ControlChange),
    /// A key under `de1/setting/…`.
    Setting(SettingChange),
    /// A key under `de1/calibration/…`.
    Calibration(CalibrationChange),
    /// `de1/presence` `user`: tell the DE1 a user is (or is not) present (MMR
    /// USER_PRESENT). Needs a ready DE1.
    UserPresent(bool),
    /// `scale/tare` `tare: true` (`false`/`null` are valid and send no change). Needs a
    /// ready scale.
    ScaleTare,
    /// `scale/display` `display_on`. Needs a ready scale.
    ScaleDisplay(bool),
}

impl Change {
    /// What the change needs before the controller may carry it out.
    pub const fn needs(&self) -> Needs {
        match self {
            Change::SelectDevice { .. }
            | Change::Availability { .. }
            | Change::Connectivity { .. } => Needs::Nothing,
            Change::Control(c) => c.needs(),
            Change::Setting(_) | Change::Calibration(_) | Change::Mode(_) => Needs::ReadyDe1,
            Change::UserPresent(_) => Needs::ReadyDe1,
            Change::ScaleTare | Change::ScaleDisplay(_) => Needs::ReadyScale,
        }
    }
}

/// The value of an `id` PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceSelection {
    /// `null` or `""`: release and forget the device.
    Forget,
    /// `"scan"`: scan, assign the first device found, and capture it (no action if one is
    /// already connected).
    Scan,
    /// A Bluetooth address: assign it (releasing the previous device); no capture.
    Address(String),
}

/// The value of `de1/mode` `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ModeRequest {
    Sleep,
    Wake,
    Stop,
    EndSteam,
    SkipToNext,
    Espresso,
    Steam,
    HotWater,
    HotWaterRinse,
    Clean,
    Descale,
    /// Air purge.
    Transport,
    NoRequest,
}

impl ModeRequest {
    /// Every value, as accepted over HTTP.
    pub const ALL: [ModeRequest; 13] = [
        ModeRequest::Sleep,
        ModeRequest::Wake,
        ModeRequest::Stop,
        ModeRequest::EndSteam,
        ModeRequest::SkipToNext,
        ModeRequest::Espresso,
        ModeRequest::Steam,
        ModeRequest::HotWater,
        ModeRequest::HotWaterRinse,
        ModeRequest::Clean,
        ModeRequest::Descale,
        ModeRequest::Transport,
        ModeRequest::NoRequest,
    ];

    /// The case-sensitive name pyDE1 accepts, e.g. `HotWaterRinse`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ModeRequest::Sleep => "Sleep",
            ModeRequest::Wake => "Wake",
            ModeRequest::Stop => "Stop",
            ModeRequest::EndSteam => "EndSteam",
            ModeRequest::SkipToNext => "SkipToNext",
            ModeRequest::Espresso => "Espresso",
            ModeRequest::Steam => "Steam",
            ModeRequest::HotWater => "HotWater",
            ModeRequest::HotWaterRinse => "HotWaterRinse",
            ModeRequest::Clean => "Clean",
            ModeRequest::Descale => "Descale",
            ModeRequest::Transport => "Transport",
            ModeRequest::NoRequest => "NoRequest",
        }
    }

    /// Parses [`ModeRequest::as_str`].
    pub fn from_name(name: &str) -> Option<ModeRequest> {
        ModeRequest::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// Capture (`C`, `connected`) or release (`R`, `not_connected`) a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CaptureRequest {
    Capture,
    Release,
}

/// A key under `de1/control/…`, with its validated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlChange {
    /// `espresso` `stop_at_time`: s ≥ 0; `0` arrives as `None`.
    EspressoStopAtTime(Option<f64>),
    /// `espresso` `stop_at_volume`: mL ≥ 0; `0` arrives as `None`.
    EspressoStopAtVolume(Option<f64>),
    /// `espresso` `stop_at_weight`: g ≥ 0; `0` arrives as `None`.
    EspressoStopAtWeight(Option<f64>),
    /// `espresso` `move_on_weight`: g ≥ 0 per frame (≤ 20 entries, trailing `None`s
    /// trimmed). pyDE1 2.0 rejects every value; de1d accepts them.
    EspressoMoveOnWeight(Vec<Option<f64>>),
    /// `espresso` `profile_can_override_stop_limits`.
    ProfileCanOverrideStopLimits(bool),
    /// `espresso` `profile_can_override_tank_temperature`.
    ProfileCanOverrideTankTemperature(bool),
    /// `espresso` `first_drops_threshold`: bar, 0–10; `None` (or 0) skips the check.
    FirstDropsThreshold(Option<f64>),
    /// `espresso` `last_drops_minimum_time`: s ≥ 0.
    LastDropsMinimumTime(f64),
    /// `disable_auto_tare` of one mode's control.
    DisableAutoTare { mode: ControlMode, disable: bool },
    /// `steam` `stop_at_time`: s, 0–255 (ShotSettings.TargetSteamLength).
    SteamStopAtTime(u8),
    /// `hot_water` `stop_at_time`: s, 0–255 (ShotSettings.TargetHotWaterLength).
    HotWaterStopAtTime(u8),
    /// `hot_water` `stop_at_volume`: mL, 0–255 (ShotSettings.TargetHotWaterVol).
    HotWaterStopAtVolume(u8),
    /// `hot_water` `stop_at_weight`: g ≥ 0; `0` arrives as `None`.
    HotWaterStopAtWeight(Option<f64>),
    /// `hot_water` `temperature`: °C, 0–255 (ShotSettings.TargetHotWaterTemp).
    HotWaterTemperature(u8),
    /// `hot_water_rinse` `stop_at_time`: s, 0–6553.5 (MMR FLUSH_TIMEOUT ×10, or the
    /// sequencer's timer on older firmware); `None` is written as 0.
    RinseStopAtTime(Option<f64>),
    /// `hot_water_rinse` `temperature`: °C, 0–6553.5 (MMR FLUSH_TEMP ×10).
    RinseTemperature(f64),
    /// `hot_water_rinse` `flow`: mL/s, 0–6553.5 (MMR FLUSH_FLOW_RATE ×10).
    RinseFlow(f64),
    /// `tank_water_threshold` `temperature`: °C, 0–255 (MMR TANK_TEMP).
    TankWaterThreshold(u32),
}

impl ControlChange {
    /// Flow-sequencer values need no DE1; values stored on the DE1 need it ready.
    pub const fn needs(&self) -> Needs {
        match self {
            ControlChange::EspressoStopAtTime(_)
            | ControlChange::EspressoStopAtVolume(_)
            | ControlChange::EspressoStopAtWeight(_)
            | ControlChange::EspressoMoveOnWeight(_)
            | ControlChange::ProfileCanOverrideStopLimits(_)
            | ControlChange::ProfileCanOverrideTankTemperature(_)
            | ControlChange::FirstDropsThreshold(_)
            | ControlChange::LastDropsMinimumTime(_)
            | ControlChange::DisableAutoTare { .. }
            | ControlChange::HotWaterStopAtWeight(_)
            | ControlChange::RinseStopAtTime(_) => Needs::Nothing,
            ControlChange::SteamStopAtTime(_)
            | ControlChange::HotWaterStopAtTime(_)
            | ControlChange::HotWaterStopAtVolume(_)
            | ControlChange::HotWaterTemperature(_)
            | ControlChange::RinseTemperature(_)
            | ControlChange::RinseFlow(_)
            | ControlChange::TankWaterThreshold(_) => Needs::ReadyDe1,
        }
    }
}

/// The mode a control document belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlMode {
    Espresso,
    Steam,
    HotWater,
    HotWaterRinse,
}

/// A key under `de1/setting/…`, with its validated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SettingChange {
    /// `auto_off_time` `time`: minutes ≥ 0; `None` or 0 disables.
    AutoOffTime(Option<f64>),
    /// `fan_threshold` `temperature`: °C, 0–255 (MMR FAN_THRESHOLD; pyDE1 only logs values
    /// outside 0–60).
    FanThreshold(u32),
    /// `start_fill_level` `start_fill_level`: mm, 0–255, written as U16P8 (×256; pyDE1
    /// writes it unscaled).
    StartFillLevel(f64),
    /// `before_flow` `heater_phase1_flow`: mL/s, 0–6553.5 (MMR ×10).
    HeaterPhase1Flow(f64),
    /// `before_flow` `heater_phase2_flow`: mL/s, 0–6553.5 (MMR ×10).
    HeaterPhase2Flow(f64),
    /// `before_flow` `heater_phase2_timeout`: s, 0–6553.5 (MMR ×10).
    HeaterPhase2Timeout(f64),
    /// `before_flow` `heater_idle_temperature`: °C, 0–6553.5 (MMR ×10).
    HeaterIdleTemperature(f64),
    /// `target_group_temp` `temperature`: °C, 0–255 (ShotSettings.TargetGroupTemp U16P8).
    TargetGroupTemp(f64),
    /// `usb_outlet` `enabled` (MMR ALLOW_USB_CHARGING).
    UsbOutlet(bool),
    /// `refill_kit` `present` (MMR REFILL_KIT_PRESENT).
    RefillKit(bool),
    /// `steam` `temperature`: °C 135–160, or `None` (written as 0).
    SteamTemperature(Option<u8>),
    /// `steam` `flow`: mL/s, 0–655.35 (MMR TARGET_STEAM_FLOW ×100).
    SteamFlow(f64),
    /// `steam` `high_flow_time`: s, 0–655.35 (MMR STEAM_START_SECS ×100).
    SteamHighFlowTime(f64),
    /// `steam` `purge_deferred` (MMR STEAM_PURGE_MODE).
    SteamPurgeDeferred(bool),
    /// `time` `timestamp`: epoch s (SetTime).
    Time(u64),
}

/// A key under `de1/calibration/…`, with its validated value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CalibrationChange {
    /// `line_frequency` `hz`: 50 or 60 (controller-local).
    LineFrequency(u32),
    /// `flow_multiplier` `multiplier`: 0–65.535 (MMR CAL_FLOW_EST ×1000).
    FlowMultiplier(f64),
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
    use crate::event::{FirmwareUploadState, Sender, Stamp};

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(v: &T) -> T {
        let bytes = bincode::serialize(v).expect("serialize");
        bincode::deserialize(&bytes).expect("deserialize")
    }

    fn stamp() -> Stamp {
        Stamp {
            arrival_time: 1.5,
            create_time: 1.6,
            event_time: 1.7,
        }
    }

    fn availability() -> Availability {
        Availability {
            state: AvailabilityState::Ready,
            last_event: Some(DeviceAvailability {
                stamp: stamp(),
                sender: Sender::De1,
                state: AvailabilityState::Ready,
                role: DeviceRole::De1,
                id: "D9:B2:48:00:DE:01".into(),
                name: "DE1".into(),
                simulated: false,
            }),
            simulated: false,
        }
    }

    fn de1_document() -> De1Document {
        De1Document {
            id: DeviceId {
                address: Some("D9:B2:48:00:DE:01".into()),
                name: "DE1".into(),
                simulated: false,
            },
            state: De1State {
                state: MachineState::Unknown(0x42),
                substate: Substate::Unknown(250),
                last_updated: 1795509487.1614516,
                last_update: None,
            },
            availability: availability(),
            connectivity: ConnectivityMode::Ready,
            control: Controls {
                espresso: EspressoControl {
                    stop_at_time: None,
                    stop_at_volume: Some(40.0),
                    stop_at_weight: Some(36.5),
                    move_on_weight: vec![None, Some(4.0)],
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
                    temperature: Some(85.0),
                    flow: Some(6.0),
                },
                tank_water_threshold: TankWaterThreshold {
                    temperature: Some(0),
                },
            },
            setting: Settings {
                auto_off_time: None,
                fan_threshold: Some(50),
                start_fill_level: Some(5.0),
                before_flow: BeforeFlow {
                    heater_phase1_flow: Some(2.0),
                    heater_phase2_flow: Some(4.0),
                    heater_phase2_timeout: Some(10.0),
                    heater_idle_temperature: Some(85.0),
                },
                target_group_temp: Some(92.0),
                usb_outlet: Some(true),
                refill_kit: None,
                steam: SteamSetting {
                    temperature: Some(160),
                    flow: Some(0.8),
                    high_flow_time: Some(0.0),
                    purge_deferred: Some(false),
                },
                time: 0,
            },
            calibration: Calibration {
                line_frequency: 60,
                flow_multiplier: Some(1.0),
            },
            read_once: ReadOnce {
                hw_config: Some([1, 0, 0, 0]),
                model: Some([2, 0, 0, 0]),
                cpu_board_model: Some(1.3),
                firmware_model: Some(2),
                firmware_build_number: Some(1333),
                ghc_info: Some(0),
                serial_number: Some([0x2a, 0x1d, 0, 0]),
                heater_voltage: Some(120),
                version_ble: VersionBlock {
                    api: 4,
                    release: 1.0,
                    commits: 488,
                    changes: 0,
                    sha: 1917985424,
                },
                version_lv: VersionBlock {
                    api: 6,
                    release: 1.3,
                    commits: 1333,
                    changes: 0,
                    sha: 906972640,
                },
            },
        }
    }

    #[test]
    fn every_message_shape_survives_bincode() {
        let commands = vec![
            Command::Ping,
            Command::Get(Resource::De1SettingSteam),
            Command::Patch {
                resource: Resource::De1,
                changes: vec![
                    Change::SelectDevice {
                        device: Device::Scale,
                        selection: DeviceSelection::Address("CF:75:75:00:5C:A1".into()),
                    },
                    Change::SelectDevice {
                        device: Device::De1,
                        selection: DeviceSelection::Scan,
                    },
                    Change::Mode(ModeRequest::HotWaterRinse),
                    Change::Availability {
                        device: Device::Thermometer,
                        request: CaptureRequest::Release,
                    },
                    Change::Connectivity {
                        device: Device::De1,
                        request: CaptureRequest::Capture,
                    },
                    Change::Control(ControlChange::EspressoMoveOnWeight(vec![None, Some(5.5)])),
                    Change::Control(ControlChange::DisableAutoTare {
                        mode: ControlMode::HotWater,
                        disable: true,
                    }),
                    Change::Setting(SettingChange::SteamTemperature(None)),
                    Change::Setting(SettingChange::Time(1_700_000_000)),
                    Change::Calibration(CalibrationChange::LineFrequency(50)),
                    Change::UserPresent(true),
                    Change::ScaleTare,
                    Change::ScaleDisplay(false),
                ],
            },
            Command::UploadProfile {
                source: b"{\"version\": \"2\"}".to_vec(),
            },
            Command::StoreProfile { source: vec![] },
            Command::SelectProfile { id: [7; 20] },
            Command::UploadFirmware {
                path: PathBuf::from("firmware-1.bin"),
            },
            Command::CancelFirmwareUpload,
            Command::Scan {
                role: DeviceRole::Thermometer,
            },
        ];
        for c in &commands {
            assert_eq!(&round_trip(c), c, "{}", c.name());
        }

        let replies = vec![
            Reply::Pong,
            Reply::Done,
            Reply::Patched(vec![PatchOutput::Address(String::new())]),
            Reply::Profile(ProfileRef {
                id: [1; 20],
                fingerprint: [2; 20],
            }),
            Reply::Document(Document::De1(Box::new(de1_document()))),
            Reply::Document(Document::ProfileId(None)),
            Reply::Document(Document::FirmwareProgress(FirmwareProgress {
                running: true,
                last: Some(FirmwareUpload {
                    stamp: stamp(),
                    state: FirmwareUploadState::Uploading,
                    uploaded: 1024,
                    total: 4096,
                }),
            })),
            Reply::Document(Document::Scale(ScaleDocument {
                id: DeviceId {
                    address: None,
                    name: "GenericScale: (unknown)".into(),
                    simulated: false,
                },
                availability: availability(),
                connectivity: ConnectivityMode::NotConnected,
            })),
        ];
        for r in &replies {
            assert_eq!(&round_trip(r), r);
        }

        let err = CommandError::at(
            CommandErrorKind::BadRequest,
            "control:espresso:stop_at_weight",
            "must be non-negative",
        );
        assert_eq!(round_trip(&err), err);
    }

    #[test]
    fn unknown_states_keep_their_byte() {
        let doc = de1_document();
        let back = round_trip(&doc);
        assert_eq!(back.state.state.to_u8(), 0x42);
        assert_eq!(back.state.substate.to_u8(), 250);
    }

    #[test]
    fn resource_paths_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Resource::ALL {
            assert!(seen.insert(r.path()), "duplicate path {}", r.path());
            assert_eq!(Resource::from_path(r.path()), Some(r));
        }
        assert_eq!(Resource::from_path("de1/"), None);
        assert_eq!(Resource::from_path("version"), None);
    }

    #[test]
    fn gets_follow_pyde1_connectivity_rules() {
        assert_eq!(Resource::De1ControlEspresso.get_needs(), Needs::Nothing);
        assert_eq!(Resource::De1Control.get_needs(), Needs::ReadyDe1);
        assert_eq!(Resource::De1SettingAutoOffTime.get_needs(), Needs::ReadyDe1);
        assert_eq!(Resource::Scale.get_needs(), Needs::ReadyScale);
        assert_eq!(Resource::ScaleId.get_needs(), Needs::Nothing);
        assert_eq!(Resource::De1Mode.document_kind(), None);
        assert_eq!(
            Resource::De1SettingUsbOutlet.document_kind(),
            Some(DocumentKind::Settings)
        );
        assert_eq!(
            Resource::De1ControlSteam.update_area(),
            Some(crate::event::SettingsArea::Control)
        );
        assert_eq!(Resource::De1.update_area(), None);
    }

    #[test]
    fn mode_names_parse_back_case_sensitively() {
        for m in ModeRequest::ALL {
            assert_eq!(ModeRequest::from_name(m.as_str()), Some(m));
        }
        assert_eq!(ModeRequest::from_name("espresso"), None);
        assert_eq!(ModeRequest::from_name("Brew"), None);
    }
}
