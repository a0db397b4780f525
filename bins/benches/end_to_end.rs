//! End-to-end figures of the real `de1d` executable on the simulated DE1 and scale, with
//! its private mosquitto (`spawn_broker`, which sets `set_tcp_nodelay true`):
//!
//! - `start`: time from spawning `de1d` to the HTTP API answering, and from SIGTERM to the
//!   launcher's exit, over several starts;
//! - `idle`: resident memory (RSS and PSS) of the de1d processes, and their CPU time over
//!   an idle window;
//! - `http`: `GET /de1/state` latency over one keep-alive connection, then a bounded load
//!   with `wrk` (2 threads, 10 connections, 10 s, loopback) when `wrk` is installed;
//! - `latency`: shot samples from the simulator's hand-off of the ShotSample notification
//!   (the `arrival_time` of the payload) to a subscriber reading the MQTT message, while
//!   shots run back to back; CPU time and memory during one shot;
//! - `hops` (only when named; needs `perf` and the right to trace): the same interval
//!   split at each process boundary, from a trace of the system calls.
//!
//! `cargo bench -p de1d-bin --bench end_to_end [-- PART... samples=N starts=N idle=SECS]`
//! runs every part but `hops` when none is named. Needs `/usr/sbin/mosquitto`. It prints
//! Markdown tables; docs/performance.md explains what each interval covers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXE: &str = env!("CARGO_BIN_EXE_de1d");
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const PROFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/vectors/profiles/de1app__classic_italian_espresso.json"
);
/// The de1d processes, in the order the tables list them.
const DE1D: [&str; 4] = ["Launcher", "Controller", "Inbound", "Outbound"];

/// One shot's duration (s) and the CPU (per process) and peak memory it used.
type ShotUsage = (f64, BTreeMap<String, u64>, BTreeMap<String, u64>);

// ------------------------------------------------------------------------- options

struct Options {
    parts: Vec<String>,
    samples: usize,
    starts: usize,
    idle_secs: u64,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            parts: Vec::new(),
            samples: 1200,
            starts: 20,
            idle_secs: 30,
        };
        for a in std::env::args().skip(1) {
            // `cargo bench` passes `--bench`.
            if a.starts_with("--") {
                continue;
            }
            let num = |v: &str| -> u64 {
                v.parse()
                    .unwrap_or_else(|_| panic!("not a number in argument {a:?}"))
            };
            if let Some(v) = a.strip_prefix("samples=") {
                o.samples = num(v) as usize;
            } else if let Some(v) = a.strip_prefix("starts=") {
                o.starts = num(v) as usize;
            } else if let Some(v) = a.strip_prefix("idle=") {
                o.idle_secs = num(v);
            } else if ["start", "idle", "http", "latency", "hops"].contains(&a.as_str()) {
                o.parts.push(a);
            } else {
                panic!("unknown argument {a:?}: PART (start, idle, http, latency, hops), samples=N, starts=N, idle=SECS");
            }
        }
        o
    }

    /// Every part but `hops` (a diagnostic that needs `perf`) runs when none is named.
    fn wants(&self, part: &str) -> bool {
        (self.parts.is_empty() && part != "hops") || self.parts.iter().any(|p| p == part)
    }
}

// ------------------------------------------------------------------------- statistics

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

// ------------------------------------------------------------------------- an instance

fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_until(timeout: Duration, step: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
    }
}

/// `de1d` on the simulator, with a private runtime directory, database, log and broker.
struct Instance {
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
    http_port: u16,
    spawned: Instant,
}

