//! Rendering checked against what pyDE1 2.0 really published: every event payload of
//! the recorded connect + stop-at-weight shot (`reference/mqtt/connect_shot.jsonl`) and
//! the observed examples of `pyde1-mqtt-api.md` for classes the recording lacks.
//!
//! Each recorded payload is read back into the equivalent [`Event`] and rendered again;
//! the result must be byte-for-byte the recorded payload (key order, separators, float
//! digits, integer-vs-float zeros, `null`s), on the recorded topic.

use std::collections::BTreeMap;

use ipc_schema::command::{
    BeforeFlow, Calibration, Controls, EspressoControl, HotWaterControl, HotWaterRinseControl,
    Settings, SteamControl, SteamSetting, TankWaterThreshold,
};
use ipc_schema::event::*;
use outbound::render::{Outgoing, Renderer};
use serde_json::Value;

/// The recording as kept in the workspace's vectors, or beside the workspace in the
/// shared reference data.
fn recording_path() -> std::path::PathBuf {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let candidates = [
        root.join("tests/vectors/mqtt/connect_shot.jsonl"),
        root.join("../shared/reference/mqtt/connect_shot.jsonl"),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("MQTT recording not found in {candidates:?}"))
}

struct Recorded {
    topic: String,
    payload: String,
    retain: bool,
    qos: u64,
}

fn recording() -> Vec<Recorded> {
    let text = std::fs::read_to_string(recording_path()).expect("reference recording");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("recording line");
            Recorded {
                topic: v["topic"].as_str().expect("topic").to_owned(),
                payload: v["payload"].as_str().expect("payload").to_owned(),
                retain: v["retain"].as_u64() == Some(1),
                qos: v["qos"].as_u64().expect("qos"),
            }
        })
        .collect()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

fn opt_f(v: &Value, key: &str) -> Option<f64> {
    if v[key].is_null() {
        None
    } else {
        Some(f(v, key))
    }
}

fn stamp(v: &Value) -> Stamp {
    Stamp {
        arrival_time: f(v, "arrival_time"),
        create_time: f(v, "create_time"),
        event_time: f(v, "event_time"),
    }
}

fn sender(name: &str) -> Sender {
    match name {
        "DE1" => Sender::De1,
        "ScaleProcessor" => Sender::ScaleProcessor,
        "FlowSequencerImpl" => Sender::FlowSequencer,
        "BluetoothScanner" => Sender::BluetoothScanner,
        "BlueDOT" => Sender::BlueDot,
        "GenericScale" => Sender::Scale(ScaleClass::Generic),
        "AtomaxSkaleII" => Sender::Scale(ScaleClass::AtomaxSkaleII),
        "AcaiaLunar" => Sender::Scale(ScaleClass::AcaiaLunar),
        other => panic!("unexpected sender {other}"),
    }
}

fn availability(name: &str) -> AvailabilityState {
    use AvailabilityState::*;
    match name {
        "initial" => Initial,
        "unknown" => Unknown,
        "capturing" => Capturing,
        "captured" => Captured,
        "ready" => Ready,
        "not ready" => NotReady,
        "releasing" => Releasing,
        "released" => Released,
        other => panic!("availability {other}"),
    }
}

fn connectivity(name: &str) -> ConnectivityState {
    use ConnectivityState::*;
    match name {
        "initial" => Initial,
        "unknown" => Unknown,
        "connecting" => Connecting,
        "connected" => Connected,
        "ready" => Ready,
        "not_ready" => NotReady,
        "disconnecting" => Disconnecting,
        "disconnected" => Disconnected,
        other => panic!("connectivity {other}"),
    }
}

fn role(name: &str) -> DeviceRole {
    match name {
        "de1" => DeviceRole::De1,
        "scale" => DeviceRole::Scale,
        "thermometer" => DeviceRole::Thermometer,
        "other" => DeviceRole::Other,
        "unknown" => DeviceRole::Unknown,
        other => panic!("role {other}"),
    }
}

fn gate(name: &str) -> Gate {
    *Gate::ALL
        .iter()
        .find(|g| outbound::render::gate_name(**g) == name)
        .unwrap_or_else(|| panic!("gate {name}"))
}

fn sequence_id(text: &str) -> SequenceId {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("uuid hex");
    }
    let id = SequenceId(bytes);
    assert_eq!(id.to_string(), text);
    id
}

