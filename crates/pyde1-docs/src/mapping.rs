//! The resource mapping: for every resource document, its keys, their JSON types, whether
//! GET reports them and how a PATCH value becomes a typed [`Change`].
//!
//! This is the one description of pyDE1's document shapes (`pyde1-http-api.md` §5). Body
//! validation ([`crate::patch`]), the HTTP API's OpenAPI document and the rendering
//! tests all read it, so a key cannot be accepted, documented or rendered without
//! being declared here.

use ipc_schema::command::{
    CalibrationChange, CaptureRequest, Change, ControlChange, ControlMode, Device, DeviceSelection,
    ModeRequest, SettingChange,
};
use serde_json::Value;

/// A key of a document.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub node: Node,
}

/// A document (object) or a single value.
#[derive(Debug)]
pub enum Node {
    Object(&'static [Field]),
    Leaf(Leaf),
}

/// Whether GET documents report a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Always present.
    Always,
    /// Present only when there is something to report (the `mqtt` strings).
    WhenKnown,
    /// Never reported (write-only or declared but not backed); reported as `null` when
    /// pruning of empty nodes is switched off.
    Never,
}

/// The JSON type of a value and its accepted range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ty {
    /// A JSON number (integer or not; never a boolean).
    Number {
        min: f64,
        max: f64,
    },
    /// A JSON integer.
    Integer {
        min: i64,
        max: i64,
    },
    Bool,
    String,
    /// One of these strings (case-sensitive).
    Enum(&'static [&'static str]),
    /// A list of numbers or nulls.
    NumberList {
        max_len: usize,
        min: f64,
        max: f64,
    },
}

/// Converts a value that already passed the [`Ty`] and null checks into a change; `None`
/// when the value asks for nothing (`{"tare": false}`).
pub type Writer = fn(&Value) -> Result<Option<Change>, Refusal>;

/// Why a well-typed value is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Machine-readable reason, e.g. `bad_value`.
    pub kind: &'static str,
    pub message: String,
}

/// A value.
#[derive(Debug)]
pub struct Leaf {
    /// The type GET reports (and PATCH accepts unless `input` says otherwise).
    pub ty: Ty,
    /// The type PATCH accepts when it differs from `ty` (`"C"`/`"R"` for availability).
    pub input: Option<Ty>,
    pub nullable: bool,
    pub read: Read,
    /// `None`: read-only.
    pub write: Option<Writer>,
    /// Unit and meaning, for the OpenAPI document.
    pub doc: &'static str,
}

impl Leaf {
    /// The type a PATCH value must have.
    pub fn input_ty(&self) -> Ty {
        self.input.unwrap_or(self.ty)
    }
}

impl Node {
    /// The field named `name` of an object node.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        match self {
            Node::Object(fields) => fields.iter().find(|f| f.name == name),
            Node::Leaf(_) => None,
        }
    }

    /// True if any leaf below is writable.
    pub fn is_writable(&self) -> bool {
        match self {
            Node::Object(fields) => fields.iter().any(|f| f.node.is_writable()),
            Node::Leaf(l) => l.write.is_some(),
        }
    }
}

const BIG: f64 = 1.0e6;

const fn field(name: &'static str, node: Node) -> Field {
    Field { name, node }
}

/// A readable and writable value.
const fn rw(ty: Ty, nullable: bool, write: Writer, doc: &'static str) -> Node {
    Node::Leaf(Leaf {
        ty,
        input: None,
        nullable,
        read: Read::Always,
        write: Some(write),
        doc,
    })
}

/// A read-only value.
const fn ro(ty: Ty, nullable: bool, doc: &'static str) -> Node {
    Node::Leaf(Leaf {
        ty,
        input: None,
        nullable,
        read: Read::Always,
        write: None,
        doc,
    })
}

/// A write-only value (never in GET documents).
const fn wo(ty: Ty, nullable: bool, write: Writer, doc: &'static str) -> Node {
    Node::Leaf(Leaf {
        ty,
        input: None,
        nullable,
        read: Read::Never,
        write: Some(write),
        doc,
    })
}

const fn number(min: f64, max: f64) -> Ty {
    Ty::Number { min, max }
}

const fn integer(min: i64, max: i64) -> Ty {
    Ty::Integer { min, max }
}

/// The `mqtt` string of `state` and `availability` documents.
const MQTT: Node = Node::Leaf(Leaf {
    ty: Ty::String,
    input: None,
    nullable: false,
    read: Read::WhenKnown,
    write: None,
    doc: "the last MQTT payload of this kind, as a JSON string",
});

