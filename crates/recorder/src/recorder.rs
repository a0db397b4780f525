//! The writer: one SQLite connection on its own thread, fed by a bounded queue.
//!
//! [`Recorder::record`] never waits: it puts the event in the queue, or counts it as
//! dropped if the queue is full. The thread decides what to keep (`pyde1-runtime.md` §7.3):
//!
//! * while no sequence is being recorded, the last few notifications of each class are
//!   kept in memory ([`Table::history_len`]);
//! * a `sequence_start` gate being set starts a sequence: its row is inserted, then the
//!   kept notifications (gates only if they carry the new sequence id), then every
//!   notification until the `sequence_complete` gate of that sequence is set;
//! * gate `set`s fill in `start_flow`, `end_flow`, `end_sequence`.
//!
//! Writes are grouped in one transaction per [`RecorderOptions::commit_interval`] (250 ms
//! by default), so a crash or `kill -9` loses at most that much. A failed commit (full
//! disk, database locked by someone else) is reported through [`RecorderStatus`] and the
//! log, kept, and retried with a growing delay; nothing else in de1d waits for it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc_schema::command::{De1Document, DeviceId};
use ipc_schema::config::Config;
use ipc_schema::event::{Event, Gate, GateAction, MachineState, SequenceId};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};
use serde::Serialize;

use crate::rows::{self, Table};
use crate::schema::{self, hkv_get, hkv_set, Opened, SchemaError};

const LOG: &str = "recorder";

/// How the recorder runs.
#[derive(Debug, Clone, PartialEq)]
pub struct RecorderOptions {
    /// The SQLite file (`[database] path`).
    pub path: PathBuf,
    /// Record at all (`[database] enabled`); when false [`crate::run_recorder`] does nothing.
    pub enabled: bool,
    /// Longest time an accepted event waits before it is committed.
    pub commit_interval: Duration,
    /// Events the queue holds before [`Recorder::record`] starts dropping them.
    pub queue_len: usize,
    /// Writes kept in memory while the database refuses them; beyond, new notifications
    /// are dropped (and counted).
    pub max_backlog: usize,
    /// A sequence still open after this long is closed (`end_reason` `timeout`).
    pub max_sequence: Duration,
    /// `PRAGMA synchronous = FULL`: each commit reaches the disk before the next one, so
    /// even a power cut loses at most one commit interval. `false`: NORMAL, which survives
    /// process crashes but may lose the last seconds on power loss.
    pub sync_full: bool,
    /// Directory of the controller's stored profiles (`<id>.json`), to copy a sequence's
    /// profile into the database when only its id is known.
    pub profile_dir: Option<PathBuf>,
    /// Upper bound of the database size in pages (4 KiB); writes beyond fail as with a full
    /// disk. `None`: no bound.
    pub max_pages: Option<u64>,
    /// Bound on the wait for other connections' locks while upgrading (`[database]
    /// backup_timeout`).
    pub upgrade_timeout: Duration,
}

impl RecorderOptions {
    /// Options for the database at `path`, everything else by default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RecorderOptions {
            path: path.into(),
            enabled: true,
            commit_interval: Duration::from_millis(250),
            queue_len: 4096,
            max_backlog: 50_000,
            max_sequence: Duration::from_secs(15 * 60),
            sync_full: true,
            profile_dir: None,
            max_pages: None,
            upgrade_timeout: Duration::from_secs(120),
        }
    }

    /// The options of the `[database]` section; profiles are looked up in the
    /// controller's store under `[launcher] state_dir`.
    pub fn from_config(config: &Config) -> Self {
        let db = &config.database;
        let mut o = RecorderOptions::new(db.path.clone());
        o.upgrade_timeout = ipc_schema::config::seconds(db.backup_timeout);
        o.profile_dir = Some(config.launcher.state_dir.join("profiles"));
        o
    }

    /// The options for a child process whose private runtime directory is `runtime_dir`.
    /// With the simulator (`[bluetooth] simulate`) the database and the profile store are
    /// those under `<runtime_dir>/state`, as the controller's: a demo never mixes its
    /// shots into the real history.
    pub fn for_child(config: &Config, runtime_dir: &Path) -> Self {
        let mut o = RecorderOptions::from_config(config);
        if config.bluetooth.simulate {
            let state = runtime_dir.join("state");
            let name = config
                .database
                .path
                .file_name()
                .map_or_else(|| "de1d.sqlite3".into(), |n| n.to_owned());
            o.path = state.join(name);
            o.profile_dir = Some(state.join("profiles"));
        }
        o
    }
}

