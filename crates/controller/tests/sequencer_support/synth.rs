//! Drive the sequencer directly with made-up reports on a virtual clock (no simulator).

use std::time::{Duration, Instant};

use controller::scale::{ScaleModel, WeightReading};
use controller::sequencer::{Action, EpochAnchor, Sequencer, SequencerSettings};
use de1_protocol::packets::shot_sample::{ShotSample, ShotSampleValues};
use de1_protocol::state::{MachineState, Substate};
use ipc_schema::event::{
    AutoTareAction, Event, Gate, GateAction, SequenceId, StopAtAction, StopAtKind,
    StopAtNotification,
};

pub const EPOCH0: f64 = 1_800_000_000.0;

pub struct Synth {
    pub seq: Sequencer,
    pub t0: Instant,
    /// Seconds since `t0`.
    pub t: f64,
    pub actions: Vec<(f64, Action)>,
    pub sample_time: u16,
    pub frame: u8,
}

impl Synth {
    pub fn new(settings: SequencerSettings) -> Synth {
        let t0 = Instant::now();
        let seq = Sequencer::try_new(settings, EpochAnchor::new(t0, EPOCH0), 7).expect("valid");
        Synth {
            seq,
            t0,
            t: 0.0,
            actions: Vec::new(),
            sample_time: 0,
            frame: 0,
        }
    }

    pub fn at(&self, t: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(t)
    }

    pub fn now(&self) -> Instant {
        self.at(self.t)
    }

    fn record(&mut self, a: Vec<Action>) -> Vec<Action> {
        for x in &a {
            self.actions.push((self.t, x.clone()));
        }
        a
    }

    pub fn advance(&mut self, dt: f64) -> Vec<Action> {
        self.t += dt;
        let a = self.seq.on_tick(self.now());
        self.record(a)
    }

    pub fn state(&mut self, s: MachineState, sub: Substate) -> Vec<Action> {
        let a = self.seq.on_state(self.now(), s, sub);
        self.record(a)
    }

    pub fn scale(&mut self) -> Vec<Action> {
        let a = self.seq.on_scale_connected(self.now(), ScaleModel::SkaleII);
        self.record(a)
    }

    pub fn weight(&mut self, grams: f64) -> Vec<Action> {
        let r = WeightReading {
            arrival: self.now(),
            grams,
        };
        let a = self.seq.on_weight(self.now(), r);
        self.record(a)
    }

    /// A ShotSample now (SampleTime advances 25 half-cycles per call).
    pub fn sample(&mut self, pressure: f64, flow: f64) -> Vec<Action> {
        self.sample_time = self.sample_time.wrapping_add(25);
        let s = ShotSample::from_values_saturating(&ShotSampleValues {
            sample_time: self.sample_time,
            group_pressure: pressure,
            group_flow: flow,
            mix_temp: 92.0,
            head_temp: 92.0,
            set_mix_temp: 92.0,
            set_head_temp: 92.0,
            set_group_pressure: pressure,
            set_group_flow: flow,
            frame_number: self.frame,
            steam_temp: 150.0,
        });
        let a = self.seq.on_shot_sample(self.now(), &s);
        self.record(a)
    }

    pub fn events(&self) -> Vec<&Event> {
        self.actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Emit(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    pub fn gates(&self) -> Vec<(Gate, GateAction, SequenceId)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::SequencerGateNotification(g) => Some((g.name, g.action, g.sequence_id)),
                _ => None,
            })
            .collect()
    }

    pub fn gate_sets(&self) -> Vec<Gate> {
        self.gates()
            .into_iter()
            .filter(|g| g.1 == GateAction::Set)
            .map(|g| g.0)
            .collect()
    }

    /// Time (s since t0) a gate was set.
    pub fn gate_time(&self, gate: Gate) -> Option<f64> {
        self.actions.iter().find_map(|(t, a)| match a {
            Action::Emit(Event::SequencerGateNotification(g))
                if g.name == gate && g.action == GateAction::Set =>
            {
                Some(*t)
            }
            _ => None,
        })
    }

    pub fn stop_ats(&self) -> Vec<StopAtNotification> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::StopAtNotification(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    pub fn stop_at(&self, kind: StopAtKind, action: StopAtAction) -> Vec<StopAtNotification> {
        self.stop_ats()
            .into_iter()
            .filter(|s| s.stop_at == kind && s.action == action)
            .collect()
    }

    pub fn auto_tare(&self) -> Vec<AutoTareAction> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::AutoTareNotification(a) => Some(a.action),
                _ => None,
            })
            .collect()
    }

    pub fn requests(&self, s: MachineState) -> Vec<f64> {
        self.actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::RequestState(x) if *x == s => Some(*t),
                _ => None,
            })
            .collect()
    }

    pub fn tares(&self) -> usize {
        self.actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::TareScale))
            .count()
    }
}
