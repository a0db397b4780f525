//! Length-prefixed bincode frames.
//!
//! A frame is a 4-byte big-endian payload length followed by the payload, a bincode 1.3
//! encoding (varint integers, little-endian, trailing bytes rejected) of one message. A length
//! above the cap ([`MAX_FRAME_LEN`] by default) is refused before anything is allocated.
//!
//! Any framing error means the byte stream can no longer be trusted: the caller drops the
//! connection (and logs why). Nothing here panics on any input.

use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::time::Duration;

use bincode::Options;
use bytes::{Buf, BufMut, BytesMut};
use futures::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::envelope::{Hello, Role, HELLO_MAGIC, PROTOCOL_VERSION};

/// Largest payload accepted or sent, in bytes (4 MiB: room for a firmware image).
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;
/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;
/// How long a peer may take to send its [`Hello`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed (including "connection reset" when the peer crashed).
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The length prefix announces more than the cap.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// The payload is not a valid encoding of the expected message.
    #[error("undecodable frame of {len} bytes: {source}")]
    Decode { len: usize, source: bincode::Error },
    /// The message could not be encoded (a type bincode cannot represent).
    #[error("cannot encode message: {0}")]
    Encode(bincode::Error),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
}

impl FrameError {
    /// True when the peer went away (clean close, reset, broken pipe) rather than sending
    /// something wrong. Used to pick the log level.
    pub fn is_disconnect(&self) -> bool {
        match self {
            FrameError::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionAborted
            ),
            FrameError::Truncated { .. } => true,
            _ => false,
        }
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("peer closed the connection before its hello")]
    Closed,
    #[error("no hello within {0:?}")]
    Timeout(Duration),
    #[error("peer is not a de1d process (bad magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("peer speaks protocol version {theirs}, this process speaks {ours}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("unexpected peer role {0}")]
    UnexpectedRole(Role),
}

fn options(limit: usize) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit as u64)
        .with_little_endian()
        .with_varint_encoding()
        .reject_trailing_bytes()
}

/// Encodes `msg` as one frame appended to `dst`. On error `dst` is left as it was.
pub fn encode_frame<T: Serialize + ?Sized>(
    msg: &T,
    dst: &mut BytesMut,
    max: usize,
) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = dst.writer();
    let res = options(max).serialize_into(&mut writer, msg);
    let dst = writer.into_inner();
    let len = dst.len() - start - HEADER_LEN;
    match res {
        Ok(()) if len <= max => {
            let prefix = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
            dst[start..start + HEADER_LEN].copy_from_slice(&prefix);
            Ok(())
        }
        Ok(()) => {
            dst.truncate(start);
            Err(FrameError::TooLarge { len, max })
        }
        Err(e) => {
            dst.truncate(start);
            match *e {
                bincode::ErrorKind::SizeLimit => Err(FrameError::TooLarge { len, max }),
                _ => Err(FrameError::Encode(e)),
            }
        }
    }
}

/// Decodes one payload (without its length prefix).
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    options(payload.len())
        .deserialize(payload)
        .map_err(|source| FrameError::Decode {
            len: payload.len(),
            source,
        })
}

/// Decodes a [`Hello`] leniently (trailing bytes allowed) so that a newer peer whose hello
/// grew is still told its version is wrong instead of "undecodable".
fn decode_hello(payload: &[u8]) -> Result<Hello, HandshakeError> {
    // magic (4 raw bytes) + varint protocol come first in every version.
    #[derive(serde::Deserialize)]
    struct Prefix {
        magic: [u8; 4],
        protocol: u32,
    }
    let lenient = bincode::DefaultOptions::new()
        .with_limit(payload.len() as u64)
        .with_little_endian()
        .with_varint_encoding()
        .allow_trailing_bytes();
    let prefix: Prefix = lenient
        .deserialize(payload)
        .map_err(|source| FrameError::Decode {
            len: payload.len(),
            source,
        })?;
    if prefix.magic != HELLO_MAGIC {
        return Err(HandshakeError::BadMagic(prefix.magic));
    }
    if prefix.protocol != PROTOCOL_VERSION {
        return Err(HandshakeError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: prefix.protocol,
        });
    }
    Ok(decode_payload(payload)?)
}

/// A tokio codec sending `Enc` and receiving `Dec` messages, one per frame.
#[derive(Debug)]
pub struct FrameCodec<Enc, Dec> {
    max: usize,
    _types: PhantomData<fn(Enc) -> Dec>,
}

impl<Enc, Dec> FrameCodec<Enc, Dec> {
    /// A codec with the default cap [`MAX_FRAME_LEN`].
    pub fn new() -> Self {
        Self::with_max_len(MAX_FRAME_LEN)
    }

