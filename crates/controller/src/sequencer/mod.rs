//! The flow sequencer: sequences and their gates, volumes, auto-tare, and the stop
//! limits (time, volume, weight, move-on-by-weight) — pure logic with an injected clock.
//!
//! The device layer feeds it what the DE1 and the scale report, each call carrying the
//! current time, and carries out the [`Action`]s it returns (write RequestedState, send
//! a tare, publish an event). It never reads a clock and does no I/O, so a 30 s shot
//! runs in microseconds in a test.
//!
//! ```text
//! StateInfo   ─► on_state(now, state, substate)   ─┐
//! ShotSample  ─► on_shot_sample(now, &sample)      ├─► Vec<Action>
//! scale       ─► on_weight(now, reading), on_scale_button, on_scale_connected/…
//! timers      ─► on_tick(now)  (at next_deadline() or periodically)
//! ```
//!
//! # Sequences and gates
//!
//! Entering Espresso, Steam, HotWater or HotWaterRinse from any other state starts a
//! sequence with a fresh id. Its eight gates are cleared, then set as the flow
//! progresses (`pyde1-sequencer.md` §2): `sequence_start`, `sequence_flow_begin`,
//! `sequence_expect_drops` (espresso, first sample with group pressure above
//! `first_drops_threshold`), `sequence_exit_preinfuse`, `sequence_flow_end`,
//! `sequence_flow_state_exit`, `sequence_last_drops` (espresso: `last_drops_minimum_time`
//! after flow end; other modes at flow end) and `sequence_complete`.
//!
//! # Where de1d differs from pyDE1 2.0 on purpose
//!
//! * Volumes are integrated (pyDE1 2.0's never leave 0), over SampleTime, with the
//!   mains frequency measured from the sample clock; preinfusion is frames
//!   `0 … n−1` (pyDE1 counts frame `n` too).
//! * `disable_auto_tare` is honoured.
//! * Espresso `stop_at_time` is acted on (from flow begin); hot-water stop-at-weight is
//!   armed from flow begin (pyDE1 holds the scale at tare through the whole pour, so it
//!   never fires).
//! * Each stop limit fires at most once per sequence.
//! * Stop-at-weight uses a robust weight/flow estimate (bump resistance, frozen or
//!   silent scale detection), a learned allowance for what drips after the stop, and a
//!   timer between reports; see [`StopTuning`]. `StopTuning::pyde1()` gives pyDE1's
//!   formula for comparison.
//! * No stray `sequence_complete` before the first sequence.
//!
//! # Stop-at-weight
//!
//! Armed from `sequence_expect_drops` (hot water: flow begin) to flow end, with a scale
//! connected. From the estimator's weight `W` at pan time `t_W` (report time minus the
//! sensor lag, bumps rejected) and flow `F`, the request time is
//!
//! ```text
//! t_stop = t_W + (target − drip − W) / F − stop_lead_time − fall_time + adjust
//! ```
//!
//! i.e. pyDE1's formula plus `drip`, the liquid that still reaches the cup after the
//! pump stopped (espresso only; learned from the settled weight of each shot stopped
//! by weight). The stop is requested when `now ≥ t_stop` — checked at each report and,
//! through [`Sequencer::next_deadline`], between reports — or at once when `W` has
//! passed the target (only if the weight was seen below the target first, so an
//! untared cup never stops a shot). When the scale freezes, goes silent or disconnects,
//! the weight is followed from the last good report with the DE1's pumped volume
//! (`de1_flow_ratio` g per mL).

mod de1_flow;
pub mod settings;
pub mod volume;

use std::time::{Duration, Instant};

use de1_protocol::packets::shot_sample::ShotSample;
use de1_protocol::profile::EncodedProfile;
use de1_protocol::state::{flow_phase, FlowPhase, MachineState, Substate};
use ipc_schema::event::{
    AutoTareAction, AutoTareNotification, Estimate as EventEstimate, Event, Gate, GateAction,
    ScaleButtonPress, ScaleTareSeen, Sender, SequenceId, SequencerGateNotification,
    ShotSampleWithVolumesUpdate, Stamp, StopAtAction, StopAtKind, StopAtNotification,
    WeightAndFlowUpdate,
};

use crate::scale::estimator::{Estimate, EstimatorConfig, WeightEstimator};
use crate::scale::tare::{TareConfig, TareTracker};
use crate::scale::{scale_class, ScaleModel, WeightReading};
use de1_flow::De1Flow;
pub use settings::{
    EspressoControl, HotWaterControl, HotWaterRinseControl, SequencerSettings, SettingsError,
    SteamControl, StopTuning,
};
pub use volume::Volumes;
use volume::{Booking, VolumeTracker};

/// Something the device layer must do.
// Most actions are events, so boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Write RequestedState: `Idle` to stop a flow, `SkipToNext` to move on a frame.
    RequestState(MachineState),
    /// Send the scale's tare command (already rate limited).
    TareScale,
    /// Publish an event.
    Emit(Event),
}

/// Ties the monotonic clock to wall-clock time for event stamps: `instant` is the
/// same moment as `epoch` seconds since 1970. Read both once at start-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochAnchor {
    pub instant: Instant,
    pub epoch: f64,
}

impl EpochAnchor {
    pub fn new(instant: Instant, epoch: f64) -> Self {
        Self { instant, epoch }
    }

    /// Seconds from the anchor to `t` (negative before it).
    fn mono(&self, t: Instant) -> f64 {
        match t.checked_duration_since(self.instant) {
            Some(d) => d.as_secs_f64(),
            None => -self.instant.duration_since(t).as_secs_f64(),
        }
    }

    fn instant_at(&self, mono: f64) -> Instant {
        if !mono.is_finite() {
            return self.instant;
        }
        let d = Duration::from_secs_f64(mono.abs().min(1e9));
        if mono >= 0.0 {
            self.instant.checked_add(d).unwrap_or(self.instant)
        } else {
            self.instant.checked_sub(d).unwrap_or(self.instant)
        }
    }
}

/// A 16-byte random source for sequence ids (SplitMix64; seeded by the caller).
#[derive(Debug, Clone)]
struct IdSource(u64);

impl IdSource {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn next_id(&mut self) -> SequenceId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        SequenceId::from_random_bytes(b)
    }
}

/// A seed for sequence ids from the operating system's hash randomisation (no extra
/// dependency; not a clock).
pub fn seed_from_os() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6465_3164);
    h.finish()
}

fn gate_bit(g: Gate) -> u8 {
    match g {
        Gate::SequenceStart => 1,
        Gate::FlowBegin => 2,
        Gate::ExpectDrops => 4,
        Gate::ExitPreinfuse => 8,
        Gate::FlowEnd => 16,
        Gate::FlowStateExit => 32,
        Gate::LastDrops => 64,
        Gate::SequenceComplete => 128,
    }
}

/// How much the scale can be believed right now (stop-at-weight).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trust {
    /// Weight and flow from the scale.
    Good(Estimate),
    /// A weight but no flow estimate yet (after a tare, a gap, a new level).
    Warming(Estimate),
    /// The same value for too long while the DE1 pumps: (value, arrival it began).
    Frozen(f64, f64),
    /// No report for too long.
    Silent,
    /// No scale.
    Gone,
}

/// Why the stop was requested.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SawTrigger {
    target: f64,
    /// The trigger came from the scale itself (not the DE1-flow fallback).
    from_scale: bool,
}

