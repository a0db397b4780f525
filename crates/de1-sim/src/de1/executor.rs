//! Executes an uploaded profile frame by frame (de1-behaviour.md §3.2).
//!
//! Each half-cycle the executor turns the current frame into a [`Drive`] for the pump
//! and set temperatures; after the hydraulics have moved it checks, on the same
//! measured values the ShotSample reports, whether the frame ends:
//!
//! * its exit comparison is true (pressure or flow, over or under the trigger);
//! * its volume limit is reached (pump volume during the frame);
//! * its duration has elapsed;
//! * or the app asked for SkipToNext.
//!
//! After the last frame — or when the tail's total-volume limit is reached — the shot
//! ends. "Smooth" frames ramp their set value from where the previous frame left it (the
//! previous target when it controlled the same quantity, else the measured value on
//! entry) to the frame's value over the frame's duration.

use super::hydraulics::Drive;
use super::thermal::GROUP_LOSS;

/// What a frame controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pump {
    Pressure,
    Flow,
}

/// An early-exit comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exit {
    /// Compare flow (else pressure).
    pub flow: bool,
    /// Exit when greater than (else less than).
    pub over: bool,
    pub value: f64,
}

/// One profile frame in engineering units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub pump: Pump,
    pub set_value: f64,
    pub temperature: f64,
    /// Regulate the mix (water) temperature rather than the basket's.
    pub mix_sensor: bool,
    pub interpolate: bool,
    pub duration: f64,
    pub exit: Option<Exit>,
    /// Frame volume limit in mL (0 = none).
    pub max_volume: f64,
    /// Limiter from the extension frame: max flow (pressure frame) or max pressure
    /// (flow frame), and the range it acts over.
    pub limiter: Option<(f64, f64)>,
    /// Ignore the header's MinimumPressure / MaximumFlow.
    pub ignore_limit: bool,
}

/// A whole uploaded profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub frames: Vec<Frame>,
    pub preinfuse_frames: usize,
    /// Header MinimumPressure (bar), applied to flow frames without IgnoreLimit.
    pub min_pressure: f64,
    /// Header MaximumFlow (mL/s), applied to pressure frames without IgnoreLimit.
    pub max_flow: f64,
    /// Tail MaxTotalVolume in mL (0 = none).
    pub max_total_volume: f64,
    /// Tail bit 15: do not count preinfusion toward the total.
    pub total_ignores_preinfusion: bool,
}

/// Measured values the executor compares with.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measured {
    pub pressure: f64,
    pub flow: f64,
}

/// Set values for this half-cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Targets {
    pub drive: Drive,
    pub set_pressure: f64,
    pub set_flow: f64,
    pub set_mix: f64,
    pub set_head: f64,
}

/// Why a frame ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameEnd {
    Time,
    ExitCondition,
    Volume,
    Skip,
}

/// Result of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    Stay,
    /// Moved on to the next frame.
    Next(FrameEnd),
    /// The shot is over (last frame ended, or the total volume was reached).
    End(FrameEnd),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Executor {
    program: Program,
    frame: usize,
    elapsed: f64,
    frame_volume: f64,
    total_volume: f64,
    preinfusion_volume: f64,
    /// Where a smooth ramp starts.
    ramp_from: f64,
    /// The last set value of each controlled quantity (for ramps).
    last_pressure_target: Option<f64>,
    last_flow_target: Option<f64>,
    done: bool,
}

/// Pump maximum pressure used as "no limit" for flow frames.
const NO_PRESSURE_LIMIT: f64 = 12.0;
/// Flow used as "no limit" for pressure frames.
const NO_FLOW_LIMIT: f64 = 16.0;

impl Executor {
    /// Begin at frame 0. `measured` is the state of the group on entry.
    pub fn start(program: Program, measured: Measured) -> Self {
        let mut e = Self {
            program,
            frame: 0,
            elapsed: 0.0,
            frame_volume: 0.0,
            total_volume: 0.0,
            preinfusion_volume: 0.0,
            ramp_from: 0.0,
            last_pressure_target: None,
            last_flow_target: None,
            done: false,
        };
        e.done = e.program.frames.is_empty();
        e.enter(measured);
        e
    }

