//! The simulated DE1: its state machine and GATT surface.
//!
//! [`De1`] is synchronous and deterministic: [`De1::tick`] advances one mains
//! half-cycle; [`De1::write`] and [`De1::read`] are the GATT operations. Every byte
//! sent or parsed goes through `de1_protocol`'s packet types. Notifications collect in
//! [`De1::outbox`] for the transport to deliver.
//!
//! State machine (de1-behaviour.md §2–§10):
//!
//! * Idle (or SchedIdle) with heat-up substates until the water heater is at its idle
//!   temperature; Sleep via GoingToSleep; wake with Idle.
//! * Espresso: heat substates → PreInfuse (frames below the preinfuse count) → Pour →
//!   Flush ("ending") → Idle. A stop during heat-up returns to Idle at once.
//! * Steam: Pour (or Steaming) until TargetSteamLength or a stop; with
//!   STEAM_PURGE_MODE the first stop gives SteamPuff, the second Idle.
//! * HotWater and HotWaterRinse (flush): heat substates → Pour → Idle at their
//!   volume/time limits or a stop.
//! * Clean, Descale, AirPurge, SteamRinse: fixed sequences of substates.
//! * Refill when the tank is below the refill threshold; left only when water is back.
//! * With an active GHC, app requests to start espresso, steam, hot water or flush are
//!   ignored (no state change); the group-head buttons start them.

pub mod executor;
pub mod firmware;
pub mod hydraulics;
pub mod mmr;
pub mod thermal;

use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::fixed::{F8_1_7, S32P16, U16P8};
use de1_protocol::mmr::MmrRegister as R;
use de1_protocol::packets::read_from_mmr::{ReadFromMMRRequest, ReadFromMMRResponse};
use de1_protocol::packets::shot_sample::ShotSampleValues;
use de1_protocol::packets::{
    CalCommand, CalTarget, Calibration, ExtensionFrame, FWMapRequest, FirmwareVersion, FrameWrite,
    HeaderWrite, RequestedState, SetTime, ShotFrame, ShotSample, ShotSettings, StateInfo,
    TailFrame, TemperatureSet, Temperatures, Versions, WaterLevels, WriteToMMR,
};
use de1_protocol::packets::{FrameFlags, SteamSettings};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use rand::rngs::SmallRng;
use rand::Rng;

use crate::config::SimConfig;
use crate::GattError;
use executor::{Advance, Executor, Exit, Frame, Measured, Program, Pump};
use firmware::{Answer, FirmwareStore};
use hydraulics::{Drive, Hydraulics, Path};
use mmr::RegisterFile;
use thermal::{HeatDemand, Thermal, AMBIENT};

/// Half-cycles between ShotSamples (awake).
pub const SAMPLE_HALF_CYCLES: u32 = 25;
/// ShotSamples are about three times rarer in Sleep.
pub const SLEEP_SAMPLE_HALF_CYCLES: u32 = 75;
/// WaterLevels period while awake (≈ 2.5 per second).
const WATER_PERIOD_S: f64 = 0.4;
/// Temperature of water entering the tank.
const COLD_WATER: f64 = 20.0;
/// The steam wand's resistance (bar per mL/s of water turned to steam).
const STEAM_WAND_RESISTANCE: f64 = 2.5;
/// Hot-water flow when HOT_WATER_FLOW_RATE is 0 (mL/s).
const DEFAULT_HOT_WATER_FLOW: f64 = 4.0;
/// Flush flow on firmware without flush control (mL/s).
const DEFAULT_FLUSH_FLOW: f64 = 6.0;
/// Flow multiplier during STEAM_START_SECS.
const STEAM_START_BOOST: f64 = 1.6;
/// Firmware builds that gate behaviour.
const FW_SKIP_TO_NEXT: u32 = 1260;
const FW_FLUSH_CONTROL: u32 = 1283;
const FW_STEAM_PURGE: u32 = 1320;

/// Which flow a start request or a group-head button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowKind {
    Espresso,
    Steam,
    HotWater,
    Flush,
}

impl FlowKind {
    fn state(self) -> S {
        match self {
            FlowKind::Espresso => S::Espresso,
            FlowKind::Steam => S::Steam,
            FlowKind::HotWater => S::HotWater,
            FlowKind::Flush => S::HotWaterRinse,
        }
    }
}

/// Heat-up before water flows.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Warm {
    /// Stabilising, with this many seconds left; `None` while still heating.
    stabilize_left: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
enum EspPhase {
    Warm(Warm),
    Run,
    Ending(f64),
}

#[derive(Debug, Clone, PartialEq)]
enum SteamPhase {
    Flow(f64),
    Puff(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct SeqStep {
    sub: Sub,
    secs: f64,
    flow: f64,
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Idle,
    GoingToSleep(f64),
    Sleep,
    Refill,
    Espresso(EspPhase),
    Steam(SteamPhase),
    HotWater {
        warm: Option<Warm>,
        elapsed: f64,
        volume: f64,
    },
    Flush {
        warm: Option<Warm>,
        elapsed: f64,
    },
    Sequence {
        state: S,
        steps: Vec<SeqStep>,
        idx: usize,
        left: f64,
    },
}

/// Sensor calibration: flow and pressure are ratios, temperature an offset.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CalStore {
    current: [f64; 3],
    factory: [f64; 3],
}

fn cal_index(t: CalTarget) -> Option<usize> {
    match t {
        CalTarget::Flow => Some(0),
        CalTarget::Pressure => Some(1),
        CalTarget::Temperature => Some(2),
        _ => None,
    }
}

/// What the transport and the world learn from one half-cycle.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TickOut {
    /// Liquid that left the puck (or the hot-water spout) toward the cup, mL.
    pub to_cup: f64,
    /// Flow to the cup just stopped (the last drops follow).
    pub pour_ended: bool,
}

/// A read-only view of the machine for tests and [`crate::SimControl`].
#[derive(Debug, Clone, PartialEq)]
pub struct De1Snapshot {
    /// Seconds since the simulation started.
    pub time: f64,
    pub state: S,
    pub substate: Sub,
    pub frame: u8,
    /// Last ShotSample values (engineering units).
    pub sample: ShotSampleValues,
    /// Water level, mm.
    pub water_level_mm: f64,
    /// Refill threshold, mm.
    pub start_fill_level_mm: f64,
    /// Water pumped out of the tank since the start, mL.
    pub pumped_total_ml: f64,
    /// Water through the puck or outlet during the current or last operation, mL.
    pub through_ml: f64,
    pub firmware_build: u32,
    /// Build of a verified firmware waiting for a power cycle.
    pub pending_firmware_build: Option<u32>,
    pub erasing: bool,
}

