//! ReadFromMMR (A005) — 20 bytes: a register read request (written) and its responses
//! (notified). See [`crate::mmr`] for the register map and for reassembling replies.
//!
//! | Off | Size | Field   | Request                           | Response                         |
//! |-----|------|---------|-----------------------------------|----------------------------------|
//! | 0   | 1    | Len     | 32-bit words to read − 1 (0 … 255) | valid data bytes in this packet (≤ 16) |
//! | 1   | 3    | Address | U24 BE, first byte to read        | U24 BE, address of this packet's first byte |
//! | 4   | 16   | Data    | zero                              | data, zero-filled past Len       |
//!
//! A request for more than 16 bytes is answered by several notifications of ≤ 16 bytes
//! each, in ascending address order.
//!
//! Quirk: a GATT *read* of A005 returns the last request, not data, and since `Len`
//! means words − 1 there and bytes in a response, the two cannot be told apart. Never
//! read A005; enable notifications and decode only those as [`ReadFromMMRResponse`].

use serde_json::{json, Value};

use super::serialize_via_json;
use crate::mmr::{MmrError, MAX_ADDRESS};
use crate::DecodeError;

const NAME: &str = "ReadFromMMR";
/// Size of the characteristic value.
pub const LEN: usize = 20;
/// Data bytes a single response carries at most.
pub const MAX_DATA: usize = 16;

/// `address` if `len` bytes from it stay inside the 24-bit address space.
fn check_range(address: u32, len: usize) -> Result<u32, MmrError> {
    if u64::from(address) + len as u64 > u64::from(MAX_ADDRESS) + 1 {
        Err(MmrError::AddressOutOfRange(address))
    } else {
        Ok(address)
    }
}

fn header(len: u8, address: u32) -> [u8; LEN] {
    let a = address.to_be_bytes();
    let mut out = [0u8; LEN];
    out[0] = len;
    out[1..4].copy_from_slice(&a[1..4]);
    out
}

fn address_of(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[1], b[2], b[3]])
}

/// A read request: `words` consecutive 32-bit words from `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadFromMMRRequest {
    address: u32,
    /// The wire `Len`: words − 1.
    len: u8,
}

impl ReadFromMMRRequest {
    /// Most words one request can ask for (`Len` = 255 → 1024 bytes).
    pub const MAX_WORDS: u16 = 256;

    /// Read `words` (1 … 256) words starting at `address`; the whole range must lie in
    /// the 24-bit address space.
    pub fn new(address: u32, words: u16) -> Result<Self, MmrError> {
        if !(1..=Self::MAX_WORDS).contains(&words) {
            return Err(MmrError::WordCount(words));
        }
        let last = u64::from(address) + 4 * u64::from(words) - 1;
        if last > u64::from(MAX_ADDRESS) {
            return Err(MmrError::AddressOutOfRange(address));
        }
        Ok(Self {
            address,
            len: (words - 1) as u8,
        })
    }

    /// For table-driven requests known to be valid: `address` is masked to 24 bits and
    /// `words` clamped to 1 … 256.
    pub(crate) const fn from_parts(address: u32, words: u16) -> Self {
        let words = if words == 0 {
            1
        } else if words > Self::MAX_WORDS {
            Self::MAX_WORDS
        } else {
            words
        };
        Self {
            address: address & MAX_ADDRESS,
            len: (words - 1) as u8,
        }
    }

    /// Read every word from `first` through `last` inclusive (both word addresses).
    pub fn block(first: u32, last: u32) -> Result<Self, MmrError> {
        if last < first {
            return Err(MmrError::WordCount(0));
        }
        let words = (last - first) / 4 + 1;
        Self::new(first, u16::try_from(words).unwrap_or(u16::MAX))
    }

    pub const fn address(&self) -> u32 {
        self.address
    }

    /// Number of 32-bit words requested.
    pub const fn words(&self) -> u16 {
        self.len as u16 + 1
    }

    /// Number of bytes requested.
    pub const fn byte_len(&self) -> usize {
        self.words() as usize * 4
    }

    /// How many notifications answer this request (⌈bytes / 16⌉).
    pub const fn response_count(&self) -> usize {
        self.byte_len().div_ceil(MAX_DATA)
    }

    /// Decode a request (as a simulator receives it). Accepts 4 … 20 bytes: the data
    /// bytes of a request carry nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if !(4..=LEN).contains(&bytes.len()) {
            return Err(DecodeError::LengthRange {
                packet: NAME,
                min: 4,
                max: LEN,
                actual: bytes.len(),
            });
        }
        Ok(Self {
            address: address_of(bytes),
            len: bytes[0],
        })
    }

    /// The full 20-byte request, as both reference apps send it.
    pub fn encode(&self) -> [u8; LEN] {
        header(self.len, self.address)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "kind": "request",
            "address": format!("{:06x}", self.address),
            "words": self.words(),
            "bytes": self.byte_len(),
        })
    }
}

serialize_via_json!(ReadFromMMRRequest);

/// One response notification: up to 16 data bytes starting at `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadFromMMRResponse {
    address: u32,
    len: u8,
    data: [u8; MAX_DATA],
}