impl Instance {
    /// `set` adds `(section, key, value)` to the configuration.
    fn start(set: &[(&str, &str, toml::Value)]) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log/combined.log");
        let http_port = free_port();
        let p = |p: &Path| toml::Value::String(p.display().to_string());
        let mut cfg = toml::Table::new();
        let mut put = |section: &str, key: &str, value: toml::Value| {
            if let toml::Value::Table(t) = cfg
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                t.insert(key.to_owned(), value);
            }
        };
        put("launcher", "runtime_dir", p(&dir.path().join("rt")));
        put("bluetooth", "simulate", toml::Value::Boolean(true));
        put("http", "port", toml::Value::Integer(i64::from(http_port)));
        put("mqtt", "spawn_broker", toml::Value::Boolean(true));
        put("logging", "file", p(&log));
        put("logging", "stderr", toml::Value::String("never".into()));
        put("database", "path", p(&dir.path().join("db/de1d.sqlite3")));
        for (section, key, value) in set {
            put(section, key, value.clone());
        }
        let cfg_path = dir.path().join("de1d.toml");
        std::fs::write(&cfg_path, toml::to_string(&cfg).expect("toml")).expect("config");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr");
        let mut cmd = Command::new(EXE);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DE1D_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let spawned = Instant::now();
        let child = cmd.spawn().expect("spawn de1d");
        Instance {
            child,
            dir,
            log,
            http_port,
            spawned,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn wait_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let mut found = None;
        wait_until(timeout, Duration::from_millis(5), || {
            found = self.log_text().lines().find(|l| pred(l)).map(str::to_owned);
            found.is_some()
        });
        found
    }

    fn wait_ready(&self) {
        let ready = self.wait_log(Duration::from_secs(10), |l| {
            l.contains("all processes ready")
        });
        assert!(ready.is_some(), "de1d not ready:\n{}", self.diagnostics());
    }

    /// Waits until the simulated DE1 is connected and reporting.
    fn wait_de1(&self) -> bool {
        self.wait_log(Duration::from_secs(10), |l| {
            l.contains("[Controller]") && l.contains("DE1 ") && l.ends_with(": Ready")
        })
        .is_some()
    }

    /// Latest pid of each process, from the launcher's log lines.
    fn pids(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        out.insert("Launcher".to_owned(), self.child.id());
        for line in self.log_text().lines() {
            let Some((_, msg)) = line.split_once("[Launcher] de1d::commands::launch: ") else {
                continue;
            };
            for marker in [" ready (pid ", " started (pid "] {
                if let Some((name, rest)) = msg.split_once(marker) {
                    if marker.contains("started") && name != "Mosquitto" {
                        continue;
                    }
                    if let Some(pid) = rest.split(')').next().and_then(|s| s.parse().ok()) {
                        out.insert(name.to_owned(), pid);
                    }
                }
            }
        }
        out
    }

    fn broker_port(&self) -> u16 {
        let line = self
            .wait_log(Duration::from_secs(5), |l| {
                l.contains("Mosquitto ready on 127.0.0.1:")
            })
            .unwrap_or_else(|| panic!("no broker:\n{}", self.diagnostics()));
        line.split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("broker port in the log")
    }

    /// SIGTERM; returns the time until the launcher has exited (children reaped by it).
    fn stop(&mut self) -> Duration {
        let t = Instant::now();
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let status = self.child.wait().expect("wait");
        let took = t.elapsed();
        assert_eq!(status.code(), Some(0), "{}", self.diagnostics());
        took
    }

    fn diagnostics(&self) -> String {
        let stderr = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "stderr:\n{stderr}\nlog:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            if !wait_until(Duration::from_secs(6), Duration::from_millis(10), || {
                matches!(self.child.try_wait(), Ok(Some(_)))
            }) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

// ------------------------------------------------------------------------- HTTP

/// A minimal HTTP/1.1 client on one keep-alive connection.
struct Http {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Http {
    fn connect(port: u16) -> std::io::Result<Http> {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Http {
            r: BufReader::new(s.try_clone()?),
            w: s,
        })
    }

    /// Status and body.
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.w.write_all(&req)?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status line"))?;
        let mut len = 0usize;
        loop {
            line.clear();
            if self.r.read_line(&mut line)? == 0 {
                return Err(bad("headers cut short"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().map_err(|_| bad("content-length"))?;
                }
            }
        }
        let mut b = vec![0; len];
        self.r.read_exact(&mut b)?;
        Ok((status, String::from_utf8_lossy(&b).into_owned()))
    }
}

