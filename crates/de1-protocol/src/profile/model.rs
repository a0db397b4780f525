//! The JSON v2 / v2.1 profile model (de1-profiles.md §1).
//!
//! Reading is tolerant where real profiles differ and strict where the machine needs it:
//!
//! * numbers may be JSON numbers or numeric strings (de1app exports every scalar as a
//!   string, e.g. `"9.0"`), read like Python's `float()` but finite and never a boolean;
//! * a step's set value is read only from the field its `pump` selects, so the other
//!   one may be `""` or anything else (it is kept only if it reads as a number);
//! * metadata (`title`, `notes`, …) is never refused: non-string values are kept as
//!   their JSON text, and unknown keys are ignored, as pyDE1 does;
//! * the fields pyDE1 needs to program the machine are required, with pyDE1's rules:
//!   `version` (major 2), `steps`, `target_volume_count_start`, `target_volume`, and per
//!   step `pump`, `sensor`, `transition`, `temperature`, `seconds`, `volume`; an
//!   `exit` needs `type`, `condition` and `value`; a `limiter` needs `value`, and
//!   `range` when the limiter is active. A present-but-`null` optional field (`weight`,
//!   `exit`, `limiter`, `target_weight`, `tank_temperature`) is an error, as it is
//!   for pyDE1.
//!
//! Ranges (what fits the machine's fixed-point fields) are checked when the profile is
//! encoded, see [`super::encode`]; [`Profile::validate`] runs that check alone.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{JsonKind, ProfileError, ProfileErrorKind};
use super::number::number;

/// A JSON v2 profile as de1d understands it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct Profile {
    /// Format version as text (`"2"`, `"2.1"`; a JSON number is kept as its text).
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beverage_type: Option<String>,
    /// The frames, in order.
    pub steps: Vec<Step>,
    /// Leading steps that are preinfusion (header `NumberOfPreinfuseFrames` after
    /// rounding half to even).
    pub target_volume_count_start: f64,
    /// App-side stop-at-volume, mL (≤ 0 = none).
    pub target_volume: f64,
    /// App-side stop-at-weight, g (≤ 0 = none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_weight: Option<f64>,
    /// Tank pre-heat threshold, °C (0 = off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tank_temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_profile_type: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub profile_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes_since_last_espresso: Option<String>,
    /// Added by pyDE1's legacy converter: `{name, version, timestamp}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<Value>,
}

/// One step (frame) of a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub pump: Pump,
    /// mL/s; the set value when `pump` is `flow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<f64>,
    /// bar; the set value when `pump` is `pressure`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<f64>,
    pub transition: Transition,
    pub sensor: Sensor,
    /// °C.
    pub temperature: f64,
    /// Maximum duration, s.
    pub seconds: f64,
    /// Per-frame volume limit, mL (0 = none).
    pub volume: f64,
    /// App-side move-on-by-weight, g (not sent to the machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<Exit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limiter: Option<Limiter>,
}

impl Step {
    /// The set value the pump mode selects (`flow` or `pressure`).
    pub fn set_value(&self) -> f64 {
        match self.pump {
            // Parsing guarantees the selected field is present.
            Pump::Flow => self.flow.unwrap_or(0.0),
            Pump::Pressure => self.pressure.unwrap_or(0.0),
        }
    }
}

/// What the pump controls in a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pump {
    Flow,
    Pressure,
}

/// How the frame reaches its set value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    /// Jump to the set value.
    Fast,
    /// Ramp over the frame (flag `Interpolate`).
    Smooth,
}

/// Which temperature the frame regulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensor {
    /// Basket (coffee) temperature.
    Coffee,
    /// Mix (water) temperature, flag `TMixTemp`.
    Water,
}

/// Leave the frame early when a measurement crosses `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Exit {
    #[serde(rename = "type")]
    pub kind: ExitKind,
    pub condition: ExitCondition,
    /// bar or mL/s, per `kind`.
    pub value: f64,
}

/// What an exit condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitKind {
    Pressure,
    Flow,
}

/// Direction of an exit comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitCondition {
    Over,
    Under,
}

/// Limit on the quantity the pump does not control (max flow in a pressure frame, max
/// pressure in a flow frame), acting over `range`. Sent as an extension frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limiter {
    pub value: f64,
    /// Required when the limiter is active; may be absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<f64>,
}

impl Limiter {
    /// Whether the limiter produces an extension frame: pyDE1 writes one when
    /// `round(value, 2) > 0`. With Python's exact decimal rounding that is the case for
    /// every double ≥ the double nearest 0.005 (which lies just above 0.005), hence the
    /// plain comparison.
    pub fn is_active(&self) -> bool {
        self.value >= 0.005
    }
}

