//! One module per command; [`dispatch`] runs the one chosen on the command line.

pub mod child;
pub mod config;
pub mod decode;
pub mod launch;
pub mod profile;
pub mod simulate;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// Runs what the command line asks for.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        None => launch::run(&cli.config),
        Some(Command::Config(args)) => config::run(&cli.config, args),
        Some(Command::Child(args)) => child::run(args),
        Some(Command::Profile(args)) => profile::run(args),
        Some(Command::Decode(args)) => decode::run(args),
        Some(Command::Simulate(args)) => simulate::run(args),
    }
}
