//! ShotSample (A00D) — the periodic real-time sample, 19 bytes, notify.
//!
//! | Off | Size | Field            | Type    | Unit                      |
//! |-----|------|------------------|---------|---------------------------|
//! | 0   | 2    | SampleTime       | U16 BE  | mains half-cycles (wraps) |
//! | 2   | 2    | GroupPressure    | U16P12  | bar                       |
//! | 4   | 2    | GroupFlow        | U16P12  | mL/s                      |
//! | 6   | 2    | MixTemp          | U16P8   | °C                        |
//! | 8   | 3    | HeadTemp         | U24P16  | °C                        |
//! | 11  | 2    | SetMixTemp       | U16P8   | °C                        |
//! | 13  | 2    | SetHeadTemp      | U16P8   | °C                        |
//! | 15  | 1    | SetGroupPressure | U8P4    | bar                       |
//! | 16  | 1    | SetGroupFlow     | U8P4    | mL/s                      |
//! | 17  | 1    | FrameNumber      | U8      | 0-based profile frame     |
//! | 18  | 1    | SteamTemp        | U8P0    | °C                        |
//!
//! The 17-byte layout of firmware older than BLE spec 1.0 is not supported (pyDE1 does
//! not support it either); such packets are a length error.

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::{FixedError, U16P12, U16P8, U24P16, U8P4};
use crate::DecodeError;

const NAME: &str = "ShotSample";

/// One ShotSample, in wire units. [`ShotSample::values`] gives engineering values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShotSample {
    /// Free-running 16-bit counter of mains half-cycles; +25 per normal sample.
    pub sample_time: u16,
    pub group_pressure: U16P12,
    pub group_flow: U16P12,
    pub mix_temp: U16P8,
    pub head_temp: U24P16,
    pub set_mix_temp: U16P8,
    pub set_head_temp: U16P8,
    pub set_group_pressure: U8P4,
    pub set_group_flow: U8P4,
    pub frame_number: u8,
    /// Steam heater temperature, whole °C.
    pub steam_temp: u8,
}

/// A ShotSample in engineering units (bar, mL/s, °C).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShotSampleValues {
    pub sample_time: u16,
    pub group_pressure: f64,
    pub group_flow: f64,
    pub mix_temp: f64,
    pub head_temp: f64,
    pub set_mix_temp: f64,
    pub set_head_temp: f64,
    pub set_group_pressure: f64,
    pub set_group_flow: f64,
    pub frame_number: u8,
    pub steam_temp: f64,
}

/// `value` scaled by `2^frac`, clamped to `0..=max_raw` (NaN → 0), rounded half to even.
fn saturate(value: f64, frac: u32, max_raw: u32) -> u32 {
    if value.is_nan() {
        return 0;
    }
    let raw = (value * f64::from(1u32 << frac)).round_ties_even();
    raw.clamp(0.0, f64::from(max_raw)) as u32
}

impl ShotSample {
    pub const LEN: usize = 19;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<19>(NAME, bytes)?;
        let be16 = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        Ok(Self {
            sample_time: be16(0),
            group_pressure: U16P12(be16(2)),
            group_flow: U16P12(be16(4)),
            mix_temp: U16P8(be16(6)),
            head_temp: U24P16(u32::from_be_bytes([0, b[8], b[9], b[10]])),
            set_mix_temp: U16P8(be16(11)),
            set_head_temp: U16P8(be16(13)),
            set_group_pressure: U8P4(b[15]),
            set_group_flow: U8P4(b[16]),
            frame_number: b[17],
            steam_temp: b[18],
        })
    }

    pub fn encode(&self) -> [u8; 19] {
        let mut o = [0u8; 19];
        o[0..2].copy_from_slice(&self.sample_time.to_be_bytes());
        o[2..4].copy_from_slice(&self.group_pressure.0.to_be_bytes());
        o[4..6].copy_from_slice(&self.group_flow.0.to_be_bytes());
        o[6..8].copy_from_slice(&self.mix_temp.0.to_be_bytes());
        o[8..11].copy_from_slice(&self.head_temp.0.to_be_bytes()[1..4]);
        o[11..13].copy_from_slice(&self.set_mix_temp.0.to_be_bytes());
        o[13..15].copy_from_slice(&self.set_head_temp.0.to_be_bytes());
        o[15] = self.set_group_pressure.0;
        o[16] = self.set_group_flow.0;
        o[17] = self.frame_number;
        o[18] = self.steam_temp;
        o
    }

    /// The sample in engineering units.
    pub fn values(&self) -> ShotSampleValues {
        ShotSampleValues {
            sample_time: self.sample_time,
            group_pressure: self.group_pressure.to_f64(),
            group_flow: self.group_flow.to_f64(),
            mix_temp: self.mix_temp.to_f64(),
            head_temp: self.head_temp.to_f64(),
            set_mix_temp: self.set_mix_temp.to_f64(),
            set_head_temp: self.set_head_temp.to_f64(),
            set_group_pressure: self.set_group_pressure.to_f64(),
            set_group_flow: self.set_group_flow.to_f64(),
            frame_number: self.frame_number,
            steam_temp: f64::from(self.steam_temp),
        }
    }

    /// Encode engineering values; a value that does not fit its field is an error.
    pub fn from_values(v: &ShotSampleValues) -> Result<Self, FixedError> {
        let steam = crate::fixed::U8P0::from_f64(v.steam_temp)?;
        Ok(Self {
            sample_time: v.sample_time,
            group_pressure: U16P12::from_f64(v.group_pressure)?,
            group_flow: U16P12::from_f64(v.group_flow)?,
            mix_temp: U16P8::from_f64(v.mix_temp)?,
            head_temp: U24P16::from_f64(v.head_temp)?,
            set_mix_temp: U16P8::from_f64(v.set_mix_temp)?,
            set_head_temp: U16P8::from_f64(v.set_head_temp)?,
            set_group_pressure: U8P4::from_f64(v.set_group_pressure)?,
            set_group_flow: U8P4::from_f64(v.set_group_flow)?,
            frame_number: v.frame_number,
            steam_temp: steam.0,
        })
    }

    /// Encode engineering values, clamping each to its field's range (NaN → 0), as a
    /// sensor saturates. Convenient for simulators.
    pub fn from_values_saturating(v: &ShotSampleValues) -> Self {
        Self {
            sample_time: v.sample_time,
            group_pressure: U16P12(saturate(v.group_pressure, 12, 0xFFFF) as u16),
            group_flow: U16P12(saturate(v.group_flow, 12, 0xFFFF) as u16),
            mix_temp: U16P8(saturate(v.mix_temp, 8, 0xFFFF) as u16),
            head_temp: U24P16(saturate(v.head_temp, 16, 0xFF_FFFF)),
            set_mix_temp: U16P8(saturate(v.set_mix_temp, 8, 0xFFFF) as u16),
            set_head_temp: U16P8(saturate(v.set_head_temp, 8, 0xFFFF) as u16),
            set_group_pressure: U8P4(saturate(v.set_group_pressure, 4, 0xFF) as u8),
            set_group_flow: U8P4(saturate(v.set_group_flow, 4, 0xFF) as u8),
            frame_number: v.frame_number,
            steam_temp: saturate(v.steam_temp, 0, 0xFF) as u8,
        }
    }

    pub fn to_json(&self) -> Value {
        let v = self.values();
        json!({
            "sample_time_half_cycles": v.sample_time,
            "group_pressure_bar": v.group_pressure,
            "group_flow_ml_per_s": v.group_flow,
            "mix_temp_c": v.mix_temp,
            "head_temp_c": v.head_temp,
            "set_mix_temp_c": v.set_mix_temp,
            "set_head_temp_c": v.set_head_temp,
            "set_group_pressure_bar": v.set_group_pressure,
            "set_group_flow_ml_per_s": v.set_group_flow,
            "frame_number": v.frame_number,
            "steam_temp_c": self.steam_temp,
        })
    }
}

