//! Weight and mass flow from a scale's weight reports (pure: times are plain `f64`
//! seconds on any monotonic origin; no clock is read).
//!
//! What happens to each report:
//!
//! 1. **Period.** The scale's real report period is the least-squares slope of arrival
//!    time over report count for the last contiguous reports (insensitive to bursty
//!    delivery, unlike the first-to-last span), clamped to half/double the nominal
//!    period.
//! 2. **Sample time.** Reports are often delivered in bursts (the Skale II on a ~150 ms
//!    radio clock), so an arrival time can be late by up to a radio interval. The
//!    reports are taken on a regular clock, so each report's time is placed on the
//!    earliest-consistent grid: `min over recent j of (arrival_j + (n − j)·P)`, never
//!    later than its own arrival.
//! 3. **Sensor lag.** The weight on the pan is older than the report by the scale's
//!    sensor lag (0.38 s for a Skale II): `scale_time = sample_time − lag`.
//! 4. **Gap.** After more than `gap_reset` without reports the history is cleared.
//! 5. **Bump resistance.** A report far off the current trajectory (further than
//!    `spike_tolerance_g + max_flow_g_s × Δt`) is *suspect* and not used. A suspect
//!    level is accepted only when `confirm_samples` consistent reports spanning at least
//!    `confirm_time` agree on it (a cup put down or lifted off); the history then
//!    restarts at the new level. A single absurd reading (e.g. 1649 g mid-shot) is
//!    therefore ignored, and a short knock on the pan too.
//! 6. **Estimate.** Weight and flow come from a least-squares line through the accepted
//!    reports of the last `flow_window` seconds: the flow is its slope, the weight its
//!    value at the newest report (less noisy than the raw value).
//!
//! The estimates pyDE1 publishes in `WeightAndFlowUpdate` (`average_flow`,
//! `median_weight`, `median_flow`, [`CompatEstimates`]) are computed on the accepted
//! history with the same window definitions, so clients see the same quantities.

use std::collections::VecDeque;

/// Tuning of a [`WeightEstimator`]; times in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EstimatorConfig {
    /// Report-to-weight delay of the scale (arrival − time the weight was on the pan).
    pub sensor_lag: f64,
    /// Nominal report period.
    pub nominal_period: f64,
    /// A silence longer than this clears the history (pyDE1: 0.8 s).
    pub gap_reset: f64,
    /// Longest a report may wait in the radio before it is delivered (burst delivery).
    pub max_delivery_delay: f64,
    /// Span of the reports fitted for weight and flow.
    pub flow_window: f64,
    /// Fewest reports for a flow estimate.
    pub min_fit_samples: usize,
    /// Shortest span of reports for a flow estimate.
    pub min_fit_span: f64,
    /// Allowed deviation from the trajectory, g, on top of `max_flow_g_s × Δt`.
    pub spike_tolerance_g: f64,
    /// Fastest weight change that liquid can cause, g/s.
    pub max_flow_g_s: f64,
    /// Reports needed to accept a new level.
    pub confirm_samples: usize,
    /// Time a new level must persist before it is accepted.
    pub confirm_time: f64,
}

impl EstimatorConfig {
    /// Defaults for a scale with the given sensor lag and nominal period (seconds).
    pub fn for_scale(sensor_lag: f64, nominal_period: f64) -> Self {
        Self {
            sensor_lag,
            nominal_period,
            gap_reset: 0.8,
            max_delivery_delay: 0.25,
            flow_window: 1.0,
            min_fit_samples: 5,
            min_fit_span: 0.35,
            spike_tolerance_g: 2.0,
            max_flow_g_s: 12.0,
            confirm_samples: 3,
            confirm_time: 0.3,
        }
    }
}

impl Default for EstimatorConfig {
    /// Atomax Skale II: 0.38 s lag, 0.1 s period.
    fn default() -> Self {
        Self::for_scale(0.38, 0.1)
    }
}

