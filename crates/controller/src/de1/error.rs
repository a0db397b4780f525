//! [`De1Error`]: everything a DE1 operation can fail with, in classes the HTTP layer maps
//! to status codes ([`De1Error::kind`]).

use std::time::Duration;

use de1_protocol::firmware::FirmwareError;
use de1_protocol::mmr::MmrError;
use de1_protocol::profile::ProfileError;
use de1_protocol::state::{MachineState, Substate};
use ipc_schema::command::{CommandError, CommandErrorKind};

use super::modes::Mode;

/// Why a DE1 operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum De1Error {
    /// No DE1 link (never connected, released, or the link dropped). 409.
    #[error("DE1 not connected{}", detail(.0))]
    NotConnected(Option<String>),
    /// Connected, but the connect-time sequence has not finished. 409.
    #[error("DE1 not ready")]
    NotReady,
    /// The machine's state does not permit the request. 409.
    #[error("Can't move to {mode} from {state}, {substate}")]
    StateConflict {
        mode: Mode,
        state: MachineState,
        substate: Substate,
    },
    /// The group head controller is active: flows must be started at the group head. 418.
    #[error("{0} must be started at the group head on this DE1 (GHC active)")]
    GhcActive(Mode),
    /// The connected firmware does not have the feature. 501.
    #[error("{what} needs DE1 firmware build {min} or later (this DE1 runs {build})")]
    FirmwareTooOld {
        what: &'static str,
        min: u32,
        build: u32,
    },
    /// A value the DE1 cannot take. 400.
    #[error("{0}")]
    InvalidValue(String),
    /// A profile that was refused before anything was written. 400.
    #[error("invalid profile: {0}")]
    Profile(ProfileError),
    /// A firmware file refused before anything was erased. 400.
    #[error("invalid firmware file: {0}")]
    Firmware(FirmwareError),
    /// No profile with this id in the profile store. 404.
    #[error("No profile record for {0}")]
    UnknownProfile(String),
    /// Another operation of this kind is running (firmware upload). 409 (busy).
    #[error("{0} already in progress")]
    InProgress(&'static str),
    /// The DE1 is busy with something that must not be interrupted. 409.
    #[error("{what} needs an idle DE1; it is {state}, {substate}")]
    Busy {
        what: &'static str,
        state: MachineState,
        substate: Substate,
    },
    /// Nothing of this kind to cancel. 409.
    #[error("no {0} in progress")]
    NothingInProgress(&'static str),
    /// The DE1 did not answer in time. 408.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// A profile upload stopped part-way; the DE1's profile is unknown now. 500.
    #[error(
        "profile upload failed after {written} of {total} writes ({cause}); the DE1's profile is unknown"
    )]
    ProfileUploadFailed {
        written: usize,
        total: usize,
        cause: String,
    },
    /// A Bluetooth operation failed. 409 when the link is gone, else 500.
    #[error("Bluetooth: {0}")]
    Ble(ble::Error),
    /// The profile store could not be read or written. 500.
    #[error("profile store: {0}")]
    Store(String),
}

fn detail(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

impl De1Error {
    /// The class the HTTP API maps to a status code.
    pub fn kind(&self) -> CommandErrorKind {
        use CommandErrorKind as K;
        match self {
            De1Error::NotConnected(_) | De1Error::NotReady => K::NotConnected,
            De1Error::StateConflict { .. }
            | De1Error::Busy { .. }
            | De1Error::NothingInProgress(_) => K::Conflict,
            De1Error::InProgress(_) => K::Busy,
            De1Error::GhcActive(_) => K::DeviceCannot,
            De1Error::FirmwareTooOld { .. } => K::NotImplemented,
            De1Error::InvalidValue(_) | De1Error::Profile(_) | De1Error::Firmware(_) => {
                K::BadRequest
            }
            De1Error::UnknownProfile(_) => K::NotFound,
            De1Error::Timeout { .. } => K::Timeout,
            De1Error::Ble(e) if e.is_link_loss() => K::NotConnected,
            De1Error::Ble(e) if e.kind() == ble::ErrorKind::Timeout => K::Timeout,
            De1Error::ProfileUploadFailed { .. } | De1Error::Ble(_) | De1Error::Store(_) => {
                K::Internal
            }
        }
    }

    /// The typed error sent back over the controller link.
    pub fn to_command_error(&self) -> CommandError {
        match self {
            De1Error::Profile(p) => CommandError::at(self.kind(), p.path(), self.to_string()),
            _ => CommandError::new(self.kind(), self.to_string()),
        }
    }

    /// True when the DE1 link is gone (the operation may succeed after a reconnection).
    pub fn is_link_loss(&self) -> bool {
        match self {
            De1Error::NotConnected(_) => true,
            De1Error::Ble(e) => e.is_link_loss(),
            _ => false,
        }
    }
}

impl From<ble::Error> for De1Error {
    fn from(e: ble::Error) -> Self {
        De1Error::Ble(e)
    }
}

impl From<MmrError> for De1Error {
    fn from(e: MmrError) -> Self {
        De1Error::InvalidValue(e.to_string())
    }
}

impl From<ProfileError> for De1Error {
    fn from(e: ProfileError) -> Self {
        De1Error::Profile(e)
    }
}

impl From<FirmwareError> for De1Error {
    fn from(e: FirmwareError) -> Self {
        De1Error::Firmware(e)
    }
}

impl From<De1Error> for CommandError {
    fn from(e: De1Error) -> Self {
        e.to_command_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_http_mapping() {
        assert_eq!(
            De1Error::NotConnected(None).kind(),
            CommandErrorKind::NotConnected
        );
        assert_eq!(
            De1Error::GhcActive(Mode::Espresso).kind(),
            CommandErrorKind::DeviceCannot
        );
        let e = De1Error::StateConflict {
            mode: Mode::SkipToNext,
            state: MachineState::Idle,
            substate: Substate::NoState,
        };
        assert_eq!(e.kind(), CommandErrorKind::Conflict);
        assert_eq!(e.to_string(), "Can't move to SkipToNext from Idle, NoState");
        let lost = De1Error::Ble(ble::Error::new(ble::ErrorKind::Disconnected, "gone"));
        assert_eq!(lost.kind(), CommandErrorKind::NotConnected);
        assert!(lost.is_link_loss());
        let gatt = De1Error::Ble(ble::Error::new(ble::ErrorKind::Gatt, "rejected"));
        assert_eq!(gatt.kind(), CommandErrorKind::Internal);
        assert_eq!(
            De1Error::NotConnected(Some("no Bluetooth adapter".into())).to_string(),
            "DE1 not connected (no Bluetooth adapter)"
        );
    }
}