// --- value helpers (the value has passed the type check) --------------------------------

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn opt_f(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Stop-at values: `0` means "no limit", as in pyDE1.
fn stop(v: &Value) -> Option<f64> {
    opt_f(v).filter(|x| *x != 0.0)
}

fn int<T: TryFrom<i64> + Default>(v: &Value) -> T {
    v.as_i64()
        .and_then(|i| T::try_from(i).ok())
        .unwrap_or_default()
}

fn b(v: &Value) -> bool {
    v.as_bool().unwrap_or(false)
}

fn ok(change: Change) -> Result<Option<Change>, Refusal> {
    Ok(Some(change))
}

fn control(c: ControlChange) -> Result<Option<Change>, Refusal> {
    ok(Change::Control(c))
}

fn setting(c: SettingChange) -> Result<Option<Change>, Refusal> {
    ok(Change::Setting(c))
}

fn select(device: Device, v: &Value) -> Result<Option<Change>, Refusal> {
    let selection = match v.as_str() {
        None | Some("") => DeviceSelection::Forget,
        Some("scan") => DeviceSelection::Scan,
        Some(addr) => {
            if !is_plausible_address(addr) {
                return Err(Refusal {
                    kind: "bad_value",
                    message: format!(
                        "{addr:?} is not a Bluetooth address (AA:BB:CC:DD:EE:FF or a UUID), \"scan\" or null"
                    ),
                });
            }
            DeviceSelection::Address(addr.to_owned())
        }
    };
    ok(Change::SelectDevice { device, selection })
}

/// A MAC address (`AA:BB:CC:DD:EE:FF`) or a UUID (macOS device id).
pub fn is_plausible_address(s: &str) -> bool {
    let mac = s.len() == 17
        && s.split(':').count() == 6
        && s.split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()));
    let uuid = s.len() == 36
        && s.split('-').map(str::len).eq([8usize, 4, 4, 4, 12])
        && s.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit());
    mac || uuid
}

fn capture(v: &Value) -> CaptureRequest {
    match v.as_str() {
        Some("C" | "connected") => CaptureRequest::Capture,
        _ => CaptureRequest::Release,
    }
}

fn not_backed(what: &'static str) -> Result<Option<Change>, Refusal> {
    Err(Refusal {
        kind: "not_supported",
        message: format!("{what} has no such limit (pyDE1 declares the key but never uses it)"),
    })
}

// --- de1 --------------------------------------------------------------------------------

const MODE_NAMES: &[&str] = &[
    "Sleep",
    "Wake",
    "Stop",
    "EndSteam",
    "SkipToNext",
    "Espresso",
    "Steam",
    "HotWater",
    "HotWaterRinse",
    "Clean",
    "Descale",
    "Transport",
    "NoRequest",
];

const AVAILABILITY_NAMES: &[&str] = &[
    "initial",
    "unknown",
    "capturing",
    "captured",
    "ready",
    "not ready",
    "releasing",
    "released",
];

const CONNECTIVITY_NAMES: &[&str] = &["not_connected", "connected", "ready"];

/// `de1/id`.
pub static DE1_ID: Node = Node::Object(&[
    field(
        "id",
        rw(
            Ty::String,
            true,
            |v| select(Device::De1, v),
            "Bluetooth address (\"\" when none); PATCH an address, \"scan\" or null",
        ),
    ),
    field("name", ro(Ty::String, false, "advertised name")),
]);

/// `de1/mode` (write-only).
pub static DE1_MODE: Node = Node::Object(&[field(
    "mode",
    wo(
        Ty::Enum(MODE_NAMES),
        false,
        |v| match v.as_str().and_then(ModeRequest::from_name) {
            Some(m) => ok(Change::Mode(m)),
            None => Err(Refusal {
                kind: "bad_value",
                message: "not a mode".into(),
            }),
        },
        "requested mode",
    ),
)]);

/// `de1/state`.
pub static DE1_STATE: Node = Node::Object(&[
    field("mqtt", MQTT),
    field(
        "state",
        Node::Object(&[
            field(
                "last_updated",
                ro(
                    number(0.0, f64::MAX),
                    false,
                    "epoch s of the last state report",
                ),
            ),
            field("state", ro(Ty::String, false, "machine state name")),
            field("substate", ro(Ty::String, false, "substate name")),
        ]),
    ),
]);

