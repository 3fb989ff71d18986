//! Glue between hyper 1.x and glommio: the byte-stream adapter and the timer.
//!
//! hyper is runtime-agnostic through `hyper::rt::{Read, Write, Timer}`; glommio's
//! sockets speak `futures_lite::{AsyncRead, AsyncWrite}`. This module owns the
//! translation and nothing else.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};

/// A glommio (or any futures-io) stream seen through hyper's I/O traits.
pub struct HyperIo<S>(pub S);

thread_local! {
    /// futures-io reads into an initialised slice and hyper hands out uninitialised
    /// space. Rather than zeroing hyper's buffer on every read (8 KiB and more), reads
    /// land in this per-thread scratch buffer, initialised once, and are copied over.
    /// One per executor thread, not one per connection: idle connections cost nothing.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 16 * 1024].into_boxed_slice());
}

impl<S: AsyncRead + Unpin> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: only the length of the spare capacity is read here.
        let room = unsafe { buf.as_mut() }.len();
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let want = room.min(scratch.len());
            match Pin::new(&mut self.0).poll_read(cx, &mut scratch[..want]) {
                Poll::Ready(Ok(n)) => {
                    buf.put_slice(&scratch[..n]);
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// hyper's timer (header-read timeouts) on glommio's timer wheel.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTimer;

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(GlommioSleep(glommio::timer::Timer::new(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

/// A glommio timer that hyper may hold.
struct GlommioSleep(glommio::timer::Timer);

// SAFETY: hyper's `Sleep` bound asks for Send + Sync because hyper is generic over
// runtimes. An HTTP/1 server connection never leaves the executor thread it was
// spawned on (`spawn_local`), and hyper creates, polls and drops its sleeps inside
// that connection's future, so the timer is only ever touched from its own thread.
unsafe impl Send for GlommioSleep {}
unsafe impl Sync for GlommioSleep {}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl hyper::rt::Sleep for GlommioSleep {}
