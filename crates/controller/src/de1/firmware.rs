//! Firmware upload (de1-firmware.md §3.3, the "safe composite" procedure).
//!
//! 1. The file is fully validated (`FirmwareImage::parse`) before anything is sent; a
//!    refused file never causes an erase.
//! 2. The DE1 must be idle or asleep; an Idle DE1 is put to sleep first.
//! 3. Erase (FWMapRequest `00 00 01 01 00 00 00`), then wait until the DE1 reports the
//!    erase finished (FWToErase = 0) and at least [`FirmwareOptions::min_erase_wait`]
//!    passed; give up after [`FirmwareOptions::erase_timeout`].
//! 4. Every 16-byte chunk of the whole file, in order, as an acknowledged WriteToMMR.
//!    No other register traffic is allowed meanwhile ([`super::De1::ensure_writable`]).
//! 5. After [`FirmwareOptions::settle`], verify (`00 00 00 01 FF FF FF`); only
//!    FirstError = 0xFFFFFD is success.
//!
//! Progress is published as `FirmwareUpload` events: `starting`, `uploading` at least
//! every 1 % (and every 1024 bytes at most), then `completed`, `failed` or `canceled`.
//! The upload runs in the background; it can be cancelled at any time, and a timeout or
//! a dropped link ends it with a clear error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use de1_protocol::characteristic::Characteristic;
use de1_protocol::firmware::{FirmwareImage, VersionComparison};
use de1_protocol::packets::{FWMapRequest, WriteToMMR};
use de1_protocol::state::MachineState;
use ipc_schema::event::{Event, FirmwareUpload, FirmwareUploadState, Stamp};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{lock, De1, De1Error, LOG};

/// Timing of the upload procedure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirmwareOptions {
    /// Flash slot to write (all apps use 1).
    pub slot: u8,
    /// Put an idle DE1 to sleep before erasing (de1app, reaprime; recommended).
    pub sleep_first: bool,
    /// How long to wait for the DE1 to reach Sleep.
    pub sleep_wait: Duration,
    /// Shortest wait after the erase request (de1app and reaprime wait 10 s).
    pub min_erase_wait: Duration,
    /// Longest wait for the erase to finish.
    pub erase_timeout: Duration,
    /// Pause between the last chunk and the verify request (pyDE1: 1 s).
    pub settle: Duration,
    /// Longest wait for the verify answer.
    pub verify_timeout: Duration,
}

impl Default for FirmwareOptions {
    fn default() -> Self {
        FirmwareOptions {
            slot: 1,
            sleep_first: true,
            sleep_wait: Duration::from_secs(10),
            min_erase_wait: Duration::from_secs(10),
            erase_timeout: Duration::from_secs(30),
            settle: Duration::from_secs(1),
            verify_timeout: Duration::from_secs(10),
        }
    }
}

/// Where an upload is.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareProgress {
    pub state: FirmwareUploadState,
    /// File bytes acknowledged by the DE1.
    pub uploaded: u32,
    /// Bytes in the file.
    pub total: u32,
    /// Why it failed.
    pub error: Option<String>,
}

/// What [`De1::start_firmware_upload`] reports once the upload runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareStarted {
    /// Bytes to upload (the whole file).
    pub total: u32,
    /// Build number of the file.
    pub version: u32,
    /// The file against the installed build.
    pub comparison: Option<VersionComparison>,
}

/// The running upload of one connection.
pub(crate) struct FirmwareSlot {
    running: AtomicBool,
    cancel: Mutex<Option<oneshot::Sender<()>>>,
    progress: watch::Sender<Option<FirmwareProgress>>,
}

impl Default for FirmwareSlot {
    fn default() -> Self {
        FirmwareSlot {
            running: AtomicBool::new(false),
            cancel: Mutex::new(None),
            progress: watch::Sender::new(None),
        }
    }
}

