//! What the outbound process needs to know about the broker and its own behaviour.

use std::path::PathBuf;
use std::time::Duration;

use ipc_schema::event::LogLevel;

/// How to reach the broker (pyDE1 `mqtt.TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Plain MQTT over TCP (`tcp://`, or `ssl://` with TLS).
    #[default]
    Tcp,
    /// MQTT over WebSockets (`ws://`, or `wss://` with TLS).
    WebSockets,
}

/// TLS settings (pyDE1 `mqtt.TLS_*`). Needs the crate feature `ssl`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// CA certificates (PEM) to verify the broker with; the system store if `None`.
    pub ca_certs: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that require one.
    pub certfile: Option<PathBuf>,
    /// Client private key (PEM), if not inside `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Verify the broker's certificate and host name (pyDE1 `TLS_CERT_REQS`); on unless
    /// explicitly disabled.
    pub verify: bool,
    /// OpenSSL cipher list, if not the default.
    pub ciphers: Option<String>,
}

/// Everything the publisher needs. Defaults follow pyDE1 2.0 where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// First level of every topic (pyDE1 `TOPIC_ROOT`, default `pyDE1`).
    pub topic_root: String,
    /// Client ids are `<prefix>@<hostname>[<pid>]…` (pyDE1 `CLIENT_ID_PREFIX`)…
    pub client_id_prefix: String,
    /// …unless a fixed client id is given (the status connections append a suffix).
    pub client_id: Option<String>,
    /// Broker host name or address (pyDE1 default `::1`).
    pub broker_host: String,
    pub broker_port: u16,
    pub transport: Transport,
    pub keepalive: Duration,
    /// Credentials are sent only if a user name is set.
    pub username: Option<String>,
    pub password: Option<String>,
    /// `Some` to connect with TLS.
    pub tls: Option<TlsSettings>,
    /// Publish Home Assistant discovery documents.
    pub home_assistant: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
    /// Lowest level of log records published on `log` and `log/record` (pyDE1
    /// `logging.handlers.MQTT`, default ERROR).
    pub log_level: LogLevel,
    /// Events held while the broker is slow or unreachable; beyond this the oldest
    /// shot samples, weights and water levels are dropped first.
    pub queue_capacity: usize,
    /// Publications handed to the MQTT library but not yet written to the socket;
    /// beyond this, events wait in the queue (where the drop policy applies).
    pub max_in_flight: usize,
    /// First and longest wait between connection attempts.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long an orderly shutdown may take to flush queued events and "Gone".
    pub shutdown_timeout: Duration,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            topic_root: "pyDE1".into(),
            client_id_prefix: "de1d".into(),
            client_id: None,
            broker_host: "::1".into(),
            broker_port: 1883,
            transport: Transport::Tcp,
            keepalive: Duration::from_secs(60),
            username: None,
            password: None,
            tls: None,
            home_assistant: false,
            discovery_prefix: "homeassistant".into(),
            log_level: LogLevel::Error,
            queue_capacity: 2048,
            max_in_flight: 64,
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(3),
        }
    }
}

impl From<&ipc_schema::config::MqttConfig> for MqttSettings {
    /// The `[mqtt]` section of de1d's configuration; what it does not cover keeps its
    /// default.
    fn from(c: &ipc_schema::config::MqttConfig) -> Self {
        use ipc_schema::config::MqttTransport;
        MqttSettings {
            topic_root: c.topic_root.clone(),
            client_id: c.client_id.clone(),
            broker_host: c.broker_host.clone(),
            broker_port: c.broker_port,
            transport: match c.transport {
                MqttTransport::Tcp => Transport::Tcp,
                MqttTransport::Websockets => Transport::WebSockets,
            },
            keepalive: Duration::from_secs(u64::from(c.keepalive)),
            username: c.username.clone(),
            password: c.password.clone(),
            tls: c.tls.then(|| TlsSettings {
                ca_certs: c.tls_ca_file.clone(),
                certfile: c.tls_cert_file.clone(),
                keyfile: c.tls_key_file.clone(),
                verify: true,
                ciphers: None,
            }),
            home_assistant: c.home_assistant,
            discovery_prefix: c.home_assistant_prefix.clone(),
            ..MqttSettings::default()
        }
    }
}

