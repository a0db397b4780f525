//! Prints the stop-at-weight accuracy distribution in the simulator (20 shots over 5
//! stock profiles, targets 18–45 g), for de1d's predictor and pyDE1's formula on the
//! same shots. Run with `cargo bench -p controller --bench sequencer_accuracy`.
//! (Not a timing benchmark: simulated time runs paused, as fast as the CPU allows.)

#[path = "../tests/sequencer_support/mod.rs"]
mod sequencer_support;

use controller::sequencer::{SequencerSettings, StopTuning};
use sequencer_support::{
    accuracy_plan, accuracy_run, accuracy_run_with, fault_shot, summary, Fault, ShotOutcome,
    ACCURACY_PROFILES,
};

fn table(label: &str, shots: &[ShotOutcome]) {
    println!("{label}");
    println!("  shot  profile                          target  settled  error  in cup  stops");
    for (i, ((profile, _, _), s)) in accuracy_plan().iter().zip(shots).enumerate() {
        println!(
            "  {:>4}  {:<32} {:>6.1}  {:>7.1}  {:>+5.1}  {:>6.1}  {:>5}",
            i + 1,
            profile,
            s.target,
            s.settled,
            s.settled - s.target,
            s.liquid,
            s.stops
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run in both.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            return;
        }
    };
    rt.block_on(async {
        let ours = accuracy_run(SequencerSettings::default()).await;
        let pyde1 = accuracy_run(SequencerSettings {
            stop: StopTuning::pyde1(),
            ..SequencerSettings::default()
        })
        .await;
        let no_prior = SequencerSettings {
            stop: StopTuning {
                drip_allowance: 0.0,
                ..StopTuning::default()
            },
            ..SequencerSettings::default()
        };
        let learning = accuracy_run(no_prior.clone()).await;
        let heavy = accuracy_run_with(no_prior, |cfg| {
            if let Some(scale) = cfg.scale.as_mut() {
                scale.drip_g = 2.4;
            }
        })
        .await;
        let heavy_py = accuracy_run_with(
            SequencerSettings {
                stop: StopTuning::pyde1(),
                ..SequencerSettings::default()
            },
            |cfg| {
                if let Some(scale) = cfg.scale.as_mut() {
                    scale.drip_g = 2.4;
                }
            },
        )
        .await;
        table("de1d predictor", &ours);
        table("pyDE1 2.0 formula", &pyde1);
        println!(
            "{}",
            summary("de1d                                  ", &ours)
        );
        println!(
            "{}",
            summary("pyDE1                                 ", &pyde1)
        );
        println!(
            "{}",
            summary("de1d, no prior allowance (learning)   ", &learning)
        );
        println!(
            "{}",
            summary("de1d, 2.4 g drips, no prior (learning)", &heavy)
        );
        println!(
            "{}",
            summary("pyDE1, 2.4 g drips                    ", &heavy_py)
        );

        println!("scale faults (what is in the cup; the scale cannot be read after a fault)");
        let targets = [36.0, 42.0, 40.0, 36.0, 45.0];
        for fault in [Fault::Drop(10.0), Fault::Drop(20.0), Fault::Freeze(0.6)] {
            let mut errs = Vec::new();
            for (i, (profile, target)) in ACCURACY_PROFILES.iter().zip(targets).enumerate() {
                let s = fault_shot(profile, target, 300 + i as u64, fault).await;
                errs.push(format!(
                    "{profile} {:+.1} g ({} stop)",
                    s.liquid - target,
                    s.stops
                ));
            }
            println!("  {fault:?}: {}", errs.join(", "));
        }
    });
}
