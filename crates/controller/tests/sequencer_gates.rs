//! Gates per mode, their order and timing, and how sequences end (synthetic reports on
//! a virtual clock).

mod sequencer_support;

use controller::sequencer::{HotWaterRinseControl, SequencerSettings, SteamControl};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use ipc_schema::event::{AutoTareAction, Event, Gate, GateAction, StopAtAction, StopAtKind};
use sequencer_support::synth::Synth;

/// Idle, scale reporting zero.
fn ready(settings: SequencerSettings) -> Synth {
    let mut s = Synth::new(settings);
    s.scale();
    s.state(S::Idle, Sub::NoState);
    for _ in 0..5 {
        s.advance(0.1);
        s.weight(0.0);
    }
    s
}

/// Run `secs` of a flow with DE1 samples every 0.25 s and scale reports every 0.1 s.
fn flow(s: &mut Synth, secs: f64, pressure: f64, flow: f64, grams_per_s: f64, w0: &mut f64) {
    let steps = (secs / 0.05).round() as usize;
    for i in 1..=steps {
        s.advance(0.05);
        if matches!(i % 2, 0) {
            *w0 += grams_per_s * 0.1;
            s.weight((*w0 * 10.0).round() / 10.0);
        }
        if matches!(i % 5, 0) {
            s.sample(pressure, flow);
        }
    }
}

fn cleared_then_set(s: &Synth) -> Vec<(Gate, GateAction)> {
    s.gates().into_iter().map(|g| (g.0, g.1)).collect()
}

#[test]
fn espresso_gates_in_order_with_three_seconds_of_last_drops() {
    let mut s = ready(SequencerSettings::default());
    let mut w = 0.0;
    s.state(S::Espresso, Sub::HeatWaterHeater);
    flow(&mut s, 1.0, 0.0, 0.0, 0.0, &mut w);
    s.state(S::Espresso, Sub::StabilizeMixTemp);
    flow(&mut s, 1.0, 0.0, 0.0, 0.0, &mut w);
    s.state(S::Espresso, Sub::PreInfuse);
    flow(&mut s, 5.0, 3.0, 4.0, 0.5, &mut w);
    s.state(S::Espresso, Sub::Pour);
    flow(&mut s, 10.0, 9.0, 2.0, 2.0, &mut w);
    s.state(S::Espresso, Sub::Flush);
    flow(&mut s, 2.0, 0.0, 0.0, 0.1, &mut w);
    s.state(S::Idle, Sub::NoState);
    flow(&mut s, 3.0, 0.0, 0.0, 0.0, &mut w);

    let gates = cleared_then_set(&s);
    let mut expected: Vec<(Gate, GateAction)> =
        Gate::ALL.iter().map(|g| (*g, GateAction::Clear)).collect();
    expected.extend(
        [
            Gate::SequenceStart,
            Gate::FlowBegin,
            Gate::ExpectDrops,
            Gate::ExitPreinfuse,
            Gate::FlowEnd,
            Gate::FlowStateExit,
            Gate::LastDrops,
            Gate::SequenceComplete,
        ]
        .map(|g| (g, GateAction::Set)),
    );
    assert_eq!(gates, expected);
    // One sequence id throughout, and the sequencer reports it.
    let ids: Vec<_> = s.gates().iter().map(|g| g.2).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(s.seq.sequence_id(), Some(ids[0]));
    assert_eq!(s.seq.active_state(), Some(S::Espresso));
    assert!(!s.seq.is_sequence_running());
    // Last drops: 3.0 s after the flow ended (ticks every 50 ms).
    let wait = s.gate_time(Gate::LastDrops).unwrap() - s.gate_time(Gate::FlowEnd).unwrap();
    assert!((wait - 3.0).abs() < 0.051, "{wait}");
    // The first sample with pressure after the flow began expects the drops.
    let drops = s.gate_time(Gate::ExpectDrops).unwrap() - s.gate_time(Gate::FlowBegin).unwrap();
    assert!(drops > 0.0 && drops <= 0.25, "{drops}");
}

#[test]
fn espresso_start_announcements_follow_pyde1_order() {
    let mut s = ready(SequencerSettings::default());
    s.state(S::Espresso, Sub::HeatWaterHeater);
    let order: Vec<String> = s
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::StopAtNotification(n) => Some(format!("{:?} {:?}", n.stop_at, n.action)),
            Event::AutoTareNotification(a) => Some(format!("AutoTare {:?}", a.action)),
            Event::SequencerGateNotification(g) if g.action == GateAction::Set => {
                Some(format!("{:?}", g.name))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        [
            "Volume Disabled",
            "AutoTare Enabled",
            "Weight Disabled",
            "MoveOnByWeight Disabled",
            "Time Disabled",
            "SteamToTemperature Disabled",
            "SequenceStart",
        ]
    );
    // Auto-tare tares at once.
    assert_eq!(s.tares(), 1);
}

