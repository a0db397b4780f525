//! Espresso through the BLE seam: the profile executor and the hydraulics must produce
//! the physical facts a real machine shows.

mod common;

use std::time::Duration;

use common::{profile, step, Harness};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{MainsHz, SimConfig};
use serde_json::json;

fn cfg() -> SimConfig {
    SimConfig::default()
}

/// Seconds between two sample counters (mains half-cycles), across a wrap.
fn secs(from: u16, to: u16, hz: f64) -> f64 {
    f64::from(to.wrapping_sub(from)) / (2.0 * hz)
}

#[tokio::test(start_paused = true)]
async fn pressure_and_flow_set_values_are_reached() {
    let h = Harness::new(cfg()).await;
    let mut pre = step("flow", 4.0, 10.0);
    pre["exit"] = json!({"type": "pressure", "condition": "over", "value": 3.0});
    h.upload(&profile(
        vec![pre, step("pressure", 9.0, 15.0), step("flow", 2.0, 15.0)],
        1,
    ))
    .await;
    h.pull_shot(Duration::from_secs(90)).await;
    let tl = h.timeline();
    let frame = |n: u8| {
        tl.iter()
            .filter(|(_, st, sub, s)| {
                *st == S::Espresso
                    && matches!(sub, Sub::PreInfuse | Sub::Pour)
                    && s.frame_number == n
            })
            .map(|x| (x.2, x.3.values()))
            .collect::<Vec<_>>()
    };
    let (f0, f1, f2) = (frame(0), frame(1), frame(2));
    assert!(!f0.is_empty() && f1.len() > 50 && f2.len() > 50);
    // Preinfusion frames report PreInfuse, the others Pour.
    assert!(f0.iter().all(|(sub, _)| *sub == Sub::PreInfuse));
    assert!(f1.iter().chain(&f2).all(|(sub, _)| *sub == Sub::Pour));
    // The last 5 s of the 9-bar frame sit at 9 bar.
    for (_, v) in &f1[f1.len() - 20..] {
        assert!((v.group_pressure - 9.0).abs() < 0.1, "{}", v.group_pressure);
        assert_eq!(v.set_group_pressure, 9.0);
    }
    // The last 5 s of the 2 mL/s frame deliver 2 mL/s.
    for (_, v) in &f2[f2.len() - 20..] {
        assert!((v.group_flow - 2.0).abs() < 0.05, "{}", v.group_flow);
        assert_eq!(v.set_group_flow, 2.0);
    }
    // Plausible physics: a puck passes 1.5–3.5 mL/s at 9 bar; temperatures near 92 °C.
    let flow9 = f1[f1.len() - 1].1.group_flow;
    assert!((1.5..3.5).contains(&flow9), "{flow9}");
    for (_, v) in f1.iter().chain(&f2).skip(30) {
        assert!((v.head_temp - 92.0).abs() < 1.5, "head {}", v.head_temp);
        assert!(v.mix_temp > 90.0 && v.mix_temp < 96.0, "mix {}", v.mix_temp);
    }
}

