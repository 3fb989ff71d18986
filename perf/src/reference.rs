//! The reference server: may_minihttp answering every request with the exact status,
//! headers and body concord-topo gave for the scenario's request. Run side by side,
//! it tells how close the server comes to a minimal HTTP server's ceiling.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use may_minihttp::{HttpServer, HttpService, Request, Response};

/// A recorded answer to replay.
#[derive(Clone)]
struct Replay {
    status: usize,
    reason: &'static str,
    headers: Arc<Vec<&'static str>>,
    body: Arc<Vec<u8>>,
}

impl HttpService for Replay {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        rsp.status_code(self.status, self.reason);
        for h in self.headers.iter() {
            rsp.header(h);
        }
        rsp.body_mut().extend_from_slice(&self.body);
        Ok(())
    }
}

/// Serves the answer recorded in `file` (status line, header lines, blank line, body)
/// on `addr` with `workers` worker threads, until killed.
pub fn serve(addr: SocketAddr, file: &Path, workers: usize) {
    let raw = std::fs::read(file).expect("recorded answer");
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a recorded head");
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("HTTP/1.1 200 OK");
    let status: usize = status_line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let reason: &'static str = Box::leak(
        status_line
            .get(13..)
            .unwrap_or("OK")
            .to_string()
            .into_boxed_str(),
    );
    // may_minihttp writes Content-Length, Date and Server itself.
    let skip = [
        "content-length",
        "date",
        "server",
        "transfer-encoding",
        "connection",
    ];
    let headers: Vec<&'static str> = lines
        .filter(|l| {
            let name = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !skip.contains(&name.as_str())
        })
        .map(|l| &*Box::leak(l.to_string().into_boxed_str()))
        .collect();
    let replay = Replay {
        status,
        reason,
        headers: Arc::new(headers),
        body: Arc::new(raw[head_end + 4..].to_vec()),
    };
    may::config().set_workers(workers);
    let server = HttpServer(replay)
        .start(addr)
        .expect("bind the reference port");
    let _ = server.join();
}

/// Records concord-topo's full answer to `request` so the reference can replay it.
pub fn record(addr: SocketAddr, request: &[u8], file: &Path) {
    let close =
        String::from_utf8_lossy(request).replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    let raw =
        concord_testkit::http::exchange_bytes(addr, close.as_bytes(), Duration::from_secs(30))
            .expect("record the answer");
    std::fs::write(file, raw).expect("save the recorded answer");
}