    pub fn frame_index(&self) -> usize {
        self.frame
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// In the preinfusion part of the profile (frame index < preinfuse count).
    pub fn in_preinfusion(&self) -> bool {
        self.frame < self.program.preinfuse_frames
    }

    pub fn total_volume(&self) -> f64 {
        self.total_volume
    }

    pub fn frame_elapsed(&self) -> f64 {
        self.elapsed
    }

    fn current(&self) -> Option<&Frame> {
        self.program.frames.get(self.frame)
    }

    fn enter(&mut self, measured: Measured) {
        self.elapsed = 0.0;
        self.frame_volume = 0.0;
        let Some(f) = self.current().copied() else {
            return;
        };
        self.ramp_from = match f.pump {
            Pump::Pressure => self.last_pressure_target.unwrap_or(measured.pressure),
            Pump::Flow => self.last_flow_target.unwrap_or(measured.flow),
        };
    }

    /// The set value of the current frame at the current time (ramped if smooth).
    fn set_value(&self, f: &Frame) -> f64 {
        if f.interpolate && f.duration > 0.0 {
            let x = (self.elapsed / f.duration).clamp(0.0, 1.0);
            self.ramp_from + (f.set_value - self.ramp_from) * x
        } else {
            f.set_value
        }
    }

    /// Pump drive and set values for the coming half-cycle.
    pub fn targets(&self) -> Targets {
        let Some(f) = self.current().filter(|_| !self.done) else {
            return Targets {
                drive: Drive::Off,
                set_pressure: 0.0,
                set_flow: 0.0,
                set_mix: 0.0,
                set_head: 0.0,
            };
        };
        let sv = self.set_value(f).max(0.0);
        let (set_mix, set_head) = if f.mix_sensor {
            (f.temperature, f.temperature)
        } else {
            (f.temperature + GROUP_LOSS, f.temperature)
        };
        let header = !f.ignore_limit;
        let (drive, set_pressure, set_flow) = match f.pump {
            Pump::Pressure => {
                let mut max_flow = f.limiter.map_or(NO_FLOW_LIMIT, |(v, _)| v);
                if header && self.program.max_flow > 0.0 {
                    max_flow = max_flow.min(self.program.max_flow);
                }
                (
                    Drive::Pressure {
                        target: sv,
                        max_flow,
                    },
                    sv,
                    0.0,
                )
            }
            Pump::Flow => {
                let max_pressure = f.limiter.map_or(NO_PRESSURE_LIMIT, |(v, _)| v);
                let min_pressure = if header {
                    self.program.min_pressure
                } else {
                    0.0
                };
                (
                    Drive::Flow {
                        target: sv,
                        max_pressure,
                        min_pressure,
                    },
                    0.0,
                    sv,
                )
            }
        };
        Targets {
            drive,
            set_pressure,
            set_flow,
            set_mix,
            set_head,
        }
    }

    /// Account for a half-cycle of `dt` seconds in which the pump delivered `volume` mL,
    /// then decide on the measured values whether the frame or the shot ends.
    pub fn after_step(&mut self, dt: f64, volume: f64, measured: Measured) -> Advance {
        if self.done {
            return Advance::Stay;
        }
        let Some(f) = self.current().copied() else {
            self.done = true;
            return Advance::End(FrameEnd::Time);
        };
        self.elapsed += dt;
        self.frame_volume += volume;
        self.total_volume += volume;
        if self.in_preinfusion() {
            self.preinfusion_volume += volume;
        }
        // Tail: total volume limit.
        let p = &self.program;
        if p.max_total_volume > 0.0 {
            let counted = if p.total_ignores_preinfusion {
                self.total_volume - self.preinfusion_volume
            } else {
                self.total_volume
            };
            if counted + 1e-9 >= p.max_total_volume {
                self.done = true;
                return Advance::End(FrameEnd::Volume);
            }
        }
        let exit_hit = f.exit.is_some_and(|x| {
            let v = if x.flow {
                measured.flow
            } else {
                measured.pressure
            };
            if x.over {
                v > x.value
            } else {
                v < x.value
            }
        });
        let reason = if exit_hit {
            Some(FrameEnd::ExitCondition)
        } else if f.max_volume > 0.0 && self.frame_volume + 1e-9 >= f.max_volume {
            Some(FrameEnd::Volume)
        } else if self.elapsed + 1e-9 >= f.duration {
            Some(FrameEnd::Time)
        } else {
            None
        };
        match reason {
            None => Advance::Stay,
            Some(r) => self.next(r, measured),
        }
    }

    /// SkipToNext from the app.
    pub fn skip(&mut self, measured: Measured) -> Advance {
        if self.done {
            return Advance::Stay;
        }
        self.next(FrameEnd::Skip, measured)
    }

    fn next(&mut self, why: FrameEnd, measured: Measured) -> Advance {
        if let Some(f) = self.current().copied() {
            let last = self.set_value(&f);
            match f.pump {
                Pump::Pressure => self.last_pressure_target = Some(last),
                Pump::Flow => self.last_flow_target = Some(last),
            }
        }
        if self.frame + 1 >= self.program.frames.len() {
            self.done = true;
            return Advance::End(why);
        }
        self.frame += 1;
        self.enter(measured);
        Advance::Next(why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pump: Pump, v: f64, secs: f64) -> Frame {
        Frame {
            pump,
            set_value: v,
            temperature: 93.0,
            mix_sensor: false,
            interpolate: false,
            duration: secs,
            exit: None,
            max_volume: 0.0,
            limiter: None,
            ignore_limit: true,
        }
    }

    fn program(frames: Vec<Frame>) -> Program {
        Program {
            frames,
            preinfuse_frames: 0,
            min_pressure: 0.0,
            max_flow: 0.0,
            max_total_volume: 0.0,
            total_ignores_preinfusion: false,
        }
    }

    #[test]
    fn frames_advance_on_time_and_the_shot_ends_after_the_last() {
        let mut e = Executor::start(
            program(vec![
                frame(Pump::Flow, 4.0, 1.0),
                frame(Pump::Pressure, 9.0, 0.5),
            ]),
            Measured::default(),
        );
        let m = Measured::default();
        let mut steps = 0;
        while e.after_step(0.01, 0.0, m) == Advance::Stay {
            steps += 1;
        }
        assert_eq!(steps, 99);
        assert_eq!(e.frame_index(), 1);
        let mut steps = 1;
        while e.after_step(0.01, 0.0, m) == Advance::Stay {
            steps += 1;
        }
        assert_eq!(steps, 50);
        assert!(e.is_done());
        assert_eq!(e.targets().drive, Drive::Off);
    }

    #[test]
    fn exit_condition_volume_and_skip() {
        let mut f0 = frame(Pump::Flow, 4.0, 20.0);
        f0.exit = Some(Exit {
            flow: false,
            over: true,
            value: 4.0,
        });
        let mut f1 = frame(Pump::Flow, 2.0, 20.0);
        f1.max_volume = 5.0;
        let f2 = frame(Pump::Pressure, 9.0, 20.0);
        let mut e = Executor::start(program(vec![f0, f1, f2]), Measured::default());
        let low = Measured {
            pressure: 4.0,
            flow: 4.0,
        };
        assert_eq!(e.after_step(0.01, 0.04, low), Advance::Stay);
        let high = Measured {
            pressure: 4.01,
            flow: 4.0,
        };
        assert_eq!(
            e.after_step(0.01, 0.04, high),
            Advance::Next(FrameEnd::ExitCondition)
        );
        // Frame 1 ends at 5 mL of pump volume.
        let mut n = 0;
        loop {
            n += 1;
            match e.after_step(0.01, 0.02, low) {
                Advance::Stay => {}
                a => {
                    assert_eq!(a, Advance::Next(FrameEnd::Volume));
                    break;
                }
            }
        }
        assert_eq!(n, 250);
        assert_eq!(e.skip(low), Advance::End(FrameEnd::Skip));
    }

    #[test]
    fn smooth_frames_ramp_from_the_previous_target() {
        let f0 = frame(Pump::Pressure, 9.0, 1.0);
        let mut f1 = frame(Pump::Pressure, 5.0, 10.0);
        f1.interpolate = true;
        let mut e = Executor::start(program(vec![f0, f1]), Measured::default());
        let m = Measured {
            pressure: 8.7,
            flow: 2.0,
        };
        while e.after_step(0.01, 0.0, m) == Advance::Stay {}
        assert!((e.targets().set_pressure - 9.0).abs() < 1e-9);
        for _ in 0..500 {
            e.after_step(0.01, 0.0, m);
        }
        assert!((e.targets().set_pressure - 7.0).abs() < 0.01);
    }

    #[test]
    fn smooth_frame_after_a_different_mode_ramps_from_the_measurement() {
        let f0 = frame(Pump::Flow, 4.0, 0.01);
        let mut f1 = frame(Pump::Pressure, 9.0, 2.0);
        f1.interpolate = true;
        let mut e = Executor::start(program(vec![f0, f1]), Measured::default());
        let m = Measured {
            pressure: 3.0,
            flow: 4.0,
        };
        assert!(matches!(e.after_step(0.01, 0.0, m), Advance::Next(_)));
        assert!((e.targets().set_pressure - 3.0).abs() < 1e-9);
    }

    #[test]
    fn limiter_and_header_limits() {
        let mut f0 = frame(Pump::Pressure, 9.0, 1.0);
        f0.limiter = Some((3.5, 0.6));
        let mut f1 = frame(Pump::Flow, 2.0, 1.0);
        f1.limiter = Some((6.0, 0.5));
        f1.ignore_limit = false;
        let mut p = program(vec![f0, f1]);
        p.min_pressure = 1.5;
        let mut e = Executor::start(p, Measured::default());
        assert_eq!(
            e.targets().drive,
            Drive::Pressure {
                target: 9.0,
                max_flow: 3.5
            }
        );
        while e.after_step(0.01, 0.0, Measured::default()) == Advance::Stay {}
        assert_eq!(
            e.targets().drive,
            Drive::Flow {
                target: 2.0,
                max_pressure: 6.0,
                min_pressure: 1.5
            }
        );
    }

    #[test]
    fn tail_total_volume_can_ignore_preinfusion() {
        let mut p = program(vec![
            frame(Pump::Flow, 4.0, 100.0),
            frame(Pump::Flow, 2.0, 100.0),
        ]);
        p.preinfuse_frames = 1;
        p.max_total_volume = 10.0;
        p.total_ignores_preinfusion = true;
        let mut e = Executor::start(p, Measured::default());
        for _ in 0..20 {
            e.after_step(0.01, 1.0, Measured::default()); // 20 mL in preinfusion
        }
        assert_eq!(e.skip(Measured::default()), Advance::Next(FrameEnd::Skip));
        let mut n = 0;
        while e.after_step(0.01, 1.0, Measured::default()) == Advance::Stay {
            n += 1;
        }
        assert_eq!(n, 9);
        assert!(e.is_done());
    }

    #[test]
    fn basket_sensor_raises_the_mix_set_point() {
        let mut f = frame(Pump::Flow, 2.0, 1.0);
        let e = Executor::start(program(vec![f]), Measured::default());
        let t = e.targets();
        assert_eq!(t.set_head, 93.0);
        assert!(t.set_mix > 93.0);
        f.mix_sensor = true;
        let e = Executor::start(program(vec![f]), Measured::default());
        assert_eq!(e.targets().set_mix, 93.0);
    }
}
