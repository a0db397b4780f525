//! [`SimControl`]: fault injection, physical actions and observation of the simulated
//! world, for tests and demos. Every method takes effect at once (between two
//! half-cycles).

use std::sync::Arc;
use std::time::Duration;

use crate::de1::{De1Snapshot, FlowKind};
use crate::scale::ScaleStatus;
use crate::transport::Hub;
use crate::world::{ShotPoint, SimDevice, Trigger};

/// A button on the group head controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupHeadButton {
    Espresso,
    Steam,
    HotWater,
    Flush,
    /// Stop whatever is running.
    Stop,
}

/// A physical action the simulated hardware cannot do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the simulated machine has no group head controller")]
    NoGroupHeadController,
    #[error("no scale is simulated")]
    NoScale,
}

/// Everything observable at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSnapshot {
    pub de1: De1Snapshot,
    pub scale: Option<ScaleStatus>,
    /// Whether a central is connected to each device.
    pub de1_connected: bool,
    pub scale_connected: bool,
}

/// Handle on a running simulation (cheap to clone).
#[derive(Clone)]
pub struct SimControl {
    pub(crate) hub: Arc<Hub>,
}

impl SimControl {
    pub fn snapshot(&self) -> SimSnapshot {
        let g = self.hub.lock();
        SimSnapshot {
            de1: g.world.de1.snapshot(),
            scale: g.world.scale.as_ref().map(|s| s.status()),
            de1_connected: g.de1.link.as_ref().is_some_and(|l| !l.is_down()),
            scale_connected: g.scale.link.as_ref().is_some_and(|l| !l.is_down()),
        }
    }

    /// Poll (every 10 ms of tokio time) until `pred` holds; `None` after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&SimSnapshot) -> bool,
    ) -> Option<SimSnapshot> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let s = self.snapshot();
            if pred(&s) {
                return Some(s);
            }
            if tokio::time::Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // ----- connection faults --------------------------------------------------------

    /// Drop the link to `device` now; it can be reconnected at once.
    pub fn drop_connection(&self, device: SimDevice) {
        self.drop_connection_for(device, Duration::ZERO);
    }

    /// Drop the link and keep the device out of reach (no advertising, connections
    /// refused) for `down_for`.
    pub fn drop_connection_for(&self, device: SimDevice, down_for: Duration) {
        let mut g = self.hub.lock();
        g.drop_link(device, "link lost (simulated fault)", down_for);
    }

    /// Drop the link to `device` when the next espresso shot reaches `point`, keeping
    /// it out of reach for `down_for`.
    pub fn drop_connection_at(&self, device: SimDevice, point: ShotPoint, down_for: Duration) {
        let mut g = self.hub.lock();
        g.world.add_trigger(Trigger {
            point,
            device,
            down_for: down_for.as_secs_f64(),
        });
    }

    /// Every write to `device` takes this much longer (zero to stop).
    pub fn delay_writes(&self, device: SimDevice, delay: Duration) {
        self.hub.lock().link_mut(device).write_delay = delay;
    }

    /// The next `count` writes to `device` fail with a GATT error (and have no effect).
    pub fn fail_next_writes(&self, device: SimDevice, count: u32) {
        self.hub.lock().link_mut(device).failing_writes = count;
    }

    /// `device` stops (true) or resumes (false) sending notifications; the link stays up.
    pub fn mute_notifications(&self, device: SimDevice, muted: bool) {
        self.hub.lock().link_mut(device).muted = muted;
    }

    // ----- scale ------------------------------------------------------------------

    /// The next weight report reads `grams` (e.g. 1649), once.
    pub fn scale_glitch(&self, grams: f64) -> Result<(), ControlError> {
        self.with_scale(|s| s.glitch(grams))
    }

    /// The scale keeps repeating its last report (true) or recovers (false).
    pub fn freeze_scale(&self, frozen: bool) -> Result<(), ControlError> {
        self.with_scale(|s| s.freeze(frozen))
    }

    /// Put an empty cup on the pan.
    pub fn cup_on(&self) -> Result<(), ControlError> {
        self.with_scale(|s| s.cup_on())
    }

    /// Take the cup (with what is in it) off the pan.
    pub fn cup_off(&self) -> Result<(), ControlError> {
        self.with_scale(|s| s.cup_off())
    }

    /// Press a button on the scale (1 tares and is reported; others are reported).
    pub fn press_scale_button(&self, button: u8) -> Result<(), ControlError> {
        let mut g = self.hub.lock();
        let s = g.world.scale.as_mut().ok_or(ControlError::NoScale)?;
        s.press_button(button);
        g.world.collect();
        g.dispatch();
        Ok(())
    }

    fn with_scale(&self, f: impl FnOnce(&mut crate::scale::Scale)) -> Result<(), ControlError> {
        let mut g = self.hub.lock();
        let s = g.world.scale.as_mut().ok_or(ControlError::NoScale)?;
        f(s);
        Ok(())
    }

    // ----- machine ----------------------------------------------------------------

    /// Fill the water tank.
    pub fn refill_tank(&self) {
        self.hub.lock().world.de1.refill_tank();
    }

    /// Set the tank level (mm).
    pub fn set_water_level(&self, mm: f64) {
        self.hub.lock().world.de1.set_water_level(mm);
    }

    /// Press a button on the group head controller.
    pub fn press_group_head(&self, button: GroupHeadButton) -> Result<(), ControlError> {
        let kind = match button {
            GroupHeadButton::Espresso => Some(FlowKind::Espresso),
            GroupHeadButton::Steam => Some(FlowKind::Steam),
            GroupHeadButton::HotWater => Some(FlowKind::HotWater),
            GroupHeadButton::Flush => Some(FlowKind::Flush),
            GroupHeadButton::Stop => None,
        };
        let mut g = self.hub.lock();
        if !g.world.de1.press_group_head(kind) {
            return Err(ControlError::NoGroupHeadController);
        }
        g.world.collect();
        g.dispatch();
        Ok(())
    }

    /// Switch the machine off and on: the BLE link drops, a verified firmware update
    /// becomes the running firmware, and the machine comes back idle.
    pub fn power_cycle(&self) {
        let mut g = self.hub.lock();
        g.drop_link(
            SimDevice::De1,
            "machine switched off",
            Duration::from_secs(2),
        );
        g.world.de1.power_cycle();
        g.world.de1.outbox.clear();
    }
}
