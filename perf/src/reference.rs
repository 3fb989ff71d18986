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
    let answer = concord_testkit::http::parse_response(&raw).expect("a recorded answer");
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    // The reason phrase, from the status line `HTTP/1.1 200 OK`.
    let status_line = raw.split(|b| *b == b'\r').next().unwrap_or_default();
    let reason = leak(String::from_utf8_lossy(status_line.get(13..).unwrap_or(b"OK")).as_ref());
    // may_minihttp writes Content-Length, Date and Server itself.
    let skip = [
        "content-length",
        "date",
        "server",
        "transfer-encoding",
        "connection",
    ];
    let headers: Vec<&'static str> = answer
        .headers
        .iter()
        .filter(|(name, _)| !skip.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, value)| leak(&format!("{name}: {value}")))
        .collect();
    let replay = Replay {
        status: usize::from(answer.status),
        reason,
        headers: Arc::new(headers),
        body: Arc::new(answer.body),
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
