//! The firmware slot in external flash and the update procedure (de1-firmware.md §2–3).
//!
//! * An erase request wipes the slot; it takes [`crate::TimingConfig::erase`], during
//!   which chunk writes are lost (flash not ready).
//! * Chunks are WriteToMMR writes at flash addresses 0x000000 upward; each is stored
//!   and its 16-byte blocks marked written.
//! * Verify reports `0xFFFFFD` when the slot holds a complete, intact image, otherwise
//!   the address of the first 16-byte block that needs repairing.
//! * A verified image becomes the running firmware only at the next power cycle; a
//!   failed upload leaves the old firmware running.
//!
//! What "intact" means on the real machine is not documented (the file is encrypted and
//! its checksum algorithm unverified). The simulator's rule: the image must parse as a
//! firmware file (`de1_protocol::firmware`) and its HSum / CheckSum must be the zlib
//! CRC-32 of its header / body. [`make_firmware_file`] builds such files for tests.

use de1_protocol::firmware::{
    crc32, FirmwareHeader, FirmwareImage, FirmwareValidation, BOARD_MARKER, CHUNK_LEN, HEADER_LEN,
};

/// FirstError value meaning "no errors".
pub const NO_ERRORS: u32 = 0xFF_FFFD;

/// Largest flash offset accepted (the 24-bit address space).
const FLASH_LEN: usize = 1 << 24;

#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareStore {
    running_build: u32,
    /// Build of a verified image waiting for a restart.
    pending_build: Option<u32>,
    /// The slot has been erased since the last restart (chunks can be written).
    erased: bool,
    /// Seconds left until the running erase completes.
    erasing_left: Option<f64>,
    image: Vec<u8>,
    written: Vec<bool>,
    /// Where a "report next" continues the error search.
    search_from: usize,
}

/// What the machine answers on FWMapRequest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Erase started (FWToErase still 1).
    EraseStarted,
    /// Erase finished (FWToErase back to 0).
    EraseDone,
    /// First block needing repair, or [`NO_ERRORS`].
    Verify(u32),
}

impl FirmwareStore {
    pub fn new(running_build: u32) -> Self {
        Self {
            running_build,
            pending_build: None,
            erased: false,
            erasing_left: None,
            image: Vec::new(),
            written: Vec::new(),
            search_from: 0,
        }
    }

    pub fn running_build(&self) -> u32 {
        self.running_build
    }

    pub fn pending_build(&self) -> Option<u32> {
        self.pending_build
    }

    pub fn is_erasing(&self) -> bool {
        self.erasing_left.is_some()
    }

    /// Start erasing the slot.
    pub fn erase(&mut self, seconds: f64) -> Answer {
        self.image.clear();
        self.written.clear();
        self.erased = false;
        self.pending_build = None;
        self.search_from = 0;
        self.erasing_left = Some(seconds.max(0.0));
        Answer::EraseStarted
    }

    /// Advance time; returns `EraseDone` once when the erase completes.
    pub fn tick(&mut self, dt: f64) -> Option<Answer> {
        let left = self.erasing_left.as_mut()?;
        *left -= dt;
        if *left <= 0.0 {
            self.erasing_left = None;
            self.erased = true;
            Some(Answer::EraseDone)
        } else {
            None
        }
    }

    /// Store a chunk written at flash `address`. Lost while erasing or before an erase.
    pub fn write_chunk(&mut self, address: u32, data: &[u8]) {
        if !self.erased || self.erasing_left.is_some() {
            log::debug!("firmware chunk at {address:#08x} lost: slot not erased");
            return;
        }
        let start = address as usize;
        let end = start + data.len();
        if end > FLASH_LEN {
            return;
        }
        if self.image.len() < end {
            self.image.resize(end, 0xFF);
        }
        self.image[start..end].copy_from_slice(data);
        let blocks = end.div_ceil(CHUNK_LEN);
        if self.written.len() < blocks {
            self.written.resize(blocks, false);
        }
        for b in start / CHUNK_LEN..blocks {
            self.written[b] = true;
        }
    }

