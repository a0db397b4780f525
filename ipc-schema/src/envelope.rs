//! The envelopes that travel on each link, and the handshake that opens every connection.
//!
//! There are two kinds of link, each a Unix-domain stream socket in the runtime directory:
//!
//! * **launcher link** (`launcher.sock`, the launcher is the server): a child sends
//!   [`ToLauncher`] (log records, readiness), the launcher sends [`FromLauncher`] (shutdown).
//! * **controller link** (`controller.sock`, the controller is the server, so that restarting
//!   inbound or outbound never disturbs it): a client sends [`ToController`] (requests,
//!   subscription), the controller sends [`FromController`] (responses, events).
//!
//! Every connection starts with each side sending one [`Hello`] frame; see
//! [`crate::framing::handshake`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{Command, CommandError, Reply};
use crate::event::Event;
use crate::log_record::LogRecord;

/// Version of the message set. Bump whenever any message type changes shape: the handshake
/// refuses a peer speaking another version (this can happen when the executable is replaced
/// on disk while an older launcher still runs).
pub const PROTOCOL_VERSION: u32 = 1;

/// First four bytes of every [`Hello`], so that a stray client is recognised at once.
pub const HELLO_MAGIC: [u8; 4] = *b"DE1D";

/// Who is speaking on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The supervisor process that starts the others and writes the log file.
    Launcher,
    /// Owns the Bluetooth devices and the flow sequencer; server of `controller.sock`.
    Controller,
    /// The HTTP API.
    Inbound,
    /// The MQTT API.
    Outbound,
    /// A command-line tool or a test talking to a running instance.
    Tool,
}

impl Role {
    /// The roles the launcher starts as child processes, in start order.
    pub const CHILDREN: [Role; 3] = [Role::Controller, Role::Inbound, Role::Outbound];

    /// Lower-case name used on the command line (`de1d child <name>`) and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Launcher => "launcher",
            Role::Controller => "controller",
            Role::Inbound => "inbound",
            Role::Outbound => "outbound",
            Role::Tool => "tool",
        }
    }

    /// Name printed in the `[...]` column of the combined log.
    pub fn process_name(self) -> &'static str {
        match self {
            Role::Launcher => "Launcher",
            Role::Controller => "Controller",
            Role::Inbound => "Inbound",
            Role::Outbound => "Outbound",
            Role::Tool => "Tool",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn from_name(name: &str) -> Option<Role> {
        [
            Role::Launcher,
            Role::Controller,
            Role::Inbound,
            Role::Outbound,
            Role::Tool,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.process_name())
    }
}

/// The first frame each side sends on a new connection.
///
/// Its first two fields never change shape, so a peer of another version is still told
/// precisely why it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`HELLO_MAGIC`].
    pub magic: [u8; 4],
    /// The sender's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The sender's role.
    pub role: Role,
    /// The sender's process id (for log lines).
    pub pid: u32,
    /// The sender's package version (for log lines).
    pub version: String,
}

impl Hello {
    /// The hello this process sends in the given role.
    pub fn new(role: Role) -> Hello {
        Hello {
            magic: HELLO_MAGIC,
            protocol: PROTOCOL_VERSION,
            role,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Identifies a request so that its response can be matched; unique per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Client → controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToController {
    /// Carry out a command; answered by exactly one [`FromController::Response`] with the same
    /// id (unless the connection is lost first). Several requests may be outstanding.
    Request { id: RequestId, command: Command },
    /// Start sending [`FromController::Event`]s on this connection.
    Subscribe,
}

/// Controller → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromController {
    /// The outcome of the request with this id.
    Response {
        id: RequestId,
        result: Result<Reply, CommandError>,
    },
    /// Something happened (only after [`ToController::Subscribe`]).
    Event(Event),
    /// This many events were not delivered to this subscriber because it was too slow.
    Lagged(u64),
}

/// Child → launcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToLauncher {
    /// A log line for the combined log file.
    Log(LogRecord),
    /// The child is up: it serves what it is meant to serve.
    Ready,
}

/// Launcher → child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromLauncher {
    /// Finish what you are doing and exit within `grace_ms` milliseconds; the launcher kills
    /// the process after that.
    Shutdown { grace_ms: u32 },
}