/// Per-sequence stop-at-weight state.
#[derive(Debug, Clone, Default)]
struct Saw {
    /// Window open (expect_drops / flow begin … flow end).
    armed: bool,
    triggered: Option<SawTrigger>,
    /// The weight was seen below the target while armed (an untared cup above the
    /// target never stops a shot).
    seen_below: bool,
    /// Predicted stop time from the newest report.
    predicted: Option<f64>,
    /// Newest trustworthy (weight, scale time).
    base: Option<(f64, f64)>,
    /// The scale has shown liquid arriving since arming.
    shown_flow: bool,
}

#[derive(Debug, Clone, Default)]
struct Mow {
    armed: bool,
    /// Frames already moved on from (bit per frame).
    done: u32,
    predicted: Option<(u8, f64)>,
    frame_start_weight: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Limit {
    armed: bool,
    triggered: bool,
}

/// One sequence.
#[derive(Debug, Clone)]
struct Sequence {
    id: SequenceId,
    state: MachineState,
    start: f64,
    gates: u8,
    complete: bool,
    flow_begin_at: Option<f64>,
    last_drops_due: Option<f64>,
    auto_tare: bool,
    saw: Saw,
    mow: Mow,
    sav: Limit,
    time: Limit,
    /// Rinse timer target fixed at flow begin (firmware < 1283).
    rinse_time: Option<f64>,
    stop_requested_at: Option<f64>,
    stop_retries: u8,
}

impl Sequence {
    fn has(&self, g: Gate) -> bool {
        self.gates & gate_bit(g) != 0
    }
}

/// Last DE1 sample.
#[derive(Debug, Clone, Copy)]
struct LastSample {
    arrival: f64,
    flow: f64,
    frame: u8,
}

/// The connected scale.
#[derive(Debug, Clone)]
struct ScaleSlot {
    model: Option<ScaleModel>,
    estimator: WeightEstimator,
    last_raw: Option<(f64, f64)>,
}

/// The flow sequencer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Sequencer {
    settings: SequencerSettings,
    anchor: EpochAnchor,
    ids: IdSource,
    /// Current (state, substate) as last reported.
    current: Option<(MachineState, Substate)>,
    seq: Option<Sequence>,
    volume: VolumeTracker,
    de1_flow: De1Flow,
    last_sample: Option<LastSample>,
    preinfuse_frames: u8,
    firmware_build: Option<u32>,
    scale: Option<ScaleSlot>,
    tare: TareTracker,
    drip_allowance: f64,
    /// Time of the last evaluation: deadlines not after it were already handled (or
    /// cannot act), so they are not offered again.
    last_poll: f64,
}

/// Firmware from which the DE1 times a flush itself.
const FW_FLUSH_CONTROL: u32 = 1283;
/// Firmware from which SkipToNext works.
const FW_SKIP_TO_NEXT: u32 = 1260;
/// A report older than this is not a current weight.
const CURRENT_WEIGHT_MAX_AGE: f64 = 1.0;
/// Errors larger than this (g) are not learned from (the cup was moved …).
const LEARN_MAX_ERROR: f64 = 5.0;
/// Most re-sent stop requests.
const MAX_STOP_RETRIES: u8 = 2;

impl Sequencer {
    /// A sequencer with `settings`, stamping events through `anchor` and drawing
    /// sequence ids from `id_seed` (e.g. [`seed_from_os`]). Settings that fail
    /// validation are logged and replaced by the defaults; [`Sequencer::try_new`]
    /// returns the error instead.
    pub fn new(settings: SequencerSettings, anchor: EpochAnchor, id_seed: u64) -> Self {
        let settings = settings.validated().unwrap_or_else(|e| {
            log::error!("sequencer settings rejected ({e}); using defaults");
            SequencerSettings::default()
        });
        Self {
            volume: VolumeTracker::new(settings.line_frequency, settings.detect_line_frequency),
            drip_allowance: settings.stop.drip_allowance,
            settings,
            anchor,
            ids: IdSource(id_seed),
            current: None,
            seq: None,
            de1_flow: De1Flow::default(),
            last_sample: None,
            preinfuse_frames: 0,
            firmware_build: None,
            scale: None,
            tare: TareTracker::new(TareConfig::default()),
            last_poll: f64::NEG_INFINITY,
        }
    }

    /// As [`Sequencer::new`], but invalid settings are an error.
    pub fn try_new(
        settings: SequencerSettings,
        anchor: EpochAnchor,
        id_seed: u64,
    ) -> Result<Self, SettingsError> {
        let settings = settings.validated()?;
        Ok(Self::new(settings, anchor, id_seed))
    }

    // ----- settings ---------------------------------------------------------------

    pub fn settings(&self) -> &SequencerSettings {
        &self.settings
    }

    /// Replace all settings (validated first; nothing changes on error).
    pub fn set_settings(&mut self, settings: SequencerSettings) -> Result<(), SettingsError> {
        let s = settings.validated()?;
        self.volume
            .set_line_frequency(s.line_frequency, s.detect_line_frequency);
        if s.stop.drip_allowance != self.settings.stop.drip_allowance {
            self.drip_allowance = s.stop.drip_allowance;
        }
        self.settings = s;
        Ok(())
    }

    pub fn espresso_control(&self) -> &EspressoControl {
        &self.settings.espresso
    }

    pub fn set_espresso_control(&mut self, c: EspressoControl) -> Result<(), SettingsError> {
        self.settings.espresso = c.validated()?;
        Ok(())
    }

    pub fn steam_control(&self) -> &SteamControl {
        &self.settings.steam
    }

    pub fn set_steam_control(&mut self, c: SteamControl) -> Result<(), SettingsError> {
        self.settings.steam = c.validated()?;
        Ok(())
    }

    pub fn hot_water_control(&self) -> &HotWaterControl {
        &self.settings.hot_water
    }

    pub fn set_hot_water_control(&mut self, c: HotWaterControl) -> Result<(), SettingsError> {
        self.settings.hot_water = c.validated()?;
        Ok(())
    }

    pub fn hot_water_rinse_control(&self) -> &HotWaterRinseControl {
        &self.settings.hot_water_rinse
    }

    pub fn set_hot_water_rinse_control(
        &mut self,
        c: HotWaterRinseControl,
    ) -> Result<(), SettingsError> {
        self.settings.hot_water_rinse = c.validated()?;
        Ok(())
    }

    pub fn stop_tuning(&self) -> &StopTuning {
        &self.settings.stop
    }

    pub fn set_stop_tuning(&mut self, t: StopTuning) -> Result<(), SettingsError> {
        let t = t.validated()?;
        if t.drip_allowance != self.settings.stop.drip_allowance {
            self.drip_allowance = t.drip_allowance;
        }
        self.settings.stop = t;
        Ok(())
    }

    /// The configured mains frequency (`de1/calibration/line_frequency`).
    pub fn configured_line_frequency(&self) -> u32 {
        self.settings.line_frequency
    }

    /// The mains frequency volumes are computed with (measured once certain, when
    /// detection is on).
    pub fn line_frequency(&self) -> u32 {
        self.volume.line_frequency()
    }

    pub fn detected_line_frequency(&self) -> Option<u32> {
        self.volume.detected_line_frequency()
    }

    /// Set the mains frequency: 50 or 60.
    pub fn set_line_frequency(&mut self, hz: u32) -> Result<(), SettingsError> {
        let s = SequencerSettings {
            line_frequency: hz,
            ..self.settings.clone()
        }
        .validated()?;
        self.settings.line_frequency = s.line_frequency;
        self.volume
            .set_line_frequency(hz, self.settings.detect_line_frequency);
        Ok(())
    }

