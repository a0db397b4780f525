//! Shared by the recorder's tests and bench: the reference pyDE1 shot read back into
//! events, a synthetic espresso of any length, and small helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_schema::event::*;
use recorder::names;
use serde_json::Value;

/// The workspace's shared reference data (`connect_shot.jsonl`: pyDE1 2.0 connecting to
/// a DE1 and a Skale and pulling a stop-at-weight espresso, every MQTT publication).
pub fn reference_path(rel: &str) -> PathBuf {
    // Resolved, so that a crate reached through a link still finds its workspace.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::canonicalize(manifest).unwrap_or_else(|_| manifest.to_owned());
    let root = manifest.join("../..");
    let candidates = [
        root.join("tests/vectors").join(rel),
        root.join("../shared/reference").join(rel),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("reference file not found in {candidates:?}"))
}

/// One recorded publication that is an event payload.
#[derive(Debug, Clone)]
pub struct Published {
    pub topic: String,
    pub payload: String,
    pub event: Event,
}

/// Every event payload of the reference recording, in publishing order.
pub fn pyde1_shot() -> Vec<Published> {
    let text = std::fs::read_to_string(reference_path("mqtt/connect_shot.jsonl"))
        .expect("reference recording");
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let rec: Value = serde_json::from_str(line).expect("recording line");
        let topic = rec["topic"].as_str().expect("topic").to_owned();
        let payload = rec["payload"].as_str().expect("payload").to_owned();
        let Ok(v) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        let Some(class) = v["class"].as_str() else {
            continue;
        };
        if let Some(event) = event_from(class, &v) {
            out.push(Published {
                topic,
                payload,
                event,
            });
        }
    }
    out
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn opt_f(v: &Value, k: &str) -> Option<f64> {
    (!v[k].is_null()).then(|| f(v, k))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn stamp(v: &Value) -> Stamp {
    Stamp {
        arrival_time: f(v, "arrival_time"),
        create_time: f(v, "create_time"),
        event_time: f(v, "event_time"),
    }
}

fn sender(v: &Value) -> Sender {
    names::sender_from(s(v, "sender")).expect("sender")
}

fn estimate(v: &Value, key: &str, time_key: &str) -> Option<Estimate> {
    if v[key].is_u64() && v[time_key].is_u64() {
        None
    } else {
        Some(Estimate {
            value: f(v, key),
            time: f(v, time_key),
        })
    }
}

/// The event a pyDE1 payload describes (`None` for classes that are not recorded).
pub fn event_from(class: &str, v: &Value) -> Option<Event> {
    Some(match class {
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
            let volume_by_frames = (!frames.is_empty()).then(|| {
                let mut a = [0.0; VOLUME_FRAMES];
                for (slot, x) in a.iter_mut().zip(frames) {
                    *slot = x.as_f64().expect("volume");
                }
                a
            });
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
        "WeightAndFlowUpdate" => Event::WeightAndFlowUpdate(WeightAndFlowUpdate {
            stamp: stamp(v),
            scale_time: f(v, "scale_time"),
            current_weight: f(v, "current_weight"),
            average_flow: estimate(v, "average_flow", "average_flow_time"),
            median_weight: estimate(v, "median_weight", "median_weight_time"),
            median_flow: estimate(v, "median_flow", "median_flow_time"),
        }),
        "ScaleTareSeen" => Event::ScaleTareSeen(ScaleTareSeen {
            stamp: stamp(v),
            sender: sender(v),
        }),
        "ScaleButtonPress" => Event::ScaleButtonPress(ScaleButtonPress {
            stamp: stamp(v),
            sender: sender(v),
            button: v["button"].as_u64().expect("button") as u8,
        }),
        "ScaleChange" => Event::ScaleChange(ScaleChange {
            stamp: stamp(v),
            sender: sender(v),
            state: names::availability_from(s(v, "state")).expect("state"),
            id: s(v, "id").to_owned(),
            name: s(v, "name").to_owned(),
        }),
        "SequencerGateNotification" => {
            Event::SequencerGateNotification(SequencerGateNotification {
                stamp: stamp(v),
                name: names::gate_from(s(v, "name")).expect("gate"),
                action: names::gate_action_from(s(v, "action")).expect("action"),
                sequence_id: recorder::rows::parse_sequence_id(s(v, "sequence_id")).expect("uuid"),
                active_state: v["active_state"]
                    .as_str()
                    .map(|x| x.parse().expect("state")),
            })
        }
        "StopAtNotification" => Event::StopAtNotification(StopAtNotification {
            stamp: stamp(v),
            stop_at: names::stop_at_from(s(v, "stop_at")).expect("stop_at"),
            action: names::stop_at_action_from(s(v, "action")).expect("action"),
            target_value: opt_f(v, "target_value"),
            current_value: opt_f(v, "current_value"),
            active_state: s(v, "active_state").parse().expect("state"),
            current_frame: v["current_frame"].as_u64().map(|x| x as u8),
        }),
        "AutoTareNotification" => Event::AutoTareNotification(AutoTareNotification {
            stamp: stamp(v),
            action: names::auto_tare_from(s(v, "action")).expect("action"),
        }),
        "DeviceAvailability" => Event::DeviceAvailability(DeviceAvailability {
            stamp: stamp(v),
            sender: sender(v),
            state: names::availability_from(s(v, "state")).expect("state"),
            role: names::role_from(s(v, "role")).expect("role"),
            id: s(v, "id").to_owned(),
            name: s(v, "name").to_owned(),
            simulated: v["simulated"].as_bool().unwrap_or(false),
        }),
        "ConnectivityChange" => Event::ConnectivityChange(ConnectivityChange {
            stamp: stamp(v),
            sender: sender(v),
            state: names::connectivity_from(s(v, "state")).expect("state"),
            id: s(v, "id").to_owned(),
            name: s(v, "name").to_owned(),
        }),
        "BlueDOTUpdate" => Event::BlueDotUpdate(BlueDotUpdate {
            stamp: stamp(v),
            temperature: v["temperature"].as_i64().expect("t") as i32,
            high_alarm: v["high_alarm"].as_i64().expect("t") as i32,
            units: names::units_from(s(v, "units")).expect("units"),
            alarm_byte: u8::from_str_radix(s(v, "alarm_byte"), 16).expect("hex"),
            name: s(v, "name").to_owned(),
        }),
        _ => return None,
    })
}

/// The reference shot's sequence.
pub const PYDE1_SEQUENCE: &str = "aaec143f-7078-419b-9a8b-d1f370eee4a5";

fn gate(t: f64, id: SequenceId, name: Gate, action: GateAction) -> Event {
    Event::SequencerGateNotification(SequencerGateNotification {
        stamp: Stamp::at(t),
        name,
        action,
        sequence_id: id,
        active_state: Some(MachineState::Espresso),
    })
}

fn state(t: f64, s: MachineState, sub: Substate, prev: (MachineState, Substate)) -> Event {
    Event::StateUpdate(StateUpdate {
        stamp: Stamp::at(t),
        state: s,
        substate: sub,
        previous_state: prev.0,
        previous_substate: prev.1,
        is_error_state: false,
    })
}

/// A synthetic espresso as the controller would report it: 2 s idle before (samples,
/// water levels), gates cleared then `sequence_start`, 2 s heating, `pour_secs` of flow
/// (DE1 samples every 0.25 s with volumes, scale reports every 0.1 s), 1 s flush, 2 s of
/// last drops, `sequence_complete`. Times start at `t0`.
pub fn synthetic_espresso(t0: f64, pour_secs: f64, id: SequenceId) -> Vec<Event> {
    use MachineState as M;
    use Substate as S;
    let mut out = Vec::new();
    let mut t = t0;
    let sample = |t: f64, frame: u8, flow: f64, volume: f64| {
        let mut frames = [0.0; VOLUME_FRAMES];
        frames[usize::from(frame)] = volume;
        Event::ShotSampleWithVolumesUpdate(ShotSampleWithVolumesUpdate {
            stamp: Stamp {
                arrival_time: t,
                create_time: t + 0.0001,
                event_time: t + 0.0002,
            },
            sample_time: ((t * 120.0) as u64 % 65536) as u16,
            group_pressure: 9.0 * flow / 2.0,
            group_flow: flow,
            mix_temp: 92.5 + flow / 10.0,
            head_temp: 92.1,
            set_mix_temp: 93.0,
            set_head_temp: 93.0,
            set_group_pressure: if frame == 0 { 0.0 } else { 9.0 },
            set_group_flow: if frame == 0 { 4.0 } else { 0.0 },
            frame_number: frame,
            steam_temp: 150,
            de1_time: t,
            volume_preinfuse: if frame == 0 { volume } else { 0.0 },
            volume_pour: if frame == 0 { 0.0 } else { volume },
            volume_total: volume,
            volume_by_frames: Some(frames),
        })
    };
    // Idle before the shot.
    while t < t0 + 2.0 {
        out.push(sample(t, 0, 0.0, 0.0));
        if ((t - t0) * 4.0).round() as i64 % 4 == 0 {
            out.push(Event::WaterLevelUpdate(WaterLevelUpdate {
                stamp: Stamp::at(t + 0.01),
                level: 31.5,
                start_fill_level: 5.0,
            }));
        }
        t += 0.25;
    }
    out.push(state(
        t,
        M::Espresso,
        S::HeatWaterHeater,
        (M::Idle, S::NoState),
    ));
    for g in Gate::ALL {
        out.push(gate(t + 0.001, id, g, GateAction::Clear));
    }
    out.push(gate(t + 0.002, id, Gate::SequenceStart, GateAction::Set));
    let heat_end = t + 2.0;
    while t < heat_end {
        t += 0.25;
        out.push(sample(t, 0, 0.0, 0.0));
    }
    out.push(state(
        t,
        M::Espresso,
        S::PreInfuse,
        (M::Espresso, S::HeatWaterHeater),
    ));
    out.push(gate(t + 0.001, id, Gate::FlowBegin, GateAction::Set));
    let flow_start = t;
    let flow_end = t + pour_secs;
    let mut volume = 0.0;
    let mut weight: f64 = 0.0;
    let mut next_sample = t + 0.25;
    let mut scale_t = t;
    let mut last_weights: Vec<(f64, f64)> = Vec::new();
    while scale_t < flow_end {
        scale_t += 0.1;
        if scale_t >= next_sample {
            let frame = if next_sample - flow_start < pour_secs / 3.0 {
                0
            } else {
                1
            };
            volume += 2.0 * 0.25;
            out.push(sample(next_sample, frame, 2.0, volume));
            next_sample += 0.25;
        }
        if scale_t - flow_start > 3.0 {
            weight += 0.18;
        }
        last_weights.push((scale_t, weight));
        let est = |back: usize| -> Option<Estimate> {
            let n = last_weights.len();
            (n > back).then(|| Estimate {
                value: (last_weights[n - 1].1 - last_weights[n - 1 - back].1)
                    / (last_weights[n - 1].0 - last_weights[n - 1 - back].0),
                time: last_weights[n - 1 - back / 2].0,
            })
        };
        out.push(Event::WeightAndFlowUpdate(WeightAndFlowUpdate {
            stamp: Stamp {
                arrival_time: scale_t + 0.3,
                create_time: scale_t + 0.3001,
                event_time: scale_t + 0.3002,
            },
            scale_time: scale_t,
            current_weight: (weight * 10.0).round() / 10.0,
            average_flow: est(10),
            median_weight: est(10).map(|e| Estimate {
                value: weight,
                time: e.time,
            }),
            median_flow: est(10),
        }));
    }
    t = flow_end;
    out.push(state(t, M::Espresso, S::Flush, (M::Espresso, S::Pour)));
    out.push(gate(t + 0.001, id, Gate::FlowEnd, GateAction::Set));
    out.push(state(t + 1.0, M::Idle, S::NoState, (M::Espresso, S::Flush)));
    out.push(gate(t + 1.001, id, Gate::FlowStateExit, GateAction::Set));
    out.push(gate(t + 3.0, id, Gate::LastDrops, GateAction::Set));
    out.push(gate(t + 3.001, id, Gate::SequenceComplete, GateAction::Set));
    out
}

/// How many events of `events` are DE1 shot samples.
pub fn count_samples(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::ShotSampleWithVolumesUpdate(_)))
        .count()
}

/// A sequence id that differs per `n`.
pub fn seq(n: u8) -> SequenceId {
    SequenceId::from_random_bytes([n; 16])
}

/// Options for a test database in `dir` (synchronous NORMAL: tests need not wait for the
/// disk).
pub fn options(dir: &Path) -> recorder::RecorderOptions {
    let mut o = recorder::RecorderOptions::new(dir.join("shots.sqlite3"));
    o.sync_full = false;
    o.commit_interval = Duration::from_millis(50);
    o
}

/// A stock profile of the reference data.
pub fn profile_source(name: &str) -> Vec<u8> {
    std::fs::read(reference_path(&format!("profiles/{name}.json"))).expect("profile")
}
