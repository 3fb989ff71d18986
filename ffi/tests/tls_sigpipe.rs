//! Writing to a TLS connection the server has closed is an error, not SIGPIPE.
//! C programs (and this binary, below) keep SIGPIPE at its default, which
//! terminates the process; a binary of its own, as it changes that for the
//! whole process.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use concordkv_topology::http::{Conn, Endpoint};
use concordkv_topology::testkit::read_request_head;
use rustls::{ServerConnection, StreamOwned};
use support::pki::Pki;

#[test]
fn writing_to_a_closed_tls_connection_fails_without_a_signal() {
    // What a C program has unless it changed it (Rust's runtime ignores SIGPIPE).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = pki.server_config(false);
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let mut tls = StreamOwned::new(ServerConnection::new(config).unwrap(), tcp);
        read_request_head(&mut tls).unwrap();
        // Dropped without an answer: the socket closes, and later writes get RST.
    });
    let ep = Endpoint::parse(&format!("https://{addr}")).unwrap();
    let mut conn = Conn::connect(&ep, Duration::from_secs(5), Some(&pki.client_config())).unwrap();
    conn.send_get(&ep, "/", &[]).unwrap();
    server.join().unwrap();
    let failed = (0..20).find_map(|_| {
        std::thread::sleep(Duration::from_millis(20));
        conn.send_get(&ep, "/", &[]).err()
    });
    let error = failed.expect("writes to a closed connection keep succeeding");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{error}"
    );
}
