//! Atomax Skale II.
//!
//! Recognised by an advertised name starting `Skale`. Commands are written to `EF80`
//! (with response); weight reports arrive on `EF81` and button presses on `EF82`
//! (notifications). No heartbeat is needed.
//!
//! Connection set-up used by the reference controller: `EC` (show weight), `ED`
//! (display on) → enable `EF81` notifications → enable `EF82` notifications → `03`
//! (grams). See [`INIT_BEFORE_SUBSCRIBE`] and [`INIT_AFTER_SUBSCRIBE`].
//!
//! Facts not pinned by a primary source (marked *unverified*): the service UUID `FF08`
//! (used by other open implementations), the meaning of weight-report bytes 0 and 4,
//! and the timer byte values (pyDE1 documents `D0` zero / `D1` start / `D2` stop, while
//! de1app sends `DD` to start and `D1` to stop; both start forms are decoded).

use std::time::Duration;

use crate::{uuid16, DecodeError};

/// Advertised-name prefix (case-sensitive).
pub const NAME_PREFIX: &str = "Skale";

/// Primary service holding the scale characteristics (*unverified*: not referenced by
/// pyDE1; de1app and others use it).
pub const SERVICE: u128 = uuid16(0xFF08);
/// Command characteristic (write).
pub const COMMAND: u128 = uuid16(0xEF80);
/// Weight characteristic (notify).
pub const WEIGHT: u128 = uuid16(0xEF81);
/// Button characteristic (notify).
pub const BUTTON: u128 = uuid16(0xEF82);
/// Unknown characteristic (read; not used).
pub const UNKNOWN_EF83: u128 = uuid16(0xEF83);
/// Unknown vendor characteristic (read; not used).
pub const UNKNOWN_VENDOR: u128 = 0x0f05_0002_3225_44b1_b97d_d327_4acb_29de;

/// Standard battery service and its level characteristic (0–63 per pyDE1's comment).
pub const BATTERY_SERVICE: u128 = uuid16(0x180F);
pub const BATTERY_LEVEL: u128 = uuid16(0x2A19);
/// Standard device-information service and its strings.
pub const DEVICE_INFORMATION_SERVICE: u128 = uuid16(0x180A);
pub const MODEL_NUMBER: u128 = uuid16(0x2A24);
pub const FIRMWARE_REVISION: u128 = uuid16(0x2A26);
pub const HARDWARE_REVISION: u128 = uuid16(0x2A27);
pub const SOFTWARE_REVISION: u128 = uuid16(0x2A28);
pub const MANUFACTURER_NAME: u128 = uuid16(0x2A29);

/// What the model-number characteristic reads.
pub const MODEL_NUMBER_TEXT: &str = "SkaleII";
/// What the manufacturer-name characteristic reads.
pub const MANUFACTURER_TEXT: &str = "ATOMAX INC.";

/// Nominal time between weight reports.
pub const REPORT_PERIOD: Duration = Duration::from_millis(100);
/// Liquid-on-pan to report-at-host delay used by weight-flow estimators.
pub const SENSOR_LAG: Duration = Duration::from_millis(380);

/// Button number on which the reference controller also tares.
pub const TARE_BUTTON: u8 = 1;

/// Reference calibration weight placed on the pan for [`Command::Calibrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalibrationWeight {
    Grams500,
    Grams1000,
}

/// Undocumented filter setting (`09 nn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    Weak,
    Default,
    Strong,
    Stronger,
}

/// A command written to [`COMMAND`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `EC`: show the weight on the display.
    ShowWeight,
    /// `ED`: display (LCD backlight) on.
    DisplayOn,
    /// `EE`: display off.
    DisplayOff,
    /// `02`: report and show ounces.
    UnitsOunces,
    /// `03`: report and show grams.
    UnitsGrams,
    /// `04`: keep the current unit across power cycles.
    PersistUnits,
    /// `10`: tare.
    Tare,
    /// `D0`: timer to zero.
    TimerZero,
    /// `D1` (pyDE1's start; de1app sends `DD`, also decoded as this).
    TimerStart,
    /// `D2`: timer stop (pyDE1).
    TimerStop,
    /// `CA 05` / `CA 0A`: calibrate with the given weight on the pan.
    Calibrate(CalibrationWeight),
    /// `09 00` … `09 03`.
    Filter(Filter),
}

