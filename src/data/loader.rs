//! [`Loader`]: turns a [`Source`] and a per-image transform into batches, decoding and
//! augmenting on worker threads a few batches ahead of the model (PyTorch's `DataLoader` with
//! `num_workers` and `prefetch_factor`), with bounded memory: at most `workers + prefetch`
//! batches exist at once.
//!
//! Randomness does not depend on the number of threads: image `i` of an epoch is transformed
//! with its own generator, seeded from (epoch seed, `i`). Batches come out in order.
//!
//! A bad image (corrupt, unreadable) is skipped and reported with its batch; with `strict`, it
//! stops the epoch with an error naming the file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::image::Image;
use super::source::Source;
use crate::error::{Error, Result};

/// What a loader does to one image: planar `[c, h, w]` values and that shape.
pub type SampleTransform = dyn Fn(Image, &mut StdRng) -> Result<(Vec<f32>, [usize; 3])> + Send + Sync;

/// An image that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where it comes from (a path).
    pub name: String,
    /// Why it could not be used.
    pub reason: String,
}

/// A batch ready for the model.
pub struct Batch {
    /// `[b, c, h, w]` images.
    pub x: Tensor<4>,
    /// `b` labels.
    pub y: Tensor<1, Int>,
    /// Images in the batch (`b`).
    pub len: usize,
    /// Images of this batch that were skipped.
    pub skipped: Vec<Skipped>,
}

/// How batches are made from a source.
#[derive(Clone)]
pub struct Loader {
    source: Arc<dyn Source>,
    transform: Arc<SampleTransform>,
    workers: usize,
    prefetch: usize,
    strict: bool,
    d2l: Option<[usize; 2]>,
}

/// A batch as a worker makes it: plain data, turned into tensors on the consuming thread.
struct Raw {
    data: Vec<f32>,
    shape: [usize; 3],
    labels: Vec<i64>,
    skipped: Vec<Skipped>,
}

impl Loader {
    /// A loader of `source` through `transform` on `workers` threads (0: on the calling thread)
    /// with `prefetch` finished batches waiting at most.
    pub fn new(
        source: Arc<dyn Source>,
        transform: Arc<SampleTransform>,
        workers: usize,
        prefetch: usize,
    ) -> Self {
        Self { source, transform, workers, prefetch: prefetch.max(1), strict: false, d2l: None }
    }

    /// d2l's preprocessing to `size` when the source is an in-memory (Fashion-)MNIST split:
    /// batches are then made whole on the calling thread ([`Split::batch`](super::Split::batch), one resize per
    /// batch, the numbers `train` has always used) instead of image by image.
    pub fn d2l_batched(mut self, size: [usize; 2]) -> Self {
        if self.source.as_split().is_some() {
            self.d2l = Some(size);
        }
        self
    }

    /// With `strict`, a bad image is an error instead of being skipped.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The source.
    pub fn source(&self) -> &Arc<dyn Source> {
        &self.source
    }

