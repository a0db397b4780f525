//! HeaderWrite (A00F) — the profile header, 5 bytes, written before the frames.
//!
//! | Off | Size | Field                   | Type                          |
//! |-----|------|-------------------------|-------------------------------|
//! | 0   | 1    | HeaderV                 | U8, must be 1                 |
//! | 1   | 1    | NumberOfFrames          | U8, 1 … 20                    |
//! | 2   | 1    | NumberOfPreinfuseFrames | U8, ≤ NumberOfFrames          |
//! | 3   | 1    | MinimumPressure         | U8P4 bar (flow-mode limit)    |
//! | 4   | 1    | MaximumFlow             | U8P4 mL/s (pressure-mode limit) |
//!
//! The decoder accepts any byte values (it describes what was written); [`HeaderWrite::validate`]
//! checks what the DE1 firmware accepts.

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::U8P4;
use crate::DecodeError;

const NAME: &str = "HeaderWrite";

/// The profile header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderWrite {
    /// 1 for the DE1 (2 is the newer "Bengle" hardware only).
    pub header_version: u8,
    /// Number of shot frames that follow (1 … [`HeaderWrite::MAX_FRAMES`]).
    pub number_of_frames: u8,
    /// Frames `0 … n−1` are preinfusion (substate PreInfuse).
    pub number_of_preinfuse_frames: u8,
    /// Global minimum pressure in flow frames, bar. Every app sends 0.
    pub minimum_pressure: U8P4,
    /// Global maximum flow in pressure frames, mL/s. Moot: every frame sets IgnoreLimit.
    pub maximum_flow: U8P4,
}

impl HeaderWrite {
    pub const LEN: usize = 5;
    /// The only header version the DE1 understands.
    pub const VERSION: u8 = 1;
    /// Most shot frames a profile may have (pyDE1 `MAX_FRAMES`).
    pub const MAX_FRAMES: u8 = 20;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<5>(NAME, bytes)?;
        Ok(Self {
            header_version: b[0],
            number_of_frames: b[1],
            number_of_preinfuse_frames: b[2],
            minimum_pressure: U8P4(b[3]),
            maximum_flow: U8P4(b[4]),
        })
    }

    pub fn encode(&self) -> [u8; 5] {
        [
            self.header_version,
            self.number_of_frames,
            self.number_of_preinfuse_frames,
            self.minimum_pressure.0,
            self.maximum_flow.0,
        ]
    }

    /// Check the fields the firmware constrains: version 1, 1 … 20 frames and no more
    /// preinfusion frames than frames.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |field, value: u8| DecodeError::InvalidValue {
            packet: NAME,
            field,
            value: u32::from(value),
        };
        if self.header_version != Self::VERSION {
            return Err(invalid("HeaderV", self.header_version));
        }
        if self.number_of_frames == 0 || self.number_of_frames > Self::MAX_FRAMES {
            return Err(invalid("NumberOfFrames", self.number_of_frames));
        }
        if self.number_of_preinfuse_frames > self.number_of_frames {
            return Err(invalid(
                "NumberOfPreinfuseFrames",
                self.number_of_preinfuse_frames,
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "header_version": self.header_version,
            "number_of_frames": self.number_of_frames,
            "number_of_preinfuse_frames": self.number_of_preinfuse_frames,
            "minimum_pressure_bar": self.minimum_pressure.to_f64(),
            "maximum_flow_ml_per_s": self.maximum_flow.to_f64(),
        })
    }
}

serialize_via_json!(HeaderWrite);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn decodes_the_pyde1_blooming_header() {
        // de1-profiles.md §7.2 row 1: v1, 5 frames, 2 preinfuse, min P 0, max F 10.0.
        let h = HeaderWrite::decode(&hex_bytes("01 05 02 00 A0")).unwrap();
        assert_eq!(h.header_version, 1);
        assert_eq!(h.number_of_frames, 5);
        assert_eq!(h.number_of_preinfuse_frames, 2);
        assert_eq!(h.minimum_pressure.to_f64(), 0.0);
        assert_eq!(h.maximum_flow.to_f64(), 10.0);
        assert!(h.validate().is_ok());
    }

    #[test]
    fn encodes_the_de1app_header() {
        // de1-profiles.md §7.3: de1app sends MaximumFlow 6.0.
        let h = HeaderWrite {
            header_version: 1,
            number_of_frames: 5,
            number_of_preinfuse_frames: 2,
            minimum_pressure: U8P4::from_f64(0.0).unwrap(),
            maximum_flow: U8P4::from_f64(6.0).unwrap(),
        };
        assert_eq!(h.encode().to_vec(), hex_bytes("01 05 02 00 60"));
    }

    #[test]
    fn rejects_wrong_length_and_validates_limits() {
        assert_eq!(
            HeaderWrite::decode(&[1, 2, 3, 4]),
            Err(DecodeError::Length {
                packet: "HeaderWrite",
                expected: 5,
                actual: 4
            })
        );
        let bad_version = HeaderWrite::decode(&[2, 5, 2, 0, 0xA0]).unwrap();
        assert!(bad_version.validate().is_err());
        let too_many = HeaderWrite::decode(&[1, 21, 0, 0, 0xA0]).unwrap();
        assert!(too_many.validate().is_err());
        let empty = HeaderWrite::decode(&[1, 0, 0, 0, 0xA0]).unwrap();
        assert!(empty.validate().is_err());
        let pi = HeaderWrite::decode(&[1, 3, 4, 0, 0xA0]).unwrap();
        assert!(pi.validate().is_err());
    }

    #[test]
    fn json_carries_units() {
        let h = HeaderWrite::decode(&hex_bytes("01 04 02 00 A0")).unwrap();
        let j = h.to_json();
        assert_eq!(j["maximum_flow_ml_per_s"], 10.0);
        assert_eq!(j["number_of_frames"], 4);
    }
}