impl MqttSettings {
    /// The broker URI for the MQTT library, e.g. `tcp://[::1]:1883`.
    pub fn server_uri(&self) -> String {
        let scheme = match (self.transport, self.tls.is_some()) {
            (Transport::Tcp, false) => "tcp",
            (Transport::Tcp, true) => "ssl",
            (Transport::WebSockets, false) => "ws",
            (Transport::WebSockets, true) => "wss",
        };
        let host = self.broker_host.trim();
        // A bare IPv6 address needs brackets in a URI.
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!("{scheme}://{host}:{}", self.broker_port)
    }

    /// Checks what the broker connection cannot work without.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.topic_root.is_empty()
            || self.topic_root.contains(['+', '#', '\0'])
            || self.topic_root.ends_with('/')
        {
            return Err(SettingsError::TopicRoot(self.topic_root.clone()));
        }
        if self.home_assistant
            && (self.discovery_prefix.is_empty() || self.discovery_prefix.contains(['+', '#']))
        {
            return Err(SettingsError::DiscoveryPrefix(
                self.discovery_prefix.clone(),
            ));
        }
        if self.broker_host.trim().is_empty() {
            return Err(SettingsError::NoBroker);
        }
        if self.tls.is_some() && !cfg!(feature = "ssl") {
            return Err(SettingsError::NoTlsSupport);
        }
        if self.queue_capacity == 0 || self.max_in_flight == 0 {
            return Err(SettingsError::ZeroCapacity);
        }
        Ok(())
    }
}

/// Settings the publisher cannot start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("topic root {0:?} must be non-empty, without wildcards or a trailing '/'")]
    TopicRoot(String),
    #[error("Home Assistant discovery prefix {0:?} must be non-empty, without wildcards")]
    DiscoveryPrefix(String),
    #[error("no broker host name")]
    NoBroker,
    #[error("TLS is configured but de1d was built without the `ssl` feature of `outbound`")]
    NoTlsSupport,
    #[error("queue capacity and in-flight limit must be at least 1")]
    ZeroCapacity,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_brackets_ipv6_and_picks_scheme() {
        let mut s = MqttSettings::default();
        assert_eq!(s.server_uri(), "tcp://[::1]:1883");
        s.broker_host = "broker.local".into();
        s.broker_port = 8883;
        s.tls = Some(TlsSettings::default());
        assert_eq!(s.server_uri(), "ssl://broker.local:8883");
        s.transport = Transport::WebSockets;
        s.tls = None;
        assert_eq!(s.server_uri(), "ws://broker.local:8883");
    }

    #[test]
    fn from_config_section() {
        let c = ipc_schema::config::MqttConfig {
            broker_host: "broker.lan".into(),
            broker_port: 8883,
            topic_root: "espresso".into(),
            username: Some("de1d".into()),
            tls: true,
            tls_ca_file: Some("/etc/ssl/ca.pem".into()),
            keepalive: 30,
            home_assistant: true,
            ..ipc_schema::config::MqttConfig::default()
        };
        let s = MqttSettings::from(&c);
        assert_eq!(s.topic_root, "espresso");
        assert_eq!(s.keepalive, Duration::from_secs(30));
        assert_eq!(s.username.as_deref(), Some("de1d"));
        let tls = s.tls.as_ref().expect("tls");
        assert!(tls.verify);
        assert_eq!(
            tls.ca_certs.as_deref(),
            Some(std::path::Path::new("/etc/ssl/ca.pem"))
        );
        assert_eq!(s.server_uri(), "ssl://broker.lan:8883");
        assert!(s.home_assistant);
        assert_eq!(s.discovery_prefix, "homeassistant");
    }

    #[test]
    fn rejects_wildcard_roots() {
        let s = MqttSettings {
            topic_root: "a/#".into(),
            ..MqttSettings::default()
        };
        assert!(matches!(s.validate(), Err(SettingsError::TopicRoot(_))));
        assert!(MqttSettings::default().validate().is_ok());
    }
}
