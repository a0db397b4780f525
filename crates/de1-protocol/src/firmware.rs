//! DE1 firmware files (`bootfwupdate.dat`) and the data of an upload (de1-firmware.md).
//!
//! A file is a 64-byte **little-endian** header followed by the encrypted image. The
//! upload, as data (the I/O, pacing and timeouts belong to the caller, de1-firmware.md
//! §3.3):
//!
//! 1. [`FirmwareImage::parse`] — refuse the file unless every check below passes;
//! 2. [`erase_request`] on FWMapRequest, then wait until a notification no longer
//!    reports an erase in progress (and at least 10 s have passed);
//! 3. every [`FirmwareChunk`] of [`FirmwareImage::chunks`] — the whole file, header
//!    included, 16 bytes at a time at flash addresses 0x000000, 0x000010, … — as a
//!    WriteToMMR ([`FirmwareChunk::to_write`]), each acknowledged before the next;
//! 4. [`verify_request`], and read the answer with [`VerifyOutcome::from_notification`]:
//!    only [`VerifyOutcome::Verified`] is success.
//!
//! [`FirmwareImage::parse`] runs every check that can be made without the machine,
//! so that a file that fails any of them never causes an erase (de1-firmware.md §4):
//!
//! | Check | Source |
//! |---|---|
//! | at least the 64-byte header | file format |
//! | BoardMarker = 0xDE100001 | header comment; pyDE1 checks it |
//! | ByteCount > 0 and ≤ the bytes after the header (padding allowed) | header comment; spec §1.2 |
//! | CPUBytes ≤ ByteCount | header comment ("the first CPUBytes of the image are for the CPU"); **unverified** on real files |
//! | Version ≥ 1000 (a plausible build number) | spec §1.2 |
//! | file ≤ 16 MiB, so every chunk address fits WriteToMMR's 24-bit address | packet format |
//!
//! **Unverified** (spec §1.1): which checksum algorithm CheckSum / HSum use. pyDE1
//! tried zlib CRC-32 without recording a result and no other app checks them, so the
//! CRC-32 comparison is reported by [`FirmwareImage::crc32_report`] and enforced only
//! when asked for ([`FirmwareValidation::require_crc32`]). DCSum (over the decrypted
//! image) cannot be checked without the key. The machine's own verify step
//! (FirstError = 0xFFFFFD) is the authoritative check after the upload.

use std::fmt;

use crate::mmr::MmrError;
use crate::packets::fw_map_request::FWMapRequest;
use crate::packets::write_to_mmr::WriteToMMR;

/// Size of the file header.
pub const HEADER_LEN: usize = 64;
/// BoardMarker of a DE1 firmware file (file bytes `01 00 10 DE`).
pub const BOARD_MARKER: u32 = 0xDE10_0001;
/// Bytes of file data per WriteToMMR chunk.
pub const CHUNK_LEN: usize = 16;
/// Largest file whose chunk addresses all fit WriteToMMR's 24-bit address.
pub const MAX_FILE_LEN: usize = 1 << 24;
/// Lowest plausible firmware build number (spec §1.2; shipped builds are 1100 …).
pub const MIN_PLAUSIBLE_VERSION: u32 = 1000;

/// The 64-byte header, fields in file order (all little-endian u32 except the IV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirmwareHeader {
    /// Checksum of the encrypted remainder of the file (algorithm unverified).
    pub checksum: u32,
    /// Must be [`BOARD_MARKER`].
    pub board_marker: u32,
    /// Firmware build number; compare with MMR 0x800010 (CPU_FIRMWARE_BUILD).
    pub version: u32,
    /// Bytes in the image body, ignoring padding.
    pub byte_count: u32,
    /// The first `cpu_bytes` of the image are for the CPU, the rest for the BLE module.
    pub cpu_bytes: u32,
    /// Reserved, always 0 so far (not enforced: a future format may use it).
    pub unused: u32,
    /// Checksum of the decrypted image (cannot be checked here).
    pub dc_sum: u32,
    /// Initialisation vector for decryption.
    pub iv: [u8; 32],
    /// Checksum of the header's first 60 bytes (algorithm unverified).
    pub header_sum: u32,
}