    /// A codec refusing payloads above `max` bytes in either direction.
    pub fn with_max_len(max: usize) -> Self {
        FrameCodec {
            max: max.min(u32::MAX as usize),
            _types: PhantomData,
        }
    }

    /// The cap in bytes.
    pub fn max_len(&self) -> usize {
        self.max
    }
}

impl<Enc, Dec> Default for FrameCodec<Enc, Dec> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Enc, Dec> Clone for FrameCodec<Enc, Dec> {
    fn clone(&self) -> Self {
        Self::with_max_len(self.max)
    }
}

/// Splits the next complete payload off `src`, if there is one.
fn next_payload(src: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, FrameError> {
    if src.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&src[..HEADER_LEN]);
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if src.len() < HEADER_LEN + len {
        src.reserve(HEADER_LEN + len - src.len());
        return Ok(None);
    }
    src.advance(HEADER_LEN);
    Ok(Some(src.split_to(len)))
}

impl<Enc, Dec: DeserializeOwned> Decoder for FrameCodec<Enc, Dec> {
    type Item = Dec;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Dec>, FrameError> {
        match next_payload(src, self.max)? {
            Some(payload) => decode_payload(&payload).map(Some),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Dec>, FrameError> {
        match self.decode(src)? {
            Some(msg) => Ok(Some(msg)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated {
                buffered: src.len(),
            }),
        }
    }
}

impl<Enc: Serialize, Dec> Encoder<Enc> for FrameCodec<Enc, Dec> {
    type Error = FrameError;

    fn encode(&mut self, item: Enc, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&item, dst, self.max)
    }
}

/// A connection exchanging typed frames: sends `Enc`, receives `Dec`.
pub type Connection<S, Enc, Dec> = Framed<S, FrameCodec<Enc, Dec>>;

/// Opens a connection: sends our [`Hello`] for `me`, waits (at most [`HANDSHAKE_TIMEOUT`])
/// for the peer's, checks magic and protocol version and, if `expect` is given, that the
/// peer's role is one of them. Returns the peer's hello and the connection retyped for its
/// messages.
pub async fn handshake<S, Enc, Dec>(
    stream: S,
    me: Role,
    expect: &[Role],
    max_len: usize,
) -> Result<(Hello, Connection<S, Enc, Dec>), HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Enc: Serialize,
    Dec: DeserializeOwned,
{
    let max_len = max_len.min(u32::MAX as usize);
    let mut framed = Framed::new(stream, HelloCodec { max: max_len });
    framed.send(Hello::new(me)).await?;
    let raw = match tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next()).await {
        Err(_) => return Err(HandshakeError::Timeout(HANDSHAKE_TIMEOUT)),
        Ok(None) => return Err(HandshakeError::Closed),
        Ok(Some(r)) => r?,
    };
    let hello = decode_hello(&raw)?;
    if !expect.is_empty() && !expect.contains(&hello.role) {
        return Err(HandshakeError::UnexpectedRole(hello.role));
    }
    // Keep whatever the peer already sent after its hello.
    let parts = framed.into_parts();
    let codec: FrameCodec<Enc, Dec> = FrameCodec::with_max_len(max_len);
    let mut new_parts = tokio_util::codec::FramedParts::new::<Enc>(parts.io, codec);
    new_parts.read_buf = parts.read_buf;
    new_parts.write_buf = parts.write_buf;
    Ok((hello, Framed::from_parts(new_parts)))
}

/// The codec used for the hello exchange: sends a [`Hello`], receives raw payloads so that
/// the hello can be decoded leniently.
#[derive(Debug)]
struct HelloCodec {
    max: usize,
}

impl Decoder for HelloCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        next_payload(src, self.max)
    }
}

impl Encoder<Hello> for HelloCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Hello, dst: &mut BytesMut) -> Result<(), FrameError> {
        encode_frame(&item, dst, self.max)
    }
}

// ---- blocking variants, for threads that run without an async runtime ----

/// Writes one frame to a blocking writer.
pub fn write_frame<W: Write, T: Serialize + ?Sized>(
    w: &mut W,
    msg: &T,
    max: usize,
) -> Result<(), FrameError> {
    let mut buf = BytesMut::new();
    encode_frame(msg, &mut buf, max)?;
    w.write_all(&buf)?;
    Ok(())
}

/// Reads one frame from a blocking reader. `Ok(None)` is a clean end of stream at a frame
/// boundary.
pub fn read_frame<R: Read, T: DeserializeOwned>(
    r: &mut R,
    max: usize,
) -> Result<Option<T>, FrameError> {
    match read_payload(r, max)? {
        Some(p) => decode_payload(&p).map(Some),
        None => Ok(None),
    }
}

