//! StateInfo (A00E) — current state and substate, 2 bytes, read / notify on change.
//!
//! | Off | Size | Field    | Type                                  |
//! |-----|------|----------|---------------------------------------|
//! | 0   | 1    | State    | [`MachineState`] (`API_MachineStates`) |
//! | 1   | 1    | SubState | [`Substate`] (`API_Substates`)         |
//!
//! Unknown values are kept (`Unknown(raw)`), so every 2-byte value decodes.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::exact;
use crate::state::{self, FlowPhase, MachineState, Substate};
use crate::DecodeError;

const NAME: &str = "StateInfo";

/// The machine's state report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateInfo {
    pub state: MachineState,
    pub substate: Substate,
}

impl StateInfo {
    pub const LEN: usize = 2;

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<2>(NAME, bytes)?;
        Ok(Self {
            state: MachineState::from_u8(b[0]),
            substate: Substate::from_u8(b[1]),
        })
    }

    pub fn encode(&self) -> [u8; 2] {
        [self.state.to_u8(), self.substate.to_u8()]
    }

    /// State FatalError or a substate ≥ 200 (how pyDE1 recognises an error report).
    pub const fn is_error(&self) -> bool {
        self.state.is_error() || self.substate.is_error()
    }

    /// The flow phase, [`FlowPhase::None`] outside flow states.
    pub const fn flow_phase(&self) -> FlowPhase {
        state::flow_phase(self.state, self.substate)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "state": self.state.as_str(),
            "state_raw": self.state.to_u8(),
            "substate": self.substate.as_str(),
            "substate_raw": self.substate.to_u8(),
            "flow_phase": self.flow_phase().as_str(),
            "is_error_state": self.is_error(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espresso_pour_example() {
        let s = StateInfo::decode(&[0x04, 0x05]).unwrap();
        assert_eq!(s.state, MachineState::Espresso);
        assert_eq!(s.substate, Substate::Pour);
        assert_eq!(s.flow_phase(), FlowPhase::During);
        assert!(!s.is_error());
        assert_eq!(s.encode(), [0x04, 0x05]);
    }

    #[test]
    fn front_switch_off_is_an_error_report() {
        let s = StateInfo::decode(&[0x02, 0xD9]).unwrap();
        assert_eq!(s.state, MachineState::Idle);
        assert_eq!(s.substate, Substate::ErrorNoAC);
        assert!(s.is_error());
        assert_eq!(s.to_json()["substate"], "Error_NoAC");
    }

    #[test]
    fn unknown_bytes_survive() {
        let s = StateInfo::decode(&[0x30, 0x99]).unwrap();
        assert_eq!(s.encode(), [0x30, 0x99]);
        assert_eq!(s.to_json()["state"], "UNKNOWN");
    }

    #[test]
    fn length_is_exact() {
        assert!(StateInfo::decode(&[]).is_err());
        assert!(StateInfo::decode(&[2]).is_err());
        assert!(StateInfo::decode(&[2, 0, 0]).is_err());
    }

    #[test]
    fn serde_form_is_names() {
        let s = StateInfo {
            state: MachineState::Idle,
            substate: Substate::NoState,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"state":"Idle","substate":"NoState"}"#
        );
    }
}
