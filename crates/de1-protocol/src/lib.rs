//! The DE1's Bluetooth LE protocol as pure data: packets, fixed-point types, machine
//! states, memory-mapped registers, profiles and firmware files.
//!
//! Invariants: this crate does no I/O, has no async, and no input makes it panic —
//! every decoder returns [`DecodeError`] for bytes it cannot read.

pub mod characteristic;
pub mod decode_any;
pub mod error;
pub mod firmware;
pub mod fixed;
pub mod mmr;
pub mod packets;
pub mod profile;
pub mod state;

pub use error::DecodeError;
