//! FrameWrite (A010) — one profile frame, 8 bytes. Byte 0 (`FrameToWrite`) selects the
//! kind:
//!
//! | FrameToWrite          | Kind                                   |
//! |-----------------------|----------------------------------------|
//! | 0 … NumberOfFrames−1  | shot frame `i`                         |
//! | NumberOfFrames        | tail frame                             |
//! | 32 … 51               | extension (limiter) frame for shot frame `FrameToWrite − 32` |
//!
//! Shot frame:
//!
//! | Off | Size | Field        | Type                                  |
//! |-----|------|--------------|---------------------------------------|
//! | 0   | 1    | FrameToWrite | U8, frame index                       |
//! | 1   | 1    | Flag         | [`FrameFlags`]                        |
//! | 2   | 1    | SetVal       | U8P4, bar or mL/s per CtrlF           |
//! | 3   | 1    | Temp         | U8P1 °C                               |
//! | 4   | 1    | FrameLen     | F8_1_7 s, maximum frame duration      |
//! | 5   | 1    | TriggerVal   | U8P4, exit threshold per DC_CompF     |
//! | 6   | 2    | MaxVol       | U10P0 BE mL (0 = none); bit 10 set by de1app |
//!
//! Extension frame: `32+i`, MaxFlowOrPressure U8P4, MaxFoPRange U8P4, 5 zero bytes.
//! Tail frame: `N`, MaxTotalVolume U10P0 BE (bit 15: ignore preinfusion), 5 zero bytes.
//! Padding bytes are written as zero and ignored when decoding.
//!
//! A shot frame and the tail are told apart only by the header's NumberOfFrames, so
//! [`FrameWrite::decode`] takes it as context. pyDE1 writes the tail volume
//! little-endian by mistake (de1-ble.md §5.13.3): decoding its `05 00 80 …` yields the
//! big-endian reading 0x0080 (128 mL, no flags), which is what the firmware sees.

use serde_json::{json, Value};

use super::serialize_via_json;
use crate::fixed::{F8_1_7, U10P0, U8P1, U8P4};
use crate::DecodeError;

const NAME: &str = "FrameWrite";

/// Byte 1 of a shot frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FrameFlags(pub u8);

impl FrameFlags {
    /// Control flow (else pressure).
    pub const CTRL_F: u8 = 0x01;
    /// Leave the frame early when the comparison is true.
    pub const DO_COMPARE: u8 = 0x02;
    /// Comparison is "greater than" (else "less than").
    pub const DC_GT: u8 = 0x04;
    /// Compare flow (else pressure).
    pub const DC_COMP_F: u8 = 0x08;
    /// Target the mix (water) temperature (else the basket/coffee temperature).
    pub const T_MIX_TEMP: u8 = 0x10;
    /// Ramp to the target over the frame (else jump).
    pub const INTERPOLATE: u8 = 0x20;
    /// Ignore the header's MinimumPressure / MaximumFlow.
    pub const IGNORE_LIMIT: u8 = 0x40;

    /// True if every bit of `mask` is set.
    pub const fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
    /// These flags with `mask` set.
    pub const fn with(self, mask: u8) -> Self {
        Self(self.0 | mask)
    }
    pub const fn controls_flow(self) -> bool {
        self.contains(Self::CTRL_F)
    }
    pub const fn controls_pressure(self) -> bool {
        !self.controls_flow()
    }
    pub const fn does_compare(self) -> bool {
        self.contains(Self::DO_COMPARE)
    }
    pub const fn compares_greater_than(self) -> bool {
        self.contains(Self::DC_GT)
    }
    pub const fn compares_flow(self) -> bool {
        self.contains(Self::DC_COMP_F)
    }
    pub const fn targets_mix_temp(self) -> bool {
        self.contains(Self::T_MIX_TEMP)
    }
    pub const fn interpolates(self) -> bool {
        self.contains(Self::INTERPOLATE)
    }
    pub const fn ignores_limit(self) -> bool {
        self.contains(Self::IGNORE_LIMIT)
    }