/// Written first at set-up, before enabling notifications.
pub const INIT_BEFORE_SUBSCRIBE: &[Command] = &[Command::ShowWeight, Command::DisplayOn];
/// Written after notifications on [`WEIGHT`] and [`BUTTON`] are enabled.
pub const INIT_AFTER_SUBSCRIBE: &[Command] = &[Command::UnitsGrams];

impl Command {
    pub fn encode(self) -> Vec<u8> {
        match self {
            Command::ShowWeight => vec![0xEC],
            Command::DisplayOn => vec![0xED],
            Command::DisplayOff => vec![0xEE],
            Command::UnitsOunces => vec![0x02],
            Command::UnitsGrams => vec![0x03],
            Command::PersistUnits => vec![0x04],
            Command::Tare => vec![0x10],
            Command::TimerZero => vec![0xD0],
            Command::TimerStart => vec![0xD1],
            Command::TimerStop => vec![0xD2],
            Command::Calibrate(CalibrationWeight::Grams500) => vec![0xCA, 0x05],
            Command::Calibrate(CalibrationWeight::Grams1000) => vec![0xCA, 0x0A],
            Command::Filter(f) => vec![
                0x09,
                match f {
                    Filter::Weak => 0,
                    Filter::Default => 1,
                    Filter::Strong => 2,
                    Filter::Stronger => 3,
                },
            ],
        }
    }

    /// Decode one written command (what a simulated scale receives).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let unknown = || DecodeError::UnknownCommand {
            packet: "Skale II command",
            bytes: bytes.to_vec(),
        };
        match bytes {
            [0xEC] => Ok(Command::ShowWeight),
            [0xED] => Ok(Command::DisplayOn),
            [0xEE] => Ok(Command::DisplayOff),
            [0x02] => Ok(Command::UnitsOunces),
            [0x03] => Ok(Command::UnitsGrams),
            [0x04] => Ok(Command::PersistUnits),
            [0x10] => Ok(Command::Tare),
            [0xD0] => Ok(Command::TimerZero),
            [0xD1] | [0xDD] => Ok(Command::TimerStart),
            [0xD2] => Ok(Command::TimerStop),
            [0xCA, 0x05] => Ok(Command::Calibrate(CalibrationWeight::Grams500)),
            [0xCA, 0x0A] => Ok(Command::Calibrate(CalibrationWeight::Grams1000)),
            [0x09, level] => Ok(Command::Filter(match level {
                0 => Filter::Weak,
                1 => Filter::Default,
                2 => Filter::Strong,
                3 => Filter::Stronger,
                _ => return Err(unknown()),
            })),
            _ => Err(unknown()),
        }
    }
}

/// Length of a weight report as this crate encodes it.
pub const WEIGHT_REPORT_LEN: usize = 8;
/// Shortest weight report that carries the weight.
pub const WEIGHT_REPORT_MIN_LEN: usize = 4;
/// Byte 0 and 4 of an encoded report (not interpreted by any reference decoder;
/// *unverified* — the value 0x03 mirrors the grams unit code).
pub const REPORT_MARKER: u8 = 0x03;

/// Largest magnitude a 24-bit count of tenths can carry, in grams.
pub const MAX_GRAMS: f64 = 838_860.7;

/// A weight notification on [`WEIGHT`].
///
/// Layout: byte 0 marker; bytes 1–3 weight as a signed 24-bit little-endian count of
/// 0.1 g; byte 4 marker; bytes 5–7 a second value in the same format that the
/// reference controller ignores. Decoders that read only bytes 1–2 as a signed 16-bit
/// value agree for |weight| < 3276.8 g because byte 3 is the sign extension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightReport {
    /// Weight in grams (0.1 g resolution).
    pub grams: f64,
    /// The second value (bytes 5–7), if the report carried it.
    pub second: Option<f64>,
}