    /// The batches of `batches` (lists of image indices), in order, transformed with
    /// generators seeded from `seed` (the epoch's).
    pub fn epoch(&self, batches: Vec<Vec<usize>>, seed: u64, device: &Device) -> Epoch {
        let batches = Arc::new(batches);
        let mut epoch = Epoch {
            loader: self.clone(),
            batches: batches.clone(),
            seed,
            device: device.clone(),
            next: 0,
            pending: BTreeMap::new(),
            rx: None,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        if self.workers == 0 || batches.len() <= 1 || self.d2l.is_some() {
            return epoch;
        }
        let (tx, rx): (SyncSender<(usize, Result<Raw>)>, Receiver<_>) = sync_channel(self.prefetch);
        let counter = Arc::new(AtomicUsize::new(0));
        for _ in 0..self.workers {
            let (loader, batches, counter, stop, tx) =
                (self.clone(), batches.clone(), counter.clone(), epoch.stop.clone(), tx.clone());
            epoch.threads.push(std::thread::spawn(move || {
                loop {
                    let b = counter.fetch_add(1, Ordering::SeqCst);
                    if b >= batches.len() || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let raw = loader.raw(&batches[b], seed);
                    if tx.send((b, raw)).is_err() {
                        return;
                    }
                }
            }));
        }
        epoch.rx = Some(rx);
        epoch
    }

    /// Loads and transforms the images `idx` into one batch of plain data.
    fn raw(&self, idx: &[usize], seed: u64) -> Result<Raw> {
        let mut data = Vec::new();
        let mut labels = Vec::with_capacity(idx.len());
        let mut skipped = Vec::new();
        let mut shape: Option<[usize; 3]> = None;
        for &i in idx {
            let mut rng = StdRng::seed_from_u64(sample_seed(seed, i));
            let sample = self.source.get(i).and_then(|img| (self.transform)(img, &mut rng));
            match sample {
                Ok((values, s)) => {
                    if let Some(first) = shape
                        && first != s
                    {
                        return Err(Error::invalid(
                            "transforms",
                            format!(
                                "give images of different shapes ({first:?} and {s:?} for `{}`): end the \
                                 pipeline with a fixed size (a crop or a resize to height and width)",
                                self.source.name(i)
                            ),
                        ));
                    }
                    shape = Some(s);
                    data.extend_from_slice(&values);
                    labels.push(self.source.label(i) as i64);
                }
                Err(e) if self.strict => return Err(e),
                Err(e) => skipped.push(Skipped { name: self.source.name(i), reason: e.to_string() }),
            }
        }
        Ok(Raw { data, shape: shape.unwrap_or([0, 0, 0]), labels, skipped })
    }
}

/// The seed of image `index`'s generator in an epoch seeded with `seed` (splitmix64 of both).
pub fn sample_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The batches of one epoch, in order (an iterator of `Result<Batch>`); dropping it stops the
/// workers.
pub struct Epoch {
    loader: Loader,
    batches: Arc<Vec<Vec<usize>>>,
    seed: u64,
    device: Device,
    next: usize,
    pending: BTreeMap<usize, Result<Raw>>,
    rx: Option<Receiver<(usize, Result<Raw>)>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Epoch {
    fn next_raw(&mut self) -> Option<Result<Raw>> {
        if self.next >= self.batches.len() {
            return None;
        }
        let b = self.next;
        self.next += 1;
        let Some(rx) = &self.rx else {
            return Some(self.loader.raw(&self.batches[b], self.seed));
        };
        loop {
            if let Some(raw) = self.pending.remove(&b) {
                return Some(raw);
            }
            match rx.recv() {
                Ok((i, raw)) => {
                    self.pending.insert(i, raw);
                }
                Err(_) => {
                    return Some(Err(Error::invalid("loader", "a loader thread stopped unexpectedly")));
                }
            }
        }
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if let (Some(size), Some(split)) = (self.loader.d2l, self.loader.source.as_split()) {
            let idx = self.batches.get(self.next)?;
            self.next += 1;
            let (x, y) = split.batch(idx, size, &self.device);
            return Some(Ok(Batch { x, y, len: idx.len(), skipped: Vec::new() }));
        }
        let raw = match self.next_raw()? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let n = raw.labels.len();
        let [c, h, w] = raw.shape;
        let x = Tensor::<4>::from_data(TensorData::new(raw.data, [n, c, h, w]), &self.device);
        let y = Tensor::<1, Int>::from_data(TensorData::new(raw.labels, [n]), &self.device);
        Some(Ok(Batch { x, y, len: n, skipped: raw.skipped }))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblocks workers waiting to send, then waits for them.
        self.rx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Image `i` is one grey pixel of value `i`; image 3 is "corrupt".
    struct Numbers(usize);

    impl Source for Numbers {
        fn len(&self) -> usize {
            self.0
        }
        fn label(&self, i: usize) -> usize {
            i % 2
        }
        fn get(&self, i: usize) -> Result<Image> {
            if i == 3 {
                return Err(Error::bad_file(format!("img{i}.png"), "is truncated"));
            }
            Image::new(1, 1, 1, vec![i as u8])
        }
        fn name(&self, i: usize) -> String {
            format!("img{i}.png")
        }
    }

    /// The pixel value plus a random draw in [0, 1).
    fn noisy() -> Arc<SampleTransform> {
        Arc::new(|img: Image, rng: &mut StdRng| {
            Ok((vec![f32::from(img.data[0]) + rng.random::<f32>()], [1, 1, 1]))
        })
    }

    /// A batch's values, labels and skipped images.
    type Plain = (Vec<f32>, Vec<i64>, Vec<Skipped>);

    fn run(workers: usize, strict: bool) -> Vec<Result<Plain>> {
        let loader = Loader::new(Arc::new(Numbers(11)), noisy(), workers, 2).strict(strict);
        let batches: Vec<Vec<usize>> =
            (0..11).rev().collect::<Vec<_>>().chunks(3).map(<[usize]>::to_vec).collect();
        loader
            .epoch(batches, 7, &Device::flex())
            .map(|b| {
                b.map(|b| {
                    let x = b.x.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
                    let y = b.y.into_data().convert::<i64>().try_into_vec::<i64>().unwrap();
                    (x, y, b.skipped)
                })
            })
            .collect()
    }

    #[test]
    fn batches_come_in_order_with_the_same_randomness_on_any_number_of_threads() {
        let one: Vec<_> = run(0, false).into_iter().map(|b| b.unwrap()).collect();
        assert_eq!(one.len(), 4);
        // Order kept: 10 9 8 | 7 6 5 | 4 (3 skipped) 2 | 1 0.
        let firsts: Vec<f32> = one.iter().map(|(x, _, _)| x[0].floor()).collect();
        assert_eq!(firsts, [10.0, 7.0, 4.0, 1.0]);
        assert_eq!(one[2].0.len(), 2);
        assert_eq!(one[2].1, [0, 0]);
        assert_eq!(
            one[2].2,
            [Skipped { name: "img3.png".into(), reason: "`img3.png`: is truncated".into() }]
        );
        assert!(one[0].0.iter().any(|v| v.fract() != 0.0), "the transform drew random numbers");
        for workers in [1, 3] {
            let many: Vec<_> = run(workers, false).into_iter().map(|b| b.unwrap()).collect();
            assert_eq!(many, one, "{workers} workers");
        }
    }

    #[test]
    fn strict_stops_at_the_bad_image_and_shapes_must_agree() {
        let out = run(2, true);
        let err = out.iter().find_map(|b| b.as_ref().err()).expect("an error");
        assert!(err.to_string().contains("img3.png"), "{err}");
        let ragged: Arc<SampleTransform> = Arc::new(|img: Image, _: &mut StdRng| {
            Ok((vec![0.0; 1 + img.data[0] as usize % 2], [1, 1, 1 + img.data[0] as usize % 2]))
        });
        let loader = Loader::new(Arc::new(Numbers(4)), ragged, 0, 1);
        let err = loader.epoch(vec![vec![0, 1]], 0, &Device::flex()).next().unwrap().err().unwrap();
        assert!(err.to_string().contains("different shapes"), "{err}");
    }
}
