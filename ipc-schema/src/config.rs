//! The de1d configuration: every section, its defaults, and how it is loaded.
//!
//! Sources, later ones winning: built-in defaults, a TOML file, environment variables
//! `DE1D_<SECTION>__<KEY>` (value parsed as a TOML value, else taken as a string; nested keys
//! use further `__`), then command-line flags (applied by the launcher on the typed value).
//! Unknown sections or keys and bad values are errors naming the key (or the variable).
//!
//! The launcher writes the effective configuration into the runtime directory; children read
//! it with [`Config::from_toml_str`] and never consult the environment themselves.
//!
//! Durations are seconds as floating-point numbers; the `*_duration()` helpers convert them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default location of the configuration file; used only if it exists.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/de1d/de1d.toml";
/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "DE1D_";
/// What [`Config::redacted`] puts in place of a secret.
pub const REDACTED: &str = "********";

/// A configuration error; its message always names the offending key, variable or file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("in environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("bad value for {key}: {message}")]
    Invalid { key: String, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub launcher: LauncherConfig,
    pub bluetooth: BluetoothConfig,
    pub http: HttpConfig,
    pub mqtt: MqttConfig,
    pub logging: LoggingConfig,
    pub sequencer: SequencerConfig,
    pub steam: SteamConfig,
    pub de1: De1Config,
    pub database: DatabaseConfig,
}

/// `[launcher]`: supervision of the child processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LauncherConfig {
    /// Private directory for sockets and generated files (created with mode 0700). Default:
    /// a fresh `de1d-<pid>` directory under `$XDG_RUNTIME_DIR`, else under the system
    /// temporary directory.
    pub runtime_dir: Option<PathBuf>,
    /// Where de1d keeps what must survive a restart: the remembered devices and the
    /// profile store. A simulated run uses `state/` in the runtime directory instead,
    /// so a demo never touches the real machine's state.
    pub state_dir: PathBuf,
    /// A child crashing more often than this within `restart_window` seconds makes de1d
    /// give up and exit non-zero (so that systemd can take over).
    pub restart_limit: u32,
    pub restart_window: f64,
    /// First restart delay; doubled for each further recent restart, up to `restart_backoff_max`.
    pub restart_backoff: f64,
    pub restart_backoff_max: f64,
    /// Total time allowed for an orderly shutdown before the remaining children are killed.
    pub shutdown_timeout: f64,
}

impl Default for LauncherConfig {
    fn default() -> Self {
        LauncherConfig {
            runtime_dir: None,
            state_dir: PathBuf::from("/var/lib/de1d"),
            restart_limit: 5,
            restart_window: 60.0,
            restart_backoff: 0.1,
            restart_backoff_max: 5.0,
            shutdown_timeout: 4.5,
        }
    }
}

/// `[bluetooth]`: which devices to use and how to find them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BluetoothConfig {
    /// Use the built-in simulated DE1 and scale instead of Bluetooth.
    pub simulate: bool,
    /// Host adapter name (e.g. `hci0`); default: the system's default adapter.
    pub adapter: Option<String>,
    /// DE1 to connect to at start (`AA:BB:CC:DD:EE:FF`).
    pub de1_address: Option<String>,
    /// Scale to connect to at start.
    pub scale_address: Option<String>,
    /// Thermometer to connect to at start.
    pub thermometer_address: Option<String>,
    /// Remember the devices last selected over the API and reconnect to them at start.
    pub remember_last_devices: bool,
    /// Seconds per scan.
    pub scan_timeout: f64,
    pub connect_timeout: f64,
    pub disconnect_timeout: f64,
    /// Where `<address>.btid` files of connected devices are kept (none if unset).
    pub id_file_directory: Option<PathBuf>,
}

impl Default for BluetoothConfig {
    fn default() -> Self {
        BluetoothConfig {
            simulate: false,
            adapter: None,
            de1_address: None,
            scale_address: None,
            thermometer_address: None,
            remember_last_devices: true,
            scan_timeout: 5.0,
            connect_timeout: 10.0,
            disconnect_timeout: 5.0,
            id_file_directory: None,
        }
    }
}

