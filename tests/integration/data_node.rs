//! A fake ConcordKV data node for the health tests: a real loopback listener on a
//! thread of the test process that answers `GET /health` as told (200, 500, never),
//! and can be stopped (the port refuses connections) and restarted on the same port.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use concord_testkit::http::read_request_head;

/// How the node answers `GET /health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    Ok = 0,
    Error = 1,
    /// Accepts the connection, reads the request, never answers.
    Hang = 2,
}

struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    requests: AtomicU64,
}

pub struct DataNode {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl DataNode {
    /// A node on a free loopback port, answering 200.
    pub fn start() -> DataNode {
        DataNode::start_on("127.0.0.1:0".parse().unwrap())
    }

    fn start_on(addr: SocketAddr) -> DataNode {
        let shared = Arc::new(Shared {
            mode: AtomicU8::new(Mode::Ok as u8),
            stop: AtomicBool::new(false),
            requests: AtomicU64::new(0),
        });
        let mut node = DataNode {
            addr,
            shared,
            thread: None,
        };
        node.listen();
        node
    }

    fn listen(&mut self) {
        // std sets SO_REUSEADDR, so the same port can be bound again after a stop.
        let listener = TcpListener::bind(self.addr).expect("bind a data node");
        self.addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        self.shared.stop.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.thread = Some(std::thread::spawn(move || serve(listener, shared)));
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// `GET /health` requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Closes the listener (and every held connection): connections are refused.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("data node thread");
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.listen();
    }

    /// `host:port` as registered in the topology.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for DataNode {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut held: Vec<TcpStream> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(kept) = answer(stream, &shared) {
                    held.push(kept);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Answers one connection; a hanging node hands the socket back to be held open.
fn answer(mut stream: TcpStream, shared: &Shared) -> Option<TcpStream> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    // A TCP probe connects and closes without a request.
    let head = read_request_head(&mut stream)?;
    if head.starts_with("GET /health ") {
        shared.requests.fetch_add(1, Ordering::SeqCst);
    }
    let reply: &[u8] = match shared.mode.load(Ordering::SeqCst) {
        0 => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
        1 => b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\nboom",
        _ => return Some(stream),
    };
    let _ = stream.write_all(reply);
    None
}
