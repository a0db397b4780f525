//! The error every decoder in this crate returns.

/// Bytes that could not be decoded into a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet has the wrong length for its characteristic.
    #[error("{packet}: expected {expected} bytes, got {actual}")]
    Length {
        packet: &'static str,
        expected: usize,
        actual: usize,
    },
    /// The packet's length is outside the range its characteristic allows.
    #[error("{packet}: expected {min} to {max} bytes, got {actual}")]
    LengthRange {
        packet: &'static str,
        min: usize,
        max: usize,
        actual: usize,
    },
    /// A field holds a value the protocol does not define.
    #[error("{packet}: field {field} has invalid value {value:#x}")]
    InvalidValue {
        packet: &'static str,
        field: &'static str,
        value: u32,
    },
}
