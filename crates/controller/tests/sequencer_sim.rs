//! The sequencer driving the simulated DE1 and Skale II through the `ble` traits with
//! paused tokio time: scale faults during a shot, no scale, move-on-by-weight, volumes,
//! scale buttons.

mod sequencer_support;

use std::time::Duration;

use controller::sequencer::{Action, SequencerSettings};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{ShotPoint, SimConfig, SimDevice};
use ipc_schema::event::{Event, Gate, GateAction, StopAtAction, StopAtKind};
use sequencer_support::{sim, stock_profile, RecordKind, Rig};

async fn rig_for(cfg: SimConfig, profile: &str, target: Option<f64>) -> Rig {
    let mut rig = Rig::new(cfg, SequencerSettings::default()).await;
    rig.upload(&stock_profile(profile)).await;
    let mut esp = rig.seq.espresso_control().clone();
    esp.stop_at_weight = target;
    esp.stop_at_volume = None;
    rig.seq.set_espresso_control(esp).expect("valid");
    rig
}

async fn run_to_weight(rig: &mut Rig, grams: f64) {
    let ok = rig
        .run_until(Duration::from_secs(120), |r| {
            r.scale_weight().is_some_and(|w| w >= grams && w < 500.0)
        })
        .await;
    assert!(ok, "never reached {grams} g");
}

async fn finish(rig: &mut Rig) {
    let from = rig.log.len();
    let ok = rig
        .run_until(Duration::from_secs(300), |r| {
            r.log[from..].iter().any(|rec| {
                matches!(&rec.kind, RecordKind::Action(Action::Emit(Event::SequencerGateNotification(g)))
                    if g.name == Gate::SequenceComplete && g.action == GateAction::Set)
            })
        })
        .await;
    assert!(ok, "the sequence did not complete");
}

#[tokio::test(start_paused = true)]
async fn a_1649_gram_reading_mid_shot_is_ignored() {
    let mut rig = rig_for(sim(11), "londonium", Some(42.0)).await;
    rig.request(S::Espresso).await;
    run_to_weight(&mut rig, 13.9).await;
    rig.control.scale_glitch(1649.0).expect("scale");
    run_to_weight(&mut rig, 20.0).await;
    assert_eq!(rig.requests(S::Idle), 0, "stopped on the glitch");
    finish(&mut rig).await;
    assert_eq!(rig.requests(S::Idle), 1);
    assert_eq!(rig.triggered(StopAtKind::Weight).len(), 1);
    let settled = rig.scale_weight().unwrap();
    assert!((settled - 42.0).abs() <= 1.0, "settled {settled}");
    // The glitch was still published as it came (current_weight is the raw value).
    assert!(rig.events().any(|(_, e)| matches!(e,
        Event::WeightAndFlowUpdate(w) if w.current_weight == 1649.0)));
}

#[tokio::test(start_paused = true)]
async fn a_frozen_scale_mid_shot_stops_near_the_target() {
    let mut rig = rig_for(sim(12), "classic_italian_espresso", Some(36.0)).await;
    rig.request(S::Espresso).await;
    run_to_weight(&mut rig, 24.0).await;
    rig.control.freeze_scale(true).expect("scale");
    finish(&mut rig).await;
    assert_eq!(rig.requests(S::Idle), 1);
    assert_eq!(rig.triggered(StopAtKind::Weight).len(), 1);
    let in_cup = rig.liquid().unwrap();
    assert!((in_cup - 36.0).abs() <= 1.5, "in cup {in_cup}");
    let frozen_at = rig.scale_weight().unwrap();
    assert!(frozen_at < 30.0, "the scale really was frozen: {frozen_at}");
}