fn estimate(v: &Value, key: &str, time_key: &str) -> Option<Estimate> {
    // pyDE1 writes the integers 0 / 0 for "not enough history".
    if v[key].is_u64() && v[time_key].is_u64() {
        assert_eq!((v[key].as_u64(), v[time_key].as_u64()), (Some(0), Some(0)));
        None
    } else {
        Some(Estimate {
            value: f(v, key),
            time: f(v, time_key),
        })
    }
}

/// The event that pyDE1's payload `v` of class `class` describes.
fn event_from(class: &str, v: &Value) -> Event {
    match class {
        "StateUpdate" => Event::StateUpdate(StateUpdate {
            stamp: stamp(v),
            state: s(v, "state").parse().expect("state"),
            substate: s(v, "substate").parse().expect("substate"),
            previous_state: s(v, "previous_state").parse().expect("state"),
            previous_substate: s(v, "previous_substate").parse().expect("substate"),
            is_error_state: v["is_error_state"].as_bool().expect("bool"),
        }),
        "ShotSampleWithVolumesUpdate" => {
            let frames = v["volume_by_frames"].as_array().expect("frames");
            let volume_by_frames = if frames.is_empty() {
                None
            } else {
                let mut a = [0.0; VOLUME_FRAMES];
                assert_eq!(frames.len(), VOLUME_FRAMES);
                for (slot, x) in a.iter_mut().zip(frames) {
                    *slot = x.as_f64().expect("volume");
                }
                Some(a)
            };
            Event::ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate {
                stamp: stamp(v),
                sample_time: v["sample_time"].as_u64().expect("int") as u16,
                group_pressure: f(v, "group_pressure"),
                group_flow: f(v, "group_flow"),
                mix_temp: f(v, "mix_temp"),
                head_temp: f(v, "head_temp"),
                set_mix_temp: f(v, "set_mix_temp"),
                set_head_temp: f(v, "set_head_temp"),
                set_group_pressure: f(v, "set_group_pressure"),
                set_group_flow: f(v, "set_group_flow"),
                frame_number: v["frame_number"].as_u64().expect("int") as u8,
                steam_temp: v["steam_temp"].as_u64().expect("int") as u8,
                de1_time: f(v, "de1_time"),
                volume_preinfuse: f(v, "volume_preinfuse"),
                volume_pour: f(v, "volume_pour"),
                volume_total: f(v, "volume_total"),
                volume_by_frames,
            })
        }
        "WaterLevelUpdate" => Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: stamp(v),
            level: f(v, "level"),
            start_fill_level: f(v, "start_fill_level"),
        }),
        "WeightAndFlowUpdate" => {
            assert_eq!(f(v, "scale_time"), f(v, "current_weight_time"));
            Event::WeightAndFlowUpdate(WeightAndFlowUpdate {
                stamp: stamp(v),
                scale_time: f(v, "scale_time"),
                current_weight: f(v, "current_weight"),
                average_flow: estimate(v, "average_flow", "average_flow_time"),
                median_weight: estimate(v, "median_weight", "median_weight_time"),
                median_flow: estimate(v, "median_flow", "median_flow_time"),
            })
        }
        "ScaleTareSeen" => Event::ScaleTareSeen(ScaleTareSeen {
            stamp: stamp(v),
            sender: sender(s(v, "sender")),
        }),
        "ScaleButtonPress" => Event::ScaleButtonPress(ScaleButtonPress {
            stamp: stamp(v),
            sender: sender(s(v, "sender")),
            button: v["button"].as_u64().expect("int") as u8,
        }),
        "ScaleChange" => {
            assert_eq!(s(v, "role"), "unknown");
            Event::ScaleChange(ScaleChange {
                stamp: stamp(v),
                sender: sender(s(v, "sender")),
                state: availability(s(v, "state")),
                id: s(v, "id").into(),
                name: s(v, "name").into(),
            })
        }
        "SequencerGateNotification" => {
            Event::SequencerGateNotification(SequencerGateNotification {
                stamp: stamp(v),
                name: gate(s(v, "name")),
                action: match s(v, "action") {
                    "set" => GateAction::Set,
                    "clear" => GateAction::Clear,
                    other => panic!("gate action {other}"),
                },
                sequence_id: sequence_id(s(v, "sequence_id")),
                active_state: v["active_state"]
                    .as_str()
                    .map(|n| n.parse().expect("state")),
            })
        }
        "StopAtNotification" => Event::StopAtNotification(StopAtNotification {
            stamp: stamp(v),
            stop_at: match s(v, "stop_at") {
                "time" => StopAtKind::Time,
                "volume" => StopAtKind::Volume,
                "weight" => StopAtKind::Weight,
                "move on by weight" => StopAtKind::MoveOnByWeight,
                "steam to temperature" => StopAtKind::SteamToTemperature,
                other => panic!("stop_at {other}"),
            },
            action: match s(v, "action") {
                "enabled" => StopAtAction::Enabled,
                "triggered" => StopAtAction::Triggered,
                "disabled" => StopAtAction::Disabled,
                "de1 controlled" => StopAtAction::De1Controlled,
                other => panic!("stop-at action {other}"),
            },
            target_value: opt_f(v, "target_value"),
            current_value: opt_f(v, "current_value"),
            active_state: s(v, "active_state").parse().expect("state"),
            current_frame: v["current_frame"].as_u64().map(|n| n as u8),
        }),
        "AutoTareNotification" => Event::AutoTareNotification(AutoTareNotification {
            stamp: stamp(v),
            action: match s(v, "action") {
                "enabled" => AutoTareAction::Enabled,
                "disabled" => AutoTareAction::Disabled,
                other => panic!("auto-tare action {other}"),
            },
        }),
        "DeviceAvailability" => Event::DeviceAvailability(DeviceAvailability {
            stamp: stamp(v),
            sender: sender(s(v, "sender")),
            state: availability(s(v, "state")),
            role: role(s(v, "role")),
            id: s(v, "id").into(),
            name: s(v, "name").into(),
            simulated: false,
        }),
        "ConnectivityChange" => Event::ConnectivityChange(ConnectivityChange {
            stamp: stamp(v),
            sender: sender(s(v, "sender")),
            state: connectivity(s(v, "state")),
            id: s(v, "id").into(),
            name: s(v, "name").into(),
        }),
        "FirmwareUpload" => Event::FirmwareUpload(FirmwareUpload {
            stamp: stamp(v),
            state: match s(v, "state") {
                "starting" => FirmwareUploadState::Starting,
                "uploading" => FirmwareUploadState::Uploading,
                "completed" => FirmwareUploadState::Completed,
                "failed" => FirmwareUploadState::Failed,
                "canceled" => FirmwareUploadState::Canceled,
                other => panic!("firmware state {other}"),
            },
            uploaded: v["uploaded"].as_u64().expect("int") as u32,
            total: v["total"].as_u64().expect("int") as u32,
        }),
        "ScanResults" => Event::ScanResults(ScanResults {
            stamp: stamp(v),
            role: role(s(v, "role")),
            scanning: v["scanning"].as_bool().expect("bool"),
            devices: v["devices"]
                .as_array()
                .expect("devices")
                .iter()
                .map(|d| ScanDevice {
                    address: s(d, "address").into(),
                    name: s(d, "name").into(),
                    rssi: d["rssi"].as_i64().expect("rssi") as i16,
                })
                .collect(),
        }),
        "BlueDOTUpdate" => Event::BlueDotUpdate(BlueDotUpdate {
            stamp: stamp(v),
            temperature: v["temperature"].as_i64().expect("int") as i32,
            high_alarm: v["high_alarm"].as_i64().expect("int") as i32,
            units: match s(v, "units") {
                "C" => TemperatureUnits::Celsius,
                "F" => TemperatureUnits::Fahrenheit,
                other => panic!("units {other}"),
            },
            alarm_byte: u8::from_str_radix(s(v, "alarm_byte"), 16).expect("hex"),
            name: s(v, "name").into(),
        }),
        other => panic!("no event for class {other}"),
    }
}

