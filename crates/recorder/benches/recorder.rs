//! Figures for the shot history: database bytes per shot and the cost of recording.
//!
//! `cargo bench -p recorder` prints:
//!
//! * bytes added to the database by pyDE1's recorded shot (a stop-at-weight espresso,
//!   23 s from `sequence_start` to `sequence_complete`) and by synthetic 30 s espressos,
//!   measured on the file after a checkpoint;
//! * the caller's cost of `record()` (it only queues);
//! * the writer's cost per notification row, end to end (queue, SQLite insert, commits
//!   every 250 ms as in production), with `synchronous = FULL` and `NORMAL`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use ipc_schema::event::{Event, Gate, GateAction};
use recorder::{Recorder, RecorderOptions};
use rusqlite::Connection;

const WAIT: Duration = Duration::from_secs(60);

/// The file's size after folding the WAL into it.
fn checkpointed_size(path: &Path) -> u64 {
    let conn = Connection::open(path).expect("open");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
    drop(conn);
    std::fs::metadata(path).expect("size").len()
}

/// From `sequence_start` to `sequence_complete` of the first sequence started.
fn sequence_seconds(events: &[Event]) -> f64 {
    let set = |e: &Event, name: Gate| match e {
        Event::SequencerGateNotification(g) if g.name == name && g.action == GateAction::Set => {
            Some((g.sequence_id, g.stamp.event_time))
        }
        _ => None,
    };
    let Some((id, start)) = events.iter().find_map(|e| set(e, Gate::SequenceStart)) else {
        return 0.0;
    };
    events
        .iter()
        .filter_map(|e| set(e, Gate::SequenceComplete))
        .find(|(i, _)| *i == id)
        .map_or(0.0, |(_, end)| end - start)
}

/// Records `events`, letting the writer catch up now and then (the machine produces about
/// 15 notifications a second; the queue is sized for bursts, not for a whole day at once).
fn feed(rec: &Recorder, events: &[Event]) {
    for chunk in events.chunks(1000) {
        for e in chunk {
            rec.record(e);
        }
        assert!(rec.flush(WAIT));
    }
}

fn bytes_per_shot(label: &str, shots: &[Vec<Event>]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = RecorderOptions::new(dir.path().join("shots.sqlite3"));
    o.sync_full = false;
    drop(Recorder::open(o.clone()).expect("create"));
    let empty = checkpointed_size(&o.path);
    let rec = Recorder::open(o.clone()).expect("open");
    for shot in shots {
        feed(&rec, shot);
    }
    let status = rec.close(WAIT);
    assert_eq!(status.stats.dropped(), 0);
    let full = checkpointed_size(&o.path);
    let per_shot = (full - empty) as f64 / shots.len() as f64;
    let secs = sequence_seconds(&shots[0]);
    let rows = status.stats.rows_written as f64 / shots.len() as f64;
    println!(
        "{label}: {:.0} bytes per shot ({secs:.1} s sequence, {rows:.0} rows, {:.0} bytes/row; \
         {:.0} bytes per 30 s of sequence)",
        per_shot,
        per_shot / rows,
        per_shot / secs * 30.0
    );
}

fn write_cost(sync_full: bool, shots: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = RecorderOptions::new(dir.path().join("shots.sqlite3"));
    o.sync_full = sync_full;
    let rec = Recorder::open(o).expect("open");
    let events: Vec<Event> = (0..shots)
        .flat_map(|i| synthetic_espresso(1_790_000_000.0 + 100.0 * i as f64, 24.0, seq(i as u8)))
        .collect();

    // Throughput: rows inserted in large transactions.
    let began = Instant::now();
    feed(&rec, &events);
    let total = began.elapsed();
    let rows = rec.stats().rows_written as f64;
    let per_row = total.as_secs_f64() / rows;

    // A commit on its own: one notification, then wait until it is on disk.
    let one = &events[events.len() / 2];
    let n = 200;
    let began = Instant::now();
    for _ in 0..n {
        rec.record(one);
        assert!(rec.flush(WAIT));
    }
    let per_commit = began.elapsed().as_secs_f64() / f64::from(n) - per_row;

    // The caller's side.
    let began = Instant::now();
    for e in events.iter().take(2000) {
        rec.record(e);
    }
    let per_call = began.elapsed().as_secs_f64() / 2000.0;
    let status = rec.close(WAIT);
    assert_eq!(status.stats.dropped(), 0, "{status:?}");

    // In production a commit every 250 ms carries what arrived meanwhile: about 4.8 DE1
    // samples and 10 scale reports a second, i.e. 3.7 rows.
    let rows_per_commit = (4.8 + 10.0) * 0.25;
    println!(
        "synchronous={}: insert {:.1} µs/row ({} rows), commit {:.0} µs; as in production \
         (commit every 250 ms, {:.1} rows) {:.0} µs of writer time per row; record() {:.2} µs \
         per call",
        if sync_full { "FULL" } else { "NORMAL" },
        per_row * 1e6,
        rows,
        per_commit * 1e6,
        rows_per_commit,
        (per_row + per_commit / rows_per_commit) * 1e6,
        per_call * 1e6,
    );
}

fn main() {
    // `cargo test --benches` runs this too: keep that quick.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list");
    let pyde1: Vec<Event> = pyde1_shot().into_iter().map(|p| p.event).collect();
    if quick {
        bytes_per_shot("pyDE1's recorded shot", &[pyde1]);
        return;
    }
    bytes_per_shot("pyDE1's recorded shot", &[pyde1]);
    let synthetic: Vec<Vec<Event>> = (0..20)
        .map(|i| synthetic_espresso(1_790_000_000.0 + 100.0 * i as f64, 24.0, seq(i)))
        .collect();
    bytes_per_shot("synthetic 30 s espresso x20", &synthetic);
    write_cost(false, 50);
    write_cost(true, 50);
}
