//! The simulated Skale II through the BLE seam, and the liquid reaching it.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ble::{Address, Peripheral, Transport, Uuid, WriteKind};
use common::{profile, step, Harness};
use de1_protocol::state::MachineState as S;
use de1_sim::{SimConfig, SKALE_ADDRESS};
use futures::StreamExt;
use scale_protocol::skale2::{self, ButtonPress, Command, WeightReport};
use tokio::time::Instant;

struct ScaleClient {
    p: Arc<dyn Peripheral>,
    weights: Arc<Mutex<Vec<(Instant, f64)>>>,
    buttons: Arc<Mutex<Vec<u8>>>,
}

impl ScaleClient {
    async fn connect(h: &Harness) -> Self {
        let p = h
            .transport
            .connect(&Address::new(SKALE_ADDRESS))
            .await
            .unwrap();
        assert!(p.name().unwrap().starts_with(skale2::NAME_PREFIX));
        let c = Self {
            p,
            weights: Arc::default(),
            buttons: Arc::default(),
        };
        for cmd in skale2::INIT_BEFORE_SUBSCRIBE {
            c.send(*cmd).await;
        }
        let mut w =
            c.p.subscribe(Uuid::from_u128(skale2::WEIGHT))
                .await
                .unwrap();
        let weights = Arc::clone(&c.weights);
        tokio::spawn(async move {
            while let Some(n) = w.next().await {
                let r = WeightReport::decode(&n.value).expect("weight report decodes");
                weights.lock().unwrap().push((n.at, r.grams));
            }
        });
        let mut b =
            c.p.subscribe(Uuid::from_u128(skale2::BUTTON))
                .await
                .unwrap();
        let buttons = Arc::clone(&c.buttons);
        tokio::spawn(async move {
            while let Some(n) = b.next().await {
                buttons
                    .lock()
                    .unwrap()
                    .push(ButtonPress::decode(&n.value).unwrap().button);
            }
        });
        for cmd in skale2::INIT_AFTER_SUBSCRIBE {
            c.send(*cmd).await;
        }
        c
    }

    async fn send(&self, cmd: Command) {
        self.p
            .write(
                Uuid::from_u128(skale2::COMMAND),
                &cmd.encode(),
                WriteKind::WithResponse,
            )
            .await
            .unwrap();
    }

    fn last(&self) -> f64 {
        self.weights.lock().unwrap().last().unwrap().1
    }

    fn since(&self, t: Instant) -> Vec<f64> {
        self.weights
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= t)
            .map(|x| x.1)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn reports_at_ten_hertz_and_answers_commands() {
    let h = Harness::new(SimConfig::default()).await;
    let s = ScaleClient::connect(&h).await;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let n = s.since(t0).len();
    assert!((95..=105).contains(&n), "{n} reports in 10 s");
    assert!(s.since(t0).iter().all(|g| g.abs() < 0.2));
    let model =
        s.p.read(Uuid::from_u128(skale2::MODEL_NUMBER))
            .await
            .unwrap();
    assert_eq!(model, skale2::MODEL_NUMBER_TEXT.as_bytes());
    s.send(Command::DisplayOff).await;
    assert!(!h.control.snapshot().scale.unwrap().display_on);
    s.send(Command::TimerStart).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let timer = h.control.snapshot().scale.unwrap().timer;
    assert!(timer.running && (timer.seconds - 2.0).abs() < 0.05);
}

#[tokio::test(start_paused = true)]
async fn weight_follows_the_shot_with_lag_and_drips() {
    let h = Harness::new(SimConfig::default()).await;
    let s = ScaleClient::connect(&h).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 8.0), step("pressure", 9.0, 15.0)],
        1,
    ))
    .await;
    h.pull_shot(Duration::from_secs(60)).await;
    let at_ending = h
        .states()
        .iter()
        .find(|(_, st)| st.substate == de1_protocol::state::Substate::Flush)
        .unwrap()
        .0;
    let w_at_end = s
        .weights
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(t, _)| *t <= at_ending)
        .unwrap()
        .1;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let final_w = s.last();
    // Lag and drips: the cup keeps gaining after the pump stops.
    assert!(final_w > w_at_end + 1.0, "{w_at_end} → {final_w}");
    let truth = h.control.snapshot().scale.unwrap().liquid_g;
    assert!((final_w - truth).abs() < 0.2, "{final_w} vs {truth}");
    assert!((25.0..60.0).contains(&final_w), "{final_w}");
    // Weight never jumps backward by more than noise during the shot.
    let w = s.since(h.started);
    assert!(w.windows(2).all(|p| p[1] > p[0] - 0.2));
}

#[tokio::test(start_paused = true)]
async fn tare_cup_off_and_on_buttons() {
    let h = Harness::new(SimConfig::default()).await;
    let s = ScaleClient::connect(&h).await;
    h.control.cup_off().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!((s.last() + 180.0).abs() < 0.2, "{}", s.last());
    h.control.cup_on().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(s.last().abs() < 0.2);
    h.control.cup_off().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.send(Command::Tare).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.last().abs() < 0.2, "{}", s.last());
    h.control.press_scale_button(2).unwrap();
    h.control.press_scale_button(1).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(*s.buttons.lock().unwrap(), vec![2, 1]);
    assert_eq!(h.control.snapshot().scale.unwrap().tares, 2);
}

#[tokio::test(start_paused = true)]
async fn glitch_and_frozen_scale() {
    let h = Harness::new(SimConfig::default()).await;
    let s = ScaleClient::connect(&h).await;
    let t0 = Instant::now();
    h.control.scale_glitch(1649.0).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = s.since(t0);
    assert_eq!(w.iter().filter(|g| **g == 1649.0).count(), 1, "{w:?}");
    assert!(w.iter().filter(|g| **g != 1649.0).all(|g| g.abs() < 0.2));
    // Frozen: the same value while hot water pours into the cup.
    h.control.freeze_scale(true).unwrap();
    let t1 = Instant::now();
    h.request(S::HotWater).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let w = s.since(t1);
    assert!(w.len() > 90);
    assert!(w.iter().all(|g| *g == w[0]));
    assert!(h.control.snapshot().scale.unwrap().liquid_g > 10.0);
    h.control.freeze_scale(false).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(s.last() > 10.0);
}

#[tokio::test(start_paused = true)]
async fn no_scale_configured_means_none_advertised() {
    let (t, c) = de1_sim::simulator(SimConfig {
        scale: None,
        ..SimConfig::default()
    });
    let found = ble::scan_collect(&t, Duration::from_secs(1)).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(t.connect(&Address::new(SKALE_ADDRESS)).await.is_err());
    assert!(c.cup_off().is_err());
}
