//! Memory-mapped registers (MMR): the register table, typed values, and reassembly of
//! read replies (de1-mmr.md).
//!
//! Framing is in [`crate::packets::read_from_mmr`] and [`crate::packets::write_to_mmr`].
//! Remember the three meanings of `Len`: words − 1 in a read request, valid bytes in a
//! read response, data bytes in a write. Register *values* are 32-bit little-endian; the
//! packet address is big-endian.
//!
//! Reading: write a [`ReadFromMMRRequest`] to A005 with notifications enabled, feed
//! every A005 notification to an [`MmrReassembler`] for that request until it is
//! complete, then decode each word with [`MmrRegister::decode_value`]. Never GATT-read
//! A005: it returns the last request, which looks like a response (see
//! [`is_request_echo`]).

use std::fmt;

use serde_json::{json, Value};

use crate::packets::read_from_mmr::{ReadFromMMRRequest, ReadFromMMRResponse};
use crate::packets::write_to_mmr::WriteToMMR;
use crate::DecodeError;

/// Highest MMR address (24 bits).
pub const MAX_ADDRESS: u32 = 0xFF_FFFF;

/// Errors building MMR packets or values, or reassembling replies.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MmrError {
    #[error("MMR address {0:#x} does not fit 24 bits")]
    AddressOutOfRange(u32),
    #[error("an MMR read covers 1 to 256 words, not {0}")]
    WordCount(u16),
    #[error("an MMR packet carries 1 to 16 data bytes, not {0}")]
    DataLength(usize),
    #[error("register {0} is not writable")]
    NotWritable(&'static str),
    #[error("register {register} takes {expected}, not {got}")]
    WrongValueKind {
        register: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("register {register}: {value} is out of range ({min} … {max})")]
    ValueOutOfRange {
        register: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("MMR response for {address:#08x} (+{len} bytes) is outside the request")]
    UnexpectedResponse { address: u32, len: usize },
    #[error("MMR response for {address:#08x} carries {len} bytes, not whole words")]
    UnalignedResponse { address: u32, len: usize },
}

/// How a register's 32-bit little-endian raw value maps to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MmrEncoding {
    /// Four opaque bytes (identification registers).
    Raw,
    /// An integer with no scale.
    Integer,
    /// Engineering value = raw ÷ the divisor (encode: `round(v × divisor)`, half to even).
    Scaled(u32),
    /// 0 / 1 (decoded as raw ≠ 0).
    Bool,
    /// [`MachineModel`].
    Model,
    /// [`GhcInfo`] bit mask.
    GhcInfo,
    /// [`AppFeatureFlags`] bit mask.
    FeatureFlags,
    /// [`HeaterVoltage`]: volts, +1000 when set manually.
    HeaterVoltage,
    /// ASCII text (the debug buffer), NUL-terminated if not full.
    Text,
}

/// Everything the table knows about one register.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegisterInfo {
    /// pyDE1 name, e.g. `"FAN_THRESHOLD"`.
    pub name: &'static str,
    /// Address of the first byte.
    pub address: u32,
    /// Size in bytes (4 except the debug buffer).
    pub width: u32,
    pub encoding: MmrEncoding,
    /// Safe to read (pyDE1's `can_read`): PREF_GHC_MCI and MAX_SHOT_PRESS hang firmware ≤ 1260.
    pub readable: bool,
    /// Accepts writes from de1d.
    pub writable: bool,
    /// Lowest CPU firmware build that has the register, when not all do.
    pub min_firmware: Option<u32>,
    /// Unit of the engineering value.
    pub unit: Option<&'static str>,
    /// Values de1d accepts when writing (engineering units), beyond the field's own range.
    pub write_range: Option<(f64, f64)>,
    pub description: &'static str,
}

macro_rules! registers {
    ($($variant:ident = $name:literal, $addr:literal, $width:literal, $enc:expr,
        r: $r:literal, w: $w:literal, fw: $fw:expr, unit: $unit:expr, range: $range:expr,
        $desc:literal;)*) => {
        /// A register of the 0x80xxxx space (de1-mmr.md §3).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum MmrRegister { $($variant,)* }

        impl MmrRegister {
            /// Every register, in address order.
            pub const ALL: &'static [MmrRegister] = &[$(MmrRegister::$variant,)*];

            /// The register's table entry.
            pub const fn info(self) -> &'static RegisterInfo {
                match self {
                    $(Self::$variant => &RegisterInfo {
                        name: $name,
                        address: $addr,
                        width: $width,
                        encoding: $enc,
                        readable: $r,
                        writable: $w,
                        min_firmware: $fw,
                        unit: $unit,
                        write_range: $range,
                        description: $desc,
                    },)*
                }
            }
        }
    };
}

use MmrEncoding as E;

