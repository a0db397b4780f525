//! Calibration (A012) — 14 bytes, write + notify.
//!
//! | Off | Size | Field          | Type        | Notes                                    |
//! |-----|------|----------------|-------------|------------------------------------------|
//! | 0   | 4    | WriteKey       | U32 BE      | `CAFEF00D` for writes; 0 in value reports |
//! | 4   | 1    | CalCommand     | [`CalCommand`] |                                       |
//! | 5   | 1    | CalTarget      | [`CalTarget`]  | 255 = error (response)                |
//! | 6   | 4    | DE1ReportedVal | S32P16 BE   | what the machine measured                |
//! | 10  | 4    | MeasuredVal    | S32P16 BE   | what the reference instrument measured   |
//!
//! Flow and pressure calibrations are ratios (measured / reported); temperature is an
//! offset (measured − reported). Only a notification with WriteKey 0 carries a stored
//! value; others are echoes of requests.

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::fixed::S32P16;
use crate::DecodeError;

const NAME: &str = "Calibration";

/// CalCommand (byte 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalCommand {
    /// Read the current calibration.
    Read = 0,
    /// Store a new calibration (needs [`Calibration::WRITE_KEY`]).
    Write = 1,
    /// Reset to the factory calibration.
    ResetToFactory = 2,
    /// Read the factory calibration.
    ReadFactory = 3,
}

impl CalCommand {
    pub const fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Read,
            1 => Self::Write,
            2 => Self::ResetToFactory,
            3 => Self::ReadFactory,
            _ => return None,
        })
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "Read",
            Self::Write => "Write",
            Self::ResetToFactory => "ResetToFactory",
            Self::ReadFactory => "ReadFactory",
        }
    }
}

/// CalTarget (byte 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalTarget {
    /// Flow (ratiometric).
    Flow = 0,
    /// Pressure (ratiometric).
    Pressure = 1,
    /// Temperature (offset, °C).
    Temperature = 2,
    /// In a response: the request was bad.
    Error = 255,
}

impl CalTarget {
    pub const fn from_u8(raw: u8) -> Option<Self> {
        Some(match raw {
            0 => Self::Flow,
            1 => Self::Pressure,
            2 => Self::Temperature,
            255 => Self::Error,
            _ => return None,
        })
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Flow => "Flow",
            Self::Pressure => "Pressure",
            Self::Temperature => "Temperature",
            Self::Error => "Error",
        }
    }
    /// Flow and pressure are stored as a ratio, temperature as an offset.
    pub const fn is_ratiometric(self) -> bool {
        matches!(self, Self::Flow | Self::Pressure)
    }
}

/// One Calibration packet (request, echo or value report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Calibration {
    pub write_key: u32,
    pub command: CalCommand,
    pub target: CalTarget,
    /// DE1ReportedVal.
    pub reported: S32P16,
    /// MeasuredVal.
    pub measured: S32P16,
}

impl Calibration {
    pub const LEN: usize = 14;
    /// Key that authorises a Write (de1app).
    pub const WRITE_KEY: u32 = 0xCAFE_F00D;
    /// Key de1app uses for reads, so their echoes are not mistaken for values.
    pub const READ_KEY: u32 = 1;
    /// Key of a notification that carries a stored value.
    pub const VALUE_KEY: u32 = 0;

    /// A read request (de1app form: WriteKey 1). `factory` selects ReadFactory.
    pub fn read(target: CalTarget, factory: bool) -> Self {
        Self {
            write_key: Self::READ_KEY,
            command: if factory {
                CalCommand::ReadFactory
            } else {
                CalCommand::Read
            },
            target,
            reported: S32P16(0),
            measured: S32P16(0),
        }
    }

    /// A write request: the machine reported `reported`, the reference measured `measured`.
    pub fn write(target: CalTarget, reported: S32P16, measured: S32P16) -> Self {
        Self {
            write_key: Self::WRITE_KEY,
            command: CalCommand::Write,
            target,
            reported,
            measured,
        }
    }

