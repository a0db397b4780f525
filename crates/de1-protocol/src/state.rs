//! Machine states (`API_MachineStates`) and substates (`API_Substates`), de1-ble.md §4.1–4.2.
//!
//! Both enums keep any byte the firmware sends: values this crate does not know become
//! `Unknown(raw)` and encode back to the same byte. Their names (`as_str`, `Display`,
//! serde) are the ones pyDE1 publishes, so unknown values are named as pyDE1 names them:
//! `UNKNOWN` for states and substates below 200, `ERROR_UNKNOWN` for substates from 200.
//! Parsing such a name yields a representative raw value (state 0xFF, substate 199 or
//! 255), since the original byte is not in the name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name that is not a state or substate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} name {name:?}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// Defines an enum of known byte values plus `Unknown(u8)`, with conversions and names.
macro_rules! byte_enum {
    (
        $(#[$doc:meta])*
        $name:ident, $kind:literal {
            $($(#[$vdoc:meta])* $variant:ident = $value:literal => $text:literal,)*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this crate does not know; the raw byte is kept.
            Unknown(u8),
        }

        impl $name {
            /// Every known value, in numeric order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant,)*];

            /// The value for a wire byte; unknown bytes are kept in `Unknown`.
            pub const fn from_u8(raw: u8) -> Self {
                match raw {
                    $($value => Self::$variant,)*
                    other => Self::Unknown(other),
                }
            }

            /// The wire byte.
            pub const fn to_u8(self) -> u8 {
                match self {
                    $(Self::$variant => $value,)*
                    Self::Unknown(raw) => raw,
                }
            }

            /// The name of a known value (`None` for `Unknown`).
            const fn known_name(self) -> Option<&'static str> {
                match self {
                    $(Self::$variant => Some($text),)*
                    Self::Unknown(_) => None,
                }
            }

            fn from_known_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }

        impl From<u8> for $name {
            fn from(raw: u8) -> Self {
                Self::from_u8(raw)
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v.to_u8()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            /// Parses the exact pyDE1 name (case-sensitive, as pyDE1's API is).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_known_name(s)
                    .or_else(|| Self::from_unknown_name(s))
                    .ok_or_else(|| UnknownName { kind: $kind, name: s.to_owned() })
            }
        }
    };
}

byte_enum! {
    /// `API_MachineStates`: StateInfo byte 0 and the RequestedState value.
    MachineState, "machine state" {
        /// Everything off.
        Sleep = 0x00 => "Sleep",
        /// Transition into Sleep.
        GoingToSleep = 0x01 => "GoingToSleep",
        /// Heaters controlled; tank heated if required.
        Idle = 0x02 => "Idle",
        /// Firmware doing something that cannot be interrupted.
        Busy = 0x03 => "Busy",
        /// Making espresso (runs the uploaded profile).
        Espresso = 0x04 => "Espresso",
        /// Making steam.
        Steam = 0x05 => "Steam",
        /// Dispensing hot water.
        HotWater = 0x06 => "HotWater",
        /// Short calibration.
        ShortCal = 0x07 => "ShortCal",
        /// Self test.
        SelfTest = 0x08 => "SelfTest",
        /// Long calibration.
        LongCal = 0x09 => "LongCal",
        /// Descale the whole machine.
        Descale = 0x0A => "Descale",
        /// Something has gone badly wrong.
        FatalError = 0x0B => "FatalError",
        /// Machine has not run yet.
        Init = 0x0C => "Init",
        /// RequestedState only: nothing requested (makes the machine report its state).
        NoRequest = 0x0D => "NoRequest",
        /// RequestedState only: advance to the next profile frame.
        SkipToNext = 0x0E => "SkipToNext",
        /// "Flush": hot water through the group.
        HotWaterRinse = 0x0F => "HotWaterRinse",
        /// A blast of steam.
        SteamRinse = 0x10 => "SteamRinse",
        /// Attempting / needing a tank refill.
        Refill = 0x11 => "Refill",
        /// Clean the group head.
        Clean = 0x12 => "Clean",
        /// Bootloader active, main firmware not running.
        InBootLoader = 0x13 => "InBootLoader",
        /// Air purge ("transport" mode).
        AirPurge = 0x14 => "AirPurge",
        /// Idle entered by a scheduled wake (firmware ≥ 1293).
        SchedIdle = 0x15 => "SchedIdle",
    }
}

impl MachineState {
    /// The pyDE1 name, e.g. `"Idle"`, `"HotWaterRinse"`; `"UNKNOWN"` for unknown bytes.
    pub const fn as_str(self) -> &'static str {
        match self.known_name() {
            Some(n) => n,
            None => "UNKNOWN",
        }
    }

    fn from_unknown_name(name: &str) -> Option<Self> {
        (name == "UNKNOWN").then_some(Self::Unknown(0xFF))
    }

    /// Espresso, Steam, HotWater and HotWaterRinse: the states in which water or steam
    /// flows and the flow phases apply (pyDE1 and de1app `is_flow_state`).
    pub const fn is_flow_state(self) -> bool {
        matches!(
            self,
            Self::Espresso | Self::Steam | Self::HotWater | Self::HotWaterRinse
        )
    }

    /// FatalError is an error report.
    pub const fn is_error(self) -> bool {
        matches!(self, Self::FatalError)
    }

    /// Sleep or GoingToSleep.
    pub const fn is_asleep(self) -> bool {
        matches!(self, Self::Sleep | Self::GoingToSleep)
    }
}

byte_enum! {
    /// `API_Substates`: StateInfo byte 1.
    Substate, "substate" {
        /// No substate relevant ("ready" when Idle).
        NoState = 0x00 => "NoState",
        /// Cold water not hot enough; heating the tank.
        HeatWaterTank = 0x01 => "HeatWaterTank",
        /// Warming the water heater.
        HeatWaterHeater = 0x02 => "HeatWaterHeater",
        /// Stabilising the mix temperature.
        StabilizeMixTemp = 0x03 => "StabilizeMixTemp",
        /// Espresso preinfusion frames.
        PreInfuse = 0x04 => "PreInfuse",
        /// Water flowing.
        Pour = 0x05 => "Pour",
        /// End of espresso, flush valve open ("ending").
        Flush = 0x06 => "Flush",
        /// Steam only.
        Steaming = 0x07 => "Steaming",
        DescaleInit = 0x08 => "DescaleInit",
        DescaleFillGroup = 0x09 => "DescaleFillGroup",
        DescaleReturn = 0x0A => "DescaleReturn",
        DescaleGroup = 0x0B => "DescaleGroup",
        DescaleSteam = 0x0C => "DescaleSteam",
        CleanInit = 0x0D => "CleanInit",
        CleanFillGroup = 0x0E => "CleanFillGroup",
        /// Soak the group (≈ 60 s).
        CleanSoak = 0x0F => "CleanSoak",
        CleanGroup = 0x10 => "CleanGroup",
        /// The machine has given up on a refill.
        PausedRefill = 0x11 => "PausedRefill",
        PausedSteam = 0x12 => "PausedSteam",
        /// Firmware ≥ 1315 user-present feature.
        UserNotPresent = 0x13 => "UserNotPresent",
        /// Steam "puffs" after stop (firmware ≥ 1315).
        SteamPuff = 0x14 => "SteamPuff",
        /// A NaN occurred.
        ErrorNaN = 200 => "Error_NaN",
        /// An Inf occurred.
        ErrorInf = 201 => "Error_Inf",
        /// Unspecified error.
        ErrorGeneric = 202 => "Error_Generic",
        /// ACC not responding / unlocked / mis-programmed.
        ErrorACC = 203 => "Error_ACC",
        /// Probably a broken temperature sensor.
        ErrorTSensor = 204 => "Error_TSensor",
        /// Pressure sensor error.
        ErrorPSensor = 205 => "Error_PSensor",
        /// Water level sensor error.
        ErrorWLevel = 206 => "Error_WLevel",
        /// DIP switches say wait in error state.
        ErrorDIP = 207 => "Error_DIP",
        /// Assertion failed.
        ErrorAssertion = 208 => "Error_Assertion",
        /// Unsafe value assigned.
        ErrorUnsafe = 209 => "Error_Unsafe",
        /// Invalid parameter.
        ErrorInvalidParm = 210 => "Error_InvalidParm",
        /// External flash access error.
        ErrorFlash = 211 => "Error_Flash",
        /// Out of memory.
        ErrorOOM = 212 => "Error_OOM",
        /// Realtime deadline missed.
        ErrorDeadline = 213 => "Error_Deadline",
        /// Current out of bounds (high).
        ErrorHiCurrent = 214 => "Error_HiCurrent",
        /// Not enough current although something is on.
        ErrorLoCurrent = 215 => "Error_LoCurrent",
        /// Could not reach pressure in the boot test (probably no water).
        ErrorBootFill = 216 => "Error_BootFill",
        /// Front power switch is off (de1app name; pyDE1 does not know it; reliable
        /// from firmware 1337).
        ErrorNoAC = 217 => "Error_NoAC",
    }
}

/// First substate value that is an error report.
const FIRST_ERROR_SUBSTATE: u8 = 200;

impl Substate {
    /// The pyDE1 name, e.g. `"HeatWaterHeater"`, `"Error_NaN"`; `"Error_NoAC"` for 217;
    /// `"UNKNOWN"` / `"ERROR_UNKNOWN"` for unknown bytes below / from 200.
    pub const fn as_str(self) -> &'static str {
        match self.known_name() {
            Some(n) => n,
            None if self.to_u8() >= FIRST_ERROR_SUBSTATE => "ERROR_UNKNOWN",
            None => "UNKNOWN",
        }
    }

    fn from_unknown_name(name: &str) -> Option<Self> {
        match name {
            // pyDE1's own values for these names are 199 and 299; 299 does not fit a byte.
            "UNKNOWN" => Some(Self::Unknown(199)),
            "ERROR_UNKNOWN" => Some(Self::Unknown(0xFF)),
            _ => None,
        }
    }

    /// Substates from 200 are error reports.
    pub const fn is_error(self) -> bool {
        self.to_u8() >= FIRST_ERROR_SUBSTATE
    }

    /// pyDE1's flow-phase classification of the substate alone (de1-ble.md §4.2):
    /// before = heating/stabilising, during = PreInfuse/Pour/Steaming/PausedSteam,
    /// after = Flush, none otherwise. Use [`flow_phase`] to take the state into account.
    pub const fn flow_phase(self) -> FlowPhase {
        match self {
            Self::HeatWaterTank | Self::HeatWaterHeater | Self::StabilizeMixTemp => {
                FlowPhase::Before
            }
            Self::PreInfuse | Self::Pour | Self::Steaming | Self::PausedSteam => FlowPhase::During,
            Self::Flush => FlowPhase::After,
            _ => FlowPhase::None,
        }
    }
}