/// `[http]`: the inbound HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub bind: IpAddr,
    pub port: u16,
    /// Path prefix of every resource; starts and ends with `/`.
    pub root: String,
    /// If set, requests must carry `Authorization: Bearer <token>`.
    pub bearer_token: Option<String>,
    /// Origins allowed by CORS (`*` for any); none if empty.
    pub cors_origins: Vec<String>,
    /// Largest PATCH/PUT body in bytes (profiles, settings).
    pub body_limit: usize,
    /// Largest firmware upload in bytes.
    pub firmware_body_limit: usize,
    /// Default time to wait for a setter to complete.
    pub async_timeout: f64,
    pub profile_timeout: f64,
    pub firmware_timeout: f64,
    /// Omit unreadable or empty nodes from GET documents instead of reporting null.
    pub prune_empty_nodes: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 1234,
            root: "/".to_owned(),
            bearer_token: None,
            cors_origins: Vec::new(),
            body_limit: 16 * 1024,
            firmware_body_limit: 1024 * 1024,
            async_timeout: 1.0,
            profile_timeout: 4.5,
            firmware_timeout: 15.0,
            prune_empty_nodes: true,
        }
    }
}

/// MQTT transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttTransport {
    Tcp,
    Websockets,
}

/// `[mqtt]`: the outbound MQTT API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub broker_host: String,
    pub broker_port: u16,
    pub transport: MqttTransport,
    /// Prefix of every topic.
    pub topic_root: String,
    /// Client id; default `de1d@<hostname>[<pid>]`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Keep-alive interval in seconds.
    pub keepalive: u16,
    /// Publish Home Assistant discovery documents.
    pub home_assistant: bool,
    pub home_assistant_prefix: String,
    /// Run and supervise a private mosquitto on loopback (its own free port), for machines
    /// that have no broker; `broker_host`/`broker_port` are then replaced by it.
    pub spawn_broker: bool,
    pub mosquitto_path: PathBuf,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker_host: "127.0.0.1".to_owned(),
            broker_port: 1883,
            transport: MqttTransport::Tcp,
            topic_root: "pyDE1".to_owned(),
            client_id: None,
            username: None,
            password: None,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            keepalive: 60,
            home_assistant: false,
            home_assistant_prefix: "homeassistant".to_owned(),
            spawn_broker: false,
            mosquitto_path: PathBuf::from("/usr/sbin/mosquitto"),
        }
    }
}

/// A log level threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelFilter {
    #[serde(alias = "OFF")]
    Off,
    #[serde(alias = "ERROR")]
    Error,
    #[serde(alias = "WARN", alias = "warning", alias = "WARNING")]
    Warn,
    #[serde(alias = "INFO")]
    Info,
    #[serde(alias = "DEBUG")]
    Debug,
    #[serde(alias = "TRACE")]
    Trace,
}

impl LevelFilter {
    pub fn to_log(self) -> log::LevelFilter {
        match self {
            LevelFilter::Off => log::LevelFilter::Off,
            LevelFilter::Error => log::LevelFilter::Error,
            LevelFilter::Warn => log::LevelFilter::Warn,
            LevelFilter::Info => log::LevelFilter::Info,
            LevelFilter::Debug => log::LevelFilter::Debug,
            LevelFilter::Trace => log::LevelFilter::Trace,
        }
    }
}

impl std::str::FromStr for LevelFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(LevelFilter::Off),
            "error" => Ok(LevelFilter::Error),
            "warn" | "warning" => Ok(LevelFilter::Warn),
            "info" => Ok(LevelFilter::Info),
            "debug" => Ok(LevelFilter::Debug),
            "trace" => Ok(LevelFilter::Trace),
            _ => Err(format!(
                "unknown level `{s}`, expected one of off, error, warn, info, debug, trace"
            )),
        }
    }
}

impl fmt::Display for LevelFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LevelFilter::Off => "off",
            LevelFilter::Error => "error",
            LevelFilter::Warn => "warn",
            LevelFilter::Info => "info",
            LevelFilter::Debug => "debug",
            LevelFilter::Trace => "trace",
        })
    }
}