pub struct De1 {
    cfg: SimConfig,
    dt: f64,
    time: f64,
    state: S,
    substate: Sub,
    /// Idle or SchedIdle: how the machine reports being idle.
    idle_state: S,
    op: Op,
    hyd: Hydraulics,
    thermal: Thermal,
    tank_temp: f64,
    exec: Option<Executor>,
    last_frame: u8,
    header: Option<HeaderWrite>,
    frames: [Option<ShotFrame>; 20],
    extensions: [Option<ExtensionFrame>; 20],
    tail: Option<TailFrame>,
    shot_settings: ShotSettings,
    level_mm: f64,
    start_fill_mm: f64,
    mmr: RegisterFile,
    fw: FirmwareStore,
    cal: CalStore,
    last_mmr_request: [u8; 20],
    last_requested: u8,
    set_time: SetTime,
    last_header_bytes: [u8; 5],
    last_frame_bytes: [u8; 8],
    last_calibration: [u8; 14],
    sample: ShotSampleValues,
    half_cycles: u64,
    to_sample: u32,
    to_water: u32,
    water_period: u32,
    delayed: Vec<(f64, C, Vec<u8>)>,
    pumped_total: f64,
    pouring_to_cup: bool,
    /// Notifications to deliver, in order.
    pub outbox: Vec<(C, Vec<u8>)>,
}

fn u16p8(v: f64) -> U16P8 {
    U16P8::from_f64(v.clamp(0.0, U16P8::MAX)).unwrap_or_default()
}

fn noise(rng: &mut SmallRng, amplitude: f64) -> f64 {
    if amplitude > 0.0 {
        (rng.gen::<f64>() + rng.gen::<f64>() - 1.0) * amplitude
    } else {
        0.0
    }
}

impl De1 {
    pub fn new(cfg: SimConfig) -> Self {
        let dt = 1.0 / f64::from(cfg.mains.half_cycles_per_second());
        let water_period =
            (WATER_PERIOD_S * f64::from(cfg.mains.half_cycles_per_second())).round() as u32;
        let mmr = RegisterFile::new(&cfg);
        let shot_settings = ShotSettings {
            steam_settings: SteamSettings(0),
            target_steam_temp: 150,
            target_steam_length: 90,
            target_hot_water_temp: 85,
            target_hot_water_vol: 120,
            target_hot_water_length: 60,
            target_espresso_vol: 36,
            target_group_temp: u16p8(92.5),
        };
        let (state, op, thermal) = match cfg.machine.power_on {
            crate::config::PowerOn::ReadyIdle => {
                (S::Idle, Op::Idle, Thermal::warm(85.0, 92.5, 150.0))
            }
            crate::config::PowerOn::Asleep => (S::Sleep, Op::Sleep, Thermal::cold()),
        };
        let mut hyd = Hydraulics::new(cfg.pump, cfg.puck);
        hyd.reset(Path::Open { resistance: 0.3 });
        let fw = FirmwareStore::new(cfg.machine.firmware_build);
        let mut d = Self {
            dt,
            time: 0.0,
            state,
            substate: Sub::NoState,
            idle_state: S::Idle,
            op,
            hyd,
            thermal,
            tank_temp: COLD_WATER,
            exec: None,
            last_frame: 0,
            header: None,
            frames: [None; 20],
            extensions: [None; 20],
            tail: None,
            shot_settings,
            level_mm: cfg.water.initial_level_mm,
            start_fill_mm: cfg.water.start_fill_level_mm,
            mmr,
            fw,
            cal: CalStore {
                current: [1.0, 1.0, 0.0],
                factory: [1.0, 1.0, 0.0],
            },
            last_mmr_request: [0; 20],
            last_requested: S::NoRequest.to_u8(),
            set_time: SetTime { timestamp: 0 },
            last_header_bytes: [0; 5],
            last_frame_bytes: [0; 8],
            last_calibration: [0; 14],
            sample: ShotSampleValues::default(),
            half_cycles: 0,
            to_sample: SAMPLE_HALF_CYCLES,
            to_water: water_period.max(1),
            water_period: water_period.max(1),
            delayed: Vec::new(),
            pumped_total: 0.0,
            pouring_to_cup: false,
            outbox: Vec::new(),
            cfg,
        };
        d.sample = d.sample_values(Measured::default(), (0.0, 0.0, 0.0, 0.0));
        d
    }

    // ----- small accessors -------------------------------------------------------

    pub fn state(&self) -> (S, Sub) {
        (self.state, self.substate)
    }

    /// Seconds per half-cycle.
    pub fn dt(&self) -> f64 {
        self.dt
    }

    pub fn time(&self) -> f64 {
        self.time
    }

    pub fn frame(&self) -> u8 {
        self.last_frame
    }

    fn build(&self) -> u32 {
        self.fw.running_build()
    }

    fn reg(&self, r: R) -> u32 {
        self.mmr.get(r)
    }

    pub fn ghc_active(&self) -> bool {
        de1_protocol::mmr::GhcInfo(self.reg(R::GhcInfo)).is_active()
    }

    pub fn snapshot(&self) -> De1Snapshot {
        De1Snapshot {
            time: self.time,
            state: self.state,
            substate: self.substate,
            frame: self.last_frame,
            sample: self.sample,
            water_level_mm: self.level_mm,
            start_fill_level_mm: self.start_fill_mm,
            pumped_total_ml: self.pumped_total,
            through_ml: self.hyd.through(),
            firmware_build: self.fw.running_build(),
            pending_firmware_build: self.fw.pending_build(),
            erasing: self.fw.is_erasing(),
        }
    }

    fn notify(&mut self, c: C, bytes: Vec<u8>) {
        self.outbox.push((c, bytes));
    }

    fn set_state(&mut self, state: S, substate: Sub) {
        if (state, substate) != (self.state, self.substate) {
            self.state = state;
            self.substate = substate;
            log::debug!("DE1 state {state},{substate}");
            self.push_state_info();
        }
    }

