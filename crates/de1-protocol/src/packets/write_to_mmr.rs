//! WriteToMMR (A006) — a register write or a firmware chunk, ≤ 20 bytes.
//!
//! | Off | Size | Field   | Encoding                                        |
//! |-----|------|---------|-------------------------------------------------|
//! | 0   | 1    | Len     | number of data bytes, 1 … 16 (registers: 4)     |
//! | 1   | 3    | Address | U24 BE (0x80xxxx registers, 0x00xxxx flash)     |
//! | 4   | ≤16  | Data    | value bytes (registers little-endian), zero-padded |
//!
//! Three forms exist for the last, short firmware chunk of `n` bytes (de1-firmware.md
//! §3.2): pyDE1 sends `Len = n` padded to 20 bytes, reaprime `Len = n` unpadded
//! (4 + n bytes), de1app `Len = 16` unpadded. The decoder accepts all three: the data
//! is the first `Len` bytes after the header, or all of them when the packet is shorter.
//! [`WriteToMMR::encode`] produces the pyDE1 form.

use serde_json::{json, Value};

use super::serialize_via_json;
use crate::mmr::{MmrError, MAX_ADDRESS};
use crate::DecodeError;

const NAME: &str = "WriteToMMR";
/// Largest packet.
pub const MAX_LEN: usize = 20;
/// Most data bytes one write carries.
pub const MAX_DATA: usize = 16;

/// One MMR write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteToMMR {
    address: u32,
    len: u8,
    data: [u8; MAX_DATA],
}

impl WriteToMMR {
    /// Write `data` (1 … 16 bytes) at `address` (≤ 0xFFFFFF).
    pub fn new(address: u32, data: &[u8]) -> Result<Self, MmrError> {
        if data.is_empty() || data.len() > MAX_DATA {
            return Err(MmrError::DataLength(data.len()));
        }
        if address > MAX_ADDRESS {
            return Err(MmrError::AddressOutOfRange(address));
        }
        let mut buf = [0u8; MAX_DATA];
        buf[..data.len()].copy_from_slice(data);
        Ok(Self {
            address,
            len: data.len() as u8,
            data: buf,
        })
    }

    /// Write a 32-bit register value (little-endian, `Len = 4`).
    pub fn register(address: u32, value: u32) -> Result<Self, MmrError> {
        Self::new(address, &value.to_le_bytes())
    }

    /// A firmware-file chunk (≤ 16 bytes) at byte `offset` of the flash region.
    pub fn firmware_chunk(offset: u32, chunk: &[u8]) -> Result<Self, MmrError> {
        Self::new(offset, chunk)
    }

    pub const fn address(&self) -> u32 {
        self.address
    }

    /// The data bytes written.
    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The register value, when this is a 4-byte write.
    pub fn register_value(&self) -> Option<u32> {
        let d = self.data();
        (d.len() == 4).then(|| u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
    }

    /// True for writes into the 0x80xxxx register space (others go to flash).
    pub const fn is_register_space(&self) -> bool {
        self.address >> 16 == 0x80
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 5 || bytes.len() > MAX_LEN {
            return Err(DecodeError::LengthRange {
                packet: NAME,
                min: 5,
                max: MAX_LEN,
                actual: bytes.len(),
            });
        }
        let declared = usize::from(bytes[0]);
        if declared == 0 || declared > MAX_DATA {
            return Err(DecodeError::InvalidValue {
                packet: NAME,
                field: "Len",
                value: u32::from(bytes[0]),
            });
        }
        let payload = &bytes[4..];
        let data = &payload[..declared.min(payload.len())];
        let mut buf = [0u8; MAX_DATA];
        buf[..data.len()].copy_from_slice(data);
        Ok(Self {
            address: u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]]),
            len: data.len() as u8,
            data: buf,
        })
    }

    /// The 20-byte packet: `Len` = data length, data zero-padded (pyDE1 form).
    pub fn encode(&self) -> [u8; MAX_LEN] {
        let a = self.address.to_be_bytes();
        let mut out = [0u8; MAX_LEN];
        out[0] = self.len;
        out[1..4].copy_from_slice(&a[1..4]);
        out[4..].copy_from_slice(&self.data);
        out
    }

    /// The packet without padding, `4 + Len` bytes (reaprime's form).
    pub fn encode_unpadded(&self) -> Vec<u8> {
        self.encode()[..4 + usize::from(self.len)].to_vec()
    }

    pub fn to_json(&self) -> Value {
        let register = crate::mmr::MmrRegister::lookup_by_address(self.address);
        let decoded = register
            .filter(|_| self.len == 4)
            .and_then(|r| r.decode_value(self.data()).ok())
            .map(|v| v.to_json());
        json!({
            "address": format!("{:06x}", self.address),
            "length": self.len,
            "data": hex::encode(self.data()),
            "register": register.map(|r| r.name()),
            "value": decoded,
        })
    }
}

serialize_via_json!(WriteToMMR);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packets::hex_bytes;

    fn padded(head: &str) -> Vec<u8> {
        let mut v = hex_bytes(head);
        v.resize(MAX_LEN, 0);
        v
    }

    #[test]
    fn register_writes() {
        let w = WriteToMMR::register(0x80_3808, 40).unwrap();
        assert_eq!(w.encode().to_vec(), padded("04 80 38 08 28 00 00 00"));
        let w = WriteToMMR::register(0x80_3844, 850).unwrap();
        assert_eq!(w.encode().to_vec(), padded("04 80 38 44 52 03 00 00"));
        assert_eq!(w.register_value(), Some(850));
        assert!(w.is_register_space());
        assert_eq!(WriteToMMR::decode(&w.encode()).unwrap(), w);
        assert_eq!(w.to_json()["register"], "FLUSH_TEMP");
    }

    #[test]
    fn firmware_chunk_forms() {
        let full = WriteToMMR::firmware_chunk(0x1230, &[0xAB; 16]).unwrap();
        assert_eq!(&full.encode()[..4], &hex_bytes("10 00 12 30")[..]);
        assert!(!full.is_register_space());

        let tail = [1u8, 2, 3, 4, 5];
        let py = WriteToMMR::firmware_chunk(0x01_ABC0, &tail).unwrap();
        assert_eq!(py.encode().to_vec(), padded("05 01 AB C0 01 02 03 04 05"));
        // reaprime: Len = n, no padding.
        let reaprime = hex_bytes("05 01 AB C0 01 02 03 04 05");
        assert_eq!(py.encode_unpadded(), reaprime);
        assert_eq!(WriteToMMR::decode(&reaprime).unwrap(), py);
        // de1app: Len = 16 but only n bytes follow.
        let de1app = hex_bytes("10 01 AB C0 01 02 03 04 05");
        assert_eq!(WriteToMMR::decode(&de1app).unwrap().data(), &tail);
        // pyDE1 padded form.
        assert_eq!(WriteToMMR::decode(&py.encode()).unwrap().data(), &tail);
    }

    #[test]
    fn limits() {
        assert!(WriteToMMR::new(0x80_0000, &[]).is_err());
        assert!(WriteToMMR::new(0x80_0000, &[0; 17]).is_err());
        assert!(WriteToMMR::new(0x100_0000, &[0; 4]).is_err());
        assert!(WriteToMMR::decode(&padded("11 80 38 08")).is_err());
        assert!(WriteToMMR::decode(&padded("00 80 38 08")).is_err());
        assert!(WriteToMMR::decode(&hex_bytes("04 80 38 08")).is_err());
        assert!(WriteToMMR::decode(&[4u8; 21]).is_err());
    }
}
