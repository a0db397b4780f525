//! Epoch timestamps that follow tokio's clock.
//!
//! Events carry epoch seconds (as pyDE1 stamps them), while notifications are stamped with
//! [`tokio::time::Instant`]. A [`Clock`] pins one epoch time to one tokio instant and
//! converts from there, so that under `start_paused` tests every timestamp is
//! deterministic relative to the start and no wall-clock jump can reorder events.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Converts tokio instants to epoch seconds; cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_epoch: f64,
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// Pins the current wall-clock time to the current tokio instant.
    pub fn new() -> Clock {
        let base_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Clock {
            base_epoch,
            base: Instant::now(),
        }
    }

    /// A clock whose current instant is `epoch` (for tests).
    pub fn starting_at(epoch: f64) -> Clock {
        Clock {
            base_epoch: epoch,
            base: Instant::now(),
        }
    }

    /// Epoch seconds of `at`.
    pub fn epoch(&self, at: Instant) -> f64 {
        if at >= self.base {
            self.base_epoch + (at - self.base).as_secs_f64()
        } else {
            self.base_epoch - (self.base - at).as_secs_f64()
        }
    }

    /// The tokio instant of epoch time `epoch`.
    pub fn instant(&self, epoch: f64) -> Instant {
        let d = epoch - self.base_epoch;
        let span = std::time::Duration::try_from_secs_f64(d.abs().min(1e9)).unwrap_or_default();
        if d >= 0.0 {
            self.base + span
        } else {
            self.base.checked_sub(span).unwrap_or(self.base)
        }
    }

    /// The pinned pair: (tokio instant, epoch seconds at that instant).
    pub fn anchor(&self) -> (Instant, f64) {
        (self.base, self.base_epoch)
    }

    /// Epoch seconds now.
    pub fn now(&self) -> f64 {
        self.epoch(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let c = Clock::starting_at(1000.0);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!((c.now() - 1001.5).abs() < 1e-9);
        assert!((c.epoch(t0) - 1000.0).abs() < 1e-9);
        assert!((c.epoch(t0 - Duration::from_secs(2)) - 998.0).abs() < 1e-9);
        assert_eq!(c.instant(1001.0), t0 + Duration::from_secs(1));
        assert!((c.epoch(c.instant(999.25)) - 999.25).abs() < 1e-6);
    }
}
