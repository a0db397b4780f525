//! Reaction time of the stop decision: from handing the sequencer the scale report that
//! crosses the stop threshold to getting `RequestState(Idle)` back (what the device
//! layer then writes). Also the ordinary report path and a ShotSample.
//!
//! Besides criterion's statistics, prints the p50/p99/max of single calls.

use std::hint::black_box;
use std::time::{Duration, Instant};

use controller::scale::{ScaleModel, WeightReading};
use controller::sequencer::{Action, EpochAnchor, EspressoControl, Sequencer, SequencerSettings};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use de1_protocol::packets::shot_sample::{ShotSample, ShotSampleValues};
use de1_protocol::state::{MachineState as S, Substate as Sub};

const LAG: f64 = 0.38;

fn sample(st: u16, pressure: f64, flow: f64) -> ShotSample {
    ShotSample::from_values_saturating(&ShotSampleValues {
        sample_time: st,
        group_pressure: pressure,
        group_flow: flow,
        mix_temp: 92.0,
        head_temp: 92.0,
        set_mix_temp: 92.0,
        set_head_temp: 92.0,
        set_group_pressure: 9.0,
        set_group_flow: 0.0,
        frame_number: 2,
        steam_temp: 150.0,
    })
}

/// A sequencer in the middle of an espresso shot with stop-at-weight armed, the
/// report that makes it stop, and the time to hand it over.
fn armed() -> (Sequencer, WeightReading, Instant, ShotSample) {
    let t0 = Instant::now();
    let at = |t: f64| t0 + Duration::from_secs_f64(t);
    let settings = SequencerSettings {
        espresso: EspressoControl {
            stop_at_weight: Some(36.0),
            ..EspressoControl::default()
        },
        ..SequencerSettings::default()
    };
    let mut seq = Sequencer::new(settings, EpochAnchor::new(t0, 1.8e9), 1);
    seq.on_scale_connected(at(0.0), ScaleModel::SkaleII);
    seq.on_state(at(0.0), S::Idle, Sub::NoState);
    seq.on_state(at(0.5), S::Espresso, Sub::PreInfuse);
    let mut st: u16 = 0;
    let mut t: f64 = 0.5;
    let cup = |t: f64| ((t - LAG - 2.0).max(0.0) * 2.0 * 10.0).round() / 10.0;
    loop {
        t += 0.05;
        let step = (t * 20.0).round() as u64;
        if matches!(step % 5, 0) {
            st = st.wrapping_add(25);
            seq.on_shot_sample(at(t), &sample(st, 9.0, 2.0));
        }
        if matches!(step % 2, 0) {
            let r = WeightReading {
                arrival: at(t),
                grams: cup(t),
            };
            let mut probe = seq.clone();
            let out = probe.on_weight(at(t), r);
            if out.contains(&Action::RequestState(S::Idle)) {
                return (seq, r, at(t), sample(st.wrapping_add(25), 9.0, 2.0));
            }
            seq.on_weight(at(t), r);
        }
        seq.on_tick(at(t));
        assert!(t < 60.0, "the shot never reached its stop");
    }
}

fn percentiles(label: &str, mut ns: Vec<u128>) {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: p50 {} ns, p99 {} ns, max {} ns ({} calls)",
        p(0.5),
        p(0.99),
        ns[ns.len() - 1],
        ns.len()
    );
}

fn bench(c: &mut Criterion) {
    let (seq, crossing, at, next_sample) = armed();
    let ordinary = WeightReading {
        arrival: crossing.arrival - Duration::from_millis(100),
        grams: crossing.grams - 0.2,
    };

    // Single-call distribution (each on a fresh copy of the armed sequencer).
    let mut crossing_ns = Vec::with_capacity(20_000);
    let mut ordinary_ns = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let mut s = seq.clone();
        let start = Instant::now();
        let out = s.on_weight(at, black_box(crossing));
        let d = start.elapsed();
        assert!(out.contains(&Action::RequestState(S::Idle)));
        crossing_ns.push(d.as_nanos());
        black_box(out);

        let mut s = seq.clone();
        let start = Instant::now();
        let out = s.on_weight(at - Duration::from_millis(100), black_box(ordinary));
        ordinary_ns.push(start.elapsed().as_nanos());
        black_box(out);
    }
    percentiles("stop decision (report → RequestState(Idle))", crossing_ns);
    percentiles("ordinary weight report", ordinary_ns);

    c.bench_function(
        "stop decision: crossing report to RequestState(Idle)",
        |b| {
            b.iter_batched(
                || seq.clone(),
                |mut s| s.on_weight(at, black_box(crossing)),
                BatchSize::SmallInput,
            )
        },
    );
    c.bench_function("ordinary weight report (armed)", |b| {
        b.iter_batched(
            || seq.clone(),
            |mut s| s.on_weight(at - Duration::from_millis(100), black_box(ordinary)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("shot sample (armed, volumes)", |b| {
        b.iter_batched(
            || seq.clone(),
            |mut s| s.on_shot_sample(at, black_box(&next_sample)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
