//! Turning a [`Profile`] into the writes that program the machine (de1-profiles.md §2),
//! plus pyDE1's identity values (§3).
//!
//! Bytes are pyDE1's for every field (header MaximumFlow 10.0, no MaxVol flag bit,
//! round half to even), except the tail frame, see [`EncodedProfile::frames`].

use sha1::{Digest, Sha1};

use super::error::{ProfileError, ProfileErrorKind};
use super::model::{ExitCondition, ExitKind, Profile, Pump, Sensor, Step, Transition};
use super::number::round_half_even;
use crate::characteristic::Characteristic;
use crate::fixed::{FixedError, F8_1_7, U10P0, U8P1, U8P4};
use crate::packets::frame_write::{ExtensionFrame, FrameFlags, FrameWrite, ShotFrame, TailFrame};
use crate::packets::header_write::HeaderWrite;

/// Most steps a profile may have: the machine has 20 frames.
pub const MAX_STEPS: usize = HeaderWrite::MAX_FRAMES as usize;
/// Header MaximumFlow, as pyDE1 writes it (de1app writes 6.0). Irrelevant to the
/// machine's behaviour since every frame sets IgnoreLimit, but part of the fingerprint.
pub const HEADER_MAXIMUM_FLOW: f64 = 10.0;
/// Highest tank pre-heat threshold accepted, °C. The register takes any integer, but a
/// threshold the tank water cannot reach at atmospheric pressure is a mistake, not a
/// setting (pyDE1 itself notes the register as "0-60°C ?").
pub const MAX_TANK_TEMPERATURE: f64 = 100.0;

/// A validated, completely encoded profile: everything needed to program the machine
/// and to apply the profile's app-side settings. Building one has no side effects, so a
/// caller writes nothing unless [`encode_profile`] returned `Ok`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedProfile {
    /// pyDE1's profile id: lowercase hex SHA-1 of the exact source bytes (no
    /// normalisation; whitespace and key order count).
    pub id: String,
    /// pyDE1's fingerprint: lowercase hex SHA-1 of the frame bytes *as pyDE1 writes
    /// them*, i.e. header ‖ shot frames ‖ extension frames ‖ pyDE1's little-endian tail
    /// ([`EncodedProfile::pyde1_tail`]). pyDE1 hashes its tail bytes too, so hashing
    /// the same form keeps fingerprints equal to those stored in pyDE1 databases even
    /// though de1d sends a different tail.
    pub fingerprint: String,
    /// App-side stop-at-weight, g, as given (≤ 0 means none; see
    /// [`EncodedProfile::stop_at_weight`]). `None` when the profile has none.
    pub target_weight: Option<f64>,
    /// App-side stop-at-volume, mL, as given (≤ 0 means none).
    pub target_volume: f64,
    /// Tank pre-heat threshold, °C (MMR TANK_TEMP, written as `round(v)`); `None` when
    /// the profile does not set one.
    pub tank_temperature: Option<f64>,
    /// Leading frames that are preinfusion (header byte 2).
    pub number_of_preinfuse_frames: u8,
    /// Per-step move-on weights as pyDE1 takes them: `Some(w)` for each step with a
    /// `weight`, `None` for steps without, trailing `None`s removed. `Some(0.0)` is
    /// kept as pyDE1 keeps it; see [`EncodedProfile::effective_move_on_weights`].
    pub move_on_weight_list: Vec<Option<f64>>,
    /// The HeaderWrite packet.
    pub header: HeaderWrite,
    /// The FrameWrite packets in write order: shot frames `0 … N−1`, extension frames
    /// (only for steps with an active limiter, ascending), then the tail.
    ///
    /// The tail is the firmware's big-endian structure the way Decent's de1app and
    /// reaprime send it: MaxTotalVolume 0 and no flags (`NN 00 00 00 00 00 00 00`).
    /// pyDE1 instead packs `target_volume | 0x8000` in host (little-endian) order, e.g.
    /// `04 24 80 …` for 36 mL, which the firmware reads as 0x2480 — a volume limit of
    /// 128 mL with stray flag bits, not what was meant (de1-ble.md §5.13.3). Stopping at
    /// a volume is done by the app from [`EncodedProfile::target_volume`], as both
    /// de1app and pyDE1 also do.
    pub frames: Vec<FrameWrite>,
    /// The parsed profile (title, notes, steps …).
    pub profile: Profile,
}

