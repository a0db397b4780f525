//! SetTime (A003) — 8 bytes: a Unix timestamp in seconds, U64 BE.
//!
//! Only pyDE1 uses it (through its API); no source shows the firmware acting on it
//! (**unverified**).

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::DecodeError;

const NAME: &str = "SetTime";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetTime {
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
}

impl SetTime {
    pub const LEN: usize = 8;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<8>(NAME, bytes)?;
        Ok(Self {
            timestamp: u64::from_be_bytes(*b),
        })
    }

    pub fn encode(&self) -> [u8; 8] {
        self.timestamp.to_be_bytes()
    }

    pub fn to_json(&self) -> Value {
        json!({ "timestamp_s": self.timestamp })
    }
}

serialize_via_json!(SetTime);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example() {
        let t = SetTime {
            timestamp: 1_700_000_000,
        };
        assert_eq!(t.encode(), [0, 0, 0, 0, 0x65, 0x53, 0xF1, 0x00]);
        assert_eq!(SetTime::decode(&t.encode()).unwrap(), t);
        assert!(SetTime::decode(&[0u8; 4]).is_err());
    }
}
