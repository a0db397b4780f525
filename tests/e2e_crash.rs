//! Processes killed with SIGKILL come back, and a user notices as little as possible:
//! a shot still stops at its weight, MQTT keeps flowing, and the API tells the truth.

use std::time::{Duration, Instant};

use crate::support::{De1d, Msg, TARGET_WEIGHT};

fn is_status(m: &Msg, topic: &str, payload: &str) -> bool {
    m.topic == format!("pyDE1/status/{topic}") && m.payload == payload
}

#[test]
fn killed_processes_come_back_and_the_shot_still_stops_at_weight() {
    let de1d = De1d::start(&[]);
    de1d.wait_ready();
    let from = de1d.start_shot();

    // Inbound dies during preinfusion; its successor answers with the machine's state.
    de1d.wait_substate(from, "PreInfuse", Duration::from_secs(20));
    let t = Instant::now();
    de1d.kill_child("Inbound");
    let state = de1d.get("/de1/state");
    assert_eq!(state.status, 200, "{}", state.text());
    assert_eq!(
        state.json()["state"]["state"],
        "Espresso",
        "{}",
        state.text()
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Outbound dies during the pour; its successor says so and the stream resumes.
    de1d.wait_substate(from, "Pour", Duration::from_secs(20));
    let killed_at = de1d.mqtt.len();
    de1d.kill_child("Outbound");
    let (died, _) = de1d
        .mqtt
        .wait_for(killed_at, Duration::from_secs(3), |m| {
            is_status(m, "mqtt/notification", "Died")
        })
        .unwrap_or_else(|| panic!("no will for the killed outbound; {}", de1d.diagnostics()));
    let (back, _) = de1d
        .mqtt
        .wait_for(died, Duration::from_secs(5), |m| {
            is_status(m, "mqtt/notification", "Here")
        })
        .unwrap_or_else(|| panic!("the new outbound never said Here; {}", de1d.diagnostics()));
    assert!(
        de1d.mqtt
            .wait_for(back, Duration::from_secs(2), |m| m.class()
                == "ShotSampleWithVolumesUpdate")
            .is_some(),
        "no shot samples after outbound came back; {}",
        de1d.diagnostics()
    );

    // The shot goes on and stops at its weight; the end of it arrives over MQTT.
    let shot = de1d.wait_shot_end(from, Duration::from_secs(45), Duration::from_millis(1200));
    shot.assert_stopped_at_weight(TARGET_WEIGHT, &de1d.diagnostics());
    let after_restart = |pred: &dyn Fn(&Msg) -> bool| {
        de1d.mqtt
            .wait_for(back, Duration::ZERO, |m| pred(m))
            .is_some()
    };
    assert!(after_restart(
        &|m| m.class() == "StopAtNotification" && m.str_field("action") == "triggered"
    ));
    assert!(after_restart(&|m| m.class() == "StateUpdate"
        && m.str_field("state") == "Idle"
        && m.str_field("previous_state") == "Espresso"));

    // The controller dies; it comes back, finds the DE1 again, and what HTTP says is
    // what MQTT said.
    let killed_at = de1d.mqtt.len();
    de1d.kill_child("Controller");
    assert!(
        de1d.mqtt
            .wait_for(killed_at, Duration::from_secs(3), |m| is_status(
                m,
                "controller",
                "Died"
            ))
            .is_some(),
        "status/controller did not say Died; {}",
        de1d.diagnostics()
    );
    let ready = crate::support::wait_until(Duration::from_secs(15), || {
        std::thread::sleep(Duration::from_millis(50));
        let r = de1d.get("/de1/availability");
        r.status == 200 && r.json()["mode"] == "ready"
    });
    assert!(
        ready,
        "the DE1 is not ready again: {}; {}",
        de1d.get("/de1/availability").text(),
        de1d.diagnostics()
    );
    let connectivity = de1d.get("/de1/connectivity").json();
    assert_eq!(connectivity["mode"], "ready", "{connectivity}");
    assert!(
        de1d.mqtt
            .wait_for(killed_at, Duration::from_secs(3), |m| is_status(
                m,
                "controller",
                "Here"
            ))
            .is_some(),
        "status/controller not Here again"
    );
    assert!(
        de1d.mqtt
            .wait_for(killed_at, Duration::from_secs(3), |m| {
                m.class() == "DeviceAvailability"
                    && m.str_field("role") == "de1"
                    && m.str_field("state") == "ready"
            })
            .is_some(),
        "no DeviceAvailability de1 ready on MQTT after the restart"
    );
    let (_, reported) = de1d
        .mqtt
        .wait_for(killed_at, Duration::from_secs(5), |m| {
            m.class() == "StateUpdate"
        })
        .unwrap_or_else(|| panic!("no StateUpdate after the restart; {}", de1d.diagnostics()));
    // Let any further StateUpdate arrive, then compare with the latest one.
    std::thread::sleep(Duration::from_millis(500));
    let latest = de1d.mqtt.latest("pyDE1/StateUpdate")["pyDE1/StateUpdate"].clone();
    assert!(latest.at >= reported.at);
    let http = de1d.get("/de1/state").json();
    assert_eq!(
        (
            http["state"]["state"].as_str(),
            http["state"]["substate"].as_str()
        ),
        (
            Some(&*latest.str_field("state")),
            Some(&*latest.str_field("substate"))
        ),
        "HTTP says {http}, MQTT said {}",
        latest.payload
    );
    let embedded: serde_json::Value =
        serde_json::from_str(http["mqtt"].as_str().unwrap_or("null")).unwrap_or_default();
    assert_eq!(embedded, latest.json(), "de1/state's mqtt field");

    // And it acts on the machine.
    let at = de1d.mqtt.len();
    de1d.expect_ok(de1d.patch("/de1/mode", r#"{"mode": "Sleep"}"#), "Sleep");
    assert!(
        de1d.mqtt
            .wait_for(at, Duration::from_secs(5), |m| m.class() == "StateUpdate"
                && m.str_field("state") == "Sleep")
            .is_some(),
        "no Sleep StateUpdate; {}",
        de1d.diagnostics()
    );
    assert_eq!(de1d.get("/de1/state").json()["state"]["state"], "Sleep");
    assert!(
        !de1d.log_text().contains("panicked"),
        "{}",
        de1d.diagnostics()
    );
}