/// The event behind an `update/…` payload: the document without its final
/// `timestamp` key.
fn update_event(subtopic: &str, payload: &str) -> Event {
    let v: Value = serde_json::from_str(payload).expect("update payload");
    let timestamp = f(&v, "timestamp");
    if subtopic == "de1/profile/id" {
        let id = v["id"].as_str().map(|h| {
            let mut id = [0u8; 20];
            for (i, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex id");
            }
            id
        });
        return Event::ProfileIdUpdate(ProfileIdUpdate { id, timestamp });
    }
    let document = match subtopic {
        "de1/control" => AreaDocument::Control(controls(&v)),
        "de1/setting" => AreaDocument::Setting(settings(&v)),
        "de1/calibration" => AreaDocument::Calibration(Calibration {
            line_frequency: v["line_frequency"]["hz"].as_u64().expect("hz") as u32,
            flow_multiplier: opt_f(&v["flow_multiplier"], "multiplier"),
        }),
        other => panic!("update topic {other}"),
    };
    Event::AreaUpdate(AreaUpdate {
        timestamp,
        document,
    })
}

fn opt_u(v: &Value, key: &str) -> Option<u64> {
    if v[key].is_null() {
        None
    } else {
        Some(
            v[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} is not an integer in {v}")),
        )
    }
}