const fn flag(name: &'static str) -> Field {
    Field {
        name,
        node: ro(
            Ty::Bool,
            true,
            "feature flag (null while the firmware is unknown)",
        ),
    }
}

/// `de1/feature_flags` (read-only).
pub static DE1_FEATURE_FLAGS: Node = Node::Object(&[field(
    "feature_flags",
    Node::Object(&[
        flag("allow_usb_charging"),
        flag("app_feature_flag_user_present"),
        field(
            "fw_version",
            ro(integer(0, u32::MAX as i64), true, "firmware build"),
        ),
        flag("ghc_active"),
        flag("hot_water_flow_control"),
        field(
            "last_mmr0x80",
            ro(
                integer(0, u32::MAX as i64),
                true,
                "last implemented MMR address (low 16 bits)",
            ),
        ),
        flag("mmr_max_shot_press"),
        flag("mmr_pref_ghc_mci"),
        flag("refill_kit_present"),
        flag("rinse_control"),
        flag("safe_to_read_mmr_continuous"),
        flag("sched_idle"),
        flag("skip_to_next"),
        flag("steam_purge_mode"),
        flag("user_present"),
    ]),
)]);

/// `de1/profile/id` (GET; PUT has its own body, handled by the HTTP API).
pub static DE1_PROFILE_ID: Node = Node::Object(&[field(
    "id",
    ro(
        Ty::String,
        true,
        "SHA-1 (hex) of the profile last uploaded in this connection",
    ),
)]);

/// `de1/firmware` (GET, de1d addition).
pub static DE1_FIRMWARE: Node = Node::Object(&[
    field("running", ro(Ty::Bool, false, "an upload is running")),
    field(
        "state",
        ro(
            Ty::Enum(&["starting", "uploading", "completed", "failed", "canceled"]),
            true,
            "state of the current or last upload (null if none)",
        ),
    ),
    field(
        "total",
        ro(integer(0, u32::MAX as i64), false, "bytes in the image"),
    ),
    field(
        "uploaded",
        ro(integer(0, u32::MAX as i64), false, "bytes sent so far"),
    ),
]);

/// `de1/firmware/id`.
pub static DE1_FIRMWARE_ID: Node = Node::Object(&[field(
    "id",
    ro(integer(0, u32::MAX as i64), true, "firmware build number"),
)]);

/// `*/availability` of one device.
macro_rules! availability {
    ($device:expr) => {
        Node::Object(&[
            field(
                "mode",
                Node::Leaf(Leaf {
                    ty: Ty::Enum(AVAILABILITY_NAMES),
                    input: Some(Ty::Enum(CAPTURE_REQUESTS)),
                    nullable: false,
                    read: Read::Always,
                    write: Some(|v| {
                        ok(Change::Availability {
                            device: $device,
                            request: capture(v),
                        })
                    }),
                    doc: AVAILABILITY_DOC,
                }),
            ),
            field("mqtt", MQTT),
        ])
    };
}

const AVAILABILITY_DOC: &str =
    "GET: the device's availability; PATCH: \"C\" to capture, \"R\" to release";

/// The values PATCH accepts for `*/availability` `mode` (GET reports
/// [`AVAILABILITY_NAMES`]).
pub const CAPTURE_REQUESTS: &[&str] = &["C", "R"];

/// The values PATCH accepts for `*/connectivity` `mode`.
pub const CONNECT_REQUESTS: &[&str] = &["connected", "not_connected"];

/// `*/connectivity` of one device.
macro_rules! connectivity {
    ($device:expr) => {
        Node::Object(&[field(
            "mode",
            Node::Leaf(Leaf {
                ty: Ty::Enum(CONNECTIVITY_NAMES),
                input: Some(Ty::Enum(CONNECT_REQUESTS)),
                nullable: false,
                read: Read::Always,
                write: Some(|v| {
                    ok(Change::Connectivity {
                        device: $device,
                        request: capture(v),
                    })
                }),
                doc: CONNECTIVITY_DOC,
            }),
        )])
    };
}

const CONNECTIVITY_DOC: &str = "GET: not_connected, connected or ready; PATCH: \"connected\" \
    (capture and wait) or \"not_connected\" (release and wait)";

/// `de1/availability`.
pub static DE1_AVAILABILITY: Node = availability!(Device::De1);
/// `de1/connectivity`.
pub static DE1_CONNECTIVITY: Node = connectivity!(Device::De1);

