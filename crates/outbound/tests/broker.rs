//! The publisher against a real (private) mosquitto broker.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_port, Broker, Sub};
use ipc_schema::event::*;
use outbound::render::Renderer;
use outbound::{End, MqttSettings, Publisher, Report, Stats};
use paho_mqtt as mqtt;
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(10);

fn settings(port: u16) -> MqttSettings {
    MqttSettings {
        broker_host: "127.0.0.1".into(),
        broker_port: port,
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(2),
        ..MqttSettings::default()
    }
}

/// A publisher running on its own thread and runtime, as in its own process.
struct Running {
    stats: Arc<Stats>,
    tx: Option<mpsc::UnboundedSender<Event>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Report>>,
}

impl Running {
    fn start(settings: MqttSettings) -> Running {
        let publisher = Publisher::new(settings).expect("publisher");
        let stats = publisher.stats();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(publisher.run(rx, async {
                let _ = stopped.await;
            }))
        });
        Running {
            stats,
            tx: Some(tx),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn send(&self, e: Event) {
        self.tx
            .as_ref()
            .expect("source open")
            .send(e)
            .expect("publisher alive");
    }

    /// Ends the event stream (as when the controller goes away) and waits for the end.
    fn close_source(mut self) -> Report {
        self.tx = None;
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("publisher thread")
    }

    fn shutdown(mut self) -> Report {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread
            .take()
            .expect("thread")
            .join()
            .expect("publisher thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn controller(presence: Presence) -> Event {
    Event::ProcessStatus(ProcessStatus {
        process: ProcessRole::Controller,
        presence,
    })
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn sample(n: u16) -> Event {
    let t = 1_795_509_487.0 + f64::from(n) * 0.25;
    Event::ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate {
        stamp: Stamp::at(t),
        sample_time: n,
        group_pressure: 9.0,
        group_flow: 2.0,
        mix_temp: 92.0,
        head_temp: 91.5,
        set_mix_temp: 92.0,
        set_head_temp: 92.0,
        set_group_pressure: 9.0,
        set_group_flow: 2.0,
        frame_number: 2,
        steam_temp: 150,
        de1_time: t,
        volume_preinfuse: 0.0,
        volume_pour: f64::from(n),
        volume_total: f64::from(n),
        volume_by_frames: None,
    })
}

fn state(t: f64, state: MachineState, substate: Substate) -> Event {
    Event::StateUpdate(StateUpdate {
        stamp: Stamp::at(t),
        state,
        substate,
        previous_state: MachineState::Idle,
        previous_substate: Substate::NoState,
        is_error_state: false,
    })
}

fn gate(n: u16, name: Gate) -> Event {
    Event::SequencerGateNotification(SequencerGateNotification {
        stamp: Stamp::at(f64::from(n)),
        name,
        action: GateAction::Set,
        sequence_id: SequenceId([n as u8; 16]),
        active_state: Some(MachineState::Espresso),
    })
}

fn payload_of(e: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    Renderer::new("pyDE1", LogLevel::Error)
        .render(e, &mut out)
        .expect("render");
    out.remove(0).payload
}

fn sample_time(m: &mqtt::Message) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(m.payload()).ok()?;
    v["sample_time"].as_u64()
}

/// The latest payload per topic among `msgs`.
fn last_on<'a>(msgs: &'a [mqtt::Message], topic: &str) -> Option<&'a mqtt::Message> {
    msgs.iter().rev().find(|m| m.topic() == topic)
}

fn has(msgs: &[mqtt::Message], topic: &str, payload: &str) -> bool {
    last_on(msgs, topic).is_some_and(|m| m.payload() == payload.as_bytes())
}

