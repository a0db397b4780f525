//! Dispensed volume from the DE1's flow samples, and the mains frequency from its
//! sample clock (pure).
//!
//! The DE1 does not report a volume; it reports GroupFlow (mL/s) every 25 mains
//! half-cycles and stamps each sample with SampleTime, a free-running 16-bit count of
//! half-cycles. Volume is the flow integrated over SampleTime (the machine's own clock,
//! immune to Bluetooth delivery jitter): `ΔV = flow × ΔSampleTime / (2 × mains Hz)`,
//! trapezoidal between consecutive samples. A ΔSampleTime that is not a small multiple
//! of 25 (± 1) means samples were lost in a way that cannot be bridged; that interval is
//! skipped.
//!
//! The mains frequency (50 or 60 Hz) is measured by comparing SampleTime with the
//! arrival times over several seconds; until that is certain the configured value is
//! used (pyDE1's default is 60 Hz, which makes every volume 20 % low on 50 Hz mains).

use ipc_schema::event::VOLUME_FRAMES;

/// Half-cycles between two regular samples.
pub const HALF_CYCLES_PER_SAMPLE: u16 = 25;
/// Most consecutive lost samples that are still bridged.
const MAX_BRIDGED: u16 = 4;
/// Arrival span needed before the measured mains frequency is trusted, s.
const DETECT_SPAN: f64 = 3.0;
/// Relative tolerance around 100 or 120 half-cycles per second.
const DETECT_TOLERANCE: f64 = 0.06;
/// Sample pairs in the detection window.
const DETECT_WINDOW: usize = 48;

/// The running volumes of the current sequence, mL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Volumes {
    /// Volume during the profile's preinfusion frames (espresso only).
    pub preinfuse: f64,
    /// Volume after the preinfusion frames (all of it for other modes).
    pub pour: f64,
    /// `preinfuse + pour`.
    pub total: f64,
    /// Per profile frame (espresso); other modes count in frame 0. `None` before the
    /// first sequence.
    pub by_frame: Option<[f64; VOLUME_FRAMES]>,
}

impl Default for Volumes {
    fn default() -> Self {
        Self {
            preinfuse: 0.0,
            pour: 0.0,
            total: 0.0,
            by_frame: None,
        }
    }
}

/// How a sample's volume is booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    /// Outside a flow: not counted.
    Off,
    /// Espresso with this many leading preinfusion frames.
    Espresso { preinfuse_frames: u8 },
    /// Steam, hot water, flush: all pour, frame 0.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Prev {
    sample_time: u16,
    flow: f64,
    arrival: f64,
}

/// Integrates GroupFlow over SampleTime.
#[derive(Debug, Clone)]
pub struct VolumeTracker {
    volumes: Volumes,
    prev: Option<Prev>,
    configured_hz: u32,
    detect: bool,
    detected_hz: Option<u32>,
    /// (ΔSampleTime, Δarrival) of recent sample pairs.
    pairs: std::collections::VecDeque<(f64, f64)>,
    skipped: u64,
}

impl VolumeTracker {
    pub fn new(line_frequency: u32, detect: bool) -> Self {
        Self {
            volumes: Volumes::default(),
            prev: None,
            configured_hz: line_frequency,
            detect,
            detected_hz: None,
            pairs: std::collections::VecDeque::with_capacity(DETECT_WINDOW + 1),
            skipped: 0,
        }
    }

    pub fn volumes(&self) -> Volumes {
        self.volumes
    }

    /// Zero the volumes (sequence start).
    pub fn reset(&mut self) {
        self.volumes = Volumes {
            by_frame: Some([0.0; VOLUME_FRAMES]),
            ..Volumes::default()
        };
    }

    /// The DE1 reconnected: its clock is a new one.
    pub fn forget_clock(&mut self) {
        self.prev = None;
        self.pairs.clear();
    }

