//! A model's request queue and the workers that drain it in micro-batches.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};

use super::metrics::Metrics;
use crate::data::image::Image;
use crate::error::{Error, Result};
use crate::model::Model;

/// What a request asks of the model.
pub enum Work {
    /// Class probabilities of one prepared image (batched with others).
    Predict { values: Vec<f32> },
    /// Grad-CAM of one prepared image (run alone: it needs a backward pass).
    Explain { values: Vec<f32>, image: Image, class: Option<usize>, layer: String },
}

/// What the model answered.
pub enum Answer {
    /// Softmax probabilities.
    Probabilities(Vec<f32>),
    /// Grad-CAM and the overlay PNG.
    Explanation { cam: Box<crate::visualize::Cam>, png: Vec<u8> },
}

/// An answer with its timings.
pub struct Done {
    pub answer: Answer,
    /// How many requests ran in the same forward pass.
    pub batch: usize,
    /// From queued to computing.
    pub queued: Duration,
    /// The forward (and backward) pass.
    pub compute: Duration,
}

/// A queued request.
pub struct Job {
    pub work: Work,
    pub queued: Instant,
    pub reply: tokio::sync::oneshot::Sender<Result<Done>>,
}

#[derive(Default)]
struct Inner {
    jobs: VecDeque<Job>,
    /// Admitted requests not queued yet (still receiving or decoding): a batch may wait for them.
    arriving: usize,
    /// Admitted requests not answered yet.
    admitted: usize,
    closed: bool,
}

/// A model's queue.
#[derive(Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    ready: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a request unless `limit` are already in flight (then `None`: answer 503).
    pub fn admit(self: &Arc<Self>, limit: usize) -> Option<Ticket> {
        let mut g = self.lock();
        if g.closed || g.admitted >= limit {
            return None;
        }
        g.admitted += 1;
        g.arriving += 1;
        Some(Ticket { queue: self.clone(), arriving: true })
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().admitted
    }

    /// No more work: workers finish what is queued, then stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// An admitted request's place; dropping it (answered, failed or timed out) frees the place.
pub struct Ticket {
    queue: Arc<Queue>,
    arriving: bool,
}

impl Ticket {
    /// Queues the request's work; the answer comes on the returned receiver.
    pub fn submit(&mut self, work: Work) -> tokio::sync::oneshot::Receiver<Result<Done>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let mut g = self.queue.lock();
        if self.arriving {
            self.arriving = false;
            g.arriving -= 1;
        }
        g.jobs.push_back(Job { work, queued: Instant::now(), reply });
        drop(g);
        self.queue.ready.notify_all();
        rx
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut g = self.queue.lock();
        if self.arriving {
            g.arriving -= 1;
        }
        g.admitted -= 1;
        drop(g);
        // A worker waiting for this request to arrive need not wait any longer.
        self.queue.ready.notify_all();
    }
}

/// One inference thread of a model.
pub struct Worker {
    pub queue: Arc<Queue>,
    pub model: Model,
    /// Registry name (for the forward pass).
    pub name: String,
    /// Served name (for metrics).
    pub label: String,
    /// The `[c, h, w]` of one prepared image.
    pub input: [usize; 3],
    pub max_batch: usize,
    pub max_delay: Duration,
    pub metrics: Metrics,
    /// Where the model computes.
    pub device: Device,
}

impl Worker {
    /// Takes work until the queue is closed and empty.
    pub fn run(self) {
        let device = self.device.clone();
        while let Some(batch) = self.next_batch() {
            // A request that timed out (its receiver dropped) is not computed.
            let batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
            if batch.is_empty() {
                continue;
            }
            let started = Instant::now();
            for j in &batch {
                self.metrics.queue_seconds(&self.label, started - j.queued);
            }
            match &batch[0].work {
                Work::Explain { .. } => self.explain(batch, started, &device),
                Work::Predict { .. } => self.predict(batch, started, &device),
            }
        }
    }