/// `de1/control/espresso`.
pub static CONTROL_ESPRESSO: Node = Node::Object(&[
    field(
        "disable_auto_tare",
        rw(
            Ty::Bool,
            false,
            |v| {
                control(ControlChange::DisableAutoTare {
                    mode: ControlMode::Espresso,
                    disable: b(v),
                })
            },
            "no automatic tare at the start of a shot",
        ),
    ),
    field(
        "first_drops_threshold",
        rw(
            number(0.0, 10.0),
            true,
            |v| control(ControlChange::FirstDropsThreshold(opt_f(v))),
            "bar; group pressure that opens the expect-drops gate (0 or null: no check)",
        ),
    ),
    field(
        "last_drops_minimum_time",
        rw(
            number(0.0, 3600.0),
            false,
            |v| control(ControlChange::LastDropsMinimumTime(f(v))),
            "s after flow end before the sequence completes",
        ),
    ),
    field(
        "move_on_weight",
        rw(
            Ty::NumberList {
                max_len: 20,
                min: 0.0,
                max: BIG,
            },
            false,
            |v| {
                let mut list: Vec<Option<f64>> = v
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_f64().filter(|w| *w != 0.0)).collect())
                    .unwrap_or_default();
                while list.last() == Some(&None) {
                    list.pop();
                }
                control(ControlChange::EspressoMoveOnWeight(list))
            },
            "g per profile frame (null: no move-on for that frame)",
        ),
    ),
    field(
        "profile_can_override_stop_limits",
        rw(
            Ty::Bool,
            false,
            |v| control(ControlChange::ProfileCanOverrideStopLimits(b(v))),
            "a profile upload sets stop_at_volume/stop_at_weight",
        ),
    ),
    field(
        "profile_can_override_tank_temperature",
        rw(
            Ty::Bool,
            false,
            |v| control(ControlChange::ProfileCanOverrideTankTemperature(b(v))),
            "a profile upload sets the tank temperature",
        ),
    ),
    field(
        "stop_at_time",
        rw(
            number(0.0, BIG),
            true,
            |v| control(ControlChange::EspressoStopAtTime(stop(v))),
            "s (0 or null: none)",
        ),
    ),
    field(
        "stop_at_volume",
        rw(
            number(0.0, BIG),
            true,
            |v| control(ControlChange::EspressoStopAtVolume(stop(v))),
            "mL of pour volume (0 or null: none)",
        ),
    ),
    field(
        "stop_at_weight",
        rw(
            number(0.0, BIG),
            true,
            |v| control(ControlChange::EspressoStopAtWeight(stop(v))),
            "g (0 or null: none)",
        ),
    ),
]);

/// `de1/control/steam`.
pub static CONTROL_STEAM: Node = Node::Object(&[
    field(
        "disable_auto_tare",
        rw(
            Ty::Bool,
            false,
            |v| {
                control(ControlChange::DisableAutoTare {
                    mode: ControlMode::Steam,
                    disable: b(v),
                })
            },
            "no automatic tare",
        ),
    ),
    field(
        "stop_at_time",
        rw(
            integer(0, 255),
            false,
            |v| control(ControlChange::SteamStopAtTime(int(v))),
            "s; stopped by the DE1",
        ),
    ),
    field(
        "stop_at_volume",
        wo(
            number(0.0, BIG),
            true,
            |_| not_backed("steam"),
            "declared by pyDE1, not supported",
        ),
    ),
    field(
        "stop_at_weight",
        wo(
            number(0.0, BIG),
            true,
            |_| not_backed("steam"),
            "declared by pyDE1, not supported",
        ),
    ),
]);

/// `de1/control/hot_water`.
pub static CONTROL_HOT_WATER: Node = Node::Object(&[
    field(
        "disable_auto_tare",
        rw(
            Ty::Bool,
            false,
            |v| {
                control(ControlChange::DisableAutoTare {
                    mode: ControlMode::HotWater,
                    disable: b(v),
                })
            },
            "no automatic tare",
        ),
    ),
    field(
        "stop_at_time",
        rw(
            integer(0, 255),
            false,
            |v| control(ControlChange::HotWaterStopAtTime(int(v))),
            "s; stopped by the DE1",
        ),
    ),
    field(
        "stop_at_volume",
        rw(
            integer(0, 255),
            false,
            |v| control(ControlChange::HotWaterStopAtVolume(int(v))),
            "mL; stopped by the DE1",
        ),
    ),
    field(
        "stop_at_weight",
        rw(
            number(0.0, BIG),
            true,
            |v| control(ControlChange::HotWaterStopAtWeight(stop(v))),
            "g (0 or null: none)",
        ),
    ),
    field(
        "temperature",
        rw(
            integer(0, 255),
            false,
            |v| control(ControlChange::HotWaterTemperature(int(v))),
            "°C",
        ),
    ),
]);

