//! The de1d launcher: configuration, supervision, signals, logging and command-line tools.
//!
//! `bins/run.rs` calls [`main`]. See [`cli`] for the command line and [`commands`] for what
//! each command does; the launcher itself is [`commands::launch`].

pub mod broker;
pub mod cli;
pub mod commands;
pub mod logging;
pub mod notify;
pub mod runtime_dir;
pub mod settings;
pub mod supervisor;

use std::process::ExitCode;

use clap::Parser;

/// Exit status for an invalid configuration (also used by clap for a bad command line).
pub const EXIT_CONFIG: u8 = 2;
/// Exit status when the launcher cannot start (runtime directory, log file, sockets).
pub const EXIT_STARTUP: u8 = 1;
/// Exit status when a child crashed too often (`EX_SOFTWARE`), so that systemd takes over.
pub const EXIT_RESTART_LIMIT: u8 = 70;

/// Entry point of the `de1d` executable.
pub fn main() -> ExitCode {
    commands::dispatch(cli::Cli::parse())
}
