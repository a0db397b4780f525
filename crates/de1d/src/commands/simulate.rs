//! `de1d simulate --profile FILE`: pull one shot on the simulated DE1 and print it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use de1_sim::{run_shot, MainsHz, SimRow, SimShotOptions};

const BAD_INPUT: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A JSON v2 profile
    #[arg(long)]
    pub profile: PathBuf,
    /// Mains frequency of the simulated machine, which sets the sample rate
    #[arg(long, default_value_t = 50, value_parser = parse_mains)]
    pub mains: u32,
    /// Stop at this weight in grams [default: the profile's target weight]
    #[arg(long, value_name = "G")]
    pub target_weight: Option<f64>,
    /// Seed of the simulated noise
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// One JSON object per sample instead of a table
    #[arg(long)]
    pub json: bool,
}

fn parse_mains(text: &str) -> Result<u32, String> {
    match text {
        "50" => Ok(50),
        "60" => Ok(60),
        _ => Err(format!("{text} Hz: the DE1 runs on 50 or 60 Hz mains")),
    }
}

pub fn run(args: Args) -> ExitCode {
    let source = match std::fs::read(&args.profile) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", args.profile.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let options = SimShotOptions {
        mains: if args.mains == 60 {
            MainsHz::Hz60
        } else {
            MainsHz::Hz50
        },
        target_weight: args.target_weight,
        seed: args.seed,
    };
    let rows = match run_shot(&source, &options) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("{}: {e}", args.profile.display());
            return ExitCode::from(BAD_INPUT);
        }
    };
    let mut out = std::io::stdout().lock();
    let result = if args.json {
        rows.iter().try_for_each(|row| {
            let line = serde_json::to_string(row).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")
        })
    } else {
        write_table(&mut out, &rows)
    };
    // A closed pipe (e.g. `| head`) ends the output quietly.
    let _ = result;
    ExitCode::SUCCESS
}

fn write_table(out: &mut impl Write, rows: &[SimRow]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>6}  {:<10} {:<16} {:>5} {:>8} {:>8} {:>7} {:>7} {:>8}",
        "time", "state", "substate", "frame", "bar", "ml/s", "mix°C", "head°C", "weight g"
    )?;
    for r in rows {
        let weight = r
            .weight
            .map_or_else(|| "-".to_string(), |w| format!("{w:.1}"));
        writeln!(
            out,
            "{:>6.2}  {:<10} {:<16} {:>5} {:>8.2} {:>8.2} {:>7.1} {:>7.1} {:>8}",
            r.time,
            r.state.as_str(),
            r.substate.as_str(),
            r.frame,
            r.pressure,
            r.flow,
            r.mix_temp,
            r.head_temp,
            weight
        )?;
    }
    Ok(())
}
