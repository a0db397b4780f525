//! Try a profile without a machine: [`run_shot`] uploads a profile to a simulated DE1,
//! pulls one shot and returns one row per ShotSample.
//!
//! It talks to the simulated machine with the same bytes a controller would send
//! (`de1_protocol::profile::encode_profile`, RequestedState) and reads back only
//! decoded notifications. The machine itself never stops at a weight; this tool does, by
//! requesting Idle once the scale reads the target minus [`STOP_LEAD_G`].

use ble::Uuid;
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::mmr::MmrRegister;
use de1_protocol::packets::{RequestedState, ShotSample, StateInfo, WriteToMMR};
use de1_protocol::profile::{encode_profile, ProfileError};
use de1_protocol::state::{MachineState, Substate};
use scale_protocol::skale2::{self, WeightReport};

use crate::config::{MainsHz, SimConfig};
use crate::world::{SimDevice, World};

/// Grams before the target at which the tool stops the shot (covers the scale lag and
/// the drops still falling).
pub const STOP_LEAD_G: f64 = 2.0;
/// A shot that has not ended after this long is stopped.
pub const MAX_SHOT_S: f64 = 300.0;
/// Rows keep coming this long after the machine is back in Idle (the last drops).
pub const AFTER_SHOT_S: f64 = 3.0;

/// Options for [`run_shot`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimShotOptions {
    pub mains: MainsHz,
    /// Stop at this weight (g). `None` → the profile's `target_weight` if > 0, else
    /// the shot runs until the profile ends.
    pub target_weight: Option<f64>,
    pub seed: u64,
}

impl Default for SimShotOptions {
    fn default() -> Self {
        Self {
            mains: MainsHz::Hz50,
            target_weight: None,
            seed: 1,
        }
    }
}

/// One ShotSample of the simulated shot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SimRow {
    /// Seconds since the espresso request.
    pub time: f64,
    pub state: MachineState,
    pub substate: Substate,
    pub frame: u8,
    /// bar.
    pub pressure: f64,
    /// mL/s.
    pub flow: f64,
    pub set_pressure: f64,
    pub set_flow: f64,
    /// °C.
    pub mix_temp: f64,
    pub head_temp: f64,
    /// Last scale reading (g).
    pub weight: Option<f64>,
}

/// Why [`run_shot`] could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunShotError {
    #[error("profile: {0}")]
    Profile(#[from] ProfileError),
    #[error("the simulated machine refused a write: {0}")]
    Machine(String),
}

/// Upload `profile_json` (JSON v2) to a fresh simulated DE1 with a Skale II and pull
/// one shot. Deterministic for a given seed; runs in simulated time (milliseconds of
/// wall time for a typical shot).
pub fn run_shot(profile_json: &[u8], opts: &SimShotOptions) -> Result<Vec<SimRow>, RunShotError> {
    let encoded = encode_profile(profile_json)?;
    let cfg = SimConfig {
        seed: opts.seed,
        mains: opts.mains,
        ..SimConfig::default()
    };
    let mut world = World::new(cfg);
    let de1 = SimDevice::De1;
    let write = |w: &mut World, c: C, bytes: &[u8]| {
        w.write(de1, Uuid(c.uuid()), bytes)
            .map_err(|e| RunShotError::Machine(format!("{}: {e}", c.name())))
    };
    for (c, bytes) in encoded.writes() {
        write(&mut world, c, &bytes)?;
    }
    if let Some(t) = encoded.tank_temperature {
        let raw = t.round().clamp(0.0, 100.0) as u32;
        if let Ok(w) = WriteToMMR::register(MmrRegister::TankTemp.address(), raw) {
            write(&mut world, C::WriteToMMR, &w.encode())?;
        }
    }
    let target = opts
        .target_weight
        .or(encoded.stop_at_weight())
        .filter(|w| *w > 0.0);
    world.outbox.clear();
    write(
        &mut world,
        C::RequestedState,
        &RequestedState::new(MachineState::Espresso).encode(),
    )?;

    let dt = world.de1.dt();
    let mut t = 0.0;
    let mut state = (MachineState::Idle, Substate::NoState);
    let mut weight: Option<f64> = None;
    let mut rows = Vec::new();
    let mut stop_sent = false;
    let mut seen_espresso = false;
    let mut idle_since: Option<f64> = None;
    while t < MAX_SHOT_S + AFTER_SHOT_S {
        let notes = std::mem::take(&mut world.outbox);
        for (dev, uuid, value) in notes {
            match dev {
                SimDevice::Scale if uuid == Uuid::from_u128(skale2::WEIGHT) => {
                    if let Ok(r) = WeightReport::decode(&value) {
                        weight = Some(r.grams);
                    }
                }
                SimDevice::De1 if uuid == Uuid(C::StateInfo.uuid()) => {
                    if let Ok(s) = StateInfo::decode(&value) {
                        state = (s.state, s.substate);
                    }
                }
                SimDevice::De1 if uuid == Uuid(C::ShotSample.uuid()) => {
                    if let Ok(s) = ShotSample::decode(&value) {
                        let v = s.values();
                        rows.push(SimRow {
                            time: t,
                            state: state.0,
                            substate: state.1,
                            frame: v.frame_number,
                            pressure: v.group_pressure,
                            flow: v.group_flow,
                            set_pressure: v.set_group_pressure,
                            set_flow: v.set_group_flow,
                            mix_temp: v.mix_temp,
                            head_temp: v.head_temp,
                            weight,
                        });
                    }
                }
                _ => {}
            }
        }
        if state.0 == MachineState::Espresso {
            seen_espresso = true;
            let pouring = matches!(state.1, Substate::PreInfuse | Substate::Pour);
            let reached = matches!((target, weight), (Some(tw), Some(w)) if w >= tw - STOP_LEAD_G);
            if pouring && reached && !stop_sent {
                stop_sent = true;
                write(
                    &mut world,
                    C::RequestedState,
                    &RequestedState::new(MachineState::Idle).encode(),
                )?;
                continue;
            }
            if t >= MAX_SHOT_S && !stop_sent {
                stop_sent = true;
                write(
                    &mut world,
                    C::RequestedState,
                    &RequestedState::new(MachineState::Idle).encode(),
                )?;
                continue;
            }
        } else if seen_espresso {
            let since = *idle_since.get_or_insert(t);
            if t - since >= AFTER_SHOT_S {
                break;
            }
        }
        world.tick();
        t += dt;
    }
    Ok(rows)
}