impl FirmwareHeader {
    /// Read the header fields from the first 64 bytes; `None` if there are fewer.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut iv = [0u8; 32];
        iv.copy_from_slice(&h[28..60]);
        Some(Self {
            checksum: word(0),
            board_marker: word(4),
            version: word(8),
            byte_count: word(12),
            cpu_bytes: word(16),
            unused: word(20),
            dc_sum: word(24),
            iv,
            header_sum: word(60),
        })
    }

    /// The 64 header bytes (little-endian), the inverse of [`FirmwareHeader::read`].
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let words = [
            self.checksum,
            self.board_marker,
            self.version,
            self.byte_count,
            self.cpu_bytes,
            self.unused,
            self.dc_sum,
        ];
        for (i, w) in words.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        out[28..60].copy_from_slice(&self.iv);
        out[60..64].copy_from_slice(&self.header_sum.to_le_bytes());
        out
    }
}

/// Why a firmware file was refused. Nothing has been sent to the machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    #[error("firmware file is {len} bytes, shorter than its {HEADER_LEN}-byte header")]
    TooShort { len: usize },
    #[error(
        "firmware board marker is {found:#010x}, expected {BOARD_MARKER:#010x}: not a DE1 firmware file"
    )]
    BadBoardMarker { found: u32 },
    #[error("firmware header gives an image of 0 bytes")]
    EmptyImage,
    #[error(
        "firmware file is truncated: the header gives {byte_count} image bytes but only {available} follow it"
    )]
    Truncated { byte_count: u32, available: usize },
    #[error("firmware header gives {cpu_bytes} CPU bytes, more than the {byte_count}-byte image")]
    CpuBytesExceedImage { cpu_bytes: u32, byte_count: u32 },
    #[error("firmware version {version} is not a plausible build number (expected ≥ {MIN_PLAUSIBLE_VERSION})")]
    ImplausibleVersion { version: u32 },
    #[error(
        "firmware file is {len} bytes, more than the {max} bytes a 24-bit flash address reaches"
    )]
    TooLarge { len: usize, max: usize },
    #[error("firmware {field} is {stored:#010x} but the CRC-32 of its data is {computed:#010x}")]
    ChecksumMismatch {
        field: &'static str,
        stored: u32,
        computed: u32,
    },
}

/// Optional checks beyond the ones [`FirmwareImage::parse`] always makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FirmwareValidation {
    /// Require HSum = CRC-32(header bytes 0 … 59) and CheckSum = CRC-32(bytes after the
    /// header). **Unverified** algorithm (de1-firmware.md §1.1): enabling this may
    /// refuse genuine files.
    pub require_crc32: bool,
}

/// A firmware file that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    /// The parsed header.
    pub header: FirmwareHeader,
    /// The whole file (header included): this is what is uploaded.
    file: Vec<u8>,
}

/// How a file's version relates to the machine's installed build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionComparison {
    Upgrade,
    Same,
    Downgrade,
}

/// Stored and computed CRC-32 values (see [`FirmwareImage::crc32_report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Crc32Report {
    /// Header HSum.
    pub header_stored: u32,
    /// CRC-32 of header bytes 0 … 59.
    pub header_computed: u32,
    /// Header CheckSum.
    pub body_stored: u32,
    /// CRC-32 of every byte after the header (padding included, as pyDE1 computed it).
    pub body_computed: u32,
}

impl Crc32Report {
    pub fn header_matches(&self) -> bool {
        self.header_stored == self.header_computed
    }
    pub fn body_matches(&self) -> bool {
        self.body_stored == self.body_computed
    }
}

impl FirmwareImage {
    /// Parse and validate a firmware file with the default checks.
    pub fn parse(file: impl Into<Vec<u8>>) -> Result<Self, FirmwareError> {
        Self::parse_with(file, FirmwareValidation::default())
    }

