//! `de1d decode CHARACTERISTIC HEX`: decode one DE1 packet, without a daemon.

use std::process::ExitCode;

use de1_protocol::characteristic::Characteristic;
use de1_protocol::decode_any::decode_to_json;

/// Exit status for bytes or a name that cannot be decoded.
const BAD_INPUT: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Characteristic name as in the protocol (e.g. ShotSample, StateInfo) or its UUID
    pub characteristic: String,
    /// The packet as hex (spaces, colons and a 0x prefix are ignored)
    pub hex: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    match decode(&args.characteristic, &args.hex.join("")) {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("{reason}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

fn decode(name: &str, hex_text: &str) -> Result<serde_json::Value, String> {
    let characteristic: Characteristic = name.parse().map_err(|_| {
        let names: Vec<_> = Characteristic::ALL.iter().map(|c| c.name()).collect();
        format!(
            "unknown characteristic {name:?}; one of: {}",
            names.join(", ")
        )
    })?;
    let bytes = parse_hex(hex_text)?;
    decode_to_json(characteristic, &bytes).map_err(|e| e.to_string())
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !matches!(c, ' ' | ':' | '-' | '_'))
        .collect();
    hex::decode(&digits).map_err(|e| format!("not hex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_state_info_by_name() {
        let v = decode("StateInfo", "04 05").expect("decodes");
        assert_eq!(v["state"], "Espresso");
        assert_eq!(v["substate"], "Pour");
    }

    #[test]
    fn reports_bad_input_without_panicking() {
        assert!(decode("StateInfo", "04").unwrap_err().contains("StateInfo"));
        assert!(decode("NoSuchThing", "00").unwrap_err().contains("unknown"));
        assert!(decode("StateInfo", "zz").unwrap_err().contains("not hex"));
    }
}