/// Why a recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot start the recorder thread: {0}")]
    Thread(std::io::Error),
}

/// Counters since the recorder started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecorderStats {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events refused because the queue was full.
    pub dropped_queue_full: u64,
    /// Events the controller skipped because this subscriber was too slow.
    pub dropped_lagged: u64,
    /// Notifications discarded because the database refused writes for too long.
    pub dropped_backlog: u64,
    /// Writes the database rejected individually (not retried).
    pub rejected: u64,
    /// Notification rows committed.
    pub rows_written: u64,
    /// Sequences started.
    pub sequences: u64,
    /// Sequences not recorded because recording was switched off.
    pub sequences_skipped: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Commits that failed (and were retried).
    pub commit_failures: u64,
}

impl RecorderStats {
    /// Every event lost, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_lagged + self.dropped_backlog + self.rejected
    }
}

/// Health of the recorder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecorderStatus {
    pub stats: RecorderStats,
    /// True while commits fail (the writes are kept and retried).
    pub failing: bool,
    /// The last database error, if any.
    pub last_error: Option<String>,
    /// Writes waiting for the next commit.
    pub pending: u64,
}

#[derive(Default)]
struct Shared {
    queued: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_lagged: AtomicU64,
    dropped_backlog: AtomicU64,
    rejected: AtomicU64,
    rows_written: AtomicU64,
    sequences: AtomicU64,
    sequences_skipped: AtomicU64,
    commits: AtomicU64,
    commit_failures: AtomicU64,
    pending: AtomicU64,
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn stats(&self) -> RecorderStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RecorderStats {
            queued: l(&self.queued),
            dropped_queue_full: l(&self.dropped_queue_full),
            dropped_lagged: l(&self.dropped_lagged),
            dropped_backlog: l(&self.dropped_backlog),
            rejected: l(&self.rejected),
            rows_written: l(&self.rows_written),
            sequences: l(&self.sequences),
            sequences_skipped: l(&self.sequences_skipped),
            commits: l(&self.commits),
            commit_failures: l(&self.commit_failures),
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

/// What a sequence was started with, gathered from the controller just after its start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SequenceContext {
    /// Id (40 lowercase hex digits) of the profile last uploaded to the DE1 in this
    /// connection; `None`: none uploaded, the last profile on record is assumed.
    pub profile_id: Option<String>,
    /// The profile's source bytes when the caller has them; otherwise they are looked up
    /// in [`RecorderOptions::profile_dir`].
    pub profile_source: Option<Vec<u8>>,
    /// `GET de1`: the settings in force.
    pub de1: Option<De1Document>,
    /// `GET scale/id`.
    pub scale: Option<DeviceId>,
}

// Nearly every message is an Event: boxing it would allocate per shot sample.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Event(Event),
    Context(SequenceId, Box<SequenceContext>),
    Profile(Vec<u8>),
    Lagged(u64),
    LinkLost,
    Flush(mpsc::Sender<bool>),
    Stop(mpsc::Sender<bool>),
}