    /// Parse and validate a firmware file, with optional extra checks.
    pub fn parse_with(
        file: impl Into<Vec<u8>>,
        validation: FirmwareValidation,
    ) -> Result<Self, FirmwareError> {
        let file = file.into();
        let len = file.len();
        let header = FirmwareHeader::read(&file).ok_or(FirmwareError::TooShort { len })?;
        if header.board_marker != BOARD_MARKER {
            return Err(FirmwareError::BadBoardMarker {
                found: header.board_marker,
            });
        }
        if len > MAX_FILE_LEN {
            return Err(FirmwareError::TooLarge {
                len,
                max: MAX_FILE_LEN,
            });
        }
        if header.byte_count == 0 {
            return Err(FirmwareError::EmptyImage);
        }
        let available = len - HEADER_LEN;
        if u64::from(header.byte_count) > available as u64 {
            return Err(FirmwareError::Truncated {
                byte_count: header.byte_count,
                available,
            });
        }
        // Unverified on real files, but implied by the header's own description.
        if header.cpu_bytes > header.byte_count {
            return Err(FirmwareError::CpuBytesExceedImage {
                cpu_bytes: header.cpu_bytes,
                byte_count: header.byte_count,
            });
        }
        if header.version < MIN_PLAUSIBLE_VERSION {
            return Err(FirmwareError::ImplausibleVersion {
                version: header.version,
            });
        }
        let image = Self { header, file };
        if validation.require_crc32 {
            let r = image.crc32_report();
            if !r.header_matches() {
                return Err(FirmwareError::ChecksumMismatch {
                    field: "HSum",
                    stored: r.header_stored,
                    computed: r.header_computed,
                });
            }
            if !r.body_matches() {
                return Err(FirmwareError::ChecksumMismatch {
                    field: "CheckSum",
                    stored: r.body_stored,
                    computed: r.body_computed,
                });
            }
        }
        Ok(image)
    }

    /// Firmware build number of this file.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The whole file, header included (what is uploaded).
    pub fn file(&self) -> &[u8] {
        &self.file
    }

    /// The image body: `ByteCount` bytes after the header, without padding.
    pub fn payload(&self) -> &[u8] {
        // Validation guarantees HEADER_LEN + byte_count ≤ file length.
        let end = HEADER_LEN + self.header.byte_count as usize;
        &self.file[HEADER_LEN..end]
    }

    /// Bytes after the header beyond `ByteCount`.
    pub fn padding_len(&self) -> usize {
        self.file.len() - HEADER_LEN - self.header.byte_count as usize
    }

    /// Whether the file is a whole number of 16-byte chunks. When it is, every app's
    /// final-chunk form (padded or short) is the same; which form the firmware expects
    /// otherwise is unverified (de1-firmware.md §3.2).
    pub fn is_chunk_aligned(&self) -> bool {
        self.chunk_count() * CHUNK_LEN == self.file.len()
    }

    /// Compare with the machine's installed build (MMR 0x800010).
    pub fn compare_with_installed(&self, installed_build: u32) -> VersionComparison {
        match self.header.version.cmp(&installed_build) {
            std::cmp::Ordering::Greater => VersionComparison::Upgrade,
            std::cmp::Ordering::Equal => VersionComparison::Same,
            std::cmp::Ordering::Less => VersionComparison::Downgrade,
        }
    }

    /// CRC-32 (zlib) of the header and body next to the stored HSum / CheckSum. Whether
    /// the firmware uses this algorithm is **unverified**; a mismatch is information,
    /// not proof of a bad file.
    pub fn crc32_report(&self) -> Crc32Report {
        Crc32Report {
            header_stored: self.header.header_sum,
            header_computed: crc32(&self.file[..60]),
            body_stored: self.header.checksum,
            body_computed: crc32(&self.file[HEADER_LEN..]),
        }
    }

    /// Number of 16-byte chunks the upload writes.
    pub fn chunk_count(&self) -> usize {
        self.file.len().div_ceil(CHUNK_LEN)
    }

    /// The upload as WriteToMMR-style chunks, in the only order they may be written.
    pub fn chunks(&self) -> FirmwareChunks<'_> {
        FirmwareChunks {
            file: &self.file,
            offset: 0,
        }
    }
}

