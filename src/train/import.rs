//! `cnnzoo import`: a PyTorch checkpoint made into a run directory.

use std::path::Path;

use burn::tensor::Device;

use super::config::TrainConfig;
use crate::error::{Error, Result};
use crate::interop::{ImportReport, import};
use crate::registry;

/// `cnnzoo import`: loads the checkpoint at `weights` into preset `model` (with `num_classes`
/// classes and `in_channels` input channels, default the preset's) and writes a run directory
/// `out` that `predict`, `eval` and `export` accept: the weights, the preset's preprocessing at
/// that channel count, and its class names.
pub fn import_run(
    weights: &Path,
    model: &str,
    num_classes: Option<usize>,
    in_channels: Option<usize>,
    out: &Path,
    device: &Device,
) -> Result<(TrainConfig, ImportReport)> {
    let entry = registry::find(model)?;
    let classes = num_classes.unwrap_or(entry.num_classes);
    let channels = in_channels.unwrap_or(entry.input[0]);
    if out.join(super::files::CONFIG).exists() {
        return Err(Error::invalid("--out", format!("`{}` already holds a run", out.display())));
    }
    let model_config = entry.config_with(classes, channels);
    let (model, report) = import(weights, entry.name, &model_config, device)?;
    let mut config = TrainConfig::for_model(entry.name, Some([channels, entry.input[1], entry.input[2]]))?;
    config.model_config = model_config;
    config.preprocess = entry.preprocess_for(channels);
    // The preset's labels at its own class count; a 10-class head keeps the data set's names
    // (as trained by cnnzoo); any other count gets `class 0`, `class 1`, ….
    if classes == entry.num_classes {
        config.classes = entry.labels.names();
    } else if classes != config.classes.len() {
        config.classes.clear();
    }
    config.imported_from = Some(weights.display().to_string());
    super::save_run(out, &config, &model)?;
    Ok((config, report))
}
