//! Building MQTT clients: client ids, connect options (MQTT 5, will, credentials, TLS),
//! and the reconnect backoff.

use std::sync::Arc;
use std::time::Duration;

use paho_mqtt as mqtt;
use tokio::sync::Notify;

use crate::settings::MqttSettings;

/// Why a client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("MQTT client: {0}")]
    Client(#[from] mqtt::Error),
}

/// `<prefix>@<hostname>[<pid>]<suffix>` (pyDE1's client id scheme), or the configured
/// client id followed by `suffix`.
pub fn client_id(settings: &MqttSettings, suffix: &str) -> String {
    match &settings.client_id {
        Some(id) => format!("{id}{suffix}"),
        None => format!(
            "{}@{}[{}]{suffix}",
            settings.client_id_prefix,
            hostname(),
            std::process::id()
        ),
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `gethostname` writes at most `buf.len()` bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A client plus a notification for "connection lost".
pub struct Link {
    pub client: mqtt::AsyncClient,
    pub options: mqtt::ConnectOptions,
    /// Notified (from the MQTT library's thread) when the connection drops.
    pub lost: Arc<Notify>,
}

impl Link {
    /// A client for `settings` whose will puts retained `Died` on `will_topic`.
    pub fn new(
        settings: &MqttSettings,
        id_suffix: &str,
        will_topic: &str,
    ) -> Result<Self, LinkError> {
        let create = mqtt::CreateOptionsBuilder::new()
            .server_uri(settings.server_uri())
            .client_id(client_id(settings, id_suffix))
            .mqtt_version(mqtt::MQTT_VERSION_5)
            .persistence(mqtt::PersistenceType::None)
            .finalize();
        let client = mqtt::AsyncClient::new(create)?;
        let lost = Arc::new(Notify::new());
        let on_lost = Arc::clone(&lost);
        client.set_connection_lost_callback(move |_| on_lost.notify_one());
        let on_disconnect = Arc::clone(&lost);
        client.set_disconnected_callback(move |_, _, _| on_disconnect.notify_one());
        let options = connect_options(settings, will_topic)?;
        Ok(Link {
            client,
            options,
            lost,
        })
    }

    pub fn connect(&self) -> mqtt::Token {
        self.client.connect(self.options.clone())
    }

    /// An orderly MQTT DISCONNECT (the broker then discards the will), waiting at most
    /// `timeout` for queued publications to go out.
    pub async fn disconnect(&self, timeout: Duration) {
        if !self.client.is_connected() {
            return;
        }
        let opts = mqtt::DisconnectOptionsBuilder::new()
            .timeout(timeout)
            .finalize();
        let tok = self.client.disconnect(opts);
        match tokio::time::timeout(timeout + Duration::from_millis(200), tok).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::debug!("MQTT disconnect: {e}"),
            Err(_) => log::debug!("MQTT disconnect timed out"),
        }
    }
}

fn connect_options(
    settings: &MqttSettings,
    will_topic: &str,
) -> Result<mqtt::ConnectOptions, LinkError> {
    let mut b = match settings.transport {
        crate::settings::Transport::Tcp => mqtt::ConnectOptionsBuilder::new_v5(),
        crate::settings::Transport::WebSockets => mqtt::ConnectOptionsBuilder::new_ws_v5(),
    };
    b.keep_alive_interval(settings.keepalive)
        .clean_start(true)
        .connect_timeout(Duration::from_secs(5))
        .will_message(mqtt::Message::new_retained(will_topic, "Died", mqtt::QOS_0));
    if let Some(user) = &settings.username {
        b.user_name(user.as_str());
        if let Some(password) = &settings.password {
            b.password(password.as_str());
        }
    }
    if let Some(tls) = &settings.tls {
        let mut ssl = mqtt::SslOptionsBuilder::new();
        if let Some(ca) = &tls.ca_certs {
            ssl.trust_store(ca)?;
        }
        if let Some(cert) = &tls.certfile {
            ssl.key_store(cert)?;
        }
        if let Some(key) = &tls.keyfile {
            ssl.private_key(key)?;
        }
        if let Some(ciphers) = &tls.ciphers {
            ssl.enabled_cipher_suites(ciphers.as_str());
        }
        ssl.enable_server_cert_auth(tls.verify).verify(tls.verify);
        b.ssl_options(ssl.finalize());
    }
    Ok(b.finalize())
}

/// Exponential reconnect delay between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(10));
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt; doubles each time.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_limit_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let got: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn client_id_has_pyde1_shape() {
        let mut s = MqttSettings::default();
        let id = client_id(&s, "Controller");
        assert!(id.starts_with("de1d@"), "{id}");
        assert!(
            id.ends_with(&format!("[{}]Controller", std::process::id())),
            "{id}"
        );
        s.client_id = Some("kitchen".into());
        assert_eq!(client_id(&s, "LogMQTT"), "kitchenLogMQTT");
        assert_eq!(client_id(&s, ""), "kitchen");
    }
}
