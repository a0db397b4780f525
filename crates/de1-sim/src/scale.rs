//! The simulated Atomax Skale II and the cup on it.
//!
//! Physics: liquid leaving the puck reaches the cup after a transit time; after the
//! flow stops a little more drips in. The load cell senses the pan with a lag
//! ([`ScaleConfig::sensor_lag`], 0.38 s by default), and each report adds noise and is
//! rounded to 0.1 g. Reports go out every ~100 ms on `EF81`; commands on `EF80` are
//! decoded with `scale_protocol::skale2` and answered as the scale does.

use std::collections::VecDeque;

use rand::Rng;
use scale_protocol::skale2::{self, ButtonPress, Command, WeightReport};

use crate::config::ScaleConfig;
use crate::GattError;

/// Scale timer state (the Skale shows it on its display).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScaleTimer {
    pub running: bool,
    /// Seconds counted so far.
    pub seconds: f64,
}

/// What the scale shows and how it is set up (for tests and [`crate::SimControl`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleStatus {
    pub display_on: bool,
    pub grams: bool,
    pub timer: ScaleTimer,
    pub cup_on: bool,
    /// Liquid in the cup (g), the truth rather than a reading.
    pub liquid_g: f64,
    /// The last weight reported (g).
    pub last_report_g: Option<f64>,
    pub tares: u32,
}

#[derive(Debug, Clone)]
pub struct Scale {
    cfg: ScaleConfig,
    time: f64,
    cup_on: bool,
    liquid: f64,
    transit: VecDeque<(f64, f64)>,
    drip_left: f64,
    /// (time, load on the pan) for the sensor lag.
    history: VecDeque<(f64, f64)>,
    tare: f64,
    next_report: f64,
    display_on: bool,
    grams: bool,
    timer: ScaleTimer,
    glitch: Option<f64>,
    frozen: bool,
    last_report: Option<f64>,
    tares: u32,
    /// Notifications to send: (characteristic, value).
    pub outbox: Vec<(u128, Vec<u8>)>,
}

/// Characteristics the Skale exposes, with (read, write, notify).
pub const CHARACTERISTICS: &[(u128, bool, bool, bool)] = &[
    (skale2::COMMAND, false, true, false),
    (skale2::WEIGHT, false, false, true),
    (skale2::BUTTON, false, false, true),
    (skale2::UNKNOWN_EF83, true, false, false),
    (skale2::UNKNOWN_VENDOR, true, false, false),
    (skale2::BATTERY_LEVEL, true, false, true),
    (skale2::MODEL_NUMBER, true, false, false),
    (skale2::FIRMWARE_REVISION, true, false, false),
    (skale2::HARDWARE_REVISION, true, false, false),
    (skale2::SOFTWARE_REVISION, true, false, false),
    (skale2::MANUFACTURER_NAME, true, false, false),
];

