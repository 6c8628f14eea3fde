//! `GET /metrics` in the Prometheus text format (through the `prometheus` crate, TiKV's
//! client: it writes the classic text exposition format every Prometheus version scrapes).

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The server's counters and histograms (clones share them).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    errors: IntCounterVec,
    latency: HistogramVec,
    batch_size: HistogramVec,
    queue: HistogramVec,
    compute: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub ready: IntGauge,
}

/// Latency buckets in seconds: 1 ms to 30 s.
const SECONDS: [f64; 16] =
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0];

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("metric registered once");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("metric registered once");
            h
        };
        let requests = counter(
            "cnnzoo_requests_total",
            "HTTP requests answered, by endpoint, model and status code.",
            &["endpoint", "model", "status"],
        );
        let errors = counter(
            "cnnzoo_errors_total",
            "HTTP requests answered with a 4xx or 5xx status, by endpoint, model and status code.",
            &["endpoint", "model", "status"],
        );
        let latency = histogram(
            "cnnzoo_request_duration_seconds",
            "Time from receiving a request to answering it.",
            &["endpoint", "model"],
            SECONDS.to_vec(),
        );
        let batch_size = histogram(
            "cnnzoo_batch_size",
            "Requests computed in one forward pass.",
            &["model"],
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
        );
        let queue = histogram(
            "cnnzoo_queue_seconds",
            "Time a prepared request waited in its model's queue.",
            &["model"],
            SECONDS.to_vec(),
        );
        let compute = histogram(
            "cnnzoo_compute_seconds",
            "Time of one forward pass (one batch; explain: forward and backward).",
            &["model"],
            SECONDS.to_vec(),
        );
        let in_flight = IntGaugeVec::new(
            Opts::new("cnnzoo_in_flight_requests", "Requests admitted and not yet answered, by model."),
            &["model"],
        )
        .expect("valid metric");
        registry.register(Box::new(in_flight.clone())).expect("metric registered once");
        let ready = IntGauge::new("cnnzoo_ready", "1 once every model is loaded and warmed up.")
            .expect("valid metric");
        registry.register(Box::new(ready.clone())).expect("metric registered once");
        Self { registry, requests, errors, latency, batch_size, queue, compute, in_flight, ready }
    }

    /// One answered request.
    pub fn request(&self, endpoint: &str, model: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.requests.with_label_values(&[endpoint, model, &status]).inc();
        if status.starts_with('4') || status.starts_with('5') {
            self.errors.with_label_values(&[endpoint, model, &status]).inc();
        }
        self.latency.with_label_values(&[endpoint, model]).observe(elapsed.as_secs_f64());
    }

    /// One request's wait in the queue.
    pub fn queue_seconds(&self, model: &str, waited: Duration) {
        self.queue.with_label_values(&[model]).observe(waited.as_secs_f64());
    }

    /// One forward pass of `size` requests.
    pub fn batch(&self, model: &str, size: usize, compute: Duration) {
        self.batch_size.with_label_values(&[model]).observe(size as f64);
        self.compute.with_label_values(&[model]).observe(compute.as_secs_f64());
    }

    /// Everything, in the text exposition format.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}