fn b(v: &Value, key: &str) -> bool {
    v[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} is not a boolean in {v}"))
}

/// The typed values behind an `update/de1/control` payload.
fn controls(v: &Value) -> Controls {
    let e = &v["espresso"];
    let u8o = |v: &Value, k: &str| opt_u(v, k).map(|n| u8::try_from(n).expect("u8"));
    Controls {
        espresso: EspressoControl {
            stop_at_time: opt_f(e, "stop_at_time"),
            stop_at_volume: opt_f(e, "stop_at_volume"),
            stop_at_weight: opt_f(e, "stop_at_weight"),
            move_on_weight: e["move_on_weight"]
                .as_array()
                .expect("move_on_weight")
                .iter()
                .map(Value::as_f64)
                .collect(),
            disable_auto_tare: b(e, "disable_auto_tare"),
            profile_can_override_stop_limits: b(e, "profile_can_override_stop_limits"),
            profile_can_override_tank_temperature: b(e, "profile_can_override_tank_temperature"),
            first_drops_threshold: opt_f(e, "first_drops_threshold"),
            last_drops_minimum_time: f(e, "last_drops_minimum_time"),
        },
        steam: SteamControl {
            stop_at_time: u8o(&v["steam"], "stop_at_time"),
            disable_auto_tare: b(&v["steam"], "disable_auto_tare"),
        },
        hot_water: HotWaterControl {
            stop_at_time: u8o(&v["hot_water"], "stop_at_time"),
            stop_at_volume: u8o(&v["hot_water"], "stop_at_volume"),
            stop_at_weight: opt_f(&v["hot_water"], "stop_at_weight"),
            disable_auto_tare: b(&v["hot_water"], "disable_auto_tare"),
            temperature: u8o(&v["hot_water"], "temperature"),
        },
        hot_water_rinse: HotWaterRinseControl {
            stop_at_time: opt_f(&v["hot_water_rinse"], "stop_at_time"),
            disable_auto_tare: b(&v["hot_water_rinse"], "disable_auto_tare"),
            temperature: opt_f(&v["hot_water_rinse"], "temperature"),
            flow: opt_f(&v["hot_water_rinse"], "flow"),
        },
        tank_water_threshold: TankWaterThreshold {
            temperature: opt_u(&v["tank_water_threshold"], "temperature").map(|n| n as u32),
        },
    }
}

/// The typed values behind an `update/de1/setting` payload.
fn settings(v: &Value) -> Settings {
    let bf = &v["before_flow"];
    let st = &v["steam"];
    Settings {
        auto_off_time: opt_f(&v["auto_off_time"], "time"),
        fan_threshold: opt_u(&v["fan_threshold"], "temperature").map(|n| n as u32),
        start_fill_level: opt_f(&v["start_fill_level"], "start_fill_level"),
        before_flow: BeforeFlow {
            heater_phase1_flow: opt_f(bf, "heater_phase1_flow"),
            heater_phase2_flow: opt_f(bf, "heater_phase2_flow"),
            heater_phase2_timeout: opt_f(bf, "heater_phase2_timeout"),
            heater_idle_temperature: opt_f(bf, "heater_idle_temperature"),
        },
        target_group_temp: opt_f(&v["target_group_temp"], "temperature"),
        usb_outlet: v["usb_outlet"]["enabled"].as_bool(),
        refill_kit: v["refill_kit"]["present"].as_bool(),
        steam: SteamSetting {
            temperature: opt_u(st, "temperature").map(|n| n as u8),
            flow: opt_f(st, "flow"),
            high_flow_time: opt_f(st, "high_flow_time"),
            purge_deferred: st["purge_deferred"].as_bool(),
        },
        time: v["time"]["timestamp"].as_u64().expect("time"),
    }
}