    /// Readable form using the profile-JSON vocabulary (pump, exit, sensor, transition).
    pub fn to_json(self) -> Value {
        let exit = if self.does_compare() {
            json!({
                "type": if self.compares_flow() { "flow" } else { "pressure" },
                "condition": if self.compares_greater_than() { "over" } else { "under" },
            })
        } else {
            Value::Null
        };
        json!({
            "raw": format!("{:02x}", self.0),
            "pump": if self.controls_flow() { "flow" } else { "pressure" },
            "exit": exit,
            "sensor": if self.targets_mix_temp() { "water" } else { "coffee" },
            "transition": if self.interpolates() { "smooth" } else { "fast" },
            "ignore_limit": self.ignores_limit(),
        })
    }
}

impl std::ops::BitOr for FrameFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// A shot frame (bytes 1 … 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShotFrame {
    pub flags: FrameFlags,
    /// Target pressure (bar) or flow (mL/s), per [`FrameFlags::controls_flow`].
    pub set_value: U8P4,
    /// Target temperature, °C.
    pub temperature: U8P1,
    /// Maximum frame duration, seconds.
    pub duration: F8_1_7,
    /// Exit threshold (bar or mL/s per [`FrameFlags::compares_flow`]); 0 when no exit.
    pub trigger_value: U8P4,
    /// Per-frame volume limit in mL (0 = none) with flag bits.
    pub max_volume: U10P0,
}

/// An extension (limiter) frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ExtensionFrame {
    /// Max flow (mL/s) for a pressure frame, max pressure (bar) for a flow frame.
    pub limiter_value: U8P4,
    /// Range over which the limiter acts, same unit.
    pub limiter_range: U8P4,
}

/// The tail frame, written after the shot frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TailFrame {
    /// Firmware total-volume limit in mL (0 = none) with flag bits (bit 15: do not
    /// count preinfusion).
    pub max_total_volume: U10P0,
}

/// One FrameWrite packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameWrite {
    /// Shot frame `index` (wire byte 0 = index, 0 … 19).
    Shot { index: u8, frame: ShotFrame },
    /// Limiter for shot frame `index` (0 … 19; wire byte 0 = index + 32).
    Extension { index: u8, frame: ExtensionFrame },
    /// Tail frame; `index` = the header's NumberOfFrames.
    Tail { index: u8, frame: TailFrame },
}

impl FrameWrite {
    pub const LEN: usize = 8;
    /// Wire index of the extension frame for shot frame 0.
    pub const EXTENSION_OFFSET: u8 = 32;
    /// Highest shot-frame index (profiles have at most 20 frames).
    pub const MAX_SHOT_INDEX: u8 = 19;

    /// Decode a FrameWrite. `number_of_frames` is the NumberOfFrames of the header the
    /// frame belongs to: the frame with that index is the tail.
    ///
    /// Without it (`None`) an index 0 … 19 is taken as a shot frame and 20 as a tail
    /// (no shot frame can have index 20). Indexes that cannot occur — 21 … 31, 52 … 255,
    /// or above `number_of_frames` when it is given — are [`DecodeError::InvalidValue`].
    pub fn decode(bytes: &[u8], number_of_frames: Option<u8>) -> Result<Self, DecodeError> {
        let b = super::exact::<8>(NAME, bytes)?;
        let index = b[0];
        let invalid = || DecodeError::InvalidValue {
            packet: NAME,
            field: "FrameToWrite",
            value: u32::from(index),
        };
        let ext_max = Self::EXTENSION_OFFSET + Self::MAX_SHOT_INDEX;
        if index >= Self::EXTENSION_OFFSET {
            if index > ext_max {
                return Err(invalid());
            }
            return Ok(Self::Extension {
                index: index - Self::EXTENSION_OFFSET,
                frame: ExtensionFrame {
                    limiter_value: U8P4(b[1]),
                    limiter_range: U8P4(b[2]),
                },
            });
        }
        let is_tail = match number_of_frames {
            Some(n) if index == n => true,
            Some(n) if index > n => return Err(invalid()),
            Some(_) => false,
            None => index == Self::MAX_SHOT_INDEX + 1,
        };
        if is_tail {
            return Ok(Self::Tail {
                index,
                frame: TailFrame {
                    max_total_volume: U10P0::from_be_slice(&b[1..3]),
                },
            });
        }
        if index > Self::MAX_SHOT_INDEX {
            return Err(invalid());
        }
        Ok(Self::Shot {
            index,
            frame: ShotFrame {
                flags: FrameFlags(b[1]),
                set_value: U8P4(b[2]),
                temperature: U8P1(b[3]),
                duration: F8_1_7(b[4]),
                trigger_value: U8P4(b[5]),
                max_volume: U10P0::from_be_slice(&b[6..8]),
            },
        })
    }

