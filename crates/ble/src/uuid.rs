//! A 128-bit Bluetooth UUID, kept as big-endian bytes (the order in which it is written
//! as text), independent of any backend's UUID type.

use std::fmt;
use std::str::FromStr;

/// A 128-bit UUID identifying a GATT service or characteristic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

/// The Bluetooth base UUID `00000000-0000-1000-8000-00805F9B34FB`, to which 16- and
/// 32-bit UUIDs are added.
pub const BLUETOOTH_BASE: u128 = 0x0000_0000_0000_1000_8000_0080_5F9B_34FB;

impl Uuid {
    /// From the 128-bit value as written in text.
    pub const fn from_u128(value: u128) -> Self {
        Self(value.to_be_bytes())
    }

    /// A 16-bit SIG UUID expanded with the Bluetooth base (`0xA00D` →
    /// `0000A00D-0000-1000-8000-00805F9B34FB`).
    pub const fn from_u16(short: u16) -> Self {
        Self::from_u128(((short as u128) << 96) | BLUETOOTH_BASE)
    }

    pub const fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }

    /// The 16-bit short form, if this UUID is one on the Bluetooth base.
    pub const fn as_u16(self) -> Option<u16> {
        let v = self.as_u128();
        if v & !(0xFFFF_u128 << 96) == BLUETOOTH_BASE {
            Some((v >> 96) as u16)
        } else {
            None
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_u16() {
            Some(short) => write!(f, "Uuid({short:04X})"),
            None => write!(f, "Uuid({self})"),
        }
    }
}

/// Text that is not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct ParseUuidError(pub String);

impl FromStr for Uuid {
    type Err = ParseUuidError;

    /// Accepts the 36-character form with dashes, the 32 hex digits without them, or a
    /// 4-digit 16-bit short form (expanded with the Bluetooth base).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseUuidError(s.to_string());
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let dashes_ok = match s.len() {
            36 => s
                .char_indices()
                .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23)),
            32 | 4 => !s.contains('-'),
            _ => false,
        };
        if !dashes_ok || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(err());
        }
        match hex.len() {
            4 => u16::from_str_radix(&hex, 16)
                .map(Self::from_u16)
                .map_err(|_| err()),
            32 => u128::from_str_radix(&hex, 16)
                .map(Self::from_u128)
                .map_err(|_| err()),
            _ => Err(err()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_expands_on_the_base() {
        let u = Uuid::from_u16(0xA00D);
        assert_eq!(u.to_string(), "0000a00d-0000-1000-8000-00805f9b34fb");
        assert_eq!(u.as_u16(), Some(0xA00D));
        assert_eq!(format!("{u:?}"), "Uuid(A00D)");
    }

    #[test]
    fn parses_all_three_forms() {
        let long: Uuid = "0000EF80-0000-1000-8000-00805F9B34FB".parse().unwrap();
        let bare: Uuid = "0000ef800000100080000080 5f9b34fb"
            .replace(' ', "")
            .parse()
            .unwrap();
        let short: Uuid = "EF80".parse().unwrap();
        assert_eq!(long, Uuid::from_u16(0xEF80));
        assert_eq!(bare, long);
        assert_eq!(short, long);
        let custom: Uuid = "0f050002-3225-44b1-b97d-d3274acb29de".parse().unwrap();
        assert_eq!(custom.as_u16(), None);
        assert_eq!(custom.to_string(), "0f050002-3225-44b1-b97d-d3274acb29de");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "EF8",
            "0000EF80-0000-1000-8000-00805F9B34F",
            "0000EF800-000-1000-8000-00805F9B34FB",
            "0000EF80-0000-1000-8000-00805F9B34FG",
            "+EF8",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad:?}");
        }
    }
}