/// `de1/control/hot_water_rinse`.
pub static CONTROL_HOT_WATER_RINSE: Node = Node::Object(&[
    field(
        "disable_auto_tare",
        rw(
            Ty::Bool,
            false,
            |v| {
                control(ControlChange::DisableAutoTare {
                    mode: ControlMode::HotWaterRinse,
                    disable: b(v),
                })
            },
            "no automatic tare",
        ),
    ),
    field(
        "flow",
        rw(
            number(0.0, 100.0),
            false,
            |v| control(ControlChange::RinseFlow(f(v))),
            "mL/s",
        ),
    ),
    field(
        "stop_at_time",
        rw(
            number(0.0, 3600.0),
            true,
            |v| control(ControlChange::RinseStopAtTime(opt_f(v))),
            "s (null: none)",
        ),
    ),
    field(
        "stop_at_volume",
        wo(
            number(0.0, BIG),
            true,
            |_| not_backed("hot_water_rinse"),
            "declared by pyDE1, not supported",
        ),
    ),
    field(
        "stop_at_weight",
        wo(
            number(0.0, BIG),
            true,
            |_| not_backed("hot_water_rinse"),
            "declared by pyDE1, not supported",
        ),
    ),
    field(
        "temperature",
        rw(
            number(0.0, 200.0),
            false,
            |v| control(ControlChange::RinseTemperature(f(v))),
            "°C",
        ),
    ),
]);

/// `de1/control/tank_water_threshold`.
pub static CONTROL_TANK_WATER_THRESHOLD: Node = Node::Object(&[field(
    "temperature",
    rw(
        integer(0, 255),
        false,
        |v| control(ControlChange::TankWaterThreshold(int(v))),
        "°C; tank pre-heat threshold (0: off)",
    ),
)]);

/// `de1/control`.
pub static DE1_CONTROL: Node = Node::Object(&[
    field("espresso", CONTROL_ESPRESSO_OBJ),
    field("hot_water", CONTROL_HOT_WATER_OBJ),
    field("hot_water_rinse", CONTROL_HOT_WATER_RINSE_OBJ),
    field("steam", CONTROL_STEAM_OBJ),
    field("tank_water_threshold", CONTROL_TANK_WATER_THRESHOLD_OBJ),
]);