    fn push_state_info(&mut self) {
        let b = StateInfo {
            state: self.state,
            substate: self.substate,
        }
        .encode()
        .to_vec();
        self.notify(C::StateInfo, b);
    }

    // ----- physical actions ------------------------------------------------------

    /// Fill the tank to its full level.
    pub fn refill_tank(&mut self) {
        self.level_mm = self.cfg.water.full_level_mm;
    }

    pub fn set_water_level(&mut self, mm: f64) {
        if mm.is_finite() {
            self.level_mm = mm.max(0.0);
        }
    }

    /// A group-head button. Returns false when the machine has no GHC.
    pub fn press_group_head(&mut self, kind: Option<FlowKind>) -> bool {
        if !self.cfg.machine.ghc.has_buttons() {
            return false;
        }
        match kind {
            Some(k) if matches!(self.op, Op::Idle) => self.start_flow(k),
            _ => self.stop_or_wake(S::Idle),
        }
        true
    }

    /// Power off and on: a verified firmware becomes the running one; the machine
    /// comes back idle and warm, with settings as after power-on (profile retained).
    pub fn power_cycle(&mut self) {
        let build = self.fw.restart();
        self.mmr.set_build(build);
        self.exec = None;
        self.hyd.reset(Path::Open { resistance: 0.3 });
        self.op = Op::Idle;
        self.idle_state = S::Idle;
        self.state = S::Init;
        self.substate = Sub::NoState;
        self.set_state(S::Idle, Sub::NoState);
    }

    // ----- requests ---------------------------------------------------------------

    fn request(&mut self, s: S) {
        match s {
            S::NoRequest => self.push_state_info(),
            S::Sleep => {
                if matches!(self.op, Op::Idle | Op::Refill) {
                    self.exec = None;
                    self.op = Op::GoingToSleep(self.cfg.timing.going_to_sleep.as_secs_f64());
                    self.set_state(S::GoingToSleep, Sub::NoState);
                }
            }
            S::Idle | S::SchedIdle => self.stop_or_wake(s),
            S::Espresso | S::Steam | S::HotWater | S::HotWaterRinse => {
                if self.ghc_active() {
                    log::info!("GHC active: app request for {s} ignored");
                    return;
                }
                let kind = match s {
                    S::Espresso => FlowKind::Espresso,
                    S::Steam => FlowKind::Steam,
                    S::HotWater => FlowKind::HotWater,
                    _ => FlowKind::Flush,
                };
                if matches!(self.op, Op::Idle) {
                    self.start_flow(kind);
                }
            }
            S::SkipToNext => {
                if self.build() >= FW_SKIP_TO_NEXT && matches!(self.op, Op::Espresso(EspPhase::Run))
                {
                    let m = self.measured_now();
                    if let Some(adv) = self.exec.as_mut().map(|e| e.skip(m)) {
                        self.on_advance(adv);
                    }
                }
            }
            S::Clean | S::Descale | S::AirPurge | S::SteamRinse => {
                if matches!(self.op, Op::Idle) {
                    self.start_sequence(s);
                }
            }
            S::Refill => {
                if matches!(self.op, Op::Idle) {
                    self.op = Op::Refill;
                    self.set_state(S::Refill, Sub::NoState);
                }
            }
            other => log::info!("request {other} ignored"),
        }
    }

    fn stop_or_wake(&mut self, s: S) {
        match &self.op {
            Op::Sleep | Op::GoingToSleep(_) => {
                self.idle_state = s;
                self.op = Op::Idle;
                let sub = self.idle_substate();
                self.set_state(s, sub);
            }
            Op::Espresso(EspPhase::Run) => self.begin_ending(),
            Op::Espresso(EspPhase::Ending(_)) => {}
            Op::Steam(SteamPhase::Flow(_)) if self.purge_mode() => {
                self.op = Op::Steam(SteamPhase::Puff(0.0));
                self.set_state(S::Steam, Sub::SteamPuff);
            }
            Op::Espresso(_)
            | Op::Steam(_)
            | Op::HotWater { .. }
            | Op::Flush { .. }
            | Op::Sequence { .. } => self.enter_idle(),
            Op::Idle => {
                if self.state != s && matches!(s, S::Idle | S::SchedIdle) {
                    self.idle_state = s;
                    let sub = self.substate;
                    self.set_state(s, sub);
                }
            }
            // The machine leaves Refill by itself once water is back.
            Op::Refill => {}
        }
    }

    fn purge_mode(&self) -> bool {
        self.build() >= FW_STEAM_PURGE && self.reg(R::SteamPurgeMode) != 0
    }

    fn enter_idle(&mut self) {
        if self.pouring_to_cup {
            self.pouring_to_cup = false;
        }
        self.hyd.vent();
        self.op = Op::Idle;
        if self.level_mm < self.start_fill_mm {
            self.op = Op::Refill;
            self.set_state(S::Refill, Sub::NoState);
        } else {
            let sub = self.idle_substate();
            self.set_state(self.idle_state, sub);
        }
    }

    fn idle_substate(&self) -> Sub {
        let threshold = f64::from(self.reg(R::TankTemp));
        if threshold > 0.0 && self.tank_temp < threshold - 1.0 {
            Sub::HeatWaterTank
        } else if self.thermal.water_heater < self.idle_water_temp() - 2.0 {
            Sub::HeatWaterHeater
        } else {
            Sub::NoState
        }
    }

    fn idle_water_temp(&self) -> f64 {
        f64::from(self.reg(R::WaterHeaterIdleTemp)) / 10.0
    }

    fn start_flow(&mut self, kind: FlowKind) {
        if self.level_mm < self.start_fill_mm {
            self.op = Op::Refill;
            self.set_state(S::Refill, Sub::NoState);
            return;
        }
        let warm = Warm {
            stabilize_left: None,
        };
        match kind {
            FlowKind::Espresso => {
                self.hyd.reset(Path::Puck);
                self.exec = None;
                self.last_frame = 0;
                self.op = Op::Espresso(EspPhase::Warm(warm));
            }
            FlowKind::Steam => {
                self.hyd.reset(Path::Open {
                    resistance: STEAM_WAND_RESISTANCE,
                });
                self.op = Op::Steam(SteamPhase::Flow(0.0));
            }
            FlowKind::HotWater => {
                self.hyd.reset(Path::Open { resistance: 0.3 });
                self.op = Op::HotWater {
                    warm: Some(warm),
                    elapsed: 0.0,
                    volume: 0.0,
                };
            }
            FlowKind::Flush => {
                self.hyd.reset(Path::Open { resistance: 0.2 });
                self.op = Op::Flush {
                    warm: Some(warm),
                    elapsed: 0.0,
                };
            }
        }
        let sub = self.current_substate();
        self.set_state(kind.state(), sub);
    }