    /// The allowance (g) for liquid reaching the cup after an espresso stop, as learned
    /// so far. Persist it and give it back with [`Sequencer::set_drip_allowance`].
    pub fn drip_allowance(&self) -> f64 {
        self.drip_allowance
    }

    pub fn set_drip_allowance(&mut self, grams: f64) {
        if grams.is_finite() {
            let m = self.settings.stop.drip_allowance_max;
            self.drip_allowance = grams.clamp(-m, m);
        }
    }

    /// The DE1's CPU firmware build (flush timing from 1283, SkipToNext from 1260).
    /// Unknown is treated as current firmware.
    pub fn set_firmware_build(&mut self, build: Option<u32>) {
        self.firmware_build = build;
    }

    /// A profile was uploaded: preinfusion frame count, move-on weights, and (if
    /// allowed) the espresso stop limits.
    pub fn on_profile(&mut self, profile: &EncodedProfile) {
        self.preinfuse_frames = profile.number_of_preinfuse_frames;
        let esp = &mut self.settings.espresso;
        esp.move_on_weight = profile.effective_move_on_weights();
        esp.move_on_weight.truncate(20);
        if esp.profile_can_override_stop_limits {
            esp.stop_at_volume = profile.stop_at_volume();
            if profile.target_weight.is_some() {
                esp.stop_at_weight = profile.stop_at_weight();
            }
        }
    }

    /// Number of leading preinfusion frames of the current profile.
    pub fn preinfuse_frames(&self) -> u8 {
        self.preinfuse_frames
    }

    // ----- observation -----------------------------------------------------------

    /// The id of the current (or last) sequence.
    pub fn sequence_id(&self) -> Option<SequenceId> {
        self.seq.as_ref().map(|s| s.id)
    }

    /// The flow state of the current (or last) sequence.
    pub fn active_state(&self) -> Option<MachineState> {
        self.seq.as_ref().map(|s| s.state)
    }

    pub fn is_sequence_running(&self) -> bool {
        self.seq.as_ref().is_some_and(|s| !s.complete)
    }

    /// Gates of the current (or last) sequence that are set.
    pub fn gates_set(&self) -> Vec<Gate> {
        match &self.seq {
            Some(s) => Gate::ALL.iter().copied().filter(|g| s.has(*g)).collect(),
            None => Vec::new(),
        }
    }

    pub fn volumes(&self) -> Volumes {
        self.volume.volumes()
    }

    /// The scale's weight/flow estimate (weight at `time`, sensor lag removed).
    pub fn weight_estimate(&self) -> Option<(f64, Option<f64>)> {
        self.scale
            .as_ref()
            .and_then(|s| s.estimator.estimate())
            .map(|e| (e.weight, e.flow))
    }

    /// The newest raw weight, if it is less than 1 s old at `now`.
    pub fn current_weight(&self, now: Instant) -> Option<f64> {
        self.current_weight_mono(self.anchor.mono(now))
    }

    pub fn scale_connected(&self) -> bool {
        self.scale.is_some()
    }

    /// When [`Sequencer::on_tick`] should next be called (stop predictions between
    /// scale reports, last drops, timers, the watchdog, a silent scale).
    pub fn next_deadline(&self) -> Option<Instant> {
        let seq = self.seq.as_ref().filter(|s| !s.complete)?;
        let mut due: Option<f64> = None;
        let after = self.last_poll;
        let mut at = |t: Option<f64>| {
            if let Some(t) = t.filter(|t| *t > after) {
                due = Some(due.map_or(t, |d: f64| d.min(t)));
            }
        };
        at(Some(seq.start + self.settings.sequence_watchdog));
        at(seq.last_drops_due);
        at(self.time_deadline(seq));
        if seq.stop_requested_at.is_none() {
            if seq.saw.armed && seq.saw.triggered.is_none() && !self.settings.stop.pyde1_formula {
                at(seq.saw.predicted);
                if let Some(t) = self.scale_last_arrival() {
                    at(Some(t + self.settings.stop.scale_silent_after));
                }
            }
            if seq.mow.armed {
                at(seq.mow.predicted.map(|p| p.1));
            }
        } else if self.settings.stop.stop_retry_after > 0.0 && seq.stop_retries < MAX_STOP_RETRIES {
            at(seq.stop_requested_at.map(|t| {
                t + self.settings.stop.stop_retry_after * f64::from(seq.stop_retries + 1)
            }));
        }
        due.map(|t| self.anchor.instant_at(t))
    }

    // ----- inputs -----------------------------------------------------------------

    /// A StateInfo report (every one, repeats included).
    pub fn on_state(
        &mut self,
        now: Instant,
        state: MachineState,
        substate: Substate,
    ) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        let prev = self.current.replace((state, substate));
        let (p_state, p_sub) = prev.unwrap_or((MachineState::NoRequest, Substate::NoState));
        if prev == Some((state, substate)) {
            self.poll(t, &mut out);
            return out;
        }
        let was_flow = p_state.is_flow_state();
        let is_flow = state.is_flow_state();
        let p_phase = flow_phase(p_state, p_sub);
        let phase = flow_phase(state, substate);

