//! Recent DE1 volume as a function of host time, for following the DE1's flow when the
//! scale cannot be trusted (pure; `f64` seconds).

use std::collections::VecDeque;

/// Samples kept: a whole sequence (the watchdog ends one after 270 s; 5 samples a
/// second at 60 Hz).
const KEEP: usize = 2048;
/// Longest extrapolation past the newest sample, s.
const MAX_EXTRAPOLATION: f64 = 1.0;

/// (arrival, total volume, flow) of the DE1 samples of the current sequence.
#[derive(Debug, Clone, Default)]
pub struct De1Flow {
    samples: VecDeque<(f64, f64, f64)>,
}

impl De1Flow {
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    pub fn push(&mut self, arrival: f64, total_volume: f64, flow: f64) {
        if let Some(&(t, ..)) = self.samples.back() {
            if arrival < t {
                self.samples.clear();
            }
        }
        self.samples
            .push_back((arrival, total_volume, flow.max(0.0)));
        if self.samples.len() > KEEP {
            self.samples.pop_front();
        }
    }

    /// The newest flow, mL/s.
    pub fn flow(&self) -> Option<f64> {
        self.samples.back().map(|s| s.2)
    }

    /// Total volume at host time `t`, mL: interpolated between samples, extrapolated
    /// with the newest flow for up to a second past the newest sample, clamped to the
    /// oldest sample before.
    pub fn volume_at(&self, t: f64) -> Option<f64> {
        let &(t_first, v_first, ..) = self.samples.front()?;
        // (Samples are in arrival order: `push` starts over if time goes back.)
        let &(t_last, v_last, f_last) = self.samples.back()?;
        if t >= t_last {
            return Some(v_last + f_last * (t - t_last).min(MAX_EXTRAPOLATION));
        }
        if t <= t_first {
            return Some(v_first);
        }
        // First sample at or after t (exists: t < t_last); the one before is ≤ t.
        let i = self.samples.partition_point(|s| s.0 < t);
        let &(ts, vs, ..) = self.samples.get(i)?;
        let &(tp, vp, ..) = self.samples.get(i.saturating_sub(1))?;
        let span = ts - tp;
        if span <= 0.0 {
            return Some(vs);
        }
        Some(vp + (vs - vp) * (t - tp) / span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_and_extrapolates() {
        let mut d = De1Flow::default();
        assert_eq!(d.volume_at(1.0), None);
        d.push(1.0, 0.0, 2.0);
        d.push(1.25, 0.5, 2.0);
        d.push(1.5, 1.0, 2.0);
        assert_eq!(d.volume_at(0.0), Some(0.0));
        assert!((d.volume_at(1.375).unwrap() - 0.75).abs() < 1e-9);
        assert!((d.volume_at(1.75).unwrap() - 1.5).abs() < 1e-9);
        assert!((d.volume_at(9.0).unwrap() - 3.0).abs() < 1e-9, "capped");
        assert_eq!(d.flow(), Some(2.0));
        assert!((d.volume_at(1.25).unwrap() - 0.5).abs() < 1e-9);
        assert!((d.volume_at(1.1).unwrap() - 0.2).abs() < 1e-9);
    }

    #[test]
    fn keeps_a_whole_sequence() {
        let mut d = De1Flow::default();
        for i in 0..1400 {
            d.push(f64::from(i) * 0.2, f64::from(i) * 0.4, 2.0);
        }
        assert!((d.volume_at(1.1).unwrap() - 2.2).abs() < 1e-9);
    }
}
