//! The training loop: shuffled mini-batches, the optimizer step, per-batch progress,
//! checkpoints every N batches and at each epoch end, evaluation after each epoch, and
//! interruption (a flag set from Ctrl-C) that saves before returning.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use super::config::TrainConfig;
use super::data::RunData;
use super::evaluate::evaluate;
use super::finetune;
use super::run_dir::{self, EpochMetrics, RunState, files};
use crate::error::{Error, Result};

/// How training reports progress.
pub trait Reporter {
    /// A batch finished: `done` of `total` batches, with the epoch's running loss and accuracy.
    fn batch(&mut self, epoch: usize, done: usize, total: usize, loss: f64, acc: f64, images_per_sec: f64);
    /// An epoch finished.
    fn epoch(&mut self, config: &TrainConfig, m: &EpochMetrics);
    /// A message (checkpoint written, resuming …).
    fn note(&mut self, message: &str);
}

/// A reporter that says nothing.
pub struct Silent;

impl Reporter for Silent {
    fn batch(&mut self, _: usize, _: usize, _: usize, _: f64, _: f64, _: f64) {}
    fn epoch(&mut self, _: &TrainConfig, _: &EpochMetrics) {}
    fn note(&mut self, _: &str) {}
}

/// Why [`train`] returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done; final weights in `model.bpk`.
    Finished(Vec<EpochMetrics>),
    /// Stopped by the interrupt flag after saving a checkpoint.
    Interrupted {
        /// 0-based epoch in progress.
        epoch: usize,
        /// Batches done in it.
        batch: usize,
    },
}

/// Options that do not belong in the saved config.
pub struct TrainOptions<'a> {
    /// Device to train on (the autodiff wrapper is added here).
    pub device: Device,
    /// Set from a Ctrl-C handler: stop after the current batch, checkpoint, return.
    pub interrupt: Arc<AtomicBool>,
    /// Write a checkpoint every this many batches as well as at each epoch end (0 = epoch ends only).
    pub checkpoint_every: usize,
    /// Progress sink.
    pub reporter: &'a mut dyn Reporter,
}