fn http_once(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    Http::connect(port)
        .and_then(|mut h| h.call(method, path, body))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

// ------------------------------------------------------------------------- MQTT

const SUBSCRIBER_THREAD: &str = "mqtt-sub";

/// One PUBLISH as the subscriber read it.
struct Received {
    topic: String,
    payload: String,
    /// Wall-clock time (CLOCK_REALTIME) when `read` returned the bytes.
    at_epoch: f64,
    /// Bytes of the whole PUBLISH packet.
    packet_len: usize,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A complete packet at the start of `buf`: (first byte, body, total length).
fn packet(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let first = *buf.first()?;
    let (mut len, mut mult, mut i) = (0usize, 1usize, 1usize);
    loop {
        let b = *buf.get(i)?;
        len += usize::from(b & 0x7f) * mult;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        mult *= 128;
        if i > 4 {
            return None;
        }
    }
    let body = buf.get(i..i + len)?;
    Some((first, body, i + len))
}

/// A minimal MQTT 3.1.1 subscriber (QoS 0) reading on its own thread, so that the time
/// of each read is taken the moment the kernel hands over the bytes.
fn subscribe(port: u16, filter: &str) -> mpsc::Receiver<Received> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the broker");
    s.set_nodelay(true).expect("nodelay");
    let mut vh = Vec::new();
    put_str(&mut vh, "MQTT");
    vh.extend_from_slice(&[4, 0x02, 0, 0]); // level 4, clean session, no keep-alive
    put_str(&mut vh, "end-to-end-bench");
    let mut connect = vec![0x10];
    put_len(&mut connect, vh.len());
    connect.extend_from_slice(&vh);
    let mut sub = vec![0, 1];
    put_str(&mut sub, filter);
    sub.push(0);
    connect.push(0x82);
    put_len(&mut connect, sub.len());
    connect.extend_from_slice(&sub);
    s.write_all(&connect).expect("subscribe");

    let (tx, rx) = mpsc::channel();
    let reader = move || {
        let mut buf = Vec::with_capacity(1 << 16);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let at_epoch = epoch_now();
            buf.extend_from_slice(&chunk[..n]);
            let mut used = 0;
            while let Some((first, body, total)) = packet(&buf[used..]) {
                used += total;
                if first >> 4 != 3 || body.len() < 2 {
                    continue;
                }
                let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
                let qos = (first >> 1) & 3;
                let start = 2 + tlen + if qos > 0 { 2 } else { 0 };
                let (Some(topic), Some(payload)) = (body.get(2..2 + tlen), body.get(start..))
                else {
                    continue;
                };
                let msg = Received {
                    topic: String::from_utf8_lossy(topic).into_owned(),
                    payload: String::from_utf8_lossy(payload).into_owned(),
                    at_epoch,
                    packet_len: total,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
            buf.drain(..used);
        }
    };
    // Named, so that the `hops` part finds its reads in a trace.
    std::thread::Builder::new()
        .name(SUBSCRIBER_THREAD.into())
        .spawn(reader)
        .expect("subscriber thread");
    rx
}

/// The number after `"key": ` in a flat JSON payload.
fn json_number(payload: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\": ");
    let rest = &payload[payload.find(&pat)? + pat.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

fn json_string<'a>(payload: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\": \"");
    let rest = &payload[payload.find(&pat)? + pat.len()..];
    rest.split('"').next()
}

// ------------------------------------------------------------------------- /proc

/// Linux reports process times in USER_HZ ticks.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process (all its threads), in ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// kB values of one process: VmRSS, RssAnon, RssFile, Threads (status), Pss, Pss_Anon,
/// Pss_File (smaps_rollup).
#[derive(Default, Clone, Copy)]
struct Mem {
    rss: u64,
    rss_anon: u64,
    rss_file: u64,
    pss: u64,
    pss_anon: u64,
    pss_file: u64,
    threads: u64,
}

fn kb_field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Mem {
        rss: kb_field(&status, "VmRSS"),
        rss_anon: kb_field(&status, "RssAnon"),
        rss_file: kb_field(&status, "RssFile"),
        threads: kb_field(&status, "Threads"),
        pss: kb_field(&rollup, "Pss"),
        pss_anon: kb_field(&rollup, "Pss_Anon"),
        pss_file: kb_field(&rollup, "Pss_File"),
    }
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn mem_table(title: &str, pids: &BTreeMap<String, u32>) -> (u64, u64) {
    println!("\n{title}\n");
    println!("| process | RSS MB | RSS anon | RSS file | PSS MB | PSS anon | PSS file | threads |");
    println!("|---|---|---|---|---|---|---|---|");
    let (mut rss, mut pss) = (0, 0);
    let row = |name: &str, m: &Mem| {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            mb(m.rss),
            mb(m.rss_anon),
            mb(m.rss_file),
            mb(m.pss),
            mb(m.pss_anon),
            mb(m.pss_file),
            m.threads
        );
    };
    for name in DE1D {
        if let Some(pid) = pids.get(name) {
            let m = mem(*pid);
            rss += m.rss;
            pss += m.pss;
            row(name, &m);
        }
    }
    println!(
        "| **de1d total** | **{}** | | | **{}** | | | |",
        mb(rss),
        mb(pss)
    );
    if let Some(pid) = pids.get("Mosquitto") {
        row("Mosquitto (not counted)", &mem(*pid));
    }
    (rss, pss)
}

/// Sum of RSS and of PSS (kB) of the de1d processes.
fn mem_sums(pids: &BTreeMap<String, u32>) -> (u64, u64) {
    DE1D.iter()
        .filter_map(|n| pids.get(*n))
        .map(|p| mem(*p))
        .fold((0, 0), |(r, p), m| (r + m.rss, p + m.pss))
}

fn cpu_snapshot(pids: &BTreeMap<String, u32>) -> BTreeMap<String, u64> {
    pids.iter()
        .filter_map(|(n, p)| cpu_ticks(*p).map(|t| (n.clone(), t)))
        .collect()
}

fn cpu_table(
    title: &str,
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    secs: f64,
) {
    let hz = clock_ticks();
    println!("\n{title} ({secs:.1} s)\n");
    println!("| process | CPU time ms | % of one core |");
    println!("|---|---|---|");
    let mut total = 0.0;
    let ms = |name: &str| -> Option<f64> {
        let (a, b) = (before.get(name)?, after.get(name)?);
        Some(b.saturating_sub(*a) as f64 / hz * 1000.0)
    };
    for name in DE1D {
        if let Some(v) = ms(name) {
            total += v;
            println!("| {name} | {v:.0} | {:.2} |", v / 10.0 / secs);
        }
    }
    println!(
        "| **de1d total** | **{total:.0}** | **{:.2}** |",
        total / 10.0 / secs
    );
    if let Some(v) = ms("Mosquitto") {
        println!(
            "| Mosquitto (not counted) | {v:.0} | {:.2} |",
            v / 10.0 / secs
        );
    }
}

/// The machine's CPU counters (/proc/stat, first line): busy and total ticks.
struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    fn read() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().take(8).sum();
        // idle and iowait are fields 4 and 5.
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        MachineCpu {
            busy: total.saturating_sub(idle),
            total,
        }
    }

    /// Percentage of all CPUs busy since `self` was read.
    fn busy_since(&self) -> f64 {
        let now = MachineCpu::read();
        let total = now.total.saturating_sub(self.total).max(1);
        now.busy.saturating_sub(self.busy) as f64 * 100.0 / total as f64
    }
}