    /// Wire byte 0 (`FrameToWrite`).
    pub fn frame_to_write(&self) -> u8 {
        match self {
            Self::Shot { index, .. } | Self::Tail { index, .. } => *index,
            Self::Extension { index, .. } => index.wrapping_add(Self::EXTENSION_OFFSET),
        }
    }

    pub fn encode(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.frame_to_write();
        match self {
            Self::Shot { frame, .. } => {
                out[1] = frame.flags.0;
                out[2] = frame.set_value.0;
                out[3] = frame.temperature.0;
                out[4] = frame.duration.0;
                out[5] = frame.trigger_value.0;
                out[6..8].copy_from_slice(&frame.max_volume.0.to_be_bytes());
            }
            Self::Extension { frame, .. } => {
                out[1] = frame.limiter_value.0;
                out[2] = frame.limiter_range.0;
            }
            Self::Tail { frame, .. } => {
                out[1..3].copy_from_slice(&frame.max_total_volume.0.to_be_bytes());
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Shot { index, frame } => {
                let f = frame.flags;
                let set_key = if f.controls_flow() {
                    "set_flow_ml_per_s"
                } else {
                    "set_pressure_bar"
                };
                let trigger_key = if f.compares_flow() {
                    "trigger_flow_ml_per_s"
                } else {
                    "trigger_pressure_bar"
                };
                let mut m = serde_json::Map::new();
                m.insert("kind".into(), "shot".into());
                m.insert("index".into(), (*index).into());
                m.insert("flags".into(), f.to_json());
                m.insert(set_key.into(), frame.set_value.to_f64().into());
                m.insert("temperature_c".into(), frame.temperature.to_f64().into());
                m.insert("duration_s".into(), frame.duration.to_f64().into());
                m.insert(trigger_key.into(), frame.trigger_value.to_f64().into());
                m.insert("max_volume_ml".into(), frame.max_volume.value().into());
                m.insert(
                    "max_volume_flags".into(),
                    format!("{:04x}", frame.max_volume.flags()).into(),
                );
                Value::Object(m)
            }
            Self::Extension { index, frame } => json!({
                "kind": "extension",
                "index": index,
                "limiter_value": frame.limiter_value.to_f64(),
                "limiter_range": frame.limiter_range.to_f64(),
            }),
            Self::Tail { index, frame } => json!({
                "kind": "tail",
                "index": index,
                "max_total_volume_ml": frame.max_total_volume.value(),
                "max_total_volume_flags": format!("{:04x}", frame.max_total_volume.flags()),
                "ignore_preinfusion": frame.max_total_volume.flags() & U10P0::FLAG_IGNORE_PREINFUSION != 0,
            }),
        }
    }
}

serialize_via_json!(FrameWrite);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    fn shot(hex: &str) -> (u8, ShotFrame) {
        match FrameWrite::decode(&hex_bytes(hex), Some(5)).unwrap() {
            FrameWrite::Shot { index, frame } => (index, frame),
            other => panic!("not a shot frame: {other:?}"),
        }
    }

    #[test]
    fn decodes_blooming_frame_0() {
        // de1-profiles.md §7.2 row 2.
        let (index, f) = shot("00 47 40 C3 97 40 01 F4");
        assert_eq!(index, 0);
        assert!(f.flags.controls_flow());
        assert!(f.flags.does_compare());
        assert!(f.flags.compares_greater_than());
        assert!(!f.flags.compares_flow());
        assert!(!f.flags.targets_mix_temp());
        assert!(!f.flags.interpolates());
        assert!(f.flags.ignores_limit());
        assert_eq!(f.set_value.to_f64(), 4.0);
        assert_eq!(f.temperature.to_f64(), 97.5);
        assert_eq!(f.duration.to_f64(), 23.0);
        assert_eq!(f.trigger_value.to_f64(), 4.0);
        assert_eq!(f.max_volume.value(), 500);
        assert_eq!(f.max_volume.flags(), 0);
    }