    fn start_sequence(&mut self, s: S) {
        let st = |sub, secs, flow| SeqStep { sub, secs, flow };
        let steps = match s {
            S::Clean => vec![
                st(Sub::CleanInit, 2.0, 0.0),
                st(Sub::CleanFillGroup, 8.0, 4.0),
                st(Sub::CleanSoak, 60.0, 0.0),
                st(Sub::CleanGroup, 15.0, 6.0),
            ],
            S::Descale => vec![
                st(Sub::DescaleInit, 2.0, 0.0),
                st(Sub::DescaleFillGroup, 8.0, 4.0),
                st(Sub::DescaleReturn, 15.0, 2.0),
                st(Sub::DescaleGroup, 15.0, 4.0),
                st(Sub::DescaleSteam, 15.0, 1.0),
            ],
            S::SteamRinse => vec![st(
                Sub::Steaming,
                self.cfg.timing.steam_rinse.as_secs_f64(),
                0.8,
            )],
            _ => vec![st(Sub::NoState, 15.0, 0.0)],
        };
        self.hyd.reset(Path::Open { resistance: 0.5 });
        let first = steps[0];
        self.op = Op::Sequence {
            state: s,
            steps,
            idx: 0,
            left: first.secs,
        };
        self.set_state(s, first.sub);
    }

    fn begin_ending(&mut self) {
        self.op = Op::Espresso(EspPhase::Ending(
            self.cfg.timing.espresso_ending.as_secs_f64(),
        ));
        self.hyd.vent();
        self.set_state(S::Espresso, Sub::Flush);
    }

    // ----- profile ----------------------------------------------------------------

    /// The uploaded profile as the executor runs it. Without an upload the machine runs
    /// what it holds from before: a simple default (flow preinfusion to 4 bar, then 9
    /// bar). Frames never written end the shot.
    fn program(&self) -> Program {
        let Some(h) = self.header else {
            return default_program();
        };
        let n = usize::from(h.number_of_frames).min(20);
        let mut frames = Vec::with_capacity(n);
        for i in 0..n {
            let Some(f) = self.frames[i] else { break };
            frames.push(frame_from_wire(&f, self.extensions[i].as_ref()));
        }
        let (max_total, ignore_pi) = match self.tail {
            Some(t) => (
                f64::from(t.max_total_volume.value()),
                t.max_total_volume.flags() & 0x8000 != 0,
            ),
            None => (0.0, false),
        };
        Program {
            frames,
            preinfuse_frames: usize::from(h.number_of_preinfuse_frames),
            min_pressure: h.minimum_pressure.to_f64(),
            max_flow: h.maximum_flow.to_f64(),
            max_total_volume: max_total,
            total_ignores_preinfusion: ignore_pi,
        }
    }

    // ----- the half-cycle -----------------------------------------------------------

    fn measured_now(&self) -> Measured {
        Measured {
            pressure: self.sample.group_pressure,
            flow: self.sample.group_flow,
        }
    }

    /// Substate for the current op before the tick advances it (for start requests).
    fn current_substate(&self) -> Sub {
        match &self.op {
            Op::Espresso(EspPhase::Warm(w)) => self.warm_substate(w, self.espresso_water_temp()),
            Op::HotWater { warm: Some(w), .. } => {
                self.warm_substate(w, f64::from(self.shot_settings.target_hot_water_temp))
            }
            Op::Flush { warm: Some(w), .. } => self.warm_substate(w, self.flush_temp()),
            Op::Steam(_) => self.steam_substate(),
            _ => Sub::Pour,
        }
    }

    fn steam_substate(&self) -> Sub {
        if self.cfg.steam_reports_pour {
            Sub::Pour
        } else {
            Sub::Steaming
        }
    }

    fn warm_substate(&self, w: &Warm, required: f64) -> Sub {
        let threshold = f64::from(self.reg(R::TankTemp));
        if w.stabilize_left.is_some() {
            Sub::StabilizeMixTemp
        } else if threshold > 0.0 && self.tank_temp < threshold - 1.0 {
            Sub::HeatWaterTank
        } else if self.thermal.water_heater < required - 0.5 {
            Sub::HeatWaterHeater
        } else {
            Sub::StabilizeMixTemp
        }
    }

    /// Advance a warm-up by `dt`; true when water may flow.
    fn warm_step(&self, w: &mut Warm, required: f64, dt: f64) -> bool {
        match w.stabilize_left.as_mut() {
            Some(left) => {
                *left -= dt;
                *left <= 0.0
            }
            None => {
                if self.warm_substate(w, required) == Sub::StabilizeMixTemp {
                    w.stabilize_left = Some(self.cfg.timing.stabilize.as_secs_f64() - dt);
                }
                false
            }
        }
    }

    fn espresso_water_temp(&self) -> f64 {
        self.frames[0].map_or(92.0, |f| {
            let fr = frame_from_wire(&f, None);
            if fr.mix_sensor {
                fr.temperature
            } else {
                fr.temperature + thermal::GROUP_LOSS
            }
        })
    }

    fn flush_temp(&self) -> f64 {
        if self.build() >= FW_FLUSH_CONTROL {
            f64::from(self.reg(R::FlushTemp)) / 10.0
        } else {
            self.thermal.water_heater
        }
    }

