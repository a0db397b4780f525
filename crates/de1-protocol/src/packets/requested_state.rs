//! RequestedState (A002) — 1 byte, written to ask for a state change.
//!
//! | Off | Size | Field          | Type                |
//! |-----|------|----------------|---------------------|
//! | 0   | 1    | RequestedState | [`MachineState`]    |
//!
//! The machine answers with a StateInfo notification, not on A002. Writing
//! [`MachineState::NoRequest`] only provokes a StateInfo report.

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::state::MachineState;
use crate::DecodeError;

const NAME: &str = "RequestedState";

/// A state request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedState {
    pub state: MachineState,
}

impl RequestedState {
    pub const LEN: usize = 1;

    pub const fn new(state: MachineState) -> Self {
        Self { state }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<1>(NAME, bytes)?;
        Ok(Self::new(MachineState::from_u8(b[0])))
    }

    pub fn encode(&self) -> [u8; 1] {
        [self.state.to_u8()]
    }

    pub fn to_json(&self) -> Value {
        json!({ "state": self.state.as_str(), "state_raw": self.state.to_u8() })
    }
}

serialize_via_json!(RequestedState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        assert_eq!(RequestedState::new(MachineState::Espresso).encode(), [0x04]);
        assert_eq!(RequestedState::new(MachineState::Idle).encode(), [0x02]);
        assert_eq!(RequestedState::new(MachineState::Sleep).encode(), [0x00]);
        assert_eq!(
            RequestedState::new(MachineState::SkipToNext).encode(),
            [0x0E]
        );
        assert_eq!(
            RequestedState::decode(&[0x0D]).unwrap().state,
            MachineState::NoRequest
        );
        assert!(RequestedState::decode(&[0x02, 0x00]).is_err());
    }
}
