//! The DE1's GATT service and its eighteen characteristics (`0000A001` … `0000A012`).
//!
//! Names are pyDE1's (`CUUID`), which is also what the de1d API and CLI use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The DE1's primary service, `0000A000-0000-1000-8000-00805F9B34FB`.
pub const SERVICE_UUID: [u8; 16] = base_uuid(0xA000);
/// [`SERVICE_UUID`] in canonical (lowercase, hyphenated) text form.
pub const SERVICE_UUID_STRING: &str = "0000a000-0000-1000-8000-00805f9b34fb";
/// The Client Characteristic Configuration descriptor (`00002902-…`); write `01 00` to
/// enable notifications.
pub const CCCD_UUID: [u8; 16] = base_uuid(0x2902);
/// Value written to the CCCD to enable notifications.
pub const CCCD_ENABLE_NOTIFICATIONS: [u8; 2] = [0x01, 0x00];

/// A 16-bit UUID expanded with the Bluetooth base UUID `0000xxxx-0000-1000-8000-00805F9B34FB`.
const fn base_uuid(short: u16) -> [u8; 16] {
    let s = short.to_be_bytes();
    [
        0x00, 0x00, s[0], s[1], 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0x80, 0x5F, 0x9B, 0x34,
        0xFB,
    ]
}

/// Format 16 UUID bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lowercase).
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let h = hex::encode(uuid);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parse a UUID in hyphenated or plain 32-hex-digit form (any case).
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(&digits, &mut out).ok()?;
    Some(out)
}

/// GATT properties of a characteristic: the ones pyDE1's `ble.py` lists next to each UUID
/// (presumably what the machine declares). A simulator must declare at least these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Properties {
    pub read: bool,
    pub write: bool,
    pub notify: bool,
}

const R_N: Properties = Properties {
    read: true,
    write: false,
    notify: true,
};
const R_W_N: Properties = Properties {
    read: true,
    write: true,
    notify: true,
};
const W_N: Properties = Properties {
    read: false,
    write: true,
    notify: true,
};

/// One of the DE1's characteristics, in UUID order (`A001` … `A012`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    /// A001: BLE-module and firmware version blocks (18 bytes).
    Versions,
    /// A002: ask the machine to change state (1 byte).
    RequestedState,
    /// A003: machine clock (8 bytes; used by pyDE1 only, effect unverified).
    SetTime,
    /// A004: stored-shot directory; no app implements it.
    ShotDirectory,
    /// A005: memory-mapped register read request / response (20 bytes).
    ReadFromMMR,
    /// A006: memory-mapped register write and firmware-chunk write (≤ 20 bytes).
    WriteToMMR,
    /// A007: no app implements it.
    ShotMapRequest,
    /// A008: no app implements it.
    DeleteShotRange,
    /// A009: firmware erase / verify (7 bytes).
    FWMapRequest,
    /// A00A: heater and water temperatures with targets (16 bytes).
    Temperatures,
    /// A00B: steam, hot-water and group-temperature settings (9 bytes).
    ShotSettings,
    /// A00C: the legacy whole-profile structure; do not use.
    Deprecated,
    /// A00D: periodic real-time sample (19 bytes).
    ShotSample,
    /// A00E: current state and substate (2 bytes).
    StateInfo,
    /// A00F: profile header (5 bytes).
    HeaderWrite,
    /// A010: profile frames, extension frames and tail (8 bytes).
    FrameWrite,
    /// A011: tank level and refill threshold (4 bytes).
    WaterLevels,
    /// A012: sensor calibration (14 bytes).
    Calibration,
}

impl Characteristic {
    /// Every characteristic, in UUID order.
    pub const ALL: [Characteristic; 18] = [
        Self::Versions,
        Self::RequestedState,
        Self::SetTime,
        Self::ShotDirectory,
        Self::ReadFromMMR,
        Self::WriteToMMR,
        Self::ShotMapRequest,
        Self::DeleteShotRange,
        Self::FWMapRequest,
        Self::Temperatures,
        Self::ShotSettings,
        Self::Deprecated,
        Self::ShotSample,
        Self::StateInfo,
        Self::HeaderWrite,
        Self::FrameWrite,
        Self::WaterLevels,
        Self::Calibration,
    ];

