//! The controller socket: commands and typed replies, subscriptions with a snapshot,
//! and a slow subscriber that never holds anything up.

mod common;

use std::sync::Arc;
use std::time::Duration;

use controller::clock::Clock;
use controller::controller::{Controller, ControllerSetup};
use controller::de1::De1Options;
use controller::link::LinkOptions;
use futures::{SinkExt, StreamExt};
use ipc_schema::child::Shutdown;
use ipc_schema::command::{Command, CommandErrorKind, Document, Reply, Resource};
use ipc_schema::envelope::{FromController, Role, ToController};
use ipc_schema::event::{Event, Stamp, WaterLevelUpdate};
use ipc_schema::framing::{handshake, MAX_FRAME_LEN};
use ipc_schema::server::ControllerListener;
use ipc_schema::{CallError, Config, ControllerClient, LinkEvent};

const T: Duration = Duration::from_secs(20);

fn setup(transport: Result<Arc<dyn ble::Transport>, String>, simulated: bool) -> ControllerSetup {
    ControllerSetup {
        config: Config::default(),
        transport,
        simulated,
        state_dir: None,
        clock: Clock::new(),
        bus: controller::bus::EventBus::new(256),
        link: LinkOptions::default(),
        de1: De1Options::default(),
        auto_connect: true,
    }
}

fn serve(dir: &tempfile::TempDir, ctl: &Controller) -> (std::path::PathBuf, Shutdown) {
    let path = dir.path().join("controller.sock");
    let listener = ControllerListener::bind(&path).expect("bind");
    let sd = Shutdown::new();
    tokio::spawn(controller::process::serve(
        listener,
        ctl.clone(),
        sd.clone(),
    ));
    (path, sd)
}

#[tokio::test]
async fn commands_get_typed_replies_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(setup(Err("no Bluetooth: no adapter".into()), false));
    let (path, _sd) = serve(&dir, &ctl);
    let client = ControllerClient::start(path, Role::Tool);
    assert_eq!(client.call(Command::Ping, T).await, Ok(Reply::Pong));
    match client.call(Command::Get(Resource::De1Id), T).await {
        Ok(Reply::Document(Document::DeviceId(id))) => {
            assert_eq!(id.address, None);
            assert_eq!(id.name, "DE1_None");
        }
        other => panic!("{other:?}"),
    }
    match client.call(Command::Get(Resource::De1State), T).await {
        Err(CallError::Command(e)) => {
            assert_eq!(e.kind, CommandErrorKind::NotConnected);
            assert!(e.message.contains("DE1 not connected"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    match client
        .call(
            Command::UploadProfile {
                source: b"{}".to_vec(),
            },
            T,
        )
        .await
    {
        Err(CallError::Command(e)) => assert_eq!(e.kind, CommandErrorKind::BadRequest),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_slow_subscriber_loses_only_counted_samples_and_blocks_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(setup(Err("no Bluetooth".into()), false));
    let (path, _sd) = serve(&dir, &ctl);

    // A subscriber that does not read for a while.
    let raw = ipc_schema::socket::connect(&path).await.expect("connect");
    let (_, mut slow) = handshake::<_, ToController, FromController>(
        raw,
        Role::Outbound,
        &[Role::Controller],
        MAX_FRAME_LEN,
    )
    .await
    .expect("handshake");
    slow.send(ToController::Subscribe).await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let n = 20_000u32;
    let start = std::time::Instant::now();
    for i in 0..n {
        ctl.bus().publish(Event::WaterLevelUpdate(WaterLevelUpdate {
            stamp: Stamp::at(f64::from(i)),
            level: f64::from(i),
            start_fill_level: 5.0,
        }));
    }
    // Publishing never waited for the subscriber.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // Others are served meanwhile.
    let client = ControllerClient::start(path.clone(), Role::Tool);
    assert_eq!(client.call(Command::Ping, T).await, Ok(Reply::Pong));

    // Everything published is either delivered, in order, or counted as lagged.
    let mut delivered = 0u64;
    let mut lagged = 0u64;
    let mut last = -1.0;
    while delivered + lagged < u64::from(n) {
        match tokio::time::timeout(T, slow.next())
            .await
            .expect("frames")
            .expect("open")
        {
            Ok(FromController::Event(Event::WaterLevelUpdate(w))) => {
                assert!(w.level > last, "out of order");
                last = w.level;
                delivered += 1;
            }
            Ok(FromController::Lagged(k)) => lagged += k,
            Ok(_) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lagged > 0, "the subscriber was slow");
    assert_eq!(
        last,
        f64::from(n - 1),
        "the newest sample is always delivered"
    );
}

#[tokio::test]
async fn the_simulated_de1_reaches_subscribers_over_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (t, _ctl_sim) = controller::process::simulator();
    let ctl = Controller::start(setup(Ok(Arc::new(t)), true));
    let (path, _sd) = serve(&dir, &ctl);
    let (client, mut events) = ControllerClient::start_subscribed(path, Role::Outbound);
    assert!(matches!(events.recv().await, Some(LinkEvent::Connected(_))));
    let mut ready = false;
    let mut state = false;
    let mut sample = false;
    let end = tokio::time::Instant::now() + T;
    while !(ready && state && sample) {
        match tokio::time::timeout_at(end, events.recv())
            .await
            .expect("events in time")
        {
            Some(LinkEvent::Event(Event::DeviceAvailability(a))) => {
                if a.state == ipc_schema::event::AvailabilityState::Ready
                    && a.role == ipc_schema::event::DeviceRole::De1
                {
                    // The simulator says what it is.
                    assert_eq!(a.name, controller::process::SIMULATED_DE1_NAME);
                    ready = true;
                }
            }
            Some(LinkEvent::Event(Event::StateUpdate(_))) => state = true,
            Some(LinkEvent::Event(Event::ShotSampleWithVolumesUpdate(_))) => sample = true,
            Some(_) => {}
            None => panic!("subscription ended"),
        }
    }
    match client.call(Command::Get(Resource::De1State), T).await {
        Ok(Reply::Document(Document::De1State(s))) => {
            assert!(s.last_update.is_some(), "the StateUpdate is echoed");
        }
        other => panic!("{other:?}"),
    }
    // A subscriber that arrives later gets the current state first.
    let dir2 = dir.path().join("controller.sock");
    let (_c2, mut late) = ControllerClient::start_subscribed(dir2, Role::Tool);
    assert!(matches!(late.recv().await, Some(LinkEvent::Connected(_))));
    let mut first = Vec::new();
    for _ in 0..3 {
        if let Some(LinkEvent::Event(e)) = late.recv().await {
            first.push(e);
        }
    }
    assert!(
        matches!(&first[0], Event::DeviceAvailability(a) if a.state == ipc_schema::event::AvailabilityState::Ready),
        "{first:?}"
    );
}
