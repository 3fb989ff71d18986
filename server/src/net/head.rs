//! The first request head of a connection, read (and parsed with httparse) before
//! hyper sees the connection, so that a route wanting the socket itself (the SSE
//! fan-out) can take it; any other connection goes to hyper with the bytes read so
//! far replayed first ([`Replayed`]). The same limits as hyper's apply: the first byte
//! within the idle limit, the whole head within the head limit of its first byte.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_lite::{AsyncRead, AsyncReadExt};

/// Headers parsed at most (more: the request goes to hyper, which answers it).
const MAX_HEADERS: usize = 64;

/// What the start of a connection held.
#[derive(Debug)]
pub enum FirstHead {
    /// The client left, failed, or missed a deadline before a whole head arrived.
    Gone,
    /// A whole head that `http` could represent, with nothing after it yet.
    Request(Box<http::Request<()>>),
    /// Anything else (a malformed, oversized or pipelined head): for hyper.
    Other,
}

/// Bytes read ahead of hyper, and when the head they start arrived.
#[derive(Debug, Default)]
pub struct Replay {
    pub bytes: Bytes,
    pub head_started: Option<Instant>,
}

/// Reads the first head of `stream` (at most `max` bytes); returns it with every
/// byte read (what hyper must see first if the connection goes to it).
pub async fn read_first<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: Duration,
    head_limit: Duration,
    max: usize,
) -> (FirstHead, Replay) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    let mut started: Option<Instant> = None;
    loop {
        let left = match started {
            None => idle,
            Some(at) => (at + head_limit).saturating_duration_since(Instant::now()),
        };
        let read = futures_lite::future::or(async { Some(stream.read(&mut chunk).await) }, async {
            glommio::timer::sleep(left).await;
            None
        })
        .await;
        let n = match read {
            Some(Ok(n)) if n > 0 => n,
            _ => return (FirstHead::Gone, Replay::default()),
        };
        started.get_or_insert_with(Instant::now);
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let replay = |buf: Vec<u8>| Replay {
            bytes: Bytes::from(buf),
            head_started: started,
        };
        match parsed.parse(&buf) {
            Ok(httparse::Status::Partial) if buf.len() < max => continue,
            Ok(httparse::Status::Complete(len)) if len == buf.len() && len <= max => {
                let head = to_request(&parsed)
                    .map_or(FirstHead::Other, |r| FirstHead::Request(Box::new(r)));
                return (head, replay(buf));
            }
            _ => return (FirstHead::Other, replay(buf)),
        }
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>) -> Option<http::Request<()>> {
    let mut builder = http::Request::builder()
        .method(parsed.method?)
        .uri(parsed.path?)
        .version(match parsed.version? {
            0 => http::Version::HTTP_10,
            _ => http::Version::HTTP_11,
        });
    for header in parsed.headers.iter() {
        builder = builder.header(header.name, header.value);
    }
    builder.body(()).ok()
}

/// A stream that first yields `replay`, then reads on.
pub struct Replayed<S> {
    pub replay: Bytes,
    pub stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.len());
            buf[..n].copy_from_slice(&self.replay[..n]);
            self.replay.advance(n);
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

super::write_through_to_stream!(Replayed);

#[cfg(test)]
mod tests {
    use super::*;

    /// `read_first` over `input` (a client that sends it and then waits).
    fn first(input: &'static [u8]) -> (FirstHead, Replay) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let waits = futures_lite::io::AsyncReadExt::chain(
                    futures_lite::io::Cursor::new(input),
                    Pending,
                );
                let mut stream = Box::pin(waits);
                let limit = Duration::from_millis(200);
                read_first(&mut stream, limit, limit, 1024).await
            })
            .expect("an executor")
            .join()
            .expect("the executor ran")
    }

    /// A client that sends nothing more and never leaves.
    struct Pending;

    impl AsyncRead for Pending {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    #[test]
    fn a_whole_head_is_parsed_and_kept_for_replay() {
        let sent = b"GET /api/topology/subscribe?sinceVersion=4 HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 7\r\n\r\n";
        let (head, replay) = first(sent);
        let FirstHead::Request(req) = head else {
            panic!("{head:?}");
        };
        assert_eq!(req.uri().query(), Some("sinceVersion=4"));
        assert_eq!(req.headers()["last-event-id"], "7");
        assert_eq!(&replay.bytes[..], &sent[..]);
        assert!(replay.head_started.is_some());
    }

    #[test]
    fn malformed_oversized_pipelined_and_unfinished_heads_go_elsewhere() {
        let (head, replay) = first(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n");
        assert!(matches!(head, FirstHead::Other), "malformed: {head:?}");
        assert!(!replay.bytes.is_empty(), "hyper answers it from the replay");
        let big: &'static [u8] = Box::leak(
            format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(2000))
                .into_bytes()
                .into_boxed_slice(),
        );
        assert!(matches!(first(big).0, FirstHead::Other), "over the limit");
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let (head, replay) = first(two);
        assert!(matches!(head, FirstHead::Other), "pipelined");
        assert_eq!(&replay.bytes[..], &two[..]);
        assert!(
            matches!(first(b"GET / HTTP/1.1\r\nHost").0, FirstHead::Gone),
            "head deadline"
        );
        assert!(matches!(first(b"").0, FirstHead::Gone), "idle deadline");
    }

    #[test]
    fn replayed_bytes_come_first() {
        let mut replayed = Replayed {
            replay: Bytes::from_static(b"abc"),
            stream: futures_lite::io::Cursor::new(b"def".to_vec()),
        };
        let mut out = Vec::new();
        futures_lite::future::block_on(replayed.read_to_end(&mut out)).unwrap();
        assert_eq!(out, b"abcdef");
    }
}