    #[test]
    fn encodes_blooming_frame_2_from_values() {
        let frame = ShotFrame {
            flags: FrameFlags(FrameFlags::IGNORE_LIMIT)
                .with(FrameFlags::INTERPOLATE)
                .with(FrameFlags::CTRL_F),
            set_value: U8P4::from_f64(2.2).unwrap(),
            temperature: U8P1::from_f64(92.0).unwrap(),
            duration: F8_1_7::from_f64(5.0).unwrap(),
            trigger_value: U8P4(0),
            max_volume: U10P0::from_f64(500.0, 0).unwrap(),
        };
        let fw = FrameWrite::Shot { index: 2, frame };
        assert_eq!(fw.encode().to_vec(), hex_bytes("02 61 23 B8 32 00 01 F4"));
    }

    #[test]
    fn de1app_sets_maxvol_bit_10() {
        // de1-profiles.md §7.3: `05 F4` = 500 mL | 0x0400.
        let (_, f) = shot("00 47 40 C3 97 40 05 F4");
        assert_eq!(f.max_volume.value(), 500);
        assert_eq!(f.max_volume.flags(), U10P0::FLAG_0400);
    }

    #[test]
    fn extension_index_is_the_shot_frame() {
        let fw = FrameWrite::decode(&hex_bytes("23 8A 0A 00 00 00 00 00"), None).unwrap();
        let FrameWrite::Extension { index, frame } = fw else {
            panic!("not an extension: {fw:?}");
        };
        assert_eq!(index, 3);
        assert_eq!(frame.limiter_value.to_f64(), 8.625);
        assert_eq!(frame.limiter_range.to_f64(), 0.625);
        assert_eq!(fw.encode().to_vec(), hex_bytes("23 8A 0A 00 00 00 00 00"));
        assert_eq!(fw.frame_to_write(), 0x23);
    }

    #[test]
    fn tail_needs_the_frame_count() {
        let bytes = hex_bytes("04 00 00 00 00 00 00 00");
        assert!(matches!(
            FrameWrite::decode(&bytes, Some(4)),
            Ok(FrameWrite::Tail { index: 4, .. })
        ));
        // Without context index 4 is a shot frame.
        assert!(matches!(
            FrameWrite::decode(&bytes, None),
            Ok(FrameWrite::Shot { index: 4, .. })
        ));
        // Index 20 can only be a tail.
        assert!(matches!(
            FrameWrite::decode(&hex_bytes("14 00 00 00 00 00 00 00"), None),
            Ok(FrameWrite::Tail { index: 20, .. })
        ));
        // Beyond the tail of a 3-frame profile.
        assert!(FrameWrite::decode(&bytes, Some(3)).is_err());
    }

    #[test]
    fn tail_volume_is_big_endian_with_flags() {
        let tail = FrameWrite::Tail {
            index: 4,
            frame: TailFrame {
                max_total_volume: U10P0::from_f64(36.0, U10P0::FLAG_IGNORE_PREINFUSION).unwrap(),
            },
        };
        assert_eq!(tail.encode().to_vec(), hex_bytes("04 80 24 00 00 00 00 00"));
        // pyDE1's little-endian tail, as the firmware reads it.
        let py = FrameWrite::decode(&hex_bytes("04 24 80 00 00 00 00 00"), Some(4)).unwrap();
        let FrameWrite::Tail { frame, .. } = py else {
            panic!("not a tail: {py:?}")
        };
        assert_eq!(frame.max_total_volume.0, 0x2480);
        assert_eq!(frame.max_total_volume.value(), 0x80);
    }

    #[test]
    fn impossible_indexes_are_errors() {
        for idx in [21u8, 31, 52, 0xFF] {
            let mut b = [0u8; 8];
            b[0] = idx;
            assert!(
                matches!(
                    FrameWrite::decode(&b, None),
                    Err(DecodeError::InvalidValue {
                        field: "FrameToWrite",
                        ..
                    })
                ),
                "index {idx}"
            );
        }
        assert!(FrameWrite::decode(&[0u8; 7], None).is_err());
    }

    #[test]
    fn json_names_set_value_by_pump() {
        let fw = FrameWrite::decode(&hex_bytes("02 40 90 BC 1E 00 00 00"), Some(4)).unwrap();
        let j = fw.to_json();
        assert_eq!(j["set_pressure_bar"], 9.0);
        assert_eq!(j["temperature_c"], 94.0);
        assert_eq!(j["duration_s"], 3.0);
        assert_eq!(j["flags"]["pump"], "pressure");
        assert_eq!(j["flags"]["exit"], Value::Null);
    }
}
