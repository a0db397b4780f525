//! A minimal glue loop between the simulated DE1 + Skale II (through the `ble` traits)
//! and the flow sequencer, for tests and the accuracy bench. The real controller
//! process does the same with more care (reconnection, settings, the API).
#![allow(dead_code)]

pub mod synth;

use std::sync::Arc;
use std::time::Duration;

use ble::{Address, NotificationStream, Peripheral, Transport, Uuid, WriteKind};
use controller::scale::{Scale, ScaleEvent, ScaleEvents};
use controller::sequencer::{Action, EpochAnchor, Sequencer, SequencerSettings};
use de1_protocol::characteristic::Characteristic as C;
use de1_protocol::packets::{RequestedState, ShotSample, StateInfo};
use de1_protocol::profile::{encode_profile, EncodedProfile};
use de1_protocol::state::{MachineState, Substate};
use de1_sim::{SimConfig, SimControl, SimTransport, DE1_ADDRESS, SKALE_ADDRESS};
use futures::StreamExt;
use ipc_schema::event::{Event, Gate, GateAction, StopAtAction, StopAtKind, StopAtNotification};
use tokio::time::Instant;

/// Epoch seconds the rig's clock starts at.
pub const EPOCH0: f64 = 1_800_000_000.0;

pub fn uuid(c: C) -> Uuid {
    Uuid(c.uuid())
}

/// A stock profile from the shared test vectors.
pub fn stock_profile(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/vectors/profiles/de1app__{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What the rig saw, in order.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: Instant,
    pub kind: RecordKind,
}

// A test log: most records are actions, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RecordKind {
    State(MachineState, Substate),
    Action(Action),
}

pub struct Rig {
    pub transport: SimTransport,
    pub control: SimControl,
    pub de1: Arc<dyn Peripheral>,
    pub scale: Option<Scale>,
    pub seq: Sequencer,
    pub log: Vec<Record>,
    pub start: Instant,
    states: NotificationStream,
    samples: NotificationStream,
    scale_events: Option<ScaleEvents>,
    pub state: (MachineState, Substate),
}

impl Rig {
    /// Start a simulation and connect the DE1 (and the scale, if simulated).
    pub async fn new(cfg: SimConfig, settings: SequencerSettings) -> Rig {
        let has_scale = cfg.scale.is_some();
        let seed = cfg.seed;
        let (transport, control) = de1_sim::simulator(cfg);
        let start = Instant::now();
        let anchor = EpochAnchor::new(start.into_std(), EPOCH0);
        let mut seq = Sequencer::try_new(settings, anchor, seed).expect("valid settings");
        let de1 = transport
            .connect(&Address::new(DE1_ADDRESS))
            .await
            .expect("connect to the simulated DE1");
        let states = de1.subscribe(uuid(C::StateInfo)).await.expect("subscribe");
        let samples = de1.subscribe(uuid(C::ShotSample)).await.expect("subscribe");
        let now = Instant::now();
        let info = StateInfo::decode(&de1.read(uuid(C::StateInfo)).await.expect("read"))
            .expect("StateInfo");
        let mut log = Vec::new();
        for a in seq.on_state(now.into_std(), info.state, info.substate) {
            log.push(Record {
                at: now,
                kind: RecordKind::Action(a),
            });
        }
        let mut rig = Rig {
            transport,
            control,
            de1,
            scale: None,
            seq,
            log,
            start,
            states,
            samples,
            scale_events: None,
            state: (info.state, info.substate),
        };
        if has_scale {
            rig.connect_scale().await;
        }
        rig
    }

    pub async fn connect_scale(&mut self) {
        let (scale, events) = Scale::connect(&self.transport, &Address::new(SKALE_ADDRESS))
            .await
            .expect("connect to the simulated Skale");
        let now = Instant::now();
        let actions = self.seq.on_scale_connected(now.into_std(), scale.model());
        self.scale = Some(scale);
        self.scale_events = Some(events);
        self.apply(now, actions).await;
    }