impl EncodedProfile {
    /// The writes in order: `(HeaderWrite, 5 bytes)`, then `(FrameWrite, 8 bytes)` for
    /// every frame of [`EncodedProfile::frames`].
    pub fn writes(&self) -> Vec<(Characteristic, Vec<u8>)> {
        let mut out = Vec::with_capacity(1 + self.frames.len());
        out.push((Characteristic::HeaderWrite, self.header.encode().to_vec()));
        out.extend(
            self.frames
                .iter()
                .map(|f| (Characteristic::FrameWrite, f.encode().to_vec())),
        );
        out
    }

    /// The tail frame pyDE1 would write (and hashes into its fingerprint):
    /// `(round(target_volume) & 0x3FF) | 0x8000` packed little-endian after the frame
    /// count. de1d does not send this; see [`EncodedProfile::frames`].
    pub fn pyde1_tail(&self) -> [u8; 8] {
        pyde1_tail(self.header.number_of_frames, self.target_volume)
    }

    /// The bytes pyDE1's fingerprint covers: header ‖ shot frames ‖ extension frames ‖
    /// [`EncodedProfile::pyde1_tail`].
    pub fn fingerprint_bytes(&self) -> Vec<u8> {
        fingerprint_bytes(&self.header, &self.frames, self.target_volume)
    }

    /// Stop-at-weight the app should apply: `target_weight` if it is > 0.
    pub fn stop_at_weight(&self) -> Option<f64> {
        self.target_weight.filter(|w| *w > 0.0)
    }

    /// Stop-at-volume the app should apply: `target_volume` if it is > 0.
    pub fn stop_at_volume(&self) -> Option<f64> {
        Some(self.target_volume).filter(|v| *v > 0.0)
    }

    /// Move-on weights the app should act on: a weight ≤ 0 means "no move-on" (de1app's
    /// rule; pyDE1 2.0.0 would skip such a frame as soon as drops were detected,
    /// de1-profiles.md §6). Trailing `None`s removed.
    pub fn effective_move_on_weights(&self) -> Vec<Option<f64>> {
        let mut list: Vec<Option<f64>> = self
            .move_on_weight_list
            .iter()
            .map(|w| w.filter(|w| *w > 0.0))
            .collect();
        while list.last() == Some(&None) {
            list.pop();
        }
        list
    }
}

/// Parse, validate and encode a JSON v2 profile. Nothing is partially done: either every
/// field fits the machine and the complete set of writes is returned, or the first
/// problem is reported with its field path.
pub fn encode_profile(source: &[u8]) -> Result<EncodedProfile, ProfileError> {
    let profile = Profile::from_json(source)?;
    let (header, frames) = encode_frames(&profile)?;
    let tank_temperature = check_tank_temperature(profile.tank_temperature)?;

    let mut move_on_weight_list: Vec<Option<f64>> =
        profile.steps.iter().map(|s| s.weight).collect();
    while move_on_weight_list.last() == Some(&None) {
        move_on_weight_list.pop();
    }

    let fingerprint = hex::encode(Sha1::digest(fingerprint_bytes(
        &header,
        &frames,
        profile.target_volume,
    )));
    Ok(EncodedProfile {
        id: hex::encode(Sha1::digest(source)),
        fingerprint,
        target_weight: profile.target_weight,
        target_volume: profile.target_volume,
        tank_temperature,
        number_of_preinfuse_frames: header.number_of_preinfuse_frames,
        move_on_weight_list,
        header,
        frames,
        profile,
    })
}

impl Profile {
    /// Check that every field fits the machine, without keeping the result.
    pub fn validate(&self) -> Result<(), ProfileError> {
        encode_frames(self)?;
        check_tank_temperature(self.tank_temperature)?;
        Ok(())
    }
}