#[tokio::test(start_paused = true)]
async fn a_pressure_limiter_holds_a_flow_frame() {
    let h = Harness::new(cfg()).await;
    let mut pre = step("flow", 4.0, 10.0);
    pre["exit"] = json!({"type": "pressure", "condition": "over", "value": 3.0});
    let mut main = step("flow", 4.0, 20.0);
    main["limiter"] = json!({"value": 5.0, "range": 0.5});
    h.upload(&profile(vec![pre, main], 1)).await;
    h.pull_shot(Duration::from_secs(60)).await;
    let tl = h.timeline();
    let f1: Vec<_> = tl
        .iter()
        .filter(|x| x.2 == Sub::Pour && x.3.frame_number == 1)
        .map(|x| x.3.values())
        .collect();
    assert!(f1.len() > 60);
    for v in &f1[f1.len() - 20..] {
        assert!(
            (v.group_pressure - 5.0).abs() < 0.15,
            "{}",
            v.group_pressure
        );
        assert!(
            v.group_flow < 3.0,
            "limiter must hold the flow: {}",
            v.group_flow
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_frame_exits_on_the_first_sample_past_its_condition() {
    let h = Harness::new(cfg()).await;
    // A slow flow makes the pressure creep up (≈0.1 bar per sample near the trigger),
    // so a late exit would show in the samples.
    let mut pre = step("flow", 1.0, 60.0);
    pre["exit"] = json!({"type": "pressure", "condition": "over", "value": 3.0});
    h.upload(&profile(vec![pre, step("pressure", 6.0, 5.0)], 1))
        .await;
    h.pull_shot(Duration::from_secs(120)).await;
    let run: Vec<_> = h
        .timeline()
        .into_iter()
        .filter(|x| matches!(x.2, Sub::PreInfuse | Sub::Pour))
        .map(|x| x.3.values())
        .collect();
    let first1 = run
        .iter()
        .position(|v| v.frame_number == 1)
        .expect("frame 1");
    // No sample shows frame 0 past its exit condition …
    assert!(run[..first1].iter().all(|v| v.group_pressure <= 3.0));
    // … it exited as soon as it got there: the last frame-0 sample was just short of
    // the trigger and the first frame-1 sample is past it.
    let last0 = run[first1 - 1].group_pressure;
    assert!(last0 > 2.8, "{last0}");
    assert!(
        run[first1].group_pressure > 3.0,
        "{}",
        run[first1].group_pressure
    );
    assert!(
        run[first1].group_pressure < 3.3,
        "{}",
        run[first1].group_pressure
    );
}

#[tokio::test(start_paused = true)]
async fn a_flow_over_exit_ends_a_filling_pressure_frame_at_once() {
    let h = Harness::new(cfg()).await;
    let mut fill = step("pressure", 9.0, 10.0);
    fill["exit"] = json!({"type": "flow", "condition": "over", "value": 5.0});
    h.upload(&profile(vec![fill, step("pressure", 9.0, 5.0)], 0))
        .await;
    h.pull_shot(Duration::from_secs(60)).await;
    let run: Vec<_> = h
        .timeline()
        .into_iter()
        .filter(|x| x.2 == Sub::Pour)
        .map(|x| x.3.values())
        .collect();
    // The pump fills the basket at full flow (> 5 mL/s) within the first sample.
    assert!(run.iter().take_while(|v| v.frame_number == 0).count() <= 1);
    assert_eq!(run[1].frame_number, 1);
}

async fn frames_only_duration(mains: MainsHz) {
    let hz = f64::from(mains.hz());
    let h = Harness::new(SimConfig { mains, ..cfg() }).await;
    h.upload(&profile(
        vec![
            step("flow", 4.0, 2.0),
            step("pressure", 6.0, 5.0),
            step("flow", 2.0, 3.5),
        ],
        1,
    ))
    .await;
    h.pull_shot(Duration::from_secs(60)).await;
    let states = h.states();
    let start = states
        .iter()
        .find(|(_, s)| s.substate == Sub::PreInfuse)
        .expect("preinfusion")
        .0;
    let end = states
        .iter()
        .find(|(_, s)| s.substate == Sub::Flush)
        .expect("ending")
        .0;
    let wall = (end - start).as_secs_f64();
    assert!((wall - 10.5).abs() <= 1.0 / (2.0 * hz) + 1e-6, "{wall}");
    // Counted the way a client does, with SampleTime.
    let tl = h.timeline();
    let run: Vec<_> = tl
        .iter()
        .filter(|x| matches!(x.2, Sub::PreInfuse | Sub::Pour))
        .collect();
    let first = run.first().unwrap().3.sample_time;
    let after = tl.iter().find(|x| x.2 == Sub::Flush).unwrap().3.sample_time;
    let by_counter = secs(first, after, hz);
    let period = 25.0 / (2.0 * hz);
    assert!((by_counter - 10.5).abs() <= period + 1e-9, "{by_counter}");
    // Frame indexes follow the profile: 0 for 2 s, 1 for 5 s, 2 for 3.5 s.
    let count = |n: u8| run.iter().filter(|x| x.3.frame_number == n).count() as f64 * period;
    assert!((count(0) - 2.0).abs() <= period + 1e-9, "{}", count(0));
    assert!((count(1) - 5.0).abs() <= period + 1e-9, "{}", count(1));
    assert!((count(2) - 3.5).abs() <= period + 1e-9, "{}", count(2));
}

#[tokio::test(start_paused = true)]
async fn a_frames_only_profile_lasts_the_sum_of_its_frames_50hz() {
    frames_only_duration(MainsHz::Hz50).await;
}

#[tokio::test(start_paused = true)]
async fn a_frames_only_profile_lasts_the_sum_of_its_frames_60hz() {
    frames_only_duration(MainsHz::Hz60).await;
}

#[tokio::test(start_paused = true)]
async fn a_volume_limit_ends_its_frame() {
    let h = Harness::new(cfg()).await;
    let mut f0 = step("flow", 4.0, 60.0);
    f0["volume"] = json!(20);
    h.upload(&profile(vec![f0, step("pressure", 6.0, 3.0)], 0))
        .await;
    h.pull_shot(Duration::from_secs(90)).await;
    let run: Vec<_> = h
        .timeline()
        .into_iter()
        .filter(|x| x.2 == Sub::Pour)
        .map(|x| x.3.values())
        .collect();
    // Integrate GroupFlow over frame 0 as a client does (Δt = 25 / 100 s).
    let v0: f64 = run
        .iter()
        .filter(|v| v.frame_number == 0)
        .map(|v| v.group_flow * 0.25)
        .sum();
    assert!((v0 - 20.0).abs() < 1.2, "{v0}");
    let t0 = run.iter().filter(|v| v.frame_number == 0).count() as f64 * 0.25;
    assert!((t0 - 5.0).abs() < 0.6, "{t0}");
    assert!(run.iter().any(|v| v.frame_number == 1));
}

#[tokio::test(start_paused = true)]
async fn the_tank_drops_by_the_water_delivered() {
    let c = cfg();
    let ml_per_mm = c.water.ml_per_mm;
    let h = Harness::new(c).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 8.0), step("pressure", 9.0, 20.0)],
        1,
    ))
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = h.water_levels().last().unwrap().level.to_f64();
    h.clear();
    h.pull_shot(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = h.water_levels().last().unwrap().level.to_f64();
    let delivered: f64 = h
        .samples()
        .iter()
        .map(|(_, s)| s.values().group_flow * 0.25)
        .sum();
    let drop_ml = (before - after) * ml_per_mm;
    assert!(delivered > 50.0, "{delivered}");
    assert!(
        (drop_ml - delivered).abs() < 0.03 * delivered + 1.0,
        "tank dropped {drop_ml} mL, samples say {delivered} mL"
    );
}

