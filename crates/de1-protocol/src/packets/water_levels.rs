//! WaterLevels (A011) — 4 bytes, read / write / periodic notify.
//!
//! | Off | Size | Field          | Type     | Meaning                          |
//! |-----|------|----------------|----------|----------------------------------|
//! | 0   | 2    | Level          | U16P8 mm | water above the sensor reference |
//! | 2   | 2    | StartFillLevel | U16P8 mm | refill threshold, set by the app |
//!
//! Both fields are ×256 on the wire in both directions (pyDE1 forgets the scale when
//! writing — a pyDE1 bug; de1app writes `00 00 05 00` for a 5 mm refill point).

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::U16P8;
use crate::DecodeError;

const NAME: &str = "WaterLevels";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WaterLevels {
    pub level: U16P8,
    pub start_fill_level: U16P8,
}

impl WaterLevels {
    pub const LEN: usize = 4;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<4>(NAME, bytes)?;
        Ok(Self {
            level: U16P8::from_be_slice(&b[0..2]),
            start_fill_level: U16P8::from_be_slice(&b[2..4]),
        })
    }

    pub fn encode(&self) -> [u8; 4] {
        let l = self.level.0.to_be_bytes();
        let s = self.start_fill_level.0.to_be_bytes();
        [l[0], l[1], s[0], s[1]]
    }

    pub fn to_json(&self) -> Value {
        json!({
            "level_mm": self.level.to_f64(),
            "start_fill_level_mm": self.start_fill_level.to_f64(),
        })
    }
}

serialize_via_json!(WaterLevels);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn spec_examples() {
        let w = WaterLevels::decode(&hex_bytes("1A 80 05 00")).unwrap();
        assert_eq!(w.level.to_f64(), 26.5);
        assert_eq!(w.start_fill_level.to_f64(), 5.0);
        // de1app's refill-point write: level 0, refill 5 mm.
        let write = WaterLevels {
            level: U16P8(0),
            start_fill_level: U16P8::from_f64(5.0).unwrap(),
        };
        assert_eq!(write.encode().to_vec(), hex_bytes("00 00 05 00"));
        // pyDE1's unscaled write of 10 reads back as 10/256 mm.
        let py = WaterLevels::decode(&hex_bytes("00 1F 00 0A")).unwrap();
        assert_eq!(py.start_fill_level.to_f64(), 10.0 / 256.0);
        assert!(WaterLevels::decode(&[0u8; 5]).is_err());
    }
}