impl FirmwareSlot {
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// Bytes between two `uploading` events: at most 1 % of the file, at most 1024 bytes
/// (pyDE1's step), at least one chunk.
pub fn progress_step(total: u32) -> u32 {
    (total / 100).clamp(16, 1024)
}

enum Outcome {
    Done,
    Failed(String),
}

impl De1 {
    /// Validates `file` and starts uploading it in the background.
    pub async fn start_firmware_upload(&self, file: Vec<u8>) -> Result<FirmwareStarted, De1Error> {
        // Validation first: nothing is sent for a file that fails it.
        let image = FirmwareImage::parse(file)?;
        self.ensure_writable()?;
        let state = self.state().ok_or(De1Error::NotReady)?;
        if !matches!(
            state.state,
            MachineState::Idle
                | MachineState::SchedIdle
                | MachineState::Sleep
                | MachineState::GoingToSleep
        ) {
            return Err(De1Error::Busy {
                what: "a firmware upload",
                state: state.state,
                substate: state.substate,
            });
        }
        let slot = &self.inner.firmware;
        if slot.running.swap(true, Ordering::SeqCst) {
            return Err(De1Error::InProgress("firmware upload"));
        }
        let total = u32::try_from(image.file().len()).unwrap_or(u32::MAX);
        let comparison = self
            .with_mirror(|m| m.firmware_build())
            .map(|b| image.compare_with_installed(b));
        log::info!(
            target: LOG,
            "firmware upload: build {} ({comparison:?}), {total} bytes",
            image.version()
        );
        let (cancel_tx, cancel_rx) = oneshot::channel();
        *lock(&slot.cancel) = Some(cancel_tx);
        self.firmware_event(FirmwareUploadState::Starting, 0, total, None);
        let version = image.version();
        let de1 = self.clone();
        tokio::spawn(async move { de1.run_firmware_upload(image, cancel_rx).await });
        Ok(FirmwareStarted {
            total,
            version,
            comparison,
        })
    }

    /// Cancels the running upload.
    pub fn cancel_firmware_upload(&self) -> Result<(), De1Error> {
        let cancel = lock(&self.inner.firmware.cancel).take();
        match cancel {
            Some(tx) if self.inner.firmware.is_running() => {
                log::warn!(target: LOG, "firmware upload: cancel requested");
                let _ = tx.send(());
                Ok(())
            }
            _ => Err(De1Error::NothingInProgress("firmware upload")),
        }
    }

    /// Waits until no upload runs; true if the last one completed.
    pub async fn watch_firmware_done(&self) -> bool {
        let mut rx = self.firmware_progress();
        let done = rx
            .wait_for(|p| {
                p.as_ref().is_none_or(|p| {
                    matches!(
                        p.state,
                        FirmwareUploadState::Completed
                            | FirmwareUploadState::Failed
                            | FirmwareUploadState::Canceled
                    )
                })
            })
            .await;
        let completed = matches!(done, Ok(p) if p.as_ref().is_some_and(|p| p.state == FirmwareUploadState::Completed));
        completed && !self.inner.firmware.is_running()
    }

    /// Follows the upload's progress (`None` before the first upload).
    pub fn firmware_progress(&self) -> watch::Receiver<Option<FirmwareProgress>> {
        self.inner.firmware.progress.subscribe()
    }

    fn firmware_event(
        &self,
        state: FirmwareUploadState,
        uploaded: u32,
        total: u32,
        error: Option<String>,
    ) {
        self.inner
            .firmware
            .progress
            .send_replace(Some(FirmwareProgress {
                state,
                uploaded,
                total,
                error,
            }));
        self.bus().publish(Event::FirmwareUpload(FirmwareUpload {
            stamp: Stamp::at(self.clock().now()),
            state,
            uploaded,
            total,
        }));
    }

    async fn run_firmware_upload(self, image: FirmwareImage, cancel: oneshot::Receiver<()>) {
        let total = u32::try_from(image.file().len()).unwrap_or(u32::MAX);
        let notes = self.take_fw_notes();
        let outcome = tokio::select! {
            o = self.firmware_procedure(&image, notes) => Some(o),
            r = cancel => match r {
                Ok(()) => None,
                // The sender is only dropped when taken by a cancel request.
                Err(_) => Some(Outcome::Failed("cancel handle lost".into())),
            },
        };
        self.release_fw_notes();
        let uploaded = self
            .inner
            .firmware
            .progress
            .borrow()
            .as_ref()
            .map_or(0, |p| p.uploaded);
        lock(&self.inner.firmware.cancel).take();
        match outcome {
            Some(Outcome::Done) => {
                log::info!(target: LOG, "firmware upload completed and verified; the DE1 runs the new build after its next restart");
                self.firmware_event(FirmwareUploadState::Completed, total, total, None);
            }
            Some(Outcome::Failed(reason)) => {
                log::error!(target: LOG, "firmware upload failed: {reason}");
                self.firmware_event(FirmwareUploadState::Failed, uploaded, total, Some(reason));
            }
            None => {
                log::warn!(target: LOG, "firmware upload canceled after {uploaded} of {total} bytes");
                // pyDE1 reports a cancel with zero counts.
                self.firmware_event(FirmwareUploadState::Canceled, 0, 0, None);
            }
        }
        self.inner.firmware.running.store(false, Ordering::SeqCst);
    }