        if is_flow && !was_flow {
            self.start_sequence(t, state, &mut out);
        }
        let running = self.seq.as_ref().is_some_and(|s| !s.complete);
        if running {
            if is_flow && phase == FlowPhase::During && p_phase != FlowPhase::During {
                self.flow_begin(t, substate, &mut out);
            }
            if was_flow
                && p_sub == Substate::PreInfuse
                && (substate != Substate::PreInfuse || !is_flow)
            {
                self.exit_preinfuse(t, &mut out);
            }
            if p_phase == FlowPhase::During && (phase != FlowPhase::During || !is_flow) {
                self.flow_end(t, &mut out);
            }
            if was_flow && !is_flow {
                self.set_gate(t, Gate::FlowStateExit, &mut out);
                let (began, dropped) = self.seq.as_ref().map_or((false, false), |s| {
                    (s.has(Gate::FlowBegin), s.has(Gate::LastDrops))
                });
                if !began || dropped {
                    // Left before any flow (nothing more will come), or the last drops
                    // are already in.
                    self.complete(t, &mut out);
                }
            }
        }
        self.poll(t, &mut out);
        out
    }

    /// A ShotSample. Emits `ShotSampleWithVolumesUpdate` with the running volumes.
    pub fn on_shot_sample(&mut self, now: Instant, sample: &ShotSample) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        let v = sample.values();
        let (state, substate) = self
            .current
            .unwrap_or((MachineState::NoRequest, Substate::NoState));
        let during = state.is_flow_state() && flow_phase(state, substate) == FlowPhase::During;

        let booking = match &self.seq {
            Some(s) if !s.complete && s.has(Gate::FlowBegin) && !s.has(Gate::FlowEnd) => {
                if s.state == MachineState::Espresso {
                    Booking::Espresso {
                        preinfuse_frames: self.preinfuse_frames,
                    }
                } else {
                    Booking::Other
                }
            }
            _ => Booking::Off,
        };
        self.volume
            .on_sample(t, v.sample_time, v.group_flow, v.frame_number, booking);
        let vols = self.volume.volumes();
        if booking != Booking::Off {
            self.de1_flow.push(t, vols.total, v.group_flow);
        }
        let prev_frame = self.last_sample.map(|s| s.frame);
        self.last_sample = Some(LastSample {
            arrival: t,
            flow: v.group_flow,
            frame: v.frame_number,
        });

        let epoch = self.epoch(t);
        out.push(Action::Emit(Event::ShotSampleWithVolumesUpdate(
            ShotSampleWithVolumesUpdate {
                stamp: Stamp::at(epoch),
                sample_time: v.sample_time,
                group_pressure: v.group_pressure,
                group_flow: v.group_flow,
                mix_temp: v.mix_temp,
                head_temp: v.head_temp,
                set_mix_temp: v.set_mix_temp,
                set_head_temp: v.set_head_temp,
                set_group_pressure: v.set_group_pressure,
                set_group_flow: v.set_group_flow,
                frame_number: v.frame_number,
                steam_temp: sample.steam_temp,
                de1_time: epoch,
                volume_preinfuse: vols.preinfuse,
                volume_pour: vols.pour,
                volume_total: vols.total,
                volume_by_frames: vols.by_frame,
            },
        )));

        let running_espresso = self
            .seq
            .as_ref()
            .is_some_and(|s| !s.complete && s.state == MachineState::Espresso);
        if running_espresso && during {
            if prev_frame != Some(v.frame_number) {
                self.new_frame(t);
            }
            let needs_drops = self
                .seq
                .as_ref()
                .is_some_and(|s| s.has(Gate::FlowBegin) && !s.has(Gate::ExpectDrops));
            if needs_drops {
                if let Some(th) = self.settings.espresso.first_drops_threshold {
                    if v.group_pressure > th {
                        self.expect_drops(t, &mut out);
                    }
                }
            }
        }
        self.check_volume(t, v.group_flow, &mut out);
        self.poll(t, &mut out);
        out
    }

    /// A weight report. Emits `WeightAndFlowUpdate` (and `ScaleTareSeen` when a tare
    /// request is confirmed); may ask for a tare (auto-tare) or a stop.
    pub fn on_weight(&mut self, now: Instant, reading: WeightReading) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let arrival = self.anchor.mono(reading.arrival);
        let mut out = Vec::new();
        if self.scale.is_none() {
            // Reports from a scale nobody announced: take it as a generic one.
            self.attach_scale(None);
        }
        let tare = self.tare.on_report(arrival, reading.grams);
        let sender = Sender::Scale(scale_class(self.scale.as_ref().and_then(|s| s.model)));
        let Some(slot) = self.scale.as_mut() else {
            return out;
        };
        if tare.seen {
            slot.estimator.reset();
            out.push(Action::Emit(Event::ScaleTareSeen(ScaleTareSeen {
                stamp: Stamp {
                    arrival_time: self.anchor.epoch + arrival,
                    create_time: self.anchor.epoch + t,
                    event_time: self.anchor.epoch + t,
                },
                sender,
            })));
        }
        if tare.request {
            out.push(Action::TareScale);
        }
        slot.last_raw = Some((arrival, reading.grams));
        let pushed = slot.estimator.push(arrival, reading.grams);
        let est = |v: Option<crate::scale::estimator::TimedValue>| {
            v.map(|v| EventEstimate {
                value: v.value,
                time: self.anchor.epoch + v.time,
            })
        };
        out.push(Action::Emit(Event::WeightAndFlowUpdate(
            WeightAndFlowUpdate {
                stamp: Stamp {
                    arrival_time: self.anchor.epoch + arrival,
                    create_time: self.anchor.epoch + t,
                    event_time: self.anchor.epoch + t,
                },
                scale_time: self.anchor.epoch + pushed.scale_time,
                current_weight: reading.grams,
                average_flow: est(pushed.compat.average_flow),
                median_weight: est(pushed.compat.median_weight),
                median_flow: est(pushed.compat.median_flow),
            },
        )));
        self.evaluate_weight(t, true, &mut out);
        self.poll(t, &mut out);
        out
    }

    /// A scale button press. Skale II button 1 also tares.
    pub fn on_scale_button(&mut self, now: Instant, arrival: Instant, button: u8) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let a = self.anchor.mono(arrival);
        let model = self.scale.as_ref().and_then(|s| s.model);
        let mut out = vec![Action::Emit(Event::ScaleButtonPress(ScaleButtonPress {
            stamp: Stamp {
                arrival_time: self.anchor.epoch + a,
                create_time: self.anchor.epoch + t,
                event_time: self.anchor.epoch + t,
            },
            sender: Sender::Scale(scale_class(model)),
            button,
        }))];
        if button == scale_protocol::skale2::TARE_BUTTON && self.tare.request(t) {
            out.push(Action::TareScale);
        }
        out
    }

    /// Someone (HTTP `scale/tare`) wants a tare: returns [`Action::TareScale`] unless
    /// a tare was requested less than 0.25 s ago.
    pub fn request_tare(&mut self, now: Instant) -> Vec<Action> {
        let t = self.anchor.mono(now);
        if self.scale.is_some() && self.tare.request(t) {
            vec![Action::TareScale]
        } else {
            Vec::new()
        }
    }

    /// A scale is connected and ready.
    pub fn on_scale_connected(&mut self, now: Instant, model: ScaleModel) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        self.attach_scale(Some(model));
        // A sequence waiting for its first drops holds the new scale at zero too.
        let want = self
            .seq
            .as_ref()
            .filter(|s| !s.complete && !s.auto_tare)
            .is_some_and(|s| self.auto_tare_wanted(s.state) && !self.hold_released(s));
        if want {
            self.set_auto_tare(t, true, &mut out);
        }
        out
    }

    /// The scale's link dropped.
    pub fn on_scale_disconnected(&mut self, now: Instant) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        self.scale = None;
        self.tare.clear();
        self.tare.set_hold(false);
        let follow = self.settings.stop.follow_de1_when_scale_fails;
        let target = self.saw_target();
        let Some(seq) = self.seq.as_mut().filter(|s| !s.complete) else {
            return out;
        };
        seq.auto_tare = false;
        let saw_live = seq.saw.armed && seq.saw.triggered.is_none();
        let mow_live = std::mem::replace(&mut seq.mow.armed, false);
        if saw_live && !follow {
            seq.saw.armed = false;
        }
        if mow_live {
            self.emit_stop_at(
                t,
                StopAtKind::MoveOnByWeight,
                StopAtAction::Disabled,
                None,
                None,
                &mut out,
            );
        }
        if saw_live && !follow {
            self.emit_stop_at(
                t,
                StopAtKind::Weight,
                StopAtAction::Disabled,
                target,
                None,
                &mut out,
            );
        }
        self.poll(t, &mut out);
        out
    }

    /// The DE1's link dropped: a running sequence ends (its events are completed), and
    /// the next state report starts afresh.
    pub fn on_de1_disconnected(&mut self, now: Instant) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        if self.is_sequence_running() {
            self.complete(t, &mut out);
        }
        self.current = None;
        self.last_sample = None;
        self.volume.forget_clock();
        out
    }

    /// Timers: last drops, stop-at-time, stop predictions between reports, a silent
    /// scale, the watchdog, stop retries.
    pub fn on_tick(&mut self, now: Instant) -> Vec<Action> {
        let t = self.anchor.mono(now);
        let mut out = Vec::new();
        self.poll(t, &mut out);
        out
    }

    // ----- sequence bookkeeping ---------------------------------------------------

    fn epoch(&self, t: f64) -> f64 {
        self.anchor.epoch + t
    }

    fn start_sequence(&mut self, t: f64, state: MachineState, out: &mut Vec<Action>) {
        if self.is_sequence_running() {
            log::warn!("a new sequence starts while the last one is running; completing it");
            self.complete(t, out);
        }
        let id = self.ids.next_id();
        self.seq = Some(Sequence {
            id,
            state,
            start: t,
            gates: 0,
            complete: false,
            flow_begin_at: None,
            last_drops_due: None,
            auto_tare: false,
            saw: Saw::default(),
            mow: Mow::default(),
            sav: Limit::default(),
            time: Limit::default(),
            rinse_time: None,
            stop_requested_at: None,
            stop_retries: 0,
        });
        self.volume.reset();
        self.de1_flow.clear();
        for g in Gate::ALL {
            self.emit_gate(t, g, GateAction::Clear, out);
        }
        let weight = self.current_weight_mono(t);
        let pour = self.volume.volumes().pour;
        self.emit_stop_at(
            t,
            StopAtKind::Volume,
            self.volume_start_action(state),
            self.volume_start_target(state),
            Some(pour),
            out,
        );
        let tare = self.auto_tare_wanted(state) && self.scale.is_some();
        self.set_auto_tare(t, tare, out);
        if !tare {
            self.emit_auto_tare(t, AutoTareAction::Disabled, out);
        }
        let saw_target = match state {
            MachineState::Espresso => self.settings.espresso.stop_at_weight,
            MachineState::HotWater => self.settings.hot_water.stop_at_weight,
            _ => None,
        };
        self.emit_stop_at(
            t,
            StopAtKind::Weight,
            StopAtAction::Disabled,
            saw_target,
            weight,
            out,
        );
        self.emit_stop_at(
            t,
            StopAtKind::MoveOnByWeight,
            StopAtAction::Disabled,
            None,
            weight,
            out,
        );
        let (time_action, time_target) = self.time_start(state);
        self.emit_stop_at(t, StopAtKind::Time, time_action, time_target, None, out);
        self.emit_stop_at(
            t,
            StopAtKind::SteamToTemperature,
            StopAtAction::Disabled,
            None,
            None,
            out,
        );
        self.set_gate(t, Gate::SequenceStart, out);
    }

    fn volume_start_action(&self, state: MachineState) -> StopAtAction {
        if state == MachineState::HotWater && self.settings.hot_water.stop_at_volume.is_some() {
            StopAtAction::De1Controlled
        } else {
            StopAtAction::Disabled
        }
    }

    fn volume_start_target(&self, state: MachineState) -> Option<f64> {
        match state {
            MachineState::Espresso => self.settings.espresso.stop_at_volume,
            MachineState::HotWater => self.settings.hot_water.stop_at_volume,
            _ => None,
        }
    }

    fn flush_by_de1(&self) -> bool {
        self.firmware_build.is_none_or(|b| b >= FW_FLUSH_CONTROL)
    }

    fn time_start(&self, state: MachineState) -> (StopAtAction, Option<f64>) {
        let s = &self.settings;
        match state {
            MachineState::Steam => (StopAtAction::De1Controlled, s.steam.stop_at_time),
            MachineState::HotWater if s.hot_water.stop_at_time.is_some() => {
                (StopAtAction::De1Controlled, s.hot_water.stop_at_time)
            }
            MachineState::HotWaterRinse if self.flush_by_de1() => {
                (StopAtAction::De1Controlled, s.hot_water_rinse.stop_at_time)
            }
            MachineState::Espresso => (StopAtAction::Disabled, s.espresso.stop_at_time),
            _ => (StopAtAction::Disabled, None),
        }
    }

    fn auto_tare_wanted(&self, state: MachineState) -> bool {
        match state {
            MachineState::Espresso => !self.settings.espresso.disable_auto_tare,
            MachineState::HotWater => !self.settings.hot_water.disable_auto_tare,
            _ => false,
        }
    }

    /// The moment the hold is released has passed.
    fn hold_released(&self, s: &Sequence) -> bool {
        match s.state {
            MachineState::Espresso => s.has(Gate::ExpectDrops) || s.has(Gate::FlowEnd),
            _ => s.has(Gate::FlowBegin),
        }
    }

    fn set_auto_tare(&mut self, t: f64, on: bool, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_mut() else { return };
        if seq.auto_tare == on {
            return;
        }
        seq.auto_tare = on;
        self.tare.set_hold(on);
        let action = if on {
            AutoTareAction::Enabled
        } else {
            AutoTareAction::Disabled
        };
        self.emit_auto_tare(t, action, out);
        if on {
            // Tare at once rather than waiting for the next report.
            if self.tare.request(t) {
                out.push(Action::TareScale);
            }
        }
    }

    fn emit_auto_tare(&self, t: f64, action: AutoTareAction, out: &mut Vec<Action>) {
        out.push(Action::Emit(Event::AutoTareNotification(
            AutoTareNotification {
                stamp: Stamp::at(self.epoch(t)),
                action,
            },
        )));
    }

    fn emit_gate(&self, t: f64, gate: Gate, action: GateAction, out: &mut Vec<Action>) {
        let Some(seq) = &self.seq else { return };
        out.push(Action::Emit(Event::SequencerGateNotification(
            SequencerGateNotification {
                stamp: Stamp::at(self.epoch(t)),
                name: gate,
                action,
                sequence_id: seq.id,
                active_state: Some(seq.state),
            },
        )));
    }

    /// Set a gate once.
    fn set_gate(&mut self, t: f64, gate: Gate, out: &mut Vec<Action>) -> bool {
        let Some(seq) = self.seq.as_mut() else {
            return false;
        };
        if seq.has(gate) {
            return false;
        }
        seq.gates |= gate_bit(gate);
        self.emit_gate(t, gate, GateAction::Set, out);
        true
    }

    fn current_frame(&self) -> Option<u8> {
        let seq = self.seq.as_ref()?;
        let (state, sub) = self.current?;
        (seq.state == MachineState::Espresso
            && state == MachineState::Espresso
            && flow_phase(state, sub) == FlowPhase::During)
            .then(|| self.last_sample.map_or(0, |s| s.frame))
    }

    fn emit_stop_at(
        &self,
        t: f64,
        kind: StopAtKind,
        action: StopAtAction,
        target: Option<f64>,
        current: Option<f64>,
        out: &mut Vec<Action>,
    ) {
        let Some(seq) = &self.seq else { return };
        out.push(Action::Emit(Event::StopAtNotification(
            StopAtNotification {
                stamp: Stamp::at(self.epoch(t)),
                stop_at: kind,
                action,
                target_value: target,
                current_value: current,
                active_state: seq.state,
                current_frame: self.current_frame(),
            },
        )));
    }

    fn flow_begin(&mut self, t: f64, substate: Substate, out: &mut Vec<Action>) {
        if !self.set_gate(t, Gate::FlowBegin, out) {
            return;
        }
        let Some(state) = self.seq.as_ref().map(|s| s.state) else {
            return;
        };
        if let Some(seq) = self.seq.as_mut() {
            seq.flow_begin_at = Some(t);
        }
        match state {
            MachineState::Espresso => {
                if let Some(target) = self.settings.espresso.stop_at_time {
                    if let Some(seq) = self.seq.as_mut() {
                        seq.time.armed = true;
                    }
                    self.emit_stop_at(
                        t,
                        StopAtKind::Time,
                        StopAtAction::Enabled,
                        Some(target),
                        Some(0.0),
                        out,
                    );
                }
                if substate != Substate::PreInfuse {
                    // No preinfusion: the pour volume counts from now.
                    self.open_volume_window(t, out);
                }
                if self.settings.espresso.first_drops_threshold.is_none() {
                    self.expect_drops(t, out);
                }
            }
            MachineState::HotWater => {
                self.set_auto_tare(t, false, out);
                self.open_weight_window(t, out);
            }
            MachineState::HotWaterRinse if !self.flush_by_de1() => {
                if let Some(target) = self.settings.hot_water_rinse.stop_at_time {
                    if let Some(seq) = self.seq.as_mut() {
                        seq.time.armed = true;
                        seq.rinse_time = Some(target);
                    }
                    self.emit_stop_at(
                        t,
                        StopAtKind::Time,
                        StopAtAction::Enabled,
                        Some(target),
                        Some(0.0),
                        out,
                    );
                }
            }
            _ => {}
        }
    }

    fn expect_drops(&mut self, t: f64, out: &mut Vec<Action>) {
        if !self.set_gate(t, Gate::ExpectDrops, out) {
            return;
        }
        self.set_auto_tare(t, false, out);
        self.open_weight_window(t, out);
        // Move-on-by-weight: espresso only.
        let weight = self.current_weight_mono(t);
        let has_targets = self
            .settings
            .espresso
            .move_on_weight
            .iter()
            .any(Option::is_some);
        let scale = self.scale.is_some();
        if let Some(seq) = self.seq.as_mut() {
            seq.mow.armed = scale && has_targets;
        }
        let action = if scale {
            StopAtAction::Enabled
        } else {
            StopAtAction::Disabled
        };
        self.emit_stop_at(t, StopAtKind::MoveOnByWeight, action, None, weight, out);
    }

    fn open_weight_window(&mut self, t: f64, out: &mut Vec<Action>) {
        let scale = self.scale.is_some();
        let target = self.saw_target();
        let weight = self.current_weight_mono(t);
        if let Some(seq) = self.seq.as_mut() {
            seq.saw.armed = scale;
        }
        if scale {
            self.emit_stop_at(
                t,
                StopAtKind::Weight,
                StopAtAction::Enabled,
                target,
                weight,
                out,
            );
        } else {
            if target.is_some() {
                log::warn!("stop-at-weight is set but no scale is connected: not armed");
            }
            self.emit_stop_at(
                t,
                StopAtKind::Weight,
                StopAtAction::Disabled,
                target,
                None,
                out,
            );
        }
    }

    fn open_volume_window(&mut self, t: f64, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_mut() else { return };
        if seq.state != MachineState::Espresso || seq.sav.armed {
            return;
        }
        seq.sav.armed = true;
        let target = self.settings.espresso.stop_at_volume;
        let pour = self.volume.volumes().pour;
        self.emit_stop_at(
            t,
            StopAtKind::Volume,
            StopAtAction::Enabled,
            target,
            Some(pour),
            out,
        );
    }

    fn exit_preinfuse(&mut self, t: f64, out: &mut Vec<Action>) {
        if self.set_gate(t, Gate::ExitPreinfuse, out) {
            let still_flowing = self
                .current
                .is_some_and(|(s, sub)| flow_phase(s, sub) == FlowPhase::During);
            if still_flowing {
                self.open_volume_window(t, out);
            }
        }
    }

    fn flow_end(&mut self, t: f64, out: &mut Vec<Action>) {
        if !self.set_gate(t, Gate::FlowEnd, out) {
            return;
        }
        self.close_windows(t, out);
        let Some(seq) = self.seq.as_mut() else { return };
        let wait = if seq.state == MachineState::Espresso {
            self.settings.espresso.last_drops_minimum_time
        } else {
            0.0
        };
        if wait > 0.0 {
            seq.last_drops_due = Some(t + wait);
        } else {
            self.last_drops(t, out);
        }
    }

    /// Disarm every stop limit whose window is open, announcing it.
    fn close_windows(&mut self, t: f64, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_mut() else { return };
        let saw = std::mem::replace(&mut seq.saw.armed, false);
        let mow = std::mem::replace(&mut seq.mow.armed, false) || seq.has(Gate::ExpectDrops);
        let sav = std::mem::replace(&mut seq.sav.armed, false);
        let time = std::mem::replace(&mut seq.time.armed, false);
        let opened_weight = saw
            || seq.has(Gate::ExpectDrops)
            || (seq.state == MachineState::HotWater && seq.has(Gate::FlowBegin));
        let state = seq.state;
        let weight = self.current_weight_mono(t);
        if opened_weight {
            let target = self.saw_target();
            self.emit_stop_at(
                t,
                StopAtKind::Weight,
                StopAtAction::Disabled,
                target,
                weight,
                out,
            );
        }
        if mow && state == MachineState::Espresso {
            self.emit_stop_at(
                t,
                StopAtKind::MoveOnByWeight,
                StopAtAction::Disabled,
                None,
                weight,
                out,
            );
        }
        if sav {
            let target = self.settings.espresso.stop_at_volume;
            let pour = self.volume.volumes().pour;
            self.emit_stop_at(
                t,
                StopAtKind::Volume,
                StopAtAction::Disabled,
                target,
                Some(pour),
                out,
            );
        }
        if time {
            let target = self.time_target();
            let elapsed = self.elapsed_flow(t);
            self.emit_stop_at(
                t,
                StopAtKind::Time,
                StopAtAction::Disabled,
                target,
                elapsed,
                out,
            );
        }
    }

    fn last_drops(&mut self, t: f64, out: &mut Vec<Action>) {
        if let Some(seq) = self.seq.as_mut() {
            seq.last_drops_due = None;
        }
        self.set_gate(t, Gate::LastDrops, out);
        if self
            .seq
            .as_ref()
            .is_some_and(|s| s.has(Gate::FlowStateExit))
        {
            self.complete(t, out);
        }
    }

    fn complete(&mut self, t: f64, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_ref() else { return };
        if seq.complete {
            return;
        }
        let normal = seq.has(Gate::LastDrops) && seq.has(Gate::FlowStateExit);
        let trigger = seq.saw.triggered;
        let state = seq.state;
        if !seq.has(Gate::FlowEnd) {
            self.close_windows(t, out);
        }
        self.set_auto_tare(t, false, out);
        self.set_gate(t, Gate::SequenceComplete, out);
        if let Some(seq) = self.seq.as_mut() {
            seq.complete = true;
            seq.last_drops_due = None;
        }
        if normal && state == MachineState::Espresso {
            if let Some(trig) = trigger.filter(|tr| tr.from_scale) {
                self.learn(t, trig.target);
            }
        }
    }

    /// Take the settled weight of a shot stopped by weight into the drip allowance.
    fn learn(&mut self, t: f64, target: f64) {
        let stop = &self.settings.stop;
        if !stop.learn_drip || stop.pyde1_formula {
            return;
        }
        let Some(settled) = self.settled_weight(t) else {
            return;
        };
        let error = settled - target;
        if error.abs() > LEARN_MAX_ERROR {
            log::info!("shot ended {error:+.1} g off target; not learned from");
            return;
        }
        let m = stop.drip_allowance_max;
        let new = (self.drip_allowance + stop.learn_rate * error).clamp(-m, m);
        log::info!(
            "stop-at-weight: settled {settled:.1} g for {target:.1} g; drip allowance {:.2} → {new:.2} g",
            self.drip_allowance
        );
        self.drip_allowance = new;
    }

    /// The weight now, preferring the estimate (less noisy) when it is recent.
    fn settled_weight(&self, t: f64) -> Option<f64> {
        let slot = self.scale.as_ref()?;
        let (arrival, raw) = slot.last_raw?;
        if t - arrival > CURRENT_WEIGHT_MAX_AGE {
            return None;
        }
        Some(slot.estimator.estimate().map_or(raw, |e| e.weight))
    }

    fn attach_scale(&mut self, model: Option<ScaleModel>) {
        let cfg = match model {
            Some(m) => EstimatorConfig::for_scale(
                m.sensor_lag().as_secs_f64(),
                m.report_period().as_secs_f64(),
            ),
            None => EstimatorConfig::default(),
        };
        self.scale = Some(ScaleSlot {
            model,
            estimator: WeightEstimator::new(cfg),
            last_raw: None,
        });
        self.tare.clear();
    }

    fn scale_last_arrival(&self) -> Option<f64> {
        self.scale.as_ref().and_then(|s| s.estimator.last_arrival())
    }

    fn current_weight_mono(&self, t: f64) -> Option<f64> {
        let (arrival, w) = self.scale.as_ref()?.last_raw?;
        (t - arrival <= CURRENT_WEIGHT_MAX_AGE).then_some(w)
    }

    fn saw_target(&self) -> Option<f64> {
        match self.seq.as_ref()?.state {
            MachineState::Espresso => self.settings.espresso.stop_at_weight,
            MachineState::HotWater => self.settings.hot_water.stop_at_weight,
            _ => None,
        }
    }

    fn time_target(&self) -> Option<f64> {
        let seq = self.seq.as_ref()?;
        match seq.state {
            MachineState::Espresso => self.settings.espresso.stop_at_time,
            MachineState::HotWaterRinse => seq.rinse_time,
            _ => None,
        }
    }

    fn elapsed_flow(&self, t: f64) -> Option<f64> {
        self.seq.as_ref()?.flow_begin_at.map(|b| t - b)
    }

    fn time_deadline(&self, seq: &Sequence) -> Option<f64> {
        if !seq.time.armed || seq.time.triggered || seq.stop_requested_at.is_some() {
            return None;
        }
        let target = self.time_target()?;
        Some(seq.flow_begin_at? + target - self.settings.stop.stop_lead_time)
    }

    /// The DE1 can be told to stop: a flow state before or during the flow.
    fn stoppable(&self) -> bool {
        self.current.is_some_and(|(s, sub)| {
            s.is_flow_state() && matches!(flow_phase(s, sub), FlowPhase::Before | FlowPhase::During)
        })
    }

    fn request_stop(&mut self, t: f64, out: &mut Vec<Action>) {
        let stoppable = self.stoppable();
        let Some(seq) = self.seq.as_mut() else { return };
        if seq.stop_requested_at.is_some() {
            return;
        }
        seq.stop_requested_at = Some(t);
        if stoppable {
            out.push(Action::RequestState(MachineState::Idle));
        }
    }

    // ----- stop limits -------------------------------------------------------------

    /// Everything time-driven.
    fn poll(&mut self, t: f64, out: &mut Vec<Action>) {
        self.last_poll = self.last_poll.max(t);
        let Some(seq) = self.seq.as_ref() else { return };
        if seq.complete {
            return;
        }
        if t >= seq.start + self.settings.sequence_watchdog {
            log::warn!(
                "sequence watchdog: completing after {} s",
                self.settings.sequence_watchdog
            );
            self.complete(t, out);
            return;
        }
        if let Some(due) = seq.last_drops_due {
            if t >= due {
                self.last_drops(t, out);
                if !self.is_sequence_running() {
                    return;
                }
            }
        }
        self.check_time(t, out);
        self.evaluate_weight(t, false, out);
        self.retry_stop(t, out);
    }

    fn retry_stop(&mut self, t: f64, out: &mut Vec<Action>) {
        let retry = self.settings.stop.stop_retry_after;
        let stoppable = self.stoppable();
        let during = self
            .current
            .is_some_and(|(s, sub)| flow_phase(s, sub) == FlowPhase::During);
        let Some(seq) = self.seq.as_mut() else { return };
        let Some(at) = seq.stop_requested_at else {
            return;
        };
        if retry <= 0.0 || seq.stop_retries >= MAX_STOP_RETRIES || !during || !stoppable {
            return;
        }
        if t >= at + retry * f64::from(seq.stop_retries + 1) {
            seq.stop_retries += 1;
            log::warn!("the DE1 is still pouring after the stop request; asking again");
            out.push(Action::RequestState(MachineState::Idle));
        }
    }

    fn check_time(&mut self, t: f64, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_ref() else { return };
        let Some(due) = self.time_deadline(seq) else {
            return;
        };
        if t < due {
            return;
        }
        let target = self.time_target();
        let elapsed = self.elapsed_flow(t);
        if let Some(seq) = self.seq.as_mut() {
            seq.time.triggered = true;
        }
        self.emit_stop_at(
            t,
            StopAtKind::Time,
            StopAtAction::Triggered,
            target,
            elapsed,
            out,
        );
        self.request_stop(t, out);
    }

    fn check_volume(&mut self, t: f64, flow: f64, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_ref() else { return };
        if !seq.sav.armed || seq.sav.triggered || seq.stop_requested_at.is_some() || seq.complete {
            return;
        }
        let Some(target) = self.settings.espresso.stop_at_volume else {
            return;
        };
        let pour = self.volume.volumes().pour;
        // The pump runs for the stop lead time after the request.
        if pour + flow.max(0.0) * self.settings.stop.stop_lead_time < target {
            return;
        }
        if let Some(seq) = self.seq.as_mut() {
            seq.sav.triggered = true;
        }
        self.emit_stop_at(
            t,
            StopAtKind::Volume,
            StopAtAction::Triggered,
            Some(target),
            Some(pour),
            out,
        );
        self.request_stop(t, out);
    }

    fn new_frame(&mut self, t: f64) {
        // Liquid pumped before the change still lands for the fall time, and the scale
        // shows it a sensor lag late: the frame's own liquid starts on top of the
        // extrapolated weight.
        let start = match self.trust(t) {
            Trust::Good(e) => {
                let f = e.flow.unwrap_or(0.0).max(0.0);
                e.weight + f * (t + self.settings.stop.fall_time - e.time)
            }
            Trust::Warming(e) => e.weight,
            _ => self.current_weight_mono(t).unwrap_or(0.0),
        };
        if let Some(seq) = self.seq.as_mut() {
            seq.mow.frame_start_weight = start;
            seq.mow.predicted = None;
        }
    }

    /// How far the scale can be believed at `t` (stop-at-weight).
    fn trust(&self, t: f64) -> Trust {
        let Some(slot) = self.scale.as_ref() else {
            return Trust::Gone;
        };
        let tuning = &self.settings.stop;
        match slot.estimator.last_arrival() {
            None => return Trust::Silent,
            Some(a) if t - a > tuning.scale_silent_after => return Trust::Silent,
            _ => {}
        }
        let shown_flow = self.seq.as_ref().is_some_and(|s| s.saw.shown_flow);
        if shown_flow {
            if let Some((v, since)) = slot.estimator.unchanged_since() {
                let pumped = match (self.de1_flow.volume_at(t), self.de1_flow.volume_at(since)) {
                    (Some(now), Some(then)) => now - then,
                    _ => 0.0,
                };
                if t - since >= tuning.frozen_after && pumped >= tuning.frozen_volume {
                    return Trust::Frozen(v, since);
                }
            }
        }
        match slot.estimator.estimate() {
            Some(e) if e.flow.is_some() => Trust::Good(e),
            Some(e) => Trust::Warming(e),
            None => Trust::Silent,
        }
    }

    /// Weight, its time and the flow to predict with; `None` if nothing can be said.
    /// The bool is true when the values come from the scale itself.
    fn decision_input(&mut self, t: f64, report: bool) -> Option<(f64, f64, f64, bool)> {
        let trust = self.trust(t);
        // Only a report that changed the value updates the base: a scale that has just
        // frozen repeats its value for a while before it is recognised as frozen, and
        // the DE1 must be followed from before that.
        let moving = self.scale.as_ref().is_some_and(|s| {
            match (s.estimator.unchanged_since(), s.estimator.last_arrival()) {
                (Some((_, since)), Some(last)) => since >= last,
                _ => false,
            }
        });
        let de1_flow = self.de1_flow.flow().unwrap_or(0.0);
        let tuning = &self.settings.stop;
        let fall = tuning.fall_time;
        let follow = tuning.follow_de1_when_scale_fails;
        let ratio = tuning.de1_flow_ratio;
        let seq = self.seq.as_mut()?;
        // Once the puck is saturated what the pump delivers reaches the cup, a fall
        // time later (mass conservation; the ratio covers flow-meter error).
        let follow_from = |base: (f64, f64), de1: &De1Flow| -> Option<(f64, f64, f64, bool)> {
            let (w, tw) = base;
            let pumped = (de1.volume_at(t - fall)? - de1.volume_at(tw - fall)?).max(0.0);
            Some((w + ratio * pumped, t, ratio * de1_flow, false))
        };
        match trust {
            Trust::Good(e) => {
                let f = e.flow.unwrap_or(0.0);
                if report && moving {
                    seq.saw.base = Some((e.weight, e.time));
                }
                if f > 0.5 && e.weight > 1.0 {
                    seq.saw.shown_flow = true;
                }
                Some((e.weight, e.time, f, true))
            }
            Trust::Warming(e) => {
                if report {
                    seq.saw.base = Some((e.weight, e.time));
                }
                Some((e.weight, e.time, ratio * de1_flow, true))
            }
            Trust::Frozen(v, since) if follow => {
                let lag = self
                    .scale
                    .as_ref()
                    .map_or(0.38, |s| s.estimator.config().sensor_lag);
                follow_from((v, since - lag), &self.de1_flow)
            }
            Trust::Silent | Trust::Gone if follow => {
                let base = seq.saw.base?;
                follow_from(base, &self.de1_flow)
            }
            _ => None,
        }
    }

    /// Stop-at-weight and move-on-by-weight. `report` is true when called for a new
    /// weight report (pyDE1 decides only then).
    fn evaluate_weight(&mut self, t: f64, report: bool, out: &mut Vec<Action>) {
        let Some(seq) = self.seq.as_ref() else { return };
        if seq.complete || seq.stop_requested_at.is_some() {
            return;
        }
        let saw_live = seq.saw.armed && seq.saw.triggered.is_none();
        let mow_live = seq.mow.armed;
        if !saw_live && !mow_live {
            return;
        }
        if self.settings.stop.pyde1_formula {
            if report {
                self.evaluate_pyde1(t, out);
            }
            return;
        }
        let Some((w, tw, f, from_scale)) = self.decision_input(t, report) else {
            return;
        };
        let tuning = self.settings.stop.clone();
        if saw_live {
            if let Some(target) = self.saw_target() {
                let drip = if self
                    .seq
                    .as_ref()
                    .is_some_and(|s| s.state == MachineState::Espresso)
                {
                    self.drip_allowance
                } else {
                    0.0
                };
                let Some(seq) = self.seq.as_mut() else { return };
                if w < target {
                    seq.saw.seen_below = true;
                }
                if seq.saw.seen_below {
                    let passed = w >= target;
                    let t_stop = (f > 0.0).then(|| {
                        tw + (target - drip - w) / f - tuning.stop_lead_time - tuning.fall_time
                            + tuning.stop_at_weight_adjust
                    });
                    seq.saw.predicted = t_stop;
                    if passed || t_stop.is_some_and(|ts| t >= ts) {
                        seq.saw.triggered = Some(SawTrigger { target, from_scale });
                        let current = if from_scale {
                            self.current_weight_mono(t)
                        } else {
                            Some(w)
                        };
                        self.emit_stop_at(
                            t,
                            StopAtKind::Weight,
                            StopAtAction::Triggered,
                            Some(target),
                            current,
                            out,
                        );
                        self.request_stop(t, out);
                        return;
                    }
                }
            }
        }
        if mow_live && from_scale {
            self.evaluate_mow(t, w, tw, f, out);
        }
    }

    fn evaluate_mow(&mut self, t: f64, w: f64, tw: f64, f: f64, out: &mut Vec<Action>) {
        let Some(frame) = self.current_frame() else {
            return;
        };
        let Some(target) = self
            .settings
            .espresso
            .move_on_weight
            .get(usize::from(frame))
            .copied()
            .flatten()
        else {
            return;
        };
        let lead = self.settings.stop.stop_lead_time;
        let skip_ok = self.firmware_build.is_none_or(|b| b >= FW_SKIP_TO_NEXT);
        let current = self.current_weight_mono(t);
        let Some(seq) = self.seq.as_mut() else { return };
        let bit = 1u32 << u32::from(frame.min(31));
        if seq.mow.done & bit != 0 {
            return;
        }
        let delivered = w - seq.mow.frame_start_weight;
        let t_move = if delivered >= target {
            Some(t)
        } else if f > 0.0 {
            Some(tw + (target - delivered) / f - lead)
        } else {
            None
        };
        seq.mow.predicted = t_move.map(|tm| (frame, tm));
        if t_move.is_some_and(|tm| t >= tm) {
            seq.mow.done |= bit;
            seq.mow.predicted = None;
            if skip_ok {
                out.push(Action::RequestState(MachineState::SkipToNext));
            } else {
                log::warn!("move-on-by-weight needs firmware ≥ {FW_SKIP_TO_NEXT}");
            }
            self.emit_stop_at(
                t,
                StopAtKind::MoveOnByWeight,
                StopAtAction::Triggered,
                Some(target),
                current,
                out,
            );
        }
    }

    /// pyDE1 2.0's stop-at-weight and move-on decision, for comparison.
    fn evaluate_pyde1(&mut self, t: f64, out: &mut Vec<Action>) {
        let Some(slot) = self.scale.as_ref() else {
            return;
        };
        let Some((arrival, raw)) = slot.last_raw else {
            return;
        };
        let lag = slot.estimator.config().sensor_lag;
        let compat = slot.estimator.compat();
        let mut w = raw;
        let mut tw = arrival - lag;
        let mut f = compat.average_flow.map_or(0.0, |v| v.value);
        if f > 10.0 {
            f = match self.last_sample {
                Some(s) if t - s.arrival < 0.6 => s.flow * 1.1,
                _ => compat.median_flow.map_or(0.0, |v| v.value),
            };
            if let Some(m) = compat.median_weight {
                w = m.value;
                tw = m.time;
            }
        } else if f < 0.0 {
            f = 0.0;
        }
        if f <= 0.0 {
            return;
        }
        let tuning = self.settings.stop.clone();
        let saw_live = self
            .seq
            .as_ref()
            .is_some_and(|s| s.saw.armed && s.saw.triggered.is_none());
        if saw_live {
            if let Some(target) = self.saw_target() {
                let t_stop = tw + (target - w) / f - tuning.stop_lead_time - tuning.fall_time
                    + tuning.stop_at_weight_adjust;
                if t >= t_stop {
                    if let Some(seq) = self.seq.as_mut() {
                        seq.saw.triggered = Some(SawTrigger {
                            target,
                            from_scale: true,
                        });
                    }
                    self.emit_stop_at(
                        t,
                        StopAtKind::Weight,
                        StopAtAction::Triggered,
                        Some(target),
                        Some(raw),
                        out,
                    );
                    self.request_stop(t, out);
                    return;
                }
            }
        }
        if self.seq.as_ref().is_some_and(|s| s.mow.armed) {
            self.evaluate_mow(t, w, tw, f, out);
        }
    }
}

#[cfg(test)]
mod tests;
