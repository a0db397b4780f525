//! The controller with the simulated DE1: link management, reconnection in the middle
//! of a shot, remembered devices, commands, and the controller socket.

mod common;

use std::sync::Arc;
use std::time::Duration;

use controller::bus::{Delivery, Subscription};
use controller::clock::Clock;
use controller::controller::{Controller, ControllerSetup};
use controller::de1::De1Options;
use controller::link::LinkOptions;
use de1_protocol::state::MachineState as S;
use de1_sim::{ShotPoint, SimControl, SimDevice, SimTransport};
use ipc_schema::command::{
    Change, Command, CommandErrorKind, Device, DeviceSelection, Document, ModeRequest, Reply,
    Resource,
};
use ipc_schema::event::{AvailabilityState as A, DeviceRole, Event};
use ipc_schema::Config;

const T: Duration = Duration::from_secs(60);

fn setup(
    t: &SimTransport,
    state_dir: Option<std::path::PathBuf>,
    simulated: bool,
) -> ControllerSetup {
    let transport: Arc<dyn ble::Transport> = Arc::new(t.clone());
    ControllerSetup {
        config: Config::default(),
        transport: Ok(transport),
        simulated,
        state_dir,
        clock: Clock::starting_at(1_700_000_000.0),
        bus: controller::bus::EventBus::new(100_000),
        link: LinkOptions::default(),
        de1: De1Options::default(),
        auto_connect: true,
    }
}

async fn ready(ctl: &Controller) {
    assert!(
        ctl.de1_link().wait_for(T, |s| s.is_ready()).await,
        "DE1 never ready: {:?}",
        ctl.de1_link().status()
    );
}

fn drain(sub: &mut Subscription) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(d) = sub.try_recv() {
        match d {
            Delivery::Event(e) => out.push(e),
            Delivery::Lagged(n) => panic!("lagged {n}"),
        }
    }
    out
}

fn de1_availability(events: &[Event]) -> Vec<A> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DeviceAvailability(a) if a.role == DeviceRole::De1 => Some(a.state),
            _ => None,
        })
        .collect()
}

async fn call(ctl: &Controller, c: Command) -> Result<Reply, ipc_schema::command::CommandError> {
    ctl.dispatch(c).await
}

fn mode(m: ModeRequest) -> Command {
    Command::Patch {
        resource: Resource::De1Mode,
        changes: vec![Change::Mode(m)],
    }
}

fn sim() -> (SimTransport, SimControl) {
    common::sim(|_| {})
}

#[tokio::test(start_paused = true)]
async fn a_disconnect_mid_shot_reconnects_and_reports_the_truth_throughout() {
    let (t, sim) = sim();
    let ctl = Controller::start(setup(&t, None, true));
    let mut sub = ctl.bus().subscribe();
    ready(&ctl).await;
    // Found by scanning (nothing configured or remembered), announced as simulated.
    let status = ctl.de1_link().status();
    assert!(status.simulated);
    assert_eq!(
        status.address.as_ref().map(|a| a.to_string()).as_deref(),
        Some(de1_sim::DE1_ADDRESS)
    );
    assert_eq!(
        de1_availability(&drain(&mut sub)),
        [A::Capturing, A::Captured, A::Ready]
    );

    let reply = call(
        &ctl,
        Command::UploadProfile {
            source: common::profile("de1app__blooming_espresso"),
        },
    )
    .await
    .expect("profile");
    assert!(matches!(reply, Reply::Profile(_)));
    sim.drop_connection_at(
        SimDevice::De1,
        ShotPoint::SecondsIntoPour(3.0),
        Duration::from_secs(3),
    );
    call(&ctl, mode(ModeRequest::Espresso))
        .await
        .expect("espresso");

    // The link drops mid-shot: at once nothing claims to be connected.
    assert!(ctl.de1_link().wait_for(T, |s| !s.is_ready()).await);
    assert!(ctl.de1().is_none());
    for c in [Command::Get(Resource::De1State), mode(ModeRequest::Stop)] {
        let e = call(&ctl, c).await.expect_err("not connected");
        assert_eq!(e.kind, CommandErrorKind::NotConnected, "{}", e.message);
    }
    // Connection-independent resources still answer.
    match call(&ctl, Command::Get(Resource::De1Availability)).await {
        Ok(Reply::Document(Document::Availability(a))) => {
            assert!(
                matches!(a.state, A::NotReady | A::Capturing),
                "{:?}",
                a.state
            )
        }
        other => panic!("{other:?}"),
    }

    // Back after the outage, with a fresh connect-time sequence.
    ready(&ctl).await;
    let events = drain(&mut sub);
    let avail = de1_availability(&events);
    assert_eq!(
        avail,
        [A::NotReady, A::Capturing, A::Captured, A::Ready],
        "{avail:?}"
    );
    // Nothing was reported from the machine while the link was down: every StateUpdate
    // and sample lies before the NotReady event or after the new connection is up.
    let pos = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).expect("event");
    let down = pos(&|e| matches!(e, Event::DeviceAvailability(a) if a.state == A::NotReady));
    let captured = pos(&|e| matches!(e, Event::DeviceAvailability(a) if a.state == A::Captured));
    let up = pos(&|e| matches!(e, Event::DeviceAvailability(a) if a.state == A::Ready));
    assert!(down < captured && captured < up);
    assert!(!events[down..captured].iter().any(|e| matches!(
        e,
        Event::StateUpdate(_) | Event::ShotSampleWithVolumesUpdate(_)
    )));
    // The samples before the drop were flowing (a shot was running).
    assert!(events[..down].iter().any(|e| matches!(e,
        Event::ShotSampleWithVolumesUpdate(s) if s.group_flow > 0.5)));
    // The sequence that lost its DE1 was completed.
    assert!(events[..up].iter().any(|e| matches!(e,
        Event::SequencerGateNotification(g) if g.name == ipc_schema::event::Gate::SequenceComplete)));

    // What the controller reports is what the machine is doing now.
    let machine = sim.snapshot().de1.state;
    match call(&ctl, Command::Get(Resource::De1State)).await {
        Ok(Reply::Document(Document::De1State(s))) => assert_eq!(s.state, machine),
        other => panic!("{other:?}"),
    }
    // The profile is not claimed across connections.
    match call(&ctl, Command::Get(Resource::De1ProfileId)).await {
        Ok(Reply::Document(Document::ProfileId(id))) => assert_eq!(id, None),
        other => panic!("{other:?}"),
    }
    // And it is fully usable again once the machine has finished the shot.
    let de1 = ctl.de1().expect("de1");
    assert!(
        common::wait_state(&de1, Duration::from_secs(300), |s| s.state == S::Idle)
            .await
            .is_some(),
        "the shot ended on the machine"
    );
    call(&ctl, mode(ModeRequest::HotWater))
        .await
        .expect("hot water");
    assert!(
        common::wait_state(&ctl.de1().expect("de1"), T, |s| s.state == S::HotWater)
            .await
            .is_some()
    );
}

