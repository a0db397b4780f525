//! Signals as logrotate and systemd send them: SIGHUP reopens the log file mid-shot,
//! SIGTERM stops de1d cleanly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{self, alive, parse_line, wait_until, De1d, Mqtt, TARGET_WEIGHT};

/// The numbers of the poller's requests, as Inbound logged them, in file order.
fn polled(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(parse_line)
        .filter(|l| l.process == "Inbound")
        .filter_map(|l| {
            let (_, n) = l.message.split_once(" GET /e2e/poll/")?;
            n.parse().ok()
        })
        .collect()
}

#[test]
fn sighup_mid_shot_reopens_the_log_without_losing_or_garbling_a_line() {
    let mut de1d = De1d::start(&[]);
    de1d.wait_ready();

    // A client polling throughout: every request becomes one numbered line of Inbound.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = Arc::clone(&stop);
        let port = de1d.http_port;
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = support::get(port, &format!("/e2e/poll/{n}"));
                assert_eq!(r.status, 404, "poll {n}");
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };

    let from = de1d.start_shot();
    de1d.wait_substate(from, "Pour", Duration::from_secs(25));
    let rotated = de1d.log.with_extension("log.1");
    std::fs::rename(&de1d.log, &rotated).expect("rotate the log");
    de1d.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(3), || de1d.log.exists()),
        "no new log file after SIGHUP"
    );
    let shot = de1d.wait_shot_end(from, Duration::from_secs(40), Duration::from_millis(1200));
    stop.store(true, Ordering::Relaxed);
    let sent = poller.join().expect("poller");
    shot.assert_stopped_at_weight(TARGET_WEIGHT, &de1d.diagnostics());

    de1d.signal(Signal::SIGTERM);
    let status = de1d.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        de1d.diagnostics()
    );

    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    let new = de1d.log_text();
    let mut processes: [BTreeMap<&str, usize>; 2] = Default::default();
    for (i, text) in [&old, &new].into_iter().enumerate() {
        assert!(text.ends_with('\n'), "file {i} ends mid-line");
        for line in text.lines() {
            let l =
                parse_line(line).unwrap_or_else(|| panic!("garbled line in file {i}: {line:?}"));
            *processes[i].entry(l.process).or_default() += 1;
        }
    }
    // Both files have lines of the launcher, the controller and inbound.
    for (i, p) in processes.iter().enumerate() {
        for name in ["Launcher", "Controller", "Inbound"] {
            assert!(p.contains_key(name), "no {name} line in file {i}: {p:?}");
        }
    }
    // Every request is logged exactly once, in order, across the two files.
    let (in_old, in_new) = (polled(&old), polled(&new));
    assert!(
        !in_old.is_empty() && !in_new.is_empty(),
        "{in_old:?} {in_new:?}"
    );
    eprintln!(
        "{sent} requests: {} logged in the rotated file, {} in the new one",
        in_old.len(),
        in_new.len()
    );
    let all: Vec<u64> = in_old.iter().chain(&in_new).copied().collect();
    let expected: Vec<u64> = (0..sent).collect();
    assert_eq!(
        all.len(),
        expected.len(),
        "{} requests, {} logged",
        sent,
        all.len()
    );
    assert_eq!(
        all, expected,
        "requests lost, repeated or reordered in the log"
    );
}

/// SIGTERM with `[de1] sleep_on_shutdown = sleep`: exit status 0 within 5 s, every
/// process and the runtime directory gone; then what a user would see wrong, as a list
/// (`sleep_ok` judges the StateUpdates published after the signal).
fn sigterm(sleep: bool, sleep_ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut de1d = De1d::start(&[("de1", "sleep_on_shutdown", toml::Value::Boolean(sleep))]);
    de1d.wait_ready();
    let pids = de1d.pids();
    for name in ["Controller", "Inbound", "Outbound"] {
        assert!(pids.contains_key(name), "{pids:?}");
    }
    let at = de1d.mqtt.len();
    let t = Instant::now();
    de1d.signal(Signal::SIGTERM);
    let status = de1d.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{}",
        de1d.diagnostics()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    for (name, pid) in &pids {
        assert!(
            wait_until(Duration::from_secs(1), || !alive(*pid)),
            "{name} (pid {pid}) outlived de1d"
        );
    }
    assert!(!de1d.rt.exists(), "runtime directory left behind");

    let mut problems = Vec::new();
    // What a dashboard connecting now sees: every part of de1d went away in order.
    let late = Mqtt::subscribe(de1d.broker.port, "pyDE1/status/#");
    std::thread::sleep(Duration::from_millis(700));
    let retained: BTreeMap<String, String> = late
        .messages()
        .into_iter()
        .filter(|m| m.retained)
        .map(|m| (m.topic, m.payload))
        .collect();
    for topic in ["mqtt/notification", "mqtt/logging", "controller"] {
        if !retained.contains_key(&format!("pyDE1/status/{topic}")) {
            problems.push(format!("status/{topic} not retained"));
        }
    }
    for (topic, payload) in &retained {
        if payload != "Gone" {
            problems.push(format!("{topic} is {payload:?} after an orderly stop"));
        }
    }
    let states: Vec<String> = de1d.mqtt.messages()[at..]
        .iter()
        .filter(|m| m.class() == "StateUpdate")
        .map(|m| m.str_field("state"))
        .collect();
    if !sleep_ok(&states) {
        problems.push(format!(
            "sleep_on_shutdown = {sleep}, StateUpdates after SIGTERM: {states:?}"
        ));
    }
    if !problems.is_empty() {
        problems.push(de1d.diagnostics());
    }
    problems
}

fn asleep(s: &String) -> bool {
    s == "Sleep" || s == "GoingToSleep"
}

#[test]
fn sigterm_stops_cleanly_says_gone_and_puts_the_de1_to_sleep() {
    let problems = sigterm(true, |states| states.last().is_some_and(asleep));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sigterm_leaves_the_de1_awake_without_sleep_on_shutdown() {
    let problems = sigterm(false, |states| !states.iter().any(asleep));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
