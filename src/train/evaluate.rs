//! Evaluation of a trained model on a split: top-1, top-5, mean loss, per-class accuracy and
//! the confusion matrix.

use std::path::Path;

use burn::tensor::Device;
use serde::Serialize;

use super::data::{LoadOptions, RunData};
use super::run_dir::LoadedRun;
use crate::data::loader::Loader;
use crate::error::{Error, Result};
use crate::model::Model;

/// Results of [`evaluate`].
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Images evaluated.
    pub images: usize,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy per true class.
    pub per_class: Vec<f64>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Unreadable images skipped: where each comes from, and why.
    pub skipped: Vec<String>,
}

/// Evaluates an eval-mode model (`model.valid()`) on the first `n` images of `loader`'s source
/// (`batch` at a time). Unreadable images are skipped and counted (or, for a strict loader, an
/// error).
pub fn evaluate(
    model: &Model,
    loader: &Loader,
    n: usize,
    batch: usize,
    device: &Device,
) -> Result<Evaluation> {
    let mut confusion: Vec<Vec<usize>> = Vec::new();
    let (mut top5, mut loss_sum, mut images, mut skipped) = (0usize, 0.0f64, 0usize, Vec::new());
    let n = n.min(loader.source().len());
    let order: Vec<usize> = (0..n).collect();
    let batches: Vec<Vec<usize>> = order.chunks(batch.max(1)).map(<[usize]>::to_vec).collect();
    for b in loader.epoch(batches, 0, device) {
        let b = b?;
        skipped.extend(b.skipped.iter().map(|s| format!("`{}`: {}", s.name, s.reason)));
        if b.len == 0 {
            continue;
        }
        images += b.len;
        let logits = model.forward(b.x);
        let classes = logits.dims()[1];
        if confusion.is_empty() {
            confusion = vec![vec![0usize; classes]; classes];
        }
        let log_probs = burn::tensor::activation::log_softmax(logits, 1);
        let values: Vec<f32> =
            log_probs.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        let labels: Vec<i64> = b.y.into_data().convert::<i64>().try_into_vec::<i64>().unwrap_or_default();
        for (row, &label) in values.chunks(classes).zip(&labels) {
            let label = label as usize;
            if label >= classes {
                return Err(Error::invalid(
                    "data",
                    format!("label {label} is out of range for a model with {classes} classes"),
                ));
            }
            let mut ranked: Vec<usize> = (0..classes).collect();
            ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            confusion[label][ranked[0]] += 1;
            top5 += usize::from(ranked[..classes.min(5)].contains(&label));
            loss_sum -= f64::from(row[label]);
        }
    }
    let denom = images.max(1) as f64;
    let correct: usize = (0..confusion.len()).map(|i| confusion[i][i]).sum();
    let per_class = confusion
        .iter()
        .enumerate()
        .map(|(i, row)| row[i] as f64 / row.iter().sum::<usize>().max(1) as f64)
        .collect();
    Ok(Evaluation {
        images,
        top1: correct as f64 / denom,
        top5: top5 as f64 / denom,
        loss: loss_sum / denom,
        per_class,
        confusion,
        skipped,
    })
}

/// Evaluates a run on its data set's test split (the first `test_subset` images, or all),
/// found as `train` finds it (`data_dir`, then the usual places).
pub fn evaluate_run(
    run: &LoadedRun,
    data_dir: Option<&Path>,
    test_subset: Option<usize>,
    device: &Device,
) -> Result<Evaluation> {
    let config = &run.config;
    let data = RunData::open(config, data_dir, LoadOptions::default())?;
    evaluate(&run.model, &data.test, test_subset.unwrap_or(usize::MAX), 256, device)
}

impl Evaluation {
    /// Top-1/top-5/loss, per-class accuracy and the confusion matrix as aligned text.
    pub fn to_table(&self, model: &str, classes: &[String]) -> String {
        let name = |i: usize| classes.get(i).map_or("", String::as_str);
        let mut out = format!(
            "{model} on {} test images: top-1 {:.4}  top-5 {:.4}  loss {:.4}\n\nper class:\n",
            self.images, self.top1, self.top5, self.loss
        );
        for (i, acc) in self.per_class.iter().enumerate() {
            out.push_str(&format!("  {:<12} {acc:.3}\n", name(i)));
        }
        out.push_str("\nconfusion (rows: true class, columns: predicted):\n");
        out.push_str(&format!("  {:<12}", ""));
        for i in 0..self.confusion.len() {
            out.push_str(&format!("{i:>6}"));
        }
        out.push('\n');
        for (i, row) in self.confusion.iter().enumerate() {
            out.push_str(&format!("  {:<12}", format!("{i} {}", name(i))));
            for v in row {
                out.push_str(&format!("{v:>6}"));
            }
            out.push('\n');
        }
        out
    }
}
