//! The combined log: the launcher is its only writer.
//!
//! Records from every process (children forward theirs over the launcher socket; the
//! launcher's own come from [`LauncherLogger`]) go through one bounded queue to a writer
//! thread, which formats each as one line and writes it with a single `write(2)` on a file
//! opened with `O_APPEND`, so lines are never interleaved or cut. [`LogHandle::reopen`]
//! (on SIGHUP) is queued like a record: everything before it lands in the old file,
//! everything after in the new one.
//!
//! Line format: `2024-05-01T10:44:55.153Z INFO  [Controller] controller::de1: message`
//! (UTC). Continuation lines of a multi-line message are indented by four spaces; other
//! control characters are escaped.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipc_schema::config::{LevelFilter, LoggingConfig, StderrMode};
use ipc_schema::log_record::{Level, LogRecord};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Records from children the writer may have queued; beyond this their link tasks wait
/// (back-pressure onto the child's socket).
pub const QUEUE_LEN: usize = 8192;
/// Further room kept for the launcher's own records and for control items, so that these
/// are not crowded out by children logging at full speed.
const RESERVE: usize = 1024;

/// One item for the writer thread.
pub enum Item {
    /// A record from the named process.
    Record {
        process: &'static str,
        record: LogRecord,
        /// Held while a child's record is queued; released once written.
        permit: Option<OwnedSemaphorePermit>,
    },
    /// Close and reopen the log file (after logrotate moved it).
    Reopen,
    /// Answer once everything queued before has been written.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Sends items to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct LogHandle {
    tx: mpsc::Sender<Item>,
    child_slots: Arc<Semaphore>,
}

impl LogHandle {
    /// Queues a child's record, waiting for room (back-pressure onto its socket).
    pub async fn send(&self, process: &'static str, record: LogRecord) {
        let Ok(permit) = self.child_slots.clone().acquire_owned().await else {
            return;
        };
        let _ = self
            .tx
            .send(Item::Record {
                process,
                record,
                permit: Some(permit),
            })
            .await;
    }

    /// Queues a record of the launcher itself if there is room; false if it was dropped.
    pub fn try_send(&self, process: &'static str, record: LogRecord) -> bool {
        self.tx
            .try_send(Item::Record {
                process,
                record,
                permit: None,
            })
            .is_ok()
    }

    /// Asks the writer to reopen the file, after the records already queued.
    pub async fn reopen(&self) {
        let _ = self.tx.send(Item::Reopen).await;
    }

    /// Waits (blocking) until everything queued so far is written; false on timeout.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let (ack_tx, ack_rx) = std::sync::mpsc::channel();
        let deadline = std::time::Instant::now() + timeout;
        let mut item = Item::Flush(ack_tx);
        loop {
            match self.tx.try_send(item) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(i)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    item = i;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .is_ok()
    }
}

/// Where lines go.
pub struct Sinks {
    file_path: Option<PathBuf>,
    file: Option<File>,
    stderr_level: Option<LevelFilter>,
}

impl Sinks {
    /// Opens the log file (creating its directory) and decides whether stderr is used.
    pub fn open(cfg: &LoggingConfig) -> io::Result<Sinks> {
        let file_path = cfg.file_path().map(Path::to_path_buf);
        let file = match &file_path {
            Some(p) => Some(open_log_file(p)?),
            None => None,
        };
        let stderr_level = match cfg.stderr {
            StderrMode::Never => None,
            StderrMode::Always => Some(cfg.stderr_level.unwrap_or(cfg.level)),
            // A terminal shows everything logged; otherwise (systemd's journal) only
            // what needs attention, unless configured.
            StderrMode::Auto if io::stderr().is_terminal() => {
                Some(cfg.stderr_level.unwrap_or(cfg.level))
            }
            StderrMode::Auto => Some(cfg.stderr_level.unwrap_or(LevelFilter::Warn)),
        };
        Ok(Sinks {
            file_path,
            file,
            stderr_level,
        })
    }

    fn write_line(&mut self, line: &[u8], level: Level) {
        if let Some(f) = &mut self.file {
            // One write(2) per line; O_APPEND makes it land whole at the end.
            if let Err(e) = f.write_all(line) {
                let _ = writeln!(io::stderr(), "de1d: cannot write the log file: {e}");
            }
        }
        if let Some(threshold) = self.stderr_level {
            if level_passes(level, threshold) {
                let _ = io::stderr().write_all(line);
            }
        }
    }