    /// The value report a machine sends for a read of a stored `value` (ratio or offset):
    /// WriteKey 0, reported 1.0 (flow, pressure) or 0.0 (temperature), measured = value.
    pub fn value_report(command: CalCommand, target: CalTarget, value: S32P16) -> Self {
        Self {
            write_key: Self::VALUE_KEY,
            command,
            target,
            reported: S32P16(if target.is_ratiometric() { 0x1_0000 } else { 0 }),
            measured: value,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<14>(NAME, bytes)?;
        let command = CalCommand::from_u8(b[4]).ok_or(DecodeError::InvalidValue {
            packet: NAME,
            field: "CalCommand",
            value: u32::from(b[4]),
        })?;
        let target = CalTarget::from_u8(b[5]).ok_or(DecodeError::InvalidValue {
            packet: NAME,
            field: "CalTarget",
            value: u32::from(b[5]),
        })?;
        Ok(Self {
            write_key: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            command,
            target,
            reported: S32P16::from_be_slice(&b[6..10]),
            measured: S32P16::from_be_slice(&b[10..14]),
        })
    }

    pub fn encode(&self) -> [u8; 14] {
        let mut o = [0u8; 14];
        o[0..4].copy_from_slice(&self.write_key.to_be_bytes());
        o[4] = self.command as u8;
        o[5] = self.target as u8;
        o[6..10].copy_from_slice(&self.reported.0.to_be_bytes());
        o[10..14].copy_from_slice(&self.measured.0.to_be_bytes());
        o
    }

    /// True for a notification that carries a stored value (WriteKey 0).
    pub const fn is_value_report(&self) -> bool {
        self.write_key == Self::VALUE_KEY
    }

    /// The calibration this packet expresses: measured / reported for flow and pressure
    /// (`None` if reported is 0), measured − reported for temperature, `None` for an
    /// error response.
    pub fn calibration_value(&self) -> Option<f64> {
        let (m, r) = (self.measured.to_f64(), self.reported.to_f64());
        match self.target {
            CalTarget::Flow | CalTarget::Pressure => (r != 0.0).then(|| m / r),
            CalTarget::Temperature => Some(m - r),
            CalTarget::Error => None,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "write_key": format!("{:08x}", self.write_key),
            "is_value_report": self.is_value_report(),
            "command": self.command.as_str(),
            "target": self.target.as_str(),
            "de1_reported": self.reported.to_f64(),
            "measured": self.measured.to_f64(),
            "calibration_value": self.calibration_value(),
        })
    }
}

serialize_via_json!(Calibration);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn pyde1_read_request_is_all_zero() {
        let c = Calibration::decode(&[0u8; 14]).unwrap();
        assert_eq!(c.command, CalCommand::Read);
        assert_eq!(c.target, CalTarget::Flow);
        // Indistinguishable from a value report: why de1app reads with key 1.
        assert!(c.is_value_report());
        assert!(!Calibration::read(CalTarget::Flow, false).is_value_report());
    }

    #[test]
    fn write_pressure_example() {
        let c = Calibration::write(
            CalTarget::Pressure,
            S32P16::from_f64(9.0).unwrap(),
            S32P16::from_f64(8.8).unwrap(),
        );
        let bytes = hex_bytes("CA FE F0 0D 01 01 00 09 00 00 00 08 CC CD");
        assert_eq!(c.encode().to_vec(), bytes);
        assert_eq!(Calibration::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn temperature_offset_report() {
        let c =
            Calibration::decode(&hex_bytes("00 00 00 00 00 02 00 00 00 00 FF FE 00 00")).unwrap();
        assert_eq!(c.command, CalCommand::Read);
        assert_eq!(c.target, CalTarget::Temperature);
        assert_eq!(c.reported.to_f64(), 0.0);
        assert_eq!(c.measured.to_f64(), -2.0);
        assert_eq!(c.calibration_value(), Some(-2.0));
        let sim = Calibration::value_report(
            CalCommand::Read,
            CalTarget::Temperature,
            S32P16::from_f64(-2.0).unwrap(),
        );
        assert_eq!(sim, c);
    }

    #[test]
    fn flow_ratio_and_error_target() {
        let c = Calibration::value_report(
            CalCommand::ReadFactory,
            CalTarget::Flow,
            S32P16::from_f64(1.25).unwrap(),
        );
        assert_eq!(c.reported.to_f64(), 1.0);
        assert_eq!(c.calibration_value(), Some(1.25));
        let mut b = c.encode();
        b[5] = 0xFF;
        let e = Calibration::decode(&b).unwrap();
        assert_eq!(e.target, CalTarget::Error);
        assert_eq!(e.calibration_value(), None);
    }

    #[test]
    fn undefined_command_or_target_is_an_error() {
        let mut b = [0u8; 14];
        b[4] = 4;
        assert!(matches!(
            Calibration::decode(&b),
            Err(DecodeError::InvalidValue {
                field: "CalCommand",
                ..
            })
        ));
        b[4] = 0;
        b[5] = 3;
        assert!(matches!(
            Calibration::decode(&b),
            Err(DecodeError::InvalidValue {
                field: "CalTarget",
                ..
            })
        ));
    }
}