fn read_payload<R: Read>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated { buffered: got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated {
                buffered: HEADER_LEN,
            }
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(payload))
}

/// Blocking [`handshake`] for the launcher link of a child, which runs on plain threads.
pub fn handshake_blocking<S: Read + Write>(
    stream: &mut S,
    me: Role,
    expect: &[Role],
    max_len: usize,
) -> Result<Hello, HandshakeError> {
    write_frame(stream, &Hello::new(me), max_len)?;
    let payload = match read_payload(stream, max_len) {
        Ok(Some(p)) => p,
        Ok(None) => return Err(HandshakeError::Closed),
        Err(FrameError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Err(HandshakeError::Timeout(HANDSHAKE_TIMEOUT))
        }
        Err(e) => return Err(e.into()),
    };
    let hello = decode_hello(&payload)?;
    if !expect.is_empty() && !expect.contains(&hello.role) {
        return Err(HandshakeError::UnexpectedRole(hello.role));
    }
    Ok(hello)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::envelope::{FromController, RequestId, ToController, ToLauncher};
    use crate::log_record::{Level, LogRecord};
    use proptest::prelude::*;

    fn frame<T: Serialize>(msg: &T) -> BytesMut {
        let mut b = BytesMut::new();
        encode_frame(msg, &mut b, MAX_FRAME_LEN).expect("encodable");
        b
    }

    #[test]
    fn round_trip_through_the_codec() {
        let msg = ToController::Request {
            id: RequestId(7),
            command: Command::Ping,
        };
        let mut buf = frame(&msg);
        // The prefix is the payload length, big-endian.
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        assert_eq!(len, buf.len() - HEADER_LEN);
        let mut codec: FrameCodec<FromController, ToController> = FrameCodec::new();
        assert_eq!(codec.decode(&mut buf).expect("valid"), Some(msg));
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let msg = ToLauncher::Log(LogRecord::new(Level::Info, "t", "hello".into()));
        let whole = frame(&msg);
        let mut codec: FrameCodec<(), ToLauncher> = FrameCodec::new();
        let mut buf = BytesMut::new();
        for (i, b) in whole.iter().enumerate() {
            buf.put_u8(*b);
            let out = codec.decode(&mut buf).expect("no error on a prefix");
            if i + 1 < whole.len() {
                assert_eq!(out, None);
            } else {
                assert_eq!(out, Some(msg.clone()));
            }
        }
    }

    #[test]
    fn oversized_length_prefix_is_refused_without_allocating() {
        let mut codec: FrameCodec<(), ToLauncher> = FrameCodec::with_max_len(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xf0, 1, 2, 3][..]);
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { len, max: 1024 }) => assert_eq!(len, 0xffff_fff0),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(buf.capacity() < 1 << 20);
    }

    #[test]
    fn oversized_message_is_not_sent() {
        let msg = ToLauncher::Log(LogRecord::new(Level::Info, "t", "x".repeat(2000)));
        let mut buf = BytesMut::from(&b"keep"[..]);
        let err = encode_frame(&msg, &mut buf, 1000).expect_err("too large");
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err:?}");
        assert_eq!(&buf[..], b"keep", "nothing appended");
    }

    #[test]
    fn garbage_payload_is_a_decode_error() {
        // A valid header followed by a variant index no enum has.
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 0xfb, 0xff, 0xff][..]);
        let mut codec: FrameCodec<(), ToController> = FrameCodec::new();
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Decode { len: 3, .. })
        ));
    }

    #[test]
    fn trailing_bytes_in_a_frame_are_refused() {
        let mut payload = frame(&ToController::Subscribe);
        payload.put_u8(0);
        let len = (payload.len() - HEADER_LEN) as u32;
        payload[..4].copy_from_slice(&len.to_be_bytes());
        let mut codec: FrameCodec<(), ToController> = FrameCodec::new();
        assert!(codec.decode(&mut payload).is_err());
    }

    #[test]
    fn eof_inside_a_frame_is_reported() {
        let whole = frame(&ToController::Subscribe);
        let mut buf = BytesMut::from(&whole[..whole.len() - 1]);
        let mut codec: FrameCodec<(), ToController> = FrameCodec::new();
        let err = codec.decode_eof(&mut buf).expect_err("truncated");
        assert!(err.is_disconnect());
    }

    #[test]
    fn blocking_helpers_match_the_codec() {
        let msgs = vec![
            ToController::Subscribe,
            ToController::Request {
                id: RequestId(u64::MAX),
                command: Command::Ping,
            },
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            write_frame(&mut wire, m, MAX_FRAME_LEN).expect("write");
        }
        let mut r = &wire[..];
        for m in &msgs {
            let got: Option<ToController> = read_frame(&mut r, MAX_FRAME_LEN).expect("read");
            assert_eq!(got.as_ref(), Some(m));
        }
        let end: Option<ToController> = read_frame(&mut r, MAX_FRAME_LEN).expect("clean eof");
        assert_eq!(end, None);
        // Truncated header.
        let mut r = &wire[..2];
        assert!(read_frame::<_, ToController>(&mut r, MAX_FRAME_LEN).is_err());
    }

    #[tokio::test]
    async fn handshake_accepts_a_matching_peer_and_keeps_early_frames() {
        let (a, b) = tokio::io::duplex(4096);
        let server = tokio::spawn(async move {
            let (hello, mut conn) =
                handshake::<_, FromController, ToController>(a, Role::Controller, &[], 1 << 20)
                    .await
                    .expect("server handshake");
            let first = conn.next().await.expect("a frame").expect("valid");
            (hello, first)
        });
        let (hello, mut conn) = handshake::<_, ToController, FromController>(
            b,
            Role::Inbound,
            &[Role::Controller],
            1 << 20,
        )
        .await
        .expect("client handshake");
        assert_eq!(hello.role, Role::Controller);
        conn.send(ToController::Subscribe).await.expect("send");
        let (peer, first) = server.await.expect("join");
        assert_eq!(peer.role, Role::Inbound);
        assert_eq!(peer.pid, std::process::id());
        assert_eq!(first, ToController::Subscribe);
    }

    #[tokio::test]
    async fn handshake_refuses_another_protocol_version() {
        let (a, b) = tokio::io::duplex(4096);
        // A peer from the future whose hello has grown an extra field.
        tokio::spawn(async move {
            let mut f = Framed::new(b, FrameCodec::<(Hello, u8), ()>::new());
            let mut h = Hello::new(Role::Controller);
            h.protocol = PROTOCOL_VERSION + 1;
            let _ = f.send((h, 9)).await;
            let _ = f.next().await;
        });
        let err = handshake::<_, ToController, FromController>(a, Role::Inbound, &[], 1 << 20)
            .await
            .expect_err("must refuse");
        assert!(
            matches!(err, HandshakeError::VersionMismatch { theirs, .. } if theirs == PROTOCOL_VERSION + 1),
            "{err}"
        );
    }

    #[tokio::test]
    async fn handshake_refuses_a_stranger() {
        let (a, mut b) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = b.write_all(b"\0\0\0\x08GET / HT").await;
            let mut sink = [0u8; 64];
            use tokio::io::AsyncReadExt;
            let _ = b.read(&mut sink).await;
        });
        let err = handshake::<_, ToController, FromController>(a, Role::Inbound, &[], 1 << 20)
            .await
            .expect_err("must refuse");
        assert!(matches!(err, HandshakeError::BadMagic(_)), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn handshake_gives_up_on_a_silent_peer() {
        let (a, _b) = tokio::io::duplex(4096);
        let err = handshake::<_, ToController, FromController>(a, Role::Inbound, &[], 1 << 20)
            .await
            .expect_err("must time out");
        assert!(matches!(err, HandshakeError::Timeout(_)), "{err}");
    }

    #[test]
    fn role_names_round_trip() {
        for r in [
            Role::Launcher,
            Role::Controller,
            Role::Inbound,
            Role::Outbound,
            Role::Tool,
        ] {
            assert_eq!(Role::from_name(r.as_str()), Some(r));
        }
        assert_eq!(Role::from_name("Controller"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut c1: FrameCodec<(), ToController> = FrameCodec::with_max_len(200);
            let mut c2: FrameCodec<(), FromController> = FrameCodec::with_max_len(200);
            let mut c3: FrameCodec<(), ToLauncher> = FrameCodec::with_max_len(200);
            let mut b2 = buf.clone();
            let mut b3 = buf.clone();
            // Keep decoding until an error or no complete frame is left.
            while let Ok(Some(_)) = c1.decode(&mut buf) {}
            while let Ok(Some(_)) = c2.decode(&mut b2) {}
            while let Ok(Some(_)) = c3.decode(&mut b3) {}
            let _ = decode_hello(&bytes);
        }

        #[test]
        fn any_log_record_round_trips(msg in ".{0,200}", target in "[a-z:_]{0,40}", dropped in any::<u64>()) {
            let mut rec = LogRecord::new(Level::Warn, &target, msg);
            rec.dropped_before = dropped;
            let m = ToLauncher::Log(rec);
            let mut b = frame(&m);
            let mut c: FrameCodec<(), ToLauncher> = FrameCodec::new();
            prop_assert_eq!(c.decode(&mut b).expect("valid"), Some(m));
        }
    }
}