fn encode_frames(profile: &Profile) -> Result<(HeaderWrite, Vec<FrameWrite>), ProfileError> {
    let n = profile.steps.len();
    if n == 0 {
        // pyDE1 would send a header with zero frames; the machine has nothing to run.
        return Err(ProfileError::new("steps", ProfileErrorKind::NoSteps));
    }
    if n > MAX_STEPS {
        return Err(ProfileError::new(
            "steps",
            ProfileErrorKind::TooManySteps {
                count: n,
                max: MAX_STEPS,
            },
        ));
    }
    // n ≤ 20 from here on.
    let n_u8 = n as u8;

    let mut frames = Vec::with_capacity(2 * n + 1);
    for (i, step) in profile.steps.iter().enumerate() {
        frames.push(FrameWrite::Shot {
            index: i as u8,
            frame: shot_frame(i, step)?,
        });
    }
    for (i, step) in profile.steps.iter().enumerate() {
        if let Some(limiter) = step.limiter.filter(|l| l.is_active()) {
            let path = |f: &str| format!("steps[{i}].limiter.{f}");
            // Parsing guarantees an active limiter has a range.
            let range = limiter.range.unwrap_or(0.0);
            frames.push(FrameWrite::Extension {
                index: i as u8,
                frame: ExtensionFrame {
                    limiter_value: fixed(&path("value"), limiter.value, U8P4::from_f64)?,
                    limiter_range: fixed(&path("range"), range, U8P4::from_f64)?,
                },
            });
        }
    }
    frames.push(FrameWrite::Tail {
        index: n_u8,
        frame: TailFrame {
            max_total_volume: U10P0(0),
        },
    });

    let count_start = profile.target_volume_count_start;
    let rounded = round_half_even(count_start);
    if rounded < 0.0 {
        return Err(ProfileError::new(
            "target_volume_count_start",
            ProfileErrorKind::OutOfRange {
                value: count_start,
                min: 0.0,
                max: n as f64,
            },
        ));
    }
    if rounded > n as f64 {
        return Err(ProfileError::new(
            "target_volume_count_start",
            ProfileErrorKind::PreinfuseExceedsSteps {
                value: count_start,
                steps: n,
            },
        ));
    }

    let header = HeaderWrite {
        header_version: HeaderWrite::VERSION,
        number_of_frames: n_u8,
        number_of_preinfuse_frames: rounded as u8,
        minimum_pressure: U8P4(0),
        maximum_flow: U8P4((HEADER_MAXIMUM_FLOW * 16.0) as u8),
    };
    Ok((header, frames))
}

fn shot_frame(i: usize, step: &Step) -> Result<ShotFrame, ProfileError> {
    let path = |f: &str| format!("steps[{i}].{f}");
    let mut flags = FrameFlags(FrameFlags::IGNORE_LIMIT);
    let set_value_field = match step.pump {
        Pump::Flow => {
            flags = flags.with(FrameFlags::CTRL_F);
            "flow"
        }
        Pump::Pressure => "pressure",
    };
    if step.sensor == Sensor::Water {
        flags = flags.with(FrameFlags::T_MIX_TEMP);
    }
    if step.transition == Transition::Smooth {
        flags = flags.with(FrameFlags::INTERPOLATE);
    }
    let trigger_value = match &step.exit {
        None => U8P4(0),
        Some(exit) => {
            flags = flags.with(FrameFlags::DO_COMPARE);
            if exit.condition == ExitCondition::Over {
                flags = flags.with(FrameFlags::DC_GT);
            }
            if exit.kind == ExitKind::Flow {
                flags = flags.with(FrameFlags::DC_COMP_F);
            }
            fixed(&path("exit.value"), exit.value, U8P4::from_f64)?
        }
    };
    Ok(ShotFrame {
        flags,
        set_value: fixed(&path(set_value_field), step.set_value(), U8P4::from_f64)?,
        temperature: fixed(&path("temperature"), step.temperature, U8P1::from_f64)?,
        duration: fixed(&path("seconds"), step.seconds, F8_1_7::from_f64)?,
        trigger_value,
        // pyDE1 sets no flag bits in MaxVol (de1app sets 0x0400; meaning unverified).
        max_volume: fixed(&path("volume"), step.volume, |v| U10P0::from_f64(v, 0))?,
    })
}