/// 16 bytes of the file and the flash address they go to (the file offset).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirmwareChunk {
    /// Flash address = byte offset in the file (24-bit; the high byte is always 0).
    pub address: u32,
    /// Number of file bytes in `data` (16 except possibly for the last chunk). pyDE1
    /// and reaprime put this in WriteToMMR's Len byte; de1app always writes 16.
    pub len: u8,
    /// The file bytes, zero-padded to 16 as pyDE1 sends them.
    pub data: [u8; CHUNK_LEN],
}

impl FirmwareChunk {
    /// Just the file bytes of this chunk (without padding).
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The WriteToMMR packet for this chunk (pyDE1's form: `Len` = bytes in the chunk,
    /// data zero-padded). Chunks of a validated image always fit; the `Result` is that
    /// of [`WriteToMMR::firmware_chunk`].
    pub fn to_write(&self) -> Result<WriteToMMR, MmrError> {
        WriteToMMR::firmware_chunk(self.address, self.bytes())
    }
}

impl fmt::Debug for FirmwareChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FirmwareChunk {{ address: {:#08x}, len: {}, data: {} }}",
            self.address,
            self.len,
            hex::encode(self.bytes())
        )
    }
}

/// Iterator over [`FirmwareChunk`]s, see [`FirmwareImage::chunks`].
#[derive(Debug, Clone)]
pub struct FirmwareChunks<'a> {
    file: &'a [u8],
    offset: usize,
}

impl Iterator for FirmwareChunks<'_> {
    type Item = FirmwareChunk;

    fn next(&mut self) -> Option<FirmwareChunk> {
        let rest = self.file.get(self.offset..).filter(|r| !r.is_empty())?;
        let n = rest.len().min(CHUNK_LEN);
        let mut data = [0u8; CHUNK_LEN];
        data[..n].copy_from_slice(&rest[..n]);
        let chunk = FirmwareChunk {
            // The file is at most MAX_FILE_LEN (2^24) bytes, so this fits in 24 bits.
            address: self.offset as u32,
            len: n as u8,
            data,
        };
        self.offset += n;
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self
            .file
            .len()
            .saturating_sub(self.offset)
            .div_ceil(CHUNK_LEN);
        (left, Some(left))
    }
}

impl ExactSizeIterator for FirmwareChunks<'_> {}

/// The firmware slot every app erases, writes and verifies.
pub const FIRMWARE_SLOT: u8 = 1;

/// The FWMapRequest that erases [`FIRMWARE_SLOT`] before the upload
/// (`00 00 01 01 00 00 00`; FirstError "ignore": never combine an erase with an error
/// search). Send it only for a [`FirmwareImage`] that passed validation.
pub const fn erase_request() -> FWMapRequest {
    FWMapRequest::erase(FIRMWARE_SLOT)
}

/// The FWMapRequest sent after the last chunk: report the first bad block
/// (`00 00 00 01 FF FF FF`).
pub const fn verify_request() -> FWMapRequest {
    FWMapRequest::verify(FIRMWARE_SLOT)
}

/// What the FWMapRequest notification answering [`verify_request`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifyOutcome {
    /// FirstError = 0xFFFFFD with no erase running: the whole image verified.
    Verified,
    /// FWToErase is still non-zero: the erase has not finished (nothing verified).
    StillErasing,
    /// The first block that needs repairing. Address 0 is ambiguous (it is also the
    /// echo of an erase request's "ignore") and, like every value but 0xFFFFFD, is a
    /// failure; the reliable recovery is a fresh erase and upload.
    BadBlock { address: u32 },
}

impl VerifyOutcome {
    pub fn from_notification(n: &FWMapRequest) -> Self {
        if n.is_erasing() {
            Self::StillErasing
        } else if n.is_verified() {
            Self::Verified
        } else {
            Self::BadBlock {
                address: n.first_error & 0xFF_FFFF,
            }
        }
    }
}

