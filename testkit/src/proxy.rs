//! A test-controlled TCP proxy in front of every server's peer port, to cut links
//! between topology servers the way a network partition does.
//!
//! Every server advertises its proxy's address as its peer address, so all peer
//! traffic passes through here. A connection is attributed to its caller by the
//! `x-concord-from` header of its first request (the peer client sends it on every
//! request), and to its callee by the proxy it arrived at. While a link is cut, its
//! bytes are swallowed, not refused: the caller sees silence and must time out, as
//! in a real partition. A connection that lost bytes stays dead after the heal (its
//! HTTP stream is corrupt); the caller's deadline drops it and it reconnects.
//!
//! Links are directed: [`Partitions::isolate`] cuts both directions between servers,
//! [`Partitions::cut_one_way`] only one (an asymmetric partition); cutting and
//! restoring a link every few hundred milliseconds makes it flap.

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How often blocked threads look at the stop flag and the link table.
const POLL: Duration = Duration::from_millis(20);

/// The link table shared by all proxies of one test, and the proxies' lifetimes.
#[derive(Clone, Default)]
pub struct Partitions {
    /// Cut links, as (caller, callee) Raft ids.
    cut: Arc<Mutex<HashSet<(u64, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl Partitions {
    pub fn new() -> Partitions {
        Partitions::default()
    }

    /// Starts a proxy for the peer port of server `to` at `target`; returns its address.
    pub fn proxy(&self, to: u64, target: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let partitions = self.clone();
        thread::spawn(move || partitions.accept_loop(listener, to, target));
        addr
    }

    /// Cuts every link between `node` and each of `others`, both directions.
    pub fn isolate(&self, node: u64, others: &[u64]) {
        let mut cut = self.cut.lock().unwrap();
        for &other in others.iter().filter(|&&o| o != node) {
            cut.insert((node, other));
            cut.insert((other, node));
        }
    }

    /// Cuts the one link `from` → `to`: connections `from` opens to `to` fall silent
    /// (requests and their answers), while `to` still reaches `from`. An asymmetric
    /// partition: `to` stops hearing `from` but can still call it.
    pub fn cut_one_way(&self, from: u64, to: u64) {
        self.cut.lock().unwrap().insert((from, to));
    }

    /// Restores the one link `from` → `to` (see [`Partitions::cut_one_way`]).
    pub fn restore_one_way(&self, from: u64, to: u64) {
        self.cut.lock().unwrap().remove(&(from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }

    fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cut.lock().unwrap().contains(&(from, to))
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn accept_loop(self, listener: TcpListener, to: u64, target: SocketAddr) {
        while !self.stopped() {
            match listener.accept() {
                Ok((client, _)) => {
                    let partitions = self.clone();
                    thread::spawn(move || partitions.relay(client, to, target));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
                Err(_) => thread::sleep(POLL),
            }
        }
    }

    /// Serves one connection: learn the caller, connect to the callee, pump bytes.
    fn relay(self, client: TcpStream, to: u64, target: SocketAddr) {
        let _ = client.set_nonblocking(false);
        let _ = client.set_read_timeout(Some(POLL));
        let _ = client.set_nodelay(true);
        let (from, head) = match self.read_caller(&client) {
            Some(found) => found,
            None => return,
        };
        let dead = Arc::new(AtomicBool::new(self.is_cut(from, to)));
        if dead.load(Ordering::Relaxed) {
            // Cut from the start: swallow until the caller gives up.
            self.swallow(client);
            return;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
            return;
        };
        let _ = server.set_read_timeout(Some(POLL));
        let _ = server.set_nodelay(true);
        if (&server).write_all(&head).is_err() {
            return;
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => return,
        };
        let back = {
            let partitions = self.clone();
            let dead = dead.clone();
            // Answers travel callee → caller: the same link, cut as a whole.
            thread::spawn(move || partitions.pump(s2, c2, from, to, dead))
        };
        self.pump(client, server, from, to, dead);
        let _ = back.join();
    }

    /// Reads the first request head and returns the caller's id with the bytes read.
    fn read_caller(&self, mut client: &TcpStream) -> Option<(u64, Vec<u8>)> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if self.stopped() || head.len() > 64 * 1024 {
                return None;
            }
            match client.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => return None,
            }
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
                let from = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-concord-from:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                return Some((from, head));
            }
        }
    }

    /// Copies `src` to `dst` until either closes; drops everything once the link is
    /// (or has been) cut.
    fn pump(
        &self,
        mut src: TcpStream,
        mut dst: TcpStream,
        from: u64,
        to: u64,
        dead: Arc<AtomicBool>,
    ) {
        let mut buf = [0u8; 16 * 1024];
        while !self.stopped() {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if self.is_cut(from, to) {
                        dead.store(true, Ordering::Relaxed);
                    }
                    if !dead.load(Ordering::Relaxed) && dst.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        let _ = src.shutdown(Shutdown::Both);
        let _ = dst.shutdown(Shutdown::Both);
    }

    fn swallow(&self, mut client: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        while !self.stopped() {
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    }

    /// Stops every proxy thread (they notice within [`POLL`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