fn tenths_to_le24(grams: f64) -> [u8; 3] {
    let clamped = if grams.is_finite() {
        grams.clamp(-MAX_GRAMS, MAX_GRAMS)
    } else {
        0.0
    };
    let raw = (clamped * 10.0).round() as i32;
    let b = raw.to_le_bytes();
    [b[0], b[1], b[2]]
}

fn le24_to_grams(b: &[u8]) -> f64 {
    // Sign-extend the 24-bit value through the top byte.
    let raw = i32::from_le_bytes([b[0], b[1], b[2], if b[2] & 0x80 != 0 { 0xFF } else { 0 }]);
    f64::from(raw) / 10.0
}

impl WeightReport {
    pub fn new(grams: f64) -> Self {
        Self {
            grams,
            second: None,
        }
    }

    /// The 8-byte notification. Weights beyond ±[`MAX_GRAMS`] saturate; NaN encodes
    /// as 0. The second value repeats the weight unless set.
    pub fn encode(&self) -> [u8; WEIGHT_REPORT_LEN] {
        let w = tenths_to_le24(self.grams);
        let s = tenths_to_le24(self.second.unwrap_or(self.grams));
        [
            REPORT_MARKER,
            w[0],
            w[1],
            w[2],
            REPORT_MARKER,
            s[0],
            s[1],
            s[2],
        ]
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < WEIGHT_REPORT_MIN_LEN {
            return Err(DecodeError::TooShort {
                packet: "Skale II weight",
                min: WEIGHT_REPORT_MIN_LEN,
                actual: bytes.len(),
            });
        }
        let grams = le24_to_grams(&bytes[1..4]);
        let second = (bytes.len() >= 8).then(|| le24_to_grams(&bytes[5..8]));
        Ok(Self { grams, second })
    }
}

/// A button notification on [`BUTTON`]: byte 0 is the button number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ButtonPress {
    pub button: u8,
}

