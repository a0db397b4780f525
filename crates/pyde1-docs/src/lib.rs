//! pyDE1's JSON documents, written in one place: pure functions, no I/O, no async.
//!
//! * [`pyjson`]: JSON as Python's `json.dumps` writes it (float `repr`, `\uXXXX` escapes,
//!   separators), compact and indented-sorted;
//! * [`payload`]: events → pyDE1's MQTT payloads, byte for byte;
//! * [`document`]: typed snapshots → pyDE1's HTTP GET documents;
//! * [`mapping`]: every document's keys and types, and how PATCH values become changes;
//! * [`patch`]: a pyDE1 PATCH body → typed changes, with the path of the first bad key.

pub mod document;
pub mod mapping;
pub mod patch;
pub mod payload;
pub mod pyjson;