/// CRC-32 as zlib computes it (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic, internally consistent file: `body_len` body bytes of which
    /// `byte_count` are image, CRC-32 fields filled in.
    fn synthetic(version: u32, byte_count: u32, body_len: usize) -> Vec<u8> {
        let body: Vec<u8> = (0..body_len).map(|i| (i * 7 + 3) as u8).collect();
        let mut header = FirmwareHeader {
            checksum: crc32(&body),
            board_marker: BOARD_MARKER,
            version,
            byte_count,
            cpu_bytes: byte_count / 2,
            unused: 0,
            dc_sum: 0x1234_5678,
            iv: [0xA5; 32],
            header_sum: 0,
        };
        header.header_sum = crc32(&header.to_bytes()[..60]);
        let mut file = header.to_bytes().to_vec();
        file.extend_from_slice(&body);
        file
    }

    #[test]
    fn crc32_matches_zlib() {
        // zlib.crc32(b"123456789") == 0xCBF43926; crc32(b"") == 0.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn parses_a_valid_file_little_endian() {
        let file = synthetic(1333, 1000, 1008);
        assert_eq!(
            &file[4..8],
            &[0x01, 0x00, 0x10, 0xDE],
            "marker bytes on disk"
        );
        let img = FirmwareImage::parse_with(
            file.clone(),
            FirmwareValidation {
                require_crc32: true,
            },
        )
        .unwrap();
        assert_eq!(img.version(), 1333);
        assert_eq!(img.header.byte_count, 1000);
        assert_eq!(img.header.cpu_bytes, 500);
        assert_eq!(img.header.iv, [0xA5; 32]);
        assert_eq!(img.payload(), &file[64..1064]);
        assert_eq!(img.padding_len(), 8);
        assert_eq!(img.file(), &file[..]);
        assert!(img.is_chunk_aligned());
        assert!(img.crc32_report().header_matches());
        assert_eq!(img.compare_with_installed(1320), VersionComparison::Upgrade);
        assert_eq!(img.compare_with_installed(1333), VersionComparison::Same);
        assert_eq!(
            img.compare_with_installed(1352),
            VersionComparison::Downgrade
        );
        assert_eq!(
            FirmwareHeader::read(&file).unwrap().to_bytes()[..],
            file[..64]
        );
    }

    #[test]
    fn corrupted_checksum_is_refused_when_crc_is_required() {
        let mut file = synthetic(1333, 1000, 1008);
        file[100] ^= 0xFF;
        let strict = FirmwareValidation {
            require_crc32: true,
        };
        let e = FirmwareImage::parse_with(file.clone(), strict).unwrap_err();
        assert!(matches!(
            e,
            FirmwareError::ChecksumMismatch {
                field: "CheckSum",
                ..
            }
        ));
        assert!(e.to_string().contains("CheckSum"));
        // The default checks do not rely on the unverified algorithm, but report it.
        let img = FirmwareImage::parse(file).unwrap();
        assert!(!img.crc32_report().body_matches());

        let mut file = synthetic(1333, 1000, 1008);
        file[40] ^= 0x01; // inside the IV
        let e = FirmwareImage::parse_with(file, strict).unwrap_err();
        assert!(matches!(
            e,
            FirmwareError::ChecksumMismatch { field: "HSum", .. }
        ));
    }

    #[test]
    fn wrong_board_marker_is_refused() {
        let mut file = synthetic(1333, 1000, 1008);
        file[4..8].copy_from_slice(&BOARD_MARKER.to_be_bytes()); // wrong byte order
        let e = FirmwareImage::parse(file).unwrap_err();
        assert_eq!(e, FirmwareError::BadBoardMarker { found: 0x0100_10DE });
        assert_eq!(
            e.to_string(),
            "firmware board marker is 0x010010de, expected 0xde100001: not a DE1 firmware file"
        );
    }

    #[test]
    fn truncated_files_are_refused() {
        let file = synthetic(1333, 1000, 1008);
        let e = FirmwareImage::parse(file[..1000].to_vec()).unwrap_err();
        assert_eq!(
            e,
            FirmwareError::Truncated {
                byte_count: 1000,
                available: 936
            }
        );
        assert_eq!(
            FirmwareImage::parse(file[..63].to_vec()).unwrap_err(),
            FirmwareError::TooShort { len: 63 }
        );
        assert_eq!(
            FirmwareImage::parse(Vec::new()).unwrap_err(),
            FirmwareError::TooShort { len: 0 }
        );
    }

    #[test]
    fn oversized_and_inconsistent_headers_are_refused() {
        let big = synthetic(1333, 1000, MAX_FILE_LEN);
        assert_eq!(
            FirmwareImage::parse(big).unwrap_err(),
            FirmwareError::TooLarge {
                len: MAX_FILE_LEN + 64,
                max: MAX_FILE_LEN
            }
        );
        // ByteCount far beyond the file (e.g. a header read with the wrong byte order).
        let mut file = synthetic(1333, 1000, 1008);
        file[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            FirmwareImage::parse(file).unwrap_err(),
            FirmwareError::Truncated { .. }
        ));
        let mut file = synthetic(1333, 1000, 1008);
        file[16..20].copy_from_slice(&1001u32.to_le_bytes());
        assert!(matches!(
            FirmwareImage::parse(file).unwrap_err(),
            FirmwareError::CpuBytesExceedImage { .. }
        ));
        assert_eq!(
            FirmwareImage::parse(synthetic(1333, 0, 16)).unwrap_err(),
            FirmwareError::EmptyImage
        );
        assert_eq!(
            FirmwareImage::parse(synthetic(7, 16, 16)).unwrap_err(),
            FirmwareError::ImplausibleVersion { version: 7 }
        );
    }

    #[test]
    fn chunks_cover_the_whole_file_in_address_order() {
        let file = synthetic(1333, 1000, 1013); // 1077 bytes: last chunk has 5
        let img = FirmwareImage::parse(file.clone()).unwrap();
        let chunks: Vec<FirmwareChunk> = img.chunks().collect();
        assert_eq!(chunks.len(), img.chunk_count());
        assert_eq!(chunks.len(), 68);
        assert_eq!(img.chunks().len(), 68);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.address as usize, i * 16);
        }
        assert_eq!(chunks[0].bytes(), &file[..16], "first chunk is the header");
        let last = chunks[67];
        assert_eq!(last.address, 0x430);
        assert_eq!(last.len, 5);
        assert_eq!(last.bytes(), &file[1072..]);
        assert_eq!(&last.data[5..], &[0u8; 11], "zero-padded like pyDE1");
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.bytes().to_vec()).collect();
        assert_eq!(joined, file);
        assert!(!img.is_chunk_aligned());
    }

    #[test]
    fn erase_verify_and_outcomes() {
        assert_eq!(erase_request().encode(), [0, 0, 1, 1, 0, 0, 0]);
        assert_eq!(verify_request().encode(), [0, 0, 0, 1, 0xFF, 0xFF, 0xFF]);
        let answer = |bytes: [u8; 7]| {
            VerifyOutcome::from_notification(&FWMapRequest::decode(&bytes).unwrap())
        };
        assert_eq!(
            answer([0, 0, 0, 1, 0xFF, 0xFF, 0xFD]),
            VerifyOutcome::Verified
        );
        assert_eq!(
            answer([0, 0, 1, 1, 0xFF, 0xFF, 0xFD]),
            VerifyOutcome::StillErasing
        );
        assert_eq!(
            answer([0, 0, 0, 1, 0x01, 0xAB, 0xC0]),
            VerifyOutcome::BadBlock { address: 0x01_ABC0 }
        );
        assert_eq!(
            answer([0, 0, 0, 1, 0, 0, 0]),
            VerifyOutcome::BadBlock { address: 0 },
            "0 is never success"
        );
    }

    #[test]
    fn chunks_become_write_to_mmr_packets() {
        let img = FirmwareImage::parse(synthetic(1333, 1000, 1013)).unwrap();
        let writes: Vec<WriteToMMR> = img.chunks().map(|c| c.to_write().unwrap()).collect();
        assert_eq!(writes[1].address(), 0x10);
        assert!(
            !writes[1].is_register_space(),
            "firmware goes to flash, not registers"
        );
        assert_eq!(writes[67].data(), &img.file()[1072..]);
    }
}