    pub fn set_line_frequency(&mut self, hz: u32, detect: bool) {
        self.configured_hz = hz;
        self.detect = detect;
        if !detect {
            self.detected_hz = None;
        }
    }

    /// The mains frequency measured from the sample clock, once certain.
    pub fn detected_line_frequency(&self) -> Option<u32> {
        self.detected_hz
    }

    /// The frequency used for integration.
    pub fn line_frequency(&self) -> u32 {
        if self.detect {
            self.detected_hz.unwrap_or(self.configured_hz)
        } else {
            self.configured_hz
        }
    }

    /// Intervals skipped because of an unbridgeable SampleTime step.
    pub fn skipped_intervals(&self) -> u64 {
        self.skipped
    }

    /// One ShotSample (`arrival` in seconds on any monotonic origin).
    pub fn on_sample(
        &mut self,
        arrival: f64,
        sample_time: u16,
        flow: f64,
        frame: u8,
        booking: Booking,
    ) {
        let flow = if flow.is_finite() { flow.max(0.0) } else { 0.0 };
        let prev = self.prev.replace(Prev {
            sample_time,
            flow,
            arrival,
        });
        let Some(prev) = prev else { return };
        let delta = sample_time.wrapping_sub(prev.sample_time);
        let d_arrival = arrival - prev.arrival;
        self.observe_rate(delta, d_arrival);

        let n = (delta + HALF_CYCLES_PER_SAMPLE / 2) / HALF_CYCLES_PER_SAMPLE;
        let bridged =
            (1..=MAX_BRIDGED).contains(&n) && delta.abs_diff(n * HALF_CYCLES_PER_SAMPLE) <= 1;
        if !bridged {
            if booking != Booking::Off {
                self.skipped += 1;
                log::warn!("ShotSample clock stepped by {delta} half-cycles; interval not counted");
            }
            return;
        }
        let seconds = f64::from(delta) / (2.0 * f64::from(self.line_frequency()));
        let v = 0.5 * (prev.flow + flow) * seconds;
        match booking {
            Booking::Off => {}
            Booking::Espresso { preinfuse_frames } => {
                if frame < preinfuse_frames {
                    self.volumes.preinfuse += v;
                } else {
                    self.volumes.pour += v;
                }
                self.book_frame(usize::from(frame), v);
            }
            Booking::Other => {
                self.volumes.pour += v;
                self.book_frame(0, v);
            }
        }
        self.volumes.total = self.volumes.preinfuse + self.volumes.pour;
    }

    fn book_frame(&mut self, frame: usize, v: f64) {
        let by = self.volumes.by_frame.get_or_insert([0.0; VOLUME_FRAMES]);
        if let Some(slot) = by.get_mut(frame) {
            *slot += v;
        }
    }

