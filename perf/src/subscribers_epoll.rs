//! The subscribers of `perf subscribe --subscriber-io epoll`: every stream a blocking
//! connect, then nonblocking, on one thread asleep in `epoll_wait` (edge-triggered),
//! the way a thread-per-process client waits. glommio's way (a one-shot io_uring poll
//! per socket, re-armed after each read) makes every delivery cost the sending server
//! more on loopback: the sender's CPU runs the receive path and the wake-up, and an
//! io_uring poll wake-up costs ~5 µs more per send than an epoll one
//! (`cargo bench -p concord-benches --bench fanout_send`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::procstat::mono_ns;
use crate::subscribers::{Arrivals, Feed};

/// Every subscriber until it has seen `target` (once set) or `deadline` passes.
pub fn subscribe_all(
    addr: SocketAddr,
    count: usize,
    feed: Feed,
    connected: &AtomicUsize,
    target: &AtomicU64,
    deadline: Instant,
) -> Arrivals {
    // SAFETY: plain syscall; a non-negative result is a descriptor we own.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(
        epoll >= 0,
        "epoll_create1: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: just created, owned by nobody else.
    let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
    let request = feed.request(addr);
    let mut streams = Vec::with_capacity(count);
    for index in 0..count {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("subscriber {index}: connect: {e}"));
        stream.write_all(request.as_bytes()).expect("subscribe");
        stream.set_nonblocking(true).expect("nonblocking");
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: index as u64,
        };
        // SAFETY: `event` is valid for the call; the kernel copies it.
        let added = unsafe {
            libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                &mut event,
            )
        };
        assert_eq!(added, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        streams.push(Some((stream, feed.decoder(), false)));
    }
    let mut arrivals: Arrivals = vec![Vec::new(); count];
    let mut open = count;
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
    while open > 0 && Instant::now() < deadline {
        let goal = target.load(Ordering::Relaxed);
        if goal != u64::MAX {
            let reached = arrivals
                .iter()
                .filter(|a| a.last().is_some_and(|(v, _)| *v >= goal))
                .count();
            if reached == count {
                break;
            }
        }
        // SAFETY: `events` has room for 256 entries.
        let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), events.as_mut_ptr(), 256, 100) };
        for event in &events[..usize::try_from(n).unwrap_or(0)] {
            let index = event.u64 as usize;
            let Some((stream, decoder, counted)) = streams[index].as_mut() else {
                continue;
            };
            // Edge-triggered: read until the socket is empty.
            let ended = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        let now = mono_ns();
                        let seen = &mut arrivals[index];
                        // A malformed stream ends this subscriber; what it missed is
                        // counted as lost.
                        if decoder.feed(&buf[..n], |v| seen.push((v, now))).is_err() {
                            break true;
                        }
                        if !*counted && decoder.ready() {
                            *counted = true;
                            connected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if ended {
                streams[index] = None;
                open -= 1;
            }
        }
    }
    arrivals
}