// ------------------------------------------------------------------------- parts

/// Milliseconds of the day of a log line's UTC time stamp (`2024-05-01T10:44:55.153Z …`).
fn log_ms(line: &str) -> Option<f64> {
    let t = line.get(11..23)?;
    let mut it = t.split([':', '.']);
    let mut next = || it.next().and_then(|v| v.parse::<f64>().ok());
    let (h, m, s, ms) = (next()?, next()?, next()?, next()?);
    Some(((h * 60.0 + m) * 60.0 + s) * 1000.0 + ms)
}

/// Shutdown milestones in the log, in ms after "shutting down".
const STOP_STEPS: [&str; 5] = [
    "Inbound stopped",
    "Controller stopped",
    "Outbound stopped",
    "Mosquitto stopped",
    "de1d stopped",
];

fn stop_steps(log: &str) -> Vec<Option<f64>> {
    let at = |what: &str| {
        log.lines()
            .find(|l| l.contains("[Launcher] de1d::commands::launch: ") && l.contains(what))
            .and_then(log_ms)
    };
    let Some(t0) = at("shutting down (") else {
        return vec![None; STOP_STEPS.len()];
    };
    STOP_STEPS
        .iter()
        .map(|s| at(s).map(|t| (t - t0).rem_euclid(86_400_000.0)))
        .collect()
}

fn part_start(o: &Options) {
    let machine = MachineCpu::read();
    let mut http = Vec::new();
    let mut ready = Vec::new();
    let mut stop = Vec::new();
    let mut steps: Vec<Vec<f64>> = vec![Vec::new(); STOP_STEPS.len()];
    for _ in 0..o.starts {
        let mut de1d = Instance::start(&[]);
        let port = de1d.http_port;
        let answered = wait_until(Duration::from_secs(10), Duration::from_millis(1), || {
            Http::connect(port)
                .and_then(|mut h| h.call("GET", "/version", b""))
                .is_ok_and(|(s, _)| s == 200)
        });
        assert!(answered, "HTTP never answered:\n{}", de1d.diagnostics());
        http.push(de1d.spawned.elapsed().as_secs_f64() * 1e3);
        de1d.wait_ready();
        if let Some(ms) = de1d
            .wait_log(Duration::from_secs(1), |l| {
                l.contains("all processes ready")
            })
            .and_then(|l| number_after(&l, "all processes ready "))
        {
            ready.push(ms);
        }
        // Stop in the steady state: DE1 and scale connected.
        de1d.wait_de1();
        std::thread::sleep(Duration::from_millis(500));
        stop.push(de1d.stop().as_secs_f64() * 1e3);
        for (v, t) in steps.iter_mut().zip(stop_steps(&de1d.log_text())) {
            v.extend(t);
        }
    }
    let row = |name: &str, v: Vec<f64>| {
        let v = sorted(v);
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            v.len(),
            percentile(&v, 0.0),
            percentile(&v, 0.5),
            percentile(&v, 0.9),
            percentile(&v, 1.0)
        );
    };
    println!("\nStart and stop (ms)\n");
    println!("| interval | runs | min | median | p90 | max |");
    println!("|---|---|---|---|---|---|");
    row("spawn → HTTP `GET /version` answered", http);
    row("launcher's own \"all processes ready\"", ready);
    row("SIGTERM → launcher exited", stop);
    for (name, v) in STOP_STEPS.iter().zip(steps) {
        row(&format!("… log: \"shutting down\" → \"{name}\""), v);
    }
    println!(
        "\nThe machine's CPUs were {:.0} % busy meanwhile (all processes).",
        machine.busy_since()
    );
}

/// The number that follows `prefix` in `line`.
fn number_after(line: &str, prefix: &str) -> Option<f64> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split(' ').next()?.parse().ok()
}

