//! `cnnzoo serve RUN_DIR...`.

use std::net::SocketAddr;
use std::time::Duration;

use cnnzoo::serve::{ModelSpec, Options, Server};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directories to serve, each as RUN_DIR (served under its directory's name) or
    /// NAME=RUN_DIR.
    #[arg(required = true, value_name = "RUN_DIR")]
    runs: Vec<String>,
    /// Address to listen on. Loopback by default; give e.g. 0.0.0.0:8080 to be reachable from
    /// other machines.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Most requests computed as one batch (1 turns micro-batching off).
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Longest a request waits for others to join its batch, from when it was queued (a lone
    /// request never waits).
    #[arg(long, default_value_t = 5)]
    max_delay_ms: u64,
    /// Largest request body accepted (bytes).
    #[arg(long, default_value_t = 16 << 20)]
    max_body_bytes: usize,
    /// Inference threads per model.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Most requests per model in flight; more are answered 503.
    #[arg(long, default_value_t = 256)]
    queue: usize,
    /// Longest a request may take before it is answered 504 (milliseconds).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let models = args.runs.iter().map(|r| ModelSpec::parse(r)).collect::<Result<Vec<_>, _>>()?;
    let opts = Options {
        addr: args.addr,
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        max_body_bytes: args.max_body_bytes,
        workers: args.workers,
        queue: args.queue,
        timeout: Duration::from_millis(args.timeout_ms),
        stop_on_signals: true,
        device: super::device()?,
        ..Options::default()
    };
    let server = Server::start(models.clone(), opts)?;
    let addr = server.addr();
    if !addr.ip().is_loopback() {
        eprintln!("note: listening on {addr}, reachable from other machines (there is no authentication)");
    }
    eprintln!("listening on http://{addr}/ — loading {} model(s)…", models.len());
    let infos = server.wait_ready()?;
    for m in &infos {
        eprintln!(
            "  {} ({}, {}×{}×{}, {} classes, {} parameters) at http://{addr}/v1/models/{}/predict",
            m.name,
            m.model,
            m.input[0],
            m.input[1],
            m.input[2],
            m.classes.len(),
            m.parameters,
            m.name
        );
    }
    eprintln!("ready; Ctrl-C or SIGTERM stops after answering the requests in flight");
    server.wait()?;
    eprintln!("stopped");
    Ok(())
}
