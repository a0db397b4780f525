//! A minimal client of the simulator, driving it through the `ble` traits with bytes
//! from `de1_protocol`, and recording every notification it receives.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ble::{Address, Peripheral, Transport, Uuid, WriteKind};
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::packets::{RequestedState, ShotSample, StateInfo, WaterLevels};
use de1_protocol::profile::encode_profile;
use de1_protocol::state::{MachineState as S, Substate as Sub};
use de1_sim::{SimConfig, SimControl, SimTransport, DE1_ADDRESS};
use futures::StreamExt;
use tokio::time::Instant;

/// The characteristics pyDE1 subscribes to at connect (de1-behaviour.md §12.1).
pub const SUBSCRIBED: [C; 13] = [
    C::Versions,
    C::RequestedState,
    C::SetTime,
    C::ReadFromMMR,
    C::WriteToMMR,
    C::FWMapRequest,
    C::ShotSettings,
    C::HeaderWrite,
    C::FrameWrite,
    C::Calibration,
    C::ShotSample,
    C::StateInfo,
    C::WaterLevels,
];

#[derive(Debug, Clone)]
pub struct Note {
    pub at: Instant,
    pub ch: C,
    pub value: Vec<u8>,
}

pub struct Harness {
    pub transport: SimTransport,
    pub control: SimControl,
    pub de1: Arc<dyn Peripheral>,
    pub log: Arc<Mutex<Vec<Note>>>,
    pub started: Instant,
}

pub fn uuid(c: C) -> Uuid {
    Uuid(c.uuid())
}

async fn connect_and_record(
    transport: &SimTransport,
    log: &Arc<Mutex<Vec<Note>>>,
) -> Arc<dyn Peripheral> {
    let de1 = transport
        .connect(&Address::new(DE1_ADDRESS))
        .await
        .expect("connect to the simulated DE1");
    for c in SUBSCRIBED {
        let mut stream = de1.subscribe(uuid(c)).await.expect("subscribe");
        let log = Arc::clone(log);
        tokio::spawn(async move {
            while let Some(n) = stream.next().await {
                log.lock().unwrap().push(Note {
                    at: n.at,
                    ch: c,
                    value: n.value,
                });
            }
        });
    }
    de1
}

impl Harness {
    pub async fn new(cfg: SimConfig) -> Self {
        let (transport, control) = de1_sim::simulator(cfg);
        let log = Arc::new(Mutex::new(Vec::new()));
        let de1 = connect_and_record(&transport, &log).await;
        Self {
            transport,
            control,
            de1,
            log,
            started: Instant::now(),
        }
    }

    /// Connect again (after a drop) and record into the same log.
    pub async fn reconnect(&mut self) {
        self.de1 = connect_and_record(&self.transport, &self.log).await;
    }

    pub async fn write(&self, c: C, bytes: &[u8]) {
        self.de1
            .write(uuid(c), bytes, WriteKind::WithResponse)
            .await
            .unwrap_or_else(|e| panic!("write {}: {e}", c.name()));
    }

    pub async fn read(&self, c: C) -> Vec<u8> {
        self.de1.read(uuid(c)).await.expect("read")
    }

    pub async fn request(&self, s: S) {
        self.write(C::RequestedState, &RequestedState::new(s).encode())
            .await;
    }

    /// Upload a JSON v2 profile the way a controller does.
    pub async fn upload(&self, json: &serde_json::Value) {
        let src = serde_json::to_vec(json).unwrap();
        let enc = encode_profile(&src).expect("test profile encodes");
        for (c, bytes) in enc.writes() {
            self.write(c, &bytes).await;
        }
    }

    pub fn notes(&self) -> Vec<Note> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    pub fn samples(&self) -> Vec<(Instant, ShotSample)> {
        self.notes()
            .into_iter()
            .filter(|n| n.ch == C::ShotSample)
            .map(|n| {
                (
                    n.at,
                    ShotSample::decode(&n.value).expect("ShotSample decodes"),
                )
            })
            .collect()
    }

    pub fn states(&self) -> Vec<(Instant, StateInfo)> {
        self.notes()
            .into_iter()
            .filter(|n| n.ch == C::StateInfo)
            .map(|n| {
                (
                    n.at,
                    StateInfo::decode(&n.value).expect("StateInfo decodes"),
                )
            })
            .collect()
    }

    pub fn water_levels(&self) -> Vec<WaterLevels> {
        self.notes()
            .into_iter()
            .filter(|n| n.ch == C::WaterLevels)
            .map(|n| WaterLevels::decode(&n.value).expect("WaterLevels decodes"))
            .collect()
    }

    /// Samples stamped with the state they arrived in.
    pub fn timeline(&self) -> Vec<(Instant, S, Sub, ShotSample)> {
        let mut state = (S::Idle, Sub::NoState);
        let mut out = Vec::new();
        for n in self.notes() {
            match n.ch {
                C::StateInfo => {
                    let s = StateInfo::decode(&n.value).unwrap();
                    state = (s.state, s.substate);
                }
                C::ShotSample => out.push((
                    n.at,
                    state.0,
                    state.1,
                    ShotSample::decode(&n.value).unwrap(),
                )),
                _ => {}
            }
        }
        out
    }

    /// Wait until the machine is in `state` (checked on the simulation itself).
    pub async fn wait_state(&self, state: S, timeout: Duration) {
        self.control
            .wait_for(timeout, |s| s.de1.state == state)
            .await
            .unwrap_or_else(|| panic!("machine never reached {state}"));
        // Let the notification reach the recorder.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    /// Start an espresso and wait for it to end (back in Idle).
    pub async fn pull_shot(&self, timeout: Duration) {
        self.request(S::Espresso).await;
        self.wait_state(S::Espresso, Duration::from_secs(1)).await;
        self.control
            .wait_for(timeout, |s| s.de1.state != S::Espresso)
            .await
            .expect("shot ends");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A JSON v2 profile from steps.
pub fn profile(steps: Vec<serde_json::Value>, preinfuse: usize) -> serde_json::Value {
    serde_json::json!({
        "version": "2",
        "title": "test",
        "steps": steps,
        "target_volume": 0,
        "target_volume_count_start": preinfuse,
        "tank_temperature": 0,
    })
}

pub fn step(pump: &str, value: f64, seconds: f64) -> serde_json::Value {
    let mut s = serde_json::json!({
        "name": "step",
        "temperature": 92.0,
        "sensor": "coffee",
        "pump": pump,
        "transition": "fast",
        "pressure": 0,
        "flow": 0,
        "seconds": seconds,
        "volume": 0,
    });
    s[pump] = serde_json::json!(value);
    s
}