impl ReadFromMMRResponse {
    /// A response carrying `data` (≤ 16 bytes) read from `address`.
    pub fn new(address: u32, data: &[u8]) -> Result<Self, MmrError> {
        if data.len() > MAX_DATA {
            return Err(MmrError::DataLength(data.len()));
        }
        let mut buf = [0u8; MAX_DATA];
        buf[..data.len()].copy_from_slice(data);
        Ok(Self {
            address: check_range(address, data.len().max(1))?,
            len: data.len() as u8,
            data: buf,
        })
    }

    /// Address of the first data byte.
    pub const fn address(&self) -> u32 {
        self.address
    }

    /// The valid data bytes.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The complete 32-bit words in this packet, as (address, little-endian value bytes).
    pub fn words(&self) -> impl Iterator<Item = (u32, [u8; 4])> + '_ {
        self.data()
            .chunks_exact(4)
            .zip(0u32..)
            .map(move |(c, i)| (self.address.wrapping_add(4 * i), [c[0], c[1], c[2], c[3]]))
    }

    /// Decode a notification: exactly 20 bytes with `Len` ≤ 16. (A `Len` above 16 is
    /// what a request — e.g. a GATT read of A005 — looks like.)
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = super::exact::<LEN>(NAME, bytes)?;
        let len = b[0];
        if usize::from(len) > MAX_DATA {
            return Err(DecodeError::InvalidValue {
                packet: NAME,
                field: "Len",
                value: u32::from(len),
            });
        }
        let mut data = [0u8; MAX_DATA];
        data[..usize::from(len)].copy_from_slice(&b[4..4 + usize::from(len)]);
        Ok(Self {
            address: address_of(b),
            len,
            data,
        })
    }

    /// The 20-byte notification, zero-filled past `Len`.
    pub fn encode(&self) -> [u8; LEN] {
        let mut out = header(self.len, self.address);
        out[4..].copy_from_slice(&self.data);
        out
    }

    pub fn to_json(&self) -> Value {
        let words: Vec<Value> = self
            .words()
            .map(|(addr, w)| {
                let name = crate::mmr::MmrRegister::lookup_by_address(addr).map(|r| r.name());
                json!({
                    "address": format!("{addr:06x}"),
                    "register": name,
                    "value_le": u32::from_le_bytes(w),
                })
            })
            .collect();
        json!({
            "kind": "response",
            "address": format!("{:06x}", self.address),
            "length": self.len,
            "data": hex::encode(self.data()),
            "words": words,
        })
    }
}

serialize_via_json!(ReadFromMMRResponse);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    fn padded(head: &str) -> Vec<u8> {
        let mut v = hex_bytes(head);
        v.resize(LEN, 0);
        v
    }

    #[test]
    fn request_examples() {
        let r = ReadFromMMRRequest::new(0x80_0010, 1).unwrap();
        assert_eq!(r.encode().to_vec(), padded("00 80 00 10"));
        let r = ReadFromMMRRequest::new(0x80_0008, 3).unwrap();
        assert_eq!(r.encode().to_vec(), padded("02 80 00 08"));
        let r = ReadFromMMRRequest::new(0x80_3834, 2).unwrap();
        assert_eq!(r.encode().to_vec(), padded("01 80 38 34"));
        // pyDE1's block 0x803808 … 0x803860: 23 words.
        let r = ReadFromMMRRequest::block(0x80_3808, 0x80_3860).unwrap();
        assert_eq!(r.words(), 23);
        assert_eq!(r.response_count(), 6);
        assert_eq!(r.encode().to_vec(), padded("16 80 38 08"));
        assert_eq!(ReadFromMMRRequest::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn request_limits() {
        assert!(ReadFromMMRRequest::new(0x80_0000, 0).is_err());
        assert!(ReadFromMMRRequest::new(0x80_0000, 257).is_err());
        assert!(ReadFromMMRRequest::new(0x100_0000, 1).is_err());
        assert!(ReadFromMMRRequest::new(0xFF_FFFC, 1).is_ok());
        assert!(ReadFromMMRRequest::new(0xFF_FFFC, 2).is_err());
        let max = ReadFromMMRRequest::new(0, 256).unwrap();
        assert_eq!(max.byte_len(), 1024);
        assert_eq!(max.encode()[0], 0xFF);
        assert!(ReadFromMMRRequest::decode(&[0, 0x80, 0]).is_err());
    }

    #[test]
    fn de1app_response_vector() {
        let bytes = hex_bytes("0C 80 00 08 14 05 00 00 03 00 00 00 71 04 00 00 00 00 00 00");
        let r = ReadFromMMRResponse::decode(&bytes).unwrap();
        assert_eq!(r.address(), 0x80_0008);
        assert_eq!(r.data().len(), 12);
        let words: Vec<_> = r.words().map(|(a, w)| (a, u32::from_le_bytes(w))).collect();
        assert_eq!(
            words,
            [(0x80_0008, 1300), (0x80_000C, 3), (0x80_0010, 1137)]
        );
        assert_eq!(r.encode().to_vec(), bytes);
        let j = r.to_json();
        assert_eq!(j["words"][2]["register"], "CPU_FIRMWARE_BUILD");
    }

    #[test]
    fn a_request_is_not_a_response() {
        // The 23-word request as a GATT read would return it.
        let req = ReadFromMMRRequest::new(0x80_3808, 23).unwrap().encode();
        assert!(matches!(
            ReadFromMMRResponse::decode(&req),
            Err(DecodeError::InvalidValue { field: "Len", .. })
        ));
        assert!(ReadFromMMRResponse::decode(&req[..19]).is_err());
    }
}