/// When log lines are also written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StderrMode {
    /// On a terminal: at `stderr_level` (default: `level`); otherwise (e.g. systemd's
    /// journal): at `stderr_level` (default: warn).
    Auto,
    Always,
    Never,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// The combined log file; an empty path disables the file.
    pub file: PathBuf,
    /// Default threshold.
    pub level: LevelFilter,
    /// Thresholds by target prefix (`"controller::sequencer" = "debug"`); the longest
    /// matching prefix wins.
    pub targets: BTreeMap<String, LevelFilter>,
    pub stderr: StderrMode,
    /// Threshold for stderr; default: see [`StderrMode`].
    pub stderr_level: Option<LevelFilter>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            file: PathBuf::from("/tmp/log/de1d/combined.log"),
            level: LevelFilter::Info,
            targets: BTreeMap::new(),
            stderr: StderrMode::Auto,
            stderr_level: None,
        }
    }
}

impl LoggingConfig {
    /// The log file, unless disabled.
    pub fn file_path(&self) -> Option<&Path> {
        (!self.file.as_os_str().is_empty()).then_some(self.file.as_path())
    }

    /// The threshold that applies to `target` (longest configured prefix, at a `::` or `.`
    /// boundary, else `level`).
    pub fn level_for(&self, target: &str) -> LevelFilter {
        let mut best: Option<(usize, LevelFilter)> = None;
        for (prefix, level) in &self.targets {
            let matches = target == prefix
                || (target.starts_with(prefix.as_str())
                    && (target[prefix.len()..].starts_with("::")
                        || target[prefix.len()..].starts_with('.')));
            if matches && best.is_none_or(|(len, _)| prefix.len() > len) {
                best = Some((prefix.len(), *level));
            }
        }
        best.map_or(self.level, |(_, l)| l)
    }

    /// The most verbose threshold anywhere (for `log::set_max_level`).
    pub fn max_level(&self) -> LevelFilter {
        self.targets
            .values()
            .copied()
            .fold(self.level, std::cmp::max)
    }
}

/// Stop-at defaults of one mode; null/absent means "no limit".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StopAt {
    /// grams
    pub weight: Option<f64>,
    /// millilitres
    pub volume: Option<f64>,
    /// seconds
    pub time: Option<f64>,
}

/// `[sequencer]`: defaults of the flow sequencer's controls, applied at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequencerConfig {
    pub disable_auto_tare: bool,
    /// bar; pressure above which `sequence_expect_drops` is set (espresso).
    pub first_drops_threshold: f64,
    /// Seconds to wait after flow end before the sequence is complete (espresso).
    pub last_drops_minimum: f64,
    pub profile_can_override_stop_limits: bool,
    pub profile_can_override_tank_temperature: bool,
    pub espresso: StopAt,
    pub steam: StopAt,
    pub hot_water: StopAt,
    pub hot_water_rinse: StopAt,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            disable_auto_tare: false,
            first_drops_threshold: 0.0,
            last_drops_minimum: 3.0,
            profile_can_override_stop_limits: true,
            profile_can_override_tank_temperature: true,
            espresso: StopAt::default(),
            steam: StopAt::default(),
            hot_water: StopAt::default(),
            hot_water_rinse: StopAt::default(),
        }
    }
}

/// `[steam]`: steam-to-temperature estimation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SteamConfig {
    pub stop_lag: f64,
    pub skip_initial_seconds: f64,
    pub max_samples_for_estimate: u32,
    pub idle_seconds_per_sample: f64,
}

impl Default for SteamConfig {
    fn default() -> Self {
        SteamConfig {
            stop_lag: 1.0,
            skip_initial_seconds: 4.0,
            max_samples_for_estimate: 5,
            idle_seconds_per_sample: 10.0,
        }
    }
}

/// `[de1.bump_resist]`: how stop-at-weight copes with bumps of the scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BumpResistConfig {
    /// g/s above which the scale's flow estimate is distrusted.
    pub flow_threshold: f64,
    pub flow_multiplier: f64,
    pub sub_median_weight: bool,
    pub use_median_weight_always: bool,
    pub use_median_flow_always: bool,
}

impl Default for BumpResistConfig {
    fn default() -> Self {
        BumpResistConfig {
            flow_threshold: 10.0,
            flow_multiplier: 1.1,
            sub_median_weight: true,
            use_median_weight_always: false,
            use_median_flow_always: false,
        }
    }
}