#[tokio::test(start_paused = true)]
async fn reconnection_backs_off_while_the_de1_is_away() {
    let (t, sim) = sim();
    let ctl = Controller::start(setup(&t, None, true));
    ready(&ctl).await;
    sim.drop_connection_for(SimDevice::De1, Duration::from_secs(40));
    assert!(ctl.de1_link().wait_for(T, |s| s.failures >= 3).await);
    let failures_at_10s = {
        tokio::time::sleep(Duration::from_secs(10)).await;
        ctl.de1_link().status().failures
    };
    // Immediate first retry, then 0.5 s, 1 s, 2 s, 4 s, 8 s …: a handful of attempts,
    // not a busy loop.
    assert!(
        (3..=8).contains(&failures_at_10s),
        "{failures_at_10s} attempts"
    );
    assert_eq!(ctl.de1_link().status().availability, A::Capturing);
    ready(&ctl).await;
    assert_eq!(ctl.de1_link().status().failures, 0);
    assert_eq!(ctl.de1_link().status().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn devices_are_remembered_and_reconnected_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (t, _sim) = sim();
        // Not simulated as far as the controller knows: it remembers.
        let ctl = Controller::start(setup(&t, Some(dir.path().to_owned()), false));
        ready(&ctl).await;
        assert!(
            ctl.scale_link().wait_for(T, |s| s.is_ready()).await,
            "scale"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.shutdown().await;
    }
    let store = controller::store::Store::open(dir.path()).expect("store");
    let devices = store.devices();
    assert_eq!(devices.de1.as_deref(), Some(de1_sim::DE1_ADDRESS));
    assert_eq!(devices.scale.as_deref(), Some(de1_sim::SKALE_ADDRESS));

    // Next start: straight to the remembered address (no scan needed). The simulated
    // DE1 stops advertising while connected, so a scan would find nothing: being ready
    // proves the address was used.
    let (t, _sim) = sim();
    let ctl = Controller::start(setup(&t, Some(dir.path().to_owned()), false));
    ready(&ctl).await;
    assert_eq!(
        ctl.de1_link()
            .status()
            .address
            .map(|a| a.to_string())
            .as_deref(),
        Some(de1_sim::DE1_ADDRESS)
    );
    // Forgetting removes it.
    call(
        &ctl,
        Command::Patch {
            resource: Resource::De1Id,
            changes: vec![Change::SelectDevice {
                device: Device::De1,
                selection: DeviceSelection::Forget,
            }],
        },
    )
    .await
    .expect("forget");
    assert_eq!(store.devices().de1, None);
    assert!(
        ctl.de1_link()
            .wait_for(T, |s| s.availability == A::Released)
            .await
    );
}

#[tokio::test(start_paused = true)]
async fn without_bluetooth_every_request_fails_at_once_with_a_clear_error() {
    let mut s = setup(&sim().0, None, false);
    s.transport = Err("no Bluetooth: no adapter found".into());
    let ctl = Controller::start(s);
    let start = tokio::time::Instant::now();
    for c in [
        Command::Get(Resource::De1State),
        mode(ModeRequest::Espresso),
        Command::Scan {
            role: DeviceRole::De1,
        },
        Command::Patch {
            resource: Resource::De1Availability,
            changes: vec![Change::Availability {
                device: Device::De1,
                request: ipc_schema::command::CaptureRequest::Capture,
            }],
        },
    ] {
        let name = c.name();
        let e = call(&ctl, c).await.expect_err(name);
        assert_eq!(
            e.kind,
            CommandErrorKind::NotConnected,
            "{name}: {}",
            e.message
        );
    }
    let e = call(&ctl, Command::Get(Resource::De1State))
        .await
        .expect_err("state");
    assert!(e.message.contains("no adapter"), "{}", e.message);
    assert!(start.elapsed() < Duration::from_millis(10));
    // Still answers what needs no device.
    assert!(matches!(call(&ctl, Command::Ping).await, Ok(Reply::Pong)));
    assert!(matches!(
        call(&ctl, Command::Get(Resource::De1ControlEspresso)).await,
        Ok(Reply::Document(Document::Controls(_)))
    ));
}