registers! {
    HwConfig = "HW_CONFIG", 0x80_0000, 4, E::Raw, r: true, w: false, fw: None, unit: None, range: None,
        "Hardware configuration (observed ffffffff)";
    Model = "MODEL", 0x80_0004, 4, E::Raw, r: true, w: false, fw: None, unit: None, range: None,
        "Model (observed ffffffff)";
    CpuBoardModel = "CPU_BOARD_MODEL", 0x80_0008, 4, E::Scaled(1000), r: true, w: false, fw: None, unit: None, range: None,
        "CPU board revision (1300 → 1.3)";
    V13Model = "V13_MODEL", 0x80_000C, 4, E::Model, r: true, w: false, fw: None, unit: None, range: None,
        "Machine model";
    CpuFirmwareBuild = "CPU_FIRMWARE_BUILD", 0x80_0010, 4, E::Integer, r: true, w: false, fw: None, unit: None, range: None,
        "CPU firmware build number (1000 = v1.3)";
    DebugLen = "DEBUG_LEN", 0x80_2800, 4, E::Integer, r: true, w: false, fw: None, unit: Some("characters"), range: None,
        "Valid characters in the debug buffer; reading pauses BLE debug logging";
    DebugBuffer = "DEBUG_BUFFER", 0x80_2804, 4096, E::Text, r: true, w: false, fw: None, unit: None, range: None,
        "Last 4 KiB of debug output";
    DebugConfig = "DEBUG_CONFIG", 0x80_3804, 4, E::Raw, r: true, w: false, fw: None, unit: None, range: None,
        "BLE debug configuration; reading restarts logging";
    FanThreshold = "FAN_THRESHOLD", 0x80_3808, 4, E::Integer, r: true, w: true, fw: None, unit: Some("°C"), range: None,
        "Fan switches on above this temperature";
    TankTemp = "TANK_TEMP", 0x80_380C, 4, E::Integer, r: true, w: true, fw: None, unit: Some("°C"), range: None,
        "Tank water pre-heat threshold; 0 = off";
    HeaterUp1Flow = "HEATER_UP1_FLOW", 0x80_3810, 4, E::Scaled(10), r: true, w: true, fw: None, unit: Some("mL/s"), range: None,
        "Heater warm-up phase-1 flow";
    HeaterUp2Flow = "HEATER_UP2_FLOW", 0x80_3814, 4, E::Scaled(10), r: true, w: true, fw: None, unit: Some("mL/s"), range: None,
        "Heater warm-up phase-2 flow";
    WaterHeaterIdleTemp = "WATER_HEATER_IDLE_TEMP", 0x80_3818, 4, E::Scaled(10), r: true, w: true, fw: None, unit: Some("°C"), range: None,
        "Water-heater idle temperature";
    GhcInfo = "GHC_INFO", 0x80_381C, 4, E::GhcInfo, r: true, w: false, fw: None, unit: None, range: None,
        "Group head controller presence / activity bits";
    PrefGhcMci = "PREF_GHC_MCI", 0x80_3820, 4, E::Integer, r: false, w: false, fw: None, unit: None, range: None,
        "Unimplemented; reading freezes firmware ≤ 1260";
    MaxShotPress = "MAX_SHOT_PRESS", 0x80_3824, 4, E::Integer, r: false, w: false, fw: None, unit: None, range: None,
        "Unimplemented; reading freezes firmware ≤ 1260";
    TargetSteamFlow = "TARGET_STEAM_FLOW", 0x80_3828, 4, E::Scaled(100), r: true, w: true, fw: None, unit: Some("mL/s"), range: None,
        "Target steam flow";
    SteamStartSecs = "STEAM_START_SECS", 0x80_382C, 4, E::Scaled(100), r: true, w: true, fw: None, unit: Some("s"), range: Some((0.0, 4.0)),
        "Seconds of high steam flow at start (firmware: valid 0–4 s)";
    SerialNumber = "SERIAL_NUMBER", 0x80_3830, 4, E::Raw, r: true, w: false, fw: None, unit: None, range: None,
        "Machine serial number";
    HeaterVoltage = "HEATER_VOLTAGE", 0x80_3834, 4, E::HeaterVoltage, r: true, w: true, fw: None, unit: Some("V"), range: None,
        "Nominal heater voltage (0, 120, 230), +1000 if set manually";
    HeaterUp2Timeout = "HEATER_UP2_TIMEOUT", 0x80_3838, 4, E::Scaled(10), r: true, w: true, fw: None, unit: Some("s"), range: None,
        "Heater warm-up phase-2 timeout";
    CalFlowEst = "CAL_FLOW_EST", 0x80_383C, 4, E::Scaled(1000), r: true, w: true, fw: Some(1250), unit: None, range: Some((0.13, 2.0)),
        "Flow-estimate calibration multiplier";
    FlushFlowRate = "FLUSH_FLOW_RATE", 0x80_3840, 4, E::Scaled(10), r: true, w: true, fw: Some(1283), unit: Some("mL/s"), range: None,
        "Flush flow";
    FlushTemp = "FLUSH_TEMP", 0x80_3844, 4, E::Scaled(10), r: true, w: true, fw: Some(1283), unit: Some("°C"), range: None,
        "Flush temperature";
    FlushTimeout = "FLUSH_TIMEOUT", 0x80_3848, 4, E::Scaled(10), r: true, w: true, fw: Some(1283), unit: Some("s"), range: None,
        "Flush duration; 0 read as no limit";
    HotWaterFlowRate = "HOT_WATER_FLOW_RATE", 0x80_384C, 4, E::Scaled(10), r: true, w: true, fw: Some(1283), unit: Some("mL/s"), range: None,
        "Hot-water flow";
    SteamPurgeMode = "STEAM_PURGE_MODE", 0x80_3850, 4, E::Bool, r: true, w: true, fw: Some(1320), unit: None, range: None,
        "Two taps to stop steam (puffs, then purge)";
    AllowUsbCharging = "ALLOW_USB_CHARGING", 0x80_3854, 4, E::Bool, r: true, w: true, fw: Some(1320), unit: None, range: None,
        "Tablet USB charging outlet (turns itself back on after 10 min from fw 1324)";
    AppFeatureFlags = "APP_FEATURE_FLAGS", 0x80_3858, 4, E::FeatureFlags, r: true, w: true, fw: Some(1320), unit: None, range: None,
        "Features the app understands (bit 0: user present)";
    RefillKitPresent = "REFILL_KIT_PRESENT", 0x80_385C, 4, E::Bool, r: true, w: true, fw: Some(1320), unit: None, range: None,
        "Refill (plumbing) kit present; a write overrides detection";
    UserPresent = "USER_PRESENT", 0x80_3860, 4, E::Bool, r: true, w: true, fw: Some(1320), unit: None, range: None,
        "App signals user activity";
}

