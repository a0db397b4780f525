//! `run_recorder` as the outbound process runs it: its own subscription to a controller
//! socket, the context asked over the same link, the profile read from the controller's
//! store, and an orderly stop.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ipc_schema::child::{ChildEnv, ShutdownReason};
use ipc_schema::command::{
    Command, CommandError, CommandErrorKind, DeviceId, Document, Reply, Resource,
};
use ipc_schema::event::Event;
use ipc_schema::{Config, Role};
use recorder::history::{History, Page, SequenceFilter};

const LONDONIUM_ID: &str = "99f1218bceadc4b5dec3eb8c5dd921881269f886";

fn id_bytes(hex: &str) -> [u8; 20] {
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_recorder_records_what_the_controller_publishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.database.path = dir.path().join("lib/shots.sqlite3");
    config.launcher.state_dir = dir.path().join("state");
    // The controller's profile store holds the profile the shot ran.
    let profiles = config.launcher.state_dir.join("profiles");
    std::fs::create_dir_all(&profiles).expect("store");
    std::fs::write(
        profiles.join(format!("{LONDONIUM_ID}.json")),
        profile_source("de1app__londonium"),
    )
    .expect("profile");
    let runtime = dir.path().join("run");
    std::fs::create_dir_all(&runtime).expect("runtime");

    // A controller that knows the profile and the scale, and has no DE1 documents.
    let controller = ChildEnv::standalone(Role::Controller, runtime.clone(), config.clone());
    let listener = controller.bind_controller().expect("bind");
    let (bus, _) = tokio::sync::broadcast::channel::<Event>(4096);
    let dispatch = |command: Command| async move {
        match command {
            Command::Get(Resource::De1ProfileId) => Ok(Reply::Document(Document::ProfileId(Some(
                id_bytes(LONDONIUM_ID),
            )))),
            Command::Get(Resource::ScaleId) => Ok(Reply::Document(Document::DeviceId(DeviceId {
                address: Some("CF:75:75:00:5C:A1".into()),
                name: "AtomaxSkaleII: Skale".into(),
                simulated: false,
            }))),
            _ => Err(CommandError::new(
                CommandErrorKind::NotConnected,
                "no DE1 in this test",
            )),
        }
    };
    let server = tokio::spawn(ipc_schema::server::serve(
        listener,
        dispatch,
        bus.clone(),
        None,
        controller.shutdown().clone(),
    ));

    let outbound = ChildEnv::standalone(Role::Outbound, runtime, config.clone());
    let task = tokio::spawn(recorder::run_recorder(outbound.clone()));
    wait_for("the recorder's subscription", || bus.receiver_count() > 0).await;

    for (i, p) in pyde1_shot().into_iter().enumerate() {
        bus.send(p.event).expect("send");
        if i % 32 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let path = recorder::database_path(&config, outbound.runtime_dir());
    assert_eq!(path, config.database.path);
    wait_for("the recorded shot with its profile", || {
        let Ok(h) = History::open(&path) else {
            return false;
        };
        h.get_sequence(PYDE1_SEQUENCE)
            .ok()
            .flatten()
            .is_some_and(|s| s["end_reason"] == "complete" && s["profile"]["title"] == "Londonium")
    })
    .await;

    outbound
        .shutdown()
        .request(ShutdownReason::Internal("test over".into()));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the recorder stops when asked")
        .expect("task");
    controller
        .shutdown()
        .request(ShutdownReason::Internal("test over".into()));
    let _ = server.await;

    let h = History::open(&path).expect("history");
    let list = h
        .list_sequences(&SequenceFilter::default(), Page::default())
        .expect("list");
    assert_eq!(list.total, 1);
    let s = &list.sequences[0];
    assert!(!s.profile_assumed);
    assert_eq!(s.dropped_events, 0);
    assert!(s.shot_samples > 100, "{s:?}");
    let full = h.get_sequence(PYDE1_SEQUENCE).expect("get").expect("seq");
    assert_eq!(full["resources"]["scale_id"]["id"], "CF:75:75:00:5C:A1");
    // Without a DE1 document there are no DE1 settings to keep.
    assert_eq!(full["resources"]["de1_id"], serde_json::Value::Null);
    assert_eq!(
        full["profile"]["fingerprint"],
        "e4a28e40c62ff5f03e4d6246051f4536bea69983"
    );
}

#[test]
fn a_simulated_run_keeps_its_shots_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.database.path = dir.path().join("real/shots.sqlite3");
    config.bluetooth.simulate = true;
    let runtime = dir.path().join("run");
    let path = recorder::database_path(&config, &runtime);
    assert_eq!(path, runtime.join("state/shots.sqlite3"));
    let o = recorder::RecorderOptions::for_child(&config, &runtime);
    assert_eq!(o.profile_dir, Some(runtime.join("state/profiles")));
}
