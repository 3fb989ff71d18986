//! The fan-out's send mechanism against io_uring batching, on the same loopback
//! sockets: one nonblocking vectored `sendmsg` per socket (`net::raw::RawSocket::send`,
//! what `notify::fanout` does per stream and publication) against the same sends queued
//! as io_uring `SendMsg` entries and submitted as one batch (one `io_uring_enter` for the
//! whole pass). The kernel's TCP work is the same in both, loopback receive included; the
//! difference is what batching the system calls saves. Only the sends are timed; the
//! receivers are drained between passes. Two more cases send per socket while a reader
//! thread sleeps on every receiver, as a subscriber process does, in `epoll_wait` or on
//! one-shot io_uring polls (glommio's way, so the `perf subscribe` harness's): each send
//! then also pays for waking it (on loopback the sender's CPU runs the receive path and
//! the wake-up). That case runs again with its passes 50 ms apart, as the server's
//! are at 20 writes/s.

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use concord_topo::net::raw::RawSocket;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use io_uring::{opcode, types, IoUring};

/// Streams one executor would hold at the 1,000-subscriber target.
const SOCKETS: usize = 1_000;

/// One version's chunk-framed SSE unit: chunk head, event, chunk tail (~200 bytes).
fn unit() -> [Bytes; 3] {
    let event: &'static str = concat!(
        "id: 42\nevent: ShardMove\ndata: {\"type\":\"ShardMove\",\"version\":42,",
        "\"shardId\":\"shard-0042\",\"newValue\":{\"primaryNode\":\"dn-0007\"}}\n\n"
    );
    [
        Bytes::from(format!("{:x}\r\n", event.len())),
        Bytes::from_static(event.as_bytes()),
        Bytes::from_static(b"\r\n"),
    ]
}

/// `SOCKETS` connected pairs: the server side as the fan-out holds it, the client side
/// nonblocking, to be drained.
fn pairs() -> (Vec<RawSocket>, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut senders = Vec::with_capacity(SOCKETS);
    let mut receivers = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let client = TcpStream::connect(addr).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        senders.push(RawSocket::duplicate(&server).expect("dup"));
        client.set_nonblocking(true).expect("nonblocking");
        receivers.push(client);
    }
    (senders, receivers)
}

/// Reads every receiver empty; the bytes read.
fn drain(receivers: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    for r in receivers {
        loop {
            match r.read(&mut buf) {
                Ok(0) => panic!("a receiver closed"),
                Ok(n) => total += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("drain: {e}"),
            }
        }
    }
    total
}

/// How the reader thread sleeps until a receiver has data.
#[derive(Clone, Copy)]
enum Wait {
    /// One edge-triggered epoll set over every receiver (a thread-per-process client).
    Epoll,
    /// A one-shot io_uring poll per receiver, re-armed after each read: what glommio
    /// does, so what the `perf subscribe` harness's subscribers cost the sender.
    UringPoll,
}

/// A thread asleep on every receiver, reading what arrives.
struct Reader {
    received: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<TcpStream>>,
}

impl Reader {
    fn start(receivers: Vec<TcpStream>, wait: Wait) -> Reader {
        let received = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || match wait {
            Wait::Epoll => read_with_epoll(receivers, &counted, &stopped),
            Wait::UringPoll => read_with_uring_polls(receivers, &counted, &stopped),
        });
        Reader {
            received,
            stop,
            thread,
        }
    }

    /// Stops the thread; the receivers back.
    fn stop(self) -> Vec<TcpStream> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the reader")
    }

    /// Waits until `total` bytes have arrived since the start.
    fn wait_for(&self, total: usize) {
        while self.received.load(Ordering::Relaxed) < total {
            std::thread::yield_now();
        }
    }
}

fn read_with_epoll(
    mut receivers: Vec<TcpStream>,
    counted: &AtomicUsize,
    stopped: &AtomicBool,
) -> Vec<TcpStream> {
    // SAFETY: plain syscalls on descriptors this thread owns.
    let epoll = unsafe { libc::epoll_create1(0) };
    assert!(epoll >= 0, "epoll_create1");
    for (i, r) in receivers.iter().enumerate() {
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        let added =
            unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, r.as_raw_fd(), &mut event) };
        assert_eq!(added, 0, "epoll_ctl");
    }
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
    while !stopped.load(Ordering::Relaxed) {
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), 256, 100) };
        for event in &events[..usize::try_from(n).unwrap_or(0)] {
            let one = &mut receivers[event.u64 as usize];
            counted.fetch_add(drain(std::slice::from_mut(one)), Ordering::Relaxed);
        }
    }
    unsafe { libc::close(epoll) };
    receivers
}

