//! Fixed-point number formats used on the DE1's wire.
//!
//! `UnPm` is an unsigned field of `n` bits whose value is `raw / 2^m`; `SnPm` is
//! two's-complement signed. Fields wider than a byte are big-endian.
//!
//! Rounding: encoders round half to even (`f64::round_ties_even`), as pyDE1 does, so
//! that de1d writes byte-identical frames to pyDE1's for the same profile. de1app rounds
//! half away from zero; the two differ by one LSB on exact ties only (e.g. 92.25 °C in
//! U8P1 is 184 here and 185 in de1app) and the firmware accepts both.
//!
//! Range: a value that does not fit after rounding is an error ([`FixedError`]), never a
//! silent clamp or wrap. Callers that want clamping (e.g. a user-facing "maximum")
//! clamp explicitly before encoding.

use std::fmt;

/// A value could not be represented in a fixed-point field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixedError {
    /// The value is NaN or infinite.
    #[error("{value} is not a finite number")]
    NotFinite { value: f64 },
    /// The value lies outside what the field can carry.
    #[error("{value} is out of range ({min}–{max})")]
    OutOfRange { value: f64, min: f64, max: f64 },
}

fn check_finite(value: f64) -> Result<(), FixedError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(FixedError::NotFinite { value })
    }
}

/// Scale `value` by `2^frac_bits`, round half to even and check it fits `0..=max_raw`.
fn encode_unsigned(value: f64, frac_bits: u32, max_raw: u64) -> Result<u64, FixedError> {
    check_finite(value)?;
    let scale = f64::from(1u32 << frac_bits);
    let raw = (value * scale).round_ties_even();
    if raw < 0.0 || raw > max_raw as f64 {
        return Err(FixedError::OutOfRange {
            value,
            min: 0.0,
            max: max_raw as f64 / scale,
        });
    }
    Ok(raw as u64)
}

macro_rules! unsigned_fixed {
    ($(#[$doc:meta])* $name:ident, $raw:ty, $bytes:expr, $frac:expr, $max_raw:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub $raw);

        impl $name {
            /// Width of the field on the wire, in bytes.
            pub const WIDTH: usize = $bytes;
            /// Largest raw value the field can carry.
            pub const MAX_RAW: $raw = $max_raw;
            /// Largest value the field can carry.
            pub const MAX: f64 = $max_raw as f64 / (1u64 << $frac) as f64;

            /// Encode a value, rounding half to even; out-of-range or non-finite is an error.
            pub fn from_f64(value: f64) -> Result<Self, FixedError> {
                encode_unsigned(value, $frac, $max_raw as u64).map(|raw| Self(raw as $raw))
            }

            /// The value this field carries.
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / (1u64 << $frac) as f64
            }

            /// Decode from the first [`Self::WIDTH`] bytes of `bytes` (big-endian).
            /// The caller has checked the length.
            pub fn from_be_slice(bytes: &[u8]) -> Self {
                let mut raw: u64 = 0;
                for b in &bytes[..$bytes] {
                    raw = (raw << 8) | u64::from(*b);
                }
                Self((raw & $max_raw as u64) as $raw)
            }

            /// Append the big-endian bytes of this field to `out`.
            pub fn write_be(self, out: &mut Vec<u8>) {
                let raw = self.0 as u64;
                for i in (0..$bytes).rev() {
                    out.push((raw >> (8 * i)) as u8);
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.to_f64())
            }
        }
    };
}

