//! The recorder against pyDE1's own shot and synthetic ones: what is kept, the profile and
//! settings, the read API, the visualizer export, and replay byte for byte.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ipc_schema::event::*;
use recorder::history::{History, Page, SequenceFilter};
use recorder::replay::{self, ReplayOptions};
use recorder::rows::Table;
use recorder::{Recorder, SequenceContext};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn record_all(rec: &Recorder, events: impl IntoIterator<Item = Event>) {
    for e in events {
        rec.record(&e);
    }
    assert!(rec.flush(WAIT), "flush");
}

/// Rows the recorder must keep for the reference shot, per table, worked out from the
/// rules of pyde1-runtime.md §7.3: the last N of each class before `sequence_start` is
/// set (gates only of this sequence), then everything up to `sequence_complete`.
fn expected_counts(events: &[Event], id: SequenceId) -> BTreeMap<&'static str, usize> {
    let is_gate = |e: &Event, name: Gate| {
        matches!(e, Event::SequencerGateNotification(g)
            if g.sequence_id == id && g.name == name && g.action == GateAction::Set)
    };
    let start = events
        .iter()
        .position(|e| is_gate(e, Gate::SequenceStart))
        .expect("start");
    let end = events
        .iter()
        .position(|e| is_gate(e, Gate::SequenceComplete))
        .expect("complete");
    let mut out = BTreeMap::new();
    for table in Table::ALL {
        let of = |e: &&Event| Table::of(e) == Some(table);
        let before: Vec<&Event> = events[..start]
            .iter()
            .filter(of)
            .filter(|e| !matches!(e, Event::SequencerGateNotification(g) if g.sequence_id != id))
            .collect();
        // The history keeps the last N of the class, then drops other sequences' gates.
        let all_before: Vec<&Event> = events[..start].iter().filter(of).collect();
        let kept: Vec<&&Event> = all_before
            .iter()
            .rev()
            .take(table.history_len())
            .filter(|e| before.iter().any(|b| std::ptr::eq(*b, **e)))
            .collect();
        let during = events[start..=end].iter().filter(of).count();
        out.insert(table.json_key(), kept.len() + during);
    }
    out
}