/// What became of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    /// On the trajectory; used.
    Accepted,
    /// First report after a reset or a gap; used, starts a new history.
    Restarted,
    /// Off the trajectory; ignored unless later reports confirm the level.
    Suspect,
    /// Confirmed a new level; the history restarted from the confirming reports.
    LevelShift,
    /// Not a finite number; ignored.
    Invalid,
}

impl ReportStatus {
    /// The report is part of the history now.
    pub fn is_used(self) -> bool {
        matches!(
            self,
            ReportStatus::Accepted | ReportStatus::Restarted | ReportStatus::LevelShift
        )
    }
}

/// The current estimate of what is on the pan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// When that weight was on the pan (sensor lag removed), seconds.
    pub time: f64,
    /// Weight at `time`, g.
    pub weight: f64,
    /// Mass flow, g/s; `None` until enough reports span the fit window.
    pub flow: Option<f64>,
}

/// A value and the mean time of the samples it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedValue {
    pub value: f64,
    pub time: f64,
}

/// The estimates pyDE1 publishes (`pyde1-sequencer.md` §8.2); `None` until there is
/// enough history.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CompatEstimates {
    /// (w[-1] − w[-11]) / (10·P).
    pub average_flow: Option<TimedValue>,
    /// median(w[-11:]).
    pub median_weight: Option<TimedValue>,
    /// (median(w[-5:-1]) − median(w[-16:-12])) / (10·P).
    pub median_flow: Option<TimedValue>,
}

/// The outcome of [`WeightEstimator::push`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pushed {
    pub status: ReportStatus,
    /// The report's time on the pan (sample time − sensor lag), seconds.
    pub scale_time: f64,
    /// The estimate after this report.
    pub estimate: Option<Estimate>,
    /// pyDE1's estimates after this report.
    pub compat: CompatEstimates,
}

/// Arrival times of the current run of contiguous reports, for the period and the grid.
#[derive(Debug, Clone)]
struct Timing {
    /// (index since the run began, arrival) of the most recent reports.
    recent: VecDeque<(u64, f64)>,
    /// (index, arrival) for the period estimate (longer window).
    period_window: VecDeque<(u64, f64)>,
    next_index: u64,
    period: f64,
}

/// Reports used for the period estimate.
const PERIOD_WINDOW: usize = 64;
/// Fewest reports before the measured period replaces the nominal one.
const PERIOD_MIN: usize = 21;
/// Reports the sample-time grid looks back over (an error in the period grows with
/// the look-back).
const GRID_WINDOW: usize = 16;
/// Longest history kept (pyDE1 needs 16; the fit window needs ~1/P).
const HISTORY: usize = 48;

impl Timing {
    fn new(nominal: f64) -> Self {
        Self {
            recent: VecDeque::with_capacity(GRID_WINDOW + 1),
            period_window: VecDeque::with_capacity(PERIOD_WINDOW + 1),
            next_index: 0,
            period: nominal,
        }
    }

    fn restart(&mut self) {
        self.recent.clear();
        self.period_window.clear();
        self.next_index = 0;
    }

