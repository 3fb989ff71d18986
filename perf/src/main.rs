//! `perf`: the load harness of concord-topo. Each scenario starts real
//! servers on loopback, runs bounded in time and count, prints a table and writes a
//! JSON report (and SVG charts) under `--out`. Method and results: perf/README.md.

mod bandwidth;
mod etcd;
mod failover;
mod health;
mod load;
mod procstat;
mod reads;
mod reference;
mod report;
mod server;
mod soak;
mod soak_clients;
mod soak_report;
mod subscribe;
mod subscribers;
mod subscribers_epoll;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "perf", about = "Load harness for concord-topo")]
struct Cli {
    /// Where reports and charts go.
    #[arg(long, global = true, default_value = "perf/results")]
    out: PathBuf,
    /// The concord-topo binary (default: next to this one).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Open-loop reads at a fixed rate (or --max: the peak with P99 under target).
    Read(reads::ReadArgs),
    /// The same load against concord-topo and a may_minihttp server replaying its bytes.
    Reference(reads::ReadArgs),
    /// K SSE subscribers and a stream of writes: commit → delivery latency, loss.
    Subscribe(subscribe::SubscribeArgs),
    /// Server RSS with 1,000 data nodes, 16,384 shards and 1,000 subscribers.
    Memory(subscribe::SubscribeArgs),
    /// Bytes to follow single-shard changes: full snapshots vs incremental events.
    Bandwidth(bandwidth::BandwidthArgs),
    /// The leader probes N simulated data nodes: CPU, probe latency, detection time.
    Health(health::HealthArgs),
    /// A 3-server cluster, repeated leader kills: time until writes and subscribers resume.
    Failover(failover::FailoverArgs),
    /// A 3-server cluster under scheduled faults with routers, writers and readers:
    /// availability, lost writes, linearizability, SSE gaps, RSS and descriptors.
    Soak(soak::SoakArgs),
    /// (internal) the subscriber process of `subscribe --subscriber-cpus`.
    #[command(hide = true)]
    SubscribeWorker(subscribers::WorkerArgs),
    /// (internal) the reference server used by `reference`.
    #[command(hide = true)]
    ServeReference {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        answer: PathBuf,
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let bin = cli.server_bin.as_deref();
    match cli.scenario {
        Scenario::Read(args) => {
            reads::read(&args, bin, &cli.out);
        }
        Scenario::Reference(args) => {
            reads::reference(&args, bin, &cli.out);
        }
        Scenario::Subscribe(args) => {
            let outcome = subscribe::run(&args, bin, &cli.out, "subscribe");
            if outcome.lost + outcome.duplicated > 0 {
                eprintln!(
                    "perf: {} lost and {} duplicated events",
                    outcome.lost, outcome.duplicated
                );
                std::process::exit(1);
            }
        }
        Scenario::Memory(mut args) => {
            args.no_etcd = true;
            if args.nodes == 0 {
                args.nodes = 1_000;
                args.shards = 16_384;
            }
            let outcome = subscribe::run(&args, bin, &cli.out, "memory");
            let rss = outcome.report["server_rss_bytes"]["after_writes"]
                .as_u64()
                .unwrap_or(0);
            println!(
                "  server RSS with {} subscribers: {:.1} MiB",
                args.subscribers,
                rss as f64 / 1048576.0
            );
        }
        Scenario::Bandwidth(args) => {
            bandwidth::run(&args, bin, &cli.out);
        }
        Scenario::Health(args) => {
            health::run(&args, bin, &cli.out);
        }
        Scenario::Failover(args) => failover::run(&args, bin, &cli.out),
        Scenario::Soak(args) => {
            let outcome = soak::run(&args, bin, &cli.out);
            if outcome.failed() {
                eprintln!(
                    "perf soak: {} acknowledged writes lost, {} linearizability violations, {} routers broke the SSE rules, {} whole-run servers grew",
                    outcome.lost, outcome.violations, outcome.sse_broken, outcome.grown
                );
                std::process::exit(1);
            }
        }
        Scenario::SubscribeWorker(args) => subscribers::worker(&args),
        Scenario::ServeReference {
            addr,
            answer,
            workers,
        } => reference::serve(addr, &answer, workers),
    }
}
