//! Steam, hot water and flush started over HTTP, each ended by the limit set for it in
//! `de1/control/…` (pyde1-http-api.md §11: the DE1 itself stops these flows).

use std::time::Duration;

use crate::support::{De1d, Msg};

/// What one flow looked like on MQTT.
struct Flow {
    /// Arrival times of: entering the mode, the first flowing substate, back in Idle.
    entered: f64,
    flowing: f64,
    idle: f64,
    stop_ats: Vec<(String, String, Option<f64>)>,
    /// The last `volume_total` of the sequence.
    volume: f64,
}

impl Flow {
    /// Seconds from the start of flow (or, for a machine that counts it so, from
    /// entering the mode) to Idle, whichever is closer to `limit`.
    fn duration_near(&self, limit: f64) -> f64 {
        let a = self.idle - self.flowing;
        let b = self.idle - self.entered;
        if (a - limit).abs() <= (b - limit).abs() {
            a
        } else {
            b
        }
    }

    fn stop_at(&self, what: &str) -> Option<(String, Option<f64>)> {
        self.stop_ats
            .iter()
            .find(|(w, _, _)| w == what)
            .map(|(_, a, t)| (a.clone(), *t))
    }
}

/// Starts `mode` and waits until the machine is back in Idle and its sequence is over.
fn run(de1d: &De1d, mode: &str, timeout: Duration) -> Flow {
    let from = de1d.mqtt.len();
    de1d.expect_ok(
        de1d.patch("/de1/mode", &format!("{{\"mode\": \"{mode}\"}}")),
        mode,
    );
    let shot = de1d.wait_shot_end(from, timeout, Duration::from_millis(300));
    let updates: Vec<&Msg> = shot.of_class("StateUpdate").collect();
    let at = |pred: &dyn Fn(&Msg) -> bool| {
        updates
            .iter()
            .find(|m| pred(m))
            .and_then(|m| m.num_field("arrival_time"))
            .unwrap_or_else(|| panic!("{mode}: missing state in {:?}", shot.states()))
    };
    let entered = at(&|m| m.str_field("state") == mode);
    let flowing = at(&|m| {
        m.str_field("state") == mode && ["Pour", "Steaming"].contains(&&*m.str_field("substate"))
    });
    let idle = at(&|m| m.str_field("state") == "Idle" && m.str_field("previous_state") == mode);
    let id = shot.sequence_id.clone();
    let stop_ats = shot
        .of_class("StopAtNotification")
        .filter(|m| m.str_field("active_state") == mode)
        .map(|m| {
            (
                m.str_field("stop_at"),
                m.str_field("action"),
                m.num_field("target_value"),
            )
        })
        .collect();
    let end = shot.gate_set("sequence_complete").unwrap_or(f64::NAN);
    let volume = shot
        .of_class("ShotSampleWithVolumesUpdate")
        .filter(|m| m.num_field("arrival_time").is_some_and(|t| t <= end))
        .filter_map(|m| m.num_field("volume_total"))
        .last()
        .unwrap_or(f64::NAN);
    let state = de1d.get("/de1/state").json();
    assert_eq!(
        state["state"]["state"], "Idle",
        "after {mode} ({id}): {state}"
    );
    Flow {
        entered,
        flowing,
        idle,
        stop_ats,
        volume,
    }
}

fn assert_duration(flow: &Flow, limit: f64, what: &str) {
    let d = flow.duration_near(limit);
    eprintln!("{what}: Idle after {d:.2} s for a {limit} s limit");
    assert!(
        (limit - 0.5..=limit + 1.0).contains(&d),
        "{what}: back in Idle after {d:.2} s, limit {limit} s"
    );
}

#[test]
fn steam_hot_water_and_flush_each_stop_at_their_own_limit() {
    let de1d = De1d::start(&[]);
    de1d.wait_ready();
    let set = |path: &str, body: &str| {
        de1d.expect_ok(de1d.patch(path, body), path);
    };
    set("/de1/control/steam", r#"{"stop_at_time": 4}"#);
    set(
        "/de1/control/hot_water",
        r#"{"stop_at_volume": 30, "stop_at_time": 60}"#,
    );
    set("/de1/control/hot_water_rinse", r#"{"stop_at_time": 3}"#);
    let control = de1d.get("/de1/control").json();
    assert_eq!(control["steam"]["stop_at_time"], 4, "{control}");
    assert_eq!(control["hot_water"]["stop_at_volume"], 30, "{control}");
    assert_eq!(control["hot_water_rinse"]["stop_at_time"], 3.0, "{control}");

    let steam = run(&de1d, "Steam", Duration::from_secs(20));
    assert_eq!(
        steam.stop_at("time"),
        Some(("de1 controlled".into(), Some(4.0))),
        "{:?}",
        steam.stop_ats
    );
    assert_duration(&steam, 4.0, "steam");

    // Hot water: the volume limit comes first.
    let water = run(&de1d, "HotWater", Duration::from_secs(40));
    assert_eq!(
        water.stop_at("volume"),
        Some(("de1 controlled".into(), Some(30.0))),
        "{:?}",
        water.stop_ats
    );
    assert!(
        water.idle - water.flowing < 30.0,
        "hot water ran {:.1} s: the 30 mL limit did not stop it",
        water.idle - water.flowing
    );
    eprintln!(
        "hot water: {:.1} mL in {:.1} s for a 30 mL limit",
        water.volume,
        water.idle - water.flowing
    );
    assert!(
        (25.0..=36.0).contains(&water.volume),
        "hot water stopped at {:.1} mL for a 30 mL limit",
        water.volume
    );

    // Hot water again: now the time limit comes first.
    set(
        "/de1/control/hot_water",
        r#"{"stop_at_volume": 250, "stop_at_time": 5}"#,
    );
    let water = run(&de1d, "HotWater", Duration::from_secs(20));
    assert_eq!(
        water.stop_at("time"),
        Some(("de1 controlled".into(), Some(5.0))),
        "{:?}",
        water.stop_ats
    );
    assert_duration(&water, 5.0, "hot water");
    assert!(water.volume < 100.0, "{:.1} mL in 5 s", water.volume);

    let flush = run(&de1d, "HotWaterRinse", Duration::from_secs(20));
    assert_eq!(
        flush.stop_at("time"),
        Some(("de1 controlled".into(), Some(3.0))),
        "{:?}",
        flush.stop_ats
    );
    assert_duration(&flush, 3.0, "flush");
}