    /// Record an arrival; returns the report's sample time on the grid.
    fn arrive(&mut self, arrival: f64, cfg: &EstimatorConfig) -> f64 {
        if let Some(&(_, last)) = self.recent.back() {
            // A silence of more than a few periods breaks the grid (lost reports
            // cannot be counted reliably).
            if arrival - last > 2.5 * self.period.max(cfg.nominal_period) + cfg.max_delivery_delay
                || arrival < last
            {
                self.restart();
            }
        }
        // Period: slope of arrival over report count.
        self.period_window.push_back((self.next_index, arrival));
        if self.period_window.len() > PERIOD_WINDOW {
            self.period_window.pop_front();
        }
        let n = self.period_window.len();
        if n >= PERIOD_MIN {
            let nf = n as f64;
            let (sx, sy) = self
                .period_window
                .iter()
                .fold((0.0, 0.0), |(sx, sy), &(i, a)| (sx + i as f64, sy + a));
            let (mx, my) = (sx / nf, sy / nf);
            let (sxy, sxx) = self
                .period_window
                .iter()
                .fold((0.0, 0.0), |(sxy, sxx), &(i, a)| {
                    let dx = i as f64 - mx;
                    (sxy + dx * (a - my), sxx + dx * dx)
                });
            let p = sxy / sxx;
            if p.is_finite() && p > 0.0 {
                self.period = p.clamp(0.5 * cfg.nominal_period, 2.0 * cfg.nominal_period);
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        self.recent.push_back((index, arrival));
        if self.recent.len() > GRID_WINDOW {
            self.recent.pop_front();
        }
        let p = self.period;
        let earliest = self
            .recent
            .iter()
            .map(|&(j, a)| a + (index - j) as f64 * p)
            .fold(arrival, f64::min);
        earliest.max(arrival - cfg.max_delivery_delay)
    }
}

/// Reports that disagreed with the trajectory, waiting for confirmation.
#[derive(Debug, Clone, Default)]
struct Pending {
    samples: Vec<(f64, f64)>,
}

/// Weight and flow estimator for one scale. See the module documentation.
#[derive(Debug, Clone)]
pub struct WeightEstimator {
    cfg: EstimatorConfig,
    timing: Timing,
    /// Accepted (scale_time, weight), oldest first.
    history: VecDeque<(f64, f64)>,
    pending: Pending,
    /// Last raw value and the arrival time since which it has not changed.
    last_raw: Option<(f64, f64)>,
    last_arrival: Option<f64>,
}

impl WeightEstimator {
    pub fn new(cfg: EstimatorConfig) -> Self {
        Self {
            timing: Timing::new(cfg.nominal_period),
            cfg,
            history: VecDeque::with_capacity(HISTORY + 1),
            pending: Pending::default(),
            last_raw: None,
            last_arrival: None,
        }
    }

    pub fn config(&self) -> &EstimatorConfig {
        &self.cfg
    }

    /// The estimated report period, seconds.
    pub fn period(&self) -> f64 {
        self.timing.period
    }

    /// Seed the period (e.g. a value saved for this scale), seconds; ignored unless it is
    /// within half/double the nominal period.
    pub fn set_period(&mut self, period: f64) {
        let nominal = self.cfg.nominal_period;
        if period.is_finite() && period >= 0.5 * nominal && period <= 2.0 * nominal {
            self.timing.period = period;
        }
    }

    /// Forget the weight history (after a tare, a scale change, a level shift). The
    /// period estimate is kept.
    pub fn reset(&mut self) {
        self.history.clear();
        self.pending.samples.clear();
    }

    /// Arrival time of the newest report of any kind.
    pub fn last_arrival(&self) -> Option<f64> {
        self.last_arrival
    }

    /// The newest raw value and the arrival time since which the scale has reported
    /// that same value (within 0.05 g).
    pub fn unchanged_since(&self) -> Option<(f64, f64)> {
        self.last_raw
    }

    /// Number of accepted reports in the history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// True while reports off the trajectory wait for confirmation.
    pub fn has_suspects(&self) -> bool {
        !self.pending.samples.is_empty()
    }

    /// Process one report that arrived at `arrival` (seconds) with `grams`.
    pub fn push(&mut self, arrival: f64, grams: f64) -> Pushed {
        if !grams.is_finite() || !arrival.is_finite() {
            return Pushed {
                status: ReportStatus::Invalid,
                scale_time: arrival - self.cfg.sensor_lag,
                estimate: self.estimate(),
                compat: self.compat(),
            };
        }
        self.last_arrival = Some(arrival);
        match self.last_raw {
            Some((v, _)) if (v - grams).abs() <= 0.05 => {}
            _ => self.last_raw = Some((grams, arrival)),
        }
        let sample_time = self.timing.arrive(arrival, &self.cfg);
        let t = sample_time - self.cfg.sensor_lag;

        let status = match self.history.back().copied() {
            Some((t_last, _)) if t - t_last > self.cfg.gap_reset || t < t_last => {
                self.reset();
                self.accept(t, grams);
                ReportStatus::Restarted
            }
            None => {
                self.pending.samples.clear();
                self.accept(t, grams);
                ReportStatus::Restarted
            }
            Some((t_last, w_last)) => {
                let predicted = self.predict(t).unwrap_or(w_last);
                let tolerance =
                    self.cfg.spike_tolerance_g + self.cfg.max_flow_g_s * (t - t_last).max(0.0);
                if (grams - predicted).abs() <= tolerance {
                    self.pending.samples.clear();
                    self.accept(t, grams);
                    ReportStatus::Accepted
                } else {
                    self.suspect(t, grams)
                }
            }
        };
        Pushed {
            status,
            scale_time: t,
            estimate: self.estimate(),
            compat: self.compat(),
        }
    }

    fn accept(&mut self, t: f64, w: f64) {
        self.history.push_back((t, w));
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
    }

    fn suspect(&mut self, t: f64, w: f64) -> ReportStatus {
        let consistent = match self.pending.samples.last() {
            Some(&(tp, wp)) => {
                (w - wp).abs() <= self.cfg.spike_tolerance_g + self.cfg.max_flow_g_s * (t - tp)
            }
            None => true,
        };
        if !consistent {
            self.pending.samples.clear();
        }
        self.pending.samples.push((t, w));
        let first_t = self.pending.samples.first().map_or(t, |s| s.0);
        if self.pending.samples.len() >= self.cfg.confirm_samples.max(1)
            && t - first_t >= self.cfg.confirm_time
        {
            let confirmed = std::mem::take(&mut self.pending.samples);
            self.history.clear();
            for (ts, ws) in confirmed {
                self.accept(ts, ws);
            }
            ReportStatus::LevelShift
        } else {
            ReportStatus::Suspect
        }
    }

    /// Least-squares line through the accepted reports within the fit window ending at
    /// the newest one: (slope, value at the newest time, newest time, count, span).
    fn fit(&self) -> Option<(f64, f64, f64, usize, f64)> {
        let &(t_end, w_end) = self.history.back()?;
        let start = t_end - self.cfg.flow_window;
        let pts = self.history.iter().rev().take_while(|(t, _)| *t >= start);
        let (mut n, mut st, mut sw, mut stt, mut stw) = (0usize, 0.0, 0.0, 0.0, 0.0);
        let mut t_first = t_end;
        for &(t, w) in pts {
            let x = t - t_end;
            n += 1;
            st += x;
            sw += w;
            stt += x * x;
            stw += x * w;
            t_first = t;
        }
        if n < 2 {
            return Some((0.0, w_end, t_end, n, 0.0));
        }
        let nf = n as f64;
        let denom = nf * stt - st * st;
        if denom.abs() < 1e-12 {
            return Some((0.0, w_end, t_end, n, t_end - t_first));
        }
        let slope = (nf * stw - st * sw) / denom;
        let intercept = (sw - slope * st) / nf; // value at x = 0, i.e. at t_end
        Some((slope, intercept, t_end, n, t_end - t_first))
    }

    /// The weight the trajectory predicts at scale time `t`.
    fn predict(&self, t: f64) -> Option<f64> {
        let (slope, w, t_end, n, span) = self.fit()?;
        if n >= self.cfg.min_fit_samples && span >= self.cfg.min_fit_span {
            let slope = slope.clamp(-self.cfg.max_flow_g_s, self.cfg.max_flow_g_s);
            Some(w + slope * (t - t_end))
        } else {
            self.history.back().map(|&(_, w)| w)
        }
    }

    /// The current estimate (weight at the newest accepted report and flow).
    pub fn estimate(&self) -> Option<Estimate> {
        let (slope, w, t_end, n, span) = self.fit()?;
        let flow_ok = n >= self.cfg.min_fit_samples && span >= self.cfg.min_fit_span;
        let weight = if flow_ok {
            w
        } else {
            self.history.back().map_or(w, |&(_, w)| w)
        };
        Some(Estimate {
            time: t_end,
            weight,
            flow: flow_ok.then_some(slope),
        })
    }

    /// pyDE1's published estimates over the accepted history.
    pub fn compat(&self) -> CompatEstimates {
        let h = &self.history;
        let n = h.len();
        let p10 = 10.0 * self.timing.period;
        let mean_t = |from: usize, to: usize| -> f64 {
            let c = (to - from) as f64;
            h.range(from..to).map(|s| s.0).sum::<f64>() / c
        };
        let median = |from: usize, to: usize| -> f64 {
            let mut v: Vec<f64> = h.range(from..to).map(|s| s.1).collect();
            v.sort_by(f64::total_cmp);
            let m = v.len();
            if m % 2 == 1 {
                v[m / 2]
            } else {
                (v[m / 2 - 1] + v[m / 2]) / 2.0
            }
        };
        let mut out = CompatEstimates::default();
        if n >= 11 {
            let t = mean_t(n - 11, n);
            out.average_flow = Some(TimedValue {
                value: (h[n - 1].1 - h[n - 11].1) / p10,
                time: t,
            });
            out.median_weight = Some(TimedValue {
                value: median(n - 11, n),
                time: t,
            });
        }
        if n >= 16 {
            out.median_flow = Some(TimedValue {
                value: (median(n - 5, n - 1) - median(n - 16, n - 12)) / p10,
                time: mean_t(n - 16, n - 1),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(e: &mut WeightEstimator, reports: &[(f64, f64)]) -> Vec<Pushed> {
        reports.iter().map(|&(t, w)| e.push(t, w)).collect()
    }

    fn ramp(from: f64, to: f64, period: f64, flow: f64, lag: f64) -> Vec<(f64, f64)> {
        let mut v = Vec::new();
        let mut t = from;
        while t < to {
            // Weight on the pan `lag` before arrival, 0.1 g resolution.
            let w = ((t - lag).max(0.0) * flow * 10.0).round() / 10.0;
            v.push((t, w));
            t += period;
        }
        v
    }

    #[test]
    fn flow_and_lag_corrected_time_on_a_ramp() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        let reports = ramp(1.0, 6.0, 0.1, 2.0, 0.38);
        let out = feed(&mut e, &reports);
        let last = out.last().unwrap();
        let last_arrival = reports.last().unwrap().0;
        assert_eq!(last.status, ReportStatus::Accepted);
        let est = last.estimate.unwrap();
        let flow = est.flow.unwrap();
        assert!((flow - 2.0).abs() < 0.05, "flow {flow}");
        // The weight refers to the time it was on the pan: arrival − lag.
        assert!(
            (est.time - (last_arrival - 0.38)).abs() < 1e-6,
            "{}",
            est.time
        );
        assert!((est.weight - 2.0 * est.time).abs() < 0.1, "{est:?}");
        // pyDE1's average flow is there too.
        let af = last.compat.average_flow.unwrap().value;
        assert!((af - 2.0).abs() < 0.1, "{af}");
        assert!(last.compat.median_flow.is_some());
    }

    #[test]
    fn period_is_measured() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        feed(&mut e, &ramp(0.0, 5.0, 0.12, 1.0, 0.0));
        assert!((e.period() - 0.12).abs() < 1e-3, "{}", e.period());
    }

    #[test]
    fn bursty_delivery_is_placed_back_on_the_grid() {
        // Reports taken every 0.1 s but delivered in bursts: every third report waits
        // for the next 0.3 s radio slot.
        let cfg = EstimatorConfig::default();
        let mut e = WeightEstimator::new(cfg);
        let mut worst_raw: f64 = 0.0;
        let mut worst_grid: f64 = 0.0;
        for i in 0..60 {
            let taken = 1.0 + 0.1 * i as f64;
            let delivered = 1.0 + 0.3 * ((i / 3) as f64 + 1.0) - 0.1 + 1e-3;
            let arrival = delivered.max(taken);
            let p = e.push(arrival, 2.0 * taken);
            if i > 25 {
                worst_raw = worst_raw.max(arrival - taken);
                worst_grid = worst_grid.max((p.scale_time + cfg.sensor_lag - taken).abs());
            }
        }
        assert!(
            worst_raw > 0.15,
            "the delivery really is bursty: {worst_raw}"
        );
        assert!(worst_grid < 0.03, "grid error {worst_grid}");
    }

    #[test]
    fn a_single_absurd_reading_is_ignored() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        let mut reports = ramp(1.0, 4.0, 0.1, 2.0, 0.38);
        let n = reports.len();
        reports[n - 10].1 = 1649.0;
        let out = feed(&mut e, &reports);
        assert_eq!(out[n - 10].status, ReportStatus::Suspect);
        assert!(out[n - 10].estimate.unwrap().weight < 10.0);
        assert_eq!(out[n - 9].status, ReportStatus::Accepted);
        let flow = out[n - 1].estimate.unwrap().flow.unwrap();
        assert!((flow - 2.0).abs() < 0.1, "{flow}");
        assert!(out[n - 1].compat.average_flow.unwrap().value < 3.0);
    }

    #[test]
    fn a_short_knock_is_ignored_but_a_new_cup_is_accepted() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        let mut t = 0.0;
        for _ in 0..20 {
            e.push(t, 0.0);
            t += 0.1;
        }
        // Knock: two readings +15 g.
        assert_eq!(e.push(t, 15.0).status, ReportStatus::Suspect);
        t += 0.1;
        assert_eq!(e.push(t, 14.0).status, ReportStatus::Suspect);
        t += 0.1;
        assert_eq!(e.push(t, 0.0).status, ReportStatus::Accepted);
        t += 0.1;
        assert!(!e.has_suspects());
        // A cup: stays.
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(e.push(t, 180.0).status);
            t += 0.1;
        }
        assert_eq!(statuses[0], ReportStatus::Suspect);
        assert!(statuses.contains(&ReportStatus::LevelShift), "{statuses:?}");
        assert_eq!(statuses[5], ReportStatus::Accepted);
        assert!((e.estimate().unwrap().weight - 180.0).abs() < 0.01);
    }

    #[test]
    fn a_gap_restarts_the_history() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        feed(&mut e, &ramp(1.0, 3.0, 0.1, 2.0, 0.0));
        assert!(e.history_len() > 10);
        let p = e.push(4.5, 9.0);
        assert_eq!(p.status, ReportStatus::Restarted);
        assert_eq!(e.history_len(), 1);
        assert_eq!(p.estimate.unwrap().flow, None);
        assert_eq!(p.compat.average_flow, None);
    }