    /// The next batch: the first queued job, plus (for predictions) the predictions queued
    /// now or arriving before the first job's deadline, up to `max_batch`. `None` when closed.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let q = &self.queue;
        let mut g = q.lock();
        let first = loop {
            if let Some(job) = g.jobs.pop_front() {
                break job;
            }
            if g.closed {
                return None;
            }
            g = q.ready.wait(g).unwrap_or_else(std::sync::PoisonError::into_inner);
        };
        if matches!(first.work, Work::Explain { .. }) {
            return Some(vec![first]);
        }
        let deadline = first.queued + self.max_delay;
        let mut batch = vec![first];
        loop {
            // Predictions already queued join; explanations keep their places.
            let mut i = 0;
            while batch.len() < self.max_batch && i < g.jobs.len() {
                if matches!(g.jobs[i].work, Work::Predict { .. }) {
                    if let Some(job) = g.jobs.remove(i) {
                        batch.push(job);
                    }
                } else {
                    i += 1;
                }
            }
            // Wait only for requests already on their way: a lone request never waits.
            let now = Instant::now();
            if batch.len() >= self.max_batch || g.arriving == 0 || g.closed || now >= deadline {
                return Some(batch);
            }
            g = q.ready.wait_timeout(g, deadline - now).map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    fn predict(&self, batch: Vec<Job>, started: Instant, device: &Device) {
        let n = batch.len();
        let mut values = Vec::new();
        for job in &batch {
            if let Work::Predict { values: v } = &job.work {
                values.extend_from_slice(v);
            }
        }
        let per = values.len() / n.max(1);
        let result = guarded(|| {
            let [c, h, w] = self.input_shape(per)?;
            let x = Tensor::<4>::from_data(TensorData::new(values, [n, c, h, w]), device);
            crate::predict::probabilities(self.model.try_forward(&self.name, x)?)
        });
        let compute = started.elapsed();
        self.metrics.batch(&self.label, n, compute);
        match result {
            Ok(rows) if rows.len() == n => {
                for (job, probs) in batch.into_iter().zip(rows) {
                    let queued = started - job.queued;
                    let done = Done { answer: Answer::Probabilities(probs), batch: n, queued, compute };
                    let _ = job.reply.send(Ok(done));
                }
            }
            Ok(rows) => fail(batch, &format!("the model answered {} rows for a batch of {n}", rows.len())),
            Err(e) => fail(batch, &e.to_string()),
        }
    }

    fn explain(&self, batch: Vec<Job>, started: Instant, device: &Device) {
        for job in batch {
            let Work::Explain { values, image, class, layer } = &job.work else { continue };
            let result = guarded(|| {
                let [c, h, w] = self.input_shape(values.len())?;
                let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, c, h, w]), device);
                let cam = crate::visualize::grad_cam(&self.model, &self.name, x, layer, *class, device)?;
                let png = crate::visualize::overlay_png(image, &cam.gradcam, [h, w])?;
                Ok(Answer::Explanation { cam: Box::new(cam), png })
            });
            let compute = started.elapsed();
            self.metrics.batch(&self.label, 1, compute);
            let queued = started - job.queued;
            let _ = job.reply.send(result.map(|answer| Done { answer, batch: 1, queued, compute }));
        }
    }

    /// The `[c, h, w]` of one image of `len` values (the model's input, which `prepare` checked).
    fn input_shape(&self, len: usize) -> Result<[usize; 3]> {
        let [c, h, w] = self.input;
        if c * h * w != len {
            return Err(Error::invalid("request", format!("{len} values do not make a {c}×{h}×{w} image")));
        }
        Ok([c, h, w])
    }
}

/// Runs `f`, turning a panic into an error so that one bad request cannot stop a worker.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(Error::invalid("inference", "the model panicked on this input")))
}

fn fail(batch: Vec<Job>, message: &str) {
    for job in batch {
        let _ = job.reply.send(Err(Error::invalid("inference", message)));
    }
}
