//! The simulated world: the DE1, the scale, the cup between them, one random-number
//! generator and one clock (mains half-cycles). Synchronous and deterministic; the
//! transport drives it in real or paused tokio time, [`crate::run_shot`] drives it
//! directly.

use ble::Uuid;
use de1_protocol::characteristic::Characteristic;
use de1_protocol::state::Substate;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::config::SimConfig;
use crate::de1::De1;
use crate::scale::Scale;
use crate::GattError;

/// The two simulated peripherals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimDevice {
    De1,
    Scale,
}

/// A point in an espresso shot at which a fault fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShotPoint {
    /// When the profile reaches this frame (0-based).
    Frame(u8),
    /// When the DE1 enters this espresso substate (e.g. `Pour`).
    Substate(Substate),
    /// This many seconds after water starts flowing (PreInfuse or Pour entered).
    SecondsIntoPour(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trigger {
    pub point: ShotPoint,
    pub device: SimDevice,
    pub down_for: f64,
}

pub(crate) struct World {
    pub de1: De1,
    pub scale: Option<Scale>,
    rng: SmallRng,
    /// Notifications to deliver: (device, characteristic, value).
    pub outbox: Vec<(SimDevice, Uuid, Vec<u8>)>,
    triggers: Vec<Trigger>,
    /// Links the transport must drop now: (device, seconds unreachable).
    pub drops: Vec<(SimDevice, f64)>,
    pour_started_at: Option<f64>,
}

impl World {
    pub fn new(cfg: SimConfig) -> Self {
        let rng = SmallRng::seed_from_u64(cfg.seed);
        let scale = cfg.scale.clone().map(Scale::new);
        Self {
            de1: De1::new(cfg),
            scale,
            rng,
            outbox: Vec::new(),
            triggers: Vec::new(),
            drops: Vec::new(),
            pour_started_at: None,
        }
    }

    pub fn add_trigger(&mut self, t: Trigger) {
        self.triggers.push(t);
    }

    /// Advance one mains half-cycle.
    pub fn tick(&mut self) {
        let out = self.de1.tick(&mut self.rng);
        let dt = self.de1.dt();
        if let Some(s) = self.scale.as_mut() {
            s.pour(out.to_cup);
            if out.pour_ended {
                s.start_drips();
            }
            s.tick(dt, &mut self.rng);
        }
        self.check_triggers();
        self.collect();
    }

    fn check_triggers(&mut self) {
        use de1_protocol::state::{MachineState as S, Substate as Sub};
        let (state, sub) = self.de1.state();
        let pouring = state == S::Espresso && matches!(sub, Sub::PreInfuse | Sub::Pour);
        if pouring {
            self.pour_started_at.get_or_insert(self.de1.time());
        } else if state != S::Espresso {
            self.pour_started_at = None;
        }
        if self.triggers.is_empty() {
            return;
        }
        let now = self.de1.time();
        let frame = self.de1.frame();
        let started = self.pour_started_at;
        let mut fired = Vec::new();
        self.triggers.retain(|t| {
            let hit = state == S::Espresso
                && match t.point {
                    ShotPoint::Frame(n) => pouring && frame >= n,
                    ShotPoint::Substate(s) => sub == s,
                    ShotPoint::SecondsIntoPour(secs) => {
                        started.is_some_and(|t0| now - t0 + 1e-9 >= secs)
                    }
                };
            if hit {
                fired.push((t.device, t.down_for));
            }
            !hit
        });
        self.drops.extend(fired);
    }

    /// Move the devices' notifications to the world outbox.
    pub fn collect(&mut self) {
        for (c, b) in self.de1.outbox.drain(..) {
            self.outbox.push((SimDevice::De1, Uuid(c.uuid()), b));
        }
        if let Some(s) = self.scale.as_mut() {
            for (u, b) in s.outbox.drain(..) {
                self.outbox.push((SimDevice::Scale, Uuid::from_u128(u), b));
            }
        }
    }

    pub fn write(&mut self, dev: SimDevice, uuid: Uuid, bytes: &[u8]) -> Result<(), GattError> {
        let r = match dev {
            SimDevice::De1 => {
                let c = Characteristic::from_uuid(&uuid.0).ok_or(GattError::NotFound)?;
                self.de1.write(c, bytes)
            }
            SimDevice::Scale => match self.scale.as_mut() {
                Some(s) => s.write(uuid.as_u128(), bytes),
                None => Err(GattError::NotFound),
            },
        };
        self.collect();
        r
    }

    pub fn read(&self, dev: SimDevice, uuid: Uuid) -> Result<Vec<u8>, GattError> {
        match dev {
            SimDevice::De1 => {
                let c = Characteristic::from_uuid(&uuid.0).ok_or(GattError::NotFound)?;
                self.de1.read(c)
            }
            SimDevice::Scale => match self.scale.as_ref() {
                Some(s) => s.read(uuid.as_u128()),
                None => Err(GattError::NotFound),
            },
        }
    }

    /// The characteristics a device exposes: (uuid, notify-capable).
    pub fn characteristics(&self, dev: SimDevice) -> Vec<(Uuid, bool)> {
        match dev {
            SimDevice::De1 => Characteristic::ALL
                .iter()
                .map(|c| (Uuid(c.uuid()), c.properties().notify))
                .collect(),
            SimDevice::Scale => crate::scale::CHARACTERISTICS
                .iter()
                .map(|&(u, _, _, n)| (Uuid::from_u128(u), n))
                .collect(),
        }
    }
}
