//! Everything that can be set up about the simulated machine, its water, its puck and
//! the scale, with realistic defaults.

use std::time::Duration;

use de1_protocol::mmr::{GhcInfo, MachineModel};

pub use crate::de1::hydraulics::{PuckModel, PumpLimits};

/// Mains frequency: it sets the sample clock (25 half-cycles per ShotSample).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum MainsHz {
    #[default]
    Hz50,
    Hz60,
}

impl MainsHz {
    pub const fn hz(self) -> u32 {
        match self {
            MainsHz::Hz50 => 50,
            MainsHz::Hz60 => 60,
        }
    }

    /// Mains half-cycles per second (the sample clock's rate).
    pub const fn half_cycles_per_second(self) -> u32 {
        2 * self.hz()
    }

    /// From 50 or 60.
    pub const fn from_hz(hz: u32) -> Option<Self> {
        match hz {
            50 => Some(MainsHz::Hz50),
            60 => Some(MainsHz::Hz60),
            _ => None,
        }
    }
}

/// The group head controller fitted to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Ghc {
    /// No GHC (GHC_INFO 0x00): the app may start flows.
    #[default]
    Absent,
    /// Fitted but not enforcing (GHC_INFO 0x03, "debug mode"): the app may start flows,
    /// and the group-head buttons work too.
    PresentInactive,
    /// Fitted and active (GHC_INFO 0x07): app-started espresso, steam, hot water and
    /// flush are ignored; they must be started at the group head.
    Active,
}

impl Ghc {
    pub const fn info(self) -> GhcInfo {
        GhcInfo(match self {
            Ghc::Absent => 0x00,
            Ghc::PresentInactive => 0x03,
            Ghc::Active => 0x07,
        })
    }

    pub const fn has_buttons(self) -> bool {
        !matches!(self, Ghc::Absent)
    }
}

/// How the machine is when the simulation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PowerOn {
    /// On for a while, idle and hot: `Idle,NoState`.
    #[default]
    ReadyIdle,
    /// Asleep and cold: `Sleep,NoState`; waking heats up first.
    Asleep,
}

/// Identity and fitted options of the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineConfig {
    /// Advertised name (must start with `DE1` for apps to find it).
    pub name: String,
    pub address: String,
    pub model: MachineModel,
    /// CPU firmware build (MMR 0x800010). Features follow it: flush control from 1283,
    /// SkipToNext from 1260, steam purge mode from 1320 …
    pub firmware_build: u32,
    /// CPU board revision × 1000.
    pub cpu_board_model: u32,
    pub serial_number: u32,
    pub ghc: Ghc,
    /// Nominal heater voltage (MMR HEATER_VOLTAGE).
    pub heater_voltage: u32,
    pub refill_kit: bool,
    pub power_on: PowerOn,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            name: "DE1".to_string(),
            address: crate::DE1_ADDRESS.to_string(),
            model: MachineModel::DE1Pro,
            firmware_build: 1333,
            cpu_board_model: 1300,
            serial_number: 0x0001_2345,
            ghc: Ghc::Absent,
            heater_voltage: 230,
            refill_kit: false,
            power_on: PowerOn::ReadyIdle,
        }
    }
}

/// The water tank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaterConfig {
    /// Level at start, mm above the sensor's reference point.
    pub initial_level_mm: f64,
    /// Refill threshold before any app writes one (WaterLevels.StartFillLevel).
    pub start_fill_level_mm: f64,
    /// Tank cross-section: millilitres per millimetre of level.
    pub ml_per_mm: f64,
    /// Level a refill brings the tank to.
    pub full_level_mm: f64,
}

impl Default for WaterConfig {
    fn default() -> Self {
        Self {
            initial_level_mm: 40.0,
            start_fill_level_mm: 5.0,
            ml_per_mm: 30.0,
            full_level_mm: 50.0,
        }
    }
}

