//! What a stranger's connection may cost, on both ports: the accept loop with its
//! connection cap (a full server answers a short `503` with `Retry-After` and closes),
//! the request-head clock (a head must arrive whole within a deadline of its first
//! byte, however slowly it trickles), and serving one connection with hyper's HTTP/1.1.
//!
//! The idle keep-alive limit is hyper's own header-read timer, which runs from the
//! moment hyper waits for a head; the head clock here is the tighter bound that starts
//! at the head's first byte, so a connection may idle for long but not dribble a head.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use glommio::net::{AcceptedTcpStream, TcpListener, TcpStream};
use http::{Request, Response};
use hyper::body::Incoming;

use super::capacity::{Capacity, Place};
use super::head::{Replay, Replayed};
use super::io::{GlommioTimer, HyperIo};
use super::ready::ReadyStream;
use super::ConnectionGuard;

/// Refused connections being answered at once on one listener; past it, a refused
/// connection is closed without an answer (a flood must not cost a task each).
const MAX_REFUSING: usize = 64;

/// Connections accepted in one turn of the accept loop before it lets other tasks run.
const ACCEPTS_PER_TURN: usize = 32;

/// How long a refused connection may take to receive its 503 and hang up.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// The whole `503` a full port answers before closing, built once per listener.
pub fn refusal(content_type: &str, body: &[u8]) -> Bytes {
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {content_type}\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(body);
    Bytes::from(answer)
}

/// A socket accepted on one of our ports, with whatever drives its I/O: glommio's
/// own stream (the peer port) or the executor's readiness set (the client port,
/// [`ReadyStream`]).
pub trait Accepted: AsyncRead + AsyncWrite + AsRawFd + Unpin + Sized + 'static {
    /// Takes over a just-accepted socket, with `TCP_NODELAY` (answers are written
    /// whole, and should leave at once).
    fn adopt(accepted: AcceptedTcpStream) -> io::Result<Self>;

    fn peer_addr(&self) -> io::Result<SocketAddr>;

    /// Waits for bytes and copies the first of them into `buf` without taking them.
    fn peek<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a;
}

impl Accepted for TcpStream {
    fn adopt(accepted: AcceptedTcpStream) -> io::Result<Self> {
        let stream = accepted.bind_to_executor();
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::peer_addr(self).map_err(io::Error::from)
    }

    async fn peek<'a>(&'a self, buf: &'a mut [u8]) -> io::Result<usize> {
        TcpStream::peek(self, buf).await.map_err(io::Error::from)
    }
}

impl Accepted for ReadyStream {
    fn adopt(accepted: AcceptedTcpStream) -> io::Result<Self> {
        // SAFETY: the accepted descriptor is a connected socket owned by nobody else.
        ReadyStream::adopt(unsafe { OwnedFd::from_raw_fd(accepted.into_raw_fd()) })
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        ReadyStream::peer_addr(self)
    }

    async fn peek<'a>(&'a self, buf: &'a mut [u8]) -> io::Result<usize> {
        ReadyStream::peek(self, buf).await
    }
}

/// Accepts connections on `listener` until the executor stops, serving each one
/// `limit` has room for as a local task (`serve`, which holds the connection's place
/// until the connection ends) and refusing the others with `refusal`.
pub async fn accept_loop<S, F, Fut>(
    listener: TcpListener,
    limit: Arc<Capacity>,
    refusal: Bytes,
    serve: F,
) where
    S: Accepted,
    F: Fn(S, Place) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let refusing = Rc::new(Cell::new(0usize));
    let mut accepted_in_turn = 0usize;
    loop {
        // glommio's accept returns at once while the backlog holds connections, so
        // without a yield a burst is accepted in one poll and everything else on the
        // executor (Raft's timers on executor 0) waits for the whole backlog.
        accepted_in_turn += 1;
        if accepted_in_turn == ACCEPTS_PER_TURN {
            accepted_in_turn = 0;
            futures_lite::future::yield_now().await;
        }
        let accepted = listener.shared_accept().await.map_err(io::Error::from);
        let stream = match accepted.and_then(S::adopt) {
            Ok(stream) => stream,
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match limit.take() {
            Some(place) => {
                glommio::spawn_local(serve(stream, place)).detach();
            }
            None if refusing.get() < MAX_REFUSING => {
                refusing.set(refusing.get() + 1);
                let (refusing, answer) = (refusing.clone(), refusal.clone());
                glommio::spawn_local(async move {
                    refuse(stream, &answer).await;
                    refusing.set(refusing.get() - 1);
                })
                .detach();
            }
            None => drop(stream),
        }
    }
}

/// Sends `answer`, then reads what the client sent until it hangs up (closing with
/// unread data would reset the connection and could destroy the answer in flight).
async fn refuse(mut stream: impl Accepted, answer: &[u8]) {
    let exchange = async {
        stream.write_all(answer).await?;
        stream.close().await?;
        let mut sink = [0u8; 1024];
        let mut drained = 0;
        while drained < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        io::Result::Ok(())
    };
    let deadline = async {
        glommio::timer::sleep(REFUSAL_GRACE).await;
        Ok(())
    };
    let _ = futures_lite::future::or(exchange, deadline).await;
}