#[test]
fn steam_gates_without_drops_and_a_de1_controlled_time() {
    let mut s = ready(SequencerSettings {
        steam: SteamControl {
            stop_at_time: Some(30.0),
            disable_auto_tare: false,
        },
        ..SequencerSettings::default()
    });
    let mut w = 0.0;
    s.state(S::Steam, Sub::HeatWaterHeater);
    flow(&mut s, 1.0, 0.0, 0.0, 0.0, &mut w);
    s.state(S::Steam, Sub::Steaming);
    flow(&mut s, 5.0, 2.0, 0.8, 0.0, &mut w);
    s.state(S::Steam, Sub::SteamPuff);
    flow(&mut s, 1.0, 0.0, 0.0, 0.0, &mut w);
    let flow_end = s.gate_time(Gate::FlowEnd).unwrap();
    assert_eq!(
        s.gate_time(Gate::LastDrops),
        Some(flow_end),
        "no wait in steam"
    );
    s.state(S::Idle, Sub::NoState);
    assert_eq!(
        s.gate_sets(),
        [
            Gate::SequenceStart,
            Gate::FlowBegin,
            Gate::FlowEnd,
            Gate::LastDrops,
            Gate::FlowStateExit,
            Gate::SequenceComplete
        ]
    );
    let time = s.stop_at(StopAtKind::Time, StopAtAction::De1Controlled);
    assert_eq!(time.len(), 1);
    assert_eq!(time[0].target_value, Some(30.0));
    assert_eq!(s.auto_tare(), [AutoTareAction::Disabled]);
    assert_eq!(s.tares(), 0);
    assert!(s.requests(S::Idle).is_empty());
}

#[test]
fn hot_water_tares_until_the_pour_then_arms_stop_at_weight() {
    let mut settings = SequencerSettings::default();
    settings.hot_water.stop_at_weight = Some(100.0);
    let mut s = ready(settings);
    let mut w = 0.0;
    s.state(S::HotWater, Sub::HeatWaterHeater);
    flow(&mut s, 1.0, 0.0, 0.0, 0.0, &mut w);
    s.state(S::HotWater, Sub::Pour);
    flow(&mut s, 2.0, 0.5, 5.0, 4.5, &mut w);
    s.state(S::Idle, Sub::NoState);
    assert_eq!(
        s.gate_sets(),
        [
            Gate::SequenceStart,
            Gate::FlowBegin,
            Gate::FlowEnd,
            Gate::LastDrops,
            Gate::FlowStateExit,
            Gate::SequenceComplete
        ]
    );
    assert_eq!(
        s.auto_tare(),
        [AutoTareAction::Enabled, AutoTareAction::Disabled]
    );
    let enabled = s.stop_at(StopAtKind::Weight, StopAtAction::Enabled);
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].target_value, Some(100.0));
}

#[test]
fn flush_on_old_firmware_is_timed_here_once() {
    let mut s = ready(SequencerSettings {
        hot_water_rinse: HotWaterRinseControl {
            stop_at_time: Some(2.0),
            disable_auto_tare: false,
        },
        ..SequencerSettings::default()
    });
    s.seq.set_firmware_build(Some(1260));
    let mut w = 0.0;
    s.state(S::HotWaterRinse, Sub::Pour);
    let begin = s.gate_time(Gate::FlowBegin).unwrap();
    flow(&mut s, 2.0, 0.5, 6.0, 0.0, &mut w);
    let stops = s.requests(S::Idle);
    assert_eq!(stops.len(), 1, "{stops:?}");
    // Stop lead 0.1 s: the request goes 1.9 s after the flow began.
    assert!(
        (stops[0] - begin - 1.9).abs() < 0.051,
        "{}",
        stops[0] - begin
    );
    let trig = s.stop_at(StopAtKind::Time, StopAtAction::Triggered);
    assert_eq!(trig.len(), 1);
    assert_eq!(trig[0].target_value, Some(2.0));
    s.state(S::Idle, Sub::NoState);
    flow(&mut s, 2.0, 0.0, 0.0, 0.0, &mut w);
    assert_eq!(s.requests(S::Idle).len(), 1);
    // Announced off at the start (old firmware: no DE1 timer) and again at flow end.
    let time: Vec<_> = s
        .stop_ats()
        .into_iter()
        .filter(|n| n.stop_at == StopAtKind::Time)
        .map(|n| n.action)
        .collect();
    assert_eq!(
        time,
        [
            StopAtAction::Disabled,
            StopAtAction::Enabled,
            StopAtAction::Triggered,
            StopAtAction::Disabled
        ]
    );
    assert_eq!(s.gate_sets().last(), Some(&Gate::SequenceComplete));

    // Current firmware times the flush itself.
    let mut s = ready(SequencerSettings {
        hot_water_rinse: HotWaterRinseControl {
            stop_at_time: Some(2.0),
            disable_auto_tare: false,
        },
        ..SequencerSettings::default()
    });
    s.seq.set_firmware_build(Some(1333));
    s.state(S::HotWaterRinse, Sub::Pour);
    flow(&mut s, 3.0, 0.5, 6.0, 0.0, &mut w);
    assert!(s.requests(S::Idle).is_empty());
    let de1 = s.stop_at(StopAtKind::Time, StopAtAction::De1Controlled);
    assert_eq!(de1.len(), 1);
    assert_eq!(de1[0].target_value, Some(2.0));
}