impl MmrRegister {
    /// pyDE1 name.
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    pub const fn address(self) -> u32 {
        self.info().address
    }

    /// The register containing `address`: the start address of a 4-byte register, or
    /// any address inside the debug buffer.
    pub fn lookup_by_address(address: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| {
            let i = r.info();
            if i.width == 4 {
                address == i.address
            } else {
                (i.address..i.address + i.width).contains(&address)
            }
        })
    }

    /// The register with this pyDE1 name (any case).
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.name().eq_ignore_ascii_case(name))
    }

    /// True if the register exists on CPU firmware `build`.
    pub fn available_on(self, build: u32) -> bool {
        self.info().min_firmware.is_none_or(|min| build >= min)
    }

    /// A request reading this register (one word; the first 1024 bytes of the debug buffer).
    pub fn read_request(self) -> ReadFromMMRRequest {
        let words = (self.info().width / 4).clamp(1, 256) as u16;
        ReadFromMMRRequest::from_parts(self.address(), words)
    }

    /// Decode the register's bytes as read (4 little-endian bytes; any length up to the
    /// register's width for the debug buffer).
    pub fn decode_value(self, bytes: &[u8]) -> Result<MmrValue, DecodeError> {
        let info = self.info();
        if info.encoding == MmrEncoding::Text {
            if bytes.len() > info.width as usize {
                return Err(DecodeError::LengthRange {
                    packet: info.name,
                    min: 0,
                    max: info.width as usize,
                    actual: bytes.len(),
                });
            }
            return Ok(decode_text(bytes));
        }
        let b = crate::packets::exact::<4>(info.name, bytes)?;
        let raw = u32::from_le_bytes(*b);
        Ok(match info.encoding {
            E::Raw => MmrValue::Raw(*b),
            E::Integer => MmrValue::Integer(raw),
            E::Scaled(div) => MmrValue::Number(f64::from(raw) / f64::from(div)),
            E::Bool => MmrValue::Bool(raw != 0),
            E::Model => MmrValue::Model(MachineModel::from_raw(raw)),
            E::GhcInfo => MmrValue::GhcInfo(GhcInfo(raw)),
            E::FeatureFlags => MmrValue::FeatureFlags(AppFeatureFlags(raw)),
            E::HeaterVoltage => MmrValue::HeaterVoltage(HeaterVoltage::from_raw(raw)),
            E::Text => decode_text(b),
        })
    }

    /// The raw 32-bit value for `value`, following de1-mmr.md §3.1.
    pub fn encode_raw(self, value: &MmrValue) -> Result<u32, MmrError> {
        let info = self.info();
        if !info.writable {
            return Err(MmrError::NotWritable(info.name));
        }
        let wrong = |expected| MmrError::WrongValueKind {
            register: info.name,
            expected,
            got: value.kind(),
        };
        let raw = match (info.encoding, value) {
            (E::Integer, v) => {
                let x = v.as_f64().ok_or_else(|| wrong("a number"))?;
                self.check_range(x)?;
                scale(info.name, x, 1)?
            }
            (E::Scaled(div), v) => {
                let x = v.as_f64().ok_or_else(|| wrong("a number"))?;
                self.check_range(x)?;
                scale(info.name, x, div)?
            }
            (E::Bool, MmrValue::Bool(b)) => u32::from(*b),
            (E::Bool, MmrValue::Integer(n @ (0 | 1))) => *n,
            (E::Bool, _) => return Err(wrong("a boolean")),
            (E::FeatureFlags, MmrValue::FeatureFlags(f)) => f.0,
            (E::FeatureFlags, MmrValue::Integer(n)) => *n,
            (E::FeatureFlags, _) => return Err(wrong("feature flags")),
            (E::HeaterVoltage, v) => {
                let volts = match v {
                    MmrValue::HeaterVoltage(h) => f64::from(h.volts),
                    other => other.as_f64().ok_or_else(|| wrong("120 or 230 volts"))?,
                };
                // The apps write plain volts; the firmware itself records a manual setting
                // (+1000 on read). Only the two nominal voltages are accepted.
                if volts != 120.0 && volts != 230.0 {
                    return Err(MmrError::ValueOutOfRange {
                        register: info.name,
                        value: volts,
                        min: 120.0,
                        max: 230.0,
                    });
                }
                volts as u32
            }
            _ => return Err(MmrError::NotWritable(info.name)),
        };
        Ok(raw)
    }

    /// The WriteToMMR packet that stores `value` in this register.
    pub fn encode_write(self, value: &MmrValue) -> Result<WriteToMMR, MmrError> {
        let raw = self.encode_raw(value)?;
        WriteToMMR::register(self.address(), raw)
    }

    fn check_range(self, x: f64) -> Result<(), MmrError> {
        match self.info().write_range {
            Some((min, max)) if !(min..=max).contains(&x) => Err(MmrError::ValueOutOfRange {
                register: self.name(),
                value: x,
                min,
                max,
            }),
            _ => Ok(()),
        }
    }
}

