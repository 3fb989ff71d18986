//! The SSE fan-out writer against the real binary: 10,000 streams on one server,
//! hundreds of streams hanging up at once, a stream that never reads beside fast ones, streams joining while versions are
//! being written, and a subscribe that is not the first request of its connection
//! (served by hyper over the same per-subscriber rules).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use concord_testkit::sse::{SseClient, SseDecoder};

use crate::sse::{heavy_batch, paced_writes, register};
use crate::support::Server;

const WAIT: Duration = Duration::from_secs(20);

/// Raises this process's open-file limit to its hard limit (servers it spawns
/// inherit it); returns the new soft limit.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    limit.rlim_cur
}

/// The versions completed on a stream (the `id:` carriers of change events).
fn completed(events: &[concord_testkit::sse::SseEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| e.completed_version())
        .collect()
}

fn metric(server: &Server, name: &str) -> u64 {
    let metrics = server.get("/metrics").text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {metrics}"))
}

/// One raw subscriber of the 10,000: a nonblocking socket and its decoder.
struct Raw {
    socket: TcpStream,
    decoder: SseDecoder,
    versions: Vec<u64>,
    /// The first bytes the server sent, for the message of a stream that ends early.
    first_bytes: Vec<u8>,
}

#[test]
fn ten_thousand_streams_receive_every_version_exactly_once_in_order() {
    const STREAMS: usize = 10_000;
    let limit = raise_fd_limit();
    assert!(
        limit >= STREAMS as u64 + 500,
        "this test needs an open-file hard limit over {} (RLIMIT_NOFILE is {limit})",
        STREAMS + 500
    );
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let request = format!(
        "GET /api/topology/subscribe?sinceVersion={start} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.client
    );
    let mut streams: Vec<Raw> = (0..STREAMS)
        .map(|i| {
            let mut socket = TcpStream::connect_timeout(&server.client, WAIT)
                .unwrap_or_else(|e| panic!("stream {i}: {e}"));
            socket.write_all(request.as_bytes()).unwrap();
            socket.set_nonblocking(true).unwrap();
            Raw {
                socket,
                decoder: SseDecoder::default(),
                versions: Vec::new(),
                first_bytes: Vec::new(),
            }
        })
        .collect();
    let mut last = start;
    for i in 0..12 {
        last = register(&server, &format!("t{i}"));
    }
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0;
    while done < STREAMS && Instant::now() < deadline {
        let mut progressed = false;
        done = 0;
        for (i, raw) in streams.iter_mut().enumerate() {
            if raw.versions.last() == Some(&last) {
                done += 1;
                continue;
            }
            loop {
                match raw.socket.read(&mut buf) {
                    Ok(0) => panic!(
                        "stream {i} ended early at {:?}, after {:?}",
                        raw.versions.last(),
                        String::from_utf8_lossy(&raw.first_bytes)
                    ),
                    Ok(n) => {
                        progressed = true;
                        let room = 512usize.saturating_sub(raw.first_bytes.len());
                        raw.first_bytes.extend_from_slice(&buf[..n.min(room)]);
                        raw.decoder.feed(&buf[..n]).unwrap();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("stream {i}: {e}"),
                }
            }
            while let Some(event) = raw.decoder.next_event().unwrap() {
                raw.versions.extend(event.completed_version());
            }
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let expected: Vec<u64> = ((start + 1)..=last).collect();
    for (i, raw) in streams.iter().enumerate() {
        assert_eq!(raw.decoder.status(), Some(200), "stream {i}");
        assert_eq!(
            raw.versions, expected,
            "stream {i}: every version once, in order"
        );
    }
    assert_eq!(
        metric(&server, "concord_sse_subscribers"),
        STREAMS as u64,
        "every stream is still open"
    );
    drop(streams);
}

#[test]
fn hundreds_of_streams_hanging_up_at_once_are_all_closed_and_the_server_answers() {
    // More than one epoll batch (256) on each executor, under the per-address cap.
    const STREAMS: usize = 900;
    raise_fd_limit();
    let server = Server::start(&["--dev"]);
    let request = format!(
        "GET /api/topology/subscribe?sinceVersion={} HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.version(),
        server.client
    );
    let streams: Vec<TcpStream> = (0..STREAMS)
        .map(|i| {
            let mut socket = TcpStream::connect_timeout(&server.client, WAIT)
                .unwrap_or_else(|e| panic!("stream {i}: {e}"));
            socket.write_all(request.as_bytes()).unwrap();
            socket
        })
        .collect();
    concord_testkit::wait_for(WAIT, "every stream open", || {
        (metric(&server, "concord_sse_subscribers") == STREAMS as u64).then_some(())
    });
    drop(streams);
    // Every hang-up is seen and closed, and the executors go on serving: a writer
    // that kept asking epoll for the same level-triggered hang-ups span forever here.
    concord_testkit::wait_for(WAIT, "every stream closed", || {
        (metric(&server, "concord_sse_subscribers") == 0).then_some(())
    });
    for _ in 0..20 {
        assert_eq!(server.get("/api/topology/version").status, 200);
    }
}

/// Every stream of `subs` completes `version` (and ends its reading there).
fn all_reach(subs: &mut [SseClient], version: u64) {
    for (i, sub) in subs.iter_mut().enumerate() {
        let events = sub
            .events_through(version, WAIT)
            .unwrap_or_else(|| panic!("stream {i} got version {version}"));
        assert_eq!(completed(&events).last(), Some(&version), "stream {i}");
    }
}

#[test]
fn a_stream_that_never_reads_is_cut_off_and_holds_no_one_back() {
    let queue = 8;
    let server = Server::with_config(
        &format!("topology:\n  notifications:\n    subscriber_queue: {queue}\n    event_buffer_size: 100000\nhttp:\n  max_body_bytes: 16777216\n"),
        &["--dev"],
    );
    let start = server.version();
    let path = format!("/api/topology/subscribe?sinceVersion={start}");
    let mut slow = SseClient::connect(server.client, &path, &[]);
    let mut fast: Vec<SseClient> = (0..8)
        .map(|_| SseClient::connect(server.client, &path, &[]))
        .collect();
    // Fewer versions than the lag bound: the slow stream is blocked but still kept,
    // and every fast stream has every version meanwhile.
    let mut last = start;
    for round in 0..queue - 2 {
        let r = server.send("POST", "/api/topology/batch", &[], &heavy_batch(round));
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json()["version"].as_u64().unwrap();
        all_reach(&mut fast, last);
    }
    assert_eq!(metric(&server, "concord_sse_dropped_total"), 0);
    assert_eq!(metric(&server, "concord_sse_subscribers"), 9);
    // Past the bound, the slow one is cut off; the fast ones go on.
    for round in queue..queue * 3 {
        let r = server.send("POST", "/api/topology/batch", &[], &heavy_batch(round));
        assert_eq!(r.status, 200, "{}", r.text());
        last = r.json()["version"].as_u64().unwrap();
    }
    all_reach(&mut fast, last);
    assert!(metric(&server, "concord_sse_dropped_total") >= 1);
    assert!(
        slow.events_through(last, Duration::from_secs(30)).is_none(),
        "the stream that never read should have been cut off"
    );
}

#[test]
fn streams_joining_while_versions_are_written_resume_exactly() {
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let writer = paced_writes(server.client, "j", 40, Duration::from_millis(10));
    // Streams join at different points of the run, each resuming from the version
    // current when it joins (as a reconnecting EventSource would), or from the start.
    let mut joined = Vec::new();
    for k in 0..12 {
        std::thread::sleep(Duration::from_millis(25));
        let since = if k % 3 == 0 { start } else { server.version() };
        let sub = SseClient::connect(
            server.client,
            "/api/topology/subscribe",
            &[("Last-Event-ID", &since.to_string())],
        );
        assert_eq!(sub.status, 200);
        joined.push((since, sub));
    }
    let written = writer.join().unwrap();
    let last = *written.last().unwrap();
    for (since, mut sub) in joined {
        let events = sub
            .events_through(last, WAIT)
            .unwrap_or_else(|| panic!("the stream from {since} got every version"));
        assert_eq!(
            completed(&events),
            ((since + 1)..=last).collect::<Vec<_>>(),
            "the stream resumed from {since}"
        );
    }
}

#[test]
fn a_subscribe_after_other_requests_on_one_connection_streams_too() {
    let server = Server::start(&["--dev"]);
    let start = server.version();
    let mut sse = SseClient::open_after(
        server.client,
        "/api/topology/version",
        &format!("/api/topology/subscribe?sinceVersion={start}"),
        &[],
        WAIT,
    )
    .expect("a subscribe after a read is answered");
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    let mut last = start;
    for i in 0..5 {
        last = register(&server, &format!("k{i}"));
    }
    let events = sse
        .events_through(last, WAIT)
        .expect("the stream carries every version");
    assert_eq!(completed(&events), ((start + 1)..=last).collect::<Vec<_>>());
}