#[test]
fn leaving_before_the_flow_completes_at_once() {
    let mut s = ready(SequencerSettings::default());
    s.state(S::Espresso, Sub::HeatWaterHeater);
    s.advance(1.0);
    s.state(S::Idle, Sub::NoState);
    assert_eq!(
        s.gate_sets(),
        [
            Gate::SequenceStart,
            Gate::FlowStateExit,
            Gate::SequenceComplete
        ]
    );
    // Nothing was armed, so nothing is announced as disarmed; the hold is released.
    assert!(s
        .stop_ats()
        .iter()
        .all(|n| n.action == StopAtAction::Disabled && n.current_frame.is_none()));
    assert_eq!(
        s.auto_tare(),
        [AutoTareAction::Enabled, AutoTareAction::Disabled]
    );
}

#[test]
fn a_new_sequence_completes_the_previous_one_first() {
    let mut s = ready(SequencerSettings::default());
    let mut w = 0.0;
    s.state(S::Espresso, Sub::Pour);
    flow(&mut s, 2.0, 9.0, 2.0, 2.0, &mut w);
    s.state(S::Idle, Sub::NoState);
    s.advance(1.0); // within the 3 s of last drops
    let first = s.seq.sequence_id().unwrap();
    s.state(S::HotWater, Sub::Pour);
    let second = s.seq.sequence_id().unwrap();
    assert_ne!(first, second);
    let g = s.gates();
    let complete = g
        .iter()
        .position(|x| x.0 == Gate::SequenceComplete && x.1 == GateAction::Set)
        .unwrap();
    assert_eq!(g[complete].2, first);
    let first_clear_of_second = g.iter().position(|x| x.2 == second).unwrap();
    assert!(complete < first_clear_of_second);
    // The first sequence never got its last drops.
    assert!(!g
        .iter()
        .any(|x| x.0 == Gate::LastDrops && x.1 == GateAction::Set && x.2 == first));
}

#[test]
fn the_watchdog_completes_a_stuck_sequence() {
    let mut s = ready(SequencerSettings::default());
    s.state(S::Espresso, Sub::Pour);
    let start = s.t;
    let due = s.seq.next_deadline().expect("a deadline");
    assert!((due - s.now()).as_secs_f64() <= 270.0);
    for _ in 0..2800 {
        s.advance(0.1);
    }
    let done = s.gate_time(Gate::SequenceComplete).unwrap();
    assert!((done - start - 270.0).abs() < 0.11, "{}", done - start);
    assert!(!s.seq.is_sequence_running());
}

#[test]
fn losing_the_de1_ends_the_sequence() {
    let mut s = ready(SequencerSettings::default());
    s.state(S::Espresso, Sub::Pour);
    let now = s.now();
    let a = s.seq.on_de1_disconnected(now);
    assert!(a.iter().any(|a| matches!(a,
        controller::sequencer::Action::Emit(Event::SequencerGateNotification(g))
            if g.name == Gate::SequenceComplete && g.action == GateAction::Set)));
    // A flow state reported after reconnecting starts a new sequence.
    let before = s.seq.sequence_id();
    s.state(S::Espresso, Sub::Pour);
    assert_ne!(s.seq.sequence_id(), before);
    assert!(s.seq.is_sequence_running());
}

#[test]
fn repeated_state_reports_change_nothing() {
    let mut s = ready(SequencerSettings::default());
    s.state(S::Espresso, Sub::PreInfuse);
    let n = s.gates().len();
    s.state(S::Espresso, Sub::PreInfuse);
    s.state(S::Espresso, Sub::PreInfuse);
    assert_eq!(s.gates().len(), n);
}