    /// Pump drive and set values (pressure, flow, mix, head) for this half-cycle.
    fn plan(&self) -> (Drive, (f64, f64, f64, f64)) {
        let open = |flow: f64| Drive::Flow {
            target: flow,
            max_pressure: self.cfg.pump.max_pressure,
            min_pressure: 0.0,
        };
        match &self.op {
            Op::Espresso(EspPhase::Run) => match &self.exec {
                Some(e) => {
                    let t = e.targets();
                    (t.drive, (t.set_pressure, t.set_flow, t.set_mix, t.set_head))
                }
                None => (Drive::Off, (0.0, 0.0, 0.0, 0.0)),
            },
            Op::Espresso(EspPhase::Warm(_)) => {
                let mix = self.espresso_water_temp();
                (Drive::Off, (0.0, 0.0, mix, mix - thermal::GROUP_LOSS))
            }
            Op::Espresso(EspPhase::Ending(_)) => (Drive::Off, (0.0, 0.0, 0.0, 0.0)),
            Op::Steam(SteamPhase::Flow(elapsed)) => {
                let base = f64::from(self.reg(R::TargetSteamFlow)) / 100.0;
                let start = f64::from(self.reg(R::SteamStartSecs)) / 100.0;
                let flow = if *elapsed < start {
                    base * STEAM_START_BOOST
                } else {
                    base
                };
                (open(flow), (0.0, flow, 0.0, 0.0))
            }
            Op::Steam(SteamPhase::Puff(_)) => (Drive::Off, (0.0, 0.0, 0.0, 0.0)),
            Op::HotWater { warm, .. } => {
                let t = f64::from(self.shot_settings.target_hot_water_temp);
                if warm.is_some() {
                    (Drive::Off, (0.0, 0.0, t, t))
                } else {
                    let f = self.hot_water_flow();
                    (open(f), (0.0, f, t, t))
                }
            }
            Op::Flush { warm, .. } => {
                let t = self.flush_temp();
                if warm.is_some() {
                    (Drive::Off, (0.0, 0.0, t, t))
                } else {
                    let f = self.flush_flow();
                    (open(f), (0.0, f, t, t))
                }
            }
            Op::Sequence { steps, idx, .. } => {
                let f = steps.get(*idx).map_or(0.0, |s| s.flow);
                if f > 0.0 {
                    (open(f), (0.0, f, 0.0, 0.0))
                } else {
                    (Drive::Off, (0.0, 0.0, 0.0, 0.0))
                }
            }
            Op::Idle | Op::GoingToSleep(_) | Op::Sleep | Op::Refill => {
                (Drive::Off, (0.0, 0.0, 0.0, 0.0))
            }
        }
    }

    fn hot_water_flow(&self) -> f64 {
        let r = f64::from(self.reg(R::HotWaterFlowRate)) / 10.0;
        if r > 0.0 {
            r
        } else {
            DEFAULT_HOT_WATER_FLOW
        }
    }

    fn flush_flow(&self) -> f64 {
        let r = f64::from(self.reg(R::FlushFlowRate)) / 10.0;
        if self.build() >= FW_FLUSH_CONTROL && r > 0.0 {
            r
        } else {
            DEFAULT_FLUSH_FLOW
        }
    }

    fn heat_demand(&self, set_mix: f64) -> HeatDemand {
        let asleep = matches!(self.op, Op::Sleep | Op::GoingToSleep(_));
        let steam_target = f64::from(self.shot_settings.target_steam_temp);
        let group = self.shot_settings.target_group_temp.to_f64();
        let water = match &self.op {
            Op::Espresso(_) => Some(self.espresso_water_temp() + 1.0),
            Op::HotWater { .. } => Some(f64::from(self.shot_settings.target_hot_water_temp) + 1.0),
            Op::Flush { .. } => Some(self.flush_temp() + 1.0),
            _ => Some(self.idle_water_temp()),
        };
        HeatDemand {
            water_heater: if asleep { None } else { water },
            group: if asleep || group <= 0.0 {
                None
            } else {
                Some(group)
            },
            steam: if asleep || steam_target <= 0.0 {
                None
            } else {
                Some(steam_target)
            },
            set_mix,
            flow: self.hyd.pump_flow,
            steaming: matches!(self.op, Op::Steam(SteamPhase::Flow(_))),
        }
    }

    fn sample_values(&self, m: Measured, set: (f64, f64, f64, f64)) -> ShotSampleValues {
        let cal_t = self.cal.current[2];
        ShotSampleValues {
            sample_time: self.sample_time(),
            group_pressure: m.pressure,
            group_flow: m.flow,
            mix_temp: self.thermal.mix + cal_t,
            head_temp: self.thermal.head + cal_t,
            set_mix_temp: set.2,
            set_head_temp: set.3,
            set_group_pressure: set.0,
            set_group_flow: set.1,
            frame_number: self.last_frame,
            steam_temp: self.thermal.steam,
        }
    }

    fn sample_time(&self) -> u16 {
        (u64::from(self.cfg.initial_sample_time) + self.half_cycles) as u16
    }

    /// Advance one mains half-cycle.
    pub fn tick(&mut self, rng: &mut SmallRng) -> TickOut {
        let dt = self.dt;
        self.time += dt;
        self.half_cycles += 1;
        let mut out = TickOut::default();

        // Firmware erase and delayed answers.
        if let Some(Answer::EraseDone) = self.fw.tick(dt) {
            let b = FWMapRequest {
                window_increment: 0,
                fw_to_erase: 0,
                fw_to_map: 1,
                first_error: 0,
            }
            .encode()
            .to_vec();
            self.notify(C::FWMapRequest, b);
        }
        let now = self.time;
        let mut due = Vec::new();
        self.delayed.retain(|(t, c, b)| {
            if *t <= now + 1e-9 {
                due.push((*c, b.clone()));
                false
            } else {
                true
            }
        });
        for (c, b) in due {
            self.notify(c, b);
        }

        // Physics.
        let (drive, set) = self.plan();
        let drive = if self.level_mm <= 0.0 {
            Drive::Off
        } else {
            drive
        };
        let delivered = self.hyd.step(drive, dt);
        self.drain(delivered);
        self.thermal.step(&self.heat_demand(set.2), dt);
        self.step_tank(dt);
        let m = Measured {
            pressure: (self.hyd.pressure + noise(rng, self.cfg.noise.pressure_bar)).max(0.0),
            flow: if self.hyd.pump_flow > 1e-3 {
                (self.hyd.pump_flow + noise(rng, self.cfg.noise.flow_ml_s)).max(0.0)
            } else {
                0.0
            },
        };

        // Where the liquid goes.
        let to_cup = match &self.op {
            Op::Espresso(EspPhase::Run) => true,
            Op::HotWater { warm: None, .. } => self.cfg.hot_water_into_cup,
            _ => false,
        };
        if to_cup {
            out.to_cup = self.hyd.out_flow * dt;
            self.pouring_to_cup = true;
        } else if self.pouring_to_cup {
            self.pouring_to_cup = false;
            out.pour_ended = true;
        }

        // State machine.
        self.advance(dt, delivered, m);

        // The sample reports the values the firmware decided on.
        let set = if matches!(self.op, Op::Espresso(EspPhase::Run)) {
            set
        } else {
            self.plan().1
        };
        let mut values = self.sample_values(m, set);
        let tn = self.cfg.noise.temperature_c;
        values.mix_temp += noise(rng, tn);
        values.head_temp += noise(rng, tn);
        self.sample = values;

        // Periodic notifications.
        self.to_sample = self.to_sample.saturating_sub(1);
        if self.to_sample == 0 {
            let asleep = matches!(self.op, Op::Sleep);
            self.to_sample = if asleep {
                SLEEP_SAMPLE_HALF_CYCLES
            } else {
                SAMPLE_HALF_CYCLES
            };
            let b = ShotSample::from_values_saturating(&self.sample)
                .encode()
                .to_vec();
            self.notify(C::ShotSample, b);
        }
        self.to_water = self.to_water.saturating_sub(1);
        if self.to_water == 0 {
            let asleep = matches!(self.op, Op::Sleep);
            self.to_water = if asleep {
                self.water_period * 3
            } else {
                self.water_period
            };
            let b = self.water_levels().encode().to_vec();
            self.notify(C::WaterLevels, b);
        }
        out
    }

