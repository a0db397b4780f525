//! Event in → subscriber receives: latency of shot samples through the publisher and a
//! private mosquitto on loopback, plus the cost of rendering one payload.
//!
//! `cargo bench -p outbound --bench latency` (needs /usr/sbin/mosquitto). Goal for the
//! whole path controller → IPC → outbound → broker → subscriber: p50 ≤ 0.3 ms, p99 ≤ 2 ms;
//! this measures the outbound + broker part.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc_schema::event::{Event, LogLevel, ShotSampleWithVolumesUpdate, Stamp};
use outbound::render::Renderer;
use outbound::{MqttSettings, Publisher};
use paho_mqtt as mqtt;
use tokio::sync::{mpsc, oneshot};

const WARMUP: usize = 200;
const SAMPLES: usize = 2000;
/// Time between events: far above the per-event cost, so each event meets an idle path
/// (the real rate is 4–5 Hz).
const PACE: Duration = Duration::from_micros(1500);

fn sample(n: u16) -> Event {
    let t = 1_795_509_487.0 + f64::from(n) * 0.2;
    Event::ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate {
        stamp: Stamp {
            arrival_time: t,
            create_time: t + 0.000_2,
            event_time: t + 0.000_3,
        },
        sample_time: n,
        group_pressure: 8.968_505_859_375,
        group_flow: 1.987_548_828_125,
        mix_temp: 92.179_687_5,
        head_temp: 91.535_064_697_265_62,
        set_mix_temp: 92.0,
        set_head_temp: 92.0,
        set_group_pressure: 9.0,
        set_group_flow: 2.0,
        frame_number: 2,
        steam_temp: 150,
        de1_time: t,
        volume_preinfuse: 4.166_666_666_666_666,
        volume_pour: 11.666_666_666_666_664,
        volume_total: 15.833_333_333_333_325,
        volume_by_frames: Some([
            4.166_666_666_666_666,
            0.0,
            11.666_666_666_666_664,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ]),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn render_cost() {
    let r = Renderer::new("pyDE1", LogLevel::Error);
    let e = sample(1);
    let mut out = Vec::with_capacity(2);
    let n = 200_000;
    let start = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        out.clear();
        r.render(&e, &mut out).expect("render");
        bytes += out[0].payload.len();
    }
    let per = start.elapsed().as_secs_f64() / f64::from(n) * 1e9;
    println!(
        "render ShotSampleWithVolumesUpdate: {per:.0} ns/event ({} bytes)",
        bytes / n as usize
    );
}

fn float_cost() {
    let values: Vec<f64> = (0..1000)
        .map(|i| 1_795_509_487.0 + f64::from(i) * 0.013_7)
        .collect();
    let mut out = Vec::with_capacity(64);
    let start = Instant::now();
    for _ in 0..200 {
        for v in &values {
            out.clear();
            outbound::pyjson::write_py_float(&mut out, *v).expect("float");
        }
    }
    let per = start.elapsed().as_secs_f64() / 200_000.0 * 1e9;
    println!("python float repr: {per:.0} ns/float");
}

fn main() {
    float_cost();
    // `cargo bench` passes `--bench`; accept and ignore arguments.
    render_cost();

    let broker = common::Broker::start_with(
        &std::env::var("BROKER_EXTRA")
            .unwrap_or_default()
            .replace("\\n", "\n"),
    );
    let port = broker.port;

    // Subscriber on its own thread, timestamping arrivals.
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; WARMUP + SAMPLES]));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let sub = mqtt::CreateOptionsBuilder::new()
        .server_uri(format!("tcp://127.0.0.1:{port}"))
        .client_id("latency-sub")
        .mqtt_version(mqtt::MQTT_VERSION_5)
        .persistence(mqtt::PersistenceType::None)
        .create_client()
        .expect("subscriber");
    let rx = sub.start_consuming();
    sub.connect(mqtt::ConnectOptionsBuilder::new_v5().finalize())
        .wait()
        .expect("subscriber connect");
    sub.subscribe("pyDE1/ShotSampleWithVolumesUpdate", mqtt::QOS_0)
        .wait()
        .expect("subscribe");
    let receiver = {
        let sent = Arc::clone(&sent);
        let latencies = Arc::clone(&latencies);
        std::thread::spawn(move || {
            let mut got = 0;
            while got < WARMUP + SAMPLES {
                let Ok(Some(msg)) = rx.recv_timeout(Duration::from_secs(5)) else {
                    break;
                };
                let now = Instant::now();
                let v: serde_json::Value =
                    serde_json::from_slice(msg.payload()).expect("payload JSON");
                let n = v["sample_time"].as_u64().expect("sample_time") as usize;
                if let Some(Some(t0)) = sent.lock().expect("lock").get(n) {
                    if n >= WARMUP {
                        latencies
                            .lock()
                            .expect("lock")
                            .push(now.duration_since(*t0).as_secs_f64() * 1e3);
                    }
                }
                got += 1;
            }
        })
    };

    // Publisher on its own thread and runtime, as in the outbound process.
    let settings = MqttSettings {
        broker_host: "127.0.0.1".into(),
        broker_port: port,
        ..MqttSettings::default()
    };
    let publisher = Publisher::new(settings).expect("publisher");
    let stats = publisher.stats();
    let (tx, events) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let pub_thread = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(publisher.run(events, async {
                let _ = stopped.await;
            }))
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stats.connected.load(std::sync::atomic::Ordering::Relaxed) {
        assert!(Instant::now() < deadline, "publisher did not connect");
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut next = Instant::now();
    for n in 0..WARMUP + SAMPLES {
        next += PACE;
        // Sleep rather than spin: the machine may have few cores.
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let e = sample(n as u16);
        sent.lock().expect("lock")[n] = Some(Instant::now());
        tx.send(e).expect("publisher alive");
    }
    receiver.join().expect("receiver");
    let _ = stop.send(());
    let report = pub_thread.join().expect("publisher");
    drop(broker);

    let mut l = latencies.lock().expect("lock").clone();
    l.sort_by(f64::total_cmp);
    if l.is_empty() {
        println!("no samples received");
        return;
    }
    let mean = l.iter().sum::<f64>() / l.len() as f64;
    println!(
        "event in -> subscriber, {} shot samples (after {WARMUP} warm-up), every {} µs:",
        l.len(),
        PACE.as_micros()
    );
    println!(
        "  p50 {:.3} ms   p90 {:.3} ms   p99 {:.3} ms   max {:.3} ms   mean {:.3} ms",
        percentile(&l, 0.50),
        percentile(&l, 0.90),
        percentile(&l, 0.99),
        l[l.len() - 1],
        mean
    );
    println!(
        "  published {}, dropped {}, lost {}",
        report.published,
        report.dropped.total(),
        SAMPLES - l.len()
    );
}