impl TryFrom<Value> for Profile {
    type Error = ProfileError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Profile::from_value(&value)
    }
}

/// Root path used for errors about the whole document.
pub(crate) const ROOT: &str = "profile";

impl Profile {
    /// Parse a profile from its JSON bytes (a leading UTF-8 byte-order mark is ignored,
    /// as Python's `json.loads` does for bytes).
    pub fn from_json(source: &[u8]) -> Result<Self, ProfileError> {
        let text = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            ProfileError::new(
                ROOT,
                ProfileErrorKind::InvalidJson {
                    line: e.line(),
                    column: e.column(),
                    message: json_message(&e),
                },
            )
        })?;
        Self::from_value(&value)
    }

    /// Read a profile from a parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Self, ProfileError> {
        let obj = as_object(ROOT, value)?;

        let version_value = required(obj, "", "version")?;
        let version = version_text(version_value)?;

        let steps_value = required(obj, "", "steps")?;
        let Value::Array(step_values) = steps_value else {
            return Err(wrong_type("steps", "an array of steps", steps_value));
        };
        let mut steps = Vec::with_capacity(step_values.len().min(64));
        for (i, sv) in step_values.iter().enumerate() {
            steps.push(Step::from_value(&format!("steps[{i}]"), sv)?);
        }

        let target_volume_count_start = number(
            "target_volume_count_start",
            required(obj, "", "target_volume_count_start")?,
        )?;
        let target_volume = number("target_volume", required(obj, "", "target_volume")?)?;
        let target_weight = optional_number(obj, "", "target_weight")?;
        let tank_temperature = optional_number(obj, "", "tank_temperature")?;

        Ok(Profile {
            version,
            title: text(obj, "title"),
            author: text(obj, "author"),
            notes: text(obj, "notes"),
            beverage_type: text(obj, "beverage_type"),
            steps,
            target_volume_count_start,
            target_volume,
            target_weight,
            tank_temperature,
            legacy_profile_type: text(obj, "legacy_profile_type"),
            profile_type: text(obj, "type"),
            lang: text(obj, "lang"),
            hidden: text(obj, "hidden"),
            reference_file: text(obj, "reference_file"),
            changes_since_last_espresso: text(obj, "changes_since_last_espresso"),
            creator: obj.get("creator").filter(|v| !v.is_null()).cloned(),
        })
    }
}

impl Step {
    fn from_value(path: &str, value: &Value) -> Result<Self, ProfileError> {
        let obj = as_object(path, value)?;
        let field = |name: &str| format!("{path}.{name}");

        let pump = keyword(&field("pump"), required(obj, path, "pump")?)?;
        let sensor = keyword(&field("sensor"), required(obj, path, "sensor")?)?;
        let transition = keyword(&field("transition"), required(obj, path, "transition")?)?;
        let temperature = number(&field("temperature"), required(obj, path, "temperature")?)?;
        let seconds = number(&field("seconds"), required(obj, path, "seconds")?)?;
        let volume = number(&field("volume"), required(obj, path, "volume")?)?;
        let weight = optional_number(obj, path, "weight")?;

        // Only the field the pump selects is read strictly; the other is informative.
        let lenient = |name: &str| obj.get(name).and_then(|v| number(name, v).ok());
        let (flow, pressure) = match pump {
            Pump::Flow => (
                Some(number(&field("flow"), required(obj, path, "flow")?)?),
                lenient("pressure"),
            ),
            Pump::Pressure => (
                lenient("flow"),
                Some(number(
                    &field("pressure"),
                    required(obj, path, "pressure")?,
                )?),
            ),
        };

        let exit = match obj.get("exit") {
            None => None,
            Some(v) => Some(Exit::from_value(&field("exit"), v)?),
        };
        let limiter = match obj.get("limiter") {
            None => None,
            Some(v) => Some(Limiter::from_value(&field("limiter"), v)?),
        };

        Ok(Step {
            name: text(obj, "name"),
            pump,
            flow,
            pressure,
            transition,
            sensor,
            temperature,
            seconds,
            volume,
            weight,
            exit,
            limiter,
        })
    }
}

impl Exit {
    fn from_value(path: &str, value: &Value) -> Result<Self, ProfileError> {
        let obj = as_object(path, value)?;
        let kind = keyword(&format!("{path}.type"), required(obj, path, "type")?)?;
        let condition = keyword(
            &format!("{path}.condition"),
            required(obj, path, "condition")?,
        )?;
        let value = number(&format!("{path}.value"), required(obj, path, "value")?)?;
        Ok(Exit {
            kind,
            condition,
            value,
        })
    }
}

