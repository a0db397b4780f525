//! What the user (HTTP `de1/control/*`, `de1/calibration/line_frequency`) and the
//! configuration file can set about sequences and stop limits.
//!
//! The per-mode controls mirror pyDE1's `de1/control/<mode>` documents. Limits that the
//! DE1 enforces itself (steam time, hot-water time and volume, flush time on firmware ≥
//! 1283) are kept here too so the sequencer can announce them (`de1 controlled`); the
//! device layer writes them to the machine.

/// A value that cannot be accepted; the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SettingsError {
    pub field: &'static str,
    pub reason: String,
}

impl SettingsError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// `None` stays `None`; 0 becomes `None` (pyDE1 converts 0 to null); negative or
/// non-finite is an error.
fn limit(field: &'static str, v: Option<f64>) -> Result<Option<f64>, SettingsError> {
    match v {
        None => Ok(None),
        Some(x) if !x.is_finite() => Err(SettingsError::new(field, "must be a finite number")),
        Some(x) if x < 0.0 => Err(SettingsError::new(field, format!("{x} is negative"))),
        Some(0.0) => Ok(None),
        Some(x) => Ok(Some(x)),
    }
}

fn non_negative(field: &'static str, x: f64) -> Result<f64, SettingsError> {
    if !x.is_finite() || x < 0.0 {
        Err(SettingsError::new(field, format!("{x} must be ≥ 0")))
    } else {
        Ok(x)
    }
}

/// `de1/control/espresso`.
#[derive(Debug, Clone, PartialEq)]
pub struct EspressoControl {
    /// Stop this many seconds after water starts flowing (pyDE1 stores but ignores it;
    /// de1d acts on it).
    pub stop_at_time: Option<f64>,
    /// Stop at this pour volume, mL (volume after the preinfusion frames).
    pub stop_at_volume: Option<f64>,
    /// Stop so that this much ends up in the cup, g.
    pub stop_at_weight: Option<f64>,
    /// Move-on-by-weight target per profile frame, g (index = frame number).
    pub move_on_weight: Vec<Option<f64>>,
    /// Do not tare the scale at the start of a shot.
    pub disable_auto_tare: bool,
    /// A profile upload replaces `stop_at_volume` and `stop_at_weight`.
    pub profile_can_override_stop_limits: bool,
    /// A profile's `tank_temperature` is written to the DE1 (device layer).
    pub profile_can_override_tank_temperature: bool,
    /// Group pressure (bar) above which the first drops are expected; `None` means as
    /// soon as water flows.
    pub first_drops_threshold: Option<f64>,
    /// Wait after the flow ends before the sequence is complete, s.
    pub last_drops_minimum_time: f64,
}

impl Default for EspressoControl {
    fn default() -> Self {
        Self {
            stop_at_time: None,
            stop_at_volume: None,
            stop_at_weight: None,
            move_on_weight: Vec::new(),
            disable_auto_tare: false,
            profile_can_override_stop_limits: true,
            profile_can_override_tank_temperature: true,
            first_drops_threshold: Some(0.0),
            last_drops_minimum_time: 3.0,
        }
    }
}

impl EspressoControl {
    /// Check ranges and normalise (0 → `None` for limits, trailing `None`s of
    /// `move_on_weight` removed, move-on weights ≤ 0 mean none).
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        self.stop_at_time = limit("stop_at_time", self.stop_at_time)?;
        self.stop_at_volume = limit("stop_at_volume", self.stop_at_volume)?;
        self.stop_at_weight = limit("stop_at_weight", self.stop_at_weight)?;
        if self.move_on_weight.len() > 20 {
            return Err(SettingsError::new("move_on_weight", "at most 20 frames"));
        }
        for w in self.move_on_weight.iter_mut() {
            if let Some(x) = *w {
                if !x.is_finite() {
                    return Err(SettingsError::new("move_on_weight", "must be finite"));
                }
                if x <= 0.0 {
                    *w = None;
                }
            }
        }
        while self.move_on_weight.last() == Some(&None) {
            self.move_on_weight.pop();
        }
        if let Some(t) = self.first_drops_threshold {
            if !t.is_finite() || !(0.0..=10.0).contains(&t) {
                return Err(SettingsError::new(
                    "first_drops_threshold",
                    format!("{t} is outside 0–10 bar"),
                ));
            }
        }
        self.last_drops_minimum_time =
            non_negative("last_drops_minimum_time", self.last_drops_minimum_time)?;
        Ok(self)
    }
}

