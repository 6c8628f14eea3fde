//! Fine-tuning: start a run from another run's weights or a PyTorch checkpoint (`--init`),
//! loading every tensor that fits and replacing the classifier for the new class count, and
//! train only the head (`--freeze backbone`) or the head at its own learning rate (`--head-lr`).
//!
//! The *head* is found without a per-family list: it is every parameter whose shape depends on
//! the class count (the model built for `n` and for `n + 1` classes differ exactly there) —
//! torchvision's `fc` / `classifier.6`, d2l's last dense layer, or NiN's whole last block, whose
//! convolutions all have `num_classes` channels.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter};
use burn::tensor::{Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::interop;
use crate::model::{Model, ModelConfig};

/// What `--init` loaded and what it left at its fresh initialization.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InitReport {
    /// Tensors loaded from the source.
    pub loaded: usize,
    /// Model tensors not loaded, each with the reason (all in the head).
    pub not_loaded: Vec<(String, String)>,
    /// Tensors of the source with no place in the model that are expected to have none
    /// (`num_batches_tracked`, GoogLeNet's auxiliary heads).
    pub unused: Vec<String>,
}

impl InitReport {
    /// One line per fact, for the console.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("loaded {} tensors", self.loaded)];
        for (key, why) in &self.not_loaded {
            out.push(format!("not loaded: `{key}`: {why} (freshly initialized)"));
        }
        if !self.unused.is_empty() {
            out.push(format!(
                "ignored {} bookkeeping tensors of the source (e.g. `{}`)",
                self.unused.len(),
                self.unused[0]
            ));
        }
        out
    }
}

/// The parameter paths (our names) of `config`'s classifier head: those whose shape changes
/// with the class count.
pub fn head_paths(config: &ModelConfig, device: &Device) -> BTreeSet<String> {
    head(config, device, false)
}

/// [`head_paths`] with PyTorch's leaf names (`weight`/`bias` for a batch norm's γ/β) when
/// `pytorch` is set.
fn head(config: &ModelConfig, device: &Device, pytorch: bool) -> BTreeSet<String> {
    let n = config.num_classes();
    let c = config.in_channels();
    let a = shapes(&config.clone().with_io(n, c).init(device), pytorch);
    let b = shapes(&config.clone().with_io(n + 1, c).init(device), pytorch);
    a.into_iter().filter(|(path, shape)| b.get(path) != Some(shape)).map(|(path, _)| path).collect()
}

