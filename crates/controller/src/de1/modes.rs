//! `de1/mode` requests: which ones the current state permits and what each one writes
//! (pyde1-http-api.md §7, de1-ble.md §5.2 and §6).
//!
//! [`plan`] is a pure function of the state, the GHC register and the firmware build, so
//! every rule is tested without a machine; [`super::De1::request_mode`] carries the plan
//! out.
//!
//! Two deliberate widenings of pyDE1's rules: SchedIdle (the Idle entered by a scheduled
//! wake, firmware ≥ 1293) counts as Idle wherever Idle is required, and a steam session
//! reporting `Steam,Steaming` (what the firmware header describes) is treated like
//! `Steam,Pour` (what both reference apps expect) by EndSteam.

use std::fmt;
use std::str::FromStr;

use de1_protocol::mmr::GhcInfo;
use de1_protocol::packets::StateInfo;
use de1_protocol::state::{MachineState, Substate};

use super::error::De1Error;
use super::mirror::Features;

/// A `de1/mode` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Sleep,
    Wake,
    /// Stop whatever runs: request Idle.
    Stop,
    SkipToNext,
    Espresso,
    Steam,
    HotWater,
    /// "Flush".
    HotWaterRinse,
    /// End steaming now (puffs/purge as the DE1 is set up).
    EndSteam,
    /// Prompt a StateInfo report without changing anything.
    NoRequest,
    Clean,
    Descale,
    /// Air purge (empty the machine for transport).
    Transport,
}

impl Mode {
    pub const ALL: [Mode; 13] = [
        Mode::Sleep,
        Mode::Wake,
        Mode::Stop,
        Mode::SkipToNext,
        Mode::Espresso,
        Mode::Steam,
        Mode::HotWater,
        Mode::HotWaterRinse,
        Mode::EndSteam,
        Mode::NoRequest,
        Mode::Clean,
        Mode::Descale,
        Mode::Transport,
    ];

    /// The name pyDE1's API uses (`{"mode": "HotWaterRinse"}`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Sleep => "Sleep",
            Mode::Wake => "Wake",
            Mode::Stop => "Stop",
            Mode::SkipToNext => "SkipToNext",
            Mode::Espresso => "Espresso",
            Mode::Steam => "Steam",
            Mode::HotWater => "HotWater",
            Mode::HotWaterRinse => "HotWaterRinse",
            Mode::EndSteam => "EndSteam",
            Mode::NoRequest => "NoRequest",
            Mode::Clean => "Clean",
            Mode::Descale => "Descale",
            Mode::Transport => "Transport",
        }
    }

    /// The four modes that start a flow; a GHC machine only starts them at the group head.
    pub const fn starts_flow(self) -> bool {
        matches!(
            self,
            Mode::Espresso | Mode::Steam | Mode::HotWater | Mode::HotWaterRinse
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid DE1ModeEnum")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;
    /// Case-sensitive, as pyDE1's API is.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// What carrying out a mode request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeAction {
    /// Write this to RequestedState.
    Request(MachineState),
    /// Nothing to do: the DE1 already is where the request leads (still a success).
    Nothing,
    /// End steaming the way pyDE1 does without purge mode: write ShotSettings with a
    /// steam time of 0, then the original settings again.
    EndSteamViaShotSettings,
    /// The firmware cannot do it; pyDE1 logs and answers success (SkipToNext before 1260).
    Unsupported,
}

/// Facts the plan depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModeContext {
    pub state: StateInfo,
    pub ghc: GhcInfo,
    pub features: Features,
    /// STEAM_PURGE_MODE as read (firmware ≥ 1320), false if unknown.
    pub steam_purge_mode: bool,
    /// `[de1] api_stop_ignores_checks`: Stop requests Idle in every state.
    pub stop_ignores_checks: bool,
}

fn is_idle(s: MachineState) -> bool {
    matches!(s, MachineState::Idle | MachineState::SchedIdle)
}