#[tokio::test]
async fn events_status_and_orderly_gone() {
    let broker = Broker::start();
    let mut sub = Sub::connect(broker.port, &["pyDE1/#"]).await;
    let p = Running::start(settings(broker.port));
    wait_for("connection", || p.stats.connected.load(Ordering::Relaxed)).await;

    p.send(controller(Presence::Here));
    let events = [
        state(1.0, MachineState::Espresso, Substate::HeatWaterHeater),
        sample(1),
        Event::Log(LogEntry {
            created: 1_795_509_483.5,
            level: LogLevel::Error,
            message: "Bluetooth adapter gone".into(),
            name: "de1d.Controller".into(),
            process: 42,
            process_name: "Controller".into(),
            thread: 7,
            thread_name: "main".into(),
        }),
        Event::ProfileIdUpdate(ProfileIdUpdate {
            id: Some([0xd8; 20]),
            timestamp: 2.5,
        }),
    ];
    for e in &events {
        p.send(e.clone());
    }
    p.send(Event::ProcessStatus(ProcessStatus {
        process: ProcessRole::Http,
        presence: Presence::Here,
    }));

    let msgs = sub
        .collect_until(WAIT, |m| {
            has(m, "pyDE1/status/http", "Here")
                && has(m, "pyDE1/status/controller", "Here")
                && has(m, "pyDE1/status/mqtt/logging", "Here")
                && last_on(m, "pyDE1/update/de1/profile/id").is_some()
        })
        .await;
    let state_msg = last_on(&msgs, "pyDE1/StateUpdate").expect("state update");
    assert_eq!(state_msg.payload(), payload_of(&events[0]));
    assert_eq!(state_msg.qos(), mqtt::QoS::AtMostOnce);
    assert!(!state_msg.retained());
    let shot = last_on(&msgs, "pyDE1/ShotSampleWithVolumesUpdate").expect("shot sample");
    assert_eq!(shot.payload(), payload_of(&events[1]));
    let record = last_on(&msgs, "pyDE1/log/record").expect("log record");
    let v: serde_json::Value = serde_json::from_slice(record.payload()).unwrap();
    assert_eq!(v["message"], "Bluetooth adapter gone");
    let text = last_on(&msgs, "pyDE1/log").expect("log text");
    assert!(text
        .payload_str()
        .ends_with(" ERROR [Controller] de1d.Controller: Bluetooth adapter gone"));
    assert!(has(&msgs, "pyDE1/status/mqtt/notification", "Here"));
    // Events keep their order on the wire.
    let order: Vec<_> = msgs
        .iter()
        .map(|m| m.topic().to_owned())
        .filter(|t| !t.contains("/status/"))
        .collect();
    assert_eq!(
        order,
        [
            "pyDE1/StateUpdate",
            "pyDE1/ShotSampleWithVolumesUpdate",
            "pyDE1/log",
            "pyDE1/log/record",
            "pyDE1/update/de1/profile/id"
        ]
    );

    let report = p.shutdown();
    assert_eq!(report.end, End::Shutdown);
    assert_eq!(report.unsent, 0);
    sub.disconnect().await;

    // Afterwards the broker holds retained "Gone" for every status we had published.
    let mut late = Sub::connect(broker.port, &["pyDE1/status/#"]).await;
    let retained = late.collect_until(WAIT, |m| m.len() >= 4).await;
    for topic in [
        "pyDE1/status/mqtt/notification",
        "pyDE1/status/mqtt/logging",
        "pyDE1/status/controller",
        "pyDE1/status/http",
    ] {
        let m = last_on(&retained, topic).unwrap_or_else(|| panic!("no retained {topic}"));
        assert_eq!(m.payload_str(), "Gone", "{topic}");
        assert!(m.retained(), "{topic}");
    }
}

#[tokio::test]
async fn source_closing_reports_the_controller_died() {
    let broker = Broker::start();
    let p = Running::start(settings(broker.port));
    p.send(controller(Presence::Here));
    wait_for("connection", || p.stats.connected.load(Ordering::Relaxed)).await;
    let mut sub = Sub::connect(broker.port, &["pyDE1/status/#"]).await;
    sub.collect_until(WAIT, |m| has(m, "pyDE1/status/controller", "Here"))
        .await;
    // The controller's stream ends without a goodbye.
    let report = p.close_source();
    assert_eq!(report.end, End::SourceClosed);
    let msgs = sub
        .collect_until(WAIT, |m| {
            has(m, "pyDE1/status/controller", "Died")
                && has(m, "pyDE1/status/mqtt/notification", "Gone")
        })
        .await;
    assert!(has(&msgs, "pyDE1/status/controller", "Died"));
    assert!(has(&msgs, "pyDE1/status/mqtt/notification", "Gone"));
}