/// Text up to the first NUL; invalid UTF-8 is replaced, not an error.
fn decode_text(bytes: &[u8]) -> MmrValue {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    MmrValue::Text(String::from_utf8_lossy(&bytes[..end]).into_owned())
}

/// `round(x × div)` (half to even) as a u32, or an out-of-range error.
fn scale(register: &'static str, x: f64, div: u32) -> Result<u32, MmrError> {
    let max = f64::from(u32::MAX) / f64::from(div);
    let raw = (x * f64::from(div)).round_ties_even();
    if !x.is_finite() || raw < 0.0 || raw > f64::from(u32::MAX) {
        return Err(MmrError::ValueOutOfRange {
            register,
            value: x,
            min: 0.0,
            max,
        });
    }
    Ok(raw as u32)
}

impl fmt::Display for MmrRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A register value.
#[derive(Debug, Clone, PartialEq)]
pub enum MmrValue {
    /// Unscaled integer registers (firmware build, °C thresholds).
    Integer(u32),
    /// Scaled registers, in engineering units.
    Number(f64),
    Bool(bool),
    Model(MachineModel),
    GhcInfo(GhcInfo),
    FeatureFlags(AppFeatureFlags),
    HeaterVoltage(HeaterVoltage),
    /// Opaque identification bytes, as read (little-endian register order).
    Raw([u8; 4]),
    Text(String),
}

impl MmrValue {
    /// The value as a number, for numeric kinds.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Integer(n) => Some(f64::from(*n)),
            Self::Number(x) => Some(*x),
            Self::HeaterVoltage(h) => Some(f64::from(h.volts)),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Integer(_) => "an integer",
            Self::Number(_) => "a number",
            Self::Bool(_) => "a boolean",
            Self::Model(_) => "a machine model",
            Self::GhcInfo(_) => "GHC info",
            Self::FeatureFlags(_) => "feature flags",
            Self::HeaterVoltage(_) => "a heater voltage",
            Self::Raw(_) => "raw bytes",
            Self::Text(_) => "text",
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Integer(n) => json!(n),
            Self::Number(x) => json!(x),
            Self::Bool(b) => json!(b),
            Self::Model(m) => json!({ "model": m.as_str(), "raw": m.to_raw() }),
            Self::GhcInfo(g) => json!({
                "raw": format!("{:08x}", g.0),
                "led_controller_present": g.led_controller_present(),
                "touch_controller_present": g.touch_controller_present(),
                "ghc_active": g.is_active(),
                "factory_mode": g.factory_mode(),
            }),
            Self::FeatureFlags(f) => json!({
                "raw": format!("{:08x}", f.0),
                "user_present": f.user_present(),
            }),
            Self::HeaterVoltage(h) => json!({ "volts": h.volts, "set_manually": h.set_manually }),
            Self::Raw(b) => json!(hex::encode(b)),
            Self::Text(t) => json!(t),
        }
    }
}