    pub async fn upload(&mut self, source: &[u8]) -> EncodedProfile {
        let enc = encode_profile(source).expect("profile encodes");
        for (c, bytes) in enc.writes() {
            self.de1
                .write(uuid(c), &bytes, WriteKind::WithResponse)
                .await
                .expect("profile write");
        }
        self.seq.on_profile(&enc);
        enc
    }

    pub async fn request(&mut self, s: MachineState) {
        self.de1
            .write(
                uuid(C::RequestedState),
                &RequestedState::new(s).encode(),
                WriteKind::WithResponse,
            )
            .await
            .expect("RequestedState write");
    }

    async fn apply(&mut self, at: Instant, actions: Vec<Action>) {
        for a in actions {
            self.log.push(Record {
                at,
                kind: RecordKind::Action(a.clone()),
            });
            match a {
                Action::RequestState(s) => self.request(s).await,
                Action::TareScale => {
                    if let Some(scale) = &self.scale {
                        if let Err(e) = scale.tare().await {
                            log::warn!("tare: {e}");
                        }
                    }
                }
                Action::Emit(_) => {}
            }
        }
    }

    /// Run the glue loop until `done` says so (checked after every input) or `limit`.
    /// Returns false on timeout.
    pub async fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Rig) -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            let tick = self
                .seq
                .next_deadline()
                .map(Instant::from_std)
                .unwrap_or(end)
                .min(now + Duration::from_millis(100))
                .min(end)
                .max(now + Duration::from_millis(1));
            let scale_next = async {
                match self.scale_events.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            };
            enum In {
                State(Option<ble::Notification>),
                Sample(Option<ble::Notification>),
                Scale(Option<ScaleEvent>),
                Tick,
            }
            let input = tokio::select! {
                biased;
                n = self.states.next() => In::State(n),
                n = self.samples.next() => In::Sample(n),
                e = scale_next => In::Scale(e),
                _ = tokio::time::sleep_until(tick) => In::Tick,
            };
            let now = Instant::now();
            let actions = match input {
                In::State(Some(n)) => match StateInfo::decode(&n.value) {
                    Ok(s) => {
                        self.state = (s.state, s.substate);
                        self.log.push(Record {
                            at: now,
                            kind: RecordKind::State(s.state, s.substate),
                        });
                        self.seq.on_state(now.into_std(), s.state, s.substate)
                    }
                    Err(_) => Vec::new(),
                },
                In::Sample(Some(n)) => match ShotSample::decode(&n.value) {
                    Ok(s) => self.seq.on_shot_sample(now.into_std(), &s),
                    Err(_) => Vec::new(),
                },
                In::Scale(Some(ScaleEvent::Weight(w))) => self.seq.on_weight(now.into_std(), w),
                In::Scale(Some(ScaleEvent::Button { arrival, button })) => {
                    self.seq.on_scale_button(now.into_std(), arrival, button)
                }
                In::Scale(None) => {
                    self.scale_events = None;
                    self.scale = None;
                    self.seq.on_scale_disconnected(now.into_std())
                }
                In::State(None) | In::Sample(None) => {
                    panic!("the simulated DE1 dropped its link")
                }
                In::Tick => self.seq.on_tick(now.into_std()),
            };
            self.apply(now, actions).await;
        }
    }

    /// Pull one espresso shot: request Espresso and run until the sequence completes.
    pub async fn pull_shot(&mut self) -> bool {
        self.request(MachineState::Espresso).await;
        let from = self.log.len();
        self.run_until(Duration::from_secs(300), |r| {
            r.log[from..].iter().any(|rec| {
                matches!(&rec.kind, RecordKind::Action(Action::Emit(Event::SequencerGateNotification(g)))
                    if g.name == Gate::SequenceComplete && g.action == GateAction::Set)
            })
        })
        .await
    }

    /// Run for a while longer (drips, idle reports).
    pub async fn settle(&mut self, d: Duration) {
        self.run_until(d, |_| false).await;
    }

    // ----- queries on the log ----------------------------------------------------------

    pub fn events(&self) -> impl Iterator<Item = (&Instant, &Event)> {
        self.log.iter().filter_map(|r| match &r.kind {
            RecordKind::Action(Action::Emit(e)) => Some((&r.at, e)),
            _ => None,
        })
    }

    pub fn gates(&self) -> Vec<(Gate, GateAction)> {
        self.events()
            .filter_map(|(_, e)| match e {
                Event::SequencerGateNotification(g) => Some((g.name, g.action)),
                _ => None,
            })
            .collect()
    }

    pub fn stop_ats(&self) -> Vec<StopAtNotification> {
        self.events()
            .filter_map(|(_, e)| match e {
                Event::StopAtNotification(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    pub fn triggered(&self, kind: StopAtKind) -> Vec<StopAtNotification> {
        self.stop_ats()
            .into_iter()
            .filter(|s| s.stop_at == kind && s.action == StopAtAction::Triggered)
            .collect()
    }

    pub fn requests(&self, s: MachineState) -> usize {
        self.log
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::Action(Action::RequestState(x)) if x == s))
            .count()
    }

    pub fn tares(&self) -> usize {
        self.log
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::Action(Action::TareScale)))
            .count()
    }

    /// The substates the DE1 reported, in order.
    pub fn states(&self) -> Vec<(MachineState, Substate)> {
        self.log
            .iter()
            .filter_map(|r| match r.kind {
                RecordKind::State(s, sub) => Some((s, sub)),
                _ => None,
            })
            .collect()
    }

    /// The last raw weight the scale reported.
    pub fn scale_weight(&self) -> Option<f64> {
        self.control.snapshot().scale.and_then(|s| s.last_report_g)
    }

    /// Liquid in the cup (the simulation's truth).
    pub fn liquid(&self) -> Option<f64> {
        self.control.snapshot().scale.map(|s| s.liquid_g)
    }
}

