//! The subscriber side of `perf subscribe`: K streaming connections (concord-topo SSE
//! subscriptions or etcd watches) on one thread, each recording which version arrived
//! when ([`procstat::mono_ns`]): asleep in `epoll_wait` ([`Io::Epoll`], the default, in
//! `subscribers_epoll`) or on one glommio executor ([`Io::Uring`], as figures before
//! `--subscriber-io` were taken). They run either on a thread of the
//! harness or in a child process (this binary re-invoked as `subscribe-worker`) so
//! that a pinned server's cost and the harness' cost are measured apart.
//!
//! Child protocol, one line each way at a time: the child prints `connected` once
//! every stream is open; the parent writes `target <version>` (the last version
//! written) or closes stdin; the child prints `done <cpu seconds>`, then one
//! `a <index> <version> <ns> …` line per subscriber and `end`.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_testkit::SseDecoder;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::etcd::WatchDecoder;
use crate::procstat::{self, mono_ns};

/// Per subscriber, (version, arrival in [`mono_ns`]) in arrival order.
pub type Arrivals = Vec<Vec<(u64, u64)>>;

/// What each subscriber streams.
#[derive(Clone, Debug)]
pub enum Feed {
    /// `GET /api/topology/subscribe?sinceVersion=…` on concord-topo.
    Concord { since: u64 },
    /// `POST /v3/watch` on etcd's JSON gateway, for every key under `prefix`.
    Etcd { prefix: String },
}

impl Feed {
    pub(crate) fn request(&self, addr: SocketAddr) -> String {
        match self {
            Feed::Concord { since } => format!(
                "GET /api/topology/subscribe?sinceVersion={since} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            ),
            Feed::Etcd { prefix } => {
                let body = crate::etcd::watch_request(prefix);
                format!(
                    "POST /v3/watch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            }
        }
    }

    pub(crate) fn decoder(&self) -> Decoder {
        match self {
            Feed::Concord { .. } => Decoder::Sse(SseDecoder::default()),
            Feed::Etcd { .. } => Decoder::Etcd(WatchDecoder::default()),
        }
    }

    fn to_args(&self) -> Vec<String> {
        match self {
            Feed::Concord { since } => vec!["--since".into(), since.to_string()],
            Feed::Etcd { prefix } => vec!["--etcd-prefix".into(), prefix.clone()],
        }
    }
}

/// How the subscribers wait for their sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Io {
    /// One thread asleep in `epoll_wait`, as a thread-per-process client waits.
    Epoll,
    /// One glommio executor: a one-shot io_uring poll per socket.
    Uring,
}

impl Io {
    fn arg(self) -> &'static str {
        match self {
            Io::Epoll => "epoll",
            Io::Uring => "uring",
        }
    }
}

/// One stream's bytes in, completed versions out.
pub(crate) enum Decoder {
    Sse(SseDecoder),
    Etcd(WatchDecoder),
}

impl Decoder {
    pub(crate) fn feed(&mut self, bytes: &[u8], mut version: impl FnMut(u64)) -> io::Result<()> {
        match self {
            Decoder::Sse(d) => {
                d.feed(bytes)?;
                while let Ok(Some(event)) = d.next_event() {
                    if let Some(v) = event.completed_version() {
                        version(v);
                    }
                }
                Ok(())
            }
            Decoder::Etcd(d) => d.feed(bytes, version),
        }
    }

