//! Shot history: every flow sequence recorded in SQLite, read back, exported for
//! visualizer.coffee and replayed over MQTT (`pyde1-runtime.md` §7, §10).
//!
//! * [`Recorder`]: the writer, one SQLite connection on its own thread behind a bounded
//!   queue; [`RecorderHandle::record`] never blocks.
//! * [`run_recorder`]: the recorder as a task of the outbound process, with its own
//!   subscription to the controller's events.
//! * [`history`]: listing and reading sequences (read-only, for the HTTP API);
//!   [`visualizer`]: the shot file visualizer.coffee accepts.
//! * [`replay`]: republishing a recorded sequence.
//! * [`control`]: switching recording on and off at run time.
//! * [`schema`]: the layout (pyDE1's, version 4) and its migrations.

pub mod context;
pub mod control;
pub mod history;
pub mod names;
pub mod recorder;
pub mod replay;
pub mod rows;
pub mod schema;
pub mod visualizer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ipc_schema::child::ChildEnv;
use ipc_schema::client::{ControllerClient, LinkEvent};
use ipc_schema::command::{Command, Document, Reply, Resource};
use ipc_schema::event::{Event, Gate, GateAction};
use tokio::sync::mpsc;

pub use history::{History, HistoryError, Page, SequenceFilter, SequencePage, SequenceSummary};
pub use recorder::{
    Recorder, RecorderError, RecorderHandle, RecorderOptions, RecorderStats, RecorderStatus,
    SequenceContext,
};
pub use schema::{SchemaError, SCHEMA_VERSION};

const LOG: &str = "recorder";

/// Where a sequence's context (profile, settings in force) comes from.
pub trait ContextSource: Send + Sync + 'static {
    /// What is in force now, asked right after a sequence started.
    fn fetch(&self) -> impl Future<Output = SequenceContext> + Send;
}

/// How long each question to the controller may take.
const CONTEXT_TIMEOUT: Duration = Duration::from_secs(2);

impl ContextSource for ControllerClient {
    fn fetch(&self) -> impl Future<Output = SequenceContext> + Send {
        let client = self.clone();
        async move {
            let get = |r| client.call(Command::Get(r), CONTEXT_TIMEOUT);
            let (de1, profile, scale) = tokio::join!(
                get(Resource::De1),
                get(Resource::De1ProfileId),
                get(Resource::ScaleId)
            );
            SequenceContext {
                profile_id: match profile {
                    Ok(Reply::Document(Document::ProfileId(Some(id)))) => Some(hex(&id)),
                    _ => None,
                },
                profile_source: None,
                de1: match de1 {
                    Ok(Reply::Document(Document::De1(d))) => Some(*d),
                    _ => None,
                },
                scale: match scale {
                    Ok(Reply::Document(Document::DeviceId(d))) => Some(d),
                    _ => None,
                },
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `recorder` from a controller subscription until `shutdown` completes or the
/// subscription ends, then closes it (committing everything) and returns its final
/// status. At each sequence start the context is fetched from `context` in a separate
/// task, so the event stream is never held up.
pub async fn record_events<C: ContextSource>(
    recorder: Recorder,
    mut events: mpsc::Receiver<LinkEvent>,
    context: Arc<C>,
    shutdown: impl Future<Output = ()>,
) -> RecorderStatus {
    let handle = recorder.handle();
    tokio::pin!(shutdown);
    let mut check = tokio::time::interval(DROP_REPORT_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = check.tick() => {
                // Losses are counted where they happen; say so in the log now and then.
                let dropped = handle.stats().dropped();
                if dropped > reported {
                    log::warn!(
                        target: LOG,
                        "{} notifications not recorded in the last {} s ({dropped} since start)",
                        dropped - reported,
                        DROP_REPORT_EVERY.as_secs()
                    );
                    reported = dropped;
                }
            }
            ev = events.recv() => match ev {
                None => break,
                Some(LinkEvent::Event(e)) => {
                    handle.record(&e);
                    if let Event::SequencerGateNotification(g) = &e {
                        if g.name == Gate::SequenceStart && g.action == GateAction::Set {
                            let (context, handle, id) = (context.clone(), handle.clone(), g.sequence_id);
                            tokio::spawn(async move {
                                handle.set_context(id, context.fetch().await);
                            });
                        }
                    }
                }
                Some(LinkEvent::Lagged(n)) => handle.lagged(n),
                Some(LinkEvent::Disconnected) => handle.link_lost(),
                Some(LinkEvent::Connected(_)) => {}
            },
        }
    }
    // Closing blocks (a last commit); keep it off the async threads.
    match tokio::task::spawn_blocking(move || recorder.close(Duration::from_secs(3))).await {
        Ok(status) => status,
        Err(_) => handle.status(),
    }
}

/// How often lost notifications are reported in the log (when there are any).
const DROP_REPORT_EVERY: Duration = Duration::from_secs(60);

/// The database the recorder of a child process writes (and the HTTP API reads): `[database]
/// path`, or its namesake under `<runtime_dir>/state` with the simulator (see
/// [`RecorderOptions::for_child`]).
pub fn database_path(
    config: &ipc_schema::Config,
    runtime_dir: &std::path::Path,
) -> std::path::PathBuf {
    RecorderOptions::for_child(config, runtime_dir).path
}

/// How often a database that cannot be opened is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(30);

/// The recorder task of the outbound process: opens the `[database]` file (retrying every
/// 30 s while it cannot, without affecting anything else), subscribes to the controller's
/// events with its own connection, and records until the process is asked to stop.
///
/// Spawn it in the process's runtime: `tokio::spawn(recorder::run_recorder(env.clone()));`
pub async fn run_recorder(env: ChildEnv) {
    let options = RecorderOptions::for_child(env.config(), env.runtime_dir());
    if !options.enabled {
        log::info!(target: LOG, "shot recording is off in the configuration");
        return;
    }
    let shutdown = env.shutdown().clone();
    let mut complained = false;
    let recorder = loop {
        let o = options.clone();
        match tokio::task::spawn_blocking(move || Recorder::open(o)).await {
            Ok(Ok(r)) => break r,
            Ok(Err(e)) => {
                if complained {
                    log::debug!(target: LOG, "shot database still unavailable: {e}");
                } else {
                    log::error!(
                        target: LOG,
                        "shots are not recorded: {e} (retrying every {}s)",
                        REOPEN_EVERY.as_secs()
                    );
                    complained = true;
                }
            }
            Err(e) => {
                log::error!(target: LOG, "recorder start failed: {e}");
                return;
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(REOPEN_EVERY) => {}
        }
    };
    if complained {
        log::info!(target: LOG, "shot database available again");
    }
    log::info!(target: LOG, "recording shots in {}", options.path.display());
    let (client, events) = env.controller_events();
    let status = record_events(recorder, events, Arc::new(client), async move {
        shutdown.wait().await;
    })
    .await;
    let s = status.stats;
    log::info!(
        target: LOG,
        "recorder stopped: {} sequences, {} rows, {} events lost",
        s.sequences,
        s.rows_written,
        s.dropped()
    );
}
