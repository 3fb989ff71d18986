//! The ground floor every I/O adapter stands on: hyper over glommio ([`io`]),
//! TLS ([`tls`]), listening sockets, connection admission and time limits ([`conn`]),
//! the bounded body read, bearer-token checks, the wall clock, the connection guard
//! and gzip. Nothing here knows a route, a Raft term or a
//! topology; the client front (`http`), the peer transport (`raft::peer_*`) and the
//! data-node probes (`node_health`) all build on it.

/// `AsyncWrite` for a wrapper whose writes all go, unchanged, to its `stream` field
/// (wrappers that only change how the read side behaves).
macro_rules! write_through_to_stream {
    ($wrapper:ident) => {
        impl<S: futures_lite::AsyncWrite + Unpin> futures_lite::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.stream).poll_flush(cx)
            }

            fn poll_close(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.stream).poll_close(cx)
            }
        }
    };
}
pub(crate) use write_through_to_stream;

pub mod allow;
pub mod bearer;
pub mod capacity;
pub mod conn;
pub mod head;
pub mod io;
pub mod raw;
pub mod ready;
pub mod tls;

pub use bearer::authorized;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use glommio::net::TcpListener;
use http_body_util::{BodyExt, Limited};

/// Who else may listen on a port this process binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Every executor of this process binds the port (SO_REUSEPORT); the kernel
    /// spreads connections over them.
    PerExecutor,
    /// One executor serves the port; a second process must not share it.
    Exclusive,
}

/// Binds `addr` with SO_REUSEADDR (so a restarted server is not refused its port while
/// sockets of its killed predecessor are still closing; glommio's own `bind` does not
/// set it) and, for [`Sharing::PerExecutor`], SO_REUSEPORT.
pub fn listen(addr: SocketAddr, sharing: Sharing) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    let backlog = match sharing {
        Sharing::PerExecutor => {
            socket.set_reuse_port(true)?;
            1024
        }
        Sharing::Exclusive => 128,
    };
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    // SAFETY: the descriptor is a listening TCP socket we own and hand over whole.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}

/// Why a request body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the body exceeds the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the body could not be read: {0}")]
    Unreadable(String),
    #[error("the body did not arrive within {after:?}")]
    TimedOut { after: Duration },
}

/// Reads a whole body, refusing it once it exceeds `limit` bytes or takes longer
/// than `timeout` to arrive (a body trickled byte by byte must not hold its buffer).
pub async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let read = async {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                Err(BodyError::TooLarge { limit })
            }
            Err(e) => Err(BodyError::Unreadable(e.to_string())),
        }
    };
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        Err(BodyError::TimedOut { after: timeout })
    };
    futures_lite::future::or(read, deadline).await
}

/// Wall-clock milliseconds since the Unix epoch (change-set timestamps, probe times).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Compresses `data` with gzip (fast level: bodies are compressed once per version).
pub fn gzip(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
}

/// Lets a handler close its own connection from outside the connection's future
/// (the SSE watchdog uses it to drop a subscriber whose socket does not drain), and
/// tells it who is on the other end.
#[derive(Default)]
pub struct ConnectionGuard {
    closed: std::cell::Cell<bool>,
    close: event_listener::Event,
    peer: Option<SocketAddr>,
}

impl ConnectionGuard {
    pub fn for_peer(peer: Option<SocketAddr>) -> ConnectionGuard {
        ConnectionGuard {
            peer,
            ..ConnectionGuard::default()
        }
    }

    /// The client's address (`None` when the socket could not tell).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    pub fn close(&self) {
        self.closed.set(true);
        self.close.notify(usize::MAX);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Resolves once [`Self::close`] was called.
    pub async fn wait_closed(&self) {
        loop {
            let listener = self.close.listen();
            if self.closed.get() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{header, HeaderMap, HeaderValue};

    #[test]
    fn bearer_token_checks() {
        let mut h = HeaderMap::new();
        assert!(authorized(&h, None));
        assert!(!authorized(&h, Some("s3cret")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer s3cret"),
        );
        assert!(authorized(&h, Some("s3cret")));
        assert!(!authorized(&h, Some("s3cret2")));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic s3cret"),
        );
        assert!(!authorized(&h, Some("s3cret")));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = b"{\"success\":true}".repeat(100);
        let packed = gzip(&data);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
