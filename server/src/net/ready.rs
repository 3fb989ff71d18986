//! The client port's sockets, driven by readiness: each executor keeps one
//! edge-triggered epoll set ([`ReadySet`]), a socket joins it once when accepted
//! ([`ReadyStream::adopt`]), and a read or write that would block leaves the task's
//! waker with the socket until the set reports it. The set's own descriptor waits on
//! glommio's ring, one poll for every socket of the executor, and a task of the
//! executor ([`drain`]) hands what the set reports to the waiting tasks.
//!
//! Why not glommio's `TcpStream`: glommio 0.9 arms a one-shot io_uring poll for every
//! wait on a connection (after every short read, so once per request on a keep-alive
//! connection), and that arm, its wake-up and its completion cost ~2 µs of kernel time
//! per request: a third of what a small read costs the server in all. An epoll set
//! keeps each socket registered for the connection's life, and a ready socket costs
//! the kernel one list insertion.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::{AsyncRead, AsyncWrite};

/// Most events one `epoll_wait` hands over.
const EVENT_BATCH: usize = 256;

const READ_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
const WRITE_EVENTS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// What one socket of the set may do without blocking, who waits for it, and what
/// its task wrote and has not sent yet.
#[derive(Default)]
struct Interest {
    /// False once a read came back short or would block; true again when the set
    /// reports the socket readable (or hung up).
    readable: Cell<bool>,
    writable: Cell<bool>,
    reader: Cell<Option<Waker>>,
    writer: Cell<Option<Waker>>,
    /// Bytes written while [`Coalesced`] holds the socket's task, sent when that
    /// task's poll ends; always empty otherwise.
    outbox: RefCell<Vec<u8>>,
    coalescing: Cell<bool>,
    /// The socket's descriptor, until the stream is dropped (then -1).
    fd: Cell<RawFd>,
    /// Set when sending the outbox failed: the connection is gone, and the task's
    /// next write says so.
    broken: Cell<bool>,
}

impl Interest {
    fn ready(&self, events: u32) {
        if events & READ_EVENTS != 0 {
            self.readable.set(true);
            if let Some(waker) = self.reader.take() {
                waker.wake();
            }
        }
        if events & WRITE_EVENTS != 0 {
            self.writable.set(true);
            if let Some(waker) = self.writer.take() {
                waker.wake();
            }
        }
    }
}

/// One executor's epoll set and the sockets in it, by token (slot index and the
/// slot's generation, so a reused slot never takes a stale event).
pub struct ReadySet {
    epoll: OwnedFd,
    slots: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    entries: Vec<(u32, Option<Rc<Interest>>)>,
    free: Vec<u32>,
}

thread_local! {
    /// The set of the executor running on this thread, by executor id (a thread may
    /// run one executor after another, and a set's task dies with its executor).
    static SET: RefCell<Option<(usize, Rc<ReadySet>)>> = const { RefCell::new(None) };
}

impl ReadySet {
    /// This executor's set, created (and its [`drain`] task started) on first use.
    fn current() -> io::Result<Rc<ReadySet>> {
        let executor = glommio::executor().id();
        SET.with(|set| {
            if let Some((id, existing)) = &*set.borrow() {
                if *id == executor {
                    return Ok(existing.clone());
                }
            }
            // SAFETY: plain syscall; a non-negative result is a descriptor we own.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let created = Rc::new(ReadySet {
                // SAFETY: just created, owned by nobody else.
                epoll: unsafe { OwnedFd::from_raw_fd(fd) },
                slots: RefCell::default(),
            });
            glommio::spawn_local(drain(created.clone())).detach();
            *set.borrow_mut() = Some((executor, created.clone()));
            Ok(created)
        })
    }

    fn add(&self, fd: RawFd, interest: Rc<Interest>) -> io::Result<u64> {
        let mut slots = self.slots.borrow_mut();
        let index = match slots.free.pop() {
            Some(index) => index,
            None => {
                slots.entries.push((0, None));
                (slots.entries.len() - 1) as u32
            }
        };
        let entry = &mut slots.entries[index as usize];
        entry.0 = entry.0.wrapping_add(1);
        let token = (u64::from(entry.0) << 32) | u64::from(index);
        let mut event = libc::epoll_event {
            events: READ_EVENTS | WRITE_EVENTS | libc::EPOLLET as u32,
            u64: token,
        };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        let added =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if added < 0 {
            let error = io::Error::last_os_error();
            slots.free.push(index);
            return Err(error);
        }
        entry.1 = Some(interest);
        Ok(token)
    }

    fn remove(&self, fd: RawFd, token: u64) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL. It also takes the socket
        // off the set's ready list, so no event of it is handed over after this.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        let mut slots = self.slots.borrow_mut();
        let index = token as u32;
        slots.entries[index as usize].1 = None;
        slots.free.push(index);
    }

    /// Hands what the set reports now to the waiting tasks; how many events there were.
    fn dispatch(&self, events: &mut [libc::epoll_event]) -> usize {
        // SAFETY: `events` has room for its length; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        let slots = self.slots.borrow();
        for event in &events[..n] {
            let (token, what) = (event.u64, event.events);
            let Some((generation, Some(interest))) = slots.entries.get(token as u32 as usize)
            else {
                continue;
            };
            if u64::from(*generation) == token >> 32 {
                interest.ready(what);
            }
        }
        n
    }
}