fn read_with_uring_polls(
    mut receivers: Vec<TcpStream>,
    counted: &AtomicUsize,
    stopped: &AtomicBool,
) -> Vec<TcpStream> {
    let mut ring = IoUring::new(4 * SOCKETS as u32).expect("io_uring");
    let arm = |ring: &mut IoUring, i: usize, fd: i32| {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(i as u64);
        // SAFETY: a poll entry refers to no memory of ours.
        unsafe { ring.submission().push(&entry) }.expect("room in the queue");
    };
    for (i, r) in receivers.iter().enumerate() {
        arm(&mut ring, i, r.as_raw_fd());
    }
    let timeout = types::Timespec::new().nsec(100_000_000);
    while !stopped.load(Ordering::Relaxed) {
        let args = types::SubmitArgs::new().timespec(&timeout);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("io_uring wait: {e}"),
        }
        let ready: Vec<usize> = ring.completion().map(|c| c.user_data() as usize).collect();
        for i in ready {
            let one = &mut receivers[i];
            counted.fetch_add(drain(std::slice::from_mut(one)), Ordering::Relaxed);
            arm(&mut ring, i, one.as_raw_fd());
        }
    }
    receivers
}

/// One `sendmsg` of `unit` per socket, each taken whole; the time the pass took.
fn send_to_each(senders: &[RawSocket], unit: &[Bytes]) -> Duration {
    let unit_len: usize = unit.iter().map(Bytes::len).sum();
    let started = Instant::now();
    for s in senders {
        assert_eq!(s.send(unit).expect("send"), unit_len);
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let (senders, mut receivers) = pairs();
    let unit = unit();
    let unit_len: usize = unit.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("fanout_send_1000_sockets");
    group.throughput(Throughput::Elements(SOCKETS as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(5));

    group.bench_function("sendmsg_per_socket", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                timed += send_to_each(&senders, &unit);
                assert_eq!(drain(&mut receivers), SOCKETS * unit_len);
            }
            timed
        })
    });

    let mut ring = IoUring::new(2 * SOCKETS as u32).expect("io_uring");
    let iovecs: Vec<libc::iovec> = unit
        .iter()
        .map(|chunk| libc::iovec {
            iov_base: chunk.as_ptr() as *mut libc::c_void,
            iov_len: chunk.len(),
        })
        .collect();
    // SAFETY (for every entry below): the msghdr and the iovecs it points at outlive
    // the submission, which is waited for before either is touched again.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
    header.msg_iovlen = iovecs.len() as _;
    group.bench_function("io_uring_batch", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                {
                    let mut queue = ring.submission();
                    for (i, s) in senders.iter().enumerate() {
                        let entry = opcode::SendMsg::new(types::Fd(s.fd()), &header)
                            .flags((libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) as u32)
                            .build()
                            .user_data(i as u64);
                        // SAFETY: see above; the queue has room for every socket.
                        unsafe { queue.push(&entry) }.expect("room in the queue");
                    }
                }
                ring.submit_and_wait(SOCKETS).expect("submit");
                for done in ring.completion() {
                    assert_eq!(
                        done.result(),
                        unit_len as i32,
                        "socket {}",
                        done.user_data()
                    );
                }
                timed += started.elapsed();
                assert_eq!(drain(&mut receivers), SOCKETS * unit_len);
            }
            timed
        })
    });
    // The last case spaces its passes as 20 writes/s do in `perf subscribe` (one pass
    // per 50 ms): each socket's kernel state has gone cold in between, as in the server.
    for (name, wait, between) in [
        (
            "sendmsg_per_socket_epoll_reader_asleep",
            Wait::Epoll,
            Duration::from_millis(1),
        ),
        (
            "sendmsg_per_socket_uring_poll_reader_asleep",
            Wait::UringPoll,
            Duration::from_millis(1),
        ),
        (
            "sendmsg_per_socket_epoll_reader_asleep_every_50ms",
            Wait::Epoll,
            Duration::from_millis(50),
        ),
    ] {
        if between > Duration::from_millis(1) {
            group.sample_size(10);
        }
        let reader = Reader::start(receivers, wait);
        let mut expected = 0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    timed += send_to_each(&senders, &unit);
                    expected += SOCKETS * unit_len;
                    reader.wait_for(expected);
                    // Let the reader fall asleep again before the next pass.
                    std::thread::sleep(between);
                }
                timed
            })
        });
        receivers = reader.stop();
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