    fn reopen(&mut self) -> Result<(), String> {
        let Some(path) = &self.file_path else {
            return Ok(());
        };
        match open_log_file(path) {
            Ok(f) => {
                self.file = Some(f);
                Ok(())
            }
            Err(e) => Err(format!("cannot reopen {}: {e}", path.display())),
        }
    }
}

fn level_passes(level: Level, threshold: LevelFilter) -> bool {
    log::Level::from(level) <= threshold.to_log()
}

/// Opens (creating) the log file for appending, mode 0640; creates missing directories.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Starts the writer thread; it ends when every [`LogHandle`] is dropped.
pub fn start_writer(mut sinks: Sinks) -> io::Result<(LogHandle, std::thread::JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<Item>(QUEUE_LEN + RESERVE);
    let join = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || {
            let mut line = Vec::with_capacity(512);
            while let Some(item) = rx.blocking_recv() {
                match item {
                    Item::Record {
                        process,
                        record,
                        permit,
                    } => {
                        if record.dropped_before > 0 {
                            let note = LogRecord {
                                time_us: record.time_us,
                                level: Level::Warn,
                                target: "de1d::log".into(),
                                message: format!(
                                    "{} log records dropped (queue full)",
                                    record.dropped_before
                                ),
                                dropped_before: 0,
                            };
                            format_line(&mut line, process, &note);
                            sinks.write_line(&line, note.level);
                        }
                        format_line(&mut line, process, &record);
                        sinks.write_line(&line, record.level);
                        drop(permit);
                    }
                    Item::Reopen => {
                        let (level, message) = match sinks.reopen() {
                            Ok(()) => (Level::Info, "log file reopened".to_owned()),
                            Err(e) => (Level::Error, e),
                        };
                        let rec = LogRecord::new(level, "de1d::log", message);
                        format_line(&mut line, "Launcher", &rec);
                        sinks.write_line(&line, level);
                    }
                    Item::Flush(ack) => {
                        let _ = ack.send(());
                    }
                }
            }
        })?;
    Ok((
        LogHandle {
            tx,
            child_slots: Arc::new(Semaphore::new(QUEUE_LEN)),
        },
        join,
    ))
}

/// Formats one record as a complete line (with its newline) into `out`.
pub fn format_line(out: &mut Vec<u8>, process: &str, rec: &LogRecord) {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(64 + rec.target.len() + rec.message.len());
    push_time(&mut s, rec.time_us);
    let _ = write!(s, " {:<5} [{}] ", rec.level.as_str(), process);
    push_escaped(&mut s, &rec.target, false);
    s.push_str(": ");
    push_escaped(&mut s, &rec.message, true);
    s.push('\n');
    out.clear();
    out.extend_from_slice(s.as_bytes());
}