    /// The 16-bit UUID, `0xA001` … `0xA012`.
    pub const fn short_uuid(self) -> u16 {
        0xA001 + self as u16
    }

    /// The full 128-bit UUID, big-endian as written in text form.
    pub const fn uuid(self) -> [u8; 16] {
        base_uuid(self.short_uuid())
    }

    /// The UUID in canonical lowercase text form, e.g. `0000a00d-0000-1000-8000-00805f9b34fb`.
    pub fn uuid_string(self) -> String {
        format_uuid(&self.uuid())
    }

    /// The characteristic with this 128-bit UUID.
    pub fn from_uuid(uuid: &[u8; 16]) -> Option<Self> {
        let short = u16::from_be_bytes([uuid[2], uuid[3]]);
        Self::from_short_uuid(short).filter(|c| c.uuid() == *uuid)
    }

    /// The characteristic with this 16-bit UUID (`0xA001` … `0xA012`).
    pub fn from_short_uuid(short: u16) -> Option<Self> {
        let index = short.checked_sub(0xA001)?;
        Self::ALL.get(usize::from(index)).copied()
    }

    /// The pyDE1 name, e.g. `"ShotSample"`, `"ReadFromMMR"`, `"FWMapRequest"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Versions => "Versions",
            Self::RequestedState => "RequestedState",
            Self::SetTime => "SetTime",
            Self::ShotDirectory => "ShotDirectory",
            Self::ReadFromMMR => "ReadFromMMR",
            Self::WriteToMMR => "WriteToMMR",
            Self::ShotMapRequest => "ShotMapRequest",
            Self::DeleteShotRange => "DeleteShotRange",
            Self::FWMapRequest => "FWMapRequest",
            Self::Temperatures => "Temperatures",
            Self::ShotSettings => "ShotSettings",
            Self::Deprecated => "Deprecated",
            Self::ShotSample => "ShotSample",
            Self::StateInfo => "StateInfo",
            Self::HeaderWrite => "HeaderWrite",
            Self::FrameWrite => "FrameWrite",
            Self::WaterLevels => "WaterLevels",
            Self::Calibration => "Calibration",
        }
    }

    /// GATT properties as listed in pyDE1's `ble.py` (de1-ble.md §3).
    pub const fn properties(self) -> Properties {
        match self {
            Self::Versions | Self::Temperatures | Self::ShotSample | Self::StateInfo => R_N,
            Self::WriteToMMR
            | Self::ShotMapRequest
            | Self::DeleteShotRange
            | Self::FWMapRequest => W_N,
            Self::RequestedState
            | Self::SetTime
            | Self::ShotDirectory
            | Self::ReadFromMMR
            | Self::ShotSettings
            | Self::Deprecated
            | Self::HeaderWrite
            | Self::FrameWrite
            | Self::WaterLevels
            | Self::Calibration => R_W_N,
        }
    }

    /// The size of the characteristic's value in bytes when it is fixed. `None` for the
    /// characteristics without a known layout and for WriteToMMR, whose final
    /// firmware chunk may be shorter than 20 bytes.
    pub const fn fixed_len(self) -> Option<usize> {
        match self {
            Self::Versions => Some(18),
            Self::RequestedState => Some(1),
            Self::SetTime => Some(8),
            Self::ReadFromMMR => Some(20),
            Self::FWMapRequest => Some(7),
            Self::Temperatures => Some(16),
            Self::ShotSettings => Some(9),
            Self::ShotSample => Some(19),
            Self::StateInfo => Some(2),
            Self::HeaderWrite => Some(5),
            Self::FrameWrite => Some(8),
            Self::WaterLevels => Some(4),
            Self::Calibration => Some(14),
            Self::WriteToMMR
            | Self::ShotDirectory
            | Self::ShotMapRequest
            | Self::DeleteShotRange
            | Self::Deprecated => None,
        }
    }
}