/// Where a flow operation (espresso, steam, hot water, flush) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowPhase {
    /// Heating / stabilising before water flows.
    Before,
    /// Water or steam flowing.
    During,
    /// The "ending" flush after espresso.
    After,
    /// Not in a flow operation.
    None,
}

impl FlowPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::During => "during",
            Self::After => "after",
            Self::None => "none",
        }
    }
}

/// The flow phase of a (state, substate) pair: [`Substate::flow_phase`] inside flow
/// states, [`FlowPhase::None`] outside them (as de1app does; e.g. `Idle,HeatWaterHeater`
/// is not "before" a flow).
pub const fn flow_phase(state: MachineState, substate: Substate) -> FlowPhase {
    if state.is_flow_state() {
        substate.flow_phase()
    } else {
        FlowPhase::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips() {
        for raw in 0..=255u8 {
            assert_eq!(MachineState::from_u8(raw).to_u8(), raw);
            assert_eq!(Substate::from_u8(raw).to_u8(), raw);
        }
    }

    #[test]
    fn table_values_and_names() {
        assert_eq!(MachineState::from_u8(0x02), MachineState::Idle);
        assert_eq!(MachineState::from_u8(0x15), MachineState::SchedIdle);
        assert_eq!(MachineState::from_u8(0x16), MachineState::Unknown(0x16));
        assert_eq!(MachineState::KNOWN.len(), 22);
        assert_eq!(Substate::KNOWN.len(), 21 + 18);
        assert_eq!(Substate::from_u8(2).as_str(), "HeatWaterHeater");
        assert_eq!(Substate::from_u8(200).as_str(), "Error_NaN");
        assert_eq!(Substate::from_u8(216).as_str(), "Error_BootFill");
        assert_eq!(Substate::from_u8(217), Substate::ErrorNoAC);
        assert_eq!(Substate::from_u8(217).as_str(), "Error_NoAC");
        assert_eq!(Substate::from_u8(0x15).as_str(), "UNKNOWN");
        assert_eq!(Substate::from_u8(218).as_str(), "ERROR_UNKNOWN");
        assert_eq!(MachineState::Unknown(0x40).as_str(), "UNKNOWN");
        for s in MachineState::KNOWN {
            assert_eq!(s.as_str().parse::<MachineState>(), Ok(*s));
        }
        for s in Substate::KNOWN {
            assert_eq!(s.as_str().parse::<Substate>(), Ok(*s));
        }
        assert!("idle".parse::<MachineState>().is_err());
    }

    #[test]
    fn names_match_the_recorded_pyde1_mqtt_stream() {
        // The state/substate strings pyDE1 published in the recorded connect + shot
        // session (reference/mqtt/connect_shot.jsonl, StateUpdate payloads).
        let states = [("Idle", 0x02), ("Espresso", 0x04), ("NoRequest", 0x0D)];
        for (name, raw) in states {
            let s: MachineState = name.parse().unwrap();
            assert_eq!((s.to_u8(), s.as_str()), (raw, name));
        }
        let substates = [
            ("NoState", 0),
            ("HeatWaterHeater", 2),
            ("StabilizeMixTemp", 3),
            ("PreInfuse", 4),
            ("Pour", 5),
            ("Flush", 6),
        ];
        for (name, raw) in substates {
            let s: Substate = name.parse().unwrap();
            assert_eq!((s.to_u8(), s.as_str()), (raw, name));
        }
    }

    #[test]
    fn serde_uses_pyde1_names() {
        assert_eq!(
            serde_json::to_string(&MachineState::HotWaterRinse).unwrap(),
            "\"HotWaterRinse\""
        );
        assert_eq!(
            serde_json::to_string(&Substate::ErrorNaN).unwrap(),
            "\"Error_NaN\""
        );
        let s: Substate = serde_json::from_str("\"Error_NoAC\"").unwrap();
        assert_eq!(s, Substate::ErrorNoAC);
        let u: Substate = serde_json::from_str("\"ERROR_UNKNOWN\"").unwrap();
        assert!(u.is_error());
        assert_eq!(u.as_str(), "ERROR_UNKNOWN");
        let u: Substate = serde_json::from_str("\"UNKNOWN\"").unwrap();
        assert!(!u.is_error());
        assert_eq!(u.as_str(), "UNKNOWN");
        assert!(serde_json::from_str::<MachineState>("\"Asleep\"").is_err());
    }

    #[test]
    fn flow_states_and_phases() {
        let flow: Vec<_> = MachineState::KNOWN
            .iter()
            .filter(|s| s.is_flow_state())
            .collect();
        assert_eq!(
            flow,
            [
                &MachineState::Espresso,
                &MachineState::Steam,
                &MachineState::HotWater,
                &MachineState::HotWaterRinse
            ]
        );
        assert_eq!(Substate::HeatWaterTank.flow_phase(), FlowPhase::Before);
        assert_eq!(Substate::StabilizeMixTemp.flow_phase(), FlowPhase::Before);
        assert_eq!(Substate::PreInfuse.flow_phase(), FlowPhase::During);
        assert_eq!(Substate::PausedSteam.flow_phase(), FlowPhase::During);
        assert_eq!(Substate::Flush.flow_phase(), FlowPhase::After);
        assert_eq!(Substate::NoState.flow_phase(), FlowPhase::None);
        assert_eq!(Substate::SteamPuff.flow_phase(), FlowPhase::None);
        assert_eq!(
            flow_phase(MachineState::Espresso, Substate::Pour),
            FlowPhase::During
        );
        assert_eq!(
            flow_phase(MachineState::Idle, Substate::HeatWaterHeater),
            FlowPhase::None
        );
    }

    #[test]
    fn errors() {
        assert!(MachineState::FatalError.is_error());
        assert!(!MachineState::Idle.is_error());
        assert!(Substate::ErrorNoAC.is_error());
        assert!(Substate::Unknown(250).is_error());
        assert!(!Substate::SteamPuff.is_error());
    }
}