/// V13_MODEL. Names as in de1-ble.md §4.3 (`DE1XXXL` is a de1app display label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineModel {
    Unset,
    DE1,
    DE1Plus,
    DE1Pro,
    DE1XL,
    DE1Cafe,
    DE1XXL,
    DE1XXXL,
    Unknown(u32),
}

impl MachineModel {
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Unset,
            1 => Self::DE1,
            2 => Self::DE1Plus,
            3 => Self::DE1Pro,
            4 => Self::DE1XL,
            5 => Self::DE1Cafe,
            6 => Self::DE1XXL,
            7 => Self::DE1XXXL,
            other => Self::Unknown(other),
        }
    }

    pub const fn to_raw(self) -> u32 {
        match self {
            Self::Unset => 0,
            Self::DE1 => 1,
            Self::DE1Plus => 2,
            Self::DE1Pro => 3,
            Self::DE1XL => 4,
            Self::DE1Cafe => 5,
            Self::DE1XXL => 6,
            Self::DE1XXXL => 7,
            Self::Unknown(raw) => raw,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "unset",
            Self::DE1 => "DE1",
            Self::DE1Plus => "DE1+",
            Self::DE1Pro => "DE1PRO",
            Self::DE1XL => "DE1XL",
            Self::DE1Cafe => "DE1CAFE",
            Self::DE1XXL => "DE1XXL",
            Self::DE1XXXL => "DE1XXXL",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// GHC_INFO bits (firmware header text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GhcInfo(pub u32);

impl GhcInfo {
    pub const LED_CONTROLLER_PRESENT: u32 = 0x01;
    pub const TOUCH_CONTROLLER_PRESENT: u32 = 0x02;
    pub const GHC_ACTIVE: u32 = 0x04;
    pub const FACTORY_MODE: u32 = 0x8000_0000;

    pub const fn led_controller_present(self) -> bool {
        self.0 & Self::LED_CONTROLLER_PRESENT != 0
    }
    pub const fn touch_controller_present(self) -> bool {
        self.0 & Self::TOUCH_CONTROLLER_PRESENT != 0
    }
    /// pyDE1's rule: flow must be started at the group head when bit 0x04 is set.
    pub const fn is_active(self) -> bool {
        self.0 & Self::GHC_ACTIVE != 0
    }
    pub const fn factory_mode(self) -> bool {
        self.0 & Self::FACTORY_MODE != 0
    }
    /// de1app's rule: the first byte not in {0, 1, 2, 4} means "GHC required". Agrees
    /// with [`GhcInfo::is_active`] for the values real machines report (0x00, 0x07).
    pub const fn de1app_requires_ghc(self) -> bool {
        !matches!(self.0 & 0xFF, 0 | 1 | 2 | 4)
    }
}

/// APP_FEATURE_FLAGS bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AppFeatureFlags(pub u32);

impl AppFeatureFlags {
    /// The app understands the user-present mechanism (firmware ≥ 1320).
    pub const USER_PRESENT: u32 = 0x1;

    pub const fn user_present(self) -> bool {
        self.0 & Self::USER_PRESENT != 0
    }
}

/// HEATER_VOLTAGE as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaterVoltage {
    /// Nominal voltage: 0 (not set), 120 or 230.
    pub volts: u32,
    /// The firmware reports +1000 when the voltage was set manually.
    pub set_manually: bool,
}

impl HeaterVoltage {
    pub const fn from_raw(raw: u32) -> Self {
        if raw >= 1000 {
            Self {
                volts: raw - 1000,
                set_manually: true,
            }
        } else {
            Self {
                volts: raw,
                set_manually: false,
            }
        }
    }
}

/// True if `bytes` is the encoding of `request`: what a GATT read of A005 returns.
pub fn is_request_echo(bytes: &[u8], request: &ReadFromMMRRequest) -> bool {
    bytes == request.encode()
}

/// Collects the notifications answering one read request (a request for more than 16
/// bytes is answered in several ≤ 16-byte pieces, each with its own address).
#[derive(Debug, Clone)]
pub struct MmrReassembler {
    request: ReadFromMMRRequest,
    data: Vec<u8>,
    /// One flag per requested word.
    received: Vec<bool>,
    missing: usize,
}

impl MmrReassembler {
    pub fn new(request: ReadFromMMRRequest) -> Self {
        let words = usize::from(request.words());
        Self {
            request,
            data: vec![0; request.byte_len()],
            received: vec![false; words],
            missing: words,
        }
    }

    pub fn request(&self) -> &ReadFromMMRRequest {
        &self.request
    }

    /// True if `response` lies inside this request's address range.
    pub fn covers(&self, response: &ReadFromMMRResponse) -> bool {
        let start = u64::from(self.request.address());
        let end = start + self.request.byte_len() as u64;
        let a = u64::from(response.address());
        a >= start && a + response.data().len() as u64 <= end
    }

    /// Add one notification. Returns whether the read is now complete. A response outside
    /// the request, or carrying a partial word, is an error and changes nothing; a
    /// repeated piece overwrites the earlier one.
    pub fn push(&mut self, response: &ReadFromMMRResponse) -> Result<bool, MmrError> {
        let data = response.data();
        if !self.covers(response) {
            return Err(MmrError::UnexpectedResponse {
                address: response.address(),
                len: data.len(),
            });
        }
        let offset = (response.address() - self.request.address()) as usize;
        // Whole words only (`& 3`: `is_multiple_of` is newer than the crate's MSRV).
        if data.len() & 3 != 0 || offset & 3 != 0 {
            return Err(MmrError::UnalignedResponse {
                address: response.address(),
                len: data.len(),
            });
        }
        self.data[offset..offset + data.len()].copy_from_slice(data);
        for flag in &mut self.received[offset / 4..(offset + data.len()) / 4] {
            if !*flag {
                *flag = true;
                self.missing -= 1;
            }
        }
        Ok(self.is_complete())
    }

    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// Addresses of the words not received yet (pyDE1 re-requests them one by one).
    pub fn missing_addresses(&self) -> impl Iterator<Item = u32> + '_ {
        let start = self.request.address();
        self.received
            .iter()
            .zip(0u32..)
            .filter(|(got, _)| !**got)
            .map(move |(_, i)| start + 4 * i)
    }

    /// All requested bytes, once complete.
    pub fn data(&self) -> Option<&[u8]> {
        self.is_complete().then_some(&self.data[..])
    }

    /// The words received so far, as (address, little-endian bytes).
    pub fn words(&self) -> impl Iterator<Item = (u32, [u8; 4])> + '_ {
        let start = self.request.address();
        self.data
            .chunks_exact(4)
            .zip(&self.received)
            .zip(0u32..)
            .filter(|((_, got), _)| **got)
            .map(move |((c, _), i)| (start + 4 * i, [c[0], c[1], c[2], c[3]]))
    }

    /// The received words that are known registers, decoded.
    pub fn register_values(&self) -> Vec<(MmrRegister, Result<MmrValue, DecodeError>)> {
        self.words()
            .filter_map(|(addr, w)| {
                let reg = MmrRegister::lookup_by_address(addr)?;
                (reg.info().width == 4).then(|| (reg, reg.decode_value(&w)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    fn write_hex(reg: MmrRegister, value: MmrValue) -> String {
        let w = reg.encode_write(&value).unwrap();
        hex::encode(&w.encode()[..8])
    }

    #[test]
    fn table_is_ordered_aligned_and_named() {
        let mut last = 0;
        for r in MmrRegister::ALL {
            let i = r.info();
            assert!(i.address > last, "{} out of order", i.name);
            assert_eq!(i.address % 4, 0);
            assert_eq!(i.address >> 16, 0x80);
            assert_eq!(MmrRegister::by_name(i.name), Some(*r));
            assert_eq!(MmrRegister::lookup_by_address(i.address), Some(*r));
            last = i.address;
        }
        assert_eq!(MmrRegister::ALL.len(), 31);
        assert_eq!(
            MmrRegister::by_name("fan_threshold"),
            Some(MmrRegister::FanThreshold)
        );
        assert_eq!(
            MmrRegister::lookup_by_address(0x80_3000),
            Some(MmrRegister::DebugBuffer)
        );
        assert_eq!(MmrRegister::lookup_by_address(0x80_3809), None);
        assert_eq!(MmrRegister::lookup_by_address(0x80_3864), None);
    }

    #[test]
    fn pyde1_write_examples() {
        use MmrRegister as R;
        use MmrValue::*;
        assert_eq!(write_hex(R::FanThreshold, Integer(40)), "0480380828000000");
        assert_eq!(write_hex(R::TankTemp, Number(85.0)), "0480380c55000000");
        assert_eq!(
            write_hex(R::TargetSteamFlow, Number(0.7)),
            "0480382846000000"
        );
        assert_eq!(
            write_hex(R::SteamStartSecs, Number(2.0)),
            "0480382cc8000000"
        );
        assert_eq!(write_hex(R::FlushFlowRate, Number(6.0)), "048038403c000000");
        assert_eq!(write_hex(R::FlushTemp, Number(85.0)), "0480384452030000");
        assert_eq!(write_hex(R::FlushTimeout, Number(3.0)), "048038481e000000");
        assert_eq!(
            write_hex(R::WaterHeaterIdleTemp, Number(85.0)),
            "0480381852030000"
        );
        assert_eq!(write_hex(R::CalFlowEst, Number(1.05)), "0480383c1a040000");
        assert_eq!(
            write_hex(
                R::AppFeatureFlags,
                FeatureFlags(super::AppFeatureFlags(AppFeatureFlags::USER_PRESENT))
            ),
            "0480385801000000"
        );
        assert_eq!(write_hex(R::UserPresent, Bool(true)), "0480386001000000");
        // Registers pyDE1 cannot encode: hot-water flow ÷10 and heater voltage in volts.
        assert_eq!(
            write_hex(R::HotWaterFlowRate, Number(4.5)),
            "0480384c2d000000"
        );
        assert_eq!(
            write_hex(R::HeaterVoltage, Integer(230)),
            "04803834e6000000"
        );
    }

    #[test]
    fn write_refusals() {
        use MmrRegister as R;
        assert!(matches!(
            R::CpuFirmwareBuild.encode_write(&MmrValue::Integer(1333)),
            Err(MmrError::NotWritable("CPU_FIRMWARE_BUILD"))
        ));
        assert!(matches!(
            R::GhcInfo.encode_write(&MmrValue::Integer(0)),
            Err(MmrError::NotWritable(_))
        ));
        assert!(matches!(
            R::FanThreshold.encode_write(&MmrValue::Bool(true)),
            Err(MmrError::WrongValueKind { .. })
        ));
        assert!(matches!(
            R::UserPresent.encode_write(&MmrValue::Number(0.5)),
            Err(MmrError::WrongValueKind { .. })
        ));
        assert!(R::TankTemp.encode_write(&MmrValue::Number(-1.0)).is_err());
        assert!(R::TankTemp
            .encode_write(&MmrValue::Number(f64::NAN))
            .is_err());
        assert!(R::SteamStartSecs
            .encode_write(&MmrValue::Number(4.5))
            .is_err());
        assert!(R::CalFlowEst.encode_write(&MmrValue::Number(0.1)).is_err());
        assert!(R::HeaterVoltage
            .encode_write(&MmrValue::Integer(240))
            .is_err());
        assert!(R::FlushTimeout
            .encode_write(&MmrValue::Number(1e12))
            .is_err());
    }

    #[test]
    fn decodes_by_register_kind() {
        use MmrRegister as R;
        let le = |n: u32| n.to_le_bytes();
        assert_eq!(
            R::CpuBoardModel.decode_value(&le(1300)),
            Ok(MmrValue::Number(1.3))
        );
        assert_eq!(
            R::V13Model.decode_value(&le(3)),
            Ok(MmrValue::Model(MachineModel::DE1Pro))
        );
        assert_eq!(
            R::CpuFirmwareBuild.decode_value(&le(1333)),
            Ok(MmrValue::Integer(1333))
        );
        assert_eq!(
            R::WaterHeaterIdleTemp.decode_value(&le(850)),
            Ok(MmrValue::Number(85.0))
        );
        assert_eq!(
            R::TargetSteamFlow.decode_value(&le(70)),
            Ok(MmrValue::Number(0.7))
        );
        assert_eq!(
            R::CalFlowEst.decode_value(&le(1000)),
            Ok(MmrValue::Number(1.0))
        );
        assert_eq!(
            R::HeaterVoltage.decode_value(&le(1230)),
            Ok(MmrValue::HeaterVoltage(HeaterVoltage {
                volts: 230,
                set_manually: true
            }))
        );
        assert_eq!(
            R::SerialNumber.decode_value(&[0xDE, 0xAD, 0xBE, 0xEF]),
            Ok(MmrValue::Raw([0xDE, 0xAD, 0xBE, 0xEF]))
        );
        assert_eq!(
            R::SteamPurgeMode.decode_value(&le(1)),
            Ok(MmrValue::Bool(true))
        );
        let MmrValue::GhcInfo(g) = R::GhcInfo.decode_value(&le(7)).unwrap() else {
            panic!("GHC_INFO must decode as GhcInfo");
        };
        assert!(g.is_active() && g.led_controller_present() && g.touch_controller_present());
        assert!(g.de1app_requires_ghc());
        // The two apps disagree on 3 and 4.
        assert!(!GhcInfo(3).is_active() && GhcInfo(3).de1app_requires_ghc());
        assert!(GhcInfo(4).is_active() && !GhcInfo(4).de1app_requires_ghc());
        assert!(R::FanThreshold.decode_value(&[1, 2, 3]).is_err());
        assert_eq!(
            R::DebugBuffer.decode_value(b"boot ok\n\0garbage"),
            Ok(MmrValue::Text("boot ok\n".into()))
        );
    }

    #[test]
    fn encode_then_decode_gives_the_value_back() {
        use MmrRegister as R;
        for (reg, value) in [
            (R::FlushTimeout, MmrValue::Number(20.0)),
            (R::HeaterUp1Flow, MmrValue::Number(2.0)),
            (R::HeaterUp2Timeout, MmrValue::Number(5.0)),
            (R::CalFlowEst, MmrValue::Number(1.234)),
            (R::TargetSteamFlow, MmrValue::Number(0.65)),
            (R::FanThreshold, MmrValue::Integer(60)),
            (R::AllowUsbCharging, MmrValue::Bool(false)),
        ] {
            let w = reg.encode_write(&value).unwrap();
            assert_eq!(w.address(), reg.address());
            assert_eq!(reg.decode_value(w.data()).unwrap(), value, "{reg}");
        }
    }

    #[test]
    fn firmware_availability() {
        assert!(MmrRegister::FlushTimeout.available_on(1283));
        assert!(!MmrRegister::FlushTimeout.available_on(1265));
        assert!(!MmrRegister::UserPresent.available_on(1283));
        assert!(MmrRegister::FanThreshold.available_on(1000));
    }

    fn response(address: u32, data: &[u8]) -> ReadFromMMRResponse {
        ReadFromMMRResponse::new(address, data).unwrap()
    }

    #[test]
    fn reassembles_a_block_read_in_pieces() {
        // pyDE1's 23-word block read: 6 notifications of 16, 16, 16, 16, 16, 12 bytes.
        let req = ReadFromMMRRequest::block(0x80_3808, 0x80_3860).unwrap();
        let mut r = MmrReassembler::new(req);
        let all: Vec<u8> = (0..92u8).collect();
        let mut pieces: Vec<(u32, &[u8])> = all
            .chunks(16)
            .zip(0u32..)
            .map(|(c, i)| (0x80_3808 + 16 * i, c))
            .collect();
        pieces.reverse(); // order does not matter
        let last = pieces.len() - 1;
        for (i, (addr, chunk)) in pieces.into_iter().enumerate() {
            assert!(r.data().is_none());
            let done = r.push(&response(addr, chunk)).unwrap();
            assert_eq!(done, i == last);
        }
        assert_eq!(r.data().unwrap(), &all[..]);
        assert_eq!(r.missing_addresses().count(), 0);
        let values = r.register_values();
        // 23 words, all of them registers in the table.
        assert_eq!(values.len(), 23);
        assert_eq!(values[0].0, MmrRegister::FanThreshold);
        assert_eq!(
            values[0].1,
            Ok(MmrValue::Integer(u32::from_le_bytes([0, 1, 2, 3])))
        );
    }

    #[test]
    fn reassembler_reports_missing_words_and_rejects_strangers() {
        let req = ReadFromMMRRequest::new(0x80_0008, 3).unwrap();
        let mut r = MmrReassembler::new(req);
        assert_eq!(r.push(&response(0x80_0008, &[1, 0, 0, 0])), Ok(false));
        assert_eq!(
            r.missing_addresses().collect::<Vec<_>>(),
            [0x80_000C, 0x80_0010]
        );
        // Outside the request.
        assert!(matches!(
            r.push(&response(0x80_0010, &[0; 8])),
            Err(MmrError::UnexpectedResponse { .. })
        ));
        assert!(matches!(
            r.push(&response(0x80_3808, &[0; 4])),
            Err(MmrError::UnexpectedResponse { .. })
        ));
        // Partial words: what a request echo (Len 3 = "3 bytes") would look like.
        assert!(matches!(
            r.push(&response(0x80_000C, &[0; 3])),
            Err(MmrError::UnalignedResponse { .. })
        ));
        // A repeated word is not counted twice.
        assert_eq!(r.push(&response(0x80_0008, &[2, 0, 0, 0])), Ok(false));
        assert_eq!(
            r.push(&response(0x80_000C, &[3, 0, 0, 0, 9, 0, 0, 0])),
            Ok(true)
        );
        assert_eq!(
            r.words().map(|(a, w)| (a, w[0])).collect::<Vec<_>>(),
            [(0x80_0008, 2), (0x80_000C, 3), (0x80_0010, 9)]
        );
    }

    #[test]
    fn de1app_vector_through_the_reassembler() {
        let bytes = hex_bytes("0C 80 00 08 14 05 00 00 03 00 00 00 71 04 00 00 00 00 00 00");
        let resp = ReadFromMMRResponse::decode(&bytes).unwrap();
        let mut r = MmrReassembler::new(ReadFromMMRRequest::new(0x80_0008, 3).unwrap());
        assert_eq!(r.push(&resp), Ok(true));
        let values = r.register_values();
        assert_eq!(values[0].1, Ok(MmrValue::Number(1.3)));
        assert_eq!(values[1].1, Ok(MmrValue::Model(MachineModel::DE1Pro)));
        assert_eq!(values[2].1, Ok(MmrValue::Integer(1137)));
    }

    #[test]
    fn request_echo_is_recognised() {
        let req = ReadFromMMRRequest::new(0x80_0010, 1).unwrap();
        assert!(is_request_echo(&req.encode(), &req));
        let other = ReadFromMMRRequest::new(0x80_0010, 2).unwrap();
        assert!(!is_request_echo(&other.encode(), &req));
    }
}
