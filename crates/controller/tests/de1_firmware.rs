//! Firmware upload against the simulated DE1.

mod common;

use std::time::Duration;

use controller::bus::{Delivery, Subscription};
use controller::de1::{De1Error, Mode};
use de1_protocol::characteristic::Characteristic;
use de1_sim::{make_firmware_file, SimDevice};
use ipc_schema::command::CommandErrorKind;
use ipc_schema::event::{Event, FirmwareUpload, FirmwareUploadState as F};

/// Every FirmwareUpload event until a final one (completed, failed, canceled).
async fn progress(sub: &mut Subscription, within: Duration) -> Vec<FirmwareUpload> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + within;
    loop {
        let d = tokio::time::timeout_at(end, sub.recv())
            .await
            .expect("a final firmware event in time");
        if let Delivery::Event(Event::FirmwareUpload(f)) = d {
            let last = matches!(f.state, F::Completed | F::Failed | F::Canceled);
            out.push(f);
            if last {
                return out;
            }
        }
    }
}

fn count_writes(c: &common::Connected, ch: Characteristic, high_byte: Option<u8>) -> usize {
    let uuid = ble::Uuid(ch.uuid());
    c.writes
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, b)| *u == uuid && high_byte.is_none_or(|h| b.get(1) == Some(&h)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_valid_file_is_erased_written_and_verified() {
    let (t, ctl) = common::sim(|cfg| cfg.timing.erase = Duration::from_secs(4));
    let c = common::connect(&t, common::options()).await;
    let mut sub = c.bus.subscribe();
    let file = make_firmware_file(1340, 20_000, 7);
    let total = file.len() as u32;
    let started = c.de1.start_firmware_upload(file).await.expect("start");
    assert_eq!(started.total, total);
    assert_eq!(started.version, 1340);
    // Nothing else may touch the registers meanwhile.
    assert_eq!(
        c.de1.request_mode(Mode::Wake).await,
        Err(De1Error::InProgress("firmware upload"))
    );
    assert_eq!(
        c.de1
            .start_firmware_upload(make_firmware_file(1340, 100, 1))
            .await,
        Err(De1Error::InProgress("firmware upload"))
    );

    let events = progress(&mut sub, Duration::from_secs(600)).await;
    assert_eq!(events.first().map(|e| e.state), Some(F::Starting));
    let last = events.last().expect("events");
    assert_eq!(
        (last.state, last.uploaded, last.total),
        (F::Completed, total, total)
    );
    // Progress at least every 1 %, never backwards.
    let uploading: Vec<u32> = events
        .iter()
        .filter(|e| e.state == F::Uploading)
        .map(|e| e.uploaded)
        .collect();
    assert_eq!(uploading.last(), Some(&total));
    let mut prev = 0;
    for u in &uploading {
        assert!(*u >= prev);
        assert!(u - prev <= total / 100 + 16, "{prev} → {u} of {total}");
        prev = *u;
    }
    // The machine was put to sleep first, holds the verified image, and the whole file
    // went out in 16-byte chunks to the flash region.
    let snap = ctl.snapshot();
    assert_eq!(snap.de1.pending_firmware_build, Some(1340));
    assert_eq!(
        count_writes(&c, Characteristic::WriteToMMR, Some(0x00)),
        (total as usize).div_ceil(16)
    );
    assert!(c.de1.watch_firmware_done().await);
    // Usable again afterwards.
    assert!(c.de1.request_mode(Mode::Wake).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_file_is_refused_before_any_erase() {
    let (t, ctl) = common::sim(|_| {});
    let c = common::connect(&t, common::options()).await;
    let good = make_firmware_file(1340, 2_000, 3);
    let mut bad_marker = good.clone();
    bad_marker[4] ^= 0xFF;
    let mut truncated = good.clone();
    truncated.truncate(1_000);
    for (what, file) in [
        ("marker", bad_marker),
        ("truncated", truncated),
        ("short", good[..40].to_vec()),
    ] {
        let e = c.de1.start_firmware_upload(file).await.expect_err(what);
        assert!(matches!(e, De1Error::Firmware(_)), "{what}: {e}");
        assert_eq!(e.kind(), CommandErrorKind::BadRequest);
    }
    assert_eq!(count_writes(&c, Characteristic::FWMapRequest, None), 0);
    assert_eq!(count_writes(&c, Characteristic::WriteToMMR, Some(0x00)), 0);
    assert!(!ctl.snapshot().de1.erasing);
}

#[tokio::test(start_paused = true)]
async fn an_upload_can_be_cancelled_halfway() {
    let (t, ctl) = common::sim(|cfg| cfg.timing.erase = Duration::from_secs(2));
    let c = common::connect(&t, common::options()).await;
    let mut sub = c.bus.subscribe();
    let file = make_firmware_file(1340, 8_000, 5);
    let total = file.len() as u32;
    assert_eq!(
        c.de1.cancel_firmware_upload(),
        Err(De1Error::NothingInProgress("firmware upload"))
    );
    c.de1.start_firmware_upload(file).await.expect("start");
    let mut progress_rx = c.de1.firmware_progress();
    progress_rx
        .wait_for(|p| p.as_ref().is_some_and(|p| p.uploaded >= total / 2))
        .await
        .expect("halfway");
    c.de1.cancel_firmware_upload().expect("cancel");
    let events = progress(&mut sub, Duration::from_secs(60)).await;
    let last = events.last().expect("events");
    assert_eq!((last.state, last.uploaded, last.total), (F::Canceled, 0, 0));
    let chunks = count_writes(&c, Characteristic::WriteToMMR, Some(0x00));
    assert!(
        chunks < (total as usize).div_ceil(16),
        "stopped early ({chunks})"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        count_writes(&c, Characteristic::WriteToMMR, Some(0x00)),
        chunks,
        "no more chunks"
    );
    assert_eq!(ctl.snapshot().de1.pending_firmware_build, None);
    assert_eq!(
        c.de1.cancel_firmware_upload(),
        Err(De1Error::NothingInProgress("firmware upload"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_or_a_silent_erase_ends_the_upload_with_a_clear_error() {
    let (t, ctl) = common::sim(|cfg| cfg.timing.erase = Duration::from_secs(2));
    let c = common::connect(&t, common::options()).await;
    let mut sub = c.bus.subscribe();
    c.de1
        .start_firmware_upload(make_firmware_file(1340, 4_000, 9))
        .await
        .expect("start");
    let mut rx = c.de1.firmware_progress();
    rx.wait_for(|p| p.as_ref().is_some_and(|p| p.uploaded >= 1024))
        .await
        .expect("uploading");
    ctl.drop_connection(SimDevice::De1);
    let events = progress(&mut sub, Duration::from_secs(60)).await;
    assert_eq!(events.last().map(|e| e.state), Some(F::Failed));
    let reason = rx
        .borrow()
        .as_ref()
        .and_then(|p| p.error.clone())
        .expect("reason");
    assert!(reason.contains("disconnected"), "{reason}");

    // A DE1 that never reports the end of the erase: the wait times out.
    let (t, ctl) = common::sim(|cfg| cfg.timing.erase = Duration::from_secs(2));
    let c = common::connect(&t, common::options()).await;
    let mut sub = c.bus.subscribe();
    c.de1
        .start_firmware_upload(make_firmware_file(1340, 4_000, 9))
        .await
        .expect("start");
    ctl.mute_notifications(SimDevice::De1, true);
    let events = progress(&mut sub, Duration::from_secs(120)).await;
    assert_eq!(events.last().map(|e| e.state), Some(F::Failed));
    let reason = c
        .de1
        .firmware_progress()
        .borrow()
        .as_ref()
        .and_then(|p| p.error.clone())
        .expect("reason");
    assert!(reason.contains("within"), "{reason}");
}

/// Figure for the notes: firmware upload throughput in the simulator (default 20 ms per
/// acknowledged write).
#[tokio::test(start_paused = true)]
async fn figure_firmware_throughput() {
    let (t, _ctl) = common::sim(|cfg| cfg.timing.erase = Duration::from_secs(10));
    let c = common::connect(&t, common::options()).await;
    let mut sub = c.bus.subscribe();
    let file = make_firmware_file(1340, 64 * 1024, 11);
    let total = file.len();
    let wall = std::time::Instant::now();
    c.de1.start_firmware_upload(file).await.expect("start");
    let events = progress(&mut sub, Duration::from_secs(3600)).await;
    let wall = wall.elapsed();
    let first = events
        .iter()
        .find(|e| e.state == F::Uploading)
        .map(|e| e.stamp.event_time)
        .expect("uploading");
    let last = events.last().expect("done");
    assert_eq!(last.state, F::Completed);
    let secs = last.stamp.event_time - first;
    println!(
        "FIGURE firmware upload: {total} bytes in {secs:.1} s simulated ({:.0} B/s at 20 ms per write); {:?} of CPU time",
        total as f64 / secs,
        wall
    );
    assert!(total as f64 / secs > 600.0 && (total as f64 / secs) < 800.0);
}