/// Durations of the machine's own phases and of BLE operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimingConfig {
    /// Time each GATT read, write or subscription takes before it completes.
    pub gatt_latency: Duration,
    /// Flash erase after a FWMapRequest erase.
    pub erase: Duration,
    /// From a FWMapRequest verify to its answer.
    pub verify: Duration,
    /// `Espresso,Flush` ("ending") after the last frame or a stop.
    pub espresso_ending: Duration,
    /// `…,StabilizeMixTemp` before water flows.
    pub stabilize: Duration,
    /// `GoingToSleep` before `Sleep`.
    pub going_to_sleep: Duration,
    /// SteamRinse blast.
    pub steam_rinse: Duration,
    /// Purge after steam (purge mode 1: after the second stop).
    pub steam_purge: Duration,
    /// Longest the machine stays in steam puffs waiting for the second stop.
    pub steam_puff_timeout: Duration,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            gatt_latency: Duration::from_millis(20),
            erase: Duration::from_secs(10),
            verify: Duration::from_millis(300),
            espresso_ending: Duration::from_millis(2000),
            stabilize: Duration::from_millis(1500),
            going_to_sleep: Duration::from_millis(200),
            steam_rinse: Duration::from_secs(3),
            steam_purge: Duration::from_secs(2),
            steam_puff_timeout: Duration::from_secs(30),
        }
    }
}

/// Sensor noise amplitudes (each reading is perturbed by up to about ± this).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseConfig {
    pub pressure_bar: f64,
    pub flow_ml_s: f64,
    pub temperature_c: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            pressure_bar: 0.01,
            flow_ml_s: 0.01,
            temperature_c: 0.03,
        }
    }
}

/// The Skale II and the cup on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleConfig {
    /// Advertised name (must start with `Skale`).
    pub name: String,
    pub address: String,
    /// Time from liquid landing on the pan to the report.
    pub sensor_lag: Duration,
    /// Between weight reports.
    pub report_period: Duration,
    /// Reading noise amplitude, g.
    pub noise_g: f64,
    /// Time from the puck to the cup.
    pub transit: Duration,
    /// Liquid that still drips into the cup after flow stops, g.
    pub drip_g: f64,
    /// Time constant of those drips.
    pub drip_tau: Duration,
    /// Mass of the cup, g.
    pub cup_g: f64,
    /// A cup is on the pan (and tared) at start.
    pub cup_on_at_start: bool,
    /// Battery level reported on 0x2A19.
    pub battery: u8,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        Self {
            name: "Skale".to_string(),
            address: crate::SKALE_ADDRESS.to_string(),
            sensor_lag: scale_protocol::skale2::SENSOR_LAG,
            report_period: scale_protocol::skale2::REPORT_PERIOD,
            noise_g: 0.05,
            transit: Duration::from_millis(250),
            drip_g: 1.2,
            drip_tau: Duration::from_millis(1500),
            cup_g: 180.0,
            cup_on_at_start: true,
            battery: 50,
        }
    }
}

/// The whole simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed for every random choice (sensor noise, puck variation, scale noise).
    pub seed: u64,
    pub mains: MainsHz,
    pub machine: MachineConfig,
    pub water: WaterConfig,
    pub puck: PuckModel,
    pub pump: PumpLimits,
    pub timing: TimingConfig,
    pub noise: NoiseConfig,
    /// `None` = no scale in range.
    pub scale: Option<ScaleConfig>,
    /// SampleTime of the first half-cycle (to exercise the 16-bit wrap quickly).
    pub initial_sample_time: u16,
    /// Report `Steam,Pour` while steam flows (what both reference apps expect) rather
    /// than `Steam,Steaming` (the firmware header's description; de1-behaviour.md §4).
    pub steam_reports_pour: bool,
    /// Let hot water from the spout land in the cup on the scale.
    pub hot_water_into_cup: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            mains: MainsHz::Hz50,
            machine: MachineConfig::default(),
            water: WaterConfig::default(),
            puck: PuckModel::default(),
            pump: PumpLimits::default(),
            timing: TimingConfig::default(),
            noise: NoiseConfig::default(),
            scale: Some(ScaleConfig::default()),
            initial_sample_time: 0,
            steam_reports_pour: true,
            hot_water_into_cup: true,
        }
    }
}
