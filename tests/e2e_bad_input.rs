//! Bad HTTP input during a shot: garbage bodies, wrong methods, huge bodies, unknown
//! paths and broken requests each get exactly one error response, and the shot does not
//! notice.

use std::time::{Duration, Instant};

use crate::support::{exchange, profile_path, De1d, TARGET_WEIGHT};

/// A request as raw bytes, closing the connection after the response.
fn raw(method: &str, path: &str, headers: &[&str], body: Option<&[u8]>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    out
}

fn with_body(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    raw(method, path, &[], Some(body))
}

#[test]
fn bad_requests_during_a_shot_get_one_error_each_and_leave_the_shot_alone() {
    let de1d = De1d::start(&[]);
    de1d.wait_ready();
    let pids = de1d.pids();

    let bad_profile = std::fs::read(profile_path("custom__bad_21_steps.json")).expect("profile");
    let huge_profile = {
        let good = std::fs::read(profile_path(crate::support::PROFILE)).expect("profile");
        let mut b = Vec::with_capacity(2 << 20);
        while b.len() < 2 << 20 {
            b.extend_from_slice(&good);
        }
        b
    };
    let huge_patch = format!(
        "{{\"stop_at_weight\": 1{}}}",
        "0".repeat(1 << 20) // a number a million digits long
    );
    let garbage: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    // (what, request, status): pyDE1's status codes (pyde1-http-api.md §3.1, §3.2, §7).
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "cut JSON",
            with_body("PATCH", "/de1/control/espresso", b"{\"stop_at_weight\": "),
            400,
        ),
        (
            "string for a number",
            with_body(
                "PATCH",
                "/de1/control/espresso",
                br#"{"stop_at_weight": "1"}"#,
            ),
            400,
        ),
        (
            "negative weight",
            with_body(
                "PATCH",
                "/de1/control/espresso",
                br#"{"stop_at_weight": -5}"#,
            ),
            400,
        ),
        (
            "unknown key",
            with_body("PATCH", "/de1/control/espresso", br#"{"no_such_key": 1}"#),
            400,
        ),
        (
            "array body",
            with_body("PATCH", "/de1/control/espresso", b"[1, 2, 3]"),
            400,
        ),
        (
            "binary garbage",
            with_body("PATCH", "/de1/control/espresso", &garbage),
            400,
        ),
        ("empty body", with_body("PATCH", "/de1/mode", b""), 400),
        (
            "lower-case mode",
            with_body("PATCH", "/de1/mode", br#"{"mode": "espresso"}"#),
            400,
        ),
        (
            "unknown mode",
            with_body("PATCH", "/de1/mode", br#"{"mode": "Bogus"}"#),
            400,
        ),
        (
            "Espresso during espresso",
            with_body("PATCH", "/de1/mode", br#"{"mode": "Espresso"}"#),
            409,
        ),
        (
            "HotWater during espresso",
            with_body("PATCH", "/de1/mode", br#"{"mode": "HotWater"}"#),
            409,
        ),
        (
            "Sleep during espresso",
            with_body("PATCH", "/de1/mode", br#"{"mode": "Sleep"}"#),
            409,
        ),
        (
            "invalid profile",
            with_body("PUT", "/de1/profile", &bad_profile),
            400,
        ),
        (
            "huge profile",
            with_body("PUT", "/de1/profile", &huge_profile),
            413,
        ),
        (
            "huge PATCH",
            with_body("PATCH", "/de1/control/espresso", huge_patch.as_bytes()),
            413,
        ),
        (
            "PATCH without length",
            raw("PATCH", "/de1/control/espresso", &[], None),
            411,
        ),
        (
            "GET of a PATCH-only resource",
            raw("GET", "/de1/mode", &[], None),
            405,
        ),
        (
            "PUT of a GET-only resource",
            with_body("PUT", "/de1/state", b"{}"),
            405,
        ),
        (
            "PATCH of the version",
            with_body("PATCH", "/version", b"{}"),
            405,
        ),
        // pyDE1 answers methods it has no handler for with 501 (§3.1).
        (
            "POST",
            with_body("POST", "/de1/mode", br#"{"mode": "Stop"}"#),
            501,
        ),
        ("DELETE", raw("DELETE", "/de1/profile", &[], None), 501),
        (
            "unknown path",
            raw("GET", "/no/such/resource", &[], None),
            404,
        ),
        ("trailing slash", raw("GET", "/de1/state/", &[], None), 404),
        ("query string", raw("GET", "/de1/state?x=1", &[], None), 404),
        (
            "path traversal",
            raw("GET", "/log/../../etc/passwd", &[], None),
            404,
        ),
        ("not HTTP", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "bad Content-Length",
            raw(
                "PATCH",
                "/de1/control/espresso",
                &["Content-Length: abc"],
                None,
            ),
            400,
        ),
        (
            "header without colon",
            raw("GET", "/de1/state", &["no colon here"], None),
            400,
        ),
    ];

    let from = de1d.start_shot();
    de1d.wait_substate(from, "PreInfuse", Duration::from_secs(20));
    // Round after round of bad requests, from preinfusion until stop-at-weight fires,
    // each round only while the machine is still pouring (a mode request reaching an
    // Idle machine would start something new).
    let flowing = || {
        let latest = de1d.mqtt.latest("pyDE1/");
        let substate = latest
            .get("pyDE1/StateUpdate")
            .map(|m| m.str_field("substate"))
            .unwrap_or_default();
        let triggered = de1d
            .mqtt
            .wait_for(from, Duration::ZERO, |m| {
                m.class() == "StopAtNotification" && m.str_field("action") == "triggered"
            })
            .is_some();
        ["PreInfuse", "Pour"].contains(&&*substate) && !triggered
    };
    let t = Instant::now();
    let mut rounds = 0u32;
    let mut slowest = Duration::ZERO;
    while flowing() && t.elapsed() < Duration::from_secs(40) {
        let round = Instant::now();
        for (what, bytes, status) in &cases {
            let r = exchange(de1d.http_port, bytes)
                .unwrap_or_else(|e| panic!("{what}: {e}; {}", de1d.diagnostics()));
            assert_eq!(r.status, *status, "{what}: {}", r.text());
            assert!(
                r.trailing.is_empty(),
                "{what}: a second response followed: {:?}",
                String::from_utf8_lossy(&r.trailing)
            );
        }
        slowest = slowest.max(round.elapsed());
        rounds += 1;
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "{rounds} rounds of {} bad requests over {:?}, the slowest round {slowest:?}",
        cases.len(),
        t.elapsed()
    );
    assert!(rounds >= 10, "only {rounds} rounds during the shot");

    let shot = de1d.wait_shot_end(from, Duration::from_secs(45), Duration::from_millis(1200));
    shot.assert_stopped_at_weight(TARGET_WEIGHT, &de1d.diagnostics());
    shot.assert_sample_pace(Duration::from_millis(1000));
    let starts = shot
        .of_class("SequencerGateNotification")
        .filter(|m| m.str_field("name") == "sequence_start" && m.str_field("action") == "set")
        .count();
    assert_eq!(starts, 1, "the shot was restarted");
    let control = de1d.get("/de1/control/espresso").json();
    assert_eq!(control["stop_at_weight"], TARGET_WEIGHT, "{control}");
    assert_eq!(de1d.pids(), pids, "a process was restarted");
    assert!(
        !de1d.log_text().contains("panicked"),
        "{}",
        de1d.diagnostics()
    );
}