impl fmt::Display for Characteristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no characteristic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown characteristic {0:?} (expected a name such as ShotSample, a short UUID such as A00D, or a full UUID)")]
pub struct UnknownCharacteristic(pub String);

impl FromStr for Characteristic {
    type Err = UnknownCharacteristic;

    /// Accepts the pyDE1 name (any case), the short UUID (`A00D`, `0xa00d`) or the full
    /// UUID text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some(c) = Self::ALL.iter().find(|c| c.name().eq_ignore_ascii_case(t)) {
            return Ok(*c);
        }
        let short_hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        if short_hex.len() == 4 {
            if let Some(c) = u16::from_str_radix(short_hex, 16)
                .ok()
                .and_then(Self::from_short_uuid)
            {
                return Ok(c);
            }
        }
        parse_uuid(t)
            .and_then(|u| Self::from_uuid(&u))
            .ok_or_else(|| UnknownCharacteristic(s.to_owned()))
    }
}

impl Serialize for Characteristic {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Characteristic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_follow_the_a0xx_pattern() {
        assert_eq!(
            Characteristic::ShotSample.uuid_string(),
            "0000a00d-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            Characteristic::Calibration.uuid_string(),
            "0000a012-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(format_uuid(&SERVICE_UUID), SERVICE_UUID_STRING);
        for (i, c) in Characteristic::ALL.iter().enumerate() {
            assert_eq!(c.short_uuid(), 0xA001 + i as u16);
            assert_eq!(Characteristic::from_uuid(&c.uuid()), Some(*c));
        }
    }

    #[test]
    fn from_uuid_rejects_other_bases_and_the_service() {
        let mut u = Characteristic::StateInfo.uuid();
        u[15] ^= 1;
        assert_eq!(Characteristic::from_uuid(&u), None);
        assert_eq!(Characteristic::from_uuid(&SERVICE_UUID), None);
        assert_eq!(Characteristic::from_short_uuid(0xA013), None);
        assert_eq!(Characteristic::from_short_uuid(0), None);
    }

    #[test]
    fn parses_names_short_and_full_uuids() {
        assert_eq!(
            "shotsample".parse::<Characteristic>(),
            Ok(Characteristic::ShotSample)
        );
        assert_eq!(
            "FWMAPREQUEST".parse::<Characteristic>(),
            Ok(Characteristic::FWMapRequest)
        );
        assert_eq!(
            "a00e".parse::<Characteristic>(),
            Ok(Characteristic::StateInfo)
        );
        assert_eq!(
            "0xA005".parse::<Characteristic>(),
            Ok(Characteristic::ReadFromMMR)
        );
        assert_eq!(
            "0000A010-0000-1000-8000-00805F9B34FB".parse::<Characteristic>(),
            Ok(Characteristic::FrameWrite)
        );
        assert!("ShotSamples".parse::<Characteristic>().is_err());
        assert!("A013".parse::<Characteristic>().is_err());
        for c in Characteristic::ALL {
            assert_eq!(c.name().parse::<Characteristic>(), Ok(c));
        }
    }

    #[test]
    fn properties_match_the_spec_table() {
        let p = Characteristic::ShotSample.properties();
        assert!(p.read && !p.write && p.notify);
        let p = Characteristic::WriteToMMR.properties();
        assert!(!p.read && p.write && p.notify);
        let p = Characteristic::FWMapRequest.properties();
        assert!(!p.read && p.write && p.notify);
        let p = Characteristic::ShotSettings.properties();
        assert!(p.read && p.write && p.notify);
        // pyDE1 subscribes to 13 characteristics at connect: all must be notify-capable.
        assert!(Characteristic::ALL.iter().all(|c| c.properties().notify));
    }

    #[test]
    fn serde_uses_the_name() {
        let json = serde_json::to_string(&Characteristic::ReadFromMMR).unwrap();
        assert_eq!(json, "\"ReadFromMMR\"");
        let back: Characteristic = serde_json::from_str("\"waterlevels\"").unwrap();
        assert_eq!(back, Characteristic::WaterLevels);
    }
}
