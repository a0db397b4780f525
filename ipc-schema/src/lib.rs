//! Every message exchanged between de1d's processes, how it is framed on the wire, and what
//! a child process receives from the launcher.
//!
//! This crate is the only contract between the launcher, the controller, the inbound HTTP
//! API and the outbound MQTT API:
//!
//! * [`command`], [`event`], [`log_record`]: the payloads;
//! * [`envelope`]: what travels on each link ([`ToController`], [`FromController`],
//!   [`ToLauncher`], [`FromLauncher`]) and the [`Hello`] handshake with [`PROTOCOL_VERSION`];
//! * [`framing`]: 4-byte big-endian length prefix + bincode 1.3, capped at
//!   [`framing::MAX_FRAME_LEN`];
//! * [`child`]: [`ChildEnv`], the handle a child's `run` receives;
//! * [`client`] / [`server`]: both ends of the controller socket;
//! * [`config`]: the configuration, readable by every process.
//!
//! Messages are bincode-encoded, which cannot represent self-describing data: message types
//! must not use `serde_json::Value`, `#[serde(untagged)]`, `#[serde(flatten)]`,
//! `#[serde(tag = ...)]` or `skip_serializing_if`.

pub mod child;
pub mod client;
pub mod command;
pub mod config;
pub mod envelope;
pub mod event;
pub mod framing;
pub mod log_record;
pub mod server;
pub mod socket;

pub use child::{ChildEnv, Shutdown, ShutdownReason};
pub use client::{CallError, ControllerClient, LinkEvent};
pub use config::Config;
pub use envelope::{
    FromController, FromLauncher, Hello, RequestId, Role, ToController, ToLauncher,
    PROTOCOL_VERSION,
};
pub use log_record::{Level, LogRecord};
