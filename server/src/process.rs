//! Process wiring: one topology server = a locked data directory, the control
//! executor (Raft + the service's dispatcher + HTTP) and N-1 further HTTP executors.
//!
//! Start-up: the serving executors bind the client port at once, while the control
//! executor opens storage and starts Raft; until the state this server had durably
//! is applied again, reads and SSE answer 503 "loading" and `/readyz` 503
//! ([`tracking`] sets the floor the executors compare with), so no client ever sees
//! a state older than one this server had on disk. If the control executor stops or
//! Raft fails, the process exits non-zero (see [`tracking`]).

mod memory;
mod reload;
mod tracking;

pub use tracking::EXIT_RAFT_STOPPED;

use std::fs::File;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, LiveCredentials, PeerSecret, SampleTopology};
use crate::dispatch::Dispatcher;
use crate::executor::{ExecutorContext, Shared};
use crate::metrics::ExecutorMetrics;
use crate::net::capacity::Capacity;
use crate::node_health::HealthHandle;
use crate::notify::{leader_loss, subscribers};
use crate::publish::{follow_hub, LocalPublished, PublicationHub, Published, RaftView};
use crate::raft::peer_server::{self, PeerServerOptions};
use crate::raft::{RaftHandle, RaftOptions};
use crate::service::{Call, ServiceClient};
use concord_model::{Command, NodeSpec, Operation, TopologyState};

/// Why the server could not start (each a one-line reason for the operator).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("data directory {path} is locked by another concord-topo process")]
    DataDirLocked { path: String },
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start executor {index}: {message} (glommio needs io_uring and enough locked memory: check `ulimit -l` and lower io_memory)")]
    Executor { index: usize, message: String },
    #[error("raft failed to start: {0}")]
    Raft(String),
    #[error(transparent)]
    PeerSecret(#[from] crate::config::secret::GenerateError),
    #[error("{0}")]
    Tls(crate::config::ConfigError),
}

/// Holds an exclusive lock on the data directory for the life of the process.
fn lock_data_dir(config: &Config) -> Result<File, StartError> {
    let path = config.data_dir.display().to_string();
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: path.clone(),
        source,
    })?;
    let lock =
        File::create(config.data_dir.join("LOCK")).map_err(|source| StartError::DataDir {
            path: path.clone(),
            source,
        })?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::DataDirLocked { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir { path, source }),
    }
}

/// Checks that nobody listens on `addr` yet, and resolves port 0 to a real port.
///
/// The executors bind with SO_REUSEPORT, which would silently share a port with another
/// process of the same user; this plain bind (no SO_REUSEPORT) fails instead. A port
/// still held for a moment by a killed predecessor (the kernel tears io_uring rings
/// down asynchronously, and with them its listening socket) is retried briefly.
fn claim_port(what: &'static str, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let deadline = std::time::Instant::now() + PORT_RETRY;
    loop {
        match std::net::TcpListener::bind(addr).and_then(|probe| probe.local_addr()) {
            Ok(bound) => return Ok(bound),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(source) => return Err(StartError::Bind { what, addr, source }),
        }
    }
}

/// How long a busy port is retried at start.
const PORT_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// Raises the soft open-files limit to the hard one: every SSE subscriber and every
/// keep-alive client holds a descriptor, and 10,000 of them exceed the usual 1,024.
/// Warns when even that is below what the connection caps allow (the port would stop
/// accepting before its cap could answer 503).
fn raise_open_files_limit(config: &Config) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                ..limit
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                tracing::warn!("could not raise the open-files limit");
            }
        }
    }
    // Files, the Raft log, outgoing peer and probe connections: a few hundred at most.
    let needed = config.http.max_connections + config.raft.max_peer_connections + 512;
    if (limit.rlim_cur as u128) < needed as u128 {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            "the open-files limit is below http.max_connections + raft.max_peer_connections: \
             raise it (LimitNOFILE=, ulimit -n) or lower those caps"
        );
    }
}