/// A cheap handle to a running [`Recorder`]: everything but stopping it. Clone freely.
#[derive(Clone)]
pub struct RecorderHandle {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RecorderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderHandle")
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl RecorderHandle {
    /// Offers an event to the recorder. Never blocks: events that are not kept are ignored
    /// at once, and an event that finds the queue full is dropped and counted.
    pub fn record(&self, event: &Event) {
        if Table::of(event).is_none() && !matches!(event, Event::ProfileIdUpdate(_)) {
            return;
        }
        if self.send(Msg::Event(event.clone())) {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Attaches what the controller reported at a sequence's start (profile, settings).
    pub fn set_context(&self, sequence: SequenceId, context: SequenceContext) {
        self.send(Msg::Context(sequence, Box::new(context)));
    }

    /// Stores a profile's source in the database (deduplicated by id), e.g. when it is
    /// uploaded.
    pub fn store_profile(&self, source: Vec<u8>) {
        self.send(Msg::Profile(source));
    }

    /// The controller skipped `n` events for this subscriber.
    pub fn lagged(&self, n: u64) {
        self.shared.dropped_lagged.fetch_add(n, Ordering::Relaxed);
        self.send(Msg::Lagged(n));
    }

    /// The connection to the controller was lost: a sequence being recorded cannot be
    /// followed any more and is closed (`end_reason` `controller_lost`).
    pub fn link_lost(&self) {
        self.send(Msg::LinkLost);
    }

    /// Queues a message; a full queue (or a stopped thread) drops it and counts it.
    fn send(&self, msg: Msg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared
                    .dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RecorderStats {
        self.shared.stats()
    }

    /// Counters, health and the last error.
    pub fn status(&self) -> RecorderStatus {
        RecorderStatus {
            stats: self.shared.stats(),
            failing: self.shared.failing.load(Ordering::Relaxed),
            last_error: self.shared.last_error.lock().ok().and_then(|g| g.clone()),
            pending: self.shared.pending.load(Ordering::Relaxed),
        }
    }

    /// Blocks until everything queued so far is committed, at most `timeout`. True if it
    /// was. Not for async contexts (use `spawn_blocking`).
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack, done) = mpsc::channel();
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(false)
    }
}

/// The recorder: owns the writer thread. Dropping it closes the sequence being recorded
/// (`end_reason` `shutdown`), commits what is queued (waiting at most 2 s) and stops the
/// thread; [`Recorder::close`] does the same with a chosen bound.
pub struct Recorder {
    handle: RecorderHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.handle.fmt(f)
    }
}

impl std::ops::Deref for Recorder {
    type Target = RecorderHandle;
    fn deref(&self) -> &RecorderHandle {
        &self.handle
    }
}

impl Recorder {
    /// Opens (creating or upgrading) the database and starts the writer thread. Blocking:
    /// an upgrade copies the file first. Sequences left open by a crash are marked
    /// `interrupted`.
    pub fn open(options: RecorderOptions) -> Result<Recorder, RecorderError> {
        let (conn, opened) = schema::open_for_writing(&options.path, options.upgrade_timeout)?;
        let err = |source| {
            RecorderError::Schema(SchemaError::Sqlite {
                path: options.path.clone(),
                source,
            })
        };
        conn.busy_timeout(schema::WRITE_BUSY_TIMEOUT).map_err(err)?;
        let sync = if options.sync_full { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!("PRAGMA synchronous = {sync}"))
            .map_err(err)?;
        if let Some(pages) = options.max_pages {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(err)?;
        }
        let interrupted = conn
            .execute(
                "UPDATE sequence SET end_reason = 'interrupted' \
                 WHERE end_reason IS NULL AND id <> 'dummy'",
                [],
            )
            .map_err(err)?;
        match &opened {
            Opened::Created => {
                log::info!(target: LOG, "created shot database {}", options.path.display())
            }
            Opened::Migrated { from, backup } => log::warn!(
                target: LOG,
                "upgraded shot database {} from version {from} to {}; previous file kept as {}",
                options.path.display(),
                schema::SCHEMA_VERSION,
                backup.display()
            ),
            Opened::Current => {}
        }
        if interrupted > 0 {
            log::warn!(
                target: LOG,
                "{interrupted} sequence(s) were cut short by a previous stop; their samples up \
                 to that moment are kept"
            );
        }

        let (tx, rx) = mpsc::sync_channel(options.queue_len.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer::new(conn, options, shared.clone());
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(rx))
            .map_err(RecorderError::Thread)?;
        Ok(Recorder {
            handle: RecorderHandle { tx, shared },
            thread: Some(thread),
        })
    }

    /// A handle for other tasks.
    pub fn handle(&self) -> RecorderHandle {
        self.handle.clone()
    }

    /// Closes the sequence being recorded, commits everything queued and stops the thread,
    /// waiting at most `timeout` (blocking). Returns the final counters.
    pub fn close(mut self, timeout: Duration) -> RecorderStatus {
        self.stop(timeout);
        self.handle.status()
    }

