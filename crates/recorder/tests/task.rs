//! The recorder task: fed by a controller subscription, asking for the sequence context
//! without holding up events, switched on and off at run time.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ipc_schema::client::LinkEvent;
use ipc_schema::command::{
    BeforeFlow, Calibration, Controls, De1Document, De1State, DeviceId, EspressoControl,
    HotWaterControl, HotWaterRinseControl, ReadOnce, Settings, SteamControl, SteamSetting,
    TankWaterThreshold, VersionBlock,
};
use ipc_schema::event::*;
use recorder::history::{History, Page, SequenceFilter};
use recorder::{control, record_events, ContextSource, Recorder, SequenceContext};

/// A controller that answers slowly, as a busy one would.
struct SlowController {
    asked: AtomicUsize,
    delay: Duration,
}

fn de1_document() -> De1Document {
    let version = VersionBlock {
        api: 4,
        release: 1.0,
        commits: 0,
        changes: 0,
        sha: 0,
    };
    De1Document {
        id: DeviceId {
            address: Some("D9:B2:48:00:DE:01".into()),
            name: "DE1".into(),
            simulated: false,
        },
        state: De1State {
            state: MachineState::Espresso,
            substate: Substate::PreInfuse,
            last_updated: 0.0,
            last_update: None,
        },
        availability: ipc_schema::command::Availability {
            state: AvailabilityState::Ready,
            last_event: None,
            simulated: false,
        },
        connectivity: ipc_schema::command::ConnectivityMode::Ready,
        control: Controls {
            espresso: EspressoControl {
                stop_at_time: None,
                stop_at_volume: None,
                stop_at_weight: Some(36.0),
                move_on_weight: vec![None, Some(4.0)],
                disable_auto_tare: false,
                profile_can_override_stop_limits: true,
                profile_can_override_tank_temperature: true,
                first_drops_threshold: Some(0.0),
                last_drops_minimum_time: 3.0,
            },
            steam: SteamControl {
                stop_at_time: Some(60),
                disable_auto_tare: true,
            },
            hot_water: HotWaterControl {
                stop_at_time: Some(40),
                stop_at_volume: Some(120),
                stop_at_weight: None,
                disable_auto_tare: false,
                temperature: Some(80),
            },
            hot_water_rinse: HotWaterRinseControl {
                stop_at_time: Some(4.0),
                disable_auto_tare: true,
                temperature: Some(90.0),
                flow: Some(6.0),
            },
            tank_water_threshold: TankWaterThreshold {
                temperature: Some(0),
            },
        },
        setting: Settings {
            auto_off_time: Some(60.0),
            fan_threshold: Some(45),
            start_fill_level: Some(5.0),
            before_flow: BeforeFlow {
                heater_phase1_flow: Some(2.5),
                heater_phase2_flow: Some(5.0),
                heater_phase2_timeout: Some(5.0),
                heater_idle_temperature: Some(99.0),
            },
            target_group_temp: Some(92.0),
            usb_outlet: None,
            refill_kit: None,
            steam: SteamSetting {
                temperature: Some(150),
                flow: Some(1.5),
                high_flow_time: Some(0.8),
                purge_deferred: None,
            },
            time: 0,
        },
        calibration: Calibration {
            line_frequency: 60,
            flow_multiplier: Some(1.1),
        },
        read_once: ReadOnce {
            hw_config: None,
            model: None,
            cpu_board_model: Some(1.3),
            firmware_model: None,
            firmware_build_number: Some(1333),
            ghc_info: None,
            serial_number: None,
            heater_voltage: None,
            version_ble: version,
            version_lv: version,
        },
    }
}

