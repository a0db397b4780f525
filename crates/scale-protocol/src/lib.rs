//! Bluetooth scale packets (no I/O).
//!
//! One module per scale family. Each module gives the advertised-name prefix, the GATT
//! UUIDs, the commands it understands (as bytes) and decoders for what it notifies.
//! [`ScaleModel`] picks the module from an advertised name, the way the scanner
//! recognises devices (case-sensitive "starts with").
//!
//! UUIDs are plain `u128` values (as written in text) so that this crate depends on no
//! Bluetooth stack; `ble::Uuid::from_u128` converts them.
//!
//! No input makes any decoder panic: every decoder returns [`DecodeError`].

pub mod skale2;

use std::time::Duration;

/// The Bluetooth base UUID; 16-bit SIG UUIDs are added to it.
pub const BLUETOOTH_BASE: u128 = 0x0000_0000_0000_1000_8000_0080_5F9B_34FB;

/// Expand a 16-bit UUID on the Bluetooth base (`0xEF80` →
/// `0000EF80-0000-1000-8000-00805F9B34FB`).
pub const fn uuid16(short: u16) -> u128 {
    ((short as u128) << 96) | BLUETOOTH_BASE
}

/// Bytes a scale sent that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{packet}: need at least {min} bytes, got {actual}")]
    TooShort {
        packet: &'static str,
        min: usize,
        actual: usize,
    },
    #[error("{packet}: unknown command {bytes:02x?}")]
    UnknownCommand {
        packet: &'static str,
        bytes: Vec<u8>,
    },
}

/// A scale family this crate can talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScaleModel {
    /// Atomax Skale II.
    SkaleII,
}

impl ScaleModel {
    /// Every supported model, in matching order.
    pub const ALL: &'static [ScaleModel] = &[ScaleModel::SkaleII];

    /// The model whose advertised-name prefix `name` starts with (case-sensitive).
    pub fn from_advertised_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.name_prefixes().iter().any(|p| name.starts_with(p)))
    }

    pub fn name_prefixes(self) -> &'static [&'static str] {
        match self {
            ScaleModel::SkaleII => &[skale2::NAME_PREFIX],
        }
    }

    /// Time from the liquid landing on the pan to the report arriving at the host
    /// (used by weight-flow estimators).
    pub fn sensor_lag(self) -> Duration {
        match self {
            ScaleModel::SkaleII => skale2::SENSOR_LAG,
        }
    }

    /// The nominal time between weight reports.
    pub fn report_period(self) -> Duration {
        match self {
            ScaleModel::SkaleII => skale2::REPORT_PERIOD,
        }
    }

    /// A short display name.
    pub fn label(self) -> &'static str {
        match self {
            ScaleModel::SkaleII => "Atomax Skale II",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_by_case_sensitive_prefix() {
        assert_eq!(
            ScaleModel::from_advertised_name("Skale"),
            Some(ScaleModel::SkaleII)
        );
        assert_eq!(
            ScaleModel::from_advertised_name("Skale2-0A1B"),
            Some(ScaleModel::SkaleII)
        );
        assert_eq!(ScaleModel::from_advertised_name("skale"), None);
        assert_eq!(ScaleModel::from_advertised_name("DE1"), None);
        assert_eq!(ScaleModel::from_advertised_name(""), None);
    }

    #[test]
    fn uuid16_expands_on_the_base() {
        assert_eq!(uuid16(0xEF80), 0x0000EF80_0000_1000_8000_00805F9B34FB);
    }
}