/// The executor's task that hands the set's events to the tasks waiting for them:
/// it asks the set without waiting, lets the woken tasks run, and asks again; only
/// when nothing is ready does it wait, with one glommio poll on the set's descriptor.
async fn drain(set: Rc<ReadySet>) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENT_BATCH];
    loop {
        if set.dispatch(&mut events) > 0 {
            futures_lite::future::yield_now().await;
            continue;
        }
        if let Err(e) = glommio::net::poll_readable(set.epoll.as_raw_fd()).await {
            tracing::warn!(error = %e, "waiting on the client sockets' epoll set failed");
            glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// A connected socket in this executor's [`ReadySet`]: `futures-io` reads and writes
/// with nonblocking `recv`/`send`, a task waiting only when the socket has nothing.
pub struct ReadyStream {
    socket: StdTcpStream,
    set: Rc<ReadySet>,
    token: u64,
    interest: Rc<Interest>,
}

impl ReadyStream {
    /// Takes over `fd`, a connected TCP socket, into this executor's set (with
    /// `TCP_NODELAY`: answers go out as soon as they are written).
    pub fn adopt(fd: OwnedFd) -> io::Result<ReadyStream> {
        let socket = StdTcpStream::from(fd);
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        let set = ReadySet::current()?;
        let interest = Rc::new(Interest {
            readable: Cell::new(true),
            writable: Cell::new(true),
            fd: Cell::new(socket.as_raw_fd()),
            ..Interest::default()
        });
        let token = set.add(socket.as_raw_fd(), interest.clone())?;
        Ok(ReadyStream {
            socket,
            set,
            token,
            interest,
        })
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// Waits for bytes and copies the first of them into `buf`, leaving them unread.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        futures_lite::future::poll_fn(|cx| loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the call.
            let got = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_PEEK,
                )
            };
            match nonblocking(got) {
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(result) => return Poll::Ready(result),
                None => {
                    self.interest.readable.set(false);
                    self.interest.reader.set(Some(cx.waker().clone()));
                    return Poll::Pending;
                }
            }
        })
        .await
    }
}

impl AsRawFd for ReadyStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl Drop for ReadyStream {
    fn drop(&mut self) {
        // What the task wrote last leaves as a close would have sent it: once, if the
        // socket takes it now.
        let _ = self.interest.send_outbox();
        self.interest.outbox.take();
        self.interest.fd.set(-1);
        // Explicitly: a duplicate of the descriptor (the SSE hand-over) keeps the
        // socket, and so its registration, alive after this one closes.
        self.set.remove(self.socket.as_raw_fd(), self.token);
    }
}

/// One nonblocking syscall's result: `None` when it would block.
fn nonblocking(result: isize) -> Option<io::Result<usize>> {
    if result >= 0 {
        return Some(Ok(result as usize));
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock => None,
        _ => Some(Err(error)),
    }
}