/// `Node::Object` of a static node, for nesting.
const fn fields_of(node: &'static Node) -> &'static [Field] {
    match node {
        Node::Object(f) => f,
        Node::Leaf(_) => &[],
    }
}

const CONTROL_ESPRESSO_OBJ: Node = Node::Object(fields_of(&CONTROL_ESPRESSO));
const CONTROL_STEAM_OBJ: Node = Node::Object(fields_of(&CONTROL_STEAM));
const CONTROL_HOT_WATER_OBJ: Node = Node::Object(fields_of(&CONTROL_HOT_WATER));
const CONTROL_HOT_WATER_RINSE_OBJ: Node = Node::Object(fields_of(&CONTROL_HOT_WATER_RINSE));
const CONTROL_TANK_WATER_THRESHOLD_OBJ: Node =
    Node::Object(fields_of(&CONTROL_TANK_WATER_THRESHOLD));

/// `de1/setting/auto_off_time`.
pub static SETTING_AUTO_OFF_TIME: Node = Node::Object(&[field(
    "time",
    rw(
        number(0.0, BIG),
        true,
        |v| setting(SettingChange::AutoOffTime(opt_f(v).filter(|t| *t != 0.0))),
        "minutes without a state change before sleep (0 or null: never)",
    ),
)]);

/// `de1/setting/fan_threshold`.
pub static SETTING_FAN_THRESHOLD: Node = Node::Object(&[field(
    "temperature",
    rw(
        integer(0, 255),
        false,
        |v| setting(SettingChange::FanThreshold(int(v))),
        "°C above which the fan runs",
    ),
)]);

/// `de1/setting/start_fill_level`.
pub static SETTING_START_FILL_LEVEL: Node = Node::Object(&[field(
    "start_fill_level",
    rw(
        number(0.0, 255.0),
        false,
        |v| setting(SettingChange::StartFillLevel(f(v))),
        "mm; tank level at which refilling starts",
    ),
)]);

/// `de1/setting/before_flow`.
pub static SETTING_BEFORE_FLOW: Node = Node::Object(&[
    field(
        "heater_idle_temperature",
        rw(
            number(0.0, 200.0),
            false,
            |v| setting(SettingChange::HeaterIdleTemperature(f(v))),
            "°C",
        ),
    ),
    field(
        "heater_phase1_flow",
        rw(
            number(0.0, 100.0),
            false,
            |v| setting(SettingChange::HeaterPhase1Flow(f(v))),
            "mL/s",
        ),
    ),
    field(
        "heater_phase2_flow",
        rw(
            number(0.0, 100.0),
            false,
            |v| setting(SettingChange::HeaterPhase2Flow(f(v))),
            "mL/s",
        ),
    ),
    field(
        "heater_phase2_timeout",
        rw(
            number(0.0, 1000.0),
            false,
            |v| setting(SettingChange::HeaterPhase2Timeout(f(v))),
            "s",
        ),
    ),
]);

/// `de1/setting/target_group_temp`.
pub static SETTING_TARGET_GROUP_TEMP: Node = Node::Object(&[field(
    "temperature",
    rw(
        number(0.0, 255.0),
        false,
        |v| setting(SettingChange::TargetGroupTemp(f(v))),
        "°C",
    ),
)]);

/// `de1/setting/usb_outlet`.
pub static SETTING_USB_OUTLET: Node = Node::Object(&[field(
    "enabled",
    rw(
        Ty::Bool,
        true,
        |v| match v.as_bool() {
            Some(on) => setting(SettingChange::UsbOutlet(on)),
            None => Err(Refusal {
                kind: "bad_value",
                message: "must be true or false".into(),
            }),
        },
        "tablet USB charging outlet on",
    ),
)]);

/// `de1/setting/refill_kit`.
pub static SETTING_REFILL_KIT: Node = Node::Object(&[field(
    "present",
    rw(
        Ty::Bool,
        true,
        |v| match v.as_bool() {
            Some(p) => setting(SettingChange::RefillKit(p)),
            None => Err(Refusal {
                kind: "bad_value",
                message: "must be true or false".into(),
            }),
        },
        "refill kit present",
    ),
)]);

/// `de1/setting/steam`.
pub static SETTING_STEAM: Node = Node::Object(&[
    field(
        "flow",
        rw(
            number(0.0, 100.0),
            false,
            |v| setting(SettingChange::SteamFlow(f(v))),
            "mL/s",
        ),
    ),
    field(
        "high_flow_time",
        rw(
            number(0.0, 100.0),
            false,
            |v| setting(SettingChange::SteamHighFlowTime(f(v))),
            "s of high flow at the start",
        ),
    ),
    field(
        "purge_deferred",
        rw(
            Ty::Bool,
            true,
            |v| match v.as_bool() {
                Some(p) => setting(SettingChange::SteamPurgeDeferred(p)),
                None => Err(Refusal {
                    kind: "bad_value",
                    message: "must be true or false".into(),
                }),
            },
            "two taps to stop steam",
        ),
    ),
    field(
        "temperature",
        rw(
            integer(135, 160),
            true,
            |v| setting(SettingChange::SteamTemperature(v.as_u64().map(|t| t as u8))),
            "°C, 135–160 (null: heater off)",
        ),
    ),
]);

/// `de1/setting/time`.
pub static SETTING_TIME: Node = Node::Object(&[field(
    "timestamp",
    rw(
        integer(0, 1 << 53),
        false,
        |v| setting(SettingChange::Time(v.as_u64().unwrap_or(0))),
        "epoch s",
    ),
)]);

const fn obj(node: &'static Node) -> Node {
    Node::Object(fields_of(node))
}

/// `de1/setting`.
pub static DE1_SETTING: Node = Node::Object(&[
    field("auto_off_time", obj(&SETTING_AUTO_OFF_TIME)),
    field("before_flow", obj(&SETTING_BEFORE_FLOW)),
    field("fan_threshold", obj(&SETTING_FAN_THRESHOLD)),
    field("refill_kit", obj(&SETTING_REFILL_KIT)),
    field("start_fill_level", obj(&SETTING_START_FILL_LEVEL)),
    field("steam", obj(&SETTING_STEAM)),
    field("target_group_temp", obj(&SETTING_TARGET_GROUP_TEMP)),
    field("time", obj(&SETTING_TIME)),
    field("usb_outlet", obj(&SETTING_USB_OUTLET)),
]);

/// `de1/calibration/line_frequency`.
pub static CALIBRATION_LINE_FREQUENCY: Node = Node::Object(&[field(
    "hz",
    rw(
        integer(50, 60),
        false,
        |v| match v.as_u64() {
            Some(hz @ (50 | 60)) => ok(Change::Calibration(CalibrationChange::LineFrequency(
                hz as u32,
            ))),
            _ => Err(Refusal {
                kind: "bad_value",
                message: format!("line frequency must be 50 or 60, not {v}"),
            }),
        },
        "mains frequency, 50 or 60",
    ),
)]);

/// `de1/calibration/flow_multiplier`.
pub static CALIBRATION_FLOW_MULTIPLIER: Node = Node::Object(&[field(
    "multiplier",
    rw(
        number(0.1, 10.0),
        false,
        |v| ok(Change::Calibration(CalibrationChange::FlowMultiplier(f(v)))),
        "flow-estimate calibration multiplier",
    ),
)]);

/// `de1/calibration`.
pub static DE1_CALIBRATION: Node = Node::Object(&[
    field("flow_multiplier", obj(&CALIBRATION_FLOW_MULTIPLIER)),
    field("line_frequency", obj(&CALIBRATION_LINE_FREQUENCY)),
]);

const VERSION_BLOCK: Node = Node::Object(&[
    field("api", ro(integer(0, 255), false, "API version")),
    field(
        "blesha_hexstr",
        ro(integer(0, u32::MAX as i64), false, "SHA (an integer, sic)"),
    ),
    field("changes", ro(integer(0, 255), false, "changes")),
    field("commits", ro(integer(0, 65535), false, "commits")),
    field("release", ro(number(0.0, BIG), false, "release")),
]);

/// `de1/read_once_values` (read-only).
pub static DE1_READ_ONCE: Node = Node::Object(&[
    field(
        "cpu_board_model",
        ro(number(0.0, BIG), true, "CPU board revision"),
    ),
    field(
        "firmware_build_number",
        ro(integer(0, u32::MAX as i64), true, "firmware build"),
    ),
    field("firmware_model", ro(Ty::String, true, "machine model name")),
    field("ghc_info", ro(Ty::String, true, "GHC flags joined by |")),
    field(
        "heater_voltage",
        ro(
            integer(0, u32::MAX as i64),
            true,
            "V (+1000 when set manually)",
        ),
    ),
    field("hw_config_hexstr", ro(Ty::String, true, "hex")),
    field("model_hexstr", ro(Ty::String, true, "hex")),
    field("serial_number_hexstr", ro(Ty::String, true, "hex")),
    field("version_ble", VERSION_BLOCK),
    field("version_lv", VERSION_BLOCK),
]);

/// `de1/presence`.
pub static DE1_PRESENCE: Node = Node::Object(&[field(
    "user",
    rw(
        Ty::Bool,
        true,
        |v| match v.as_bool() {
            Some(u) => ok(Change::UserPresent(u)),
            None => Err(Refusal {
                kind: "bad_value",
                message: "must be true or false".into(),
            }),
        },
        "a user is at the machine",
    ),
)]);

/// `de1/parameters` and the `flow_sequencer` documents: always empty.
pub static EMPTY: Node = Node::Object(&[]);

/// `de1`: the aggregate.
pub static DE1: Node = Node::Object(&[
    field("availability", obj(&DE1_AVAILABILITY)),
    field("calibration", obj(&DE1_CALIBRATION)),
    field("connectivity", obj(&DE1_CONNECTIVITY)),
    field("control", obj(&DE1_CONTROL)),
    field("id", obj(&DE1_ID)),
    field("mode", obj(&DE1_MODE)),
    field("parameter_set", Node::Object(&[])),
    field("read_once", obj(&DE1_READ_ONCE)),
    field("setting", obj(&DE1_SETTING)),
    field("state", obj(&DE1_STATE)),
]);

// --- scale and thermometer -------------------------------------------------------------

/// `scale/id`.
pub static SCALE_ID: Node = Node::Object(&[
    field(
        "id",
        rw(
            Ty::String,
            true,
            |v| select(Device::Scale, v),
            "Bluetooth address (\"\" when none); PATCH an address, \"scan\" or null",
        ),
    ),
    field(
        "name",
        ro(Ty::String, false, "\"<scale class>: <advertised name>\""),
    ),
    field(
        "type",
        Node::Leaf(Leaf {
            ty: Ty::String,
            input: None,
            nullable: true,
            read: Read::Never,
            write: None,
            doc: "declared by pyDE1, never reported",
        }),
    ),
]);

/// `scale/tare` (write-only).
pub static SCALE_TARE: Node = Node::Object(&[field(
    "tare",
    wo(
        Ty::Bool,
        true,
        |v| Ok((v.as_bool() == Some(true)).then_some(Change::ScaleTare)),
        "true: tare the scale (false/null: nothing)",
    ),
)]);

/// `scale/display` (write-only).
pub static SCALE_DISPLAY: Node = Node::Object(&[field(
    "display_on",
    wo(
        Ty::Bool,
        false,
        |v| ok(Change::ScaleDisplay(b(v))),
        "scale display on (Skale II)",
    ),
)]);

/// `scale/availability`.
pub static SCALE_AVAILABILITY: Node = availability!(Device::Scale);
/// `scale/connectivity`.
pub static SCALE_CONNECTIVITY: Node = connectivity!(Device::Scale);

/// `scale`: the aggregate.
pub static SCALE: Node = Node::Object(&[
    field("availability", obj(&SCALE_AVAILABILITY)),
    field("connectivity", obj(&SCALE_CONNECTIVITY)),
    field("display", obj(&SCALE_DISPLAY)),
    field("id", obj(&SCALE_ID)),
    field("tare", obj(&SCALE_TARE)),
]);

/// `thermometer/id`.
pub static THERMOMETER_ID: Node = Node::Object(&[
    field(
        "id",
        rw(
            Ty::String,
            true,
            |v| select(Device::Thermometer, v),
            "Bluetooth address (\"\" when none); PATCH an address, \"scan\" or null",
        ),
    ),
    field("name", ro(Ty::String, false, "advertised name")),
]);

/// `thermometer/availability`.
pub static THERMOMETER_AVAILABILITY: Node = availability!(Device::Thermometer);

/// `thermometer`: the aggregate.
pub static THERMOMETER: Node = Node::Object(&[
    field("availability", obj(&THERMOMETER_AVAILABILITY)),
    field("id", obj(&THERMOMETER_ID)),
]);

/// `flow_sequencer`: the aggregate of two empty placeholders.
pub static FLOW_SEQUENCER: Node = Node::Object(&[
    field("parameter_set", Node::Object(&[])),
    field("settings", Node::Object(&[])),
]);

#[cfg(test)]
mod tests {
    use super::*;

    fn check_sorted(node: &Node, path: &str) {
        if let Node::Object(fields) = node {
            for w in fields.windows(2) {
                assert!(
                    w[0].name < w[1].name,
                    "{path}: {} before {}",
                    w[0].name,
                    w[1].name
                );
            }
            for f in *fields {
                check_sorted(&f.node, &format!("{path}:{}", f.name));
            }
        }
    }

    #[test]
    fn keys_are_declared_once_in_sorted_order() {
        for (name, node) in [
            ("de1", &DE1),
            ("scale", &SCALE),
            ("thermometer", &THERMOMETER),
            ("feature_flags", &DE1_FEATURE_FLAGS),
            ("firmware", &DE1_FIRMWARE),
            ("presence", &DE1_PRESENCE),
            ("flow_sequencer", &FLOW_SEQUENCER),
        ] {
            check_sorted(node, name);
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(is_plausible_address("D9:B2:48:00:DE:01"));
        assert!(is_plausible_address("0a1b2c3d-0000-1111-2222-333344445555"));
        assert!(!is_plausible_address("D9:B2:48:00:DE"));
        assert!(!is_plausible_address("D9:B2:48:00:DE:0G"));
        assert!(!is_plausible_address("hello"));
    }

    #[test]
    fn read_only_and_write_only_keys_are_marked() {
        assert!(!DE1_READ_ONCE.is_writable());
        assert!(!DE1_FEATURE_FLAGS.is_writable());
        assert!(DE1.is_writable());
        match DE1_ID.field("name").map(|f| &f.node) {
            Some(Node::Leaf(l)) => assert!(l.write.is_none()),
            other => panic!("{other:?}"),
        }
        match DE1_MODE.field("mode").map(|f| &f.node) {
            Some(Node::Leaf(l)) => assert_eq!(l.read, Read::Never),
            other => panic!("{other:?}"),
        }
    }
}