/// Encode one fixed-point field, naming `path` if the value does not fit.
fn fixed<T>(
    path: &str,
    value: f64,
    encode: impl FnOnce(f64) -> Result<T, FixedError>,
) -> Result<T, ProfileError> {
    encode(value).map_err(|e| {
        let kind = match e {
            FixedError::NotFinite { value } => ProfileErrorKind::NotFinite { value },
            FixedError::OutOfRange { value, min, max } => {
                ProfileErrorKind::OutOfRange { value, min, max }
            }
        };
        ProfileError::new(path, kind)
    })
}

/// pyDE1 writes `round(tank_temperature)` as an unsigned register after the frames and
/// fails there on a negative value; check it up front.
fn check_tank_temperature(t: Option<f64>) -> Result<Option<f64>, ProfileError> {
    if let Some(v) = t {
        let r = round_half_even(v);
        if !(0.0..=MAX_TANK_TEMPERATURE).contains(&r) {
            return Err(ProfileError::new(
                "tank_temperature",
                ProfileErrorKind::OutOfRange {
                    value: v,
                    min: 0.0,
                    max: MAX_TANK_TEMPERATURE,
                },
            ));
        }
    }
    Ok(t)
}

/// pyDE1's tail: `int(round(target_volume)) & 0x3FF` plus the "ignore preinfusion" bit
/// 0x8000, packed with `struct.pack('H…')`, i.e. little-endian on every host pyDE1 runs
/// on. `rem_euclid` on the rounded (integral) value is exact for any magnitude and
/// matches Python's `&` on negative integers (two's complement).
fn pyde1_tail(number_of_frames: u8, target_volume: f64) -> [u8; 8] {
    let low_bits = round_half_even(target_volume).rem_euclid(1024.0) as u16;
    let value = low_bits | U10P0::FLAG_IGNORE_PREINFUSION;
    let le = value.to_le_bytes();
    [number_of_frames, le[0], le[1], 0, 0, 0, 0, 0]
}

