//! Characteristics without a known layout (ShotDirectory A004, ShotMapRequest A007,
//! DeleteShotRange A008, Deprecated A00C): no app implements them, so their values are
//! kept as opaque bytes.

use serde_json::{json, Value};

use super::serialize_via_json;
use crate::DecodeError;

/// An opaque characteristic value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Raw {
    pub bytes: Vec<u8>,
}

impl Raw {
    /// Never fails: any bytes are kept as they are.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            bytes: bytes.to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    pub fn to_json(&self) -> Value {
        json!({ "raw": hex::encode(&self.bytes), "length": self.bytes.len() })
    }
}

serialize_via_json!(Raw);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_bytes() {
        let r = Raw::decode(&[1, 2, 0xFF]).unwrap();
        assert_eq!(r.encode(), vec![1, 2, 0xFF]);
        assert_eq!(r.to_json()["raw"], "0102ff");
    }
}