/// With SIGXFSZ ignored, a write past the file-size limit (`ulimit -f`) fails with
/// EFBIG like a full disk does, so Raft reports it and the server says why it stops,
/// instead of the kernel killing the process without a word.
fn ignore_file_size_signal() {
    // SAFETY: installs the "ignore" disposition; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Runs the server until the process is killed, or exits it when Raft stops.
pub fn run(mut config: Config) -> Result<(), StartError> {
    let reload_signal = reload::ReloadSignal::install();
    // Says so in the log at once when a test broke this server on purpose.
    #[cfg(debug_assertions)]
    crate::debug_break::active();
    raise_open_files_limit(&config);
    ignore_file_size_signal();
    let _lock = lock_data_dir(&config)?;
    if config.peer_secret.is_none() {
        if config.is_single_server() {
            // Even a development server never takes an unauthenticated peer RPC.
            config.peer_secret = Some(PeerSecret::generated(&config.data_dir)?);
        } else {
            tracing::warn!(
                "insecure: no peer secret, the peer port accepts Raft messages from anyone who reaches it"
            );
        }
    }
    config.client_addr = claim_port("client", config.client_addr)?;
    config.peer_addr = claim_port("peer", config.peer_addr)?;
    let executors = config.executor_count();
    memory::limit_arenas(executors);
    memory::spawn_trimmer();
    let metrics: Vec<Arc<ExecutorMetrics>> = (0..executors).map(|_| Default::default()).collect();
    let empty = Arc::new(Published::build(
        TopologyState::new(config.topology.notifications.event_buffer_size),
        0,
        None,
    ));
    let (hub, ticks) = PublicationHub::new(empty, executors);
    let (control_tx, control_rx) = async_channel::unbounded();
    let service = ServiceClient::new(control_tx, config.raft.max_pending_operations);
    let connections = Capacity::new(config.http.max_connections);
    let peer_connections = Capacity::new(config.raft.max_peer_connections);
    let credentials = Arc::new(LiveCredentials::start(&config).map_err(StartError::Tls)?);
    let shared = Arc::new(Shared {
        cache_control: Shared::cache_control_for(&config),
        config,
        service,
        hub: Arc::new(hub),
        raft: RaftView::default(),
        metrics,
        readiness: Default::default(),
        sse_subscribers: Default::default(),
        sse_per_address: Default::default(),
        probes: Default::default(),
        connections,
        peer_connections,
        refusals: Default::default(),
        credentials,
    });
    if let Some(signal) = reload_signal {
        signal.serve(shared.clone());
    }
    let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();

    let mut handles = Vec::new();
    for (index, ticks) in ticks.into_iter().enumerate() {
        let shared = shared.clone();
        let control_rx = control_rx.clone();
        let started = started_tx.clone();
        let builder = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("concord-exec-{index}"))
            .io_memory(shared.config.io_memory)
            .preempt_timer(PREEMPT_EVERY);
        let handle = builder
            .spawn(move || async move {
                if index == 0 {
                    match start_control(shared.clone(), control_rx).await {
                        Ok(()) => {
                            let _ = started.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    }
                }
                serve_http(index, shared, ticks).await;
            })
            .map_err(|e| StartError::Executor {
                index,
                message: e.to_string(),
            })?;
        handles.push(handle);
    }
    drop(started_tx);
    match started_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            return Err(StartError::Executor {
                index: 0,
                message: "the control executor stopped during start-up".into(),
            })
        }
    }
    print_banner(&shared.config, executors);
    // The control executor runs for the life of the process: if it ends (a panic in
    // Raft or a task beside it), nothing applies or commits any more.
    let reason = match handles.remove(0).join() {
        Ok(()) => "the control executor stopped".to_string(),
        Err(e) => format!("the control executor failed: {e}"),
    };
    if let Some(grace) = tracking::announce_stop(&shared, reason) {
        std::thread::sleep(grace);
    }
    std::process::exit(EXIT_RAFT_STOPPED);
}

fn print_banner(config: &Config, executors: usize) {
    let scheme = if config.tls.cert_file.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{}", config.client_addr);
    println!(
        "concord-topo node {} serving on {base} ({executors} executors), peers on {}, data in {}",
        config.node_id,
        config.peer_addr,
        config.data_dir.display()
    );
    println!("  try: curl {base}/api/topology/version");
    println!("       curl {base}/api/topology/shards");
    println!("       curl {base}/api/topology/snapshot");
    println!("       curl {base}/api/cluster/status");
    println!("       curl {base}/metrics");
}