fn log_event(record: &str) -> Event {
    let v: Value = serde_json::from_str(record).expect("log record");
    Event::Log(LogEntry {
        created: f(&v, "created"),
        level: match s(&v, "levelname") {
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" => LogLevel::Warning,
            "ERROR" => LogLevel::Error,
            "CRITICAL" => LogLevel::Critical,
            other => panic!("level {other}"),
        },
        message: s(&v, "message").into(),
        name: s(&v, "name").into(),
        process: v["process"].as_u64().expect("pid") as u32,
        process_name: s(&v, "processName").into(),
        thread: v["thread"].as_u64().expect("thread"),
        thread_name: s(&v, "threadName").into(),
    })
}

fn render(renderer: &Renderer, event: &Event) -> Vec<Outgoing> {
    let mut out = Vec::new();
    renderer.render(event, &mut out).expect("render");
    out
}

/// Asserts one publication equals the recorded one (topic, payload bytes, retain).
fn assert_same(out: &Outgoing, topic: &str, payload: &str) {
    assert_eq!(&*out.topic, topic);
    assert!(!out.retain, "event payloads are not retained in pyDE1 2.0");
    if out.payload != payload.as_bytes() {
        panic!(
            "payload differs on {topic}\n ours: {}\n   py: {payload}",
            String::from_utf8_lossy(&out.payload)
        );
    }
}

#[test]
fn every_recorded_event_payload_renders_byte_for_byte() {
    let renderer = Renderer::new("pyDE1", LogLevel::Debug);
    let mut per_class: BTreeMap<String, usize> = BTreeMap::new();
    for r in recording() {
        assert_eq!(r.qos, 0, "pyDE1 publishes everything at QoS 0");
        let Some(level) = r.topic.strip_prefix("pyDE1/") else {
            panic!("topic outside the root: {}", r.topic)
        };
        if level.starts_with("status/") || level.starts_with("log") {
            continue; // checked by other tests
        }
        assert!(!r.retain, "{} is not retained", r.topic);
        let event = if let Some(sub) = level.strip_prefix("update/") {
            update_event(sub, &r.payload)
        } else {
            let v: Value = serde_json::from_str(&r.payload).expect("payload JSON");
            assert_eq!(s(&v, "class"), level, "class names the topic");
            event_from(level, &v)
        };
        let out = render(&renderer, &event);
        assert_eq!(out.len(), 1, "{}", r.topic);
        assert_same(&out[0], &r.topic, &r.payload);
        *per_class.entry(level.to_owned()).or_default() += 1;
    }
    // Every class the recording holds was exercised.
    let classes: Vec<_> = per_class.keys().map(String::as_str).collect();
    assert_eq!(
        classes,
        [
            "AutoTareNotification",
            "ConnectivityChange",
            "DeviceAvailability",
            "ScaleChange",
            "ScaleTareSeen",
            "ScanResults",
            "SequencerGateNotification",
            "ShotSampleWithVolumesUpdate",
            "StateUpdate",
            "StopAtNotification",
            "WaterLevelUpdate",
            "WeightAndFlowUpdate",
            "update/de1/control",
        ]
    );
    assert_eq!(per_class["ShotSampleWithVolumesUpdate"], 142);
    assert_eq!(per_class["WeightAndFlowUpdate"], 290);
}

#[test]
fn recorded_status_topics_are_retained_here() {
    let statuses: Vec<_> = recording()
        .into_iter()
        .filter(|r| r.topic.contains("/status/"))
        .collect();
    assert_eq!(statuses.len(), 5);
    for r in statuses {
        assert!(r.retain && r.payload == "Here", "{}", r.topic);
    }
    use outbound::render::StatusTopic;
    let t = outbound::render::Topics::new("pyDE1");
    assert_eq!(
        t.status(StatusTopic::Notification),
        "pyDE1/status/mqtt/notification"
    );
    assert_eq!(t.status(StatusTopic::Logging), "pyDE1/status/mqtt/logging");
    assert_eq!(
        t.status(StatusTopic::Process(ProcessRole::Http)),
        "pyDE1/status/http"
    );
}

