//! The controller process: the controller socket, event fan-out to subscribers, and
//! command dispatch.
//!
//! Inbound, outbound and tools connect to the controller socket and may come and go at
//! any time; a connection never touches the device links. Each connection has:
//!
//! * a reader that hands every request to [`Controller::dispatch`] in its own task (at
//!   most [`MAX_IN_FLIGHT`] at once); a request that reached the controller completes
//!   even if its requester goes away;
//! * after `Subscribe`, a [`crate::bus::Subscription`] — a bounded queue that drops the
//!   oldest high-rate samples when the subscriber is slow — preceded by a snapshot of the
//!   current device availability and DE1 state;
//! * one writer that sends responses first, then events.
//!
//! A connection that lies in its handshake, sends garbage, or vanishes is dropped with a
//! log line; nothing else is affected.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipc_schema::child::{ChildEnv, Shutdown, ShutdownReason};
use ipc_schema::config::Config;
use ipc_schema::envelope::{FromController, Role, ToController};
use ipc_schema::event::{Event, Presence, ProcessRole, ProcessStatus};
use ipc_schema::framing::{handshake, MAX_FRAME_LEN};
use ipc_schema::server::ControllerListener;
use ipc_schema::socket::Stream;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use crate::bus::{Delivery, Subscription};
use crate::controller::{Controller, ControllerSetup};

const LOG: &str = "controller::process";
/// Requests of one connection carried out at the same time; further ones wait.
pub const MAX_IN_FLIGHT: usize = 64;
/// Responses queued for one connection's socket.
const RESPONSE_QUEUE_LEN: usize = 256;
/// How long the last events of an orderly stop (sleep, release, "gone") get to reach
/// the subscribers before their connections close.
const FINAL_EVENTS_FLUSH: Duration = Duration::from_millis(100);
/// Between two heartbeat events.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// Advertised names of the built-in simulator's devices: they say what they are
/// wherever a name is shown (and still match the DE1 and Skale name rules).
pub const SIMULATED_DE1_NAME: &str = "DE1 (simulated)";
pub const SIMULATED_SCALE_NAME: &str = "Skale (simulated)";

/// The controller's state directory: `<runtime dir>/state` for the simulator (a demo
/// never touches the real machine's remembered devices), else `[launcher] state_dir`.
pub fn state_dir(config: &Config, runtime_dir: &std::path::Path) -> Option<PathBuf> {
    if config.bluetooth.simulate {
        Some(runtime_dir.join("state"))
    } else {
        Some(config.launcher.state_dir.clone())
    }
}

/// The simulator as the controller builds it: real-time pace, names that say
/// "simulated".
pub fn simulator() -> (de1_sim::SimTransport, de1_sim::SimControl) {
    let mut cfg = de1_sim::SimConfig::default();
    cfg.machine.name = SIMULATED_DE1_NAME.to_owned();
    if let Some(s) = cfg.scale.as_mut() {
        s.name = SIMULATED_SCALE_NAME.to_owned();
    }
    de1_sim::simulator(cfg)
}

/// The transport the configuration asks for: the simulator, or real Bluetooth (an
/// error message, at once, when the host has none).
pub async fn transport(config: &Config) -> Result<Arc<dyn ble::Transport>, String> {
    if config.bluetooth.simulate {
        log::warn!(target: LOG, "using the built-in simulated DE1 and scale (simulate = true)");
        let (t, _control) = simulator();
        return Ok(Arc::new(t));
    }
    match tokio::time::timeout(Duration::from_secs(5), ble::default_transport()).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("no Bluetooth: {e}")),
        Err(_) => Err("no Bluetooth: the adapter did not answer within 5 s".into()),
    }
}

/// The controller process's entry point (`de1d child controller`).
pub fn run(env: ChildEnv) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("controller")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!(target: LOG, "cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async move {
        let listener = match env.bind_controller() {
            Ok(l) => l,
            Err(e) => {
                log::error!(
                    target: LOG,
                    "cannot listen on {}: {e}",
                    env.controller_socket_path().display()
                );
                return ExitCode::FAILURE;
            }
        };
        let config = env.config().clone();
        let transport = transport(&config).await;
        let simulated = config.bluetooth.simulate;
        let dir = state_dir(&config, env.runtime_dir());
        let ctl = Controller::start(ControllerSetup::new(config, transport, simulated, dir));
        let heartbeat = {
            let bus = ctl.bus().clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                loop {
                    tick.tick().await;
                    bus.publish(Event::Heartbeat);
                }
            })
        };
        env.ready();
        let shutdown = env.shutdown().clone();
        let stopping = {
            let ctl = ctl.clone();
            let shutdown = shutdown.clone();
            async move {
                heartbeat.abort();
                let grace = match shutdown.reason() {
                    Some(ShutdownReason::Launcher { grace }) => {
                        (grace / 2).min(Duration::from_secs(2))
                    }
                    _ => Duration::from_secs(2),
                };
                // Subscribers are still connected here, so they see the DE1 go to
                // sleep and be released, and then the controller say it is gone.
                if tokio::time::timeout(grace, ctl.shutdown()).await.is_err() {
                    log::warn!(target: LOG, "devices not released within {grace:?}");
                }
                ctl.bus().publish(Event::ProcessStatus(ProcessStatus {
                    process: ProcessRole::Controller,
                    presence: Presence::Gone,
                }));
                tokio::time::sleep(FINAL_EVENTS_FLUSH).await;
            }
        };
        serve_until(listener, ctl.clone(), shutdown, stopping).await;
        log::info!(target: LOG, "stopped");
        ExitCode::SUCCESS
    });
    // Background tasks (a link attempt, a scan) must not hold up the exit.
    rt.shutdown_timeout(Duration::from_millis(200));
    code
}

