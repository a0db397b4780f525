//! The harness of the end-to-end tests: a private mosquitto, the real `de1d` executable
//! run the way a user runs it (`--simulate`, its own runtime directory, log file, HTTP
//! port and broker), a small HTTP/1.1 client that can also send malformed requests, an
//! MQTT subscriber that records everything de1d publishes, and the facts about a shot
//! that the tests check.
#![allow(dead_code)] // not every test module uses every helper

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paho_mqtt as mqtt;
use serde_json::Value;

pub const EXE: &str = env!("CARGO_BIN_EXE_de1d");
/// Where Debian's `mosquitto` package (installed by `scripts/setup.sh`) puts the broker.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// The profile of the first shot, as the quick start uploads it.
pub const PROFILE: &str = "de1app__classic_italian_espresso.json";
/// The stop-at-weight target of the quick start.
pub const TARGET_WEIGHT: f64 = 36.0;
/// The simulated DE1 runs on 50 Hz mains: one ShotSample every 25 half-cycles, i.e.
/// 100 / 25 = 4 per second.
pub const SAMPLES_PER_SECOND: f64 = 4.0;
pub const HALF_CYCLES_PER_SAMPLE: i64 = 25;
/// The eight gates of a sequence, in the order of `pyde1-sequencer.md` §2.
pub const GATES: [&str; 8] = [
    "sequence_start",
    "sequence_flow_begin",
    "sequence_expect_drops",
    "sequence_exit_preinfuse",
    "sequence_flow_end",
    "sequence_flow_state_exit",
    "sequence_last_drops",
    "sequence_complete",
];

/// A stock profile of the repository's test vectors.
pub fn profile_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/profiles")
        .join(name)
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Polls `f` every 10 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process runs (zombies count as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// One line of the combined log: `<time> <LEVEL> [<Process>] <target>: <message>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub level: &'a str,
    pub process: &'a str,
    pub target: &'a str,
    pub message: &'a str,
}

/// Parses a whole log line; `None` if it is not one (garbled, cut, or merged).
pub fn parse_line(line: &str) -> Option<LogLine<'_>> {
    let (time, rest) = line.split_once(' ')?;
    let b = time.as_bytes();
    let time_ok = time.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && time.chars().filter(char::is_ascii_digit).count() == 17;
    if !time_ok {
        return None;
    }
    let (level, rest) = rest.split_once(' ')?;
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let rest = rest.trim_start().strip_prefix('[')?;
    let (process, rest) = rest.split_once("] ")?;
    if process.is_empty() || !process.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let (target, message) = rest.split_once(": ")?;
    Some(LogLine {
        level,
        process,
        target,
        message,
    })
}

// ---------------------------------------------------------------------------------------
// The broker

/// A private mosquitto on a free loopback port, killed when dropped. It outlives the
/// de1d under test, so that retained topics can be read after de1d has stopped.
pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        assert!(
            Path::new(MOSQUITTO).is_file(),
            "{MOSQUITTO} is missing: run scripts/setup.sh (installs mosquitto)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Broker {
            port,
            child,
            _dir: dir,
        };
        assert!(
            wait_until(Duration::from_secs(5), || TcpStream::connect((
                Ipv4Addr::LOCALHOST,
                port
            ))
            .is_ok()),
            "mosquitto did not listen on port {port}"
        );
        broker
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// MQTT

/// One message as a subscriber received it.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: String,
    pub retained: bool,
    /// When the test received it.
    pub at: Instant,
}

impl Msg {
    /// The last level of the topic: the payload class of an event topic.
    pub fn class(&self) -> &str {
        self.topic.rsplit('/').next().unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or(Value::Null)
    }

    /// A string field of the JSON payload ("" if absent).
    pub fn str_field(&self, key: &str) -> String {
        self.json()[key].as_str().unwrap_or("").to_owned()
    }

    /// A number field of the JSON payload.
    pub fn num_field(&self, key: &str) -> Option<f64> {
        self.json()[key].as_f64()
    }
}