impl Limiter {
    fn from_value(path: &str, value: &Value) -> Result<Self, ProfileError> {
        let obj = as_object(path, value)?;
        let value = number(&format!("{path}.value"), required(obj, path, "value")?)?;
        let mut limiter = Limiter { value, range: None };
        let range_path = format!("{path}.range");
        if limiter.is_active() {
            limiter.range = Some(number(&range_path, required(obj, path, "range")?)?);
        } else {
            // An inactive limiter's range is never used (de1app exports `value: 0`
            // limiters with whatever range the editor held).
            limiter.range = obj.get("range").and_then(|v| number(&range_path, v).ok());
        }
        Ok(limiter)
    }
}

fn as_object<'a>(path: &str, value: &'a Value) -> Result<&'a Map<String, Value>, ProfileError> {
    match value {
        Value::Object(m) => Ok(m),
        other => Err(wrong_type(path, "an object", other)),
    }
}

fn wrong_type(path: &str, expected: &'static str, found: &Value) -> ProfileError {
    ProfileError::new(
        path,
        ProfileErrorKind::WrongType {
            expected,
            found: JsonKind::of(found),
        },
    )
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    name: &str,
) -> Result<&'a Value, ProfileError> {
    obj.get(name)
        .ok_or_else(|| ProfileError::new(join(parent, name), ProfileErrorKind::Missing))
}

/// Absent → `None`; present (even `null`) must be a number, as `float()` requires.
fn optional_number(
    obj: &Map<String, Value>,
    parent: &str,
    name: &str,
) -> Result<Option<f64>, ProfileError> {
    obj.get(name)
        .map(|v| number(&join(parent, name), v))
        .transpose()
}

/// Metadata text: strings as they are, other non-null values as their JSON text.
fn text(obj: &Map<String, Value>, name: &str) -> Option<String> {
    match obj.get(name)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A step keyword field (`pump`, `sensor`, …): its accepted spellings.
trait Keyword: Copy + 'static {
    const NAMES: &'static [&'static str];
    const VALUES: &'static [Self];
}

macro_rules! keyword_enum {
    ($t:ty: $($name:literal => $v:expr),+) => {
        impl Keyword for $t {
            const NAMES: &'static [&'static str] = &[$($name),+];
            const VALUES: &'static [Self] = &[$($v),+];
        }
    };
}
keyword_enum!(Pump: "flow" => Pump::Flow, "pressure" => Pump::Pressure);
keyword_enum!(Sensor: "coffee" => Sensor::Coffee, "water" => Sensor::Water);
keyword_enum!(Transition: "fast" => Transition::Fast, "smooth" => Transition::Smooth);
keyword_enum!(ExitKind: "pressure" => ExitKind::Pressure, "flow" => ExitKind::Flow);
keyword_enum!(ExitCondition: "over" => ExitCondition::Over, "under" => ExitCondition::Under);

/// A keyword, matched exactly (case-sensitive), as pyDE1 does.
fn keyword<T: Keyword>(path: &str, value: &Value) -> Result<T, ProfileError> {
    if let Value::String(s) = value {
        if let Some(i) = T::NAMES.iter().position(|n| n == s) {
            return Ok(T::VALUES[i]);
        }
    }
    Err(ProfileError::new(
        path,
        ProfileErrorKind::UnknownValue {
            found: value.to_string(),
            allowed: T::NAMES,
        },
    ))
}

/// pyDE1 accepts a version whose text before the first `.` is `2` (`str(value)` in
/// Python: `2`, `"2"`, `"2.1"`, `2.1`). A JSON float prints as `2.x` in Python exactly
/// when it lies in [2, 3).
fn version_text(value: &Value) -> Result<String, ProfileError> {
    let ok = match value {
        Value::String(s) => s.split('.').next() == Some("2"),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u == 2,
            (None, Some(f)) if n.as_i64().is_none() => (2.0..3.0).contains(&f),
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    } else {
        Err(ProfileError::new(
            "version",
            ProfileErrorKind::UnsupportedVersion {
                found: value.to_string(),
            },
        ))
    }
}

