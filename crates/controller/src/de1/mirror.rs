//! The controller's copy of everything read from the DE1, each value with the epoch time
//! it was last updated.
//!
//! The mirror is filled by the connect-time sequence and kept current by notifications
//! and by the read-back that follows every write, so it never claims a value the DE1
//! did not report. It belongs to one connection: a new connection starts empty.

use std::collections::BTreeMap;

use de1_protocol::mmr::{GhcInfo, MmrRegister, MmrValue};
use de1_protocol::packets::{
    CalTarget, SetTime, ShotSample, ShotSettings, StateInfo, Versions, WaterLevels,
};

/// A value and when it was last read from (or reported by) the DE1, epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stamped<T> {
    pub value: T,
    pub updated: f64,
}

impl<T> Stamped<T> {
    pub fn new(value: T, updated: f64) -> Self {
        Stamped { value, updated }
    }
}

/// What the controller knows about the profile loaded in the DE1.
#[derive(Debug, Clone, PartialEq)]
pub enum ProfileState {
    /// Nothing uploaded in this connection: whatever the DE1 holds is not known.
    Unknown,
    /// An upload is being written; if it does not finish the profile stays unknown.
    Uploading { id: String },
    /// A previous upload failed part-way: the DE1 holds a mix of two profiles.
    Failed { id: String, reason: String },
    /// Uploaded completely in this connection.
    Loaded {
        id: String,
        fingerprint: String,
        at: f64,
    },
}

