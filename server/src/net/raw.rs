//! Sockets driven without a task of their own (the SSE fan-out writer): a
//! nonblocking vectored send of shared `Bytes` ([`RawSocket::send`], one `sendmsg`
//! with `MSG_DONTWAIT`), and an epoll set ([`Watch`]) asked, never waited on, which
//! sockets hung up, failed, or can take more after a short write. Reads are never
//! polled: a socket is armed for `EPOLLRDHUP` (and for `EPOLLOUT` only while it owes
//! bytes), so a stream whose client never sends costs no wake-up at all.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use bytes::Bytes;

/// Most iovecs one `sendmsg` takes here (well under the kernel's `IOV_MAX`).
const MAX_IOVECS: usize = 64;

/// A connected socket owned outside any I/O runtime.
#[derive(Debug)]
pub struct RawSocket(OwnedFd);

impl RawSocket {
    /// A duplicate of `socket`'s descriptor: the original (glommio's) may then be
    /// dropped, and this one keeps the connection open until it is dropped.
    pub fn duplicate(socket: &impl AsRawFd) -> io::Result<RawSocket> {
        // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor returns a new one we own.
        let fd = unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(RawSocket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sends as much of `chunks`, in order, as the socket takes now; the bytes taken
    /// (0 when it would block). An error means the connection is gone.
    pub fn send<'a>(&self, chunks: impl IntoIterator<Item = &'a Bytes>) -> io::Result<usize> {
        let mut iov: [libc::iovec; MAX_IOVECS] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        let mut count = 0;
        for chunk in chunks
            .into_iter()
            .filter(|c| !c.is_empty())
            .take(MAX_IOVECS)
        {
            iov[count] = libc::iovec {
                iov_base: chunk.as_ptr() as *mut libc::c_void,
                iov_len: chunk.len(),
            };
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        // SAFETY: a zeroed msghdr is valid; it points at `iov`, which outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = count as _;
        loop {
            // SAFETY: `msg` describes `count` valid buffers borrowed from `chunks`.
            let sent =
                unsafe { libc::sendmsg(self.fd(), &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
            if sent >= 0 {
                return Ok(sent as usize);
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(0),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(error),
            }
        }
    }
}

/// What [`Watch::ready`] reports of one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The client hung up (or half-closed) or the socket failed: close it.
    Gone,
    /// It can take more bytes.
    Writable,
}

/// An epoll set of sockets, each with a caller's token.
#[derive(Debug)]
pub struct Watch {
    epoll: OwnedFd,
}

const GONE: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Most sockets one [`Watch::ready`] reports.
pub const READY_BATCH: usize = 256;

impl Watch {
    pub fn new() -> io::Result<Watch> {
        // SAFETY: plain syscall; a non-negative result is a descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created, owned by nobody else.
        Ok(Watch {
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: u64, writable: bool) -> io::Result<()> {
        let mut events = GONE;
        if writable {
            events |= libc::EPOLLOUT as u32;
        }
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `socket` for hang-ups under `token`.
    pub fn add(&self, socket: &RawSocket, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, socket.fd(), token, false)
    }

    /// Also reports when `socket` can take more (while it owes bytes), or stops.
    pub fn want_writable(&self, socket: &RawSocket, token: u64, writable: bool) {
        // Cannot fail for a socket that was added; a failure would only delay its flush.
        let _ = self.control(libc::EPOLL_CTL_MOD, socket.fd(), token, writable);
    }

    /// Stops watching `socket` (before it is closed).
    pub fn remove(&self, socket: &RawSocket) {
        let _ = self.control(libc::EPOLL_CTL_DEL, socket.fd(), 0, false);
    }

    /// Up to [`READY_BATCH`] sockets with news now, without waiting, appended to `out`
    /// as (token, what); true when the batch was full and more may be waiting.
    ///
    /// One `epoll_wait` per call, never a loop: the set is level-triggered, so a socket
    /// the caller has not dealt with yet is reported again by the next call, and a loop
    /// until fewer than a batch come back never ends once a batch's worth of sockets
    /// stay ready (a thousand clients hanging up at once).
    pub fn ready(&self, out: &mut Vec<(u64, Readiness)>) -> bool {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; READY_BATCH];
        // SAFETY: `events` has room for READY_BATCH entries; timeout 0 never blocks.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.as_mut_ptr(),
                READY_BATCH as libc::c_int,
                0,
            )
        };
        let n = usize::try_from(n).unwrap_or(0);
        for event in &events[..n] {
            let what = if event.events & GONE != 0 {
                Readiness::Gone
            } else {
                Readiness::Writable
            };
            out.push((event.u64, what));
        }
        n == READY_BATCH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (RawSocket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let raw = RawSocket::duplicate(&server).unwrap();
        drop(server);
        (raw, client)
    }

    #[test]
    fn a_vectored_send_arrives_in_order_and_a_full_socket_takes_nothing() {
        let (raw, mut client) = pair();
        let parts = [
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cd"),
        ];
        assert_eq!(raw.send(&parts).unwrap(), 4);
        let mut got = [0u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abcd");
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let mut total = 0;
        for _ in 0..256 {
            match raw.send([&big]).unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert!(total > 0);
        assert_eq!(raw.send([&big]).unwrap(), 0, "a full socket would block");
    }

    #[test]
    fn the_watch_reports_a_hang_up_and_writability_only_when_asked() {
        let (raw, client) = pair();
        let watch = Watch::new().unwrap();
        watch.add(&raw, 7).unwrap();
        let mut out = Vec::new();
        watch.ready(&mut out);
        assert!(
            out.is_empty(),
            "an idle, writable socket is not reported: {out:?}"
        );
        watch.want_writable(&raw, 7, true);
        watch.ready(&mut out);
        assert_eq!(out, vec![(7, Readiness::Writable)]);
        watch.want_writable(&raw, 7, false);
        drop(client);
        out.clear();
        for _ in 0..100 {
            watch.ready(&mut out);
            if !out.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(out, vec![(7, Readiness::Gone)]);
        watch.remove(&raw);
    }

    #[test]
    fn more_hang_ups_than_a_batch_come_in_batches_and_each_call_returns() {
        let count = READY_BATCH + 40;
        let watch = Watch::new().unwrap();
        let pairs: Vec<(RawSocket, TcpStream)> = (0..count).map(|_| pair()).collect();
        for (i, (raw, _)) in pairs.iter().enumerate() {
            watch.add(raw, i as u64).unwrap();
        }
        let (raws, clients): (Vec<RawSocket>, Vec<TcpStream>) = pairs.into_iter().unzip();
        drop(clients);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..count {
            let mut out = Vec::new();
            let more = watch.ready(&mut out);
            assert!(out.len() <= READY_BATCH);
            for (token, what) in out {
                assert_eq!(what, Readiness::Gone);
                // Dealt with: removed, so it is not reported again.
                if seen.insert(token) {
                    watch.remove(&raws[token as usize]);
                }
            }
            if !more && seen.len() == count {
                break;
            }
        }
        assert_eq!(seen.len(), count, "every hang-up reported");
    }
}