/// Default simulation for a shot with the given seed.
pub fn sim(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        ..SimConfig::default()
    }
}

/// One shot's outcome for the accuracy study.
#[derive(Debug, Clone, Copy)]
pub struct ShotOutcome {
    pub target: f64,
    /// Scale reading when the sequence completed (last drops waited for).
    pub settled: f64,
    /// The cup's true content at that moment.
    pub liquid: f64,
    pub stops: usize,
}

/// The five stock profiles and 20 targets (18–45 g) of the accuracy study.
pub const ACCURACY_PROFILES: [&str; 5] = [
    "classic_italian_espresso",
    "londonium",
    "turbobloom",
    "trendy_6_bar_low_pressure_shot",
    "d_flow_q",
];

pub fn accuracy_plan() -> Vec<(&'static str, f64, u64)> {
    (0..20u64)
        .map(|i| {
            let profile = ACCURACY_PROFILES[(i % 5) as usize];
            // Spread 18 … 45 g over the 20 shots, each profile seeing low and high ones.
            let target = 18.0 + (((i * 7) % 20) as f64) * 27.0 / 19.0;
            (profile, (target * 10.0).round() / 10.0, 100 + i)
        })
        .collect()
}

/// Pull the accuracy shots with `settings`, carrying the learned drip allowance from
/// shot to shot (as the controller persists it).
pub async fn accuracy_run(settings: SequencerSettings) -> Vec<ShotOutcome> {
    accuracy_run_with(settings, |_| {}).await
}