    fn stop(&mut self, timeout: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (ack, done) = mpsc::channel();
        // The queue may be full: `send` waits for room, bounded by the thread draining it.
        let deadline = Instant::now() + timeout;
        let mut msg = Msg::Stop(ack);
        loop {
            match self.handle.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        log::error!(target: LOG, "recorder did not stop in time");
                        return;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        if done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
        {
            let _ = thread.join();
        } else {
            log::error!(target: LOG, "recorder did not finish writing in time");
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}

// ------------------------------------------------------------------------------ writer

/// A write waiting for the next commit.
// Nearly every operation inserts an Event: boxing it would allocate per sample.
#[allow(clippy::large_enum_variant)]
enum Op {
    Insert {
        sequence: Arc<str>,
        event: Event,
    },
    Start {
        sequence: Arc<str>,
        active_state: Option<MachineState>,
        start: f64,
    },
    GateTime {
        sequence: Arc<str>,
        column: &'static str,
        time: f64,
    },
    End {
        sequence: Arc<str>,
        reason: &'static str,
        dropped: u64,
    },
    Context {
        sequence: Arc<str>,
        context: Box<SequenceContext>,
    },
    Profile {
        source: Vec<u8>,
    },
    LastProfile {
        id: String,
        at: f64,
    },
}

impl Op {
    fn is_insert(&self) -> bool {
        matches!(self, Op::Insert { .. })
    }
}

struct Active {
    id: SequenceId,
    text: Arc<str>,
    start: f64,
    dropped: u64,
}

struct Writer {
    conn: Connection,
    options: RecorderOptions,
    shared: Arc<Shared>,
    history: Vec<VecDeque<Event>>,
    active: Option<Active>,
    pending: Vec<Op>,
    /// When the oldest pending write was queued.
    oldest: Option<Instant>,
    /// While failing: when to try again, and the current delay.
    retry: Option<(Instant, Duration)>,
    last_complaint: Option<Instant>,
}

const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
const COMPLAIN_EVERY: Duration = Duration::from_secs(60);

/// Errors that say nothing about the write itself: keep it and try again later.
fn is_transient(e: &rusqlite::Error) -> bool {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => matches!(
            f.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
        ),
        _ => false,
    }
}

impl Writer {
    fn new(conn: Connection, options: RecorderOptions, shared: Arc<Shared>) -> Writer {
        Writer {
            conn,
            options,
            shared,
            history: Table::ALL
                .iter()
                .map(|t| VecDeque::with_capacity(t.history_len()))
                .collect(),
            active: None,
            pending: Vec::new(),
            oldest: None,
            retry: None,
            last_complaint: None,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = match self.next_deadline() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Ok(Msg::Event(e)) => self.on_event(e),
                Ok(Msg::Context(id, context)) => self.push(Op::Context {
                    sequence: id.to_string().into(),
                    context,
                }),
                Ok(Msg::Profile(source)) => self.push(Op::Profile { source }),
                Ok(Msg::Lagged(n)) => {
                    if let Some(a) = &mut self.active {
                        a.dropped += n;
                    }
                }
                Ok(Msg::LinkLost) => self.end("controller_lost"),
                Ok(Msg::Flush(ack)) => {
                    let ok = self.commit();
                    let _ = ack.send(ok);
                }
                Ok(Msg::Stop(ack)) => {
                    self.end("shutdown");
                    let ok = self.commit();
                    let _ = ack.send(ok);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone without a stop: save what we have.
                    self.end("shutdown");
                    self.commit();
                    return;
                }
            }
            // Due even while events keep coming.
            if self.next_deadline().is_some_and(|at| Instant::now() >= at) {
                self.commit();
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        if let Some((at, _)) = self.retry {
            return Some(at);
        }
        self.oldest.map(|t| t + self.options.commit_interval)
    }

    fn push(&mut self, op: Op) {
        if op.is_insert() && self.pending.len() >= self.options.max_backlog {
            self.shared.dropped_backlog.fetch_add(1, Ordering::Relaxed);
            if let Some(a) = &mut self.active {
                a.dropped += 1;
            }
            return;
        }
        self.pending.push(op);
        self.oldest.get_or_insert_with(Instant::now);
        self.shared
            .pending
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    fn on_event(&mut self, event: Event) {
        if let Event::ProfileIdUpdate(u) = &event {
            if let Some(id) = &u.id {
                self.push(Op::LastProfile {
                    id: hex(id),
                    at: u.timestamp,
                });
            }
            return;
        }
        let Some(table) = Table::of(&event) else {
            return;
        };
        let gate = match &event {
            Event::SequencerGateNotification(g) => Some(*g),
            _ => None,
        };
        let time = rows::event_time(&event).unwrap_or(0.0);

        // A gate of another sequence means ours will not complete; so does a sequence
        // that runs far too long.
        if let Some(a) = &self.active {
            if gate.is_some_and(|g| g.sequence_id != a.id) {
                self.end("superseded");
            } else if time - a.start > self.options.max_sequence.as_secs_f64() {
                self.end("timeout");
            }
        }
        if self.active.is_none() {
            if let Some(g) =
                gate.filter(|g| g.name == Gate::SequenceStart && g.action == GateAction::Set)
            {
                self.begin(g.sequence_id, g.active_state, time);
            }
        }
        if let Some(a) = &self.active {
            let sequence = a.text.clone();
            self.push(Op::Insert {
                sequence: sequence.clone(),
                event: event.clone(),
            });
            if let Some(g) = gate.filter(|g| g.action == GateAction::Set) {
                let column = match g.name {
                    Gate::FlowBegin => Some("start_flow"),
                    Gate::FlowEnd => Some("end_flow"),
                    Gate::SequenceComplete => Some("end_sequence"),
                    _ => None,
                };
                if let Some(column) = column {
                    self.push(Op::GateTime {
                        sequence,
                        column,
                        time,
                    });
                }
                if g.name == Gate::SequenceComplete {
                    self.end("complete");
                }
            }
        }
        let kept = &mut self.history[table as usize];
        if kept.len() == table.history_len() {
            kept.pop_front();
        }
        kept.push_back(event);
    }

    /// Recording switched off from the HTTP API (see [`crate::control`])?
    fn switched_off(&self) -> bool {
        match hkv_get(
            &self.conn,
            crate::control::HKV_HEADER,
            crate::control::HKV_ENABLED,
        ) {
            Ok(Some(v)) => v == "0",
            Ok(None) => false,
            // Unreadable: record rather than lose a shot.
            Err(_) => false,
        }
    }

    fn begin(&mut self, id: SequenceId, active_state: Option<MachineState>, start: f64) {
        if self.switched_off() {
            self.shared
                .sequences_skipped
                .fetch_add(1, Ordering::Relaxed);
            log::info!(target: LOG, "sequence {id} not recorded: recording is switched off");
            return;
        }
        let text: Arc<str> = id.to_string().into();
        self.shared.sequences.fetch_add(1, Ordering::Relaxed);
        log::debug!(target: LOG, "recording sequence {id}");
        self.push(Op::Start {
            sequence: text.clone(),
            active_state,
            start,
        });
        // The moments before the sequence, as pyDE1 keeps them.
        let mut before = Vec::new();
        for kept in &self.history {
            for e in kept {
                let other_sequence =
                    matches!(e, Event::SequencerGateNotification(g) if g.sequence_id != id);
                if !other_sequence {
                    before.push(e.clone());
                }
            }
        }
        for event in before {
            self.push(Op::Insert {
                sequence: text.clone(),
                event,
            });
        }
        self.active = Some(Active {
            id,
            text,
            start,
            dropped: 0,
        });
    }

    fn end(&mut self, reason: &'static str) {
        if let Some(a) = self.active.take() {
            log::debug!(target: LOG, "sequence {} ended: {reason}", a.id);
            self.push(Op::End {
                sequence: a.text,
                reason,
                dropped: a.dropped,
            });
        }
    }

    /// Writes everything pending in one transaction. True if nothing is left pending.
    fn commit(&mut self) -> bool {
        if self.pending.is_empty() {
            self.oldest = None;
            self.retry = None;
            return true;
        }
        match self.try_commit() {
            Ok((rows, rejected)) => {
                self.pending.clear();
                self.oldest = None;
                self.shared.pending.store(0, Ordering::Relaxed);
                self.shared.rows_written.fetch_add(rows, Ordering::Relaxed);
                self.shared.rejected.fetch_add(rejected, Ordering::Relaxed);
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                let was_retrying = self.retry.take().is_some();
                let was_failing = self.shared.failing.swap(false, Ordering::Relaxed);
                if was_retrying || was_failing {
                    self.shared.set_error(None);
                    log::info!(
                        target: LOG,
                        "shot database writable again ({} notifications dropped so far)",
                        self.shared.dropped_backlog.load(Ordering::Relaxed)
                    );
                }
                true
            }
            Err(e) => {
                self.shared.commit_failures.fetch_add(1, Ordering::Relaxed);
                let text = e.to_string();
                let first = !self.shared.failing.swap(true, Ordering::Relaxed);
                let now = Instant::now();
                let due = self
                    .last_complaint
                    .is_none_or(|t| now.duration_since(t) >= COMPLAIN_EVERY);
                if first || due {
                    log::error!(
                        target: LOG,
                        "cannot write to the shot database {}: {text}; {} writes kept, retrying",
                        self.options.path.display(),
                        self.pending.len()
                    );
                    self.last_complaint = Some(now);
                }
                self.shared.set_error(Some(text));
                let delay = self
                    .retry
                    .map_or(RETRY_FIRST, |(_, d)| (d * 2).min(RETRY_MAX));
                self.retry = Some((now + delay, delay));
                false
            }
        }
    }

    /// Returns (notification rows written, writes rejected).
    fn try_commit(&mut self) -> rusqlite::Result<(u64, u64)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut rows_written = 0;
        let mut rejected = 0;
        for op in &self.pending {
            match apply(&tx, op, &self.options) {
                Ok(n) => rows_written += n,
                Err(e) if is_transient(&e) => return Err(e),
                // A write SQLite refuses for itself (not for lack of room or a lock) would
                // fail forever: skip it, keep the others.
                Err(e) => {
                    rejected += 1;
                    log::warn!(target: LOG, "shot database refused a write: {e}");
                }
            }
        }
        tx.commit()?;
        Ok((rows_written, rejected))
    }
}

fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(D[usize::from(b >> 4)]));
        s.push(char::from(D[usize::from(b & 15)]));
    }
    s
}

/// Applies one write; returns the number of notification rows it added.
fn apply(conn: &Connection, op: &Op, options: &RecorderOptions) -> rusqlite::Result<u64> {
    match op {
        Op::Insert { sequence, event } => Ok(u64::from(rows::insert(conn, sequence, event)?)),
        Op::Start {
            sequence,
            active_state,
            start,
        } => {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO sequence (id, active_state, start_sequence, profile_id, \
                 profile_assumed) VALUES (?1, ?2, ?3, 'dummy', 1)",
            )?
            .execute((&**sequence, active_state.map(|s| s.as_str()), start))?;
            Ok(0)
        }
        Op::GateTime {
            sequence,
            column,
            time,
        } => {
            // `column` is one of three fixed names.
            conn.prepare_cached(&format!("UPDATE sequence SET {column} = ?1 WHERE id = ?2"))?
                .execute((time, &**sequence))?;
            Ok(0)
        }
        Op::End {
            sequence,
            reason,
            dropped,
        } => {
            conn.prepare_cached(
                "UPDATE sequence SET end_reason = ?1, dropped_events = dropped_events + ?2 \
                 WHERE id = ?3",
            )?
            .execute((reason, dropped, &**sequence))?;
            Ok(0)
        }
        Op::Context { sequence, context } => {
            crate::context::apply(conn, sequence, context, options)?;
            Ok(0)
        }
        Op::Profile { source } => {
            crate::context::store_profile(conn, source)?;
            Ok(0)
        }
        Op::LastProfile { id, at } => {
            hkv_set(conn, "last_profile", "id", id)?;
            hkv_set(conn, "last_profile", "datetime", &at.to_string())?;
            Ok(0)
        }
    }
}
