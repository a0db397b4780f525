//! `de1d profile encode|check`: what de1d would write for a profile, without a daemon.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use de1_protocol::profile::{encode_profile, EncodedProfile};
use serde_json::json;

/// Exit status for a bad profile or an unreadable file.
const BAD_INPUT: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the writes de1d would make for a profile, as one JSON object
    Encode {
        /// A JSON v2 profile, as a client would PUT it to de1/profile
        file: PathBuf,
    },
    /// Validate profiles: one line per file, OK or the reason; exit 2 if any is bad
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(args: Args) -> ExitCode {
    match args.action {
        Action::Encode { file } => match load_and_encode(&file) {
            Ok(encoded) => {
                let mut out = std::io::stdout().lock();
                // A closed pipe is not worth a panic.
                let _ = writeln!(out, "{}", encoded_to_json(&encoded));
                ExitCode::SUCCESS
            }
            Err(reason) => {
                eprintln!("{}: {reason}", file.display());
                ExitCode::from(BAD_INPUT)
            }
        },
        Action::Check { files } => {
            let mut all_good = true;
            let mut out = std::io::stdout().lock();
            for file in &files {
                let line = match load_and_encode(file) {
                    Ok(_) => "OK".to_string(),
                    Err(reason) => {
                        all_good = false;
                        reason
                    }
                };
                let _ = writeln!(out, "{}: {line}", file.display());
            }
            if all_good {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(BAD_INPUT)
            }
        }
    }
}

fn load_and_encode(file: &Path) -> Result<EncodedProfile, String> {
    let source = std::fs::read(file).map_err(|e| format!("cannot read: {e}"))?;
    encode_profile(&source).map_err(|e| e.to_string())
}

/// The `profile encode` document: identity, what de1d takes from the profile, and every
/// write in order as lowercase hex.
pub fn encoded_to_json(encoded: &EncodedProfile) -> serde_json::Value {
    let writes: Vec<_> = encoded
        .writes()
        .into_iter()
        .map(|(characteristic, bytes)| {
            json!({"characteristic": characteristic.name(), "hex": hex::encode(bytes)})
        })
        .collect();
    json!({
        "id": encoded.id,
        "fingerprint": encoded.fingerprint,
        "target_weight": encoded.target_weight,
        "target_volume": encoded.target_volume,
        "tank_temperature": encoded.tank_temperature,
        "number_of_preinfuse_frames": encoded.number_of_preinfuse_frames,
        "move_on_weight_list": encoded.move_on_weight_list,
        "writes": writes,
    })
}