    fn observe_rate(&mut self, delta: u16, d_arrival: f64) {
        if !self.detect {
            return;
        }
        if !(0.05..=3.0).contains(&d_arrival) || delta == 0 || delta > 1000 {
            // A reconnection or a clock step: start over.
            self.pairs.clear();
            return;
        }
        self.pairs.push_back((f64::from(delta), d_arrival));
        if self.pairs.len() > DETECT_WINDOW {
            self.pairs.pop_front();
        }
        let (cycles, span) = self
            .pairs
            .iter()
            .fold((0.0, 0.0), |(c, s), &(dc, ds)| (c + dc, s + ds));
        if span < DETECT_SPAN {
            return;
        }
        let rate = cycles / span;
        let hz = if (rate / 100.0 - 1.0).abs() < DETECT_TOLERANCE {
            Some(50)
        } else if (rate / 120.0 - 1.0).abs() < DETECT_TOLERANCE {
            Some(60)
        } else {
            None
        };
        if let Some(hz) = hz {
            if self.detected_hz != Some(hz) {
                log::info!("mains frequency measured from the DE1 sample clock: {hz} Hz");
                self.detected_hz = Some(hz);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DE1 sending samples every 25 half-cycles at `hz`, arriving on time.
    struct Feed {
        hz: u32,
        st: u16,
        t: f64,
    }

    impl Feed {
        fn run(&mut self, v: &mut VolumeTracker, n: usize, flow: f64, frame: u8, b: Booking) {
            let dt = 25.0 / (2.0 * self.hz as f64);
            for _ in 0..n {
                v.on_sample(self.t, self.st, flow, frame, b);
                self.st = self.st.wrapping_add(25);
                self.t += dt;
            }
        }
    }

    #[test]
    fn pyde1_intended_example_at_60_hz() {
        // Frame 0 at 2 mL/s for 10 samples → 4.17 mL preinfusion; frame 2 for 28
        // samples → 11.67 mL pour (pyde1-sequencer.md §6).
        let mut v = VolumeTracker::new(60, false);
        let mut f = Feed {
            hz: 60,
            st: 100,
            t: 0.0,
        };
        f.run(&mut v, 1, 2.0, 0, Booking::Off);
        v.reset();
        let b = Booking::Espresso {
            preinfuse_frames: 1,
        };
        f.run(&mut v, 10, 2.0, 0, b);
        let vol = v.volumes();
        assert!((vol.preinfuse - 4.1667).abs() < 1e-3, "{vol:?}");
        f.run(&mut v, 28, 2.0, 2, b);
        let vol = v.volumes();
        assert!((vol.pour - 11.6667).abs() < 1e-3, "{vol:?}");
        assert!((vol.total - 15.8333).abs() < 1e-3);
        let by = vol.by_frame.unwrap();
        assert!((by[0] - 4.1667).abs() < 1e-3 && (by[2] - 11.6667).abs() < 1e-3);
    }

    #[test]
    fn wraps_at_65536_and_bridges_a_lost_sample() {
        let mut v = VolumeTracker::new(50, false);
        v.reset();
        let b = Booking::Other;
        v.on_sample(0.0, 65_530, 4.0, 0, b);
        v.on_sample(0.25, 19, 4.0, 0, b); // wrapped: Δ = 25
        v.on_sample(0.75, 69, 4.0, 0, b); // one sample lost: Δ = 50
        v.on_sample(1.0, 1000, 4.0, 0, b); // unbridgeable step
        let vol = v.volumes();
        assert!((vol.pour - 4.0 * 0.75).abs() < 1e-9, "{vol:?}");
        assert_eq!(v.skipped_intervals(), 1);
        assert_eq!(vol.preinfuse, 0.0);
    }

    #[test]
    fn mains_frequency_is_measured() {
        for hz in [50, 60] {
            let mut v = VolumeTracker::new(60, true);
            let mut f = Feed {
                hz,
                st: 60_000,
                t: 10.0,
            };
            f.run(&mut v, 30, 0.0, 0, Booking::Off);
            assert_eq!(v.detected_line_frequency(), Some(hz));
            assert_eq!(v.line_frequency(), hz);
        }
        // Not enough yet.
        let mut v = VolumeTracker::new(60, true);
        let mut f = Feed {
            hz: 50,
            st: 0,
            t: 0.0,
        };
        f.run(&mut v, 5, 0.0, 0, Booking::Off);
        assert_eq!(v.detected_line_frequency(), None);
        assert_eq!(v.line_frequency(), 60);
    }

    #[test]
    fn at_50_hz_a_measured_clock_gives_true_volume() {
        // 30 s at 2 mL/s on 50 Hz mains = 60 mL; a controller assuming 60 Hz reads 50.
        let mut v = VolumeTracker::new(60, true);
        let mut f = Feed {
            hz: 50,
            st: 0,
            t: 0.0,
        };
        f.run(&mut v, 20, 0.0, 0, Booking::Off);
        v.reset();
        f.run(&mut v, 121, 2.0, 0, Booking::Other);
        assert!((v.volumes().total - 60.0).abs() < 0.3, "{:?}", v.volumes());
    }
}
