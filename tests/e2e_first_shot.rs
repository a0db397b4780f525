//! A newcomer's first shot, exactly as `docs/quick-start.md` pulls it.

use std::time::Duration;

use serde_json::Value;

use crate::support::{De1d, GATES, TARGET_WEIGHT};

/// Where a (state, substate) belongs in an espresso shot: heating, preinfusion, pour,
/// ending, back to Idle.
fn step(state: &str, substate: &str) -> Option<u8> {
    match (state, substate) {
        ("Espresso", "HeatWaterTank" | "HeatWaterHeater" | "StabilizeMixTemp") => Some(0),
        ("Espresso", "PreInfuse") => Some(1),
        ("Espresso", "Pour") => Some(2),
        ("Espresso", "Flush") => Some(3),
        ("Idle", _) => Some(4),
        _ => None,
    }
}

#[test]
fn first_shot_stops_at_weight_and_streams_every_step_over_mqtt() {
    let de1d = De1d::start(&[]);
    de1d.wait_ready();
    let from = de1d.start_shot();
    let shot = de1d.wait_shot_end(from, Duration::from_secs(45), Duration::from_millis(1200));
    let diag = de1d.diagnostics();

    // The machine went Idle → Espresso (heat, stabilise) → preinfuse → pour → ending →
    // Idle, in that order and nothing else.
    let first = shot
        .of_class("StateUpdate")
        .next()
        .expect("no StateUpdate")
        .json();
    assert_eq!(
        (first["previous_state"].as_str(), first["state"].as_str()),
        (Some("Idle"), Some("Espresso")),
        "{first}"
    );
    let states = shot.states();
    let steps: Vec<u8> = states
        .iter()
        .map(|(s, ss)| step(s, ss).unwrap_or_else(|| panic!("unexpected {s},{ss} in {states:?}")))
        .collect();
    assert!(
        steps.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {states:?}"
    );
    assert_eq!(
        {
            let mut d = steps.clone();
            d.dedup();
            d
        },
        vec![0, 1, 2, 3, 4],
        "a step is missing: {states:?}"
    );
    assert_eq!(steps.last(), Some(&4), "{states:?}");
    let state = de1d.get("/de1/state").json();
    assert_eq!(state["state"]["state"], "Idle", "{state}");

    // Gates: all cleared at the start in the spec's order, then each set once, in the
    // spec's order (flow state exit and last drops may come either way round).
    let gates = shot.gates();
    let clears: Vec<&str> = gates
        .iter()
        .take(8)
        .filter(|(_, a, _)| a == "clear")
        .map(|(n, _, _)| n.as_str())
        .collect();
    assert_eq!(clears, GATES, "{gates:?}");
    let sets: Vec<&str> = gates
        .iter()
        .filter(|(_, a, _)| a == "set")
        .map(|(n, _, _)| n.as_str())
        .collect();
    for g in GATES {
        assert_eq!(
            sets.iter().filter(|n| **n == g).count(),
            1,
            "{g} not set exactly once: {sets:?}"
        );
    }
    let pos = |g: &str| sets.iter().position(|n| *n == g).unwrap_or(usize::MAX);
    for (a, b) in [
        ("sequence_start", "sequence_flow_begin"),
        ("sequence_flow_begin", "sequence_expect_drops"),
        ("sequence_expect_drops", "sequence_exit_preinfuse"),
        ("sequence_exit_preinfuse", "sequence_flow_end"),
        ("sequence_flow_end", "sequence_flow_state_exit"),
        ("sequence_flow_end", "sequence_last_drops"),
        ("sequence_flow_state_exit", "sequence_complete"),
        ("sequence_last_drops", "sequence_complete"),
    ] {
        assert!(pos(a) < pos(b), "{a} after {b}: {sets:?}");
    }
    // The gates follow the StateUpdates that cause them.
    let index_of = |pred: &dyn Fn(&crate::support::Msg) -> bool| {
        shot.msgs.iter().position(pred).unwrap_or(usize::MAX)
    };
    for (substate, gate) in [
        ("PreInfuse", "sequence_flow_begin"),
        ("Pour", "sequence_exit_preinfuse"),
        ("Flush", "sequence_flow_end"),
        ("NoState", "sequence_flow_state_exit"),
    ] {
        let s = index_of(&|m| m.class() == "StateUpdate" && m.str_field("substate") == substate);
        let g = index_of(&|m| {
            m.class() == "SequencerGateNotification"
                && m.str_field("name") == gate
                && m.str_field("action") == "set"
        });
        assert!(s < g, "{gate} published before the {substate} StateUpdate");
    }
    // Last drops: 3 s (the default last_drops_minimum_time) after the flow ended.
    let wait = shot.gate_set("sequence_last_drops").unwrap_or(f64::NAN)
        - shot.gate_set("sequence_flow_end").unwrap_or(f64::NAN);
    assert!(
        (2.9..=3.6).contains(&wait),
        "last drops {wait:.2} s after flow end"
    );

    // Stop-at-weight: armed when drops are expected, triggered a little before 36 g,
    // and the drops still falling bring the cup to 36 g.
    let stop_ats = shot.stop_ats();
    let enabled = stop_ats
        .iter()
        .position(|(w, a, t, _)| w == "weight" && a == "enabled" && *t == Some(TARGET_WEIGHT));
    let triggered = stop_ats
        .iter()
        .position(|(w, a, _, _)| w == "weight" && a == "triggered");
    assert!(
        enabled.is_some() && enabled < triggered,
        "stop-at-weight not enabled before it triggered: {stop_ats:?}"
    );
    shot.assert_stopped_at_weight(TARGET_WEIGHT, &diag);

    // Samples at the DE1's pace.
    shot.assert_sample_pace(Duration::from_millis(1000));

    // Volumes count this shot only, grow, and match the flow over time.
    let samples = shot.samples();
    let vol = |s: &Value, k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    assert_eq!(vol(&samples[0], "volume_total"), 0.0, "{}", samples[0]);
    for w in samples.windows(2) {
        assert!(
            vol(&w[1], "volume_total") >= vol(&w[0], "volume_total"),
            "volume went down: {} then {}",
            w[0],
            w[1]
        );
    }
    let last = &samples[samples.len() - 1];
    for k in ["volume_preinfuse", "volume_pour", "volume_total"] {
        assert!(vol(last, k) > 0.0, "{k} is zero: {last}");
    }
    assert!(
        (vol(last, "volume_preinfuse") + vol(last, "volume_pour") - vol(last, "volume_total"))
            .abs()
            < 0.01,
        "{last}"
    );
    let by_frames: f64 = last["volume_by_frames"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).sum())
        .unwrap_or(f64::NAN);
    assert!(
        (by_frames - vol(last, "volume_total")).abs() < 0.01,
        "{last}"
    );
    // The flow integrated over the wall clock, while water flowed.
    let (t0, t1) = (
        shot.gate_set("sequence_flow_begin").unwrap_or(f64::NAN),
        shot.gate_set("sequence_flow_end").unwrap_or(f64::NAN),
    );
    let flowing: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| Some((s["arrival_time"].as_f64()?, s["group_flow"].as_f64()?)))
        .filter(|(t, _)| *t >= t0 && *t <= t1)
        .collect();
    let integral: f64 = flowing
        .windows(2)
        .map(|w| 0.5 * (w[0].1 + w[1].1) * (w[1].0 - w[0].0))
        .sum();
    let total = vol(last, "volume_total");
    eprintln!("volume: {total:.1} mL reported, {integral:.1} mL from the flow samples");
    assert!(
        (total - integral).abs() <= 0.1 * integral,
        "volume_total {total:.1} mL, but the flow over time gives {integral:.1} mL"
    );
}