/// `[de1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct De1Config {
    /// Put the DE1 to sleep when de1d shuts down.
    pub sleep_on_shutdown: bool,
    /// Mains frequency in Hz (50 or 60), for volume integration.
    pub line_frequency: u32,
    pub max_wait_for_ready_events: f64,
    pub cuuid_lock_wait_timeout: f64,
    pub sequence_watchdog_timeout: f64,
    /// Minutes without state change before the DE1 is put to sleep; none if unset.
    pub default_auto_off_time: Option<f64>,
    /// Seconds added to the predicted stop-at-weight time (larger → more in the cup).
    pub stop_at_weight_adjust: f64,
    /// A stop request asks for Idle in every state.
    pub api_stop_ignores_checks: bool,
    pub bump_resist: BumpResistConfig,
    /// Document applied like an HTTP `PATCH /de1` whenever the DE1 becomes ready.
    pub patch_on_connect: Option<toml::Table>,
}

impl Default for De1Config {
    fn default() -> Self {
        De1Config {
            sleep_on_shutdown: true,
            line_frequency: 60,
            max_wait_for_ready_events: 4.0,
            cuuid_lock_wait_timeout: 2.0,
            sequence_watchdog_timeout: 270.0,
            default_auto_off_time: None,
            stop_at_weight_adjust: -0.07,
            api_stop_ignores_checks: false,
            bump_resist: BumpResistConfig::default(),
            patch_on_connect: None,
        }
    }
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    /// Seconds allowed for the backup made before a schema upgrade.
    pub backup_timeout: f64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("/var/lib/de1d/de1d.sqlite3"),
            backup_timeout: 120.0,
        }
    }
}