    /// Bytes of the flash (what a mapped read would see).
    pub fn read(&self, address: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                self.image
                    .get(address as usize + i)
                    .copied()
                    .unwrap_or(0xFF)
            })
            .collect()
    }

    fn block_written(&self, block: usize) -> bool {
        self.written.get(block).copied().unwrap_or(false)
    }

    /// The first block at or after `from` that needs repairing, if any.
    fn first_error(&self, from: usize) -> Option<usize> {
        if !self.erased {
            return Some(0);
        }
        let header = FirmwareHeader::read(&self.image);
        let Some(header) = header.filter(|h| h.board_marker == BOARD_MARKER) else {
            // No valid header: nothing after it can be trusted either.
            return Some(from);
        };
        let declared_end = HEADER_LEN + header.byte_count as usize;
        let blocks = declared_end.div_ceil(CHUNK_LEN).max(self.written.len());
        if let Some(b) = (from..blocks).find(|&b| !self.block_written(b)) {
            return Some(b);
        }
        let end = self.written.len() * CHUNK_LEN;
        let image = self.image[..end.min(self.image.len())].to_vec();
        match FirmwareImage::parse_with(
            image,
            FirmwareValidation {
                require_crc32: true,
            },
        ) {
            Ok(_) => None,
            // A bad header shows in the header blocks; a bad body somewhere after it.
            Err(de1_protocol::firmware::FirmwareError::ChecksumMismatch {
                field: "HSum", ..
            }) => Some(from),
            Err(_) => Some((HEADER_LEN / CHUNK_LEN).max(from)),
        }
    }

    /// Verify: `first` = report first (reset the search), else report next.
    pub fn verify(&mut self, first: bool) -> Answer {
        if first {
            self.search_from = 0;
        }
        match self.first_error(self.search_from) {
            Some(block) => {
                self.search_from = block + 1;
                Answer::Verify((block * CHUNK_LEN) as u32)
            }
            None => {
                if first {
                    self.pending_build = FirmwareHeader::read(&self.image).map(|h| h.version);
                }
                Answer::Verify(NO_ERRORS)
            }
        }
    }

    /// A restart: a verified image becomes the running firmware. Returns the build now
    /// running.
    pub fn restart(&mut self) -> u32 {
        if let Some(b) = self.pending_build.take() {
            self.running_build = b;
        }
        self.erased = false;
        self.erasing_left = None;
        self.running_build
    }
}

/// A firmware file the simulated machine accepts: a valid header for build `version`
/// and `body_len` bytes of pseudo-random body derived from `seed`, with HSum and
/// CheckSum set to the CRC-32 the simulator checks. Its length is a multiple of 16.
pub fn make_firmware_file(version: u32, body_len: usize, seed: u64) -> Vec<u8> {
    let body_len = body_len.max(1);
    let padded = body_len.div_ceil(CHUNK_LEN) * CHUNK_LEN;
    let mut body = Vec::with_capacity(padded);
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for _ in 0..padded {
        // xorshift64*: deterministic filler.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        body.push((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
    }
    let mut header = FirmwareHeader {
        checksum: crc32(&body),
        board_marker: BOARD_MARKER,
        version,
        byte_count: body_len as u32,
        cpu_bytes: (body_len as u32) * 3 / 4,
        unused: 0,
        dc_sum: 0,
        iv: [0x5A; 32],
        header_sum: 0,
    };
    let bytes = header.to_bytes();
    header.header_sum = crc32(&bytes[..60]);
    let mut file = header.to_bytes().to_vec();
    file.extend_from_slice(&body);
    file
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(store: &mut FirmwareStore, file: &[u8]) {
        for (i, chunk) in file.chunks(CHUNK_LEN).enumerate() {
            store.write_chunk((i * CHUNK_LEN) as u32, chunk);
        }
    }

    fn erased(build: u32) -> FirmwareStore {
        let mut s = FirmwareStore::new(build);
        assert_eq!(s.erase(10.0), Answer::EraseStarted);
        let mut done = None;
        for _ in 0..1001 {
            if let Some(a) = s.tick(0.01) {
                done = Some(a);
                break;
            }
        }
        assert_eq!(done, Some(Answer::EraseDone));
        s
    }

    #[test]
    fn a_complete_upload_verifies_and_runs_after_restart() {
        let file = make_firmware_file(1352, 1000, 7);
        assert!(FirmwareImage::parse_with(
            file.clone(),
            FirmwareValidation {
                require_crc32: true
            }
        )
        .is_ok());
        let mut s = erased(1333);
        upload(&mut s, &file);
        assert_eq!(s.verify(true), Answer::Verify(NO_ERRORS));
        assert_eq!(s.running_build(), 1333);
        assert_eq!(s.restart(), 1352);
    }

    #[test]
    fn a_short_upload_reports_the_first_missing_block() {
        let file = make_firmware_file(1352, 1000, 7);
        let mut s = erased(1333);
        upload(&mut s, &file[..512]);
        assert_eq!(s.verify(true), Answer::Verify(512));
        assert_eq!(s.restart(), 1333);
    }

    #[test]
    fn a_skipped_chunk_is_found_and_report_next_moves_on() {
        let file = make_firmware_file(1352, 1000, 7);
        let mut s = erased(1333);
        for (i, chunk) in file.chunks(CHUNK_LEN).enumerate() {
            if i != 10 && i != 20 {
                s.write_chunk((i * CHUNK_LEN) as u32, chunk);
            }
        }
        assert_eq!(s.verify(true), Answer::Verify(160));
        assert_eq!(s.verify(false), Answer::Verify(320));
    }

    #[test]
    fn a_corrupted_chunk_fails_verify() {
        let mut file = make_firmware_file(1352, 1000, 7);
        file[700] ^= 0x01;
        let mut s = erased(1333);
        upload(&mut s, &file);
        assert_ne!(s.verify(true), Answer::Verify(NO_ERRORS));
        assert_eq!(s.restart(), 1333);
    }

    #[test]
    fn chunks_before_the_erase_completes_are_lost() {
        let file = make_firmware_file(1352, 64, 1);
        let mut s = FirmwareStore::new(1333);
        s.erase(10.0);
        upload(&mut s, &file);
        for _ in 0..1001 {
            s.tick(0.01);
        }
        assert_eq!(s.verify(true), Answer::Verify(0));
    }
}
