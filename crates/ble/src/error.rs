//! The one error type every backend returns.

use std::fmt;

/// What went wrong, in categories a controller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No Bluetooth adapter (or no Bluetooth service) on this host. Retrying soon will
    /// not help.
    NoAdapter,
    /// The adapter exists but is powered off or otherwise unusable right now.
    AdapterUnavailable,
    /// The device, service or characteristic asked for does not exist.
    NotFound,
    /// The device was found but the connection attempt failed.
    ConnectFailed,
    /// The operation needs a connection and there is none (never connected, or the
    /// handle was disconnected on purpose).
    NotConnected,
    /// The link dropped while the operation was in flight or before it started.
    Disconnected,
    /// The operation did not finish in time.
    Timeout,
    /// The peer answered with an ATT/GATT error (write rejected, not permitted, …).
    Gatt,
    /// The characteristic does not support the operation (e.g. reading a write-only one).
    NotSupported,
    /// Anything else the backend reports.
    Other,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::NoAdapter => "no Bluetooth adapter",
            ErrorKind::AdapterUnavailable => "Bluetooth adapter unavailable",
            ErrorKind::NotFound => "not found",
            ErrorKind::ConnectFailed => "connection failed",
            ErrorKind::NotConnected => "not connected",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Gatt => "GATT error",
            ErrorKind::NotSupported => "not supported",
            ErrorKind::Other => "Bluetooth error",
        })
    }
}

/// A Bluetooth operation failed: a [`ErrorKind`] and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// True when the link is gone (reconnecting is the remedy).
    pub fn is_link_loss(&self) -> bool {
        matches!(self.kind, ErrorKind::Disconnected | ErrorKind::NotConnected)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
