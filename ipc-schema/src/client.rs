//! The client side of the controller link, used by inbound, outbound and tools.
//!
//! A [`ControllerClient`] owns a background task that connects to the controller socket,
//! performs the handshake, and reconnects (20 ms, doubling to 500 ms) whenever the connection
//! is lost — e.g. while the launcher restarts the controller. Requests are multiplexed by id;
//! any number may be outstanding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::command::{Command, CommandError, Reply};
use crate::envelope::{FromController, Hello, RequestId, Role, ToController};
use crate::event::Event;
use crate::framing::{handshake, Connection, MAX_FRAME_LEN};
use crate::socket::Stream;

const LOG_TARGET: &str = "ipc::client";
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Size of the event queue handed to a subscriber.
pub const EVENT_QUEUE_LEN: usize = 1024;

/// Why a call produced no reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The controller did not answer the command itself.
    #[error("{0}")]
    Command(CommandError),
    /// No connection to the controller could be made in time.
    #[error("controller not connected")]
    NotConnected,
    /// The connection was lost after the request was sent; the command may or may not have
    /// been carried out.
    #[error("connection to the controller lost before the reply")]
    ConnectionLost,
    /// No reply in time.
    #[error("no reply from the controller within {0:?}")]
    Timeout(Duration),
    /// The client's background task has stopped (the runtime is shutting down).
    #[error("controller client stopped")]
    Stopped,
}

/// What a subscriber receives.
// Events are moved through a channel once each; boxing them would cost an allocation per
// event for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// A (new) connection to the controller is up and subscribed; events follow.
    Connected(Hello),
    /// The connection was lost; a reconnection is under way.
    Disconnected,
    /// An event from the controller.
    Event(Event),
    /// The controller skipped this many events because this subscriber was too slow.
    Lagged(u64),
}

type ReplySlot = oneshot::Sender<Result<Reply, CallError>>;

enum Op {
    Call {
        id: RequestId,
        command: Command,
        reply: ReplySlot,
    },
    Cancel(RequestId),
}

/// Handle to the controller link; clone freely. The background task ends when every clone
/// (and the event receiver, if any) is dropped.
#[derive(Clone)]
pub struct ControllerClient {
    ops: mpsc::Sender<Op>,
    connected: watch::Receiver<bool>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("connected", &*self.connected.borrow())
            .finish_non_exhaustive()
    }
}

impl ControllerClient {
    /// Starts a client for commands only.
    pub fn start(path: PathBuf, role: Role) -> ControllerClient {
        Self::spawn(path, role, None)
    }

    /// Starts a client that is also subscribed to events (resubscribing after each
    /// reconnection).
    pub fn start_subscribed(
        path: PathBuf,
        role: Role,
    ) -> (ControllerClient, mpsc::Receiver<LinkEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE_LEN);
        (Self::spawn(path, role, Some(tx)), rx)
    }

    fn spawn(path: PathBuf, role: Role, events: Option<mpsc::Sender<LinkEvent>>) -> Self {
        let (ops_tx, ops_rx) = mpsc::channel(256);
        let (conn_tx, conn_rx) = watch::channel(false);
        tokio::spawn(manage(path, role, ops_rx, conn_tx, events));
        ControllerClient {
            ops: ops_tx,
            connected: conn_rx,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until connected; false on timeout.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        let res = tokio::time::timeout(timeout, rx.wait_for(|c| *c)).await;
        matches!(res, Ok(Ok(_)))
    }

    /// Sends `command` and waits for its reply; the whole call (including waiting for a
    /// connection, e.g. while the controller restarts) takes at most `timeout`.
    pub async fn call(&self, command: Command, timeout: Duration) -> Result<Reply, CallError> {
        let deadline = Instant::now() + timeout;
        let mut connected = self.connected.clone();
        match tokio::time::timeout_at(deadline, connected.wait_for(|c| *c)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(CallError::Stopped),
            Err(_) => return Err(CallError::NotConnected),
        }
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        let op = Op::Call { id, command, reply };
        match tokio::time::timeout_at(deadline, self.ops.send(op)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(CallError::Stopped),
            Err(_) => return Err(CallError::Timeout(timeout)),
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::ConnectionLost),
            Err(_) => {
                let _ = self.ops.try_send(Op::Cancel(id));
                Err(CallError::Timeout(timeout))
            }
        }
    }
}

type ClientConn = Connection<Stream, ToController, FromController>;