/// The time limits of one connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionTimeouts {
    /// Idle keep-alive limit (hyper's header-read timer: from when it waits for a head).
    pub idle: Duration,
    /// From a head's first byte to its last.
    pub head: Duration,
}

/// Serves one HTTP/1.1 connection (a socket, or TLS over one; `peer` is the socket's
/// remote address) with `handler` until the client leaves, a limit cuts it off or the
/// handler closes it through its [`ConnectionGuard`]. `replay` holds bytes already
/// read from the socket (a head read ahead of hyper, `net::head`).
pub async fn serve_http1<S, F, Fut, B>(
    stream: S,
    replay: Replay,
    peer: Option<SocketAddr>,
    timeouts: ConnectionTimeouts,
    max_buf_size: Option<usize>,
    handler: F,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
    F: Fn(Request<Incoming>, Rc<ConnectionGuard>) -> Fut + 'static,
    Fut: Future<Output = Response<B>> + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let guard = Rc::new(ConnectionGuard::for_peer(peer));
    let clock = Rc::new(HeadClock::default());
    let service_guard = guard.clone();
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        service_clock.head_received();
        let answer = handler(req, service_guard.clone());
        let clock = service_clock.clone();
        async move {
            let answer = answer.await;
            clock.await_next_head();
            Ok::<_, Infallible>(answer)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(GlommioTimer)
        .header_read_timeout(timeouts.idle)
        .keep_alive(true);
    if let Some(size) = max_buf_size {
        builder.max_buf_size(size);
    }
    // A head that started arriving before hyper saw it keeps its deadline.
    let timer = replay.head_started.map(|at| {
        clock.head_started.set(Some(at));
        glommio::timer::Timer::new((at + timeouts.head).saturating_duration_since(Instant::now()))
    });
    let io = HyperIo(HeadTimed {
        stream: Replayed {
            replay: replay.bytes,
            stream,
        },
        clock,
        limit: timeouts.head,
        timer,
    });
    let conn = builder.serve_connection(io, service);
    // Dropping the connection future closes the socket.
    let closed = async {
        guard.wait_closed().await;
        Ok(())
    };
    if let Err(e) = futures_lite::future::or(conn, closed).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Where a connection is between requests, shared by its stream and its service.
struct HeadClock {
    /// True from the connection's start, and again once an answer was produced.
    awaiting_head: Cell<bool>,
    /// When the first byte of the head now arriving was read.
    head_started: Cell<Option<Instant>>,
}

impl Default for HeadClock {
    fn default() -> Self {
        HeadClock {
            awaiting_head: Cell::new(true),
            head_started: Cell::new(None),
        }
    }
}

impl HeadClock {
    fn head_received(&self) {
        self.awaiting_head.set(false);
        self.head_started.set(None);
    }

    fn await_next_head(&self) {
        self.awaiting_head.set(true);
    }
}

/// A socket that fails its reads once a request head has taken longer than `limit`
/// since its first byte (hyper then closes the connection).
struct HeadTimed<S> {
    stream: S,
    clock: Rc<HeadClock>,
    limit: Duration,
    timer: Option<glommio::timer::Timer>,
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadTimed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(n))
                if n > 0
                    && this.clock.awaiting_head.get()
                    && this.clock.head_started.get().is_none() =>
            {
                this.clock.head_started.set(Some(Instant::now()));
                match &mut this.timer {
                    Some(timer) => timer.reset(this.limit),
                    None => this.timer = Some(glommio::timer::Timer::new(this.limit)),
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.clock.head_started.get().is_some() => {
                let expired = this
                    .timer
                    .as_mut()
                    .is_some_and(|timer| Pin::new(timer).poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

super::write_through_to_stream!(HeadTimed);

/// The client address a per-address limit counts: the IPv4 address (IPv4-mapped
/// IPv6 included), or the /64 of an IPv6 one (one host commonly holds a whole /64).
pub fn address_key(addr: SocketAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_by_host_or_ipv6_prefix() {
        let key = |s: &str| address_key(s.parse().unwrap()).to_string();
        assert_eq!(key("10.0.0.1:5"), "10.0.0.1");
        assert_eq!(key("[::ffff:10.0.0.1]:5"), "10.0.0.1");
        assert_eq!(key("[2001:db8:1:2:3:4:5:6]:5"), "2001:db8:1:2::");
        assert_eq!(
            key("[2001:db8:1:2:ffff::1]:5"),
            key("[2001:db8:1:2::9]:7"),
            "one /64 is one address"
        );
    }

    #[test]
    fn a_refusal_is_a_whole_503() {
        let answer = refusal("text/plain", b"full");
        let text = std::str::from_utf8(&answer).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 "));
        assert!(text.contains("retry-after: 1\r\n"));
        assert!(text.ends_with("\r\n\r\nfull"));
    }
}