/// Decides what `mode` does in `ctx`, or why it is refused.
pub fn plan(mode: Mode, ctx: &ModeContext) -> Result<ModeAction, De1Error> {
    use MachineState as S;
    let StateInfo { state, substate } = ctx.state;
    let conflict = || De1Error::StateConflict {
        mode,
        state,
        substate,
    };
    Ok(match mode {
        Mode::NoRequest => ModeAction::Request(S::NoRequest),
        Mode::Sleep => match state {
            S::Sleep | S::GoingToSleep => ModeAction::Nothing,
            S::Idle | S::SchedIdle | S::Refill => ModeAction::Request(S::Sleep),
            _ => return Err(conflict()),
        },
        Mode::Wake => match state {
            S::Sleep | S::GoingToSleep => ModeAction::Request(S::Idle),
            _ => ModeAction::Nothing,
        },
        Mode::Stop => match state {
            S::Sleep | S::GoingToSleep | S::SchedIdle | S::Idle => ModeAction::Nothing,
            S::Espresso
            | S::Steam
            | S::HotWater
            | S::HotWaterRinse
            | S::SteamRinse
            | S::Busy
            | S::Clean
            | S::Descale
            | S::AirPurge => ModeAction::Request(S::Idle),
            // ShortCal, SelfTest, LongCal, FatalError, Init, NoRequest, SkipToNext, Refill,
            // InBootLoader and unknown states.
            _ if ctx.stop_ignores_checks => ModeAction::Request(S::Idle),
            _ => return Err(conflict()),
        },
        Mode::EndSteam => match (state, substate) {
            (S::Steam, Substate::Pour | Substate::Steaming) => {
                if ctx.features.user_present() && ctx.steam_purge_mode {
                    ModeAction::Request(S::Idle)
                } else {
                    ModeAction::EndSteamViaShotSettings
                }
            }
            (S::Steam, _) => ModeAction::Request(S::Idle),
            _ => ModeAction::Nothing,
        },
        Mode::SkipToNext => match (state, substate) {
            (S::Espresso, Substate::PreInfuse | Substate::Pour) => {
                if ctx.features.skip_to_next() {
                    ModeAction::Request(S::SkipToNext)
                } else {
                    ModeAction::Unsupported
                }
            }
            _ => return Err(conflict()),
        },
        Mode::Espresso | Mode::Steam | Mode::HotWater | Mode::HotWaterRinse => {
            if ctx.ghc.is_active() {
                return Err(De1Error::GhcActive(mode));
            }
            if !is_idle(state) {
                return Err(conflict());
            }
            ModeAction::Request(match mode {
                Mode::Espresso => S::Espresso,
                Mode::Steam => S::Steam,
                Mode::HotWater => S::HotWater,
                _ => S::HotWaterRinse,
            })
        }
        Mode::Clean | Mode::Descale | Mode::Transport => {
            if !is_idle(state) {
                return Err(conflict());
            }
            ModeAction::Request(match mode {
                Mode::Clean => S::Clean,
                Mode::Descale => S::Descale,
                _ => S::AirPurge,
            })
        }
    })
}