impl AsyncRead for ReadyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let interest = &self.interest;
        while interest.readable.get() && !buf.is_empty() {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the call.
            let got = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match nonblocking(got) {
                Some(Ok(n)) => {
                    // A short read emptied the socket: the next bytes to arrive are
                    // a new edge the set reports, so the next read need not ask first.
                    if n > 0 && n < buf.len() {
                        interest.readable.set(false);
                    }
                    return Poll::Ready(Ok(n));
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => interest.readable.set(false),
            }
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        interest.reader.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

/// Past this many unsent bytes, a coalescing socket sends before taking more.
const OUTBOX_LIMIT: usize = 64 * 1024;

/// An emptied outbox keeps its buffer up to this size (an idle connection holds no more).
const OUTBOX_KEPT: usize = 4096;

impl Interest {
    /// One nonblocking `send` of `buf`: the bytes taken, `None` when it would block.
    fn send(&self, buf: &[u8]) -> Option<io::Result<usize>> {
        loop {
            // SAFETY: `buf` is valid for `buf.len()` bytes for the call.
            let sent = unsafe {
                libc::send(
                    self.fd.get(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            match nonblocking(sent) {
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                None => {
                    self.writable.set(false);
                    return None;
                }
                done => return done,
            }
        }
    }

    /// Sends as much of the outbox as the socket takes; true when it is empty.
    fn send_outbox(&self) -> io::Result<bool> {
        let mut outbox = self.outbox.borrow_mut();
        while !outbox.is_empty() && self.writable.get() && self.fd.get() >= 0 {
            match self.send(&outbox) {
                Some(Ok(n)) => {
                    outbox.drain(..n);
                }
                Some(Err(e)) => {
                    outbox.clear();
                    self.broken.set(true);
                    return Err(e);
                }
                None => {}
            }
        }
        if outbox.is_empty() && outbox.capacity() > OUTBOX_KEPT {
            *outbox = Vec::new();
        }
        Ok(outbox.is_empty())
    }

    /// [`Self::send_outbox`], waiting (with `cx`'s waker) while the socket is full.
    fn poll_outbox(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        match self.send_outbox() {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => {
                self.writer.set(Some(cx.waker().clone()));
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for ReadyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let interest = &self.interest;
        if interest.coalescing.get() {
            if interest.broken.get() {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            if interest.outbox.borrow().len() >= OUTBOX_LIMIT {
                std::task::ready!(interest.poll_outbox(cx))?;
            }
            interest.outbox.borrow_mut().extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        if interest.writable.get() {
            if let Some(result) = interest.send(buf) {
                return Poll::Ready(result);
            }
        }
        interest.writer.set(Some(cx.waker().clone()));
        Poll::Pending
    }

    /// Nothing is held back outside a [`Coalesced`] task, and within one the end of
    /// the poll sends it.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.interest.poll_outbox(cx))?;
        Poll::Ready(match self.socket.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// A connection's task whose socket sends once per poll: what the task writes while
/// it runs (a whole answer, or the answers to a pipelined batch of requests) waits in
/// the socket's outbox and leaves in one `send` when the poll ends, instead of one
/// `send` per answer (hyper flushes after each). A socket that cannot take it all
/// holds the task's further writes back until it can ([`OUTBOX_LIMIT`]).
pub struct Coalesced<F> {
    task: Pin<Box<F>>,
    socket: Rc<Interest>,
}

/// A hold on a [`ReadyStream`]'s sending, taken before the stream moves into the task
/// that will own it (through TLS and hyper).
pub struct Coalescing(Rc<Interest>);

impl ReadyStream {
    pub fn coalescing(&self) -> Coalescing {
        Coalescing(self.interest.clone())
    }
}

impl Coalescing {
    /// Runs `task`, which owns the stream, with the stream's writes coalesced per poll.
    pub fn around<F: std::future::Future>(self, task: F) -> Coalesced<F> {
        self.0.coalescing.set(true);
        Coalesced {
            task: Box::pin(task),
            socket: self.0,
        }
    }
}

impl<F: std::future::Future> std::future::Future for Coalesced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let polled = this.task.as_mut().poll(cx);
        if polled.is_pending() {
            // A send that fails leaves the error for the task's next read or write.
            let _ = this.socket.poll_outbox(cx);
        }
        // Finished: the task dropped the stream, which sent what it could.
        polled
    }
}

#[cfg(test)]
#[path = "ready_test.rs"]
mod tests;