impl ProfileState {
    /// The id of the profile known to be in the DE1, if any.
    pub fn loaded_id(&self) -> Option<&str> {
        match self {
            ProfileState::Loaded { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// A calibration value: `(target, factory)` selects which.
pub type CalibrationKey = (CalibrationTarget, bool);

/// Calibration targets that carry a value (the packet's `Error` target does not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CalibrationTarget {
    Flow,
    Pressure,
    Temperature,
}

impl CalibrationTarget {
    pub const ALL: [CalibrationTarget; 3] = [
        CalibrationTarget::Flow,
        CalibrationTarget::Pressure,
        CalibrationTarget::Temperature,
    ];

    pub fn to_packet(self) -> CalTarget {
        match self {
            CalibrationTarget::Flow => CalTarget::Flow,
            CalibrationTarget::Pressure => CalTarget::Pressure,
            CalibrationTarget::Temperature => CalTarget::Temperature,
        }
    }
}

/// Everything read from the DE1 in this connection.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub versions: Option<Stamped<Versions>>,
    pub state: Option<Stamped<StateInfo>>,
    pub shot_settings: Option<Stamped<ShotSettings>>,
    pub water_levels: Option<Stamped<WaterLevels>>,
    pub shot_sample: Option<Stamped<ShotSample>>,
    pub set_time: Option<Stamped<SetTime>>,
    pub registers: BTreeMap<MmrRegister, Stamped<MmrValue>>,
    pub calibration: BTreeMap<CalibrationKey, Stamped<f64>>,
    pub profile: ProfileState,
    /// Epoch seconds of the last StateInfo that changed state or substate.
    pub last_state_change: Option<f64>,
}

impl Default for Mirror {
    fn default() -> Self {
        Mirror {
            versions: None,
            state: None,
            shot_settings: None,
            water_levels: None,
            shot_sample: None,
            set_time: None,
            registers: BTreeMap::new(),
            calibration: BTreeMap::new(),
            profile: ProfileState::Unknown,
            last_state_change: None,
        }
    }
}

impl Mirror {
    /// CPU firmware build (MMR 0x800010), once read.
    pub fn firmware_build(&self) -> Option<u32> {
        match self.registers.get(&MmrRegister::CpuFirmwareBuild)?.value {
            MmrValue::Integer(n) => Some(n),
            _ => None,
        }
    }

    /// What the firmware supports (all `false` until the build is known).
    pub fn features(&self) -> Features {
        Features {
            build: self.firmware_build(),
        }
    }

    /// GHC_INFO, once read.
    pub fn ghc_info(&self) -> Option<GhcInfo> {
        match self.registers.get(&MmrRegister::GhcInfo)?.value {
            MmrValue::GhcInfo(g) => Some(g),
            _ => None,
        }
    }

    pub fn register(&self, r: MmrRegister) -> Option<&Stamped<MmrValue>> {
        self.registers.get(&r)
    }

    /// A boolean register's cached value.
    pub fn register_bool(&self, r: MmrRegister) -> Option<bool> {
        match self.registers.get(&r)?.value {
            MmrValue::Bool(b) => Some(b),
            MmrValue::Integer(n) => Some(n != 0),
            _ => None,
        }
    }

    /// When the loaded profile finished uploading.
    pub fn profile_loaded_at(&self) -> Option<f64> {
        match self.profile {
            ProfileState::Loaded { at, .. } => Some(at),
            _ => None,
        }
    }

    /// A numeric register's cached value in engineering units.
    pub fn register_f64(&self, r: MmrRegister) -> Option<f64> {
        self.registers.get(&r)?.value.as_f64()
    }

    pub fn state_info(&self) -> Option<StateInfo> {
        self.state.map(|s| s.value)
    }

    /// Records a StateInfo report.
    pub fn set_state(&mut self, info: StateInfo, at: f64) {
        if self.state.is_none_or(|s| s.value != info) {
            self.last_state_change = Some(at);
        }
        self.state = Some(Stamped::new(info, at));
    }

    pub fn set_register(&mut self, r: MmrRegister, value: MmrValue, at: f64) {
        self.registers.insert(r, Stamped::new(value, at));
    }
}

/// Firmware-dependent features (de1-firmware.md §5, pyDE1 `FeatureFlag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// CPU firmware build, if known.
    pub build: Option<u32>,
}

impl Features {
    fn at_least(self, min: u32) -> bool {
        self.build.is_some_and(|b| b >= min)
    }
    /// RequestedState SkipToNext (≥ 1260).
    pub fn skip_to_next(self) -> bool {
        self.at_least(1260)
    }
    /// Block reads across the whole register file are safe (≥ 1265).
    pub fn safe_to_read_mmr_continuous(self) -> bool {
        self.at_least(1265)
    }
    /// The DE1 stops a flush by itself after FLUSH_TIMEOUT (≥ 1283).
    pub fn rinse_control(self) -> bool {
        self.at_least(1283)
    }
    /// SchedIdle (≥ 1293).
    pub fn sched_idle(self) -> bool {
        self.at_least(1293)
    }
    /// STEAM_PURGE_MODE, ALLOW_USB_CHARGING, APP_FEATURE_FLAGS, REFILL_KIT_PRESENT,
    /// USER_PRESENT (≥ 1320).
    pub fn user_present(self) -> bool {
        self.at_least(1320)
    }
    /// Address of the last register pyDE1 reads for this build (de1-mmr.md §4).
    pub fn last_mmr0x80(self) -> u32 {
        match self.build {
            Some(b) if b >= 1283 => MmrRegister::UserPresent.address(),
            Some(b) if b >= 1250 => MmrRegister::CalFlowEst.address(),
            _ => MmrRegister::HeaterUp2Timeout.address(),
        }
    }
    /// True if `r` exists on this firmware (unknown build: only registers every build has).
    pub fn has_register(self, r: MmrRegister) -> bool {
        match (r.info().min_firmware, self.build) {
            (None, _) => true,
            (Some(min), Some(b)) => b >= min,
            (Some(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use de1_protocol::state::{MachineState, Substate};

    #[test]
    fn features_follow_the_build() {
        let old = Features { build: Some(1250) };
        assert!(!old.skip_to_next());
        assert_eq!(old.last_mmr0x80(), 0x80_383C);
        assert!(!old.has_register(MmrRegister::FlushTimeout));
        assert!(old.has_register(MmrRegister::CalFlowEst));
        let new = Features { build: Some(1333) };
        assert!(new.skip_to_next() && new.rinse_control() && new.user_present());
        assert_eq!(new.last_mmr0x80(), 0x80_3860);
        let unknown = Features::default();
        assert!(!unknown.skip_to_next());
        assert!(!unknown.has_register(MmrRegister::UserPresent));
        assert!(unknown.has_register(MmrRegister::FanThreshold));
    }

    #[test]
    fn state_changes_are_timed_but_repeats_are_not() {
        let mut m = Mirror::default();
        let idle = StateInfo {
            state: MachineState::Idle,
            substate: Substate::NoState,
        };
        m.set_state(idle, 10.0);
        m.set_state(idle, 12.0);
        assert_eq!(m.last_state_change, Some(10.0));
        assert_eq!(m.state.map(|s| s.updated), Some(12.0));
        m.set_state(
            StateInfo {
                state: MachineState::Sleep,
                substate: Substate::NoState,
            },
            13.0,
        );
        assert_eq!(m.last_state_change, Some(13.0));
    }
}