/// Starts a new run in `dir` (which must not hold one already) or, with `resume`, continues the
/// run in `dir` from its last checkpoint.
pub fn train(
    config: &TrainConfig,
    data: &RunData,
    dir: &Path,
    resume: bool,
    opts: TrainOptions,
) -> Result<Outcome> {
    config.validate()?;
    let device = opts.device.clone();
    let ad = device.clone().autodiff();
    let entry_name = config.model.as_str();
    let [c, h, w] = config.input;
    let mut model = config.model_config.init(&ad);
    model.check_input(entry_name, [c, h, w], &device)?;
    let mut optim = config.optimizer();
    let mut state = RunState {
        epoch: 0,
        batch: 0,
        loss_sum: 0.0,
        correct: 0,
        seen: 0,
        seconds: 0.0,
        history: vec![],
        skipped: 0,
    };
    let mut from_checkpoint = false;

    // Held until this function returns: one training process per run directory.
    let _lock;
    if resume {
        if !dir.is_dir() {
            return Err(Error::bad_file(dir, "is not a run directory"));
        }
        _lock = run_dir::lock(dir)?;
        // Compared with the caller's own config (which may describe a model of its own making),
        // so parsed as written; `read_config` checks a config that is about to build a model.
        let saved = run_dir::parse_config(dir)?;
        if saved != *config {
            return Err(Error::bad_file(
                dir.join(files::CONFIG),
                format!("describes another run (model `{}`); resume with the same settings", saved.model),
            ));
        }
        if let Some((ckpt, saved_state)) = run_dir::latest_checkpoint(dir)? {
            model = run_dir::load_model(&config.model_config, &ckpt.join(files::CKPT_MODEL), &ad)?;
            optim = run_dir::load_optimizer(&ckpt, optim)?;
            state = saved_state;
            from_checkpoint = true;
            opts.reporter.note(&format!(
                "resuming {} from {} (epoch {}, batch {})",
                config.model,
                ckpt.display(),
                state.epoch + 1,
                state.batch
            ));
        } else {
            opts.reporter.note("no checkpoint yet: starting from the beginning");
        }
    } else {
        if dir.join(files::CONFIG).exists() {
            return Err(Error::invalid(
                "--out",
                format!("`{}` already holds a run; use --resume {0} or another --out", dir.display()),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        _lock = run_dir::lock(dir)?;
        if dir.join(files::CONFIG).exists() {
            return Err(Error::invalid(
                "--out",
                format!("`{}` was just taken by another run", dir.display()),
            ));
        }
        run_dir::write_config(dir, config)?;
    }

    if let (Some(source), false) = (&config.init, from_checkpoint) {
        let (loaded, report) = finetune::init_from(Path::new(source), entry_name, &config.model_config, &ad)?;
        model = loaded;
        for line in report.lines() {
            opts.reporter.note(&format!("--init {source}: {line}"));
        }
    }
    // The head: trained alone (--freeze backbone) or at its own rate (--head-lr).
    let head = (config.freeze_backbone || config.head_lr.is_some())
        .then(|| finetune::head_paths(&config.model_config, &device));
    if let (Some(head), true) = (&head, config.freeze_backbone) {
        model = finetune::freeze_backbone(model, head);
    }
    let head_ids = match (&head, config.head_lr) {
        (Some(head), Some(_)) => Some(finetune::param_ids(&model, head)),
        _ => None,
    };

    let n = config.train_subset.unwrap_or(usize::MAX).min(data.train.source().len());
    let n_test = config.test_subset.unwrap_or(usize::MAX).min(data.test.source().len());
    if n == 0 {
        return Err(Error::invalid("data", "the training split is empty"));
    }
    let steps_per_epoch = n.div_ceil(config.batch_size);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut step = state.epoch * steps_per_epoch + state.batch;

    while state.epoch < config.epochs {
        let epoch = state.epoch;
        // The order depends only on (seed, epoch) and each batch's random draws (dropout, and
        // the lazy initialization at the very first batch) only on (seed, epoch, batch): a
        // resumed run sees the same order and the same dropout masks as a straight one.
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(
            config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9),
        ));
        // Augmentation draws from (seed, epoch, image): the same on resume and on any number of
        // loader threads.
        let batches: Vec<Vec<usize>> =
            order.chunks(config.batch_size).skip(state.batch).map(<[usize]>::to_vec).collect();
        let mut loaded = data.train.epoch(batches, augment_seed(config.seed, epoch), &ad);
        // Seconds the model waited for the loader (this session's part of the epoch).
        let mut waited = 0.0;
        let seconds_before = state.seconds;
        for b in state.batch..steps_per_epoch {
            ad.seed(batch_seed(config.seed, epoch, b));
            if opts.interrupt.load(Ordering::SeqCst) {
                run_dir::checkpoint(dir, &model, &optim, &state)?;
                opts.reporter
                    .note(&format!("interrupted: checkpoint saved at epoch {}, batch {b}", epoch + 1));
                return Ok(Outcome::Interrupted { epoch, batch: b });
            }
            let t0 = Instant::now();
            let lr = config.lr_at(step, steps_per_epoch);
            let Some(batch) = loaded.next() else { break };
            let batch = batch?;
            waited += t0.elapsed().as_secs_f64();
            for s in &batch.skipped {
                state.skipped += 1;
                opts.reporter.note(&format!("skipped training image `{}`: {}", s.name, s.reason));
            }
            let images = batch.len;
            if images == 0 {
                state.batch = b + 1;
                step += 1;
                continue;
            }
            let (x, y) = (batch.x, batch.y);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            if !loss_value.is_finite() {
                return Err(Error::Diverged {
                    epoch: epoch + 1,
                    batch: b + 1,
                    loss: loss_value,
                    lr: short(lr),
                    suggestion: short(config.lr / 10.0),
                });
            }
            let correct = count_correct(logits.detach(), y);
            let mut grads = loss.backward();
            model = match (&head_ids, config.head_lr) {
                (Some(ids), Some(head_lr)) => {
                    let head_grads = GradientsParams::from_params(&mut grads, &model, ids);
                    let rest = GradientsParams::from_module(&mut grads, &model);
                    let model = optim.step(lr * head_lr / config.lr, model, head_grads);
                    optim.step(lr, model, rest)
                }
                _ => {
                    let grads = GradientsParams::from_grads(grads, &model);
                    optim.step(lr, model, grads)
                }
            };
            state.seconds += t0.elapsed().as_secs_f64();
            state.loss_sum += loss_value * images as f64;
            state.correct += correct;
            state.seen += images;
            state.batch = b + 1;
            step += 1;
            let ips = state.seen as f64 / state.seconds.max(1e-9);
            opts.reporter.batch(
                epoch,
                b + 1,
                steps_per_epoch,
                state.loss_sum / state.seen as f64,
                state.correct as f64 / state.seen as f64,
                ips,
            );
            if opts.checkpoint_every > 0 && (b + 1) % opts.checkpoint_every == 0 && b + 1 < steps_per_epoch {
                run_dir::checkpoint(dir, &model, &optim, &state)?;
            }
        }
        drop(loaded);
        let spent = state.seconds - seconds_before;
        if waited > 0.5 && waited > 0.05 * spent {
            opts.reporter.note(&format!(
                "epoch {}: {waited:.1} s of {spent:.1} s spent waiting for images (raise --workers if it grows)",
                epoch + 1
            ));
        }
        // Each epoch's weights are new: its evaluation keeps none of them in the kernels'
        // prepared-weight cache (which is for models that predict image after image).
        let test =
            crate::kernels::cache::bypass(|| evaluate(&model.valid(), &data.test, n_test, 256, &device))?;
        if epoch == 0 {
            for s in &test.skipped {
                state.skipped += 1;
                opts.reporter.note(&format!("skipped evaluation image {s}"));
            }
        }
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            train_loss: state.loss_sum / state.seen.max(1) as f64,
            train_acc: state.correct as f64 / state.seen.max(1) as f64,
            test_acc: test.top1,
            lr: config.lr_at(step.saturating_sub(1), steps_per_epoch),
            train_seconds: state.seconds,
            images_per_sec: state.seen as f64 / state.seconds.max(1e-9),
        };
        opts.reporter.epoch(config, &metrics);
        state.history.push(metrics);
        state = RunState {
            epoch: epoch + 1,
            batch: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            seconds: 0.0,
            history: state.history,
            skipped: state.skipped,
        };
        run_dir::write_metrics(dir, &state.history)?;
        run_dir::write_curves(dir, &config.model, &state.history)?;
        run_dir::checkpoint(dir, &model, &optim, &state)?;
    }
    run_dir::save_model(&model.valid(), &dir.join(files::MODEL))?;
    if state.skipped > 0 {
        opts.reporter.note(&format!(
            "{} unreadable images were skipped over the run (each named above); --strict makes them errors",
            state.skipped
        ));
    }
    Ok(Outcome::Finished(state.history))
}

/// The seed of batch `batch` of `epoch`: `seed` itself for the first batch of the run (where
/// the lazy parameter initialization draws), distinct for every other (epoch, batch).
fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    seed.wrapping_add(((epoch as u64) << 32) | batch as u64)
}

/// The seed of epoch `epoch`'s augmentation (each image's generator derives from it).
fn augment_seed(seed: u64, epoch: usize) -> u64 {
    (seed ^ 0x5851_F42D_4C95_7F2D).wrapping_add((epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// A learning rate as a person writes it: `0.05`, `1e-5`, `1e30`.
fn short(v: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if v != 0.0 && !(1e-4..1e5).contains(&v.abs()) {
        let s = format!("{v:.4e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{exp}", trim(mantissa.to_string()))
    } else {
        trim(format!("{v:.6}"))
    }
}

fn count_correct(logits: Tensor<2>, y: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).flatten::<1>(0, 1);
    pred.equal(y).int().sum().into_scalar::<i64>() as usize
}