/// Converts validated seconds to a [`Duration`] (negative or non-finite values give zero).
pub fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl Config {
    /// Parses and validates a TOML document; `origin` names it in errors.
    pub fn from_toml_str_named(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str_named(text, "configuration")
    }

    /// The configuration as a TOML document that [`Config::from_toml_str`] reads back to
    /// the same value.
    pub fn to_toml_string(&self) -> String {
        // Every type here serialises to TOML (string keys, no bare `None` at the top level),
        // so this cannot fail; fall back to a comment rather than panic if it ever did.
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot serialise configuration: {e}\n"))
    }

    /// A copy with passwords and tokens replaced by [`REDACTED`].
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        for secret in [&mut c.mqtt.password, &mut c.http.bearer_token] {
            if secret.is_some() {
                *secret = Some(REDACTED.to_owned());
            }
        }
        c
    }

    /// Loads the configuration from an optional file and environment variables.
    ///
    /// `file`: `Some((path, required))`; a missing file is an error only if `required`.
    /// `env`: all environment variables (only those starting with [`ENV_PREFIX`] are used).
    pub fn load(
        file: Option<(&Path, bool)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::new();
        let mut origin = "defaults".to_owned();
        if let Some((path, required)) = file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    origin = path.display().to_string();
                    // Parse the file alone first, so its errors carry line and column.
                    Config::from_toml_str_named(&text, &origin)?;
                    table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                        origin: origin.clone(),
                        message: e.to_string(),
                    })?;
                }
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (var, value) in &overrides {
            apply_env_override(&mut table, var, value)?;
            // Check after each variable so that an error names the variable at fault.
            let candidate: Config =
                Config::deserialize(table.clone()).map_err(|e| ConfigError::Env {
                    var: var.clone(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
            candidate.validate().map_err(|e| ConfigError::Env {
                var: var.clone(),
                message: e.to_string(),
            })?;
        }
        let config = Config::deserialize(table).map_err(|e| ConfigError::Parse {
            origin,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values the types alone do not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.launcher;
        non_negative("launcher.restart_window", l.restart_window)?;
        positive("launcher.restart_backoff", l.restart_backoff)?;
        positive("launcher.restart_backoff_max", l.restart_backoff_max)?;
        positive("launcher.shutdown_timeout", l.shutdown_timeout)?;
        if l.shutdown_timeout > 60.0 {
            return invalid("launcher.shutdown_timeout", "must be at most 60 seconds");
        }

        let b = &self.bluetooth;
        for (key, addr) in [
            ("bluetooth.de1_address", &b.de1_address),
            ("bluetooth.scale_address", &b.scale_address),
            ("bluetooth.thermometer_address", &b.thermometer_address),
        ] {
            if let Some(a) = addr {
                if !is_mac_address(a) {
                    return invalid(
                        key,
                        &format!("`{a}` is not a Bluetooth address like AA:BB:CC:DD:EE:FF"),
                    );
                }
            }
        }
        positive("bluetooth.scan_timeout", b.scan_timeout)?;
        positive("bluetooth.connect_timeout", b.connect_timeout)?;
        positive("bluetooth.disconnect_timeout", b.disconnect_timeout)?;

        let h = &self.http;
        port("http.port", h.port)?;
        if !h.root.starts_with('/') || !h.root.ends_with('/') {
            return invalid("http.root", "must start and end with `/`");
        }
        if h.bearer_token.as_deref().is_some_and(str::is_empty) {
            return invalid("http.bearer_token", "must not be empty (omit it instead)");
        }
        if h.body_limit == 0 {
            return invalid("http.body_limit", "must be positive");
        }
        if h.firmware_body_limit == 0 {
            return invalid("http.firmware_body_limit", "must be positive");
        }
        positive("http.async_timeout", h.async_timeout)?;
        positive("http.profile_timeout", h.profile_timeout)?;
        positive("http.firmware_timeout", h.firmware_timeout)?;

        let m = &self.mqtt;
        port("mqtt.broker_port", m.broker_port)?;
        if m.broker_host.is_empty() {
            return invalid("mqtt.broker_host", "must not be empty");
        }
        if m.topic_root.is_empty()
            || m.topic_root.contains(['#', '+', '\0'])
            || m.topic_root.starts_with('/')
            || m.topic_root.ends_with('/')
        {
            return invalid(
                "mqtt.topic_root",
                "must be a non-empty topic without wildcards or leading/trailing `/`",
            );
        }
        if m.keepalive == 0 {
            return invalid("mqtt.keepalive", "must be positive");
        }
        if m.password.is_some() && m.username.is_none() {
            return invalid("mqtt.password", "is set but mqtt.username is not");
        }

        non_negative(
            "sequencer.first_drops_threshold",
            self.sequencer.first_drops_threshold,
        )?;
        non_negative(
            "sequencer.last_drops_minimum",
            self.sequencer.last_drops_minimum,
        )?;
        for (mode, s) in [
            ("espresso", &self.sequencer.espresso),
            ("steam", &self.sequencer.steam),
            ("hot_water", &self.sequencer.hot_water),
            ("hot_water_rinse", &self.sequencer.hot_water_rinse),
        ] {
            for (what, v) in [("weight", s.weight), ("volume", s.volume), ("time", s.time)] {
                if let Some(v) = v {
                    non_negative(&format!("sequencer.{mode}.{what}"), v)?;
                }
            }
        }

        let d = &self.de1;
        if d.line_frequency != 50 && d.line_frequency != 60 {
            return invalid("de1.line_frequency", "must be 50 or 60");
        }
        positive("de1.max_wait_for_ready_events", d.max_wait_for_ready_events)?;
        positive("de1.cuuid_lock_wait_timeout", d.cuuid_lock_wait_timeout)?;
        positive("de1.sequence_watchdog_timeout", d.sequence_watchdog_timeout)?;
        if let Some(t) = d.default_auto_off_time {
            non_negative("de1.default_auto_off_time", t)?;
        }
        if !d.stop_at_weight_adjust.is_finite() {
            return invalid("de1.stop_at_weight_adjust", "must be a finite number");
        }
        positive(
            "de1.bump_resist.flow_threshold",
            d.bump_resist.flow_threshold,
        )?;
        positive(
            "de1.bump_resist.flow_multiplier",
            d.bump_resist.flow_multiplier,
        )?;

        if self.database.path.as_os_str().is_empty() {
            return invalid("database.path", "must not be empty");
        }
        positive("database.backup_timeout", self.database.backup_timeout)?;
        Ok(())
    }
}

fn invalid(key: &str, message: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_owned(),
    })
}

fn positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        invalid(
            key,
            &format!("{v} must be a positive number of seconds/units"),
        )
    }
}

fn non_negative(key: &str, v: f64) -> Result<(), ConfigError> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        invalid(key, &format!("{v} must be zero or positive"))
    }
}

fn port(key: &str, p: u16) -> Result<(), ConfigError> {
    if p == 0 {
        invalid(key, "port 0 is not allowed")
    } else {
        Ok(())
    }
}