/// serde_json's message without its " at line L column C" suffix (the error carries
/// the position separately), on one line.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step() -> Value {
        json!({"name": "s", "pump": "pressure", "sensor": "coffee", "transition": "fast",
               "pressure": "9.0", "flow": "", "temperature": "92", "seconds": "10",
               "volume": "0"})
    }

    fn profile_with(step: Value) -> Value {
        json!({"version": "2", "steps": [step], "target_volume_count_start": "0",
               "target_volume": "0"})
    }

    fn err(v: Value) -> String {
        Profile::from_value(&v).unwrap_err().to_string()
    }

    #[test]
    fn reads_strings_and_numbers_and_ignores_the_unused_set_value() {
        let p = Profile::from_value(&profile_with(step())).unwrap();
        let s = &p.steps[0];
        assert_eq!(s.pump, Pump::Pressure);
        assert_eq!(s.set_value(), 9.0);
        assert_eq!(s.flow, None, "\"\" in the unused field is tolerated");
        let mut numeric = step();
        numeric["pressure"] = json!(6);
        numeric["temperature"] = json!(88.5);
        let p = Profile::from_value(&profile_with(numeric)).unwrap();
        assert_eq!(p.steps[0].set_value(), 6.0);
        assert_eq!(p.steps[0].temperature, 88.5);
    }

    #[test]
    fn versions_like_pyde1() {
        for ok in [json!("2"), json!("2.1"), json!(2), json!(2.1), json!("2.")] {
            let mut p = profile_with(step());
            p["version"] = ok.clone();
            assert!(Profile::from_value(&p).is_ok(), "{ok}");
        }
        for bad in [
            json!("1"),
            json!(1),
            json!(3.0),
            json!("20"),
            json!(" 2"),
            json!(null),
        ] {
            let mut p = profile_with(step());
            p["version"] = bad.clone();
            assert!(err(p).starts_with("version: "), "{bad}");
        }
        let mut p = profile_with(step());
        p.as_object_mut().unwrap().remove("version");
        assert_eq!(err(p), "version: required field is missing");
    }

    #[test]
    fn required_fields_and_keywords_name_their_path() {
        let mut s = step();
        s.as_object_mut().unwrap().remove("volume");
        assert_eq!(
            err(profile_with(s)),
            "steps[0].volume: required field is missing"
        );
        let mut s = step();
        s["pump"] = json!("steam");
        assert_eq!(
            err(profile_with(s)),
            "steps[0].pump: \"steam\" is not one of \"flow\" or \"pressure\""
        );
        let mut s = step();
        s["pressure"] = json!("");
        assert_eq!(
            err(profile_with(s)),
            "steps[0].pressure: \"\" is not a number"
        );
        let mut s = step();
        s["exit"] = json!({"type": "weight", "condition": "over", "value": 1});
        assert!(err(profile_with(s)).starts_with("steps[0].exit.type: "));
        let mut s = step();
        s["exit"] = json!(null);
        assert_eq!(
            err(profile_with(s)),
            "steps[0].exit: expected an object, found null"
        );
        let mut s = step();
        s["weight"] = json!(null);
        assert!(err(profile_with(s)).starts_with("steps[0].weight: "));
        let mut p = profile_with(step());
        p.as_object_mut().unwrap().remove("target_volume");
        assert_eq!(err(p), "target_volume: required field is missing");
        assert_eq!(
            err(json!([1, 2])),
            "profile: expected an object, found an array"
        );
        let mut p = profile_with(step());
        p["steps"] = json!({"0": step()});
        assert!(err(p).starts_with("steps: expected an array"));
    }

    #[test]
    fn limiter_range_is_needed_only_when_active() {
        let mut s = step();
        s["limiter"] = json!({"value": "0", "range": ""});
        let p = Profile::from_value(&profile_with(s)).unwrap();
        assert_eq!(
            p.steps[0].limiter,
            Some(Limiter {
                value: 0.0,
                range: None
            })
        );
        let mut s = step();
        s["limiter"] = json!({"value": "3.5"});
        assert_eq!(
            err(profile_with(s)),
            "steps[0].limiter.range: required field is missing"
        );
        assert!(!Limiter {
            value: 0.0049,
            range: None
        }
        .is_active());
        assert!(Limiter {
            value: 0.005,
            range: None
        }
        .is_active());
    }

    #[test]
    fn json_errors_and_bom() {
        let e = Profile::from_json(b"{\"version\": \"2\", \"steps\": [ {\"name\": ").unwrap_err();
        assert_eq!(e.path(), "profile");
        assert!(matches!(
            e.kind,
            ProfileErrorKind::InvalidJson { line: 1, .. }
        ));
        let mut src = b"\xEF\xBB\xBF".to_vec();
        src.extend_from_slice(profile_with(step()).to_string().as_bytes());
        assert!(Profile::from_json(&src).is_ok());
    }

    #[test]
    fn serde_round_trip_through_the_tolerant_reader() {
        let p: Profile = serde_json::from_value(profile_with(step())).unwrap();
        let again: Profile = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(p, again);
        let e = serde_json::from_value::<Profile>(json!({"version": "1"})).unwrap_err();
        assert!(e.to_string().starts_with("version: "));
    }
}