    fn drain(&mut self, ml: f64) {
        if ml > 0.0 {
            self.pumped_total += ml;
            let per_mm = self.cfg.water.ml_per_mm.max(1e-6);
            self.level_mm = (self.level_mm - ml / per_mm).max(0.0);
        }
    }

    fn step_tank(&mut self, dt: f64) {
        let threshold = f64::from(self.reg(R::TankTemp));
        let asleep = matches!(self.op, Op::Sleep | Op::GoingToSleep(_));
        if !asleep && threshold > self.tank_temp {
            self.tank_temp = (self.tank_temp + 0.3 * dt).min(threshold);
        } else {
            self.tank_temp += (COLD_WATER.max(AMBIENT - 2.0) - self.tank_temp) * dt / 3600.0;
        }
    }

    fn water_levels(&self) -> WaterLevels {
        WaterLevels {
            level: u16p8(self.level_mm),
            start_fill_level: u16p8(self.start_fill_mm),
        }
    }

    fn on_advance(&mut self, adv: Advance) {
        match adv {
            Advance::Stay => {}
            Advance::Next(_) => {
                if let Some(e) = &self.exec {
                    self.last_frame = e.frame_index().min(255) as u8;
                    let sub = if e.in_preinfusion() {
                        Sub::PreInfuse
                    } else {
                        Sub::Pour
                    };
                    self.set_state(S::Espresso, sub);
                }
            }
            Advance::End(_) => self.begin_ending(),
        }
    }

    fn advance(&mut self, dt: f64, delivered: f64, m: Measured) {
        let mut op = std::mem::replace(&mut self.op, Op::Idle);
        let mut next: Option<Op> = None;
        match &mut op {
            Op::Idle => {
                if self.level_mm < self.start_fill_mm {
                    next = Some(Op::Refill);
                    self.set_state(S::Refill, Sub::NoState);
                } else {
                    let sub = self.idle_substate();
                    self.set_state(self.idle_state, sub);
                }
            }
            Op::GoingToSleep(left) => {
                *left -= dt;
                if *left <= 0.0 {
                    next = Some(Op::Sleep);
                    self.set_state(S::Sleep, Sub::NoState);
                }
            }
            Op::Sleep => {}
            Op::Refill => {
                if self.level_mm >= self.start_fill_mm {
                    next = Some(Op::Idle);
                    let sub = self.idle_substate();
                    self.set_state(self.idle_state, sub);
                }
            }
            Op::Espresso(phase) => match phase {
                EspPhase::Warm(w) => {
                    let required = self.espresso_water_temp();
                    if self.warm_step(w, required, dt) {
                        let exec = Executor::start(self.program(), m);
                        let sub = if exec.in_preinfusion() {
                            Sub::PreInfuse
                        } else {
                            Sub::Pour
                        };
                        let done = exec.is_done();
                        self.last_frame = 0;
                        self.exec = Some(exec);
                        next = Some(Op::Espresso(EspPhase::Run));
                        self.set_state(S::Espresso, sub);
                        if done {
                            self.op = Op::Espresso(EspPhase::Run);
                            self.begin_ending();
                            return;
                        }
                    } else {
                        let sub = self.warm_substate(w, required);
                        self.set_state(S::Espresso, sub);
                    }
                }
                EspPhase::Run => {
                    let adv = self
                        .exec
                        .as_mut()
                        .map_or(Advance::End(executor::FrameEnd::Time), |e| {
                            e.after_step(dt, delivered, m)
                        });
                    self.op = op;
                    self.on_advance(adv);
                    return;
                }
                EspPhase::Ending(left) => {
                    *left -= dt;
                    if *left <= 0.0 {
                        self.exec = None;
                        self.enter_idle();
                        return;
                    }
                }
            },
            Op::Steam(phase) => match phase {
                SteamPhase::Flow(elapsed) => {
                    *elapsed += dt;
                    let limit = f64::from(self.shot_settings.target_steam_length);
                    if *elapsed >= limit {
                        if self.purge_mode() {
                            next = Some(Op::Steam(SteamPhase::Puff(0.0)));
                            self.set_state(S::Steam, Sub::SteamPuff);
                        } else {
                            self.enter_idle();
                            return;
                        }
                    }
                }
                SteamPhase::Puff(elapsed) => {
                    *elapsed += dt;
                    if *elapsed >= self.cfg.timing.steam_puff_timeout.as_secs_f64() {
                        self.enter_idle();
                        return;
                    }
                }
            },
            Op::HotWater {
                warm,
                elapsed,
                volume,
            } => {
                let required = f64::from(self.shot_settings.target_hot_water_temp);
                if let Some(w) = warm {
                    if self.warm_step(w, required, dt) {
                        *warm = None;
                        self.set_state(S::HotWater, Sub::Pour);
                    } else {
                        let sub = self.warm_substate(w, required);
                        self.set_state(S::HotWater, sub);
                    }
                } else {
                    *elapsed += dt;
                    *volume += delivered;
                    let max_vol = f64::from(self.shot_settings.target_hot_water_vol);
                    let max_len = f64::from(self.shot_settings.target_hot_water_length);
                    if (max_vol > 0.0 && *volume >= max_vol)
                        || (max_len > 0.0 && *elapsed >= max_len)
                    {
                        self.enter_idle();
                        return;
                    }
                }
            }
            Op::Flush { warm, elapsed } => {
                let required = self.flush_temp();
                if let Some(w) = warm {
                    if self.warm_step(w, required, dt) {
                        *warm = None;
                        self.set_state(S::HotWaterRinse, Sub::Pour);
                    } else {
                        let sub = self.warm_substate(w, required);
                        self.set_state(S::HotWaterRinse, sub);
                    }
                } else {
                    *elapsed += dt;
                    let timeout = if self.build() >= FW_FLUSH_CONTROL {
                        f64::from(self.reg(R::FlushTimeout)) / 10.0
                    } else {
                        0.0
                    };
                    if timeout > 0.0 && *elapsed >= timeout {
                        self.enter_idle();
                        return;
                    }
                }
            }
            Op::Sequence {
                state,
                steps,
                idx,
                left,
            } => {
                *left -= dt;
                if *left <= 0.0 {
                    *idx += 1;
                    match steps.get(*idx) {
                        Some(s) => {
                            *left = s.secs;
                            let (st, sub) = (*state, s.sub);
                            self.set_state(st, sub);
                        }
                        None => {
                            self.enter_idle();
                            return;
                        }
                    }
                }
            }
        }
        self.op = next.unwrap_or(op);
    }