fn is_mac_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Applies `DE1D_SECTION__KEY=value` to a TOML table.
fn apply_env_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let rest = &var[ENV_PREFIX.len()..];
    if !rest.contains("__") {
        return Err(err(format!(
            "not a configuration override: expected {ENV_PREFIX}<SECTION>__<KEY>, e.g. DE1D_HTTP__PORT"
        )));
    }
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(err("empty section or key name".to_owned()));
    }
    let parsed = parse_env_value(value);
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| err("empty name".to_owned()))?;
    let mut cur = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = cur
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(err(format!(
                    "`{}` is a value, not a section",
                    path[..=i].join(".")
                )))
            }
        };
    }
    cur.insert(last.clone(), parsed);
    Ok(())
}

/// A TOML value if `raw` is one (`8080`, `true`, `["a"]`, `"quoted"`), else the raw string.
fn parse_env_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => match t.remove("v") {
            Some(toml::Value::Datetime(_)) | None => toml::Value::String(raw.to_owned()),
            Some(v) => v,
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let p = dir.path().join("de1d.toml");
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::default();
        assert_eq!(c.http.bind.to_string(), "127.0.0.1");
        assert_eq!(c.http.port, 1234);
        assert_eq!(c.mqtt.broker_host, "127.0.0.1");
        assert_eq!(c.mqtt.broker_port, 1883);
        assert_eq!(c.mqtt.topic_root, "pyDE1");
        assert_eq!(c.logging.file, Path::new("/tmp/log/de1d/combined.log"));
        assert_eq!(c.sequencer.last_drops_minimum, 3.0);
        assert_eq!(c.launcher.restart_limit, 5);
        assert!(!c.bluetooth.simulate);
        c.validate().expect("defaults are valid");
        assert_eq!(Config::from_toml_str("").expect("empty"), c);
    }

    #[test]
    fn a_file_sets_values_and_keeps_other_defaults() {
        let c = Config::from_toml_str(
            r#"
            [http]
            port = 8080
            cors_origins = ["*"]
            [mqtt]
            spawn_broker = true
            [logging]
            level = "DEBUG"
            targets = { "controller::sequencer" = "trace" }
            [sequencer.espresso]
            weight = 36.0
            [de1.patch_on_connect]
            setting = { auto_off_time = { time = 30 } }
            "#,
        )
        .expect("valid");
        assert_eq!(c.http.port, 8080);
        assert_eq!(c.http.bind, HttpConfig::default().bind);
        assert_eq!(c.http.cors_origins, vec!["*"]);
        assert!(c.mqtt.spawn_broker);
        assert_eq!(c.logging.level, LevelFilter::Debug);
        assert_eq!(c.sequencer.espresso.weight, Some(36.0));
        assert!(c.de1.patch_on_connect.is_some());
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err = Config::from_toml_str_named("[http]\nport = 1\nprot = 2\n", "test.toml")
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("prot"), "{msg}");
        assert!(msg.contains("test.toml"), "{msg}");
        assert!(msg.contains("line 3"), "{msg}");
    }

    #[test]
    fn an_unknown_section_is_named() {
        let msg = Config::from_toml_str("[htpp]\nport = 1\n")
            .expect_err("unknown section")
            .to_string();
        assert!(msg.contains("htpp"), "{msg}");
    }

    #[test]
    fn a_bad_value_is_named() {
        let msg = Config::from_toml_str("[http]\nport = 70000\n")
            .expect_err("out of range")
            .to_string();
        assert!(msg.contains("port"), "{msg}");
        let msg = Config::from_toml_str("[logging]\nlevel = \"loud\"\n")
            .expect_err("bad level")
            .to_string();
        assert!(msg.contains("loud"), "{msg}");
        let msg = Config::from_toml_str("[bluetooth]\nde1_address = \"D9:B2:48\"\n")
            .expect_err("bad address")
            .to_string();
        assert!(msg.contains("bluetooth.de1_address"), "{msg}");
        let msg = Config::from_toml_str("[de1]\nline_frequency = 55\n")
            .expect_err("bad frequency")
            .to_string();
        assert!(msg.contains("de1.line_frequency"), "{msg}");
        let msg = Config::from_toml_str("[http]\nbind = \"localhost:80\"\n")
            .expect_err("bad ip")
            .to_string();
        assert!(msg.contains("bind"), "{msg}");
    }

    #[test]
    fn environment_overrides_the_file_with_typed_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, "[http]\nport = 8080\n[mqtt]\ntopic_root = \"file\"\n");
        let c = Config::load(
            Some((&p, true)),
            env(&[
                ("DE1D_HTTP__PORT", "9090"),
                ("DE1D_BLUETOOTH__SIMULATE", "true"),
                ("DE1D_MQTT__BROKER_HOST", "broker.local"),
                ("DE1D_HTTP__BIND", "0.0.0.0"),
                ("DE1D_LOGGING__TARGETS__CONTROLLER", "debug"),
                ("HOME", "/root"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.http.port, 9090);
        assert!(c.bluetooth.simulate);
        assert_eq!(c.mqtt.broker_host, "broker.local");
        assert_eq!(c.mqtt.topic_root, "file");
        assert_eq!(c.http.bind.to_string(), "0.0.0.0");
        assert_eq!(c.logging.level_for("controller::x"), LevelFilter::Debug);
    }

    #[test]
    fn a_bad_environment_override_names_the_variable() {
        for (var, value) in [
            ("DE1D_HTTP__PROT", "1"),
            ("DE1D_HTTP__PORT", "many"),
            ("DE1D_NOSECTION__X", "1"),
            ("DE1D_HTTP_PORT", "1"),
            ("DE1D_HTTP__PORT__X", "1"),
            ("DE1D_DE1__LINE_FREQUENCY", "42"),
        ] {
            let err = Config::load(None, env(&[(var, value)])).expect_err(var);
            let msg = err.to_string();
            assert!(msg.contains(var), "{var}: {msg}");
        }
    }

    #[test]
    fn a_missing_default_file_is_fine_but_a_named_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("none.toml");
        assert_eq!(
            Config::load(Some((&missing, false)), env(&[])).expect("optional"),
            Config::default()
        );
        let msg = Config::load(Some((&missing, true)), env(&[]))
            .expect_err("required")
            .to_string();
        assert!(msg.contains("none.toml"), "{msg}");
    }

    #[test]
    fn the_printed_configuration_reads_back_identically() {
        let mut c = Config::default();
        c.mqtt.username = Some("u".into());
        c.mqtt.password = Some("p".into());
        c.http.cors_origins = vec!["http://a".into()];
        c.logging
            .targets
            .insert("inbound::http".into(), LevelFilter::Warn);
        c.sequencer.hot_water.volume = Some(120.0);
        c.de1.patch_on_connect = Some(toml::from_str("x = { y = 1 }").expect("table"));
        c.launcher.runtime_dir = Some("/run/de1d".into());
        let text = c.to_toml_string();
        assert_eq!(Config::from_toml_str(&text).expect("re-read"), c);
        let red = c.redacted();
        assert_eq!(red.mqtt.password.as_deref(), Some(REDACTED));
        assert!(!red.to_toml_string().contains("\"p\""));
    }

    #[test]
    fn per_target_levels_use_the_longest_prefix_at_a_boundary() {
        let mut l = LoggingConfig::default();
        l.targets.insert("controller".into(), LevelFilter::Debug);
        l.targets
            .insert("controller::sequencer".into(), LevelFilter::Trace);
        assert_eq!(l.level_for("controller"), LevelFilter::Debug);
        assert_eq!(l.level_for("controller::ble"), LevelFilter::Debug);
        assert_eq!(
            l.level_for("controller::sequencer::gate"),
            LevelFilter::Trace
        );
        assert_eq!(l.level_for("controllers"), LevelFilter::Info);
        assert_eq!(l.level_for("inbound"), LevelFilter::Info);
        assert_eq!(l.max_level(), LevelFilter::Trace);
    }

    #[test]
    fn an_empty_log_file_disables_it() {
        let c = Config::from_toml_str("[logging]\nfile = \"\"\n").expect("valid");
        assert_eq!(c.logging.file_path(), None);
        assert!(Config::default().logging.file_path().is_some());
    }

    #[test]
    fn env_values_parse_as_toml_or_string() {
        assert_eq!(parse_env_value("12"), toml::Value::Integer(12));
        assert_eq!(parse_env_value("1.5"), toml::Value::Float(1.5));
        assert_eq!(
            parse_env_value("127.0.0.1"),
            toml::Value::String("127.0.0.1".into())
        );
        assert_eq!(
            parse_env_value("2024-01-01"),
            toml::Value::String("2024-01-01".into())
        );
        assert_eq!(
            parse_env_value("\"quoted\""),
            toml::Value::String("quoted".into())
        );
        assert_eq!(parse_env_value(""), toml::Value::String(String::new()));
    }
}