impl super::De1 {
    /// Carries out a `de1/mode` request: checks it against the current state, the GHC
    /// and the firmware, then writes what it takes. The resulting state arrives as a
    /// StateInfo notification.
    pub async fn request_mode(&self, mode: Mode) -> Result<ModeAction, De1Error> {
        use de1_protocol::mmr::{MmrRegister, MmrValue};
        if mode == Mode::NoRequest {
            self.ensure_ready()?;
        } else {
            self.ensure_writable()?;
        }
        if mode.starts_flow() && self.with_mirror(|m| m.ghc_info()).is_none() {
            self.read_register(MmrRegister::GhcInfo).await?;
        }
        let mut state = self.state();
        if state.is_none_or(|s| s.state == MachineState::NoRequest) {
            state = Some(self.read_state().await?);
        }
        let state = state.ok_or(De1Error::NotReady)?;
        let ctx = self.with_mirror(|m| ModeContext {
            state,
            ghc: m.ghc_info().unwrap_or_default(),
            features: m.features(),
            steam_purge_mode: matches!(
                m.register(MmrRegister::SteamPurgeMode).map(|s| &s.value),
                Some(MmrValue::Bool(true))
            ),
            stop_ignores_checks: self.options().stop_ignores_checks,
        });
        let action = plan(mode, &ctx)?;
        match action {
            ModeAction::Request(s) => self.write_requested_state(s).await?,
            ModeAction::Nothing => {
                log::info!(target: super::LOG, "{mode}: nothing to do in {}, {}", state.state, state.substate);
            }
            ModeAction::Unsupported => {
                log::warn!(target: super::LOG, "{mode} is not supported by this firmware; ignored");
            }
            ModeAction::EndSteamViaShotSettings => {
                let original = self
                    .with_mirror(|m| m.shot_settings.map(|s| s.value))
                    .ok_or_else(|| {
                        De1Error::InvalidValue("ShotSettings have not been read".into())
                    })?;
                let mut zero = original;
                zero.target_steam_length = 0;
                self.write(
                    de1_protocol::characteristic::Characteristic::ShotSettings,
                    &zero.encode(),
                )
                .await?;
                self.write_shot_settings_exact(original).await?;
            }
        }
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use de1_protocol::state::Substate as Sub;
    use MachineState as S;

    fn ctx(state: S, substate: Sub) -> ModeContext {
        ModeContext {
            state: StateInfo { state, substate },
            ghc: GhcInfo(0),
            features: Features { build: Some(1333) },
            steam_purge_mode: false,
            stop_ignores_checks: false,
        }
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert_eq!(
            "espresso".parse::<Mode>().unwrap_err().to_string(),
            "'espresso' is not a valid DE1ModeEnum"
        );
    }

    #[test]
    fn flows_start_only_from_idle_and_never_on_an_active_ghc() {
        for m in [
            Mode::Espresso,
            Mode::Steam,
            Mode::HotWater,
            Mode::HotWaterRinse,
        ] {
            assert!(matches!(
                plan(m, &ctx(S::Idle, Sub::NoState)),
                Ok(ModeAction::Request(_))
            ));
            assert!(matches!(
                plan(m, &ctx(S::Sleep, Sub::NoState)),
                Err(De1Error::StateConflict { .. })
            ));
            let mut ghc = ctx(S::Idle, Sub::NoState);
            ghc.ghc = GhcInfo(0x07);
            assert_eq!(plan(m, &ghc), Err(De1Error::GhcActive(m)));
            // Present but not active (0x03): the app may start flows.
            ghc.ghc = GhcInfo(0x03);
            assert!(plan(m, &ghc).is_ok());
        }
        assert_eq!(
            plan(Mode::HotWaterRinse, &ctx(S::Idle, Sub::NoState)),
            Ok(ModeAction::Request(S::HotWaterRinse))
        );
    }

    #[test]
    fn a_ghc_does_not_block_stop_sleep_or_maintenance() {
        let mut c = ctx(S::Idle, Sub::NoState);
        c.ghc = GhcInfo(0x07);
        assert_eq!(plan(Mode::Sleep, &c), Ok(ModeAction::Request(S::Sleep)));
        assert_eq!(plan(Mode::Clean, &c), Ok(ModeAction::Request(S::Clean)));
        assert_eq!(
            plan(Mode::Transport, &c),
            Ok(ModeAction::Request(S::AirPurge))
        );
        c.state.state = S::Espresso;
        assert_eq!(plan(Mode::Stop, &c), Ok(ModeAction::Request(S::Idle)));
    }

    #[test]
    fn stop_sleep_and_wake() {
        assert_eq!(
            plan(Mode::Stop, &ctx(S::Steam, Sub::Pour)),
            Ok(ModeAction::Request(S::Idle))
        );
        assert_eq!(
            plan(Mode::Stop, &ctx(S::Idle, Sub::NoState)),
            Ok(ModeAction::Nothing)
        );
        assert!(plan(Mode::Stop, &ctx(S::Refill, Sub::NoState)).is_err());
        let mut ignoring = ctx(S::Refill, Sub::NoState);
        ignoring.stop_ignores_checks = true;
        assert_eq!(
            plan(Mode::Stop, &ignoring),
            Ok(ModeAction::Request(S::Idle))
        );

        assert_eq!(
            plan(Mode::Sleep, &ctx(S::Refill, Sub::NoState)),
            Ok(ModeAction::Request(S::Sleep))
        );
        assert_eq!(
            plan(Mode::Sleep, &ctx(S::GoingToSleep, Sub::NoState)),
            Ok(ModeAction::Nothing)
        );
        assert!(plan(Mode::Sleep, &ctx(S::Espresso, Sub::Pour)).is_err());
        assert_eq!(
            plan(Mode::Wake, &ctx(S::Sleep, Sub::NoState)),
            Ok(ModeAction::Request(S::Idle))
        );
        assert_eq!(
            plan(Mode::Wake, &ctx(S::Idle, Sub::NoState)),
            Ok(ModeAction::Nothing)
        );
    }

    #[test]
    fn skip_to_next_needs_a_pouring_espresso_and_firmware_1260() {
        assert_eq!(
            plan(Mode::SkipToNext, &ctx(S::Espresso, Sub::PreInfuse)),
            Ok(ModeAction::Request(S::SkipToNext))
        );
        let e = plan(Mode::SkipToNext, &ctx(S::Idle, Sub::NoState)).unwrap_err();
        assert_eq!(e.to_string(), "Can't move to SkipToNext from Idle, NoState");
        assert!(plan(Mode::SkipToNext, &ctx(S::Espresso, Sub::Flush)).is_err());
        let mut old = ctx(S::Espresso, Sub::Pour);
        old.features = Features { build: Some(1255) };
        assert_eq!(plan(Mode::SkipToNext, &old), Ok(ModeAction::Unsupported));
    }

    #[test]
    fn end_steam_follows_purge_mode() {
        assert_eq!(
            plan(Mode::EndSteam, &ctx(S::Steam, Sub::Pour)),
            Ok(ModeAction::EndSteamViaShotSettings)
        );
        let mut purge = ctx(S::Steam, Sub::Steaming);
        purge.steam_purge_mode = true;
        assert_eq!(
            plan(Mode::EndSteam, &purge),
            Ok(ModeAction::Request(S::Idle))
        );
        assert_eq!(
            plan(Mode::EndSteam, &ctx(S::Steam, Sub::HeatWaterHeater)),
            Ok(ModeAction::Request(S::Idle))
        );
        assert_eq!(
            plan(Mode::EndSteam, &ctx(S::Idle, Sub::NoState)),
            Ok(ModeAction::Nothing)
        );
    }

    #[test]
    fn maintenance_modes_and_no_request() {
        assert!(plan(Mode::Descale, &ctx(S::Sleep, Sub::NoState)).is_err());
        assert_eq!(
            plan(Mode::Descale, &ctx(S::SchedIdle, Sub::NoState)),
            Ok(ModeAction::Request(S::Descale))
        );
        assert_eq!(
            plan(Mode::NoRequest, &ctx(S::Espresso, Sub::Pour)),
            Ok(ModeAction::Request(S::NoRequest))
        );
    }
}