/// Serves the controller socket until `shutdown` is requested.
pub async fn serve(listener: ControllerListener, ctl: Controller, shutdown: Shutdown) {
    serve_until(listener, ctl, shutdown, async {}).await;
}

/// Serves the controller socket until `shutdown` is requested, then stops accepting,
/// runs `stopping` while the connected clients still receive events, and closes.
pub async fn serve_until(
    listener: ControllerListener,
    ctl: Controller,
    shutdown: Shutdown,
    stopping: impl std::future::Future<Output = ()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    conns.spawn(connection(stream, ctl.clone()));
                }
                Err(e) => {
                    log::error!(target: LOG, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    stopping.await;
    conns.shutdown().await;
}

/// What the reader hands the writer when the client subscribes.
struct Subscribed {
    snapshot: Vec<Event>,
    subscription: Subscription,
}

async fn connection(stream: Stream, ctl: Controller) {
    let allowed = [Role::Inbound, Role::Outbound, Role::Tool];
    let (hello, conn) = match handshake::<_, FromController, ToController>(
        stream,
        Role::Controller,
        &allowed,
        MAX_FRAME_LEN,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            log::warn!(target: LOG, "refused a connection: {e}");
            return;
        }
    };
    let peer = format!("{} (pid {})", hello.role, hello.pid);
    log::debug!(target: LOG, "{peer} connected");
    let (mut sink, mut stream) = conn.split();
    let (out_tx, mut out_rx) = mpsc::channel::<FromController>(RESPONSE_QUEUE_LEN);
    let (sub_tx, sub_rx) = oneshot::channel::<Subscribed>();

    let writer = tokio::spawn(async move {
        let mut sub_rx = Some(sub_rx);
        let mut live: Option<Subscription> = None;
        loop {
            let msg = tokio::select! {
                biased;
                r = out_rx.recv() => match r {
                    Some(m) => m,
                    None => return,
                },
                s = async {
                    match sub_rx.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                }, if sub_rx.is_some() => {
                    sub_rx = None;
                    if let Ok(Subscribed { snapshot, subscription }) = s {
                        for e in snapshot {
                            if sink.send(FromController::Event(e)).await.is_err() {
                                return;
                            }
                        }
                        live = Some(subscription);
                    }
                    continue;
                }
                d = async {
                    match live.as_mut() {
                        Some(sub) => sub.recv().await,
                        None => std::future::pending().await,
                    }
                }, if live.is_some() => {
                    match d {
                        Delivery::Event(e) => FromController::Event(e),
                        Delivery::Lagged(n) => FromController::Lagged(n),
                    }
                }
            };
            if sink.send(msg).await.is_err() {
                // The reader notices the broken connection and logs it.
                return;
            }
        }
    });

    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut sub_tx = Some(sub_tx);
    loop {
        match stream.next().await {
            Some(Ok(ToController::Request { id, command })) => {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let out = out_tx.clone();
                let ctl = ctl.clone();
                tokio::spawn(async move {
                    let result = ctl.dispatch(command).await;
                    let _ = out.send(FromController::Response { id, result }).await;
                    drop(permit);
                });
            }
            Some(Ok(ToController::Subscribe)) => {
                if let Some(tx) = sub_tx.take() {
                    // Subscribe first, then snapshot: a live event may repeat part of
                    // the snapshot, but nothing falls between the two.
                    let subscription = ctl.bus().subscribe();
                    let snapshot = ctl.snapshot_events();
                    let _ = tx.send(Subscribed {
                        snapshot,
                        subscription,
                    });
                }
            }
            Some(Err(e)) => {
                if e.is_disconnect() {
                    log::info!(target: LOG, "{peer} went away: {e}");
                } else {
                    log::warn!(target: LOG, "dropping connection of {peer}: {e}");
                }
                break;
            }
            None => {
                log::debug!(target: LOG, "{peer} disconnected");
                break;
            }
        }
    }
    writer.abort();
}