    async fn firmware_procedure(
        &self,
        image: &FirmwareImage,
        mut notes: mpsc::UnboundedReceiver<FWMapRequest>,
    ) -> Outcome {
        let o = self.options().firmware;
        let total = u32::try_from(image.file().len()).unwrap_or(u32::MAX);

        // Sleep first.
        if o.sleep_first
            && self
                .state()
                .is_some_and(|s| matches!(s.state, MachineState::Idle | MachineState::SchedIdle))
        {
            if let Err(e) = self.write_requested_state(MachineState::Sleep).await {
                return Outcome::Failed(format!("cannot put the DE1 to sleep: {e}"));
            }
            let mut states = self.watch_state();
            let asleep = tokio::time::timeout(
                o.sleep_wait,
                states.wait_for(|s| s.is_some_and(|s| s.state == MachineState::Sleep)),
            )
            .await;
            if !matches!(asleep, Ok(Ok(_))) {
                return Outcome::Failed(format!(
                    "the DE1 did not go to sleep within {:?}",
                    o.sleep_wait
                ));
            }
        }

        // Erase.
        let erase_start = Instant::now();
        if let Err(e) = self
            .write(
                Characteristic::FWMapRequest,
                &FWMapRequest::erase(o.slot).encode(),
            )
            .await
        {
            return Outcome::Failed(format!("erase request: {e}"));
        }
        let deadline = erase_start + o.erase_timeout;
        loop {
            match tokio::time::timeout_at(deadline, notes.recv()).await {
                Ok(Some(n)) if !n.is_erasing() => break,
                Ok(Some(_)) => continue,
                Ok(None) => return Outcome::Failed("the DE1 disconnected during the erase".into()),
                Err(_) => {
                    return Outcome::Failed(format!(
                        "the erase did not finish within {:?}",
                        o.erase_timeout
                    ))
                }
            }
        }
        tokio::time::sleep_until(erase_start + o.min_erase_wait).await;
        log::info!(target: LOG, "firmware upload: erased in {:?}", erase_start.elapsed());

        // Chunks.
        self.firmware_event(FirmwareUploadState::Uploading, 0, total, None);
        let step = progress_step(total);
        let mut last_reported = 0u32;
        let started = Instant::now();
        for chunk in image.chunks() {
            let packet = match WriteToMMR::firmware_chunk(chunk.address, chunk.bytes()) {
                Ok(p) => p,
                Err(e) => return Outcome::Failed(format!("chunk at {:#08x}: {e}", chunk.address)),
            };
            if let Err(e) = self
                .write(Characteristic::WriteToMMR, &packet.encode())
                .await
            {
                return Outcome::Failed(if e.is_link_loss() {
                    format!(
                        "the DE1 disconnected at byte {} of {total}: {e}",
                        chunk.address
                    )
                } else {
                    format!("chunk at {:#08x}: {e}", chunk.address)
                });
            }
            let uploaded = chunk.address + u32::from(chunk.len);
            if uploaded - last_reported >= step || uploaded == total {
                last_reported = uploaded;
                self.firmware_event(FirmwareUploadState::Uploading, uploaded, total, None);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        if secs > 0.0 {
            log::info!(
                target: LOG,
                "firmware upload: {total} bytes in {secs:.1} s ({:.0} B/s)",
                f64::from(total) / secs
            );
        }

        // Verify.
        tokio::time::sleep(o.settle).await;
        while notes.try_recv().is_ok() {}
        if let Err(e) = self
            .write(
                Characteristic::FWMapRequest,
                &FWMapRequest::verify(o.slot).encode(),
            )
            .await
        {
            return Outcome::Failed(format!("verify request: {e}"));
        }
        let deadline = Instant::now() + o.verify_timeout;
        loop {
            match tokio::time::timeout_at(deadline, notes.recv()).await {
                Ok(Some(n)) if n.is_erasing() => continue,
                Ok(Some(n)) if n.is_verified() => return Outcome::Done,
                Ok(Some(n)) => {
                    return Outcome::Failed(format!(
                        "the DE1 reports the image bad from address {:#08x}",
                        n.first_error
                    ))
                }
                Ok(None) => return Outcome::Failed("the DE1 disconnected during verify".into()),
                Err(_) => {
                    return Outcome::Failed(format!(
                        "no verify answer within {:?}",
                        o.verify_timeout
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_reported_at_least_every_percent() {
        assert_eq!(progress_step(450_000), 1024);
        assert_eq!(progress_step(50_000), 500);
        assert_eq!(progress_step(64), 16);
        for total in [64u32, 1000, 4096, 50_000, 450_000] {
            assert!(progress_step(total) <= (total / 100).max(16));
        }
    }
}
