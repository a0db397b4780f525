//! Fault injection: link drops, slow and failing writes, silent notifications.

mod common;

use std::time::Duration;

use ble::{Address, ErrorKind, Transport, WriteKind};
use common::{profile, step, uuid, Harness};
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::packets::{RequestedState, StateInfo};
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{ShotPoint, SimConfig, SimDevice, DE1_ADDRESS};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn dropping_the_link_mid_shot_leaves_the_machine_running() {
    let mut h = Harness::new(SimConfig::default()).await;
    h.upload(&profile(
        vec![step("flow", 4.0, 8.0), step("pressure", 9.0, 15.0)],
        1,
    ))
    .await;
    h.control
        .drop_connection_at(SimDevice::De1, ShotPoint::Frame(1), Duration::from_secs(5));
    h.request(S::Espresso).await;
    let link = h.de1.link();
    let reason = tokio::time::timeout(Duration::from_secs(60), link.down())
        .await
        .expect("link drops during the shot");
    assert!(reason.contains("simulated"), "{reason}");
    let snap = h.control.snapshot();
    assert_eq!((snap.de1.state, snap.de1.frame), (S::Espresso, 1));
    // Operations on the dead handle fail as disconnected; notifications stop.
    let e = h.de1.read(uuid(C::StateInfo)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    let n = h.notes().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.notes().len(), n);
    // Out of reach for 5 s.
    let e = h
        .transport
        .connect(&Address::new(DE1_ADDRESS))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::ConnectFailed);
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.reconnect().await;
    // The shot went on without the app and ends by itself.
    h.control
        .wait_for(Duration::from_secs(60), |s| s.de1.state == S::Idle)
        .await
        .expect("shot ends");
    let s = StateInfo::decode(&h.read(C::StateInfo).await).unwrap();
    assert_eq!(s.state, S::Idle);
}

#[tokio::test(start_paused = true)]
async fn drop_after_seconds_into_pour_and_immediate_drop() {
    let h = Harness::new(SimConfig::default()).await;
    h.upload(&profile(vec![step("pressure", 9.0, 20.0)], 0))
        .await;
    h.control.drop_connection_at(
        SimDevice::De1,
        ShotPoint::SecondsIntoPour(5.0),
        Duration::ZERO,
    );
    h.request(S::Espresso).await;
    h.de1.link().down().await;
    let pour_at = h
        .states()
        .iter()
        .find(|(_, s)| s.substate == Sub::Pour)
        .unwrap()
        .0;
    let dropped = (Instant::now() - pour_at).as_secs_f64();
    assert!((dropped - 5.0).abs() < 0.02, "{dropped}");
    // Now-drops are immediate, and reconnecting works at once.
    let p = h
        .transport
        .connect(&Address::new(DE1_ADDRESS))
        .await
        .unwrap();
    h.control.drop_connection(SimDevice::De1);
    assert!(p.link().is_down());
    assert!(h
        .transport
        .connect(&Address::new(DE1_ADDRESS))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn delayed_and_failing_writes() {
    let h = Harness::new(SimConfig::default()).await;
    let latency = SimConfig::default().timing.gatt_latency;
    h.control
        .delay_writes(SimDevice::De1, Duration::from_millis(700));
    let t0 = Instant::now();
    h.request(S::NoRequest).await;
    assert_eq!(Instant::now() - t0, latency + Duration::from_millis(700));
    h.control.delay_writes(SimDevice::De1, Duration::ZERO);

    h.control.fail_next_writes(SimDevice::De1, 2);
    let espresso = RequestedState::new(S::Steam).encode();
    for _ in 0..2 {
        let e = h
            .de1
            .write(uuid(C::RequestedState), &espresso, WriteKind::WithResponse)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Gatt);
        assert_eq!(
            h.control.snapshot().de1.state,
            S::Idle,
            "a failed write has no effect"
        );
    }
    h.de1
        .write(uuid(C::RequestedState), &espresso, WriteKind::WithResponse)
        .await
        .unwrap();
    assert_eq!(h.control.snapshot().de1.state, S::Steam);
}

#[tokio::test(start_paused = true)]
async fn muted_notifications_with_the_link_up() {
    let h = Harness::new(SimConfig::default()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.control.mute_notifications(SimDevice::De1, true);
    h.clear();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(h.notes().is_empty());
    assert!(!h.de1.link().is_down());
    // Reads still work: the machine is alive, only silent.
    assert_eq!(h.read(C::StateInfo).await, vec![S::Idle.to_u8(), 0]);
    h.control.mute_notifications(SimDevice::De1, false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.samples().len() >= 3);
}

#[tokio::test(start_paused = true)]
async fn a_write_after_the_drop_reports_the_drop() {
    let h = Harness::new(SimConfig::default()).await;
    h.control.drop_connection(SimDevice::De1);
    let e = h
        .de1
        .write(uuid(C::RequestedState), &[2], WriteKind::WithResponse)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected);
    assert!(e.is_link_loss());
}
