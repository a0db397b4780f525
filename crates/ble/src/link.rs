//! The "link is up / link went down" signal every peripheral handle carries.

use tokio::sync::watch;

/// The backend's side of a link signal: it reports the drop once.
#[derive(Debug)]
pub struct Link {
    tx: watch::Sender<Option<String>>,
}

/// A client's view of a link: cheap to clone, resolves when the link drops.
#[derive(Debug, Clone)]
pub struct LinkWatch {
    rx: watch::Receiver<Option<String>>,
}

impl Link {
    /// A link that is up.
    pub fn new() -> Self {
        let (tx, _rx) = watch::channel(None);
        Self { tx }
    }

    /// Report that the link dropped. Only the first reason is kept.
    pub fn set_down(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.tx.send_if_modified(|state| {
            if state.is_none() {
                *state = Some(reason);
                true
            } else {
                false
            }
        });
    }

    pub fn is_down(&self) -> bool {
        self.tx.borrow().is_some()
    }

    pub fn watch(&self) -> LinkWatch {
        LinkWatch {
            rx: self.tx.subscribe(),
        }
    }
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkWatch {
    pub fn is_down(&self) -> bool {
        self.rx.borrow().is_some()
    }

    /// Why the link dropped, once it has.
    pub fn reason(&self) -> Option<String> {
        self.rx.borrow().clone()
    }

    /// Resolves (with the reason) when the link drops; at once if it already has. If
    /// the backend side is gone without reporting, that counts as a drop too.
    pub async fn down(&self) -> String {
        let mut rx = self.rx.clone();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(state) => state.clone().unwrap_or_default(),
            Err(_) => self
                .reason()
                .unwrap_or_else(|| "link handle dropped".to_string()),
        };
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn down_resolves_once_with_the_first_reason() {
        let link = Link::new();
        let watch = link.watch();
        assert!(!watch.is_down());
        let pending = tokio::time::timeout(Duration::from_secs(1), watch.down()).await;
        assert!(pending.is_err(), "must not resolve while up");
        link.set_down("peer vanished");
        link.set_down("second reason");
        assert_eq!(watch.down().await, "peer vanished");
        assert!(watch.is_down());
        // A watch taken after the drop resolves at once.
        assert_eq!(link.watch().down().await, "peer vanished");
    }

    #[tokio::test]
    async fn dropping_the_backend_side_counts_as_down() {
        let link = Link::new();
        let watch = link.watch();
        drop(link);
        assert_eq!(watch.down().await, "link handle dropped");
    }
}