/// As [`accuracy_run`], with the simulation adjusted by `tweak`.
pub async fn accuracy_run_with(
    settings: SequencerSettings,
    tweak: impl Fn(&mut SimConfig),
) -> Vec<ShotOutcome> {
    let mut out = Vec::new();
    let mut allowance = settings.stop.drip_allowance;
    for (profile, target, seed) in accuracy_plan() {
        let mut cfg = sim(seed);
        tweak(&mut cfg);
        let mut rig = Rig::new(cfg, settings.clone()).await;
        rig.seq.set_drip_allowance(allowance);
        rig.upload(&stock_profile(profile)).await;
        let mut esp = rig.seq.espresso_control().clone();
        esp.stop_at_weight = Some(target);
        // The profiles' own volume limits would end some long shots first.
        esp.stop_at_volume = None;
        rig.seq.set_espresso_control(esp).expect("valid");
        assert!(rig.pull_shot().await, "{profile}: shot did not complete");
        out.push(ShotOutcome {
            target,
            settled: rig.scale_weight().unwrap_or(f64::NAN),
            liquid: rig.liquid().unwrap_or(f64::NAN),
            stops: rig.requests(MachineState::Idle),
        });
        allowance = rig.seq.drip_allowance();
    }
    out
}

/// A scale fault injected during a shot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// The scale link drops this many seconds into the pour, for good.
    Drop(f64),
    /// The scale repeats its last report from this fraction of the target on.
    Freeze(f64),
}

/// One shot with a scale fault; returns what ended up in the cup and the stop count.
pub async fn fault_shot(profile: &str, target: f64, seed: u64, fault: Fault) -> ShotOutcome {
    let mut rig = Rig::new(sim(seed), SequencerSettings::default()).await;
    rig.upload(&stock_profile(profile)).await;
    let mut esp = rig.seq.espresso_control().clone();
    esp.stop_at_weight = Some(target);
    esp.stop_at_volume = None;
    rig.seq.set_espresso_control(esp).expect("valid");
    match fault {
        Fault::Drop(secs) => {
            rig.control.drop_connection_at(
                de1_sim::SimDevice::Scale,
                de1_sim::ShotPoint::SecondsIntoPour(secs),
                Duration::from_secs(600),
            );
            rig.request(MachineState::Espresso).await;
        }
        Fault::Freeze(fraction) => {
            rig.request(MachineState::Espresso).await;
            let at = target * fraction;
            rig.run_until(Duration::from_secs(200), |r| {
                r.scale_weight().is_some_and(|w| w >= at && w < 500.0)
            })
            .await;
            rig.control.freeze_scale(true).expect("scale");
        }
    }
    let from = rig.log.len();
    let done = rig
        .run_until(Duration::from_secs(300), |r| {
            r.log[from..].iter().any(|rec| {
                matches!(&rec.kind, RecordKind::Action(Action::Emit(Event::SequencerGateNotification(g)))
                    if g.name == Gate::SequenceComplete && g.action == GateAction::Set)
            })
        })
        .await;
    assert!(done, "{profile}: the sequence did not complete");
    ShotOutcome {
        target,
        settled: rig.scale_weight().unwrap_or(f64::NAN),
        liquid: rig.liquid().unwrap_or(f64::NAN),
        stops: rig.requests(MachineState::Idle),
    }
}

/// Text summary of the errors (settled − target).
pub fn summary(label: &str, shots: &[ShotOutcome]) -> String {
    let mut errs: Vec<f64> = shots.iter().map(|s| s.settled - s.target).collect();
    let within = errs.iter().filter(|e| e.abs() <= 1.0).count();
    let mean = errs.iter().sum::<f64>() / errs.len() as f64;
    let sd = (errs.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / errs.len() as f64).sqrt();
    errs.sort_by(f64::total_cmp);
    let list: Vec<String> = shots
        .iter()
        .map(|s| format!("{:+.1}", s.settled - s.target))
        .collect();
    format!(
        "{label}: {within}/{} within ±1.0 g; error mean {mean:+.2} g, sd {sd:.2} g, min {:+.2}, median {:+.2}, max {:+.2}\n  per shot: {}",
        shots.len(),
        errs.first().copied().unwrap_or(f64::NAN),
        errs[errs.len() / 2],
        errs.last().copied().unwrap_or(f64::NAN),
        list.join(" ")
    )
}
