//! Pump, group and puck: turns a pressure or flow demand into the pressure at the group
//! and the flows into and out of it.
//!
//! The model is a compliant head space between the pump and the puck:
//!
//! * the pump delivers `pump_flow` (what the DE1 reports as GroupFlow: its flow
//!   estimate is the pump's), limited to [`PumpLimits`];
//! * water first fills the basket head space and wets the puck (`fill_volume`) at
//!   almost no pressure, then compresses against the puck: `pressure = stored / C`;
//! * the puck passes `out_flow = pressure / R`, where the resistance `R` swells as the
//!   puck wets up and falls as it erodes with the water that went through it.
//!
//! The firmware's controllers are modelled as proportional loops on that plant, so a
//! pressure target is reached with a ~0.5 s time constant and held exactly, and a flow
//! target is delivered exactly unless a pressure limit (limiter frame, pump maximum)
//! takes over.

/// What the controller asks of the pump this half-cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Drive {
    /// Pump off, no flow.
    Off,
    /// Hold `target` bar; the flow may not exceed `max_flow` mL/s.
    Pressure { target: f64, max_flow: f64 },
    /// Deliver `target` mL/s; the pressure may not exceed `max_pressure` bar and (when
    /// non-zero) is kept up to `min_pressure` bar.
    Flow {
        target: f64,
        max_pressure: f64,
        min_pressure: f64,
    },
}

/// What the water flows through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Path {
    /// A portafilter with a coffee puck (espresso).
    Puck,
    /// An open outlet with a fixed, low resistance (hot-water spout, flush without a
    /// portafilter, steam wand).
    Open { resistance: f64 },
}

/// Physical limits of the pump.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PumpLimits {
    /// mL/s.
    pub max_flow: f64,
    /// bar.
    pub max_pressure: f64,
}

impl Default for PumpLimits {
    fn default() -> Self {
        Self {
            max_flow: 8.0,
            max_pressure: 12.0,
        }
    }
}

/// The coffee puck's hydraulic character.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PuckModel {
    /// Water taken up by the head space and the dry puck before pressure builds (mL).
    pub fill_volume: f64,
    /// Resistance of the freshly wetted puck (bar per mL/s).
    pub resistance: f64,
    /// Relative increase of resistance as the puck swells (0.6 = +60 %).
    pub swell: f64,
    /// Volume through the puck over which swelling happens (mL).
    pub swell_volume: f64,
    /// Volume through the puck that halves its resistance by erosion (mL).
    pub erode_volume: f64,
}

impl Default for PuckModel {
    /// An 18 g espresso puck: ~2 mL/s at 9 bar at its tightest, opening up to ~3 mL/s
    /// by the end of a 40 g shot.
    fn default() -> Self {
        Self {
            fill_volume: 24.0,
            resistance: 2.9,
            swell: 0.6,
            swell_volume: 6.0,
            erode_volume: 110.0,
        }
    }
}

impl PuckModel {
    /// Resistance after `through` mL have passed.
    pub fn resistance_after(&self, through: f64) -> f64 {
        let swelling = 1.0 + self.swell * (1.0 - (-through / self.swell_volume.max(1e-6)).exp());
        let erosion = 1.0 + through / self.erode_volume.max(1e-6);
        (self.resistance * swelling / erosion).max(0.05)
    }
}

/// Head-space compliance once the puck is saturated (mL per bar).
const COMPLIANCE: f64 = 0.8;
/// Time constant of the firmware's pressure loop (s).
const PRESSURE_LOOP_TAU: f64 = 0.5;
/// Time constant of the pump's response to a new flow command (s).
const PUMP_TAU: f64 = 0.08;
/// Pressure reached while the head space is still filling (bar).
const FILL_PRESSURE: f64 = 0.3;

/// The hydraulic state of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct Hydraulics {
    pub limits: PumpLimits,
    pub puck: PuckModel,
    pub path: Path,
    /// Water held in the group beyond what fills the head space (mL).
    stored: f64,
    /// Water that went into filling/wetting (mL, up to the fill volume).
    filled: f64,
    /// Cumulative water through the puck or outlet (mL).
    through: f64,
    /// Current pump flow (mL/s).
    pub pump_flow: f64,
    /// Current flow leaving through the puck or outlet (mL/s).
    pub out_flow: f64,
    /// Current group pressure (bar).
    pub pressure: f64,
}

