//! Every stock profile through the simulator: no NaN, no negative flow, no stuck frame,
//! and every shot ends. Also the wall time of a simulated shot.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{profile, step, Harness};
use de1_protocol::packets::FrameWrite;
use de1_protocol::profile::encode_profile;
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{run_shot, MainsHz, SimConfig, SimShotOptions};

fn profiles_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/profiles"
    ))
}

/// The stock profile sources (not the `.expected.json` vectors).
fn stock_profiles() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(profiles_dir())
        .expect("tests/vectors/profiles exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_stock_profile_runs_plausibly() {
    let mut ran = 0;
    for (name, src) in stock_profiles() {
        let Ok(enc) = encode_profile(&src) else {
            // Deliberately invalid vectors (custom__bad_*) are the encoder's business.
            continue;
        };
        let durations: Vec<f64> = enc
            .frames
            .iter()
            .filter_map(|f| match f {
                FrameWrite::Shot { frame, .. } => Some(frame.duration.to_f64()),
                _ => None,
            })
            .collect();
        for mains in [MainsHz::Hz50, MainsHz::Hz60] {
            let opts = SimShotOptions {
                mains,
                target_weight: None,
                seed: 7,
            };
            let rows = run_shot(&src, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            let period = 25.0 / f64::from(mains.half_cycles_per_second());
            assert!(!rows.is_empty(), "{name}");
            for r in &rows {
                for v in [
                    r.pressure,
                    r.flow,
                    r.mix_temp,
                    r.head_temp,
                    r.set_pressure,
                    r.set_flow,
                ] {
                    assert!(v.is_finite(), "{name}: NaN at {}", r.time);
                }
                assert!(
                    r.flow >= 0.0 && r.pressure >= 0.0,
                    "{name}: negative at {}",
                    r.time
                );
                assert!(r.pressure <= 12.5, "{name}: {} bar", r.pressure);
                if let Some(w) = r.weight {
                    assert!(w.is_finite() && w > -1.0, "{name}: weight {w}");
                }
            }
            // The shot ended: the last rows are back in Idle.
            assert_eq!(rows.last().unwrap().state, S::Idle, "{name}: never ended");
            // No stuck frame: no frame lasts longer than its duration (plus a sample).
            let running: Vec<_> = rows
                .iter()
                .filter(|r| {
                    r.state == S::Espresso && matches!(r.substate, Sub::PreInfuse | Sub::Pour)
                })
                .collect();
            for (i, d) in durations.iter().enumerate() {
                let n = running.iter().filter(|r| usize::from(r.frame) == i).count();
                let spent = n as f64 * period;
                assert!(
                    spent <= d + 2.0 * period + 1e-9,
                    "{name}: frame {i} ran {spent} s, longer than its {d} s"
                );
            }
            // Frames only move forward.
            assert!(
                running.windows(2).all(|w| w[1].frame >= w[0].frame),
                "{name}"
            );
        }
        ran += 1;
    }
    assert!(ran >= 20, "only {ran} stock profiles ran");
}

#[test]
fn run_shot_stops_near_the_target_weight_and_is_deterministic() {
    let (_, src) = stock_profiles()
        .into_iter()
        .find(|(n, _)| n == "de1app__classic_italian_espresso.json")
        .expect("classic italian is a stock profile");
    let opts = SimShotOptions {
        target_weight: Some(30.0),
        ..SimShotOptions::default()
    };
    let rows = run_shot(&src, &opts).unwrap();
    let final_w = rows.last().unwrap().weight.unwrap();
    assert!((final_w - 30.0).abs() < 2.0, "{final_w}");
    assert_eq!(rows, run_shot(&src, &opts).unwrap());
    let other = run_shot(&src, &SimShotOptions { seed: 99, ..opts }).unwrap();
    assert_ne!(rows, other, "the seed drives the noise");
    assert!(run_shot(b"{not json", &opts).is_err());
}

/// Figure for the report: wall time of a 30 s shot driven through the BLE seam with
/// paused tokio time.
#[tokio::test(start_paused = true)]
async fn a_30_second_shot_takes_milliseconds_with_paused_time() {
    let h = Harness::new(SimConfig::default()).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 5.0), step("pressure", 9.0, 25.0)],
        1,
    ))
    .await;
    let wall = std::time::Instant::now();
    let sim = tokio::time::Instant::now();
    h.pull_shot(Duration::from_secs(60)).await;
    let wall = wall.elapsed();
    let simulated = sim.elapsed();
    eprintln!("simulated {simulated:?} (30 s of frames) in {wall:?} wall time");
    assert!(simulated >= Duration::from_secs(30));
    assert!(wall < Duration::from_secs(10), "{wall:?}");
}
