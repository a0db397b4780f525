//! Heaters and temperature sensors, as first-order lags with rate limits.
//!
//! * The water heater heats toward its target at a limited rate (its lag is why a shot
//!   begins with heat-up substates).
//! * While water flows, the mix temperature (after the mixing valve) follows the set mix
//!   temperature, but cannot exceed what the heater delivers.
//! * The head (basket) temperature follows the mix temperature minus the group's loss,
//!   more slowly; at rest it drifts to the group heater's target.
//! * The steam heater heats toward its target and is cooled by steaming.

/// Room temperature the machine cools to (°C).
pub const AMBIENT: f64 = 22.0;
/// Fastest the water heater warms (°C/s).
pub const WATER_HEATER_RATE: f64 = 2.5;
/// Fastest the steam heater warms (°C/s).
pub const STEAM_HEATER_RATE: f64 = 3.0;
/// How much cooler the basket is than the water entering it (°C).
pub const GROUP_LOSS: f64 = 1.0;

/// Heater targets for this half-cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeatDemand {
    /// Water heater target (°C); `None` = heater off (sleep).
    pub water_heater: Option<f64>,
    /// Group heater target (°C); `None` = off.
    pub group: Option<f64>,
    /// Steam heater target (°C); `None` = off.
    pub steam: Option<f64>,
    /// Set mix temperature while water flows (°C).
    pub set_mix: f64,
    /// Water is flowing through the mixer (mL/s).
    pub flow: f64,
    /// Steam is being drawn.
    pub steaming: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thermal {
    pub water_heater: f64,
    pub mix: f64,
    pub head: f64,
    pub steam: f64,
}

fn approach(value: f64, target: f64, tau: f64, dt: f64) -> f64 {
    value + (target - value) * (1.0 - (-dt / tau.max(1e-6)).exp())
}

fn approach_limited(value: f64, target: f64, tau: f64, rate_up: f64, dt: f64) -> f64 {
    let next = approach(value, target, tau, dt);
    if next > value {
        next.min(value + rate_up * dt)
    } else {
        next
    }
}

impl Thermal {
    /// A machine that has been on and idle: everything at its idle target.
    pub fn warm(water_heater: f64, group: f64, steam: f64) -> Self {
        Self {
            water_heater,
            mix: water_heater - 4.0,
            head: group,
            steam,
        }
    }

    /// A machine that has been off.
    pub fn cold() -> Self {
        Self {
            water_heater: AMBIENT,
            mix: AMBIENT,
            head: AMBIENT,
            steam: AMBIENT,
        }
    }

    pub fn step(&mut self, d: &HeatDemand, dt: f64) {
        // Water heater: heats at a limited rate, cools slowly when off.
        let wh_target = d.water_heater.unwrap_or(AMBIENT);
        let wh_tau = if d.water_heater.is_some() { 1.2 } else { 900.0 };
        self.water_heater =
            approach_limited(self.water_heater, wh_target, wh_tau, WATER_HEATER_RATE, dt);

        // Mix temperature: follows the set value while flowing, capped by the heater.
        if d.flow > 0.05 {
            let target = d.set_mix.min(self.water_heater + 1.0);
            self.mix = approach(self.mix, target, 0.8, dt);
        } else {
            let rest = self.head.min(self.water_heater);
            self.mix = approach(self.mix, rest, 20.0, dt);
        }

        // Basket / head: heated by the water flowing through, else by the group heater.
        if d.flow > 0.05 {
            self.head = approach(self.head, self.mix - GROUP_LOSS, 3.0, dt);
        } else {
            let target = d.group.unwrap_or(AMBIENT);
            let tau = if d.group.is_some() { 30.0 } else { 900.0 };
            self.head = approach(self.head, target, tau, dt);
        }

        // Steam heater.
        let st_target = d.steam.unwrap_or(AMBIENT);
        let st_tau = if d.steam.is_some() { 4.0 } else { 600.0 };
        self.steam = approach_limited(self.steam, st_target, st_tau, STEAM_HEATER_RATE, dt);
        if d.steaming {
            // Steaming draws heat faster than the heater replaces it near the target.
            self.steam -= 0.8 * dt;
        }

        for v in [
            &mut self.water_heater,
            &mut self.mix,
            &mut self.head,
            &mut self.steam,
        ] {
            if !v.is_finite() {
                *v = AMBIENT;
            }
            *v = v.clamp(0.0, 250.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(flow: f64, set_mix: f64) -> HeatDemand {
        HeatDemand {
            water_heater: Some(set_mix + 1.0),
            group: Some(set_mix),
            steam: Some(150.0),
            set_mix,
            flow,
            steaming: false,
        }
    }

    #[test]
    fn mix_and_head_follow_the_set_temperature_while_flowing() {
        let mut t = Thermal::warm(85.0, 90.0, 150.0);
        for _ in 0..2000 {
            t.step(&demand(2.0, 93.0), 0.01);
        }
        assert!((t.mix - 93.0).abs() < 0.2, "{}", t.mix);
        assert!((t.head - (93.0 - GROUP_LOSS)).abs() < 0.5, "{}", t.head);
    }

    #[test]
    fn the_water_heater_warms_at_a_limited_rate() {
        let mut t = Thermal::warm(85.0, 90.0, 150.0);
        for _ in 0..100 {
            t.step(&demand(0.0, 95.0), 0.01);
        }
        assert!(t.water_heater <= 85.0 + WATER_HEATER_RATE + 1e-9);
        assert!(t.water_heater > 86.0);
    }

    #[test]
    fn everything_cools_when_heaters_are_off() {
        let mut t = Thermal::warm(85.0, 90.0, 150.0);
        let off = HeatDemand {
            water_heater: None,
            group: None,
            steam: None,
            set_mix: 0.0,
            flow: 0.0,
            steaming: false,
        };
        for _ in 0..3600 {
            t.step(&off, 1.0);
        }
        assert!(t.water_heater < 30.0 && t.steam < 30.0 && t.head < 30.0);
    }
}