fn push_escaped(s: &mut String, text: &str, allow_newlines: bool) {
    use std::fmt::Write as _;
    let text = text.strip_suffix('\n').unwrap_or(text);
    for c in text.chars() {
        match c {
            '\n' if allow_newlines => s.push_str("\n    "),
            '\t' => s.push('\t'),
            c if c.is_control() => {
                let _ = write!(s, "\\u{{{:x}}}", c as u32);
            }
            c => s.push(c),
        }
    }
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for a time in µs since the epoch (UTC).
pub fn push_time(s: &mut String, time_us: i64) {
    use std::fmt::Write as _;
    let secs = time_us.div_euclid(1_000_000);
    let millis = time_us.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The launcher's own `log` implementation: never blocks, counts what it drops.
pub struct LauncherLogger {
    handle: LogHandle,
    filter: LoggingConfig,
    dropped: Arc<AtomicU64>,
}

impl LauncherLogger {
    /// Installs the logger as the global `log` logger of this process.
    pub fn install(handle: LogHandle, filter: LoggingConfig) {
        let max = filter.max_level().to_log();
        let logger = LauncherLogger {
            handle,
            filter,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(max);
        }
    }
}

impl log::Log for LauncherLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.filter.level_for(metadata.target()).to_log()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut rec = LogRecord::from_log(record);
        let before = self.dropped.swap(0, Ordering::Relaxed);
        rec.dropped_before = before;
        if !self.handle.try_send("Launcher", rec) {
            self.dropped.fetch_add(before + 1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(process: &str, rec: &LogRecord) -> String {
        let mut out = Vec::new();
        format_line(&mut out, process, rec);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn time_formatting_matches_known_dates() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
            // 2021-11-16 10:44:55.153 UTC
            (1_637_059_495_153_999, "2021-11-16T10:44:55.153Z"),
            (4_102_444_799_999_000, "2099-12-31T23:59:59.999Z"),
            (-1_000, "1969-12-31T23:59:59.999Z"),
        ];
        for (us, want) in cases {
            let mut s = String::new();
            push_time(&mut s, us);
            assert_eq!(s, want, "{us}");
        }
    }

    #[test]
    fn a_line_has_time_level_process_target_and_message() {
        let rec = LogRecord {
            time_us: 1_637_059_495_153_000,
            level: Level::Info,
            target: "controller::de1".into(),
            message: "Frame #2 written".into(),
            dropped_before: 0,
        };
        assert_eq!(
            line("Controller", &rec),
            "2021-11-16T10:44:55.153Z INFO  [Controller] controller::de1: Frame #2 written\n"
        );
    }

    #[test]
    fn multi_line_and_control_characters_cannot_forge_lines() {
        let rec = LogRecord {
            time_us: 0,
            level: Level::Error,
            target: "t\nx".into(),
            message: "first\nsecond\r\u{1b}[31m\n".into(),
            dropped_before: 0,
        };
        let l = line("Inbound", &rec);
        assert_eq!(
            l,
            "1970-01-01T00:00:00.000Z ERROR [Inbound] t\\u{a}x: first\n    second\\u{d}\\u{1b}[31m\n"
        );
        // Every physical line after the first is a continuation.
        assert!(l.lines().skip(1).all(|c| c.starts_with("    ")));
    }

    #[test]
    fn the_writer_reopens_after_a_move_without_losing_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/combined.log");
        let cfg = LoggingConfig {
            file: path.clone(),
            stderr: StderrMode::Never,
            ..LoggingConfig::default()
        };
        let (h, join) = start_writer(Sinks::open(&cfg).expect("open")).expect("writer");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        rt.block_on(async {
            for i in 0..100 {
                h.send("Tool", LogRecord::new(Level::Info, "t", format!("n={i}")))
                    .await;
            }
        });
        assert!(h.flush_blocking(Duration::from_secs(5)));
        let moved = dir.path().join("sub/combined.log.1");
        std::fs::rename(&path, &moved).expect("rename");
        rt.block_on(async {
            h.send("Tool", LogRecord::new(Level::Info, "t", "n=100".into()))
                .await;
            h.reopen().await;
            for i in 101..200 {
                h.send("Tool", LogRecord::new(Level::Info, "t", format!("n={i}")))
                    .await;
            }
        });
        drop(h);
        join.join().expect("writer ends");
        let old = std::fs::read_to_string(&moved).expect("old");
        let new = std::fs::read_to_string(&path).expect("new");
        let nums = |s: &str| -> Vec<u32> {
            s.lines()
                .filter_map(|l| l.split("n=").nth(1))
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        assert_eq!(nums(&old), (0..=100).collect::<Vec<_>>());
        assert_eq!(nums(&new), (101..200).collect::<Vec<_>>());
        assert!(new
            .lines()
            .next()
            .expect("a line")
            .ends_with("log file reopened"));
    }

    #[test]
    fn drops_are_reported_before_the_next_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let cfg = LoggingConfig {
            file: path.clone(),
            stderr: StderrMode::Never,
            ..LoggingConfig::default()
        };
        let (h, join) = start_writer(Sinks::open(&cfg).expect("open")).expect("writer");
        let mut rec = LogRecord::new(Level::Info, "t", "after".into());
        rec.dropped_before = 17;
        assert!(h.try_send("Outbound", rec));
        drop(h);
        join.join().expect("writer ends");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("WARN  [Outbound] de1d::log: 17 log records dropped"));
        assert!(lines[1].ends_with("[Outbound] t: after"));
    }
}
