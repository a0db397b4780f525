//! Commands sent by the inbound HTTP API to the controller, and the controller's replies.
//!
//! Placeholder until the HTTP API defines the full set.

use serde::{Deserialize, Serialize};

/// A request to the controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Does nothing; answers [`Reply::Pong`]. Used for liveness checks.
    Ping,
}

/// The controller's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    Pong,
}

/// Why the controller could not carry out a [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CommandError {
    pub kind: CommandErrorKind,
    pub message: String,
}

/// The class of a [`CommandError`]; the HTTP API maps each to a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandErrorKind {
    /// The request is malformed or a value is out of range (400).
    BadRequest,
    /// The device is not connected or its state does not permit the request (409).
    Conflict,
    /// The device cannot do this at all, e.g. a GHC machine must be started at the group head (418).
    DeviceCannot,
    /// The controller did not finish in time (408).
    Timeout,
    /// Not implemented by this device or firmware (501).
    NotImplemented,
    /// Anything else (500).
    Internal,
}