impl Hydraulics {
    pub fn new(limits: PumpLimits, puck: PuckModel) -> Self {
        Self {
            limits,
            puck,
            path: Path::Open { resistance: 0.3 },
            stored: 0.0,
            filled: 0.0,
            through: 0.0,
            pump_flow: 0.0,
            out_flow: 0.0,
            pressure: 0.0,
        }
    }

    /// Start a new operation through `path` (a fresh puck for [`Path::Puck`]).
    pub fn reset(&mut self, path: Path) {
        self.path = path;
        self.stored = 0.0;
        self.filled = match path {
            Path::Puck => 0.0,
            Path::Open { .. } => f64::INFINITY,
        };
        self.through = 0.0;
        self.pump_flow = 0.0;
        self.out_flow = 0.0;
        self.pressure = 0.0;
    }

    /// Release the pressure (the flush valve opens at the end of a shot).
    pub fn vent(&mut self) {
        self.stored = 0.0;
        self.pressure = 0.0;
        self.out_flow = 0.0;
    }

    fn fill_volume(&self) -> f64 {
        match self.path {
            Path::Puck => self.puck.fill_volume,
            Path::Open { .. } => 0.0,
        }
    }

    /// The resistance the water meets now.
    pub fn resistance(&self) -> f64 {
        match self.path {
            Path::Puck => self.puck.resistance_after(self.through),
            Path::Open { resistance } => resistance.max(0.01),
        }
    }

    fn saturated(&self) -> bool {
        self.filled >= self.fill_volume()
    }

    /// Flow the pump must deliver to move the pressure toward `target` with the
    /// pressure loop's time constant.
    fn flow_for_pressure(&self, target: f64) -> f64 {
        if !self.saturated() {
            // Nothing to push against yet: fill as fast as allowed.
            return f64::INFINITY;
        }
        self.out_flow + COMPLIANCE * (target - self.pressure) / PRESSURE_LOOP_TAU
    }

    /// Advance by `dt` seconds under `drive`. Returns the volume the pump delivered.
    pub fn step(&mut self, drive: Drive, dt: f64) -> f64 {
        let lim = self.limits;
        let command = match drive {
            Drive::Off => 0.0,
            Drive::Pressure { target, max_flow } => {
                let target = target.min(lim.max_pressure);
                self.flow_for_pressure(target).min(max_flow)
            }
            Drive::Flow {
                target,
                max_pressure,
                min_pressure,
            } => {
                let ceiling = self.flow_for_pressure(max_pressure.min(lim.max_pressure));
                let mut q = target.min(ceiling);
                if min_pressure > 0.0 && self.saturated() && self.pressure < min_pressure {
                    q = q.max(self.flow_for_pressure(min_pressure));
                }
                q
            }
        };
        // The pump cannot push against more than its maximum pressure.
        let command = if self.pressure >= lim.max_pressure {
            command.min(self.out_flow)
        } else {
            command
        };
        let command = command.clamp(0.0, lim.max_flow);
        if matches!(drive, Drive::Off) {
            self.pump_flow = 0.0;
        } else {
            let a = (dt / PUMP_TAU).min(1.0);
            self.pump_flow += (command - self.pump_flow) * a;
        }
        let delivered = self.pump_flow * dt;

        // Fill the head space / wet the puck first.
        let mut to_store = delivered;
        let fill = self.fill_volume();
        if self.filled < fill {
            let take = to_store.min(fill - self.filled);
            self.filled += take;
            to_store -= take;
        }
        let r = self.resistance();
        // Integrate stored volume with outflow pressure/R, semi-implicitly so large
        // steps on an open outlet stay stable.
        let tau = COMPLIANCE * r;
        let stored_in = self.stored + to_store;
        let decay = (-dt / tau).exp();
        let stored_after = stored_in * decay;
        let out = (stored_in - stored_after).max(0.0);
        self.stored = stored_after.max(0.0);
        self.through += out;
        self.out_flow = out / dt;
        self.pressure = if self.saturated() {
            self.stored / COMPLIANCE
        } else {
            FILL_PRESSURE * self.filled / fill.max(1e-6)
        };
        delivered
    }