/// `de1/control/steam`. The time limit is the DE1's (ShotSettings TargetSteamLength).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SteamControl {
    pub stop_at_time: Option<f64>,
    pub disable_auto_tare: bool,
}

impl SteamControl {
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        self.stop_at_time = limit("stop_at_time", self.stop_at_time)?;
        Ok(self)
    }
}

/// `de1/control/hot_water`. Time and volume are the DE1's (ShotSettings); weight is
/// de1d's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HotWaterControl {
    pub stop_at_time: Option<f64>,
    pub stop_at_volume: Option<f64>,
    pub stop_at_weight: Option<f64>,
    pub disable_auto_tare: bool,
}

impl HotWaterControl {
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        self.stop_at_time = limit("stop_at_time", self.stop_at_time)?;
        self.stop_at_volume = limit("stop_at_volume", self.stop_at_volume)?;
        self.stop_at_weight = limit("stop_at_weight", self.stop_at_weight)?;
        Ok(self)
    }
}

/// `de1/control/hot_water_rinse` ("flush"). On firmware ≥ 1283 the DE1 times the flush
/// itself (MMR FLUSH_TIMEOUT); on older firmware the sequencer does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HotWaterRinseControl {
    pub stop_at_time: Option<f64>,
    pub disable_auto_tare: bool,
}

impl HotWaterRinseControl {
    pub fn validated(mut self) -> Result<Self, SettingsError> {
        self.stop_at_time = limit("stop_at_time", self.stop_at_time)?;
        Ok(self)
    }
}

/// How the stop-at-weight and move-on-by-weight predictions are made (configuration
/// file; seconds and grams).
#[derive(Debug, Clone, PartialEq)]
pub struct StopTuning {
    /// From the stop request to the pump stopping (pyDE1 0.10 s).
    pub stop_lead_time: f64,
    /// Time liquid takes from the basket to the cup (pyDE1 0.17 s).
    pub fall_time: f64,
    /// Added to the predicted stop time, s; larger → more in the cup (pyDE1 −0.07 s).
    pub stop_at_weight_adjust: f64,
    /// Liquid expected to reach the cup after the pump stopped, beyond what is in the
    /// air (the puck drains), g. Used as the starting value of the learned allowance.
    pub drip_allowance: f64,
    /// Learn the drip allowance from the settled weight of each shot stopped by weight.
    pub learn_drip: bool,
    /// Fraction of each shot's error taken into the learned allowance (0–1).
    pub learn_rate: f64,
    /// Bounds of the learned allowance, g.
    pub drip_allowance_max: f64,
    /// Compute the stop time exactly as pyDE1 2.0 does (for comparison): no drip
    /// allowance, stop at report times only, pyDE1's choice of weight and flow.
    pub pyde1_formula: bool,
    /// When the scale freezes, goes silent or disconnects during a shot, keep stopping
    /// at the weight by following the DE1's flow from the last good report.
    pub follow_de1_when_scale_fails: bool,
    /// Grams reaching the cup per mL the DE1 reports pumping, when following the DE1.
    pub de1_flow_ratio: f64,
    /// No report for this long (s) while stop-at-weight is armed: the scale is silent.
    pub scale_silent_after: f64,
    /// The same value for this long (s) while the DE1 pumped at least
    /// `frozen_volume` mL: the scale is frozen.
    pub frozen_after: f64,
    pub frozen_volume: f64,
    /// Re-send the stop if the DE1 is still pouring this long after it (s); 0 = never.
    pub stop_retry_after: f64,
}

impl Default for StopTuning {
    fn default() -> Self {
        Self {
            stop_lead_time: 0.10,
            fall_time: 0.17,
            stop_at_weight_adjust: 0.0,
            drip_allowance: 0.9,
            learn_drip: true,
            learn_rate: 0.5,
            drip_allowance_max: 4.0,
            pyde1_formula: false,
            follow_de1_when_scale_fails: true,
            de1_flow_ratio: 1.0,
            scale_silent_after: 0.6,
            frozen_after: 0.6,
            frozen_volume: 1.0,
            stop_retry_after: 1.5,
        }
    }
}

impl StopTuning {
    /// pyDE1 2.0's constants and formula (`STOP_AT_WEIGHT_ADJUST` −0.07 s).
    pub fn pyde1() -> Self {
        Self {
            stop_at_weight_adjust: -0.07,
            drip_allowance: 0.0,
            learn_drip: false,
            pyde1_formula: true,
            follow_de1_when_scale_fails: false,
            ..Self::default()
        }
    }

