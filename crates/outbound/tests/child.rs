//! `outbound::run` as the launcher runs it: a `ChildEnv`, a controller serving events on
//! its socket, and a private broker.

mod common;

use std::time::Duration;

use common::{Broker, Sub};
use ipc_schema::child::{ChildEnv, ShutdownReason};
use ipc_schema::command::{CommandError, CommandErrorKind, Reply};
use ipc_schema::config::Config;
use ipc_schema::event::{Event, MachineState, Stamp, StateUpdate, Substate};
use ipc_schema::Role;
use paho_mqtt as mqtt;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(10);

fn has(msgs: &[mqtt::Message], topic: &str, payload: &str) -> bool {
    msgs.iter()
        .rev()
        .find(|m| m.topic() == topic)
        .is_some_and(|m| m.payload() == payload.as_bytes())
}

/// A controller on its own thread; returns its event bus and a way to stop it.
fn controller(env: ChildEnv) -> (broadcast::Sender<Event>, std::thread::JoinHandle<()>) {
    let (events, _) = broadcast::channel(64);
    let bus = events.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = env.bind_controller().expect("bind controller socket");
            ready_tx.send(()).expect("signal");
            let dispatch = |_| async {
                Err::<Reply, _>(CommandError {
                    kind: CommandErrorKind::Internal,
                    message: "test controller".into(),
                    path: None,
                })
            };
            ipc_schema::server::serve(listener, dispatch, bus, None, env.shutdown().clone()).await;
        });
    });
    ready_rx.recv_timeout(WAIT).expect("controller listening");
    (events, thread)
}

#[tokio::test]
async fn run_publishes_the_controllers_events_and_follows_its_link() {
    let broker = Broker::start();
    let mut sub = Sub::connect(broker.port, &["pyDE1/#"]).await;
    let dir = tempfile::tempdir().expect("runtime dir");
    let mut config = Config::default();
    config.mqtt.broker_host = "127.0.0.1".into();
    config.mqtt.broker_port = broker.port;

    let ctl_env = ChildEnv::standalone(Role::Controller, dir.path().into(), config.clone());
    let (events, ctl_thread) = controller(ctl_env.clone());

    let out_env = ChildEnv::standalone(Role::Outbound, dir.path().into(), config);
    let out_thread = {
        let env = out_env.clone();
        std::thread::spawn(move || outbound::run(env))
    };

    let up = sub
        .collect_until(WAIT, |m| {
            has(m, "pyDE1/status/controller", "Here")
                && has(m, "pyDE1/status/mqtt/notification", "Here")
        })
        .await;
    assert!(
        has(&up, "pyDE1/status/controller", "Here"),
        "controller link up"
    );

    let state = Event::StateUpdate(StateUpdate {
        stamp: Stamp::at(1_795_509_490.5),
        state: MachineState::Espresso,
        substate: Substate::PreInfuse,
        previous_state: MachineState::Espresso,
        previous_substate: Substate::StabilizeMixTemp,
        is_error_state: false,
    });
    events.send(state).expect("a subscriber");
    let got = sub
        .collect_until(WAIT, |m| m.iter().any(|m| m.topic() == "pyDE1/StateUpdate"))
        .await;
    let m = got
        .iter()
        .find(|m| m.topic() == "pyDE1/StateUpdate")
        .expect("state update published");
    let v: serde_json::Value = serde_json::from_slice(m.payload()).expect("JSON");
    assert_eq!(v["substate"], "PreInfuse");
    assert_eq!(v["sender"], "DE1");

    // The controller goes away without a goodbye.
    ctl_env
        .shutdown()
        .request(ShutdownReason::Internal("test".into()));
    ctl_thread.join().expect("controller thread");
    let died = sub
        .collect_until(WAIT, |m| has(m, "pyDE1/status/controller", "Died"))
        .await;
    assert!(has(&died, "pyDE1/status/controller", "Died"));

    out_env
        .shutdown()
        .request(ShutdownReason::Internal("test".into()));
    let code = out_thread.join().expect("outbound thread");
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    let gone = sub
        .collect_until(WAIT, |m| has(m, "pyDE1/status/mqtt/notification", "Gone"))
        .await;
    assert!(has(&gone, "pyDE1/status/mqtt/notification", "Gone"));
}
