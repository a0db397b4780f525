//! A byte-exact simulated DE1 and Atomax Skale II behind the `ble` transport traits.
//!
//! The simulator behaves like the machine as seen over Bluetooth, built from the
//! protocol facts (de1-behaviour.md, de1-ble.md, de1-mmr.md, de1-firmware.md); every
//! byte it sends or parses goes through `de1_protocol` / `scale_protocol` types.
//!
//! ```no_run
//! # async fn demo() -> ble::Result<()> {
//! use ble::Transport;
//! let (transport, control) = de1_sim::simulator(de1_sim::SimConfig::default());
//! let found = ble::scan_collect(&transport, std::time::Duration::from_secs(1)).await?;
//! let de1 = transport.connect(&ble::Address::new(de1_sim::DE1_ADDRESS)).await?;
//! let state = de1.read(ble::Uuid::from_u16(0xA00E)).await?;
//! control.cup_off().ok();
//! # let _ = (found, state); Ok(()) }
//! ```
//!
//! Modules: [`transport`] (the `ble` glue, connection faults and the clock task),
//! [`world`] (machine + scale + cup, one clock and one RNG), `de1` (state machine and
//! GATT surface; `de1::executor` runs profiles, `de1::hydraulics` is the pump/puck
//! model, `de1::thermal` the heaters, `de1::mmr` the register file, `de1::firmware`
//! the firmware slot), [`scale`] (Skale II physics and GATT), [`control`]
//! ([`SimControl`]) and [`shot`] ([`run_shot`]).
//!
//! Time: the world advances one mains half-cycle at a time on tokio's clock. Under
//! `#[tokio::test(start_paused = true)]` it runs as fast as the CPU allows and
//! deterministically for a given [`SimConfig::seed`]; in a normal runtime it runs in
//! real time (demo mode).

pub mod config;
pub mod control;
pub mod de1;
pub mod scale;
pub mod shot;
pub mod transport;
pub mod world;

pub use config::{
    Ghc, MachineConfig, MainsHz, NoiseConfig, PowerOn, PuckModel, PumpLimits, ScaleConfig,
    SimConfig, TimingConfig, WaterConfig,
};
pub use control::{ControlError, GroupHeadButton, SimControl, SimSnapshot};
pub use de1::firmware::make_firmware_file;
pub use de1::De1Snapshot;
pub use scale::{ScaleStatus, ScaleTimer};
pub use shot::{run_shot, RunShotError, SimRow, SimShotOptions, STOP_LEAD_G};
pub use transport::SimTransport;
pub use world::{ShotPoint, SimDevice};

/// Address of the simulated DE1.
pub const DE1_ADDRESS: &str = "00:DE:1D:E1:00:01";
/// Address of the simulated Skale II.
pub const SKALE_ADDRESS: &str = "00:5C:A1:E2:00:02";

/// Build a simulation and return its transport and control handle. Call inside a tokio
/// runtime (the machine's clock is a spawned task).
pub fn simulator(config: SimConfig) -> (SimTransport, SimControl) {
    let t = SimTransport::new(config);
    let c = t.control();
    (t, c)
}

/// Why a simulated GATT operation was refused (mapped to `ble::ErrorKind` by the
/// transport: NotFound, NotSupported or Gatt).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GattError {
    #[error("no such characteristic")]
    NotFound,
    #[error("read not permitted")]
    ReadNotPermitted,
    #[error("write not permitted")]
    WriteNotPermitted,
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("{0}")]
    Failed(String),
}