    pub fn validated(self) -> Result<Self, SettingsError> {
        non_negative("stop_lead_time", self.stop_lead_time)?;
        non_negative("fall_time", self.fall_time)?;
        if !self.stop_at_weight_adjust.is_finite() || self.stop_at_weight_adjust.abs() > 5.0 {
            return Err(SettingsError::new(
                "stop_at_weight_adjust",
                "must be within ±5 s",
            ));
        }
        non_negative("drip_allowance_max", self.drip_allowance_max)?;
        if !self.drip_allowance.is_finite() || self.drip_allowance.abs() > self.drip_allowance_max {
            return Err(SettingsError::new(
                "drip_allowance",
                "must be within ± drip_allowance_max",
            ));
        }
        if !(0.0..=1.0).contains(&self.learn_rate) {
            return Err(SettingsError::new("learn_rate", "must be within 0–1"));
        }
        if !(0.5..=1.5).contains(&self.de1_flow_ratio) {
            return Err(SettingsError::new(
                "de1_flow_ratio",
                "must be within 0.5–1.5",
            ));
        }
        non_negative("scale_silent_after", self.scale_silent_after)?;
        non_negative("frozen_after", self.frozen_after)?;
        non_negative("frozen_volume", self.frozen_volume)?;
        non_negative("stop_retry_after", self.stop_retry_after)?;
        Ok(self)
    }
}

/// Everything the sequencer can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct SequencerSettings {
    pub espresso: EspressoControl,
    pub steam: SteamControl,
    pub hot_water: HotWaterControl,
    pub hot_water_rinse: HotWaterRinseControl,
    /// Mains frequency used to turn SampleTime into seconds, 50 or 60 (pyDE1 default 60).
    pub line_frequency: u32,
    /// Measure the mains frequency from the DE1's sample clock and use that once sure.
    pub detect_line_frequency: bool,
    pub stop: StopTuning,
    /// A sequence is completed anyway this long after it started, s (pyDE1 270).
    pub sequence_watchdog: f64,
}

impl Default for SequencerSettings {
    fn default() -> Self {
        Self {
            espresso: EspressoControl::default(),
            steam: SteamControl::default(),
            hot_water: HotWaterControl::default(),
            hot_water_rinse: HotWaterRinseControl::default(),
            line_frequency: 60,
            detect_line_frequency: true,
            stop: StopTuning::default(),
            sequence_watchdog: 270.0,
        }
    }
}

impl SequencerSettings {
    pub fn validated(self) -> Result<Self, SettingsError> {
        if self.line_frequency != 50 && self.line_frequency != 60 {
            return Err(SettingsError::new(
                "line_frequency",
                format!("{} Hz: must be 50 or 60", self.line_frequency),
            ));
        }
        if !self.sequence_watchdog.is_finite() || self.sequence_watchdog <= 0.0 {
            return Err(SettingsError::new("sequence_watchdog", "must be > 0"));
        }
        Ok(Self {
            espresso: self.espresso.validated()?,
            steam: self.steam.validated()?,
            hot_water: self.hot_water.validated()?,
            hot_water_rinse: self.hot_water_rinse.validated()?,
            stop: self.stop.validated()?,
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_normalised_like_pyde1() {
        let c = EspressoControl {
            stop_at_weight: Some(0.0),
            stop_at_volume: Some(36.0),
            move_on_weight: vec![Some(4.0), Some(0.0), None],
            ..EspressoControl::default()
        }
        .validated()
        .unwrap();
        assert_eq!(c.stop_at_weight, None);
        assert_eq!(c.stop_at_volume, Some(36.0));
        assert_eq!(c.move_on_weight, vec![Some(4.0)]);
        let e = EspressoControl {
            stop_at_time: Some(-1.0),
            ..EspressoControl::default()
        }
        .validated()
        .unwrap_err();
        assert_eq!(e.field, "stop_at_time");
        let e = EspressoControl {
            first_drops_threshold: Some(11.0),
            ..EspressoControl::default()
        }
        .validated()
        .unwrap_err();
        assert_eq!(e.field, "first_drops_threshold");
    }

    #[test]
    fn line_frequency_must_be_mains() {
        let s = SequencerSettings {
            line_frequency: 55,
            ..SequencerSettings::default()
        };
        assert_eq!(s.validated().unwrap_err().field, "line_frequency");
        assert!(SequencerSettings::default().validated().is_ok());
        assert!(StopTuning::pyde1().validated().is_ok());
    }
}