serialize_via_json!(ShotSample);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    const EXAMPLE: &str = "12 34 90 00 20 00 5C 80 5D 40 00 5C 00 5D 00 90 00 02 96";

    #[test]
    fn decodes_the_spec_example() {
        // de1-ble.md §5.10.
        let s = ShotSample::decode(&hex_bytes(EXAMPLE)).unwrap();
        let v = s.values();
        assert_eq!(v.sample_time, 4660);
        assert_eq!(v.group_pressure, 9.0);
        assert_eq!(v.group_flow, 2.0);
        assert_eq!(v.mix_temp, 92.5);
        assert_eq!(v.head_temp, 93.25);
        assert_eq!(v.set_mix_temp, 92.0);
        assert_eq!(v.set_head_temp, 93.0);
        assert_eq!(v.set_group_pressure, 9.0);
        assert_eq!(v.set_group_flow, 0.0);
        assert_eq!(v.frame_number, 2);
        assert_eq!(v.steam_temp, 150.0);
        assert_eq!(s.encode().to_vec(), hex_bytes(EXAMPLE));
    }

    #[test]
    fn encodes_from_values() {
        let v = ShotSampleValues {
            sample_time: 4660,
            group_pressure: 9.0,
            group_flow: 2.0,
            mix_temp: 92.5,
            head_temp: 93.25,
            set_mix_temp: 92.0,
            set_head_temp: 93.0,
            set_group_pressure: 9.0,
            set_group_flow: 0.0,
            frame_number: 2,
            steam_temp: 150.0,
        };
        assert_eq!(
            ShotSample::from_values(&v).unwrap().encode().to_vec(),
            hex_bytes(EXAMPLE)
        );
        assert_eq!(
            ShotSample::from_values_saturating(&v),
            ShotSample::from_values(&v).unwrap()
        );
    }

    #[test]
    fn saturating_clamps_out_of_range_readings() {
        let v = ShotSampleValues {
            group_pressure: 20.0,
            group_flow: -1.0,
            mix_temp: f64::NAN,
            steam_temp: 300.0,
            ..Default::default()
        };
        assert!(ShotSample::from_values(&v).is_err());
        let s = ShotSample::from_values_saturating(&v);
        assert_eq!(s.group_pressure.0, 0xFFFF);
        assert_eq!(s.group_flow.0, 0);
        assert_eq!(s.mix_temp.0, 0);
        assert_eq!(s.steam_temp, 255);
    }

    #[test]
    fn rejects_old_17_byte_layout_and_longer_packets() {
        let b = hex_bytes(EXAMPLE);
        assert_eq!(
            ShotSample::decode(&b[..17]),
            Err(DecodeError::Length {
                packet: "ShotSample",
                expected: 19,
                actual: 17
            })
        );
        let mut long = b.clone();
        long.push(0);
        assert!(ShotSample::decode(&long).is_err());
    }

    #[test]
    fn json_has_units_in_keys() {
        let j = ShotSample::decode(&hex_bytes(EXAMPLE)).unwrap().to_json();
        assert_eq!(j["group_pressure_bar"], 9.0);
        assert_eq!(j["head_temp_c"], 93.25);
        assert_eq!(j["steam_temp_c"], 150);
    }
}