#[test]
fn recorded_log_records_render_on_both_log_topics() {
    let rec = recording();
    let renderer = Renderer::new("pyDE1", LogLevel::Debug);
    let mut pairs = 0;
    for (i, r) in rec.iter().enumerate() {
        if r.topic != "pyDE1/log/record" {
            continue;
        }
        // pyDE1 publishes the text form right before the record.
        let text = &rec[i - 1];
        assert_eq!(text.topic, "pyDE1/log");
        let out = render(&renderer, &log_event(&r.payload));
        assert_eq!(out.len(), 2);
        assert_same(&out[1], "pyDE1/log/record", &r.payload);
        assert_eq!(&*out[0].topic, "pyDE1/log");
        let ours = String::from_utf8(out[0].payload.clone()).expect("utf-8");
        // "YYYY-mm-dd HH:MM:SS,mmm" is local time: compare it only where this
        // machine's zone agrees with the recording's (UTC), the rest always.
        let (our_time, our_rest) = ours.split_at(23);
        let (py_time, py_rest) = text.payload.split_at(23);
        assert_eq!(our_rest, py_rest);
        if local_is_utc() {
            assert_eq!(our_time, py_time);
        } else {
            assert_eq!(our_time[19..], py_time[19..], "milliseconds");
        }
        pairs += 1;
    }
    assert_eq!(pairs, 32);

    // Below the configured level nothing is published.
    let errors_only = Renderer::new("pyDE1", LogLevel::Error);
    let info = rec.iter().find(|r| r.topic == "pyDE1/log/record").unwrap();
    assert!(render(&errors_only, &log_event(&info.payload)).is_empty());
}

fn local_is_utc() -> bool {
    let mut out = Vec::new();
    outbound::localtime::write_asctime(&mut out, 0.0).unwrap();
    out.starts_with(b"1970-01-01 00:00:00")
}

/// Observed payloads quoted in `pyde1-mqtt-api.md` for classes and topics the
/// recording does not contain.
#[test]
fn spec_examples_render_byte_for_byte() {
    let renderer = Renderer::new("pyDE1", LogLevel::Debug);
    let examples = [
        r#"{"arrival_time": 1795508637.208283, "create_time": 1795508637.208621, "sample_time": 950, "group_pressure": 4.699951171875, "group_flow": 2.0, "mix_temp": 92.0, "head_temp": 91.0, "set_mix_temp": 92.0, "set_head_temp": 92.0, "set_group_pressure": 9.0, "set_group_flow": 2.0, "frame_number": 2, "steam_temp": 150, "de1_time": 1795508637.208283, "volume_preinfuse": 4.166666666666666, "volume_pour": 11.666666666666664, "volume_total": 15.833333333333325, "volume_by_frames": [4.166666666666666, 0, 11.666666666666664, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "version": "1.2.0", "event_time": 1795508637.2086399, "sender": "DE1", "class": "ShotSampleWithVolumesUpdate"}"#,
        r#"{"arrival_time": 1795508637.3103912, "create_time": 1795508637.3105624, "scale_time": 1795508636.930391, "current_weight": 32.5, "current_weight_time": 1795508636.930391, "average_flow": 4.999179575991702, "average_flow_time": 1795508636.4218576, "median_weight": 30.0, "median_weight_time": 1795508636.4218576, "median_flow": 5.499097533590872, "median_flow_time": 1795508636.1165993, "version": "1.0.0", "event_time": 1795508637.3105648, "sender": "ScaleProcessor", "class": "WeightAndFlowUpdate"}"#,
        r#"{"arrival_time": 1626407564.4241736, "create_time": 1626407564.4242156, "button": 1, "version": "1.0.0", "event_time": 1626407564.5058796, "sender": "AtomaxSkaleII", "class": "ScaleButtonPress"}"#,
        r#"{"arrival_time": 1795508637.3109202, "create_time": 1795508637.3109202, "stop_at": "weight", "action": "triggered", "target_value": 36.0, "current_value": 32.5, "active_state": "Espresso", "current_frame": 2, "version": "1.1.0", "event_time": 1795508637.3109248, "sender": "FlowSequencerImpl", "class": "StopAtNotification"}"#,
        r#"{"arrival_time": 1675619184.844756, "create_time": 1675619184.8448336, "state": "ready", "role": "scale", "id": "FF:06:AF:AA:BB:CC", "name": "AtomaxSkaleII: Skale", "version": "1.1.0", "event_time": 1675619184.8514688, "sender": "AtomaxSkaleII", "class": "DeviceAvailability"}"#,
        r#"{"arrival_time": 1795509000.59, "create_time": 1795509000.59, "state": "uploading", "uploaded": 1024, "total": 483328, "version": "1.0.0", "event_time": 1795509000.59, "sender": "DE1", "class": "FirmwareUpload"}"#,
        r#"{"arrival_time": 1675618622.35119, "create_time": 1675618622.35119, "role": "thermometer", "scanning": false, "devices": [{"address": "00:A0:50:AA:BB:CC", "name": "BlueDOT", "rssi": -72}], "version": "1.0.0", "event_time": 1675618622.3513, "sender": "BluetoothScanner", "class": "ScanResults"}"#,
        r#"{"arrival_time": 1671910979.828197, "create_time": 1671910979.8283317, "temperature": 66, "high_alarm": 140, "units": "F", "alarm_byte": "00", "name": "BlueDOT_e2:f6:49", "version": "1.0.0", "event_time": 1671910979.828692, "sender": "BlueDOT", "class": "BlueDOTUpdate"}"#,
    ];
    for payload in examples {
        let v: Value = serde_json::from_str(payload).unwrap();
        let class = s(&v, "class");
        let out = render(&renderer, &event_from(class, &v));
        assert_eq!(out.len(), 1);
        assert_same(&out[0], &format!("pyDE1/{class}"), payload);
    }

    let updates = [
        (
            "de1/setting",
            r#"{"auto_off_time": {"time": 30.0}, "fan_threshold": {"temperature": 40}, "start_fill_level": {"start_fill_level": 5.0}, "before_flow": {"heater_phase1_flow": 2.0, "heater_phase2_flow": 4.0, "heater_phase2_timeout": 5.0, "heater_idle_temperature": 85.0}, "target_group_temp": {"temperature": 0.0}, "steam": {"temperature": 160, "flow": 0.7, "high_flow_time": 2.0, "purge_deferred": true}, "time": {"timestamp": 0}, "usb_outlet": {"enabled": true}, "refill_kit": {"present": false}, "timestamp": 1795508575.590705}"#,
        ),
        (
            "de1/calibration",
            r#"{"flow_multiplier": {"multiplier": 1.1}, "line_frequency": {"hz": 60}, "timestamp": 1795508575.373483}"#,
        ),
        (
            "de1/profile/id",
            r#"{"id": "d8b5888a8ef41837bc0ceb40baf495a112f15230", "timestamp": 1795508624.5534945}"#,
        ),
        (
            "de1/profile/id",
            r#"{"id": null, "timestamp": 1795508624.5}"#,
        ),
    ];
    for (sub, payload) in updates {
        let out = render(&renderer, &update_event(sub, payload));
        assert_eq!(out.len(), 1);
        assert_same(&out[0], &format!("pyDE1/update/{sub}"), payload);
    }
}