#[tokio::test(start_paused = true)]
async fn smooth_frames_ramp_the_set_value() {
    let h = Harness::new(cfg()).await;
    let mut decline = step("pressure", 5.0, 10.0);
    decline["transition"] = json!("smooth");
    h.upload(&profile(vec![step("pressure", 9.0, 8.0), decline], 0))
        .await;
    h.pull_shot(Duration::from_secs(60)).await;
    let f1: Vec<_> = h
        .timeline()
        .into_iter()
        .filter(|x| x.2 == Sub::Pour && x.3.frame_number == 1)
        .map(|x| x.3.values())
        .collect();
    assert!(f1.len() >= 38);
    let mid = f1[f1.len() / 2].set_group_pressure;
    assert!((mid - 7.0).abs() < 0.3, "{mid}");
    assert!(f1
        .windows(2)
        .all(|w| w[1].set_group_pressure <= w[0].set_group_pressure));
    let last = f1.last().unwrap();
    assert!(
        (last.group_pressure - 5.0).abs() < 0.5,
        "{}",
        last.group_pressure
    );
}

#[tokio::test(start_paused = true)]
async fn skip_to_next_and_stop() {
    let h = Harness::new(cfg()).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 30.0), step("pressure", 9.0, 30.0)],
        1,
    ))
    .await;
    h.request(S::Espresso).await;
    h.control
        .wait_for(Duration::from_secs(20), |s| {
            s.de1.substate == Sub::PreInfuse
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.request(S::SkipToNext).await;
    let s = h.control.snapshot();
    assert_eq!((s.de1.substate, s.de1.frame), (Sub::Pour, 1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Stop: ending (Flush) first, then Idle.
    h.request(S::Idle).await;
    assert_eq!(h.control.snapshot().de1.substate, Sub::Flush);
    h.wait_state(S::Idle, Duration::from_secs(10)).await;
    let seq: Vec<Sub> = h.states().iter().map(|(_, s)| s.substate).collect();
    let pour = seq.iter().position(|s| *s == Sub::Pour).unwrap();
    assert_eq!(&seq[pour..pour + 3], &[Sub::Pour, Sub::Flush, Sub::NoState]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_before_water_flows_returns_to_idle_without_ending() {
    let h = Harness::new(cfg()).await;
    h.upload(&profile(vec![step("flow", 4.0, 30.0)], 1)).await;
    h.request(S::Espresso).await;
    assert_eq!(h.control.snapshot().de1.substate, Sub::HeatWaterHeater);
    h.request(S::Idle).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let seq: Vec<_> = h
        .states()
        .iter()
        .map(|(_, s)| (s.state, s.substate))
        .collect();
    assert_eq!(
        seq,
        vec![(S::Espresso, Sub::HeatWaterHeater), (S::Idle, Sub::NoState)]
    );
}

#[tokio::test(start_paused = true)]
async fn the_tail_total_volume_ends_the_shot() {
    use de1_protocol::fixed::U10P0;
    use de1_protocol::packets::{FrameWrite, TailFrame};
    let h = Harness::new(cfg()).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 5.0), step("flow", 2.0, 60.0)],
        1,
    ))
    .await;
    // Replace de1d's all-zero tail with a 30 mL total that ignores preinfusion.
    let tail = FrameWrite::Tail {
        index: 2,
        frame: TailFrame {
            max_total_volume: U10P0::from_f64(30.0, U10P0::FLAG_IGNORE_PREINFUSION).unwrap(),
        },
    };
    h.write(
        de1_protocol::characteristic::Characteristic::FrameWrite,
        &tail.encode(),
    )
    .await;
    h.pull_shot(Duration::from_secs(90)).await;
    let pour: f64 = h
        .timeline()
        .into_iter()
        .filter(|x| x.2 == Sub::Pour)
        .map(|x| x.3.values().group_flow * 0.25)
        .sum();
    assert!((pour - 30.0).abs() < 1.0, "{pour}");
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_bytes() {
    async fn record(seed: u64) -> Vec<Vec<u8>> {
        let h = Harness::new(SimConfig { seed, ..cfg() }).await;
        h.upload(&profile(
            vec![step("flow", 4.0, 4.0), step("pressure", 9.0, 6.0)],
            1,
        ))
        .await;
        h.pull_shot(Duration::from_secs(60)).await;
        h.notes().into_iter().map(|n| n.value).collect()
    }
    let a = record(5).await;
    assert_eq!(a, record(5).await);
    assert_ne!(a, record(6).await);
}