    /// The stream is established (SSE: the head is in; etcd: the watch is created).
    pub(crate) fn ready(&self) -> bool {
        match self {
            Decoder::Sse(d) => d.status().is_some(),
            Decoder::Etcd(d) => d.created(),
        }
    }
}

/// A running set of subscribers.
pub enum Subscribers {
    InProcess {
        runner: Runner,
        connected: Arc<AtomicUsize>,
        target: Arc<AtomicU64>,
        count: usize,
    },
    Child {
        child: Child,
        stdin: Option<ChildStdin>,
        stdout: BufReader<ChildStdout>,
    },
}

/// The thread the in-process subscribers run on.
pub enum Runner {
    Thread(std::thread::JoinHandle<Arrivals>),
    Glommio(glommio::ExecutorJoinHandle<Arrivals>),
}

impl Runner {
    fn join(self) -> Arrivals {
        match self {
            Runner::Thread(t) => t.join().expect("subscribers finished"),
            Runner::Glommio(e) => e.join().expect("subscribers finished"),
        }
    }
}

/// What [`Subscribers::finish`] hands back.
pub struct Finished {
    pub arrivals: Arrivals,
    /// CPU seconds the subscriber process used in total (child mode), if known.
    pub child_cpu_seconds: Option<f64>,
}

impl Subscribers {
    /// Opens `count` streams to `addr`, on a thread here or in a child process (which
    /// inherits the calling thread's CPU mask).
    pub fn start(
        addr: SocketAddr,
        count: usize,
        feed: Feed,
        deadline: Instant,
        in_child: bool,
        io: Io,
    ) -> Subscribers {
        if !in_child {
            let connected = Arc::new(AtomicUsize::new(0));
            let target = Arc::new(AtomicU64::new(u64::MAX));
            let (c2, t2) = (connected.clone(), target.clone());
            let runner = match io {
                Io::Epoll => Runner::Thread(std::thread::spawn(move || {
                    crate::subscribers_epoll::subscribe_all(addr, count, feed, &c2, &t2, deadline)
                })),
                Io::Uring => Runner::Glommio(
                    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                        .io_memory(1 << 20)
                        .spawn(move || async move {
                            subscribe_all(addr, count, feed, c2, t2, deadline).await
                        })
                        .expect("a glommio executor for the subscribers"),
                ),
            };
            return Subscribers::InProcess {
                runner,
                connected,
                target,
                count,
            };
        }
        let limit = deadline.saturating_duration_since(Instant::now());
        let mut child = Command::new(std::env::current_exe().expect("this executable"))
            .arg("subscribe-worker")
            .args(["--addr", &addr.to_string()])
            .args(["--subscribers", &count.to_string()])
            .args(["--time-limit-ms", &limit.as_millis().to_string()])
            .args(["--io", io.arg()])
            .args(feed.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the subscriber process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Subscribers::Child {
            child,
            stdin,
            stdout,
        }
    }

    /// The process the subscribers run in.
    pub fn pid(&self) -> u32 {
        match self {
            Subscribers::InProcess { .. } => std::process::id(),
            Subscribers::Child { child, .. } => child.id(),
        }
    }

    /// Blocks until every stream is open; panics at `deadline`.
    pub fn wait_connected(&mut self, deadline: Instant) {
        match self {
            Subscribers::InProcess {
                connected, count, ..
            } => {
                while connected.load(Ordering::Relaxed) < *count {
                    assert!(
                        Instant::now() < deadline,
                        "subscribers did not all connect in time"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            // The child gives up at the same deadline, closing its stdout.
            Subscribers::Child { stdout, .. } => {
                let line = read_line(stdout);
                assert_eq!(
                    line.trim(),
                    "connected",
                    "subscribers did not all connect in time"
                );
            }
        }
    }

    /// Tells the subscribers to stop once they have `target` (or at their deadline)
    /// and collects what they saw.
    pub fn finish(self, target: u64) -> Finished {
        match self {
            Subscribers::InProcess {
                runner,
                target: goal,
                ..
            } => {
                goal.store(target, Ordering::Relaxed);
                Finished {
                    arrivals: runner.join(),
                    child_cpu_seconds: None,
                }
            }
            Subscribers::Child {
                mut child,
                stdin,
                mut stdout,
            } => {
                if let Some(mut stdin) = stdin {
                    let _ = writeln!(stdin, "target {target}");
                }
                let done = read_line(&mut stdout);
                let cpu = done
                    .strip_prefix("done ")
                    .and_then(|s| s.trim().parse::<f64>().ok());
                let mut arrivals = Vec::new();
                loop {
                    let line = read_line(&mut stdout);
                    match line.trim_end().strip_prefix("a ") {
                        Some(rest) => arrivals.push(parse_arrivals(rest)),
                        None => break,
                    }
                }
                let _ = child.wait();
                Finished {
                    arrivals,
                    child_cpu_seconds: cpu,
                }
            }
        }
    }
}

fn read_line(from: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    from.read_line(&mut line)
        .expect("read the subscriber process");
    line
}

fn parse_arrivals(line: &str) -> Vec<(u64, u64)> {
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1) // the subscriber's index: lines come in order
        .filter_map(|n| n.parse().ok())
        .collect();
    numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

/// The hidden `subscribe-worker` subcommand: the child side of the protocol above.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    addr: SocketAddr,
    #[arg(long)]
    subscribers: usize,
    #[arg(long)]
    time_limit_ms: u64,
    #[arg(long, conflicts_with = "etcd_prefix")]
    since: Option<u64>,
    #[arg(long)]
    etcd_prefix: Option<String>,
    #[arg(long, value_enum, default_value_t = Io::Epoll)]
    io: Io,
}

pub fn worker(args: &WorkerArgs) {
    let deadline = Instant::now() + Duration::from_millis(args.time_limit_ms);
    let feed = match &args.etcd_prefix {
        Some(prefix) => Feed::Etcd {
            prefix: prefix.clone(),
        },
        None => Feed::Concord {
            since: args.since.unwrap_or(0),
        },
    };
    let mut subscribers =
        Subscribers::start(args.addr, args.subscribers, feed, deadline, false, args.io);
    subscribers.wait_connected(deadline);
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "connected");
    let _ = out.flush();
    let mut line = String::new();
    let _ = io::stdin().read_line(&mut line);
    let target = line
        .strip_prefix("target ")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    let finished = subscribers.finish(target);
    let _ = writeln!(out, "done {}", procstat::cpu_seconds(std::process::id()));
    let mut text = String::new();
    for (index, seen) in finished.arrivals.iter().enumerate() {
        use std::fmt::Write as _;
        text.clear();
        let _ = write!(text, "a {index}");
        for (version, at) in seen {
            let _ = write!(text, " {version} {at}");
        }
        let _ = writeln!(out, "{text}");
    }
    let _ = writeln!(out, "end");
    let _ = out.flush();
}

/// Every subscriber until it has seen `target` (once set) or `deadline` passes.
async fn subscribe_all(
    addr: SocketAddr,
    count: usize,
    feed: Feed,
    connected: Arc<AtomicUsize>,
    target: Arc<AtomicU64>,
    deadline: Instant,
) -> Arrivals {
    let arrivals: Rc<RefCell<Arrivals>> = Rc::new(RefCell::new(vec![Vec::new(); count]));
    let mut tasks = Vec::with_capacity(count);
    for index in 0..count {
        let (arrivals, connected, target) = (arrivals.clone(), connected.clone(), target.clone());
        let (request, mut decoder) = (feed.request(addr), feed.decoder());
        tasks.push(glommio::spawn_local(async move {
            let mut stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("subscribe");
            let mut buf = vec![0u8; 16 * 1024];
            let mut counted = false;
            loop {
                let limit = deadline
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(500));
                let n =
                    futures_lite::future::or(async { stream.read(&mut buf).await.ok() }, async {
                        glommio::timer::sleep(limit).await;
                        Some(usize::MAX)
                    })
                    .await;
                match n {
                    Some(0) | None => break,
                    Some(usize::MAX) => {}
                    Some(n) => {
                        let now = mono_ns();
                        // A malformed stream ends this subscriber; what it missed
                        // is counted as lost.
                        let mut seen = arrivals.borrow_mut();
                        if decoder
                            .feed(&buf[..n], |v| seen[index].push((v, now)))
                            .is_err()
                        {
                            break;
                        }
                        if !counted && decoder.ready() {
                            counted = true;
                            connected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                let goal = target.load(Ordering::Relaxed);
                let have = arrivals.borrow()[index].last().map_or(0, |(v, _)| *v);
                if (goal != u64::MAX && have >= goal) || Instant::now() >= deadline {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await;
    }
    Rc::try_unwrap(arrivals)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}