impl ContextSource for SlowController {
    fn fetch(&self) -> impl std::future::Future<Output = SequenceContext> + Send {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay;
        async move {
            tokio::time::sleep(delay).await;
            let source = profile_source("de1app__londonium");
            SequenceContext {
                profile_id: Some("99f1218bceadc4b5dec3eb8c5dd921881269f886".into()),
                profile_source: Some(source),
                de1: Some(de1_document()),
                scale: None,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_records_with_the_context_and_ends_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let o = opts.clone();
    let rec = tokio::task::spawn_blocking(move || Recorder::open(o))
        .await
        .expect("join")
        .expect("open");
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let source = Arc::new(SlowController {
        asked: AtomicUsize::new(0),
        delay: Duration::from_millis(300),
    });
    let task = tokio::spawn(record_events(rec, rx, source.clone(), async move {
        let _ = stop_rx.await;
    }));

    let events = synthetic_espresso(1_790_000_000.0, 10.0, seq(1));
    let began = std::time::Instant::now();
    for e in &events {
        tx.send(LinkEvent::Event(e.clone())).await.expect("send");
    }
    // The slow context did not hold the events up.
    assert!(
        began.elapsed() < Duration::from_millis(250),
        "{:?}",
        began.elapsed()
    );
    tx.send(LinkEvent::Lagged(3)).await.expect("send");
    // A second sequence, cut by the controller going away.
    let mut second = synthetic_espresso(1_790_000_100.0, 10.0, seq(2));
    second.truncate(second.len() / 2);
    for e in second {
        tx.send(LinkEvent::Event(e)).await.expect("send");
    }
    tx.send(LinkEvent::Disconnected).await.expect("send");
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_tx.send(()).expect("stop");
    let status = task.await.expect("task");
    assert_eq!(source.asked.load(Ordering::SeqCst), 2);
    assert_eq!(status.stats.sequences, 2);
    assert_eq!(status.stats.dropped_lagged, 3);

    let path = opts.path.clone();
    let (first, second) = tokio::task::spawn_blocking(move || {
        let h = History::open(&path).expect("history");
        (
            h.get_sequence(&seq(1).to_string())
                .expect("get")
                .expect("1"),
            h.get_sequence(&seq(2).to_string())
                .expect("get")
                .expect("2"),
        )
    })
    .await
    .expect("join");
    assert_eq!(first["end_reason"], "complete");
    assert_eq!(first["profile"]["title"], "Londonium");
    assert_eq!(
        first["profile"]["fingerprint"],
        "e4a28e40c62ff5f03e4d6246051f4536bea69983"
    );
    assert_eq!(first["profile_assumed"], false);
    let r = &first["resources"];
    assert_eq!(r["de1_id"]["id"], "D9:B2:48:00:DE:01");
    assert_eq!(r["de1_control_mode"]["stop_at_weight"], 36.0);
    assert_eq!(r["de1_calibration_flow_multiplier"]["multiplier"], 1.1);
    assert_eq!(r["de1_setting_target_group_temp"]["temperature"], 92.0);
    assert_eq!(r["de1_setting_steam"]["temperature"], 150);
    assert_eq!(r["scale_id"], serde_json::Value::Null);
    assert_eq!(second["end_reason"], "controller_lost");
    assert_eq!(
        second["profile"]["id"],
        "99f1218bceadc4b5dec3eb8c5dd921881269f886"
    );
}

#[test]
fn recording_can_be_switched_off_and_on_from_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    assert!(control::recording_enabled(&opts.path).expect("no file yet"));
    let rec = Recorder::open(opts.clone()).expect("open");

    control::set_recording_enabled(&opts.path, false).expect("off");
    assert!(!control::recording_enabled(&opts.path).expect("read"));
    for e in synthetic_espresso(1_790_000_000.0, 5.0, seq(1)) {
        rec.record(&e);
    }
    assert!(rec.flush(Duration::from_secs(10)));
    control::set_recording_enabled(&opts.path, true).expect("on");
    for e in synthetic_espresso(1_790_000_100.0, 5.0, seq(2)) {
        rec.record(&e);
    }
    let status = rec.close(Duration::from_secs(10));
    assert_eq!(status.stats.sequences, 1);
    assert_eq!(status.stats.sequences_skipped, 1);
    let h = History::open(&opts.path).expect("history");
    let ids: Vec<String> = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list")
        .sequences
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![seq(2).to_string()]);
}

#[test]
fn record_never_waits_even_when_the_writer_is_stuck() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path());
    opts.queue_len = 64;
    let rec = Recorder::open(opts.clone()).expect("open");
    // Stuck writer: someone holds the database's write lock.
    let other = rusqlite::Connection::open(&opts.path).expect("other");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let events = synthetic_espresso(1_790_000_000.0, 600.0, seq(1));
    let began = std::time::Instant::now();
    for e in &events {
        rec.record(e);
    }
    let per_event = began.elapsed() / events.len() as u32;
    assert!(
        per_event < Duration::from_micros(50),
        "{per_event:?} per record()"
    );
    let s = rec.status().stats;
    // Everything was either taken or counted as dropped.
    assert_eq!(s.queued + s.dropped_queue_full, events.len() as u64);
    other.execute_batch("ROLLBACK").expect("unlock");
    drop(rec);
}