    // ----- GATT ---------------------------------------------------------------------

    /// A GATT write from the app.
    pub fn write(&mut self, c: C, bytes: &[u8]) -> Result<(), GattError> {
        let bad = |e: de1_protocol::DecodeError| GattError::InvalidValue(e.to_string());
        match c {
            C::RequestedState => {
                let r = RequestedState::decode(bytes).map_err(bad)?;
                self.last_requested = r.state.to_u8();
                self.request(r.state);
            }
            C::SetTime => self.set_time = SetTime::decode(bytes).map_err(bad)?,
            C::ReadFromMMR => {
                let req = ReadFromMMRRequest::decode(bytes).map_err(bad)?;
                self.last_mmr_request = req.encode();
                self.answer_mmr_read(&req);
            }
            C::WriteToMMR => {
                let w = WriteToMMR::decode(bytes).map_err(bad)?;
                if w.is_register_space() {
                    self.mmr.write(w.address(), w.data());
                } else {
                    self.fw.write_chunk(w.address(), w.data());
                }
            }
            C::FWMapRequest => {
                let r = FWMapRequest::decode(bytes).map_err(bad)?;
                self.fw_map_request(r);
            }
            C::ShotSettings => self.shot_settings = ShotSettings::decode(bytes).map_err(bad)?,
            C::HeaderWrite => {
                let h = HeaderWrite::decode(bytes).map_err(bad)?;
                h.validate().map_err(bad)?;
                self.last_header_bytes = h.encode();
                self.header = Some(h);
            }
            C::FrameWrite => {
                let n = self.header.map(|h| h.number_of_frames);
                let f = FrameWrite::decode(bytes, n).map_err(bad)?;
                self.last_frame_bytes = f.encode();
                match f {
                    FrameWrite::Shot { index, frame } => {
                        if let Some(slot) = self.frames.get_mut(usize::from(index)) {
                            *slot = Some(frame);
                        }
                    }
                    FrameWrite::Extension { index, frame } => {
                        if let Some(slot) = self.extensions.get_mut(usize::from(index)) {
                            *slot = Some(frame);
                        }
                    }
                    FrameWrite::Tail { index, frame } => {
                        self.tail = Some(frame);
                        // Frames beyond the new profile's length have no limiter.
                        for e in self.extensions.iter_mut().skip(usize::from(index)) {
                            *e = None;
                        }
                    }
                }
            }
            C::WaterLevels => {
                let w = WaterLevels::decode(bytes).map_err(bad)?;
                self.start_fill_mm = w.start_fill_level.to_f64();
            }
            C::Calibration => {
                let cal = Calibration::decode(bytes).map_err(bad)?;
                self.calibration(cal);
            }
            C::Deprecated | C::ShotDirectory | C::ShotMapRequest | C::DeleteShotRange => {}
            C::Versions | C::Temperatures | C::ShotSample | C::StateInfo => {
                return Err(GattError::WriteNotPermitted)
            }
        }
        Ok(())
    }

    /// A GATT read from the app.
    pub fn read(&self, c: C) -> Result<Vec<u8>, GattError> {
        Ok(match c {
            C::Versions => versions().encode().to_vec(),
            C::RequestedState => vec![self.last_requested],
            C::SetTime => self.set_time.encode().to_vec(),
            // The firmware returns the last request, not data (de1-mmr.md §2.3).
            C::ReadFromMMR => self.last_mmr_request.to_vec(),
            C::Temperatures => self.temperatures().encode().to_vec(),
            C::ShotSettings => self.shot_settings.encode().to_vec(),
            C::ShotSample => ShotSample::from_values_saturating(&self.sample)
                .encode()
                .to_vec(),
            C::StateInfo => StateInfo {
                state: self.state,
                substate: self.substate,
            }
            .encode()
            .to_vec(),
            C::HeaderWrite => self.last_header_bytes.to_vec(),
            C::FrameWrite => self.last_frame_bytes.to_vec(),
            C::WaterLevels => self.water_levels().encode().to_vec(),
            C::Calibration => self.last_calibration.to_vec(),
            C::Deprecated | C::ShotDirectory => Vec::new(),
            C::WriteToMMR | C::FWMapRequest | C::ShotMapRequest | C::DeleteShotRange => {
                return Err(GattError::ReadNotPermitted)
            }
        })
    }

    fn temperatures(&self) -> Temperatures {
        let steam_target = f64::from(self.shot_settings.target_steam_temp);
        Temperatures {
            current: TemperatureSet {
                water_heater: u16p8(self.thermal.water_heater),
                steam_heater: u16p8(self.thermal.steam),
                group_heater: u16p8(self.thermal.head),
                cold_water: u16p8(self.tank_temp),
            },
            target: TemperatureSet {
                water_heater: u16p8(self.idle_water_temp()),
                steam_heater: u16p8(steam_target),
                group_heater: self.shot_settings.target_group_temp,
                cold_water: u16p8(f64::from(self.reg(R::TankTemp))),
            },
        }
    }