fn part_idle(o: &Options, de1d: &Instance) {
    let pids = de1d.pids();
    mem_table(
        "Memory, idle (DE1 and scale connected, samples streaming)",
        &pids,
    );
    let before = cpu_snapshot(&pids);
    let machine = MachineCpu::read();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(o.idle_secs));
    let after = cpu_snapshot(&pids);
    cpu_table("CPU, idle", &before, &after, t.elapsed().as_secs_f64());
    println!(
        "\nThe machine's CPUs were {:.1} % busy meanwhile (all processes).",
        machine.busy_since()
    );
    mem_table("Memory, idle, at the end of the idle window", &pids);
}

fn part_http(de1d: &Instance) {
    let port = de1d.http_port;
    let mut h = Http::connect(port).expect("connect");
    for _ in 0..200 {
        let (s, _) = h.call("GET", "/de1/state", b"").expect("GET /de1/state");
        assert_eq!(s, 200);
    }
    let mut lat = Vec::new();
    let t = Instant::now();
    for _ in 0..2000 {
        let r = Instant::now();
        let (s, _) = h.call("GET", "/de1/state", b"").expect("GET /de1/state");
        lat.push(r.elapsed().as_secs_f64() * 1e3);
        assert_eq!(s, 200);
    }
    let secs = t.elapsed().as_secs_f64();
    let lat = sorted(lat);
    println!("\nHTTP `GET /de1/state`, one keep-alive connection, one request at a time\n");
    println!("| requests | p50 ms | p90 ms | p99 ms | max ms | requests/s |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        lat.len() as f64 / secs
    );

    wrk("the default configuration (access log at info)", de1d);

    // The same load with the per-request access log line filtered out.
    let quiet = Instance::start(&[(
        "logging",
        "targets",
        toml::Value::Table(toml::Table::from_iter([(
            "inbound::http".to_owned(),
            toml::Value::String("warn".into()),
        )])),
    )]);
    quiet.wait_ready();
    quiet.wait_de1();
    std::thread::sleep(Duration::from_secs(2));
    wrk(
        "`[logging] targets = { \"inbound::http\" = \"warn\" }` (no access log)",
        &quiet,
    );
}

/// A bounded load on loopback: 2 threads, 10 connections, 10 s.
fn wrk(what: &str, de1d: &Instance) {
    let url = format!("http://127.0.0.1:{}/de1/state", de1d.http_port);
    let pids = de1d.pids();
    let before = cpu_snapshot(&pids);
    let machine = MachineCpu::read();
    let t = Instant::now();
    let out = Command::new("wrk")
        .args(["-t2", "-c10", "-d10s", "--latency", &url])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let after = cpu_snapshot(&pids);
            println!("\n{what}: `wrk -t2 -c10 -d10s --latency {url}`\n\n```");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            println!("```");
            cpu_table(
                "CPU during the wrk run",
                &before,
                &after,
                t.elapsed().as_secs_f64(),
            );
            println!(
                "\nThe machine's CPUs were {:.0} % busy meanwhile (all processes, wrk included).",
                machine.busy_since()
            );
        }
        _ => println!("\n(wrk is not installed: `apt-get install wrk`, then run `wrk -t2 -c10 -d10s --latency {url}`)"),
    }
}

/// Machine load (% of all CPUs) below which a second counts as quiet.
const QUIET_BUSY: f64 = 10.0;

struct ShotClock {
    started: Instant,
    cpu: BTreeMap<String, u64>,
}