/// Broker lost mid-shot and back: the publisher survives, events sent during the
/// outage arrive afterwards in order, and the retained state (lost with the broker) is
/// published again.
#[tokio::test]
async fn broker_restart_mid_stream() {
    let port = free_port();
    // The publisher logs in; until we fix its password after a restart it is refused,
    // which lets the test subscriber get in first.
    let mut broker = Broker::new(port, Some(("de1d", "secret")));
    broker.spawn();
    let mut s = settings(port);
    s.username = Some("de1d".into());
    s.password = Some("secret".into());
    s.home_assistant = true;
    let p = Running::start(s);
    p.send(controller(Presence::Here));
    let mut sub = Sub::connect(port, &["pyDE1/#"]).await;
    wait_for("connection", || p.stats.connected.load(Ordering::Relaxed)).await;

    for n in 1..=5 {
        p.send(sample(n));
    }
    let before = sub
        .collect_until(WAIT, |m| m.iter().filter_map(sample_time).any(|t| t == 5))
        .await;
    let times: Vec<_> = before.iter().filter_map(sample_time).collect();
    assert_eq!(times, [1, 2, 3, 4, 5]);

    broker.kill();
    wait_for("loss noticed", || {
        !p.stats.connected.load(Ordering::Relaxed)
    })
    .await;
    for n in 6..=8 {
        p.send(sample(n));
    }
    p.send(state(9.0, MachineState::Espresso, Substate::Flush));
    for n in 10..=11 {
        p.send(sample(n));
    }

    broker.set_password("de1d", "not the publisher's");
    broker.spawn();
    let mut sub = Sub::connect(port, &["pyDE1/#", "homeassistant/#"]).await;
    broker.set_password("de1d", "secret");
    broker.reload();
    wait_for("reconnection", || {
        p.stats.connections.load(Ordering::Relaxed) >= 2
    })
    .await;
    p.send(sample(12));

    let after = sub
        .collect_until(WAIT, |m| m.iter().filter_map(sample_time).any(|t| t == 12))
        .await;
    let order: Vec<String> = after
        .iter()
        .filter(|m| !m.topic().contains("/status/") && !m.topic().starts_with("homeassistant/"))
        .map(|m| match sample_time(m) {
            Some(t) => t.to_string(),
            None => m.topic().to_owned(),
        })
        .collect();
    assert_eq!(
        order,
        ["6", "7", "8", "pyDE1/StateUpdate", "10", "11", "12"],
        "queued events arrive once, in order"
    );
    assert_eq!(p.stats.dropped().total(), 0);

    // The restarted broker kept nothing, yet a newcomer finds the retained state.
    let mut late = Sub::connect(port, &["pyDE1/status/#", "homeassistant/#"]).await;
    let retained = late
        .collect_until(WAIT, |m| {
            m.iter()
                .filter(|m| m.topic().starts_with("homeassistant/"))
                .count()
                >= 13
                && has(m, "pyDE1/status/mqtt/notification", "Here")
                && has(m, "pyDE1/status/controller", "Here")
                && has(m, "pyDE1/status/mqtt/logging", "Here")
        })
        .await;
    assert!(retained.iter().all(|m| m.retained()));
    assert_eq!(
        retained
            .iter()
            .filter(|m| m.topic().starts_with("homeassistant/sensor/de1d_pyDE1/"))
            .count(),
        13
    );
    assert!(has(&retained, "pyDE1/status/mqtt/notification", "Here"));
    let report = p.shutdown();
    assert_eq!(report.unsent, 0);
}

/// Broker down at start and the queue overflows: only measurements are dropped (the
/// oldest first) and counted; everything else arrives once the broker is there.
#[tokio::test]
async fn overflow_while_broker_is_down_drops_only_samples() {
    let port = free_port();
    let mut s = settings(port);
    s.queue_capacity = 40;
    s.username = Some("de1d".into());
    s.password = Some("secret".into());
    let p = Running::start(s);

    // 10 gate notifications among 100 samples.
    let mut sent = Vec::new();
    for n in 0..110u16 {
        let e = if n % 11 == 5 {
            gate(n, Gate::ALL[usize::from(n) % 8])
        } else {
            sample(n)
        };
        sent.push(e.clone());
        p.send(e);
    }
    wait_for("drops counted", || p.stats.dropped().samples == 70).await;
    assert_eq!(p.stats.dropped().others, 0);
    assert_eq!(p.stats.connections.load(Ordering::Relaxed), 0);

    let mut broker = Broker::new(port, Some(("de1d", "wrong")));
    broker.spawn();
    let mut sub = Sub::connect(port, &["pyDE1/#"]).await;
    broker.set_password("de1d", "secret");
    broker.reload();
    wait_for("connection", || p.stats.connected.load(Ordering::Relaxed)).await;

    let got = sub
        .collect_until(WAIT, |m| {
            m.iter().filter(|m| !m.topic().contains("/status/")).count() >= 40
        })
        .await;
    let got: Vec<&[u8]> = got
        .iter()
        .filter(|m| !m.topic().contains("/status/"))
        .map(|m| m.payload())
        .collect();
    // Expected: all gates, plus the 30 newest samples, in the order sent.
    let samples_kept: Vec<usize> = (0..110)
        .filter(|n| n % 11 != 5)
        .collect::<Vec<_>>()
        .split_off(70);
    let expected: Vec<Vec<u8>> = (0..110)
        .filter(|n| n % 11 == 5 || samples_kept.contains(n))
        .map(|n| payload_of(&sent[n]))
        .collect();
    assert_eq!(got.len(), 40);
    assert!(
        got.iter().zip(&expected).all(|(a, b)| *a == b.as_slice()),
        "wrong events kept or order changed"
    );
    let report = p.shutdown();
    assert_eq!(report.dropped.samples, 70);
    assert_eq!(report.dropped.others, 0);
}

