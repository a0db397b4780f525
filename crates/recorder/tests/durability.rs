//! Nothing lost: a killed process, a locked database, a full disk, a producer faster than
//! the disk, and the start-up checks of the file.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ipc_schema::event::*;
use recorder::history::{History, Page, SequenceFilter};
use recorder::{Recorder, SchemaError};
use rusqlite::Connection;

const WAIT: Duration = Duration::from_secs(10);
const CHILD_ENV: &str = "RECORDER_TEST_CHILD_DB";

/// Runs in the child process only: records a long shot forever, printing how many samples
/// are known to be committed, until the parent kills it.
#[test]
fn child_records_until_killed() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Not the child: nothing to do.
    };
    let mut o = recorder::RecorderOptions::new(&path);
    o.sync_full = false;
    let rec = Recorder::open(o).expect("open");
    let events = synthetic_espresso(1_790_000_000.0, 10_000.0, seq(7));
    // Samples the database holds: the 5 kept from before the start, then all.
    let (mut before, mut during, mut started) = (0, 0, false);
    for (i, e) in events.iter().enumerate() {
        rec.record(e);
        match e {
            Event::SequencerGateNotification(g) if g.name == Gate::SequenceStart => {
                started |= g.action == GateAction::Set;
            }
            Event::ShotSampleWithVolumesUpdate(_) if started => during += 1,
            Event::ShotSampleWithVolumesUpdate(_) => before += 1,
            _ => {}
        }
        let samples = during + before.min(5);
        if i % 200 == 199 {
            // Report only what is committed, then keep going without waiting.
            assert!(rec.flush(WAIT));
            println!("committed {samples}");
        }
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Never returns normally before the parent kills it.
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn kill_minus_9_in_the_middle_of_a_shot_keeps_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shots.sqlite3");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_records_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let mut committed = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("committed ") {
            committed = n.trim().parse().expect("count");
            if committed > 1500 {
                break;
            }
        }
    }
    // SIGKILL, mid-shot and mid-batch.
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(committed > 1500, "child reported {committed}");

    // The file is consistent and holds at least everything reported committed.
    let conn = Connection::open(&path).expect("reopen");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(check, "ok");
    drop(conn);
    let h = History::open(&path).expect("history");
    let list = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    assert_eq!(list.total, 1);
    let s = &list.sequences[0];
    assert!(
        s.shot_samples >= committed,
        "{} samples readable, {committed} were committed",
        s.shot_samples
    );
    assert_eq!(s.end_reason, None, "the sequence was cut, not ended");
    drop(h);

    // The next start marks it as interrupted and records on.
    let rec = Recorder::open(options(dir.path())).expect("reopen recorder");
    drop(rec);
    let h = History::open(&path).expect("history");
    let s = &h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list")
        .sequences[0];
    assert_eq!(s.end_reason.as_deref(), Some("interrupted"));
    assert!(s.shot_samples >= committed);
}