#[test]
fn a_different_root_moves_every_topic() {
    let renderer = Renderer::new("KEpyDE1", LogLevel::Debug);
    let rec = recording();
    let r = rec
        .iter()
        .find(|r| r.topic == "pyDE1/StateUpdate")
        .expect("a state update");
    let v: Value = serde_json::from_str(&r.payload).unwrap();
    let out = render(&renderer, &event_from("StateUpdate", &v));
    assert_eq!(&*out[0].topic, "KEpyDE1/StateUpdate");
    assert_eq!(out[0].payload, r.payload.as_bytes());
}

#[test]
fn heartbeats_and_process_status_are_not_payloads() {
    let renderer = Renderer::new("pyDE1", LogLevel::Debug);
    assert!(render(&renderer, &Event::Heartbeat).is_empty());
    let status = Event::ProcessStatus(ProcessStatus {
        process: ProcessRole::Http,
        presence: Presence::Here,
    });
    assert!(render(&renderer, &status).is_empty());
}

#[test]
fn area_updates_follow_their_area_topic() {
    let renderer = Renderer::new("pyDE1", LogLevel::Debug);
    let e = Event::AreaUpdate(AreaUpdate {
        timestamp: 1.0,
        document: AreaDocument::Calibration(Calibration {
            line_frequency: 50,
            flow_multiplier: None,
        }),
    });
    let out = render(&renderer, &e);
    assert_eq!(&*out[0].topic, "pyDE1/update/de1/calibration");
    assert_eq!(
        out[0].payload,
        br#"{"flow_multiplier": {"multiplier": null}, "line_frequency": {"hz": 50}, "timestamp": 1.0}"#
    );
}