    #[test]
    fn invalid_numbers_are_ignored() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        e.push(0.0, 1.0);
        assert_eq!(e.push(0.1, f64::NAN).status, ReportStatus::Invalid);
        assert_eq!(e.push(f64::INFINITY, 1.0).status, ReportStatus::Invalid);
        assert_eq!(e.history_len(), 1);
    }

    #[test]
    fn unchanged_value_is_tracked() {
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        e.push(0.0, 1.0);
        e.push(0.1, 1.2);
        e.push(0.2, 1.2);
        e.push(0.3, 1.23);
        assert_eq!(e.unchanged_since(), Some((1.2, 0.1)));
    }

    #[test]
    fn compat_median_flow_matches_pyde1_definition() {
        // 16 reports of a 5 g/s ramp at exactly 0.1 s: pyDE1's windows are 11 reports
        // apart with a divisor of 10 periods, so it reads 10 % high (5.5 g/s).
        let mut e = WeightEstimator::new(EstimatorConfig::default());
        let mut last = None;
        for i in 0..16 {
            last = Some(e.push(0.1 * i as f64, 0.5 * i as f64));
        }
        let c = last.unwrap().compat;
        assert!((c.median_flow.unwrap().value - 5.5).abs() < 1e-9);
        assert!((c.average_flow.unwrap().value - 5.0).abs() < 1e-9);
        assert!((c.median_weight.unwrap().value - 5.0).abs() < 1e-9);
    }
}