impl ButtonPress {
    pub fn encode(self) -> [u8; 1] {
        [self.button]
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&button) => Ok(Self { button }),
            None => Err(DecodeError::TooShort {
                packet: "Skale II button",
                min: 1,
                actual: 0,
            }),
        }
    }

    /// The reference controller tares when this button is pressed.
    pub fn is_tare_button(self) -> bool {
        self.button == TARE_BUTTON
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_bytes_match_the_documented_table() {
        let table: &[(Command, &[u8])] = &[
            (Command::ShowWeight, &[0xEC]),
            (Command::DisplayOn, &[0xED]),
            (Command::DisplayOff, &[0xEE]),
            (Command::UnitsOunces, &[0x02]),
            (Command::UnitsGrams, &[0x03]),
            (Command::PersistUnits, &[0x04]),
            (Command::Tare, &[0x10]),
            (Command::TimerZero, &[0xD0]),
            (Command::TimerStart, &[0xD1]),
            (Command::TimerStop, &[0xD2]),
            (
                Command::Calibrate(CalibrationWeight::Grams500),
                &[0xCA, 0x05],
            ),
            (
                Command::Calibrate(CalibrationWeight::Grams1000),
                &[0xCA, 0x0A],
            ),
            (Command::Filter(Filter::Weak), &[0x09, 0x00]),
            (Command::Filter(Filter::Default), &[0x09, 0x01]),
            (Command::Filter(Filter::Strong), &[0x09, 0x02]),
            (Command::Filter(Filter::Stronger), &[0x09, 0x03]),
        ];
        for (cmd, bytes) in table {
            assert_eq!(cmd.encode(), *bytes, "{cmd:?}");
            assert_eq!(Command::decode(bytes), Ok(*cmd), "{bytes:02x?}");
        }
    }

    #[test]
    fn de1app_timer_start_byte_is_understood() {
        assert_eq!(Command::decode(&[0xDD]), Ok(Command::TimerStart));
    }

    #[test]
    fn unknown_commands_are_errors() {
        for bad in [
            &[][..],
            &[0x00],
            &[0x10, 0x00],
            &[0x09, 0x04],
            &[0xCA, 0x01],
            &[0xCA],
        ] {
            assert!(
                matches!(
                    Command::decode(bad),
                    Err(DecodeError::UnknownCommand { .. })
                ),
                "{bad:02x?}"
            );
        }
    }

    #[test]
    fn weight_report_layout() {
        // 36.4 g = 364 tenths = 0x00016C → 6C 01 00 little-endian.
        let bytes = WeightReport::new(36.4).encode();
        assert_eq!(bytes, [0x03, 0x6C, 0x01, 0x00, 0x03, 0x6C, 0x01, 0x00]);
        // 1649 g (a typical glitch value) = 16490 = 0x00406A.
        assert_eq!(
            &WeightReport::new(1649.0).encode()[1..4],
            &[0x6A, 0x40, 0x00]
        );
        // −0.3 g = −3 → FD FF FF (sign-extended).
        assert_eq!(&WeightReport::new(-0.3).encode()[1..4], &[0xFD, 0xFF, 0xFF]);
    }

    #[test]
    fn weight_report_decodes_signed_24_bit_tenths() {
        let r = WeightReport::decode(&[0x00, 0x6C, 0x01, 0x00]).unwrap();
        assert_eq!(r.grams, 36.4);
        assert_eq!(r.second, None);
        let r = WeightReport::decode(&[0x03, 0xFD, 0xFF, 0xFF, 0x03, 0x0A, 0x00, 0x00]).unwrap();
        assert_eq!(r.grams, -0.3);
        assert_eq!(r.second, Some(1.0));
        // The top of the 24-bit range.
        let r = WeightReport::decode(&[0, 0xFF, 0xFF, 0x7F]).unwrap();
        assert_eq!(r.grams, MAX_GRAMS);
        let r = WeightReport::decode(&[0, 0x00, 0x00, 0x80]).unwrap();
        assert_eq!(r.grams, -838_860.8);
    }

    #[test]
    fn weight_report_round_trips_and_saturates() {
        for g in [0.0, 0.1, 18.0, 42.7, -12.5, 2999.9, 3300.0] {
            let r = WeightReport::decode(&WeightReport::new(g).encode()).unwrap();
            assert!((r.grams - g).abs() < 1e-9, "{g}");
        }
        let big = WeightReport::decode(&WeightReport::new(1e9).encode()).unwrap();
        assert_eq!(big.grams, MAX_GRAMS);
        let nan = WeightReport::decode(&WeightReport::new(f64::NAN).encode()).unwrap();
        assert_eq!(nan.grams, 0.0);
    }

    #[test]
    fn short_weight_reports_are_errors() {
        for n in 0..WEIGHT_REPORT_MIN_LEN {
            assert!(WeightReport::decode(&[0u8; 8][..n]).is_err());
        }
    }

    #[test]
    fn button_press() {
        assert_eq!(ButtonPress { button: 2 }.encode(), [0x02]);
        let b = ButtonPress::decode(&[0x01, 0xFF]).unwrap();
        assert!(b.is_tare_button());
        assert!(!ButtonPress::decode(&[0x02]).unwrap().is_tare_button());
        assert!(ButtonPress::decode(&[]).is_err());
    }

    #[test]
    fn uuids_are_on_the_bluetooth_base() {
        assert_eq!(COMMAND, 0x0000EF80_0000_1000_8000_00805F9B34FB);
        assert_eq!(WEIGHT, 0x0000EF81_0000_1000_8000_00805F9B34FB);
        assert_eq!(BUTTON, 0x0000EF82_0000_1000_8000_00805F9B34FB);
        assert_eq!(SERVICE, 0x0000FF08_0000_1000_8000_00805F9B34FB);
    }
}