impl Scale {
    pub fn new(cfg: ScaleConfig) -> Self {
        let cup_on = cfg.cup_on_at_start;
        let load = if cup_on { cfg.cup_g } else { 0.0 };
        let mut history = VecDeque::new();
        history.push_back((0.0, load));
        Self {
            time: 0.0,
            cup_on,
            liquid: 0.0,
            transit: VecDeque::new(),
            drip_left: 0.0,
            history,
            // The cup on the pan at start has been tared.
            tare: load,
            next_report: cfg.report_period.as_secs_f64(),
            display_on: true,
            grams: true,
            timer: ScaleTimer::default(),
            glitch: None,
            frozen: false,
            last_report: None,
            tares: 0,
            outbox: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &ScaleConfig {
        &self.cfg
    }

    fn load(&self) -> f64 {
        if self.cup_on {
            self.cfg.cup_g + self.liquid
        } else {
            0.0
        }
    }

    /// The pan load the sensor shows now (lagged, before tare and noise).
    fn sensed(&self) -> f64 {
        let t = self.time - self.cfg.sensor_lag.as_secs_f64();
        let mut before = None;
        for &(ht, load) in &self.history {
            if ht <= t {
                before = Some((ht, load));
            } else {
                return match before {
                    None => load,
                    Some((bt, bl)) => {
                        let x = ((t - bt) / (ht - bt).max(1e-9)).clamp(0.0, 1.0);
                        bl + (load - bl) * x
                    }
                };
            }
        }
        before.map_or(self.load(), |(_, l)| l)
    }

    /// Liquid left the puck (or spout) now; it lands in the cup after the transit time.
    pub fn pour(&mut self, grams: f64) {
        if grams > 0.0 && grams.is_finite() {
            let due = self.time + self.cfg.transit.as_secs_f64();
            self.transit.push_back((due, grams));
        }
    }

    /// Flow to the cup stopped: the last drops follow.
    pub fn start_drips(&mut self) {
        self.drip_left += self.cfg.drip_g.max(0.0);
    }

    pub fn cup_on(&mut self) {
        if !self.cup_on {
            self.cup_on = true;
            self.liquid = 0.0;
        }
    }

    /// Take the cup (and what is in it) off the pan.
    pub fn cup_off(&mut self) {
        self.cup_on = false;
        self.liquid = 0.0;
    }

    /// Next report reads `grams` once (a glitch), whatever is on the pan.
    pub fn glitch(&mut self, grams: f64) {
        self.glitch = Some(grams);
    }

    /// A frozen scale keeps reporting its last value.
    pub fn freeze(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// A button on the scale pressed: notify it; button 1 tares the scale itself.
    pub fn press_button(&mut self, button: u8) {
        if button == skale2::TARE_BUTTON {
            self.do_tare();
        }
        self.outbox
            .push((skale2::BUTTON, ButtonPress { button }.encode().to_vec()));
    }

    fn do_tare(&mut self) {
        self.tare = self.sensed();
        self.tares += 1;
    }

    pub fn status(&self) -> ScaleStatus {
        ScaleStatus {
            display_on: self.display_on,
            grams: self.grams,
            timer: self.timer,
            cup_on: self.cup_on,
            liquid_g: self.liquid,
            last_report_g: self.last_report,
            tares: self.tares,
        }
    }

    pub fn tick<R: Rng>(&mut self, dt: f64, rng: &mut R) {
        self.time += dt;
        while let Some(&(due, g)) = self.transit.front() {
            if due > self.time {
                break;
            }
            self.transit.pop_front();
            if self.cup_on {
                self.liquid += g;
            }
        }
        if self.drip_left > 0.0 {
            let tau = self.cfg.drip_tau.as_secs_f64().max(1e-3);
            let mut d = self.drip_left * (1.0 - (-dt / tau).exp());
            if self.drip_left < 0.01 {
                d = self.drip_left;
            }
            self.drip_left -= d;
            if self.cup_on {
                self.liquid += d;
            }
        }
        if self.timer.running {
            self.timer.seconds += dt;
        }
        let load = self.load();
        self.history.push_back((self.time, load));
        let keep_from = self.time - self.cfg.sensor_lag.as_secs_f64() - 1.0;
        while self.history.len() > 2 && self.history[1].0 < keep_from {
            self.history.pop_front();
        }
        if self.time + 1e-9 >= self.next_report {
            let period = self.cfg.report_period.as_secs_f64().max(0.01);
            // Reports come on the scale's own clock, a little irregular.
            let jitter = rng.gen_range(-0.1..=0.1) * period;
            self.next_report += period + jitter;
            self.report(rng);
        }
    }

    fn report<R: Rng>(&mut self, rng: &mut R) {
        let value = if let Some(g) = self.glitch.take() {
            g
        } else if let (true, Some(last)) = (self.frozen, self.last_report) {
            last
        } else {
            let n = self.cfg.noise_g;
            let noise = if n > 0.0 {
                (rng.gen::<f64>() + rng.gen::<f64>() - 1.0) * n
            } else {
                0.0
            };
            ((self.sensed() - self.tare + noise) * 10.0).round() / 10.0
        };
        self.last_report = Some(value);
        self.outbox
            .push((skale2::WEIGHT, WeightReport::new(value).encode().to_vec()));
    }

    /// A GATT write from the app.
    pub fn write(&mut self, uuid: u128, bytes: &[u8]) -> Result<(), GattError> {
        if uuid != skale2::COMMAND {
            return if CHARACTERISTICS.iter().any(|c| c.0 == uuid) {
                Err(GattError::WriteNotPermitted)
            } else {
                Err(GattError::NotFound)
            };
        }
        match Command::decode(bytes) {
            Ok(cmd) => {
                match cmd {
                    Command::Tare => self.do_tare(),
                    Command::DisplayOn | Command::ShowWeight => self.display_on = true,
                    Command::DisplayOff => self.display_on = false,
                    Command::UnitsGrams => self.grams = true,
                    Command::UnitsOunces => self.grams = false,
                    Command::TimerZero => self.timer = ScaleTimer::default(),
                    Command::TimerStart => self.timer.running = true,
                    Command::TimerStop => self.timer.running = false,
                    Command::PersistUnits | Command::Calibrate(_) | Command::Filter(_) => {}
                }
                Ok(())
            }
            // The scale ignores bytes it does not understand.
            Err(e) => {
                log::debug!("simulated Skale ignores {e}");
                Ok(())
            }
        }
    }

    /// A GATT read from the app.
    pub fn read(&self, uuid: u128) -> Result<Vec<u8>, GattError> {
        Ok(match uuid {
            skale2::BATTERY_LEVEL => vec![self.cfg.battery],
            skale2::MODEL_NUMBER => skale2::MODEL_NUMBER_TEXT.as_bytes().to_vec(),
            skale2::MANUFACTURER_NAME => skale2::MANUFACTURER_TEXT.as_bytes().to_vec(),
            skale2::FIRMWARE_REVISION | skale2::SOFTWARE_REVISION => b"1.0".to_vec(),
            skale2::HARDWARE_REVISION => b"2".to_vec(),
            skale2::UNKNOWN_EF83 | skale2::UNKNOWN_VENDOR => vec![0],
            skale2::COMMAND | skale2::WEIGHT | skale2::BUTTON => {
                return Err(GattError::ReadNotPermitted)
            }
            _ => return Err(GattError::NotFound),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    const DT: f64 = 0.01;

    fn quiet() -> ScaleConfig {
        ScaleConfig {
            noise_g: 0.0,
            ..ScaleConfig::default()
        }
    }

    fn run(s: &mut Scale, rng: &mut SmallRng, secs: f64) -> Vec<f64> {
        let mut out = Vec::new();
        for _ in 0..(secs / DT).round() as usize {
            s.tick(DT, rng);
            for (u, v) in s.outbox.drain(..) {
                if u == skale2::WEIGHT {
                    out.push(WeightReport::decode(&v).unwrap().grams);
                }
            }
        }
        out
    }

    #[test]
    fn reports_at_about_ten_hertz_starting_at_zero() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = Scale::new(quiet());
        let reports = run(&mut s, &mut rng, 10.0);
        assert!((95..=105).contains(&reports.len()), "{}", reports.len());
        assert!(reports.iter().all(|&g| g == 0.0));
    }

    #[test]
    fn weight_lags_the_liquid_by_transit_plus_sensor_lag() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = Scale::new(quiet());
        s.pour(10.0);
        let mut t = 0.0;
        let mut first_seen = None;
        for _ in 0..200 {
            s.tick(DT, &mut rng);
            t += DT;
            for (_, v) in s.outbox.drain(..) {
                if let Ok(r) = WeightReport::decode(&v) {
                    if r.grams > 9.9 && first_seen.is_none() {
                        first_seen = Some(t);
                    }
                }
            }
        }
        let expected = 0.25 + 0.38;
        let seen = first_seen.unwrap();
        assert!(seen >= expected && seen < expected + 0.15, "{seen}");
    }

    #[test]
    fn drips_follow_the_end_of_flow() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = Scale::new(quiet());
        s.pour(30.0);
        run(&mut s, &mut rng, 2.0);
        s.start_drips();
        let r = run(&mut s, &mut rng, 10.0);
        let last = *r.last().unwrap();
        assert!((last - 31.2).abs() < 0.11, "{last}");
    }

    #[test]
    fn tare_cup_off_glitch_freeze_and_buttons() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut s = Scale::new(quiet());
        s.pour(20.0);
        run(&mut s, &mut rng, 2.0);
        s.write(skale2::COMMAND, &Command::Tare.encode()).unwrap();
        let r = run(&mut s, &mut rng, 1.0);
        assert_eq!(*r.last().unwrap(), 0.0);
        s.glitch(1649.0);
        let r = run(&mut s, &mut rng, 0.5);
        assert_eq!(r.iter().filter(|&&g| g == 1649.0).count(), 1);
        s.cup_off();
        let r = run(&mut s, &mut rng, 1.0);
        assert!((r.last().unwrap() + 200.0).abs() < 0.11, "{r:?}");
        s.freeze(true);
        s.cup_on();
        let r = run(&mut s, &mut rng, 1.0);
        assert!(r.iter().all(|&g| (g + 200.0).abs() < 0.11));
        s.press_button(2);
        let notes: Vec<_> = s.outbox.drain(..).collect();
        assert_eq!(notes, vec![(skale2::BUTTON, vec![2])]);
    }

    #[test]
    fn gatt_surface() {
        let mut s = Scale::new(quiet());
        assert_eq!(s.read(skale2::MODEL_NUMBER).unwrap(), b"SkaleII");
        assert_eq!(s.read(skale2::WEIGHT), Err(GattError::ReadNotPermitted));
        assert_eq!(
            s.write(skale2::WEIGHT, &[1]),
            Err(GattError::WriteNotPermitted)
        );
        s.write(skale2::COMMAND, &[0xEE]).unwrap();
        assert!(!s.status().display_on);
        s.write(skale2::COMMAND, &[0x42, 0x42]).unwrap();
    }
}
