//! Tare requests: rate limiting, "hold at tare" and noticing that a tare happened
//! (pure; times are `f64` seconds on any monotonic origin).
//!
//! * A tare request is sent only if more than `min_interval` (2.5 report periods,
//!   0.25 s) passed since the previous one.
//! * After a request, the first report with |weight| < `threshold` (0.05 g) within
//!   `timeout` (1.0 s) means the scale did tare: the caller publishes `ScaleTareSeen`
//!   and restarts its weight history. After the timeout the request is taken as lost.
//! * While *held* (auto-tare), every report with |weight| > `threshold` asks for a tare,
//!   so a cup put on the pan before the flow starts never counts.

/// Tuning of a [`TareTracker`], seconds and grams.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TareConfig {
    pub threshold_g: f64,
    pub timeout: f64,
    pub min_interval: f64,
}

impl Default for TareConfig {
    fn default() -> Self {
        Self {
            threshold_g: 0.05,
            timeout: 1.0,
            min_interval: 0.25,
        }
    }
}

/// What a report means for taring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TareOutcome {
    /// A requested tare was confirmed by this report.
    pub seen: bool,
    /// Hold is on and the pan is not at zero: send a tare command.
    pub request: bool,
}

/// Tare bookkeeping for one scale.
#[derive(Debug, Clone, Default)]
pub struct TareTracker {
    cfg: TareConfig,
    hold: bool,
    last_request: Option<f64>,
    /// Time of the request waiting for confirmation.
    awaiting: Option<f64>,
}

impl TareTracker {
    pub fn new(cfg: TareConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    pub fn hold(&self) -> bool {
        self.hold
    }

    /// Hold the scale at zero (auto-tare) or release it.
    pub fn set_hold(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// A tare is wanted at `now`: true if a command should be sent (not rate limited).
    pub fn request(&mut self, now: f64) -> bool {
        if let Some(last) = self.last_request {
            if now - last <= self.cfg.min_interval && now >= last {
                return false;
            }
        }
        self.last_request = Some(now);
        self.awaiting = Some(now);
        true
    }

    /// True while a request waits for a zero report.
    pub fn awaiting(&self, now: f64) -> bool {
        matches!(self.awaiting, Some(t) if now - t <= self.cfg.timeout)
    }

    /// A weight report arrived at `now`.
    pub fn on_report(&mut self, now: f64, grams: f64) -> TareOutcome {
        let mut out = TareOutcome::default();
        let at_zero = grams.abs() < self.cfg.threshold_g;
        if let Some(t) = self.awaiting {
            if now - t > self.cfg.timeout {
                log::debug!("tare request not confirmed within {} s", self.cfg.timeout);
                self.awaiting = None;
            } else if at_zero {
                self.awaiting = None;
                out.seen = true;
            }
        }
        if self.hold && !at_zero && grams.is_finite() {
            out.request = self.request(now);
        }
        out
    }

    /// The scale went away: forget pending requests.
    pub fn clear(&mut self) {
        self.awaiting = None;
        self.last_request = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_rate_limited() {
        let mut t = TareTracker::new(TareConfig::default());
        assert!(t.request(1.0));
        assert!(!t.request(1.1));
        assert!(!t.request(1.25));
        assert!(t.request(1.3));
    }

    #[test]
    fn zero_within_timeout_is_seen_once() {
        let mut t = TareTracker::new(TareConfig::default());
        assert!(t.request(1.0));
        assert!(!t.on_report(1.1, 152.3).seen);
        assert!(t.on_report(1.3, 0.0).seen);
        assert!(!t.on_report(1.4, 0.0).seen);
        // Too late.
        assert!(t.request(3.0));
        assert!(!t.on_report(4.1, 0.0).seen);
    }

    #[test]
    fn hold_retares_off_zero_reports() {
        let mut t = TareTracker::new(TareConfig::default());
        t.set_hold(true);
        assert!(t.on_report(0.0, 180.0).request);
        assert!(!t.on_report(0.1, 180.0).request, "rate limited");
        assert!(t.on_report(0.2, 0.0).seen);
        assert!(!t.on_report(0.3, 0.04).request);
        assert!(t.on_report(0.4, 0.1).request);
        t.set_hold(false);
        assert!(!t.on_report(1.0, 5.0).request);
    }
}
