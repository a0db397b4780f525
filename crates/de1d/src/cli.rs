//! Command-line interface.
//!
//! `de1d [OPTIONS]` runs the launcher; `de1d <COMMAND> …` runs a tool. To add a command:
//! one variant in [`Command`] (its arguments type lives in the command's module under
//! `commands/`) and one arm in [`crate::commands::dispatch`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ipc_schema::config::LevelFilter;

use crate::commands;

/// An API-first controller for the Decent Espresso DE1.
#[derive(Debug, Parser)]
#[command(
    name = "de1d",
    version,
    about = "An API-first controller for the Decent Espresso DE1",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that build the effective configuration; accepted before or after a command.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Configuration file [default: /etc/de1d/de1d.toml if it exists]
    #[arg(long, short = 'c', value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Use the simulated DE1 and scale instead of Bluetooth
    #[arg(long, global = true)]
    pub simulate: bool,

    /// HTTP API port ([http] port)
    #[arg(long, value_name = "PORT", global = true)]
    pub http_port: Option<u16>,

    /// MQTT broker port ([mqtt] broker_port)
    #[arg(long, value_name = "PORT", global = true)]
    pub mqtt_port: Option<u16>,

    /// Run a private mosquitto on loopback ([mqtt] spawn_broker)
    #[arg(long, global = true)]
    pub spawn_broker: bool,

    /// Combined log file; empty to disable ([logging] file)
    #[arg(long, value_name = "FILE", global = true)]
    pub log_file: Option<PathBuf>,

    /// Log level: off, error, warn, info, debug, trace ([logging] level)
    #[arg(long, value_name = "LEVEL", global = true)]
    pub log_level: Option<LevelFilter>,

    /// Directory for sockets and generated files ([launcher] runtime_dir)
    #[arg(long, value_name = "DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// Make every child log as fast as it can (for testing the log pipeline)
    #[arg(long, hide = true, global = true)]
    pub debug_log_flood: bool,
}

/// The commands besides running the launcher.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show or check the effective configuration
    Config(commands::config::Args),

    /// Encode or check profiles: the bytes de1d would write, without a daemon
    Profile(commands::profile::Args),

    /// Decode one DE1 packet given as hex (e.g. `de1d decode ShotSample 0a1b…`)
    Decode(commands::decode::Args),

    /// Pull one shot on the simulated DE1 and print it
    Simulate(commands::simulate::Args),

    /// Run one child role (started by the launcher)
    #[command(hide = true)]
    Child(commands::child::Args),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_work_before_and_after_a_command() {
        let a =
            Cli::try_parse_from(["de1d", "--http-port", "8080", "config", "show"]).expect("parse");
        let b =
            Cli::try_parse_from(["de1d", "config", "show", "--http-port", "8080"]).expect("parse");
        assert_eq!(a.config.http_port, Some(8080));
        assert_eq!(b.config.http_port, Some(8080));
        assert!(matches!(a.command, Some(Command::Config(_))));
    }

    #[test]
    fn no_command_runs_the_launcher() {
        let c = Cli::try_parse_from(["de1d", "--simulate", "--log-level", "debug"]).expect("parse");
        assert!(c.command.is_none());
        assert!(c.config.simulate);
        assert_eq!(c.config.log_level, Some(LevelFilter::Debug));
    }

    #[test]
    fn bad_option_values_are_refused() {
        assert!(Cli::try_parse_from(["de1d", "--http-port", "70000"]).is_err());
        assert!(Cli::try_parse_from(["de1d", "--log-level", "loud"]).is_err());
        assert!(
            Cli::try_parse_from(["de1d", "child", "dishwasher", "--runtime-dir", "/x"]).is_err()
        );
    }
}
