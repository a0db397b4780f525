//! The local sockets de1d's processes talk over, named by a path in the private runtime
//! directory.
//!
//! Everything goes through `interprocess`'s local sockets with filesystem names; this module
//! keeps the choices in one place (name type, stale files, peer credentials) so that the
//! rest of the workspace needs neither `interprocess` nor raw Unix sockets.

use std::io;
use std::path::Path;

use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::traits::StreamCommon;
use interprocess::local_socket::{
    ConnectOptions, GenericFilePath, ListenerOptions, Name, ToFsName,
};

/// A connected socket for use with tokio (`AsyncRead + AsyncWrite`).
pub type Stream = interprocess::local_socket::tokio::Stream;
/// A connected socket for plain threads (`Read + Write`, also through `&BlockingStream`).
pub type BlockingStream = interprocess::local_socket::Stream;

fn name(path: &Path) -> io::Result<Name<'_>> {
    path.to_fs_name::<GenericFilePath>()
}

/// Connects to the socket at `path`. Must be called inside a tokio runtime.
pub async fn connect(path: &Path) -> io::Result<Stream> {
    ConnectOptions::new()
        .name(name(path)?)
        .connect_tokio()
        .await
}

/// Connects to the socket at `path`, blocking the calling thread.
pub fn connect_blocking(path: &Path) -> io::Result<BlockingStream> {
    ConnectOptions::new().name(name(path)?).connect_sync()
}

/// A listening socket; its file is removed when it is dropped.
#[derive(Debug)]
pub struct Listener {
    inner: interprocess::local_socket::tokio::Listener,
}

impl Listener {
    /// Binds `path`. If `replace_stale` is set, a socket file already there (left by a
    /// process that crashed) is removed first; any other kind of file is never touched, and
    /// then binding fails with `AddrInUse`. Must be called inside a tokio runtime.
    pub fn bind(path: &Path, replace_stale: bool) -> io::Result<Listener> {
        use std::os::unix::fs::FileTypeExt;
        if replace_stale {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path)?;
                }
            }
        }
        // `try_overwrite` stays off: it would remove whatever file is in the way.
        let inner = ListenerOptions::new()
            .name(name(path)?)
            .reclaim_name(true)
            .try_overwrite(false)
            .create_tokio()?;
        Ok(Listener { inner })
    }

    /// Accepts the next connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        self.inner.accept().await
    }
}

/// The process id of the peer as the kernel saw it at `connect` time (`SO_PEERCRED`), when
/// the platform tells.
pub fn peer_pid(stream: &Stream) -> Option<u32> {
    stream
        .peer_creds()
        .ok()
        .and_then(|c| c.pid())
        .and_then(|p| u32::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn async_and_blocking_clients_reach_a_listener_and_the_peer_pid_is_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let listener = Listener::bind(&path, false).expect("bind");

        let client = tokio::spawn({
            let path = path.clone();
            async move {
                let mut s = connect(&path).await.expect("connect");
                s.write_all(b"ping").await.expect("write");
                let mut buf = [0; 4];
                s.read_exact(&mut buf).await.expect("read");
                buf
            }
        });
        let mut server = listener.accept().await.expect("accept");
        assert_eq!(peer_pid(&server), Some(std::process::id()));
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.expect("write");
        assert_eq!(&client.await.expect("client"), b"pong");

        let blocking = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut s = connect_blocking(&path).expect("connect");
                s.write_all(b"sync").expect("write");
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).expect("read");
                rest
            }
        });
        let mut server = listener.accept().await.expect("accept");
        let mut buf = [0; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"sync");
        server.write_all(b"bye").await.expect("write");
        drop(server);
        assert_eq!(blocking.join().expect("thread"), b"bye");
    }

    #[tokio::test]
    async fn a_socket_in_use_is_not_replaced_without_asking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let stale = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        drop(stale);
        let err = Listener::bind(&path, false).expect_err("the file is there");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let l = Listener::bind(&path, true).expect("replaced");
        drop(l);
        assert!(!path.exists(), "removed on drop");
    }

    #[tokio::test]
    async fn connecting_to_nothing_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("none.sock");
        assert!(connect(&path).await.is_err());
        assert!(connect_blocking(&path).is_err());
    }
}