/// An MQTT 5 subscriber that records every message in the background.
pub struct Mqtt {
    client: mqtt::Client,
    got: Arc<Mutex<Vec<Msg>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Mqtt {
    pub fn subscribe(port: u16, filter: &str) -> Mqtt {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "e2e-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = mqtt::Client::new(
            mqtt::CreateOptionsBuilder::new()
                .server_uri(format!("tcp://127.0.0.1:{port}"))
                .client_id(id)
                .mqtt_version(mqtt::MQTT_VERSION_5)
                .persistence(mqtt::PersistenceType::None)
                .finalize(),
        )
        .expect("MQTT client");
        let rx = client.start_consuming();
        let opts = mqtt::ConnectOptionsBuilder::new_v5()
            .clean_start(true)
            .connect_timeout(Duration::from_secs(5))
            .finalize();
        client.connect(opts).expect("MQTT connect");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let thread = std::thread::spawn(move || {
            // Ends when the client stops consuming (the channel closes).
            for m in rx.iter().flatten() {
                let msg = Msg {
                    topic: m.topic().to_owned(),
                    payload: m.payload_str().into_owned(),
                    retained: m.retained(),
                    at: Instant::now(),
                };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(msg);
            }
        });
        client
            .subscribe(filter, mqtt::QOS_0)
            .expect("MQTT subscribe");
        Mqtt {
            client,
            got,
            thread: Some(thread),
        }
    }

    /// Everything received so far.
    pub fn messages(&self) -> Vec<Msg> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The first message at index `from` or later satisfying `pred`, waiting up to
    /// `timeout`; with its index.
    pub fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Msg) -> bool,
    ) -> Option<(usize, Msg)> {
        let mut found = None;
        wait_until(timeout, || {
            let got = self.got.lock().unwrap_or_else(|e| e.into_inner());
            found = got
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, m)| pred(m))
                .map(|(i, m)| (i, m.clone()));
            found.is_some()
        });
        found
    }

    /// The latest payload of every topic starting with `prefix`.
    pub fn latest(&self, prefix: &str) -> HashMap<String, Msg> {
        let mut out = HashMap::new();
        for m in self.messages() {
            if m.topic.starts_with(prefix) {
                out.insert(m.topic.clone(), m);
            }
        }
        out
    }
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        let _ = self.client.disconnect(None);
        self.client.stop_consuming();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

/// One HTTP response, and whatever the server sent after it on the same connection.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes after the first complete response (a second response would show here).
    pub trailing: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 request with `Connection: close`.
pub fn request(port: u16, method: &str, path: &str, body: Option<&[u8]>) -> Response {
    let mut raw =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(b) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    exchange(port, &bytes).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, None)
}

pub fn patch(port: u16, path: &str, body: &str) -> Response {
    request(port, "PATCH", path, Some(body.as_bytes()))
}

pub fn put(port: u16, path: &str, body: &[u8]) -> Response {
    request(port, "PUT", path, Some(body))
}

/// Sends `bytes` as they are (from a second thread, so that a server answering before
/// it has read everything cannot dead-lock the test), then reads until the server closes
/// the connection (or 20 s pass) and parses the first response.
pub fn exchange(port: u16, bytes: &[u8]) -> Result<Response, String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let out = bytes.to_vec();
    // A server may answer and close before reading a large body; the write error is
    // expected then.
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&out);
        let _ = w.flush();
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !got.is_empty() => break,
            Err(e) => {
                if got.is_empty() {
                    let _ = s.shutdown(Shutdown::Both);
                    let _ = writer.join();
                    return Err(format!("no response: {e}"));
                }
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();
    parse_response(&got)
}

fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete head in {:?}", String::from_utf8_lossy(raw)))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP response: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let (body, trailing) = if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
        if rest.len() < len {
            return Err(format!("body cut at {} of {len} bytes", rest.len()));
        }
        (rest[..len].to_vec(), rest[len..].to_vec())
    } else {
        (rest.to_vec(), Vec::new())
    };
    Ok(Response {
        status,
        headers,
        body,
        trailing,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line cut")?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            // No trailers are expected: the final CRLF ends the message.
            let after = rest.strip_prefix(b"\r\n").ok_or("chunked body not ended")?;
            return Ok((body, after.to_vec()));
        }
        if rest.len() < size + 2 {
            return Err("chunk cut".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------
// de1d

/// A running `de1d --simulate` with its own runtime directory, log file, HTTP port and
/// broker, and a subscriber to everything it publishes (connected before de1d starts).
pub struct De1d {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub rt: PathBuf,
    pub http_port: u16,
    pub mqtt: Mqtt,
    pub broker: Broker,
}

impl De1d {
    /// Starts de1d; `set` adds `(section, key, value)` to its configuration file.
    pub fn start(set: &[(&str, &str, toml::Value)]) -> De1d {
        let broker = Broker::start();
        let mqtt = Mqtt::subscribe(broker.port, "pyDE1/#");
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("log/combined.log");
        let rt = dir.path().join("rt");
        let http_port = free_port();
        let mut cfg = toml::Table::new();
        let mut put = |section: &str, key: &str, value: toml::Value| {
            if let toml::Value::Table(t) = cfg
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                t.insert(key.to_owned(), value);
            }
        };
        put(
            "mqtt",
            "broker_host",
            toml::Value::String("127.0.0.1".into()),
        );
        put("logging", "stderr", toml::Value::String("never".into()));
        put(
            "database",
            "path",
            toml::Value::String(dir.path().join("db/de1d.sqlite3").display().to_string()),
        );
        for (s, k, v) in set {
            put(s, k, v.clone());
        }
        let cfg_path = dir.path().join("de1d.toml");
        std::fs::write(&cfg_path, toml::to_string(&cfg).expect("toml")).expect("write config");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut cmd = Command::new(EXE);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("DE1D_") {
                cmd.env_remove(k);
            }
        }
        // As a user would type it.
        let child = cmd
            .arg("--config")
            .arg(&cfg_path)
            .arg("--simulate")
            .args(["--http-port", &http_port.to_string()])
            .args(["--mqtt-port", &broker.port.to_string()])
            .arg("--log-file")
            .arg(&log)
            .arg("--runtime-dir")
            .arg(&rt)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn de1d");
        De1d {
            child,
            dir,
            log,
            rt,
            http_port,
            mqtt,
            broker,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until every process is up and the simulated DE1 and scale are ready (as
    /// the HTTP API reports them), and the DE1 has reported Idle on MQTT.
    pub fn wait_ready(&self) {
        let ready = |what: &str| {
            let r = get(self.http_port, &format!("/{what}/availability"));
            r.status == 200 && r.json()["mode"] == "ready"
        };
        assert!(
            wait_until(Duration::from_secs(15), || {
                std::thread::sleep(Duration::from_millis(40));
                self.log_text().contains("all processes ready") && ready("de1") && ready("scale")
            }),
            "de1d not ready; {}",
            self.diagnostics()
        );
        assert!(
            self.mqtt
                .wait_for(0, Duration::from_secs(5), |m| m.class() == "StateUpdate"
                    && m.str_field("state") == "Idle")
                .is_some(),
            "no Idle StateUpdate on MQTT; {}",
            self.diagnostics()
        );
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.http_port, path)
    }

    pub fn patch(&self, path: &str, body: &str) -> Response {
        patch(self.http_port, path, body)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Response {
        put(self.http_port, path, body)
    }

    /// A PATCH or PUT that must succeed with `[]` (or a list of results).
    pub fn expect_ok(&self, r: Response, what: &str) -> Response {
        assert_eq!(
            r.status,
            200,
            "{what}: {}; {}",
            r.text(),
            self.diagnostics()
        );
        assert!(r.json().is_array(), "{what}: {}", r.text());
        r
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_len(&self) -> usize {
        std::fs::metadata(&self.log).map_or(0, |m| m.len() as usize)
    }

    /// The first log line after byte `from` satisfying `pred`, waiting up to `timeout`.
    pub fn wait_line(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            let text = self.log_text();
            found = text
                .get(from..)
                .and_then(|t| t.lines().find(|l| pred(l)).map(str::to_owned));
            found.is_some()
        });
        found
    }

    /// Pids the launcher announced ("X ready (pid N)", "Mosquitto started (pid N)"),
    /// the latest per process.
    pub fn pids(&self) -> HashMap<String, u32> {
        let mut out = HashMap::new();
        for line in self.log_text().lines() {
            let Some(l) = parse_line(line) else { continue };
            if l.process != "Launcher" {
                continue;
            }
            if let Some((name, rest)) = l.message.split_once(" ready (pid ") {
                if let Some(pid) = rest.split(')').next().and_then(|p| p.parse().ok()) {
                    out.insert(name.to_owned(), pid);
                }
            }
        }
        out
    }

    /// SIGKILLs a child and waits until the launcher reports its successor ready;
    /// returns the new pid.
    pub fn kill_child(&self, name: &str) -> u32 {
        let old = *self
            .pids()
            .get(name)
            .unwrap_or_else(|| panic!("no pid for {name}; {}", self.diagnostics()));
        let from = self.log_len();
        kill(Pid::from_raw(old as i32), Signal::SIGKILL).expect("SIGKILL");
        let marker = format!("{name} ready (pid ");
        self.wait_line(from, Duration::from_secs(5), |l| l.contains(&marker))
            .unwrap_or_else(|| panic!("{name} not restarted; {}", self.diagnostics()));
        let new = self.pids()[name];
        assert_ne!(new, old, "{name} has the same pid");
        assert!(!alive(old), "{name} (pid {old}) survived SIGKILL");
        new
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("signal de1d");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Stderr and the end of the log, for failure messages.
    pub fn diagnostics(&self) -> String {
        let stderr = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let log = self.log_text();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        format!(
            "stderr:\n{stderr}\nlog (last lines):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Uploads the quick start's profile, sets stop-at-weight and starts the shot, as
    /// `docs/quick-start.md` does; returns the MQTT index from which the shot's
    /// messages follow.
    pub fn start_shot(&self) -> usize {
        let profile = std::fs::read(profile_path(PROFILE)).expect("profile");
        let r = self.expect_ok(self.put("/de1/profile", &profile), "PUT /de1/profile");
        let ids = r.json();
        assert!(
            ids[0]["id"].as_str().is_some_and(|s| s.len() == 40)
                && ids[0]["fingerprint"]
                    .as_str()
                    .is_some_and(|s| s.len() == 40),
            "profile upload answered {}",
            r.text()
        );
        self.expect_ok(
            self.patch(
                "/de1/control/espresso",
                &format!("{{\"stop_at_weight\": {TARGET_WEIGHT}}}"),
            ),
            "PATCH stop_at_weight",
        );
        let from = self.mqtt.len();
        self.expect_ok(
            self.patch("/de1/mode", r#"{"mode": "Espresso"}"#),
            "PATCH mode Espresso",
        );
        from
    }

    /// Waits for a StateUpdate at or after `from` (MQTT index) with this substate.
    pub fn wait_substate(&self, from: usize, substate: &str, timeout: Duration) -> Msg {
        self.mqtt
            .wait_for(from, timeout, |m| {
                m.class() == "StateUpdate" && m.str_field("substate") == substate
            })
            .map(|(_, m)| m)
            .unwrap_or_else(|| panic!("no substate {substate}; {}", self.diagnostics()))
    }

    /// Waits for the end of the sequence started after `from` (its `sequence_complete`),
    /// then `settle` more for the last drops to reach the scale; returns the shot's
    /// messages.
    pub fn wait_shot_end(&self, from: usize, timeout: Duration, settle: Duration) -> Shot {
        let start = self
            .mqtt
            .wait_for(from, timeout, |m| {
                m.class() == "SequencerGateNotification"
                    && m.str_field("name") == "sequence_start"
                    && m.str_field("action") == "set"
            })
            .map(|(_, m)| m)
            .unwrap_or_else(|| panic!("the sequence did not start; {}", self.diagnostics()));
        let id = start.str_field("sequence_id");
        let done = self.mqtt.wait_for(from, timeout, |m| {
            m.class() == "SequencerGateNotification"
                && m.str_field("name") == "sequence_complete"
                && m.str_field("action") == "set"
                && m.str_field("sequence_id") == id
        });
        assert!(
            done.is_some(),
            "sequence {id} not complete; {}",
            self.diagnostics()
        );
        std::thread::sleep(settle);
        Shot::new(self.mqtt.messages()[from..].to_vec(), id)
    }
}

impl Drop for De1d {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid() as i32), Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(6)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// What a shot looked like on MQTT

/// The MQTT messages of one sequence, from the mode request on.
pub struct Shot {
    pub msgs: Vec<Msg>,
    pub sequence_id: String,
}

impl Shot {
    pub fn new(msgs: Vec<Msg>, sequence_id: String) -> Shot {
        Shot { msgs, sequence_id }
    }

    pub fn of_class<'a>(&'a self, class: &'a str) -> impl Iterator<Item = &'a Msg> + 'a {
        self.msgs.iter().filter(move |m| m.class() == class)
    }

    /// `(state, substate)` of every StateUpdate, repeats removed.
    pub fn states(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for m in self.of_class("StateUpdate") {
            let s = (m.str_field("state"), m.str_field("substate"));
            if out.last() != Some(&s) {
                out.push(s);
            }
        }
        out
    }

    /// `(name, action, arrival_time)` of this sequence's gate notifications, in order.
    pub fn gates(&self) -> Vec<(String, String, f64)> {
        self.of_class("SequencerGateNotification")
            .filter(|m| m.str_field("sequence_id") == self.sequence_id)
            .map(|m| {
                (
                    m.str_field("name"),
                    m.str_field("action"),
                    m.num_field("arrival_time").unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    /// Arrival time of a gate's `set`.
    pub fn gate_set(&self, name: &str) -> Option<f64> {
        self.gates()
            .into_iter()
            .find(|(n, a, _)| n == name && a == "set")
            .map(|(_, _, t)| t)
    }

    /// Shot samples between the gates `sequence_start` and `sequence_complete`.
    pub fn samples(&self) -> Vec<Value> {
        let (Some(t0), Some(t1)) = (
            self.gate_set("sequence_start"),
            self.gate_set("sequence_complete"),
        ) else {
            return Vec::new();
        };
        self.of_class("ShotSampleWithVolumesUpdate")
            .map(Msg::json)
            .filter(|v| {
                v["arrival_time"]
                    .as_f64()
                    .is_some_and(|t| t >= t0 && t <= t1)
            })
            .collect()
    }

    /// `(arrival_time, current_weight)` of every scale report.
    pub fn weights(&self) -> Vec<(f64, f64)> {
        self.of_class("WeightAndFlowUpdate")
            .filter_map(|m| Some((m.num_field("arrival_time")?, m.num_field("current_weight")?)))
            .collect()
    }

    /// The cup's weight once the last drops have fallen: the median of the scale
    /// reports during the second after `sequence_complete`.
    pub fn final_weight(&self) -> Option<f64> {
        let t = self.gate_set("sequence_complete")?;
        let mut w: Vec<f64> = self
            .weights()
            .into_iter()
            .filter(|(at, _)| *at >= t && *at <= t + 1.0)
            .map(|(_, w)| w)
            .collect();
        if w.is_empty() {
            return None;
        }
        w.sort_by(f64::total_cmp);
        Some(w[w.len() / 2])
    }

    /// StopAtNotifications as `(stop_at, action, target, current)`.
    pub fn stop_ats(&self) -> Vec<(String, String, Option<f64>, Option<f64>)> {
        self.of_class("StopAtNotification")
            .map(|m| {
                (
                    m.str_field("stop_at"),
                    m.str_field("action"),
                    m.num_field("target_value"),
                    m.num_field("current_value"),
                )
            })
            .collect()
    }

    /// Asserts the shot stopped at the target weight: stop-at-weight triggered with that
    /// target, and the cup holds it within ±1 g after the last drops.
    pub fn assert_stopped_at_weight(&self, target: f64, diag: &str) {
        let triggered: Vec<_> = self
            .stop_ats()
            .into_iter()
            .filter(|(what, action, _, _)| what == "weight" && action == "triggered")
            .collect();
        let Some((_, _, t, current)) = triggered.first() else {
            panic!(
                "no StopAtNotification weight/triggered; stop-at: {:?}\n{diag}",
                self.stop_ats()
            );
        };
        assert_eq!(*t, Some(target), "trigger target");
        let current = current.unwrap_or(f64::NAN);
        assert!(
            current > target - 8.0 && current < target,
            "triggered at {current} g: before the drops still falling could bring it to {target} g"
        );
        let last = self
            .final_weight()
            .unwrap_or_else(|| panic!("no scale reports after the sequence completed\n{diag}"));
        eprintln!("stop-at-weight: triggered at {current} g, the cup holds {last} g");
        assert!(
            (last - target).abs() <= 1.0,
            "the cup holds {last} g, not {target} ± 1 g; weights: {:?}\n{diag}",
            self.weights().iter().rev().take(30).collect::<Vec<_>>()
        );
    }

    /// Asserts that the samples of the shot came at the DE1's pace: none missing (the
    /// SampleTime steps by 25 half-cycles every time), about 4 per second, with no
    /// stall longer than `max_gap` at the subscriber.
    pub fn assert_sample_pace(&self, max_gap: Duration) {
        let samples = self.samples();
        assert!(samples.len() > 40, "only {} samples", samples.len());
        let times: Vec<i64> = samples
            .iter()
            .map(|s| s["sample_time"].as_i64().unwrap_or(-1))
            .collect();
        for w in times.windows(2) {
            let step = (w[1] - w[0]).rem_euclid(65536);
            assert_eq!(
                step, HALF_CYCLES_PER_SAMPLE,
                "SampleTime went from {} to {}: samples missing",
                w[0], w[1]
            );
        }
        let first = samples[0]["arrival_time"].as_f64().unwrap_or(f64::NAN);
        let last = samples[samples.len() - 1]["arrival_time"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let rate = (samples.len() - 1) as f64 / (last - first);
        assert!(
            (rate - SAMPLES_PER_SECOND).abs() <= 0.4,
            "{rate:.2} samples per second, expected {SAMPLES_PER_SECOND}"
        );
        let received: Vec<Instant> = self
            .of_class("ShotSampleWithVolumesUpdate")
            .map(|m| m.at)
            .collect();
        let gap = received
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        eprintln!(
            "samples: {} at {rate:.2}/s, longest wait at the subscriber {gap:?}",
            samples.len()
        );
        assert!(gap <= max_gap, "no sample for {gap:?}");
    }
}