/// A broker that stops reading (slow or stuck): once the socket buffers are full the
/// publisher queues, then drops samples only; nothing else is lost.
#[tokio::test]
async fn stalled_broker_costs_samples_only() {
    let broker = Broker::start();
    let mut sub = Sub::connect(broker.port, &["pyDE1/#"]).await;
    let mut s = settings(broker.port);
    s.queue_capacity = 100;
    s.max_in_flight = 16;
    let p = Running::start(s);
    wait_for("connection", || p.stats.connected.load(Ordering::Relaxed)).await;

    broker.pause();
    const SAMPLES: usize = 40_000;
    const EVERY: usize = 2_000;
    let mut gates = 0;
    for n in 0..SAMPLES {
        if n % EVERY == EVERY / 2 {
            p.send(gate(gates, Gate::FlowBegin));
            gates += 1;
        }
        p.send(sample(n as u16));
    }
    // Far more than the socket buffers hold: the queue must have overflowed.
    wait_for("drops", || p.stats.dropped().samples > 0).await;
    broker.resume();

    let mut seen_gates = Vec::new();
    let mut samples = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let expected = samples + p.stats.dropped().samples;
        if seen_gates.len() == usize::from(gates) && expected == SAMPLES as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {samples} samples, gates {seen_gates:?}"
        );
        let Some(m) = sub.next(Duration::from_secs(10)).await else {
            panic!("stream ended: {samples} samples, gates {seen_gates:?}");
        };
        match m.topic() {
            "pyDE1/ShotSampleWithVolumesUpdate" => samples += 1,
            "pyDE1/SequencerGateNotification" => {
                let v: serde_json::Value = serde_json::from_slice(m.payload()).unwrap();
                seen_gates.push(v["event_time"].as_f64().unwrap() as u16);
            }
            _ => {}
        }
    }
    assert_eq!(
        seen_gates,
        (0..gates).collect::<Vec<_>>(),
        "every gate, in order"
    );
    let dropped = p.stats.dropped();
    eprintln!(
        "stalled broker: {samples} samples published, {} dropped",
        dropped.samples
    );
    assert_eq!(dropped.others, 0);
    assert!(dropped.samples > 0);
    assert_eq!(
        samples + dropped.samples,
        SAMPLES as u64,
        "published or counted"
    );
    assert_eq!(p.shutdown().unsent, 0);
}

/// Killed without a goodbye (another process, SIGKILL): the broker publishes every
/// will, retained `Died`.
#[tokio::test]
async fn wills_report_died_when_the_process_is_killed() {
    let broker = Broker::start();
    let mut sub = Sub::connect(broker.port, &["pyDE1/status/#"]).await;
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "publisher_child_process", "--nocapture"])
        .env(CHILD_ENV, broker.port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("child publisher");
    let up = sub
        .collect_until(WAIT, |m| {
            has(m, "pyDE1/status/mqtt/notification", "Here")
                && has(m, "pyDE1/status/mqtt/logging", "Here")
                && has(m, "pyDE1/status/controller", "Here")
        })
        .await;
    let ok = has(&up, "pyDE1/status/controller", "Here");
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "child publisher never came up");
    let died = sub
        .collect_until(WAIT, |m| {
            [
                "pyDE1/status/mqtt/notification",
                "pyDE1/status/mqtt/logging",
                "pyDE1/status/controller",
            ]
            .iter()
            .all(|t| has(m, t, "Died"))
        })
        .await;
    for t in [
        "pyDE1/status/mqtt/notification",
        "pyDE1/status/mqtt/logging",
        "pyDE1/status/controller",
    ] {
        assert!(has(&died, t, "Died"), "{t}");
    }
}

const CHILD_ENV: &str = "DE1D_OUTBOUND_TEST_CHILD_PORT";

/// Not a test on its own: the process that `wills_report_died_when_the_process_is_killed`
/// starts and kills. Does nothing unless started that way.
#[test]
fn publisher_child_process() {
    let Ok(port) = std::env::var(CHILD_ENV) else {
        return;
    };
    let port: u16 = port.parse().expect("port");
    let publisher = Publisher::new(settings(port)).expect("publisher");
    let (tx, rx) = mpsc::unbounded_channel::<Event>();
    tx.send(controller(Presence::Here)).expect("queue");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(publisher.run(rx, std::future::pending::<()>()));
}
