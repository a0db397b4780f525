//! DE1 and scale device model, flow sequencer and stop-at logic; the controller process.

pub mod bus;
pub mod clock;
pub mod controller;
pub mod de1;
pub mod documents;
pub mod link;
pub mod process;
pub mod scale;
pub mod sequencer;
pub mod store;

/// The controller process (`de1d child controller`): serves the controller socket,
/// manages the DE1 and scale links (or the built-in simulator), runs the flow sequencer
/// and publishes events; see [`process`].
pub fn run(env: ipc_schema::ChildEnv) -> std::process::ExitCode {
    process::run(env)
}
