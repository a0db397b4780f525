//! `de1d config show`: prints the effective configuration as TOML.

use std::process::ExitCode;

use clap::Subcommand;

use crate::cli::ConfigArgs;
use crate::settings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the effective configuration (file, environment and options merged) as TOML;
    /// exits with status 2 if it is invalid
    Show {
        /// Print passwords and tokens instead of masking them
        #[arg(long)]
        reveal_secrets: bool,
    },
}

pub fn run(config_args: &ConfigArgs, args: Args) -> ExitCode {
    let config = match settings::effective_config(config_args) {
        Ok(c) => c,
        Err(e) => return settings::report_config_error(&e),
    };
    match args.action {
        Action::Show { reveal_secrets } => {
            let shown = if reveal_secrets {
                config
            } else {
                config.redacted()
            };
            print!("{}", shown.to_toml_string());
            ExitCode::SUCCESS
        }
    }
}
