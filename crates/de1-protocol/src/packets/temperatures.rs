//! Temperatures (A00A) — 16 bytes, read / notify: two 8-byte `TemperatureSet` blocks,
//! current (bytes 0–7) and target (bytes 8–15).
//!
//! | Off (in block) | Size | Field       | Type      |
//! |----------------|------|-------------|-----------|
//! | 0              | 2    | WaterHeater | U16P8 °C  |
//! | 2              | 2    | SteamHeater | U16P8 °C  |
//! | 4              | 2    | GroupHeater | U16P8 °C  |
//! | 6              | 2    | ColdWater   | U16P8 °C  |

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::U16P8;
use crate::DecodeError;

const NAME: &str = "Temperatures";

/// Four heater / water temperatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TemperatureSet {
    pub water_heater: U16P8,
    pub steam_heater: U16P8,
    pub group_heater: U16P8,
    pub cold_water: U16P8,
}

impl TemperatureSet {
    fn from_block(b: &[u8]) -> Self {
        Self {
            water_heater: U16P8::from_be_slice(&b[0..2]),
            steam_heater: U16P8::from_be_slice(&b[2..4]),
            group_heater: U16P8::from_be_slice(&b[4..6]),
            cold_water: U16P8::from_be_slice(&b[6..8]),
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&self.water_heater.0.to_be_bytes());
        out[2..4].copy_from_slice(&self.steam_heater.0.to_be_bytes());
        out[4..6].copy_from_slice(&self.group_heater.0.to_be_bytes());
        out[6..8].copy_from_slice(&self.cold_water.0.to_be_bytes());
    }

    pub fn to_json(&self) -> Value {
        json!({
            "water_heater_c": self.water_heater.to_f64(),
            "steam_heater_c": self.steam_heater.to_f64(),
            "group_heater_c": self.group_heater.to_f64(),
            "cold_water_c": self.cold_water.to_f64(),
        })
    }
}

/// The Temperatures characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Temperatures {
    pub current: TemperatureSet,
    pub target: TemperatureSet,
}

impl Temperatures {
    pub const LEN: usize = 16;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<16>(NAME, bytes)?;
        Ok(Self {
            current: TemperatureSet::from_block(&b[0..8]),
            target: TemperatureSet::from_block(&b[8..16]),
        })
    }

    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        self.current.write(&mut out[0..8]);
        self.target.write(&mut out[8..16]);
        out
    }

    pub fn to_json(&self) -> Value {
        json!({ "current": self.current.to_json(), "target": self.target.to_json() })
    }
}

serialize_via_json!(Temperatures);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn spec_example() {
        let bytes = hex_bytes("5C80 9600 5D00 1400 5C00 9600 5D00 0000");
        let t = Temperatures::decode(&bytes).unwrap();
        assert_eq!(t.current.water_heater.to_f64(), 92.5);
        assert_eq!(t.current.steam_heater.to_f64(), 150.0);
        assert_eq!(t.current.group_heater.to_f64(), 93.0);
        assert_eq!(t.current.cold_water.to_f64(), 20.0);
        assert_eq!(t.target.water_heater.to_f64(), 92.0);
        assert_eq!(t.target.cold_water.to_f64(), 0.0);
        assert_eq!(t.encode().to_vec(), bytes);
        assert_eq!(t.to_json()["current"]["group_heater_c"], 93.0);
        assert!(Temperatures::decode(&bytes[..15]).is_err());
    }
}
