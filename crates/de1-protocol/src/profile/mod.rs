//! Shot profiles: the JSON v2 / v2.1 format, its validation, and the HeaderWrite /
//! FrameWrite packets that program the machine (de1-profiles.md).
//!
//! [`encode_profile`] is the entry point: source bytes in, a complete
//! [`EncodedProfile`] (writes in order, pyDE1-compatible `id` and `fingerprint`, the
//! app-side stop and move-on targets) or a [`ProfileError`] naming the offending field.
//!
//! Compatibility: de1d accepts exactly the profiles pyDE1 2.0.0 programs successfully,
//! with these deliberate differences, all refusals of things the machine cannot run
//! or that pyDE1 only failed on half-way through an upload:
//! * every value is range-checked before anything is written (pyDE1 checks set values,
//!   temperatures, triggers and limiters only while packing each frame, leaving the
//!   machine with a partial profile when one does not fit);
//! * a profile needs at least one step;
//! * numbers must be finite and not booleans;
//! * `tank_temperature` must round to 0 … [`MAX_TANK_TEMPERATURE`] °C.
//!
//! The bytes are pyDE1's except the tail frame (see [`EncodedProfile::frames`]).

pub mod encode;
pub mod error;
pub mod model;
mod number;

pub use encode::{
    encode_profile, EncodedProfile, HEADER_MAXIMUM_FLOW, MAX_STEPS, MAX_TANK_TEMPERATURE,
};
pub use error::{JsonKind, ProfileError, ProfileErrorKind};
pub use model::{Exit, ExitCondition, ExitKind, Limiter, Profile, Pump, Sensor, Step, Transition};