fn counts(seq: &Value) -> BTreeMap<&'static str, usize> {
    Table::ALL
        .iter()
        .map(|t| {
            (
                t.json_key(),
                seq[t.json_key()].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

#[test]
fn the_pyde1_shot_is_recorded_completely() {
    let shot = pyde1_shot();
    let events: Vec<Event> = shot.iter().map(|p| p.event.clone()).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    record_all(&rec, events.clone());
    let status = rec.close(WAIT);
    assert_eq!(status.stats.dropped(), 0, "{status:?}");
    assert_eq!(status.stats.sequences, 1);
    assert!(!status.failing);

    let id = recorder::rows::parse_sequence_id(PYDE1_SEQUENCE).expect("id");
    let history = History::open(&opts.path).expect("history");
    let list = history
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    assert_eq!(list.total, 1);
    let summary = &list.sequences[0];
    assert_eq!(summary.id, PYDE1_SEQUENCE);
    assert_eq!(summary.active_state.as_deref(), Some("Espresso"));
    assert_eq!(summary.end_reason.as_deref(), Some("complete"));

    let seq = history
        .get_sequence(PYDE1_SEQUENCE)
        .expect("get")
        .expect("present");
    let want = expected_counts(&events, id);
    assert_eq!(counts(&seq), want);
    // Every DE1 sample from the start to the end, plus the 5 before.
    assert_eq!(want["shot_samples"], summary.shot_samples as usize);
    assert!(summary.shot_samples > 100, "{summary:?}");
    assert_eq!(want["weight_and_flow"], summary.weight_updates as usize);

    // The four times are the gates' event times.
    let gate_time = |name: Gate| {
        events
            .iter()
            .find_map(|e| match e {
                Event::SequencerGateNotification(g)
                    if g.sequence_id == id && g.name == name && g.action == GateAction::Set =>
                {
                    Some(g.stamp.event_time)
                }
                _ => None,
            })
            .expect("gate")
    };
    assert_eq!(summary.start_sequence, Some(gate_time(Gate::SequenceStart)));
    assert_eq!(summary.start_flow, Some(gate_time(Gate::FlowBegin)));
    assert_eq!(summary.end_flow, Some(gate_time(Gate::FlowEnd)));
    assert_eq!(
        summary.end_sequence,
        Some(gate_time(Gate::SequenceComplete))
    );

    // Rows read as the payload fields; the samples are in time order.
    let samples = seq["shot_samples"].as_array().expect("samples");
    let times: Vec<f64> = samples
        .iter()
        .map(|s| s["event_time"].as_f64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        samples[10]["volume_by_frames"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(samples[10]["sender"], "DE1");
    let states = seq["state_updates"].as_array().expect("states");
    assert!(states.iter().any(|s| s["substate"] == "Pour"));
    assert_eq!(states[0]["is_error_state"], false);
    let stops = seq["stop_at_notifications"].as_array().expect("stops");
    assert!(stops
        .iter()
        .any(|s| s["action"] == "triggered" && s["current_frame"] == 2));
}

#[test]
fn replay_reproduces_the_recorded_payloads_byte_for_byte() {
    let shot = pyde1_shot();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    record_all(&rec, shot.iter().map(|p| p.event.clone()));
    drop(rec);

    let as_is = ReplayOptions {
        speed: f64::INFINITY,
        lead: Duration::ZERO,
        shift_times: false,
        fresh_sequence_id: false,
        topic_root: "pyDE1".into(),
    };
    let mut replayed = Vec::new();
    let report = replay::replay(&opts.path, PYDE1_SEQUENCE, &as_is, |topic, payload| {
        replayed.push((
            topic.to_owned(),
            String::from_utf8(payload.to_vec()).map_err(|e| e.to_string())?,
        ));
        Ok(())
    })
    .expect("replay");
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.published, replayed.len());
    assert_eq!(report.replayed_as, PYDE1_SEQUENCE);

    // Every replayed publication is one pyDE1 made, byte for byte, and none is missing.
    let recorded: Vec<(String, String)> = shot
        .iter()
        .map(|p| (p.topic.clone(), p.payload.clone()))
        .collect();
    let mut remaining = recorded.clone();
    for r in &replayed {
        let i = remaining
            .iter()
            .position(|x| x == r)
            .unwrap_or_else(|| panic!("not recorded by pyDE1: {r:?}"));
        remaining.swap_remove(i);
    }
    let db = History::open(&opts.path).expect("history");
    let seq = db.get_sequence(PYDE1_SEQUENCE).expect("get").expect("seq");
    let rows: usize = counts(&seq).values().sum();
    assert_eq!(replayed.len(), rows);
    // In time order.
    let t: Vec<f64> = replayed
        .iter()
        .map(|(_, p)| {
            serde_json::from_str::<Value>(p).expect("json")["event_time"]
                .as_f64()
                .expect("t")
        })
        .collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn a_default_replay_moves_times_and_renames_the_sequence() {
    let shot = pyde1_shot();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    record_all(&rec, shot.iter().map(|p| p.event.clone()));
    drop(rec);

    let now = 2_000_000_000.0;
    let o = ReplayOptions {
        speed: 2.0,
        ..ReplayOptions::default()
    };
    let plan = replay::plan(&opts.path, PYDE1_SEQUENCE, &o, now).expect("plan");
    let original = replay::plan(
        &opts.path,
        PYDE1_SEQUENCE,
        &ReplayOptions {
            shift_times: false,
            fresh_sequence_id: false,
            ..o.clone()
        },
        now,
    )
    .expect("plan");
    assert_ne!(plan.replayed_as, PYDE1_SEQUENCE);
    let start = shot
        .iter()
        .find_map(|p| match &p.event {
            Event::SequencerGateNotification(g)
                if g.name == Gate::SequenceStart && g.action == GateAction::Set =>
            {
                Some(g.stamp.event_time)
            }
            _ => None,
        })
        .expect("start");
    for (item, orig) in plan.items.iter().zip(&original.items) {
        let (topic, a) = replay::render(item, &o.topic_root)
            .expect("render")
            .expect("payload");
        let (_, b) = replay::render(orig, &o.topic_root)
            .expect("render")
            .expect("payload");
        assert!(topic.starts_with("KEpyDE1/"), "{topic}");
        let pa: Value = serde_json::from_slice(&a).expect("a");
        let pb: Value = serde_json::from_slice(&b).expect("b");
        assert!(pb.get("shifted").is_none());
        let t = pb["event_time"].as_f64().expect("t");
        // The sequence start lands 5 s after `now`; the rest keeps its spacing, halved.
        let want = now + 5.0 + (t - start) / 2.0;
        assert!((pa["event_time"].as_f64().expect("t") - want).abs() < 1e-6);
        assert!((pa["shifted"].as_f64().expect("shifted") - (want - t)).abs() < 1e-6);
        // Publishing follows the same clock.
        let at = item.at.as_secs_f64();
        assert!((at - (5.0 + (t - start) / 2.0).max(0.0)).abs() < 1e-6);
        for (k, v) in pb.as_object().expect("object") {
            if k.ends_with("_time") {
                continue;
            }
            if k == "sequence_id" {
                assert_eq!(pa[k], plan.replayed_as.as_str());
            } else {
                assert_eq!(&pa[k], v, "{k}");
            }
        }
    }
    // Pacing: at 40x, the ~23 s sequence takes well under a second.
    let began = std::time::Instant::now();
    let mut n = 0;
    replay::replay(
        &opts.path,
        PYDE1_SEQUENCE,
        &ReplayOptions {
            speed: 40.0,
            lead: Duration::ZERO,
            ..ReplayOptions::default()
        },
        |_, _| {
            n += 1;
            Ok(())
        },
    )
    .expect("replay");
    let took = began.elapsed();
    assert_eq!(n, plan.items.len());
    assert!(
        took > Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Errors are reported, not panics.
    assert!(matches!(
        replay::plan(&opts.path, "no-such-sequence", &o, now),
        Err(replay::ReplayError::NotFound(_))
    ));
    assert!(matches!(
        replay::plan(
            &opts.path,
            PYDE1_SEQUENCE,
            &ReplayOptions {
                speed: 0.0,
                ..o.clone()
            },
            now
        ),
        Err(replay::ReplayError::BadSpeed(_))
    ));
    let failed = replay::replay(
        &opts.path,
        PYDE1_SEQUENCE,
        &ReplayOptions {
            speed: f64::INFINITY,
            ..o
        },
        |_, _| Err("broker gone".to_owned()),
    );
    assert!(matches!(failed, Err(replay::ReplayError::Publish(m)) if m == "broker gone"));
}

fn context_with(profile: &str) -> SequenceContext {
    let source = profile_source(profile);
    let encoded = de1_protocol::profile::encode_profile(&source).expect("profile");
    SequenceContext {
        profile_id: Some(encoded.id),
        profile_source: Some(source),
        de1: None,
        scale: Some(ipc_schema::command::DeviceId {
            address: Some("CF:75:75:00:5C:A1".into()),
            name: "AtomaxSkaleII: Skale".into(),
            simulated: false,
        }),
    }
}

#[test]
fn profiles_are_kept_once_and_sequences_listed_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    let day = 86_400.0;
    let t0 = 1_790_000_000.0;
    let shots = [
        (seq(1), t0, "de1app__classic_italian_espresso"),
        (seq(2), t0 + day, "de1app__londonium"),
        (seq(3), t0 + 2.0 * day, "de1app__classic_italian_espresso"),
    ];
    for (id, t, profile) in &shots {
        let events = synthetic_espresso(*t, 20.0, *id);
        record_all(&rec, events);
        rec.set_context(*id, context_with(profile));
    }
    // A sequence with no context: its profile is the last one on record, assumed.
    record_all(&rec, synthetic_espresso(t0 + 3.0 * day, 5.0, seq(4)));
    rec.set_context(seq(4), SequenceContext::default());
    drop(rec);

    let h = History::open(&opts.path).expect("history");
    let all = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    assert_eq!(all.total, 4);
    let ids: Vec<String> = all.sequences.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        [seq(4), seq(3), seq(2), seq(1)]
            .map(|s| s.to_string())
            .to_vec()
    );
    let classic = &all.sequences[1].profile.as_ref().expect("profile");
    assert_eq!(classic.id, "33f82e1c4fba396c0026a86bd8616b65663e99d6");
    assert_eq!(
        classic.fingerprint,
        "a577902e4072cd5e58e895b3de0221ed5186dc04"
    );
    assert_eq!(classic.title.as_deref(), Some("Classic Italian espresso"));
    let assumed = &all.sequences[0];
    assert!(assumed.profile_assumed);
    assert_eq!(
        assumed.profile.as_ref().map(|p| p.id.as_str()),
        Some(classic.id.as_str())
    );
    // One row per profile.
    let n: i64 = h
        .connection()
        .query_row(
            "SELECT count(*) FROM profile WHERE id <> 'dummy'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 2);

    // Paging.
    let page = h
        .list_sequences(
            &SequenceFilter::default(),
            Page {
                offset: 1,
                limit: 2,
            },
        )
        .expect("page");
    assert_eq!(page.total, 4);
    assert_eq!(
        page.sequences
            .iter()
            .map(|s| s.id.clone())
            .collect::<Vec<_>>(),
        [seq(3), seq(2)].map(|s| s.to_string()).to_vec()
    );
    // Filters.
    let by_profile = SequenceFilter {
        profile_id: Some("33F82E1C4FBA396C0026A86BD8616B65663E99D6".into()),
        ..SequenceFilter::default()
    };
    assert_eq!(
        h.list_sequences(&by_profile, Page::default())
            .expect("f")
            .total,
        3
    );
    let by_title = SequenceFilter {
        profile_title: Some("londON".into()),
        ..SequenceFilter::default()
    };
    let l = h.list_sequences(&by_title, Page::default()).expect("f");
    assert_eq!(
        l.sequences.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        vec![seq(2).to_string()]
    );
    let by_date = SequenceFilter {
        since: Some(t0 + 0.5 * day),
        until: Some(t0 + 2.5 * day),
        ..SequenceFilter::default()
    };
    assert_eq!(
        h.list_sequences(&by_date, Page::default())
            .expect("f")
            .total,
        2
    );
    let wildcard = SequenceFilter {
        profile_title: Some("%".into()),
        ..SequenceFilter::default()
    };
    assert_eq!(
        h.list_sequences(&wildcard, Page::default())
            .expect("f")
            .total,
        0
    );
    assert!(h
        .list_sequences(
            &SequenceFilter::default(),
            Page {
                offset: 0,
                limit: 0
            }
        )
        .is_err());

    // One sequence in full, with its profile and settings.
    let s = h
        .get_sequence(&seq(2).to_string())
        .expect("get")
        .expect("seq");
    assert_eq!(s["profile"]["title"], "Londonium");
    assert_eq!(s["profile"]["source"]["title"], "Londonium");
    assert_eq!(s["resources"]["scale_id"]["id"], "CF:75:75:00:5C:A1");
    assert_eq!(s["resources"]["version"]["name"], "de1d");
    assert_eq!(s["end_reason"], "complete");
    assert!(h.get_sequence("no-such-id").expect("get").is_none());
    assert!(h.get_sequence("dummy").expect("get").is_none());
}

#[test]
fn the_visualizer_export_follows_de1app_shot_files() {
    let shot = pyde1_shot();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let rec = Recorder::open(opts.clone()).expect("open");
    let events: Vec<Event> = shot.iter().map(|p| p.event.clone()).collect();
    record_all(&rec, events.clone());
    let id = recorder::rows::parse_sequence_id(PYDE1_SEQUENCE).expect("id");
    rec.set_context(id, context_with("de1app__classic_italian_espresso"));
    drop(rec);

    let h = History::open(&opts.path).expect("history");
    let v = h
        .export_visualizer(PYDE1_SEQUENCE)
        .expect("export")
        .expect("present");
    let summary = &h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list")
        .sequences[0];
    let (from, to) = (
        summary.start_flow.expect("flow"),
        summary.end_flow.expect("end"),
    );
    let in_window = events
        .iter()
        .filter(|e| matches!(e, Event::ShotSampleWithVolumesUpdate(s) if s.de1_time >= from && s.de1_time <= to))
        .count();
    let elapsed = v["elapsed"].as_array().expect("elapsed");
    assert_eq!(elapsed.len(), in_window);
    assert!(elapsed[0].as_f64().expect("e") >= 0.0 && elapsed[0].as_f64().expect("e") < 0.3);
    for key in [
        "/pressure/pressure",
        "/pressure/goal",
        "/flow/flow",
        "/flow/by_weight",
        "/flow/goal",
        "/temperature/basket",
        "/temperature/mix",
        "/temperature/goal",
        "/totals/weight",
        "/totals/water_dispensed",
        "/state_change",
    ] {
        let a = v
            .pointer(key)
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{key}"));
        assert_eq!(a.len(), in_window, "{key}");
    }
    assert_eq!(v["version"], 2);
    assert_eq!(v["timestamp"].as_i64(), Some(from.round() as i64));
    assert_eq!(v["profile"]["title"], "Classic Italian espresso");
    assert_eq!(
        v["app"]["data"]["settings"]["profile_title"],
        "Classic Italian espresso"
    );
    // The cup ended near the stop-at-weight target (24 g, stopped at 22.9 g + drips).
    let drink = v["app"]["data"]["settings"]["drink_weight"]
        .as_f64()
        .expect("drink");
    assert!((22.0..30.0).contains(&drink), "{drink}");
    let weights: Vec<f64> = v["totals"]["weight"]
        .as_array()
        .expect("w")
        .iter()
        .map(|x| x.as_f64().expect("w"))
        .collect();
    assert!(weights.last().expect("w") > &15.0, "{weights:?}");
    // Goals of 0 are left off the chart.
    assert!(v["pressure"]["goal"]
        .as_array()
        .expect("g")
        .contains(&Value::from(-1.0)));
    assert!(h.export_visualizer("nope").expect("export").is_none());
}

#[test]
fn sequences_end_when_superseded_too_long_or_the_controller_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path());
    opts.max_sequence = Duration::from_secs(60);
    let rec = Recorder::open(opts.clone()).expect("open");
    let t0 = 1_790_000_000.0;
    // A shot cut off before completion by a new sequence.
    let mut first = synthetic_espresso(t0, 20.0, seq(1));
    first.truncate(first.len() - 5);
    record_all(&rec, first);
    record_all(&rec, synthetic_espresso(t0 + 30.0, 5.0, seq(2)));
    // A sequence that never completes: closed once events are far past its start.
    let mut third = synthetic_espresso(t0 + 200.0, 5.0, seq(3));
    third.truncate(third.len() - 1);
    record_all(&rec, third);
    record_all(
        &rec,
        [Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(t0 + 400.0),
            level: 30.0,
            start_fill_level: 5.0,
        })],
    );
    // The controller went away mid-shot.
    let mut fourth = synthetic_espresso(t0 + 500.0, 20.0, seq(4));
    fourth.truncate(fourth.len() / 2);
    record_all(&rec, fourth);
    rec.link_lost();
    assert!(rec.flush(WAIT));
    // Shut down mid-shot.
    let mut fifth = synthetic_espresso(t0 + 600.0, 20.0, seq(5));
    fifth.truncate(fifth.len() / 2);
    record_all(&rec, fifth);
    drop(rec);

    let h = History::open(&opts.path).expect("history");
    let reason = |n: u8| {
        h.get_sequence(&seq(n).to_string())
            .expect("get")
            .expect("seq")["end_reason"]
            .as_str()
            .map(str::to_owned)
    };
    assert_eq!(reason(1).as_deref(), Some("superseded"));
    assert_eq!(reason(2).as_deref(), Some("complete"));
    assert_eq!(reason(3).as_deref(), Some("timeout"));
    assert_eq!(reason(4).as_deref(), Some("controller_lost"));
    assert_eq!(reason(5).as_deref(), Some("shutdown"));
    // Nothing after the end of sequence 3 went into it.
    let s3 = h
        .get_sequence(&seq(3).to_string())
        .expect("get")
        .expect("seq");
    assert!(s3["water_levels"]
        .as_array()
        .expect("levels")
        .iter()
        .all(|w| w["event_time"].as_f64().expect("t") < t0 + 400.0));
}

#[test]
fn a_sequence_with_twenty_thousand_samples_loses_none() {
    // Far more than the queue holds at once, fed as fast as possible.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = options(dir.path());
    // An 85-minute sequence: longer than a sequence is normally allowed to run.
    opts.max_sequence = Duration::from_secs(2 * 3600);
    let rec = Recorder::open(opts.clone()).expect("open");
    let events = synthetic_espresso(1_790_000_000.0, 5000.0, seq(9));
    let fed = count_samples(&events);
    assert!(fed > 20_000);
    for e in &events {
        rec.record(e);
        // The producer outpacing the writer must never block; give it a chance to drain
        // so that this test checks completeness, not queue size.
        let deadline = std::time::Instant::now() + WAIT;
        while rec
            .status()
            .stats
            .queued
            .saturating_sub(rec.status().stats.rows_written)
            > 3000
        {
            assert!(std::time::Instant::now() < deadline, "{:?}", rec.status());
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let status = rec.close(WAIT);
    assert_eq!(status.stats.dropped(), 0, "{status:?}");
    let h = History::open(&opts.path).expect("history");
    let list = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    // 8 pre-sequence samples were kept: the history holds 5 of them.
    let before = events
        .iter()
        .take_while(|e| !matches!(e, Event::SequencerGateNotification(g) if g.name == Gate::SequenceStart && g.action == GateAction::Set))
        .filter(|e| matches!(e, Event::ShotSampleWithVolumesUpdate(_)))
        .count();
    assert_eq!(
        list.sequences[0].shot_samples as usize,
        fed - before + before.min(5)
    );
}