/// Every tensor of `model` (parameters and running statistics) by path, with its shape: our
/// names and layouts, or (`pytorch`) PyTorch's leaf names and layouts, as checkpoints hold them.
fn shapes(model: &Model, pytorch: bool) -> BTreeMap<String, Vec<usize>> {
    let adapter: Option<Box<dyn burn::store::ModuleAdapter>> =
        if pytorch { Some(Box::new(BurnToPyTorchAdapter)) } else { None };
    model
        .collect(None, adapter, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect()
}

/// A fresh `config` model on `device` with every tensor of `source` that fits loaded:
/// `source` is a run directory (its final weights or last checkpoint) or a `.pth` /
/// `.safetensors` checkpoint in PyTorch's layout. Tensors of the head whose shape differs
/// (another class count) keep their fresh initialization and are reported; any other missing,
/// misshapen or extra tensor means another architecture, and is an error naming it.
pub fn init_from(
    source: &Path,
    model_name: &str,
    config: &ModelConfig,
    device: &Device,
) -> Result<(Model, InitReport)> {
    let tensors: Vec<PackTensor> = if source.is_dir() {
        let run = super::run_dir::load_run(source, device)?;
        run.model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true)
    } else {
        interop::read_tensors(source)?
    };
    // Shapes from a model of their own: collecting a model's tensors draws its lazily
    // initialized parameters, and the replaced head must be drawn later, under the run's seed.
    let ours = shapes(&config.init(device), true);
    let mut model = config.init(device);
    let head = head(config, device, true);
    let mismatch = |message: String| Error::WeightMismatch {
        path: source.to_path_buf(),
        model: model_name.to_string(),
        message,
    };
    let mut report = InitReport::default();
    let mut fits = Vec::new();
    let mut extra = Vec::new();
    let mut seen = BTreeSet::new();
    for t in tensors {
        let key = interop::pytorch_key(&t.name);
        let theirs = t.shape.as_slice().to_vec();
        match ours.get(&t.name) {
            None if key.ends_with("num_batches_tracked")
                || key.starts_with("aux1.")
                || key.starts_with("aux2.") =>
            {
                report.unused.push(key)
            }
            None => extra.push(key),
            Some(want) => {
                seen.insert(t.name.clone());
                let want = want.clone();
                if want == theirs {
                    fits.push(t);
                } else if head.contains(&t.name) {
                    report
                        .not_loaded
                        .push((key, format!("shape {theirs:?} in the source, {want:?} in the model")));
                } else {
                    return Err(mismatch(format!(
                        "`{key}` has shape {theirs:?} in the source but {want:?} in the model: the source is another \
                         architecture or input channel count"
                    )));
                }
            }
        }
    }
    if !extra.is_empty() {
        return Err(mismatch(format!(
            "{} tensors of the source have no place in the model: {} — the source is another architecture",
            extra.len(),
            list(&extra)
        )));
    }
    let missing: Vec<String> =
        ours.keys().filter(|p| !seen.contains(*p)).map(|p| interop::pytorch_key(p)).collect();
    if !missing.is_empty() {
        return Err(mismatch(format!(
            "{} tensors of the model are missing from the source: {} — the source is another architecture",
            missing.len(),
            list(&missing)
        )));
    }
    let result = model.apply(fits, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(e) = result.errors.first() {
        return Err(mismatch(e.to_string()));
    }
    report.loaded = result.applied.len();
    Ok((model, report))
}

fn list(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().take(4).map(|k| format!("`{k}`")).collect();
    let rest = if keys.len() > 4 { format!(", … ({} more)", keys.len() - 4) } else { String::new() };
    format!("{}{rest}", shown.join(", "))
}

/// `model` with every parameter outside `head` frozen: no gradient, and its batch norms use
/// (and keep) their running statistics, as in evaluation.
pub fn freeze_backbone(model: Model, head: &BTreeSet<String>) -> Model {
    struct Freezer<'a> {
        path: Vec<String>,
        head: &'a BTreeSet<String>,
    }
    impl ModuleMapper for Freezer<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            enter(&mut self.path, name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            exit(&mut self.path, container);
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.head.contains(&self.path.join(".")) { param } else { param.set_require_grad(false) }
        }
    }
    model.map(&mut Freezer { path: Vec::new(), head })
}

/// Module paths as the snapshots name them: enum variants (`Model::Seq`, `Layer::Conv`) are
/// not part of a path.
pub(crate) fn enter(path: &mut Vec<String>, name: &str, container: &str) {
    if !container.starts_with("Enum:") {
        path.push(name.to_string());
    }
}

pub(crate) fn exit(path: &mut Vec<String>, container: &str) {
    if !container.starts_with("Enum:") {
        path.pop();
    }
}

/// The ids of `model`'s parameters whose paths are in `paths`.
pub fn param_ids(model: &Model, paths: &BTreeSet<String>) -> Vec<ParamId> {
    struct Ids<'a> {
        path: Vec<String>,
        paths: &'a BTreeSet<String>,
        out: Vec<ParamId>,
    }
    impl ModuleVisitor for Ids<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            enter(&mut self.path, name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            exit(&mut self.path, container);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.paths.contains(&self.path.join(".")) {
                self.out.push(param.id);
            }
        }
    }
    let mut ids = Ids { path: Vec::new(), paths, out: Vec::new() };
    model.visit(&mut ids);
    ids.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry;

    #[test]
    fn the_head_is_what_depends_on_the_class_count() {
        let device = Device::flex();
        let head = |name: &str| {
            let entry = registry::find(name).unwrap();
            head_paths(&entry.config_with(10, entry.input[0]), &device).into_iter().collect::<Vec<_>>()
        };
        assert_eq!(head("lenet"), ["classifier.4.bias", "classifier.4.weight"]);
        // NiN has no dense layer: its whole last block has `num_classes` channels.
        assert_eq!(head("nin").len(), 6);
        assert!(head("nin").iter().all(|p| p.starts_with("features.7.")));
        assert_eq!(head("d2l_resnet18"), ["fc.bias", "fc.weight"]);
        assert_eq!(head("alexnet"), ["classifier.6.bias", "classifier.6.weight"]);
    }
}