    fn answer_mmr_read(&mut self, req: &ReadFromMMRRequest) {
        let address = req.address();
        let len = req.byte_len();
        let data = if address >> 16 == 0x80 {
            match self.mmr.read(address, len) {
                Some(d) => d,
                None => return,
            }
        } else {
            self.fw.read(address, len)
        };
        for (i, chunk) in data.chunks(16).enumerate() {
            let a = address + (i * 16) as u32;
            match ReadFromMMRResponse::new(a, chunk) {
                Ok(r) => {
                    let b = r.encode().to_vec();
                    self.notify(C::ReadFromMMR, b);
                }
                Err(e) => log::warn!("MMR response at {a:#08x}: {e}"),
            }
        }
    }

    fn fw_map_request(&mut self, r: FWMapRequest) {
        if let Err(e) = r.validate_request() {
            log::warn!("FWMapRequest ignored: {e}");
            return;
        }
        if r.fw_to_erase != 0 {
            self.fw.erase(self.cfg.timing.erase.as_secs_f64());
            let b = FWMapRequest {
                window_increment: 0,
                fw_to_erase: r.fw_to_erase,
                fw_to_map: r.fw_to_map,
                first_error: 0,
            }
            .encode()
            .to_vec();
            self.notify(C::FWMapRequest, b);
            return;
        }
        let first = match r.first_error {
            FWMapRequest::FIRST_ERROR_REPORT_FIRST => true,
            FWMapRequest::FIRST_ERROR_REPORT_NEXT => false,
            _ => return,
        };
        if self.fw.is_erasing() {
            return;
        }
        if let Answer::Verify(addr) = self.fw.verify(first) {
            let b = FWMapRequest {
                window_increment: 0,
                fw_to_erase: 0,
                fw_to_map: r.fw_to_map,
                first_error: addr,
            }
            .encode()
            .to_vec();
            let due = self.time + self.cfg.timing.verify.as_secs_f64();
            self.delayed.push((due, C::FWMapRequest, b));
        }
    }

    fn calibration(&mut self, req: Calibration) {
        let error = |req: &Calibration| Calibration {
            write_key: Calibration::VALUE_KEY,
            command: req.command,
            target: CalTarget::Error,
            reported: S32P16(0),
            measured: S32P16(0),
        };
        let reply = match (req.command, cal_index(req.target)) {
            (_, None) => error(&req),
            (CalCommand::Read, Some(i)) => {
                self.cal_report(CalCommand::Read, req.target, self.cal.current[i])
            }
            (CalCommand::ReadFactory, Some(i)) => {
                self.cal_report(CalCommand::ReadFactory, req.target, self.cal.factory[i])
            }
            (CalCommand::ResetToFactory, Some(i)) => {
                self.cal.current[i] = self.cal.factory[i];
                self.cal_report(CalCommand::ResetToFactory, req.target, self.cal.current[i])
            }
            (CalCommand::Write, Some(i)) => {
                let reported = req.reported.to_f64();
                let measured = req.measured.to_f64();
                let value = if req.target.is_ratiometric() {
                    (reported != 0.0).then(|| measured / reported)
                } else {
                    Some(measured - reported)
                };
                match value.filter(|v| v.is_finite() && req.write_key == Calibration::WRITE_KEY) {
                    Some(v) => {
                        self.cal.current[i] = v;
                        self.cal_report(CalCommand::Write, req.target, v)
                    }
                    None => error(&req),
                }
            }
        };
        let b = reply.encode();
        self.last_calibration = b;
        self.notify(C::Calibration, b.to_vec());
    }

    fn cal_report(&self, cmd: CalCommand, target: CalTarget, value: f64) -> Calibration {
        Calibration::value_report(cmd, target, S32P16::from_f64(value).unwrap_or_default())
    }
}

fn versions() -> Versions {
    Versions {
        ble: FirmwareVersion {
            api_version: 4,
            release: F8_1_7(0x0F),
            commits: 495,
            changes: 60,
            sha: 0x551E_A9F0,
        },
        firmware: FirmwareVersion {
            api_version: 0,
            release: F8_1_7(0),
            commits: 0,
            changes: 0,
            sha: 0,
        },
    }
}

/// One wire frame in engineering units.
fn frame_from_wire(f: &ShotFrame, ext: Option<&ExtensionFrame>) -> Frame {
    let flags: FrameFlags = f.flags;
    Frame {
        pump: if flags.controls_flow() {
            Pump::Flow
        } else {
            Pump::Pressure
        },
        set_value: f.set_value.to_f64(),
        temperature: f.temperature.to_f64(),
        mix_sensor: flags.targets_mix_temp(),
        interpolate: flags.interpolates(),
        duration: f.duration.to_f64(),
        exit: flags.does_compare().then(|| Exit {
            flow: flags.compares_flow(),
            over: flags.compares_greater_than(),
            value: f.trigger_value.to_f64(),
        }),
        max_volume: f64::from(f.max_volume.value()),
        limiter: ext
            .filter(|e| e.limiter_value.0 > 0)
            .map(|e| (e.limiter_value.to_f64(), e.limiter_range.to_f64())),
        ignore_limit: flags.ignores_limit(),
    }
}

/// What the machine runs before any profile was uploaded.
fn default_program() -> Program {
    let base = Frame {
        pump: Pump::Flow,
        set_value: 4.0,
        temperature: 92.0,
        mix_sensor: false,
        interpolate: false,
        duration: 20.0,
        exit: Some(Exit {
            flow: false,
            over: true,
            value: 4.0,
        }),
        max_volume: 0.0,
        limiter: None,
        ignore_limit: true,
    };
    Program {
        frames: vec![
            base,
            Frame {
                pump: Pump::Pressure,
                set_value: 9.0,
                duration: 30.0,
                exit: None,
                ..base
            },
        ],
        preinfuse_frames: 1,
        min_pressure: 0.0,
        max_flow: 0.0,
        max_total_volume: 0.0,
        total_ignores_preinfusion: false,
    }
}