unsigned_fixed!(
    /// 8-bit unsigned integer (`round(v)`), 0 … 255.
    U8P0, u8, 1, 0, 0xFF
);
unsigned_fixed!(
    /// 8-bit unsigned, ½ steps, 0 … 127.5 (temperatures in frames and settings).
    U8P1, u8, 1, 1, 0xFF
);
unsigned_fixed!(
    /// 8-bit unsigned, 1/16 steps, 0 … 15.9375 (pressure and flow set points).
    U8P4, u8, 1, 4, 0xFF
);
unsigned_fixed!(
    /// 16-bit unsigned, 1/256 steps, 0 … 255.996 (temperatures in samples and settings).
    U16P8, u16, 2, 8, 0xFFFF
);
unsigned_fixed!(
    /// 16-bit unsigned, 1/4096 steps, 0 … 15.9998 (pressure and flow in ShotSample).
    U16P12, u16, 2, 12, 0xFFFF
);
unsigned_fixed!(
    /// 24-bit unsigned, 1/65536 steps (ShotSample head temperature): the first byte is
    /// the integer part, the next two the fraction.
    U24P16, u32, 3, 16, 0xFF_FFFF
);
unsigned_fixed!(
    /// 24-bit unsigned integer, 0 … 16 777 215.
    U24P0, u32, 3, 0, 0xFF_FFFF
);
unsigned_fixed!(
    /// 16-bit unsigned integer.
    U16P0, u16, 2, 0, 0xFFFF
);

/// 32-bit two's-complement, 1/65536 steps (frame limiter and calibration values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct S32P16(pub i32);

impl S32P16 {
    pub const WIDTH: usize = 4;

    /// Encode a value, rounding half to even; out of ±32768 or non-finite is an error.
    pub fn from_f64(value: f64) -> Result<Self, FixedError> {
        check_finite(value)?;
        let raw = (value * 65536.0).round_ties_even();
        if raw < f64::from(i32::MIN) || raw > f64::from(i32::MAX) {
            return Err(FixedError::OutOfRange {
                value,
                min: -32768.0,
                max: f64::from(i32::MAX) / 65536.0,
            });
        }
        Ok(Self(raw as i32))
    }

    pub fn to_f64(self) -> f64 {
        f64::from(self.0) / 65536.0
    }

