//! `cnnzoo serve`: run directories as an HTTP inference service (axum on tokio).
//!
//! - `POST /v1/models/{name}/predict` — an image (raw body or multipart) → top-k classes.
//! - `POST /v1/models/{name}/explain` — Grad-CAM of the image as a PNG overlay or JSON.
//! - `GET /v1/models`, `GET /healthz` (ready once every model is loaded and warmed up),
//!   `GET /metrics` (Prometheus text format), `GET /` (a web page).
//!
//! Requests are decoded on tokio's blocking pool (at most [`Options::decoders`] at a time, so
//! memory stays bounded) and queued per model; inference runs on plain threads
//! ([`Options::workers`] per model), never on the async ones. A worker takes the first queued
//! request and, while more requests for the model are still being received or decoded, waits
//! for them — up to [`Options::max_batch`] and at most [`Options::max_delay`] after the first
//! was queued — then runs them as one batch. A lone request on an idle worker runs at once.
//! More than [`Options::queue`] requests in a model's queue (received, decoding, waiting or
//! running) are refused with 503; one not answered within [`Options::timeout`] gets 504.

mod batcher;
mod http;
mod metrics;
mod models;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};

pub use models::ModelInfo;

/// How the server runs (`cnnzoo serve`'s flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen (loopback by default; anything else is the caller's explicit choice).
    pub addr: SocketAddr,
    /// Most requests run as one batch (1: no micro-batching).
    pub max_batch: usize,
    /// Longest a queued request waits for others to join its batch.
    pub max_delay: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Inference threads per model.
    pub workers: usize,
    /// Most requests per model in flight (receiving, decoding, queued or running); more get 503.
    pub queue: usize,
    /// Longest a request may take (decoding, queueing and computing); longer gets 504.
    pub timeout: Duration,
    /// Most uploads decoded at once (bounds the memory of decoded images).
    pub decoders: usize,
    /// Stop gracefully on SIGTERM or Ctrl-C.
    pub stop_on_signals: bool,
    /// Where the models compute.
    pub device: burn::tensor::Device,
}

impl Default for Options {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_batch: 16,
            max_delay: Duration::from_millis(5),
            max_body_bytes: 16 << 20,
            workers: 1,
            queue: 256,
            timeout: Duration::from_secs(30),
            decoders: cores.max(2),
            stop_on_signals: false,
            device: burn::tensor::Device::flex(),
        }
    }
}