fn fingerprint_bytes(header: &HeaderWrite, frames: &[FrameWrite], target_volume: f64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(5 + 8 * frames.len());
    bytes.extend_from_slice(&header.encode());
    for f in frames {
        match f {
            FrameWrite::Tail { index, .. } => {
                bytes.extend_from_slice(&pyde1_tail(*index, target_volume))
            }
            other => bytes.extend_from_slice(&other.encode()),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// de1-profiles.md §7.1 with its notes, as numbers instead of strings where noted.
    fn blooming() -> Value {
        json!({
          "title": "Blooming Espresso", "version": "2",
          "steps": [
            {"name": "preinfusion", "temperature": "97.5", "sensor": "coffee", "pump": "flow",
             "transition": "fast", "pressure": "1", "flow": "4", "seconds": "23.00",
             "volume": "500", "weight": "0",
             "exit": {"type": "pressure", "condition": "over", "value": "4.00"}},
            {"name": "pause", "temperature": "90.0", "sensor": "coffee", "pump": "flow",
             "transition": "fast", "pressure": "6.0", "flow": "0", "seconds": "30.0",
             "volume": "500", "weight": "0"},
            {"name": "ramp", "temperature": "92.0", "sensor": "coffee", "pump": "flow",
             "transition": "smooth", "pressure": "4.0", "flow": "2.2", "seconds": "5.0",
             "volume": "500", "weight": "0"},
            {"name": "flat flow", "temperature": "92.0", "sensor": "coffee", "pump": "flow",
             "transition": "fast", "pressure": "4.0", "flow": "2.2", "seconds": "20.0",
             "volume": "500", "weight": "0", "limiter": {"value": "8.6", "range": "0.6"}},
            {"name": "reset temperature", "temperature": "98.0", "sensor": "coffee",
             "pump": "flow", "transition": "fast", "pressure": "4.0", "flow": "0.0",
             "seconds": "1.0", "volume": "500", "weight": "0"}
          ],
          "tank_temperature": "0", "target_weight": "60", "target_volume": "0",
          "target_volume_count_start": "2"
        })
    }

    fn encode(v: &Value) -> Result<EncodedProfile, ProfileError> {
        encode_profile(v.to_string().as_bytes())
    }

    fn hexes(p: &EncodedProfile) -> Vec<String> {
        p.writes().iter().map(|(_, b)| hex::encode(b)).collect()
    }

    fn err(v: &Value) -> String {
        encode(v).unwrap_err().to_string()
    }

    #[test]
    fn blooming_espresso_matches_the_spec_bytes() {
        let p = encode(&blooming()).unwrap();
        assert_eq!(
            hexes(&p),
            [
                "01050200a0",
                "004740c3974001f4",
                "014100b49e0001f4",
                "026123b8320001f4",
                "034123b8940001f4",
                "044100c40a0001f4",
                "238a0a0000000000",
                "0500000000000000",
            ]
        );
        assert_eq!(p.writes()[0].0, Characteristic::HeaderWrite);
        assert!(p.writes()[1..]
            .iter()
            .all(|(c, b)| *c == Characteristic::FrameWrite && b.len() == 8));
        // pyDE1's tail for the fingerprint, and the fingerprint of the spec's 61 bytes.
        assert_eq!(hex::encode(p.pyde1_tail()), "0500800000000000");
        assert_eq!(p.fingerprint_bytes().len(), 61);
        assert_eq!(p.fingerprint, "9a57321cadd69b4fadbe63fe3569cdf62756b5cd");
        assert_eq!(p.number_of_preinfuse_frames, 2);
        assert_eq!(p.target_weight, Some(60.0));
        assert_eq!(p.stop_at_weight(), Some(60.0));
        assert_eq!(p.stop_at_volume(), None);
        assert_eq!(p.move_on_weight_list, vec![Some(0.0); 5]);
        assert!(p.effective_move_on_weights().is_empty());
    }

    #[test]
    fn numbers_and_strings_encode_alike_and_id_follows_the_bytes() {
        let a = blooming();
        let mut b = blooming();
        b["steps"][0]["temperature"] = json!(97.5);
        b["steps"][3]["limiter"]["value"] = json!(8.6);
        b["target_volume_count_start"] = json!(2);
        let (pa, pb) = (encode(&a).unwrap(), encode(&b).unwrap());
        assert_eq!(pa.writes(), pb.writes());
        assert_eq!(pa.fingerprint, pb.fingerprint);
        assert_ne!(pa.id, pb.id, "the id hashes the source text");
        let src = a.to_string();
        assert_eq!(pa.id, hex::encode(Sha1::digest(src.as_bytes())));
    }

    #[test]
    fn pyde1_tail_carries_target_volume_little_endian() {
        // de1-profiles.md §7.4: 36 mL with 4 frames → 04 24 80 …
        assert_eq!(hex::encode(pyde1_tail(4, 36.0)), "0424800000000000");
        // Python: int(round(-5)) & 0x3FF == 1019; round(36.5) == 36; 1024 & 0x3FF == 0.
        assert_eq!(pyde1_tail(1, -5.0)[1..3], (1019u16 | 0x8000).to_le_bytes());
        assert_eq!(pyde1_tail(1, 36.5)[1], 36);
        assert_eq!(pyde1_tail(1, 1024.0)[1..3], [0x00, 0x80]);
        assert_eq!(pyde1_tail(1, 1e300)[1..3], [0x00, 0x80]);
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let mut p = blooming();
        p["steps"][1]["seconds"] = json!("200");
        assert_eq!(err(&p), "steps[1].seconds: 200 is out of range (0–127)");

        let mut p = blooming();
        p["steps"][2]["flow"] = json!("-1");
        assert_eq!(err(&p), "steps[2].flow: -1 is out of range (0–15.9375)");

        let mut p = blooming();
        p["steps"][0]["pump"] = json!("pressure");
        p["steps"][0]["pressure"] = json!("16");
        assert_eq!(err(&p), "steps[0].pressure: 16 is out of range (0–15.9375)");

        let mut p = blooming();
        p["steps"][4]["temperature"] = json!("130");
        assert_eq!(
            err(&p),
            "steps[4].temperature: 130 is out of range (0–127.5)"
        );

        let mut p = blooming();
        p["steps"][0]["exit"]["value"] = json!("20");
        assert!(err(&p).starts_with("steps[0].exit.value: 20 is out of range"));

        let mut p = blooming();
        p["steps"][0]["volume"] = json!("1024");
        assert_eq!(err(&p), "steps[0].volume: 1024 is out of range (0–1023)");

        let mut p = blooming();
        p["steps"][3]["limiter"]["range"] = json!("-1");
        assert!(err(&p).starts_with("steps[3].limiter.range: -1 is out of range"));

        let mut p = blooming();
        p["steps"][3]["limiter"]["value"] = json!("16");
        assert!(err(&p).starts_with("steps[3].limiter.value: 16 is out of range"));

        let mut p = blooming();
        p["target_volume_count_start"] = json!("6");
        assert_eq!(
            err(&p),
            "target_volume_count_start: 6 exceeds the number of steps (5)"
        );
        p["target_volume_count_start"] = json!("-1");
        assert!(err(&p).starts_with("target_volume_count_start: -1 is out of range"));

        let mut p = blooming();
        p["tank_temperature"] = json!("-3");
        assert_eq!(err(&p), "tank_temperature: -3 is out of range (0–100)");
    }

    #[test]
    fn edges_that_pyde1_accepts_are_accepted() {
        let mut p = blooming();
        p["steps"][0]["seconds"] = json!("127.4"); // rounds to 127
        p["steps"][1]["volume"] = json!("-0.4"); // rounds to 0
        p["steps"][2]["temperature"] = json!("92.25"); // tie → 184 (even)
        p["target_volume_count_start"] = json!("5");
        let e = encode(&p).unwrap();
        let w = hexes(&e);
        assert_eq!(&w[1][8..10], "ff");
        assert_eq!(&w[2][12..16], "0000");
        assert_eq!(&w[3][6..8], "b8");
        assert_eq!(e.number_of_preinfuse_frames, 5);
    }

    #[test]
    fn step_count_limits() {
        let mut p = blooming();
        p["steps"] = json!([]);
        assert_eq!(err(&p), "steps: a profile needs at least one step");
        let one = blooming()["steps"][1].clone();
        p["steps"] = Value::Array(vec![one.clone(); 21]);
        p["target_volume_count_start"] = json!(0);
        assert_eq!(
            err(&p),
            "steps: 21 steps exceed the machine's 20-frame limit"
        );
        p["steps"] = Value::Array(vec![one; 20]);
        let e = encode(&p).unwrap();
        assert_eq!(e.frames.len(), 21);
        assert_eq!(hex::encode(e.frames[20].encode()), "1400000000000000");
    }

    #[test]
    fn flags_cover_every_option() {
        let mut p = blooming();
        p["steps"][0]["sensor"] = json!("water");
        p["steps"][0]["transition"] = json!("smooth");
        p["steps"][0]["exit"] = json!({"type": "flow", "condition": "under", "value": 1});
        p["steps"][1]["pump"] = json!("pressure");
        let e = encode(&p).unwrap();
        let FrameWrite::Shot { frame, .. } = e.frames[0] else {
            panic!("first frame is a shot frame")
        };
        assert_eq!(frame.flags.0, 0x40 | 0x01 | 0x02 | 0x08 | 0x10 | 0x20);
        let FrameWrite::Shot { frame, .. } = e.frames[1] else {
            panic!("second frame is a shot frame")
        };
        assert_eq!(frame.flags.0, 0x40);
        assert_eq!(
            frame.set_value.to_f64(),
            6.0,
            "pressure is the set value now"
        );
    }

    #[test]
    fn inactive_limiters_write_no_extension_frame() {
        let mut p = blooming();
        p["steps"][3]["limiter"] = json!({"value": "0.004", "range": "0.6"});
        let e = encode(&p).unwrap();
        assert!(!e
            .frames
            .iter()
            .any(|f| matches!(f, FrameWrite::Extension { .. })));
        assert_eq!(e.frames.len(), 6);
    }
}