/// One executor's HTTP service, listening at once (reads are refused, "loading", until
/// its publication reaches the durable floor: `Readiness::admit`).
async fn serve_http(index: usize, shared: Arc<Shared>, ticks: async_channel::Receiver<()>) {
    let local = Rc::new(LocalPublished::new(shared.hub.clone()));
    glommio::spawn_local(follow_hub(shared.hub.clone(), ticks, local.clone())).detach();
    let ctx = Rc::new(ExecutorContext {
        metrics: shared.metrics[index].clone(),
        shared: shared.clone(),
        published: local,
        cache: Default::default(),
    });
    glommio::spawn_local(subscribers::watchdog(ctx.clone())).detach();
    glommio::spawn_local(crate::notify::fanout::writer(ctx.clone())).detach();
    let addr = shared.config.client_addr;
    if let Err(e) = crate::http::server::serve(addr, ctx).await {
        eprintln!("concord-topo: executor {index} cannot listen on {addr}: {e}");
        std::process::exit(1);
    }
}

/// How long an executor runs tasks before it looks at its timers and completions
/// again (glommio's default is 100 ms). Raft's heartbeat timers on executor 0 wait
/// that long behind a busy client port; 10 ms keeps them well inside a heartbeat
/// interval for one extra `io_uring_enter` per 10 ms of busy time.
const PREEMPT_EVERY: std::time::Duration = std::time::Duration::from_millis(10);

/// Starts Raft on this (the control) executor and the tasks that serve it.
async fn start_control(
    shared: Arc<Shared>,
    calls: async_channel::Receiver<Call>,
) -> Result<(), StartError> {
    let config = &shared.config;
    let hub = shared.hub.clone();
    let publish = Box::new(move |state: &TopologyState, applied_index: u64| {
        let previous = hub.latest();
        hub.publish(Arc::new(Published::build(
            state.clone(),
            applied_index,
            Some(&previous),
        )));
    });
    let raft_options = RaftOptions::from_config(
        config,
        shared.credentials.clone(),
        shared.raft.lost_log_counter(),
    );
    let raft = RaftHandle::start(raft_options, publish)
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
    let raft = Rc::new(raft);
    let health = HealthHandle::new(shared.clone());
    let dispatcher = Rc::new(Dispatcher::new(
        raft.clone(),
        health.clone(),
        config.http.write_timeout,
        config.http.request_timeout,
    ));
    // Serve peers before initialising: the other members' votes must reach us.
    let peer_listener = peer_server::bind(config.peer_addr).map_err(|source| StartError::Bind {
        what: "peer",
        addr: config.peer_addr,
        source,
    })?;
    let peer_options = PeerServerOptions {
        leader: Some(dispatcher.clone()),
        connections: shared.peer_connections.clone(),
        ..PeerServerOptions::from_config(config, shared.credentials.clone())
    };
    glommio::spawn_local(peer_server::serve(
        peer_listener,
        raft.clone(),
        peer_options,
    ))
    .detach();
    raft.initialize(config.members())
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

    glommio::spawn_local(tracking::track_raft(raft.clone(), shared.clone())).detach();
    glommio::spawn_local(tracking::report_not_ready(shared.clone())).detach();
    glommio::spawn_local(leader_loss::watch(raft.clone(), shared.clone())).detach();
    if let Some(sample) = config.sample_topology.clone() {
        glommio::spawn_local(bootstrap_sample(raft.clone(), shared.clone(), sample)).detach();
    }
    glommio::spawn_local(crate::node_health::supervise(
        raft.clone(),
        shared.clone(),
        health,
    ))
    .detach();
    glommio::spawn_local(dispatcher.serve(calls)).detach();
    Ok(())
}

/// Bootstraps the sample topology once, when this server leads a brand-new cluster.
async fn bootstrap_sample(raft: Rc<RaftHandle>, shared: Arc<Shared>, sample: SampleTopology) {
    let mut watch = raft.watch();
    loop {
        let view = watch.summary();
        if shared.hub.latest().version > 0 {
            return;
        }
        if view.is_leader {
            let nodes = (0..sample.nodes)
                .map(|i| NodeSpec {
                    node_id: format!("node-{}", i + 1),
                    address: format!("127.0.0.1:{}", u32::from(sample.base_port) + i),
                })
                .collect();
            let command = Command {
                timestamp_ms: crate::net::now_ms(),
                // Only on an empty topology: a concurrent writer wins, we do nothing.
                expected_version: Some(0),
                ops: vec![Operation::Bootstrap {
                    nodes,
                    shard_count: sample.shards,
                    replication_factor: sample.replication_factor,
                }],
            };
            match raft.write(command).await {
                Ok(version) => tracing::info!(version, "bootstrapped the sample topology"),
                Err(e) => tracing::info!(error = %e, "sample topology not bootstrapped"),
            }
            return;
        }
        if !watch.changed().await {
            return;
        }
    }
}