    /// Decode from the first four bytes of `bytes` (big-endian).
    pub fn from_be_slice(bytes: &[u8]) -> Self {
        Self(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn write_be(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }
}

/// One byte of time: bit 7 clear → tenths of a second (0 … 12.7 s); bit 7 set → whole
/// seconds (0 … 127 s). Used for frame durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct F8_1_7(pub u8);

impl F8_1_7 {
    pub const WIDTH: usize = 1;
    /// The longest duration the field can carry.
    pub const MAX: f64 = 127.0;

    /// Encode seconds. Below 12.75 s the tenths form is used, from there whole seconds;
    /// ties round half to even as pyDE1 does (20.5 s → 20 s).
    pub fn from_f64(value: f64) -> Result<Self, FixedError> {
        check_finite(value)?;
        let out_of_range = FixedError::OutOfRange {
            value,
            min: 0.0,
            max: Self::MAX,
        };
        if value < 0.0 {
            return Err(out_of_range);
        }
        if value < 12.75 {
            // value * 10 < 127.5, so the rounded result is at most 127.
            return Ok(Self((value * 10.0).round_ties_even() as u8));
        }
        let whole = value.round_ties_even();
        if whole > 127.0 {
            return Err(out_of_range);
        }
        Ok(Self(0x80 | whole as u8))
    }

    pub fn to_f64(self) -> f64 {
        if self.0 & 0x80 == 0 {
            f64::from(self.0 & 0x7F) / 10.0
        } else {
            f64::from(self.0 & 0x7F)
        }
    }
}

/// A 16-bit big-endian field whose low 10 bits are an integer (millilitres) and whose
/// upper six bits are flags (frame `MaxVol`, tail `MaxTotalVolume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U10P0(pub u16);

impl U10P0 {
    pub const WIDTH: usize = 2;
    pub const VALUE_MASK: u16 = 0x03FF;
    /// Set in frame `MaxVol` by de1app and reaprime; meaning undocumented.
    pub const FLAG_0400: u16 = 0x0400;
    /// Tail frame: do not count preinfusion in the total-volume limit.
    pub const FLAG_IGNORE_PREINFUSION: u16 = 0x8000;

    /// Encode a whole number of millilitres (rounded half to even) with `flags`
    /// (bits above the low ten).
    pub fn from_f64(value: f64, flags: u16) -> Result<Self, FixedError> {
        let raw = encode_unsigned(value, 0, u64::from(Self::VALUE_MASK))?;
        Ok(Self(raw as u16 | (flags & !Self::VALUE_MASK)))
    }

    /// The volume in millilitres (flag bits ignored).
    pub fn value(self) -> u16 {
        self.0 & Self::VALUE_MASK
    }

    /// The flag bits (the upper six).
    pub fn flags(self) -> u16 {
        self.0 & !Self::VALUE_MASK
    }

    pub fn from_be_slice(bytes: &[u8]) -> Self {
        Self(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    pub fn write_be(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u8p1_rounds_half_to_even_like_pyde1() {
        assert_eq!(U8P1::from_f64(92.25).unwrap().0, 184);
        assert_eq!(U8P1::from_f64(92.75).unwrap().0, 186);
        assert_eq!(U8P1::from_f64(88.0).unwrap().0, 176);
        assert_eq!(U8P1(185).to_f64(), 92.5);
    }

    #[test]
    fn u8p4_range_and_scaling() {
        assert_eq!(U8P4::from_f64(9.0).unwrap().0, 144);
        assert_eq!(U8P4::from_f64(15.9375).unwrap().0, 255);
        assert!(matches!(
            U8P4::from_f64(16.0),
            Err(FixedError::OutOfRange { max, .. }) if max == 15.9375
        ));
        assert!(U8P4::from_f64(-0.1).is_err());
        assert!(matches!(
            U8P4::from_f64(f64::NAN),
            Err(FixedError::NotFinite { .. })
        ));
    }

    #[test]
    fn u16p8_big_endian_round_trip() {
        let t = U16P8::from_f64(92.5).unwrap();
        let mut out = Vec::new();
        t.write_be(&mut out);
        assert_eq!(out, [0x5C, 0x80]);
        assert_eq!(U16P8::from_be_slice(&out).to_f64(), 92.5);
    }

    #[test]
    fn u24p16_integer_then_fraction() {
        let v = U24P16::from_be_slice(&[0x5D, 0x80, 0x00]);
        assert_eq!(v.to_f64(), 93.5);
        let mut out = Vec::new();
        U24P16::from_f64(93.5).unwrap().write_be(&mut out);
        assert_eq!(out, [0x5D, 0x80, 0x00]);
    }

    #[test]
    fn s32p16_signed() {
        let mut out = Vec::new();
        S32P16::from_f64(-1.5).unwrap().write_be(&mut out);
        assert_eq!(out, [0xFF, 0xFE, 0x80, 0x00]);
        assert_eq!(S32P16::from_be_slice(&out).to_f64(), -1.5);
        assert!(S32P16::from_f64(40000.0).is_err());
    }

    #[test]
    fn f8_1_7_worked_values_from_the_spec() {
        let cases = [
            (0.0, 0x00),
            (0.5, 0x05),
            (1.0, 0x0A),
            (2.5, 0x19),
            (12.7, 0x7F),
            (12.74, 0x7F),
            (12.75, 0x8D),
            (13.0, 0x8D),
            (20.0, 0x94),
            (20.5, 0x94),
            (21.5, 0x96),
            (25.0, 0x99),
            (127.0, 0xFF),
        ];
        for (secs, byte) in cases {
            assert_eq!(F8_1_7::from_f64(secs).unwrap().0, byte, "{secs} s");
        }
        assert!(F8_1_7::from_f64(127.5).is_err());
        assert!(F8_1_7::from_f64(-1.0).is_err());
        assert_eq!(F8_1_7(0x94).to_f64(), 20.0);
        assert_eq!(F8_1_7(0x19).to_f64(), 2.5);
    }

    #[test]
    fn u10p0_keeps_flags_apart() {
        let v = U10P0::from_f64(36.0, U10P0::FLAG_IGNORE_PREINFUSION).unwrap();
        assert_eq!(v.0, 0x8024);
        assert_eq!(v.value(), 36);
        assert_eq!(v.flags(), 0x8000);
        assert!(U10P0::from_f64(1024.0, 0).is_err());
    }
}