fn part_latency(o: &Options, de1d: &Instance) {
    let pids = de1d.pids();
    let rx = subscribe(de1d.broker_port(), "pyDE1/#");
    let port = de1d.http_port;
    let profile = std::fs::read(PROFILE).expect("profile file");
    let (s, b) = http_once(port, "PUT", "/de1/profile", &profile);
    assert_eq!(s, 200, "profile upload: {b}");

    let start_shot = || {
        let (s, b) = http_once(
            port,
            "PATCH",
            "/de1/control/espresso",
            br#"{"stop_at_weight": 36}"#,
        );
        assert_eq!(s, 200, "stop at weight: {b}");
        let (s, b) = http_once(port, "PATCH", "/de1/mode", br#"{"mode": "Espresso"}"#);
        assert_eq!(s, 200, "start a shot: {b}");
    };

    // Latencies (ms) of shot samples outside and during shots, and of weight updates.
    let (mut idle, mut shot, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    let mut state = String::new();
    let mut current: Option<ShotClock> = None;
    let mut shots: Vec<ShotUsage> = Vec::new();
    let mut peak = (0u64, 0u64);
    let mut next_shot = Some(Instant::now() + Duration::from_secs(2));
    let mut last_mem = Instant::now();
    let began = Instant::now();
    let machine = MachineCpu::read();
    let deadline = began + Duration::from_secs(30 + o.samples as u64);
    let mut skipped = 0;
    // (seconds since the start, seconds into the shot, topic, latency ms) above 2 ms.
    let mut slow: Vec<(f64, Option<f64>, String, f64)> = Vec::new();
    // Shot sample latencies by the machine's load in the second they arrived: the
    // machine may be shared, and other processes' work delays every wake-up on the path.
    let (mut quiet, mut loaded, mut bucket) = (Vec::new(), Vec::new(), Vec::new());
    let mut bucket_cpu = MachineCpu::read();
    let mut bucket_t = Instant::now();
    while Instant::now() < deadline {
        if bucket_t.elapsed() >= Duration::from_secs(1) {
            let busy = bucket_cpu.busy_since();
            if busy < QUIET_BUSY {
                quiet.append(&mut bucket);
            } else {
                loaded.append(&mut bucket);
            }
            bucket_cpu = MachineCpu::read();
            bucket_t = Instant::now();
        }
        if next_shot.is_some_and(|t| Instant::now() >= t) {
            next_shot = None;
            start_shot();
        }
        if current.is_some() && last_mem.elapsed() >= Duration::from_millis(100) {
            last_mem = Instant::now();
            let (r, p) = mem_sums(&pids);
            peak = (peak.0.max(r), peak.1.max(p));
        }
        let Ok(m) = rx.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        match m.topic.as_str() {
            "pyDE1/ShotSampleWithVolumesUpdate" | "pyDE1/WeightAndFlowUpdate" => {
                let Some(arrival) = json_number(&m.payload, "arrival_time") else {
                    continue;
                };
                // The first few may have been queued before the subscription.
                if skipped < 5 {
                    skipped += 1;
                    continue;
                }
                let ms = (m.at_epoch - arrival) * 1e3;
                if ms > 2.0 {
                    slow.push((
                        began.elapsed().as_secs_f64(),
                        current.as_ref().map(|c| c.started.elapsed().as_secs_f64()),
                        m.topic.trim_start_matches("pyDE1/").to_owned(),
                        ms,
                    ));
                }
                if m.topic.ends_with("WeightAndFlowUpdate") {
                    weight.push(ms);
                    continue;
                }
                bucket.push(ms);
                if state == "Espresso" {
                    shot.push(ms);
                } else {
                    idle.push(ms);
                }
            }
            "pyDE1/StateUpdate" => {
                let Some(s) = json_string(&m.payload, "state") else {
                    continue;
                };
                state = s.to_owned();
                if state == "Espresso" && current.is_none() {
                    current = Some(ShotClock {
                        started: Instant::now(),
                        cpu: cpu_snapshot(&pids),
                    });
                } else if state != "Espresso" {
                    if let Some(c) = current.take() {
                        shots.push((
                            c.started.elapsed().as_secs_f64(),
                            c.cpu,
                            cpu_snapshot(&pids),
                        ));
                        next_shot = Some(Instant::now() + Duration::from_secs(2));
                    }
                }
            }
            _ => {}
        }
        if idle.len() + shot.len() >= o.samples && !shots.is_empty() && current.is_none() {
            break;
        }
    }
    let busy = machine.busy_since();
    let all = sorted(idle.iter().chain(&shot).copied().collect());
    let row = |name: &str, v: &[f64]| {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            v.len(),
            percentile(v, 0.0),
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            percentile(v, 0.999),
            percentile(v, 1.0)
        );
    };
    println!("\nMQTT latency: payload `arrival_time` → subscriber's read returned (ms)\n");
    println!("| messages | n | min | p50 | p90 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|---|---|");
    row("ShotSampleWithVolumesUpdate, all", &all);
    row("… while idle", &sorted(idle));
    row("… during shots", &sorted(shot));
    row("WeightAndFlowUpdate (scale path)", &sorted(weight));
    row(
        &format!("ShotSample…, seconds the machine was < {QUIET_BUSY:.0} % busy"),
        &sorted(quiet),
    );
    row(
        &format!("ShotSample…, seconds the machine was ≥ {QUIET_BUSY:.0} % busy"),
        &sorted(loaded),
    );
    println!(
        "\n{} shots ran during the {:.0} s of the measurement; the machine's CPUs were {:.0} % busy \
         (all processes, /proc/stat)",
        shots.len(),
        began.elapsed().as_secs_f64(),
        busy
    );
    println!(
        "\n{} messages took more than 2 ms; the slowest:\n",
        slow.len()
    );
    println!("| at s | into the shot s | topic | ms |");
    println!("|---|---|---|---|");
    slow.sort_by(|a, b| b.3.total_cmp(&a.3));
    for (at, into, topic, ms) in slow.iter().take(10) {
        let into = into.map_or("-".to_owned(), |v| format!("{v:.1}"));
        println!("| {at:.1} | {into} | {topic} | {ms:.2} |");
    }
    if let Some((secs, before, after)) = shots.first() {
        cpu_table("CPU during one shot (Espresso state)", before, after, *secs);
    }
    println!(
        "\nMemory peak during shots (sampled every 100 ms): RSS {} MB, PSS {} MB",
        mb(peak.0),
        mb(peak.1)
    );
    mem_table("Memory after the shots", &pids);
}

// ------------------------------------------------------------------------- hops

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in seconds. std's `Instant` is CLOCK_MONOTONIC
/// on Linux, and its Debug form shows the raw value (`Instant { tv_sec: …, tv_nsec: … }`).
fn realtime_minus_monotonic() -> Option<f64> {
    let mono = format!("{:?}", Instant::now());
    let epoch = epoch_now();
    let num = |key: &str| -> Option<f64> {
        let rest = &mono[mono.find(key)? + key.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some(epoch - (num("tv_sec:")? + num("tv_nsec:")? * 1e-9))
}

/// One traced system call: process, thread name, call, result, entry and exit times
/// (CLOCK_MONOTONIC seconds).
struct Sys {
    pid: u32,
    comm: String,
    call: String,
    ret: i64,
    start: f64,
    end: f64,
}

/// Parses `perf script -F comm,pid,tid,time,event,trace --ns` output, pairing each exit
/// with its thread's entry.
fn parse_perf_script(text: &str) -> Vec<Sys> {
    let mut entered: BTreeMap<u32, f64> = BTreeMap::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((head, event)) = line.split_once("syscalls:sys_") else {
            continue;
        };
        let head = head.trim_end().trim_end_matches(':');
        let mut it = head.split_whitespace().rev();
        let (Some(time), Some(ids)) = (it.next(), it.next()) else {
            continue;
        };
        let comm: Vec<&str> = it.collect();
        let comm = comm.into_iter().rev().collect::<Vec<_>>().join(" ");
        let Ok(time) = time.trim_end_matches(':').parse::<f64>() else {
            continue;
        };
        let Some((pid, tid)) = ids.split_once('/') else {
            continue;
        };
        let (Ok(pid), Ok(tid)) = (pid.parse::<u32>(), tid.parse::<u32>()) else {
            continue;
        };
        let Some((kind, rest)) = event.split_once('_') else {
            continue;
        };
        let Some((call, args)) = rest.split_once(':') else {
            continue;
        };
        if kind == "enter" {
            entered.insert(tid, time);
            continue;
        }
        let args = args.trim();
        let ret = match args.strip_prefix("0x") {
            Some(hex) => i64::from_str_radix(hex, 16).unwrap_or(-1),
            None => args.parse().unwrap_or(-1),
        };
        out.push(Sys {
            pid,
            comm,
            call: call.to_owned(),
            ret,
            start: entered.remove(&tid).unwrap_or(time),
            end: time,
        });
    }
    out.sort_by(|a, b| a.end.total_cmp(&b.end));
    out
}

/// Where the time of a shot sample goes, hop by hop: a syscall trace (`perf record` of
/// the controller, outbound, mosquitto and this subscriber) followed backwards from each
/// message the subscriber read.
fn part_hops(de1d: &Instance) {
    let perf_ok = Command::new("perf")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let Some(offset) = realtime_minus_monotonic().filter(|_| perf_ok) else {
        println!("\n(hops: needs `perf` and a readable CLOCK_MONOTONIC; skipped)");
        return;
    };
    let pids = de1d.pids();
    let (Some(&ctl), Some(&out), Some(&mosq)) = (
        pids.get("Controller"),
        pids.get("Outbound"),
        pids.get("Mosquitto"),
    ) else {
        println!("\n(hops: process ids not found; skipped)");
        return;
    };
    let rx = subscribe(de1d.broker_port(), "pyDE1/ShotSampleWithVolumesUpdate");
    let port = de1d.http_port;
    let profile = std::fs::read(PROFILE).expect("profile file");
    http_once(port, "PUT", "/de1/profile", &profile);
    http_once(port, "PATCH", "/de1/mode", br#"{"mode": "Espresso"}"#);
    std::thread::sleep(Duration::from_secs(2));
    while rx.try_recv().is_ok() {}

    let data = de1d.dir.path().join("hops.perf");
    let events = [
        "syscalls:sys_enter_writev",
        "syscalls:sys_exit_writev",
        "syscalls:sys_enter_write",
        "syscalls:sys_exit_write",
        "syscalls:sys_enter_sendto",
        "syscalls:sys_exit_sendto",
        "syscalls:sys_enter_sendmsg",
        "syscalls:sys_exit_sendmsg",
        "syscalls:sys_exit_read",
        "syscalls:sys_exit_recvfrom",
    ]
    .join(",");
    let who = format!("{ctl},{out},{mosq},{}", std::process::id());
    let secs = "15";
    println!(
        "\n`perf record -q -k CLOCK_MONOTONIC -e {events} -p <controller>,<outbound>,<mosquitto>,<subscriber> -- sleep {secs}`"
    );
    let recorded = Command::new("perf")
        .args(["record", "-q", "-k", "CLOCK_MONOTONIC", "-o"])
        .arg(&data)
        .args(["-e", &events, "-p", &who, "--", "sleep", secs])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut got: Vec<Received> = Vec::new();
    while let Ok(m) = rx.try_recv() {
        got.push(m);
    }
    let script = Command::new("perf")
        .args([
            "script",
            "-F",
            "comm,pid,tid,time,event,trace",
            "--ns",
            "-i",
        ])
        .arg(&data)
        .stderr(Stdio::null())
        .output();
    let text = match script {
        Ok(o) if recorded && o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            println!("(hops: perf record or perf script failed; skipped)");
            return;
        }
    };
    let sys = parse_perf_script(&text);
    let last = |before: f64, pred: &dyn Fn(&Sys) -> bool| -> Option<&Sys> {
        sys.iter().rev().find(|e| e.end < before && pred(e))
    };
    const HOPS: [&str; 7] = [
        "simulator hand-off → controller writes the event to outbound's socket",
        "→ outbound has read it",
        "→ rendered, handed to paho, paho's send thread writes it to TCP",
        "→ mosquitto has read it",
        "→ mosquitto writes it to the subscriber",
        "→ the subscriber has read it",
        "total",
    ];
    let mut hops: Vec<Vec<f64>> = vec![Vec::new(); HOPS.len()];
    for m in &got {
        let Some(arrival) = json_number(&m.payload, "arrival_time") else {
            continue;
        };
        let (arrival, read) = (arrival - offset, m.at_epoch - offset);
        let len = m.packet_len as i64;
        let near = |ret: i64| (ret - len).abs() <= 8;
        let Some(w4) = last(read, &|e| {
            e.pid == mosq && e.call == "write" && e.ret == len
        }) else {
            continue;
        };
        let Some(r3) = last(w4.start, &|e| {
            e.pid == mosq && e.call == "read" && near(e.ret)
        }) else {
            continue;
        };
        let Some(w2) = last(r3.end, &|e| {
            e.pid == out && e.comm.starts_with("MQTTAsync") && e.call == "writev" && near(e.ret)
        }) else {
            continue;
        };
        let Some(r1) = last(w2.start, &|e| {
            e.pid == out && e.call == "recvfrom" && e.ret > 0
        }) else {
            continue;
        };
        let Some(w0) = last(r1.end, &|e| {
            e.pid == ctl && e.call != "read" && e.ret == r1.ret
        }) else {
            continue;
        };
        if w0.start < arrival {
            continue;
        }
        let steps = [
            w0.start - arrival,
            r1.end - w0.start,
            w2.start - r1.end,
            r3.end - w2.start,
            w4.start - r3.end,
            read - w4.start,
            read - arrival,
        ];
        for (v, s) in hops.iter_mut().zip(steps) {
            v.push(s * 1e6);
        }
    }
    println!(
        "\nShot samples hop by hop: {} read by the subscriber, {} followed through every hop (µs)\n",
        got.len(),
        hops[0].len()
    );
    println!("| hop | p50 µs | p90 µs |");
    println!("|---|---|---|");
    for (name, v) in HOPS.iter().zip(hops) {
        let v = sorted(v);
        println!(
            "| {name} | {:.0} | {:.0} |",
            percentile(&v, 0.5),
            percentile(&v, 0.9)
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this file without it,
    // and a test run should not spend minutes measuring.
    if !std::env::args().any(|a| a == "--bench") {
        println!("end_to_end: measures only under `cargo bench -p de1d-bin --bench end_to_end`");
        return;
    }
    let o = Options::parse();
    assert!(
        Path::new(MOSQUITTO).is_file(),
        "needs {MOSQUITTO} (scripts/setup.sh installs it)"
    );
    println!("de1d: {EXE}");
    if o.wants("start") {
        part_start(&o);
    }
    if ["idle", "http", "latency", "hops"]
        .iter()
        .any(|p| o.wants(p))
    {
        let mut de1d = Instance::start(&[]);
        de1d.wait_ready();
        assert!(
            de1d.wait_de1(),
            "DE1 not connected:\n{}",
            de1d.diagnostics()
        );
        // Let start-up work and the first reports settle.
        std::thread::sleep(Duration::from_secs(5));
        if o.wants("idle") {
            part_idle(&o, &de1d);
        }
        if o.wants("http") {
            part_http(&de1d);
        }
        if o.wants("latency") {
            part_latency(&o, &de1d);
        }
        if o.wants("hops") {
            part_hops(&de1d);
        }
        de1d.stop();
        let log = de1d.log_text();
        if log.contains("panicked") || log.contains("restarting") {
            println!(
                "\nwarning: the log shows a panic or a restart:\n{}",
                de1d.diagnostics()
            );
        }
    }
}