#[test]
fn a_locked_database_is_reported_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    // Someone else holds the write lock.
    let other = Connection::open(&opts.path).expect("other");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");

    let events = synthetic_espresso(1_790_000_000.0, 10.0, seq(1));
    let began = Instant::now();
    for e in &events {
        rec.record(e);
    }
    assert!(
        began.elapsed() < Duration::from_millis(200),
        "record() waited"
    );
    let deadline = Instant::now() + WAIT;
    while !rec.status().failing {
        assert!(Instant::now() < deadline, "failure not reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = rec.status();
    let err = status.last_error.expect("error");
    assert!(err.contains("locked") || err.contains("busy"), "{err}");
    assert!(status.pending > 0);
    assert!(
        !rec.flush(Duration::from_millis(500)),
        "nothing can be committed"
    );

    // The lock goes away: everything is written.
    other.execute_batch("ROLLBACK").expect("unlock");
    assert!(rec.flush(WAIT));
    let status = rec.close(WAIT);
    assert!(!status.failing);
    assert_eq!(status.stats.dropped(), 0);
    assert!(status.stats.commit_failures > 0);
    let h = History::open(&opts.path).expect("history");
    let list = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    assert_eq!(list.sequences[0].end_reason.as_deref(), Some("complete"));
    let in_sequence = count_samples(&events) - 8 + 5;
    assert_eq!(list.sequences[0].shot_samples as usize, in_sequence);
}

#[test]
fn a_full_disk_is_reported_and_recording_goes_on_afterwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path());
    drop(Recorder::open(opts.clone()).expect("create"));
    let empty: u64 = Connection::open(&opts.path)
        .expect("open")
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("pages");
    // Room for a short shot, not for a long one.
    opts.max_pages = Some(empty + 20);
    opts.max_backlog = 2_000;
    let rec = Recorder::open(opts.clone()).expect("open");
    let short = synthetic_espresso(1_790_000_000.0, 5.0, seq(1));
    for e in &short {
        rec.record(e);
    }
    assert!(rec.flush(WAIT), "{:?}", rec.status());

    let long = synthetic_espresso(1_790_001_000.0, 600.0, seq(2));
    let began = Instant::now();
    for e in &long {
        rec.record(e);
        std::thread::sleep(Duration::from_micros(20));
    }
    let feeding = began.elapsed();
    let deadline = Instant::now() + WAIT;
    while !rec.status().failing {
        assert!(Instant::now() < deadline, "failure not reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = rec.status();
    let err = status.last_error.clone().expect("error");
    assert!(err.contains("full"), "{err}");
    // Beyond the backlog, notifications are dropped and counted, not queued forever.
    let deadline = Instant::now() + WAIT;
    while rec.status().stats.dropped_backlog == 0 {
        assert!(
            Instant::now() < deadline,
            "backlog not bounded: {:?}",
            rec.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rec.status().pending <= 2_100);
    assert!(
        feeding < Duration::from_secs(5),
        "record() waited: {feeding:?}"
    );

    // What was committed before is intact and readable meanwhile.
    let h = History::open(&opts.path).expect("history");
    let s = h
        .get_sequence(&seq(1).to_string())
        .expect("get")
        .expect("first shot");
    assert_eq!(s["end_reason"], "complete");
    drop(h);
    drop(rec);
}

#[test]
fn a_fresh_file_starts_twice_and_older_files_are_upgraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    for _ in 0..2 {
        let rec = Recorder::open(opts.clone()).expect("start");
        record_all_and_close(rec, synthetic_espresso(1_790_000_000.0, 3.0, seq(3)));
    }
    let v: i64 = Connection::open(&opts.path)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, recorder::SCHEMA_VERSION);

    // A pyDE1 2.0.0 file (tables of schema 3, labelled 2) with a shot recorded by pyDE1.
    let old = dir.path().join("pyde1.sqlite3");
    {
        let conn = Connection::open(&old).expect("old");
        conn.execute_batch(PYDE1_2_0_0_FILE).expect("pyDE1 layout");
    }
    let mut o = options(dir.path());
    o.path = old.clone();
    let rec = Recorder::open(o).expect("upgrade");
    drop(rec);
    let backups: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".backup"))
        .collect();
    assert_eq!(backups.len(), 1);
    let h = History::open(&old).expect("history");
    let s = h
        .get_sequence("6f1c2a52-2b5e-4a3e-9d59-3c2d1bd1c7a0")
        .expect("get")
        .expect("pyDE1's shot");
    assert_eq!(s["end_reason"], "complete");
    assert_eq!(s["shot_samples"].as_array().map(Vec::len), Some(2));
    assert_eq!(s["shot_samples"][1]["volume_by_frames"][0], 4.1666);

    // A newer file is refused with a clear message and left as it was.
    let newer = dir.path().join("newer.sqlite3");
    Connection::open(&newer)
        .expect("newer")
        .execute_batch("CREATE TABLE x (y); PRAGMA user_version = 7;")
        .expect("newer");
    let mut o = options(dir.path());
    o.path = newer.clone();
    match Recorder::open(o) {
        Err(recorder::RecorderError::Schema(SchemaError::TooNew { found: 7, .. })) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn record_all_and_close(rec: Recorder, events: Vec<Event>) {
    for e in &events {
        rec.record(e);
    }
    let status = rec.close(WAIT);
    assert_eq!(status.stats.dropped(), 0);
}

/// A small file as pyDE1 2.0.0 leaves it: schema-3 tables, `user_version` 2 (its known
/// defect), seed rows and one recorded sequence.
const PYDE1_2_0_0_FILE: &str = r#"
PRAGMA journal_mode = WAL;
CREATE TABLE profile (id TEXT NOT NULL PRIMARY KEY, source BLOB NOT NULL, source_format TEXT NOT NULL, fingerprint TEXT NOT NULL, date_added REAL, title TEXT, author TEXT, notes TEXT, beverage_type TEXT);
CREATE TABLE persist_hkv (header TEXT, key TEXT NOT NULL, value TEXT);
CREATE UNIQUE INDEX idx_persist_hkv_hk ON persist_hkv(header, key);
CREATE TABLE sequence (id TEXT NOT NULL PRIMARY KEY, active_state TEXT, start_sequence REAL, start_flow REAL, end_flow REAL, end_sequence REAL, profile_id TEXT NOT NULL REFERENCES profile(id), profile_assumed INTEGER, resource_version TEXT, resource_de1_id TEXT, resource_de1_read_once TEXT, resource_de1_calibration_flow_multiplier TEXT, resource_de1_control_mode TEXT, resource_de1_control_tank_water_threshold TEXT, resource_de1_setting_before_flow TEXT, resource_de1_setting_steam TEXT, resource_de1_setting_target_group_temp TEXT, resource_scale_id TEXT);
CREATE TABLE shot_sample_with_volume_update (sequence_id TEXT NOT NULL REFERENCES sequence(id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, de1_time REAL, sample_time INTEGER, group_pressure REAL, group_flow REAL, mix_temp REAL, head_temp REAL, set_mix_temp REAL, set_head_temp REAL, set_group_pressure REAL, set_group_flow REAL, frame_number INTEGER, steam_temp REAL, volume_preinfuse REAL, volume_pour REAL, volume_total REAL, volume_by_frames TEXT);
CREATE TABLE weight_and_flow_update (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, scale_time REAL, current_weight REAL, current_weight_time REAL, average_flow REAL, average_flow_time REAL, median_weight REAL, median_weight_time REAL, median_flow REAL, median_flow_time REAL);
CREATE TABLE state_update (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, state TEXT, substate TEXT, previous_state TEXT, previous_substate TEXT, is_error_state TEXT);
CREATE TABLE sequencer_gate_notification (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, name TEXT, action TEXT, active_state TEXT);
CREATE TABLE stop_at_notification (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, stop_at TEXT, action TEXT, active_state TEXT, target_value REAL, current_value REAL);
CREATE TABLE water_level_update (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, level REAL, start_fill_level REAL);
CREATE TABLE scale_tare_seen (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL);
CREATE TABLE auto_tare_notification (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, action TEXT);
CREATE TABLE scale_button_press (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, button INTEGER);
CREATE TABLE connectivity_change (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, state TEXT, id TEXT, name TEXT);
CREATE TABLE device_availability (sequence_id TEXT NOT NULL REFERENCES sequence (id), version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, state TEXT, id TEXT, name TEXT, role TEXT);
CREATE TABLE scale_change (sequence_id TEXT, version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, state TEXT, id TEXT, name TEXT);
CREATE TABLE bluedot_update (sequence_id TEXT, version TEXT, sender TEXT, arrival_time REAL, create_time REAL, event_time REAL, temperature REAL, high_alarm REAL, units TEXT, alarm_byte INT, name TEXT);
INSERT INTO profile (id, source, source_format, fingerprint, date_added) VALUES ('dummy', 'dummy', 'dummy', 'dummy', 0);
INSERT INTO persist_hkv (header, key, value) VALUES ('last_profile', 'id', 'dummy');
INSERT INTO sequence (id, profile_id) VALUES ('dummy', 'dummy');
INSERT INTO sequence (id, active_state, start_sequence, start_flow, end_flow, end_sequence, profile_id, profile_assumed) VALUES ('6f1c2a52-2b5e-4a3e-9d59-3c2d1bd1c7a0', 'Espresso', 1700000000.0, 1700000002.0, 1700000030.0, 1700000033.0, 'dummy', 1);
INSERT INTO shot_sample_with_volume_update VALUES ('6f1c2a52-2b5e-4a3e-9d59-3c2d1bd1c7a0', '1.2.0', 'DE1', 1700000002.1, 1700000002.1, 1700000002.1, 1700000002.1, 100, 1.5, 2.0, 90.0, 91.0, 92.0, 92.0, 0.0, 4.0, 0, 150, 0, 0, 0, '[]');
INSERT INTO shot_sample_with_volume_update VALUES ('6f1c2a52-2b5e-4a3e-9d59-3c2d1bd1c7a0', '1.2.0', 'DE1', 1700000002.3, 1700000002.3, 1700000002.3, 1700000002.3, 125, 2.5, 2.0, 90.0, 91.0, 92.0, 92.0, 0.0, 4.0, 0, 150, 4.1666, 0, 4.1666, '[4.1666, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]');
INSERT INTO state_update VALUES ('6f1c2a52-2b5e-4a3e-9d59-3c2d1bd1c7a0', '1.0.0', 'DE1', 1700000001.0, 1700000001.0, 1700000001.0, 'Espresso', 'PreInfuse', 'Espresso', 'HeatWaterHeater', 0);
PRAGMA user_version = 2;
"#;
