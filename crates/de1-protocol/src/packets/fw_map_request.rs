//! FWMapRequest (A009) — 7 bytes, write + notify: firmware erase and verify
//! (de1-firmware.md §2).
//!
//! | Off | Size | Field           | Type   | Request meaning                           |
//! |-----|------|-----------------|--------|-------------------------------------------|
//! | 0   | 2    | WindowIncrement | U16 BE | always 0                                  |
//! | 2   | 1    | FWToErase       | U8     | 1 or 2 = erase that slot; notifications keep it non-zero until the erase ends |
//! | 3   | 1    | FWToMap         | U8     | slot to work on, 1 or 2 (all apps use 1)  |
//! | 4   | 3    | FirstError      | U24 BE | see the `FIRST_ERROR_*` constants         |
//!
//! In a notification FirstError is the address of the first block needing repair, or
//! [`FWMapRequest::NO_ERRORS`]. (An echoed 0 is ambiguous: "ignore" or "error at 0".)

use serde_json::{json, Value};

use super::{exact, serialize_via_json};
use crate::DecodeError;

const NAME: &str = "FWMapRequest";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FWMapRequest {
    pub window_increment: u16,
    pub fw_to_erase: u8,
    pub fw_to_map: u8,
    /// 24-bit value (upper byte always 0).
    pub first_error: u32,
}

impl FWMapRequest {
    pub const LEN: usize = 7;
    /// Request: no error query (used with an erase).
    pub const FIRST_ERROR_IGNORE: u32 = 0x00_0000;
    /// Request: reset the search and report the first address needing repair.
    pub const FIRST_ERROR_REPORT_FIRST: u32 = 0xFF_FFFF;
    /// Request: report the next address needing repair.
    pub const FIRST_ERROR_REPORT_NEXT: u32 = 0xFF_FFFE;
    /// Notification: the image has no errors.
    pub const NO_ERRORS: u32 = 0xFF_FFFD;

    /// Erase firmware slot `slot` (1 or 2): `00 00 01 01 00 00 00` for slot 1.
    pub const fn erase(slot: u8) -> Self {
        Self {
            window_increment: 0,
            fw_to_erase: slot,
            fw_to_map: slot,
            first_error: Self::FIRST_ERROR_IGNORE,
        }
    }

    /// Verify slot `slot`: report its first bad block (`00 00 00 01 FF FF FF`).
    pub const fn verify(slot: u8) -> Self {
        Self {
            window_increment: 0,
            fw_to_erase: 0,
            fw_to_map: slot,
            first_error: Self::FIRST_ERROR_REPORT_FIRST,
        }
    }

    /// Report the next bad block of slot `slot` (`00 00 00 01 FF FF FE`).
    pub const fn report_next(slot: u8) -> Self {
        Self {
            first_error: Self::FIRST_ERROR_REPORT_NEXT,
            ..Self::verify(slot)
        }
    }

    /// The verify answer a machine sends when the image in `slot` is complete.
    pub const fn verified(slot: u8) -> Self {
        Self {
            first_error: Self::NO_ERRORS,
            ..Self::verify(slot)
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = exact::<7>(NAME, bytes)?;
        Ok(Self {
            window_increment: u16::from_be_bytes([b[0], b[1]]),
            fw_to_erase: b[2],
            fw_to_map: b[3],
            first_error: u32::from_be_bytes([0, b[4], b[5], b[6]]),
        })
    }

    pub fn encode(&self) -> [u8; 7] {
        let w = self.window_increment.to_be_bytes();
        let e = self.first_error.to_be_bytes();
        [
            w[0],
            w[1],
            self.fw_to_erase,
            self.fw_to_map,
            e[1],
            e[2],
            e[3],
        ]
    }

    /// Check a request against the rules pyDE1 enforces: FWToErase ∈ {0,1,2},
    /// FWToMap ∈ {1,2}, FirstError fits 24 bits and is Ignore when erasing.
    pub fn validate_request(&self) -> Result<(), DecodeError> {
        let invalid = |field, value| {
            Err(DecodeError::InvalidValue {
                packet: NAME,
                field,
                value,
            })
        };
        if self.fw_to_erase > 2 {
            return invalid("FWToErase", u32::from(self.fw_to_erase));
        }
        if !(1..=2).contains(&self.fw_to_map) {
            return invalid("FWToMap", u32::from(self.fw_to_map));
        }
        if self.first_error > 0xFF_FFFF
            || (self.fw_to_erase > 0 && self.first_error != Self::FIRST_ERROR_IGNORE)
        {
            return invalid("FirstError", self.first_error);
        }
        Ok(())
    }

    /// Notification: an erase is still running.
    pub const fn is_erasing(&self) -> bool {
        self.fw_to_erase != 0
    }

    /// Notification: the verified image has no errors.
    pub const fn is_verified(&self) -> bool {
        self.fw_to_erase == 0 && self.first_error == Self::NO_ERRORS
    }

    fn first_error_meaning(&self) -> &'static str {
        match self.first_error {
            Self::FIRST_ERROR_REPORT_FIRST => "report first",
            Self::FIRST_ERROR_REPORT_NEXT => "report next",
            Self::NO_ERRORS => "no errors",
            Self::FIRST_ERROR_IGNORE => "ignore (request) or error at 0 (notification)",
            _ => "address needing repair",
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "window_increment": self.window_increment,
            "fw_to_erase": self.fw_to_erase,
            "fw_to_map": self.fw_to_map,
            "first_error": format!("{:06x}", self.first_error),
            "first_error_meaning": self.first_error_meaning(),
        })
    }
}

serialize_via_json!(FWMapRequest);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    #[test]
    fn spec_packets() {
        assert_eq!(
            FWMapRequest::erase(1).encode().to_vec(),
            hex_bytes("00 00 01 01 00 00 00")
        );
        assert_eq!(
            FWMapRequest::verify(1).encode().to_vec(),
            hex_bytes("00 00 00 01 FF FF FF")
        );
        assert_eq!(
            FWMapRequest::report_next(1).encode().to_vec(),
            hex_bytes("00 00 00 01 FF FF FE")
        );
        let ok = FWMapRequest::decode(&hex_bytes("00 00 00 01 FF FF FD")).unwrap();
        assert!(ok.is_verified());
        assert_eq!(ok, FWMapRequest::verified(1));
        let erasing = FWMapRequest::decode(&hex_bytes("00 00 01 01 00 00 00")).unwrap();
        assert!(erasing.is_erasing());
        assert!(!erasing.is_verified());
    }

    #[test]
    fn bad_block_address() {
        let n = FWMapRequest::decode(&hex_bytes("00 00 00 01 01 AB C0")).unwrap();
        assert_eq!(n.first_error, 0x01_ABC0);
        assert!(!n.is_verified());
        assert_eq!(n.to_json()["first_error"], "01abc0");
    }

    #[test]
    fn request_validation() {
        assert!(FWMapRequest::erase(1).validate_request().is_ok());
        assert!(FWMapRequest::verify(2).validate_request().is_ok());
        // reaprime's erase variant carries FF FF FF with the erase: pyDE1 would refuse.
        let reaprime = FWMapRequest::decode(&hex_bytes("00 00 01 01 FF FF FF")).unwrap();
        assert!(reaprime.validate_request().is_err());
        assert!(FWMapRequest::verify(0).validate_request().is_err());
        assert!(FWMapRequest::erase(3).validate_request().is_err());
        assert!(FWMapRequest::decode(&[0u8; 6]).is_err());
    }
}
