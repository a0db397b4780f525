//! When to restart a crashed process, and when to give up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ipc_schema::config::{seconds, LauncherConfig};

/// Restart limits and back-off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more crash in the window means giving up.
    pub limit: u32,
    pub window: Duration,
    /// Delay before the first restart in the window; doubled for each further one.
    pub backoff: Duration,
    pub backoff_max: Duration,
}

impl RestartPolicy {
    pub fn from_config(c: &LauncherConfig) -> RestartPolicy {
        RestartPolicy {
            limit: c.restart_limit,
            window: seconds(c.restart_window),
            backoff: seconds(c.restart_backoff),
            backoff_max: seconds(c.restart_backoff_max),
        }
    }
}

/// The recent restarts of one process.
#[derive(Debug, Default)]
pub struct RestartHistory {
    restarts: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a crash at `now`: the delay before restarting, or `None` to give up.
    pub fn on_crash(&mut self, policy: &RestartPolicy, now: Instant) -> Option<Duration> {
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) >= policy.window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
        let recent = self.restarts.len();
        if recent >= policy.limit as usize {
            return None;
        }
        self.restarts.push_back(now);
        let factor = 1u32 << recent.min(16);
        Some(
            policy
                .backoff
                .saturating_mul(factor)
                .min(policy.backoff_max),
        )
    }

    /// Restarts within the current window (after the last [`RestartHistory::on_crash`]).
    pub fn recent(&self) -> usize {
        self.restarts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy::from_config(&LauncherConfig::default())
    }

    #[test]
    fn five_restarts_within_a_minute_then_give_up() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5)
            .map(|i| h.on_crash(&p, t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600].map(|ms| Some(Duration::from_millis(ms)))
        );
        assert_eq!(h.on_crash(&p, t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn old_restarts_leave_the_window() {
        let p = policy();
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(h.on_crash(&p, t0 + Duration::from_secs(i)).is_some());
        }
        // 60 s after the first restart, one slot is free again, with back-off for 4 recent.
        assert_eq!(
            h.on_crash(&p, t0 + Duration::from_secs(60)),
            Some(Duration::from_millis(1600))
        );
        assert_eq!(h.recent(), 5);
        // Long after everything: back to the first delay.
        assert_eq!(
            h.on_crash(&p, t0 + Duration::from_secs(600)),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn back_off_is_capped_and_a_zero_limit_never_restarts() {
        let mut p = policy();
        p.limit = 20;
        p.backoff_max = Duration::from_secs(5);
        let mut h = RestartHistory::default();
        let t0 = Instant::now();
        let last = (0..20)
            .map(|_| h.on_crash(&p, t0))
            .last()
            .flatten()
            .expect("allowed");
        assert_eq!(last, Duration::from_secs(5));
        p.limit = 0;
        assert_eq!(RestartHistory::default().on_crash(&p, t0), None);
    }
}