#[tokio::test(start_paused = true)]
async fn a_scale_dropping_mid_shot_still_stops_near_the_target() {
    let mut rig = rig_for(sim(13), "trendy_6_bar_low_pressure_shot", Some(36.0)).await;
    rig.control.drop_connection_at(
        SimDevice::Scale,
        ShotPoint::SecondsIntoPour(12.0),
        Duration::from_secs(120),
    );
    rig.request(S::Espresso).await;
    finish(&mut rig).await;
    assert!(rig.scale.is_none(), "the scale link dropped");
    assert_eq!(rig.requests(S::Idle), 1);
    assert_eq!(rig.triggered(StopAtKind::Weight).len(), 1);
    let in_cup = rig.liquid().unwrap();
    assert!(
        (in_cup - 36.0).abs() <= 1.5,
        "in cup {in_cup} {:?}",
        rig.triggered(StopAtKind::Weight)
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_scale_the_shot_runs_its_profile() {
    let cfg = SimConfig {
        scale: None,
        ..sim(14)
    };
    let mut rig = rig_for(cfg, "classic_italian_espresso", Some(36.0)).await;
    assert!(!rig.seq.scale_connected());
    assert!(rig.pull_shot().await);
    assert_eq!(rig.requests(S::Idle), 0);
    let weight = rig
        .stop_ats()
        .into_iter()
        .filter(|n| n.stop_at == StopAtKind::Weight)
        .collect::<Vec<_>>();
    assert!(weight.iter().all(|n| n.action == StopAtAction::Disabled));
    assert!(weight
        .iter()
        .any(|n| n.current_frame.is_some() && n.current_value.is_none()));
    // The profile ran to its last frame (3) and ended by itself.
    assert!(rig.states().contains(&(S::Espresso, Sub::Flush)));
    assert_eq!(rig.tares(), 0);
}

#[tokio::test(start_paused = true)]
async fn move_on_by_weight_skips_the_frame_with_a_weight() {
    // Frame 2 of this profile has a 4 g move-on weight.
    let mut rig = rig_for(sim(15), "a_flow_default_like_dflow", Some(36.0)).await;
    assert_eq!(
        rig.seq.espresso_control().move_on_weight,
        vec![None, None, Some(4.0)]
    );
    assert!(rig.pull_shot().await);
    assert_eq!(rig.requests(S::SkipToNext), 1);
    let trig = rig.triggered(StopAtKind::MoveOnByWeight);
    assert_eq!(trig.len(), 1);
    assert_eq!(trig[0].current_frame, Some(2));
    assert_eq!(trig[0].target_value, Some(4.0));
    let settled = rig.scale_weight().unwrap();
    assert!((settled - 36.0).abs() <= 1.0, "settled {settled}");
}

#[tokio::test(start_paused = true)]
async fn volume_follows_the_pump_and_the_mains_is_measured() {
    let mut rig = rig_for(sim(16), "classic_italian_espresso", Some(40.0)).await;
    rig.settle(Duration::from_secs(5)).await;
    assert_eq!(rig.seq.detected_line_frequency(), Some(50));
    rig.request(S::Espresso).await;
    let flowing = |r: &Rig| r.seq.gates_set().contains(&Gate::FlowBegin);
    assert!(rig.run_until(Duration::from_secs(30), flowing).await);
    let pumped0 = rig.control.snapshot().de1.pumped_total_ml;
    let ended = |r: &Rig| r.seq.gates_set().contains(&Gate::FlowEnd);
    assert!(rig.run_until(Duration::from_secs(120), ended).await);
    let pumped = rig.control.snapshot().de1.pumped_total_ml - pumped0;
    let v = rig.seq.volumes();
    assert!(
        (v.total - pumped).abs() <= 0.02 * pumped + 0.5,
        "integrated {v:?}, pumped {pumped}"
    );
    assert!(v.preinfuse > 1.0 && v.pour > 10.0, "{v:?}");
    let by = v.by_frame.unwrap();
    assert!((by.iter().sum::<f64>() - v.total).abs() < 1e-6);
    // classic_italian_espresso: 3 preinfusion frames.
    assert!((by[..3].iter().sum::<f64>() - v.preinfuse).abs() < 1e-6);
    // The published samples carry the volumes.
    let last = rig
        .events()
        .filter_map(|(_, e)| match e {
            Event::ShotSampleWithVolumesUpdate(s) => Some(*s),
            _ => None,
        })
        .last()
        .unwrap();
    assert!((last.volume_total - v.total).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn the_tare_button_is_reported_and_tares() {
    let mut rig = rig_for(sim(17), "classic_italian_espresso", None).await;
    rig.settle(Duration::from_secs(1)).await;
    rig.control.press_scale_button(1).expect("scale");
    rig.control.press_scale_button(2).expect("scale");
    rig.settle(Duration::from_secs(1)).await;
    let buttons: Vec<u8> = rig
        .events()
        .filter_map(|(_, e)| match e {
            Event::ScaleButtonPress(b) => Some(b.button),
            _ => None,
        })
        .collect();
    assert_eq!(buttons, [1, 2]);
    assert_eq!(rig.tares(), 1);
}

#[tokio::test(start_paused = true)]
async fn auto_tare_zeroes_a_fresh_cup_before_the_shot() {
    let mut rig = rig_for(sim(18), "classic_italian_espresso", Some(30.0)).await;
    // Empty pan tared, then a cup put on: the scale reads the cup.
    rig.control.cup_off().expect("scale");
    rig.settle(Duration::from_secs(1)).await;
    rig.control.press_scale_button(1).expect("scale");
    rig.settle(Duration::from_secs(1)).await;
    rig.control.cup_on().expect("scale");
    rig.settle(Duration::from_secs(1)).await;
    assert!(rig.scale_weight().unwrap() > 150.0, "an untared cup");
    assert!(rig.pull_shot().await);
    assert!(rig.tares() >= 1);
    assert!(rig
        .events()
        .any(|(_, e)| matches!(e, Event::ScaleTareSeen(_))));
    let settled = rig.scale_weight().unwrap();
    assert!((settled - 30.0).abs() <= 1.0, "settled {settled}");
}

#[tokio::test(start_paused = true)]
async fn hot_water_stops_at_weight() {
    let mut rig = Rig::new(sim(19), SequencerSettings::default()).await;
    let mut hw = rig.seq.hot_water_control().clone();
    hw.stop_at_weight = Some(60.0);
    rig.seq.set_hot_water_control(hw).expect("valid");
    rig.request(S::HotWater).await;
    finish(&mut rig).await;
    assert_eq!(rig.requests(S::Idle), 1);
    assert_eq!(rig.triggered(StopAtKind::Weight).len(), 1);
    // Hot water has no last-drops wait: let the lagging scale catch up.
    rig.settle(Duration::from_secs(4)).await;
    let settled = rig.scale_weight().unwrap();
    assert!((settled - 60.0).abs() <= 1.0, "settled {settled}");
}