    /// Volume that has gone through the puck or outlet.
    pub fn through(&self) -> f64 {
        self.through
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DT: f64 = 0.01;

    fn run(h: &mut Hydraulics, drive: Drive, seconds: f64) {
        let n = (seconds / DT).round() as usize;
        for _ in 0..n {
            h.step(drive, DT);
        }
    }

    fn puck() -> Hydraulics {
        let mut h = Hydraulics::new(PumpLimits::default(), PuckModel::default());
        h.reset(Path::Puck);
        h
    }

    #[test]
    fn pressure_target_settles_and_holds() {
        let mut h = puck();
        let drive = Drive::Pressure {
            target: 9.0,
            max_flow: 15.0,
        };
        run(&mut h, drive, 8.0);
        assert!((h.pressure - 9.0).abs() < 0.05, "{}", h.pressure);
        // The flow is whatever the puck lets through at 9 bar.
        let expected = 9.0 / h.resistance();
        assert!(
            (h.pump_flow - expected).abs() < 0.1,
            "{} vs {expected}",
            h.pump_flow
        );
        assert!(h.pump_flow > 1.5 && h.pump_flow < 3.5, "{}", h.pump_flow);
    }

    #[test]
    fn puck_erodes_so_flow_rises_at_constant_pressure() {
        let mut h = puck();
        let drive = Drive::Pressure {
            target: 9.0,
            max_flow: 15.0,
        };
        run(&mut h, drive, 8.0);
        let early = h.out_flow;
        run(&mut h, drive, 20.0);
        assert!(h.out_flow > early * 1.1, "{early} → {}", h.out_flow);
    }

    #[test]
    fn flow_target_is_delivered_exactly() {
        let mut h = puck();
        let drive = Drive::Flow {
            target: 2.0,
            max_pressure: 12.0,
            min_pressure: 0.0,
        };
        run(&mut h, drive, 30.0);
        assert!((h.pump_flow - 2.0).abs() < 1e-6, "{}", h.pump_flow);
        // Pressure follows from the puck: 2 mL/s × R.
        assert!(
            (h.pressure - 2.0 * h.resistance()).abs() < 0.3,
            "{}",
            h.pressure
        );
    }

    #[test]
    fn pressure_limit_holds_a_flow_frame() {
        let mut h = puck();
        h.puck.resistance = 8.0; // a choking grind: 4 mL/s would need > 30 bar
        let drive = Drive::Flow {
            target: 4.0,
            max_pressure: 6.0,
            min_pressure: 0.0,
        };
        run(&mut h, drive, 15.0);
        assert!((h.pressure - 6.0).abs() < 0.1, "{}", h.pressure);
        assert!(h.pump_flow < 4.0 * 0.8, "{}", h.pump_flow);
    }

    #[test]
    fn flow_limit_caps_a_pressure_frame() {
        let mut h = puck();
        h.puck.resistance = 1.0; // a gusher
        let drive = Drive::Pressure {
            target: 9.0,
            max_flow: 3.0,
        };
        run(&mut h, drive, 15.0);
        assert!(h.pump_flow <= 3.0 + 1e-9, "{}", h.pump_flow);
        // The pressure is what 3 mL/s makes through this puck, well short of 9 bar.
        assert!(
            (h.pressure - 3.0 * h.resistance()).abs() < 0.2,
            "{}",
            h.pressure
        );
        assert!(h.pressure < 6.0, "{}", h.pressure);
    }

    #[test]
    fn preinfusion_fills_before_pressure_builds() {
        let mut h = puck();
        let drive = Drive::Flow {
            target: 4.0,
            max_pressure: 12.0,
            min_pressure: 0.0,
        };
        run(&mut h, drive, 3.0);
        assert!(h.pressure < 0.5, "{}", h.pressure);
        assert_eq!(h.out_flow, 0.0);
        run(&mut h, drive, 6.0);
        assert!(h.pressure > 4.0, "{}", h.pressure);
    }

    #[test]
    fn pump_off_means_no_flow_and_values_stay_finite() {
        let mut h = puck();
        run(
            &mut h,
            Drive::Pressure {
                target: 9.0,
                max_flow: 15.0,
            },
            10.0,
        );
        let delivered = h.step(Drive::Off, DT);
        assert_eq!(delivered, 0.0);
        run(&mut h, Drive::Off, 30.0);
        assert!(h.pressure.is_finite() && h.pressure < 0.1, "{}", h.pressure);
        assert!(h.out_flow >= 0.0);
    }

    #[test]
    fn open_outlet_flows_at_low_pressure() {
        let mut h = Hydraulics::new(PumpLimits::default(), PuckModel::default());
        h.reset(Path::Open { resistance: 0.3 });
        run(
            &mut h,
            Drive::Flow {
                target: 6.0,
                max_pressure: 12.0,
                min_pressure: 0.0,
            },
            5.0,
        );
        assert!((h.pump_flow - 6.0).abs() < 1e-6);
        assert!(h.pressure < 2.5, "{}", h.pressure);
        assert!((h.out_flow - 6.0).abs() < 0.05, "{}", h.out_flow);
    }
}