impl Options {
    fn check(&self) -> Result<()> {
        let positive = |what: &str, v: usize| {
            if v == 0 { Err(Error::invalid(what, "must be at least 1")) } else { Ok(()) }
        };
        positive("--max-batch", self.max_batch)?;
        positive("--max-body-bytes", self.max_body_bytes)?;
        positive("--workers", self.workers)?;
        positive("--queue", self.queue)?;
        positive("--decoders", self.decoders)?;
        if self.timeout.is_zero() {
            return Err(Error::invalid("--timeout-ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// One model to serve: a run directory and the name it is served under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The name in URLs (`/v1/models/{name}/…`).
    pub name: String,
    /// The run directory.
    pub run: PathBuf,
}

impl ModelSpec {
    /// `NAME=RUN_DIR`, or `RUN_DIR` served under its directory's name.
    pub fn parse(s: &str) -> Result<ModelSpec> {
        let (name, run) = match s.split_once('=') {
            Some((name, run)) => (name.to_string(), PathBuf::from(run)),
            None => {
                let run = PathBuf::from(s);
                let name = run
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_default();
                (name, run)
            }
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(Error::invalid(
                "RUN_DIR",
                format!(
                    "`{s}` gives the model name `{name}`; a name is letters, digits, `-`, `_` and `.` \
                     (give one as NAME=RUN_DIR)"
                ),
            ));
        }
        Ok(ModelSpec { name, run })
    }
}

/// Whether the server answers requests yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Models are still loading or warming up.
    Loading,
    /// Every model is loaded and warmed up.
    Ready,
    /// A model could not be loaded; the server stops.
    Failed(String),
    /// Shutting down: in-flight requests finish, new ones are refused.
    Draining,
}

/// What the request handlers share.
struct State {
    opts: Options,
    models: OnceLock<Vec<Arc<models::Served>>>,
    readiness: Mutex<Readiness>,
    draining: AtomicBool,
    metrics: metrics::Metrics,
    decode: tokio::sync::Semaphore,
}

impl State {
    fn readiness(&self) -> Readiness {
        self.readiness.lock().map_or(Readiness::Draining, |r| r.clone())
    }

    fn set_readiness(&self, r: Readiness) {
        if let Ok(mut g) = self.readiness.lock() {
            *g = r;
        }
    }

    fn model(&self, name: &str) -> Option<&Arc<models::Served>> {
        self.models.get()?.iter().find(|m| m.name == name)
    }
}

/// A running server: listening from [`Server::start`] on, answering once ready.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `opts.addr`, then loads and warms up `models` in the background; answers
    /// `/healthz` with 503 until they are ready. A bad run directory is an error here when its
    /// `config.json` cannot be read, else (weights) from [`Server::wait_ready`] / [`Server::wait`].
    pub fn start(models: Vec<ModelSpec>, opts: Options) -> Result<Server> {
        opts.check()?;
        if models.is_empty() {
            return Err(Error::invalid("RUN_DIR", "give at least one run directory to serve"));
        }
        for (i, m) in models.iter().enumerate() {
            if models[..i].iter().any(|o| o.name == m.name) {
                return Err(Error::invalid(
                    "RUN_DIR",
                    format!("two models are named `{}`; name them apart with NAME=RUN_DIR", m.name),
                ));
            }
            crate::train::read_config(&m.run)?;
        }
        let listener = std::net::TcpListener::bind(opts.addr)
            .map_err(|e| Error::invalid("--addr", format!("cannot listen on {}: {e}", opts.addr)))?;
        listener.set_nonblocking(true).map_err(|e| Error::invalid("--addr", e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| Error::invalid("--addr", e.to_string()))?;
        let state = Arc::new(State {
            decode: tokio::sync::Semaphore::new(opts.decoders),
            opts,
            models: OnceLock::new(),
            readiness: Mutex::new(Readiness::Loading),
            draining: AtomicBool::new(false),
            metrics: metrics::Metrics::new(),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread_state = state.clone();
        let thread = std::thread::Builder::new()
            .name("cnnzoo-serve".into())
            .spawn(move || run(listener, thread_state, models, stop_rx))
            .map_err(|e| Error::invalid("serve", format!("cannot start the server thread: {e}")))?;
        Ok(Server { addr, state, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The address listened on (with the port chosen when `--addr` gave port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the server is loading, ready, failed or draining.
    pub fn readiness(&self) -> Readiness {
        self.state.readiness()
    }

    /// Blocks until every model is loaded and warmed up (the load error, if one failed).
    pub fn wait_ready(&self) -> Result<Vec<ModelInfo>> {
        loop {
            match self.state.readiness() {
                Readiness::Ready => {
                    let models = self.state.models.get().map(Vec::as_slice).unwrap_or_default();
                    return Ok(models.iter().map(|m| m.info()).collect());
                }
                Readiness::Failed(message) => return Err(Error::invalid("RUN_DIR", message)),
                Readiness::Draining => return Err(Error::invalid("serve", "the server stopped")),
                Readiness::Loading => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Stops gracefully: no new connections, in-flight requests finish; then returns.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join()
    }

    /// Blocks until the server stops (a signal with [`Options::stop_on_signals`], or a model
    /// that could not be loaded: then its error).
    pub fn wait(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::invalid("serve", "the server thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.join();
    }
}

/// The server thread: a tokio runtime serving `listener` until stopped.
fn run(
    listener: std::net::TcpListener,
    state: Arc<State>,
    specs: Vec<ModelSpec>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(state.opts.decoders.min(4))
        .thread_name("cnnzoo-http")
        .enable_all()
        .build()
        .map_err(|e| Error::invalid("serve", format!("cannot start the async runtime: {e}")))?;
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    // Models load on their own thread; the server answers (`/healthz`: loading) meanwhile.
    let loader_state = state.clone();
    let loader = std::thread::Builder::new()
        .name("cnnzoo-load".into())
        .spawn(move || match models::load_all(&specs, &loader_state.opts, &loader_state.metrics) {
            Ok(served) => {
                let _ = loader_state.models.set(served);
                loader_state.metrics.ready.set(1);
                loader_state.set_readiness(Readiness::Ready);
            }
            Err(e) => {
                loader_state.set_readiness(Readiness::Failed(e.to_string()));
                let _ = failed_tx.send(());
            }
        })
        .map_err(|e| Error::invalid("serve", format!("cannot start the loading thread: {e}")))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::invalid("--addr", e.to_string()))?;
        let app = http::router(state.clone());
        let signals = state.opts.stop_on_signals;
        let shutdown_state = state.clone();
        let shutdown = async move {
            tokio::select! {
                _ = stop => {}
                // (The loader drops its sender unused when every model loaded.)
                Ok(()) = failed_rx => {}
                () = signal(signals) => {}
            }
            shutdown_state.draining.store(true, Ordering::SeqCst);
            if shutdown_state.readiness() == Readiness::Ready {
                shutdown_state.set_readiness(Readiness::Draining);
            }
            shutdown_state.metrics.ready.set(0);
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::invalid("serve", format!("the server failed: {e}")))
    });
    // Every connection is closed: stop the inference workers once their queues are empty.
    let _ = loader.join();
    if let Some(models) = state.models.get() {
        for m in models {
            m.close();
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    match state.readiness() {
        Readiness::Failed(message) => Err(Error::invalid("RUN_DIR", message)),
        _ => Ok(()),
    }
}

/// Resolves on SIGTERM or Ctrl-C when `enabled`, else never.
async fn signal(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