async fn connect(path: &Path, role: Role) -> Result<(Hello, ClientConn), String> {
    let stream = crate::socket::connect(path)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    handshake(stream, role, &[Role::Controller], MAX_FRAME_LEN)
        .await
        .map_err(|e| format!("handshake with the controller failed: {e}"))
}

/// Sends an item to the subscriber, forgetting the subscriber once it is gone.
async fn deliver(events: &mut Option<mpsc::Sender<LinkEvent>>, ev: LinkEvent) {
    if let Some(tx) = events {
        if tx.send(ev).await.is_err() {
            *events = None;
        }
    }
}

/// The background task: connect, serve, reconnect.
async fn manage(
    path: PathBuf,
    role: Role,
    mut ops: mpsc::Receiver<Op>,
    connected: watch::Sender<bool>,
    mut events: Option<mpsc::Sender<LinkEvent>>,
) {
    let mut ops_open = true;
    let mut backoff = BACKOFF_FIRST;
    let mut complained = false;
    loop {
        if !ops_open && events.as_ref().is_none_or(|e| e.is_closed()) {
            return;
        }
        // --- connect, answering calls with NotConnected meanwhile ---
        let attempt = connect(&path, role);
        tokio::pin!(attempt);
        let result = loop {
            tokio::select! {
                r = &mut attempt => break r,
                op = ops.recv(), if ops_open => match op {
                    Some(Op::Call { reply, .. }) => { let _ = reply.send(Err(CallError::NotConnected)); }
                    Some(Op::Cancel(_)) => {}
                    None => ops_open = false,
                },
            }
        };
        let (hello, conn) = match result {
            Ok(c) => c,
            Err(e) => {
                if !complained {
                    log::debug!(target: LOG_TARGET, "{e}; retrying");
                    complained = true;
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        op = ops.recv(), if ops_open => match op {
                            Some(Op::Call { reply, .. }) => { let _ = reply.send(Err(CallError::NotConnected)); }
                            Some(Op::Cancel(_)) => {}
                            None => { ops_open = false; break; }
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        complained = false;
        backoff = BACKOFF_FIRST;
        let (mut sink, mut stream) = conn.split();
        if events.is_some() && sink.send(ToController::Subscribe).await.is_err() {
            continue;
        }
        log::info!(target: LOG_TARGET, "connected to the controller (pid {})", hello.pid);
        connected.send_replace(true);
        deliver(&mut events, LinkEvent::Connected(hello)).await;

        // --- serve the connection ---
        let mut pending: HashMap<RequestId, ReplySlot> = HashMap::new();
        loop {
            if !ops_open && events.as_ref().is_none_or(|e| e.is_closed()) {
                return;
            }
            tokio::select! {
                op = ops.recv(), if ops_open => match op {
                    Some(Op::Call { id, command, reply }) => {
                        match sink.send(ToController::Request { id, command }).await {
                            Ok(()) => { pending.insert(id, reply); }
                            Err(e) => {
                                log::warn!(target: LOG_TARGET, "controller link failed: {e}");
                                let _ = reply.send(Err(CallError::ConnectionLost));
                                break;
                            }
                        }
                    }
                    Some(Op::Cancel(id)) => { pending.remove(&id); }
                    None => ops_open = false,
                },
                frame = stream.next() => match frame {
                    Some(Ok(FromController::Response { id, result })) => {
                        if let Some(slot) = pending.remove(&id) {
                            let _ = slot.send(result.map_err(CallError::Command));
                        }
                    }
                    Some(Ok(FromController::Event(ev))) => {
                        deliver(&mut events, LinkEvent::Event(ev)).await;
                    }
                    Some(Ok(FromController::Lagged(n))) => {
                        log::warn!(target: LOG_TARGET, "{n} controller events missed (subscriber too slow)");
                        deliver(&mut events, LinkEvent::Lagged(n)).await;
                    }
                    Some(Err(e)) => {
                        if e.is_disconnect() {
                            log::warn!(target: LOG_TARGET, "controller connection lost: {e}");
                        } else {
                            log::error!(target: LOG_TARGET, "dropping controller connection: {e}");
                        }
                        break;
                    }
                    None => {
                        log::warn!(target: LOG_TARGET, "controller closed the connection");
                        break;
                    }
                },
            }
        }
        connected.send_replace(false);
        for (_, slot) in pending.drain() {
            let _ = slot.send(Err(CallError::ConnectionLost));
        }
        deliver(&mut events, LinkEvent::Disconnected).await;
    }
}
