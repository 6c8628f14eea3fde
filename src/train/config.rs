//! [`TrainConfig`]: everything a run needs, saved as `config.json` in its run directory, built
//! from a preset's recipe ([`TrainConfig::for_model`]) and the user's [`Overrides`].

use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig, decay::WeightDecayConfig};
use serde::{Deserialize, Serialize};

use crate::data::transforms::{Pipeline, Preprocess, Transforms};
use crate::data::{DatasetKind, DatasetSpec, Opened, ValSpec};
use crate::error::{Error, Result};
use crate::model::ModelConfig;
pub use crate::recipe::{OptimizerKind, Schedule};
use crate::registry;

/// Everything a run needs; saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Registry name.
    pub model: String,
    /// The model's full description.
    pub model_config: ModelConfig,
    /// Input `[c, h, w]` the images are resized to.
    pub input: [usize; 3],
    /// Data set (`fashion-mnist`, `mnist`, `cifar10`, `cifar100`, `folder:PATH`).
    pub dataset: DatasetSpec,
    /// The images evaluated after each epoch: the data set's own test or `val/` split
    /// (`default`), a folder (`folder:PATH`) or a held-out fraction of the training images
    /// (`split:F`).
    #[serde(default, skip_serializing_if = "is_default_val")]
    pub val: ValSpec,
    /// Epochs.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// L2 penalty (SGD/Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Schedule.
    pub schedule: Schedule,
    /// Linear warm-up length in epochs (may be fractional).
    pub warmup: f64,
    /// Seed for initialization, shuffling and dropout.
    pub seed: u64,
    /// Train on the first N training images only.
    pub train_subset: Option<usize>,
    /// Evaluate on the first N test images only.
    pub test_subset: Option<usize>,
    /// How `predict` prepares an image (runs trained here: grey; imported ImageNet models:
    /// torchvision's eval transform).
    #[serde(default)]
    pub preprocess: Preprocess,
    /// The class names in label order (empty in runs written before they were stored: then
    /// [`TrainConfig::class_names`] derives them).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Checkpoint this run was imported from, if any.
    #[serde(default)]
    pub imported_from: Option<String>,
    /// How training and evaluation images become the model's input (`None`: d2l's
    /// preprocessing — or, for an imported ImageNet model, torchvision's eval transform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transforms: Option<Transforms>,
    /// Weights the run started from (`--init`: a run directory, `.pth` or `.safetensors`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Only the head trains (`--freeze backbone`); the backbone's batch norms keep their
    /// statistics.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub freeze_backbone: bool,
    /// The head's own peak learning rate (`--head-lr`), following the same schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_lr: Option<f64>,
}

/// Values the user set on the command line (`cnnzoo train`'s flags); `None` keeps the recipe's.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Overrides {
    /// Epochs (default 10, as d2l).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the recipe's, e.g. d2l's 0.9 for LeNet).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Batch size (default: the recipe's).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer (default: plain SGD for d2l models, as d2l).
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule (default constant for d2l models).
    #[arg(long, value_enum)]
    pub schedule: Option<Schedule>,
    /// Linear warm-up in epochs.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Seed for initialization, shuffling and dropout.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Data set: fashion-mnist (default), mnist, cifar10, cifar100 or folder:PATH (one
    /// sub-folder of PNG/JPEG images per class; ImageNet-style train/ and val/ work).
    #[arg(long, value_name = "DATASET")]
    pub dataset: Option<DatasetSpec>,
    /// Validation images for a folder data set: folder:PATH (same class sub-folders).
    #[arg(long, value_name = "folder:PATH", conflicts_with = "val_split")]
    pub val: Option<ValSpec>,
    /// Hold out this fraction (0 < F < 1) of the training images for validation, chosen by --seed.
    #[arg(long, value_name = "F")]
    pub val_split: Option<f64>,
    /// Train on the first N training images only.
    #[arg(long = "subset")]
    pub train_subset: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long)]
    pub test_subset: Option<usize>,
    /// Start from these weights: a run directory, or a PyTorch .pth / .safetensors state_dict
    /// (e.g. torchvision's). Every tensor that fits is loaded; a head for another class count is
    /// replaced.
    #[arg(long, value_name = "RUN_DIR|WEIGHTS")]
    pub init: Option<String>,
    /// Train only the head; the backbone (batch-norm statistics included) stays as loaded.
    #[arg(long, value_enum, value_name = "PART")]
    pub freeze: Option<Freeze>,
    /// The head's own peak learning rate (the backbone keeps --lr).
    #[arg(long)]
    pub head_lr: Option<f64>,
    /// Transform preset: d2l (default: grey levels resized to the input), alexnet (flips,
    /// crops, colour jitter), imagenet (random-resized-crop + flip; eval resize + center crop),
    /// cifar (crop with padding 4 + flip), each normalized for 3-channel inputs.
    #[arg(long, value_name = "PRESET")]
    pub transforms: Option<String>,
    /// Training pipeline, e.g. `random-resized-crop=224,hflip,to-tensor,normalize=imagenet`
    /// (replaces the preset's).
    #[arg(long, value_name = "SPEC")]
    pub train_transforms: Option<String>,
    /// Evaluation pipeline, e.g. `resize=256,center-crop=224,to-tensor,normalize=imagenet`.
    #[arg(long, value_name = "SPEC")]
    pub eval_transforms: Option<String>,
}

/// What `--freeze` freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Freeze {
    /// Everything but the classifier head.
    Backbone,
}

impl Overrides {
    /// `config` with every value that is set here replaced.
    pub fn apply(&self, mut config: TrainConfig) -> TrainConfig {
        fn set<T: Copy>(field: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *field = v;
            }
        }
        set(&mut config.epochs, self.epochs);
        set(&mut config.lr, self.lr);
        set(&mut config.batch_size, self.batch_size);
        set(&mut config.optimizer, self.optimizer);
        set(&mut config.weight_decay, self.weight_decay);
        set(&mut config.schedule, self.schedule);
        set(&mut config.warmup, self.warmup);
        set(&mut config.seed, self.seed);
        if let Some(d) = &self.dataset {
            config.dataset = d.clone();
            config.classes = builtin_classes(d).unwrap_or_default();
        }
        if let Some(v) = &self.val {
            config.val = v.clone();
        }
        if let Some(f) = self.val_split {
            config.val = ValSpec::Split(f);
        }
        if self.train_subset.is_some() {
            config.train_subset = self.train_subset;
        }
        if self.test_subset.is_some() {
            config.test_subset = self.test_subset;
        }
        if self.init.is_some() {
            config.init = self.init.clone();
        }
        if self.freeze == Some(Freeze::Backbone) {
            config.freeze_backbone = true;
        }
        if self.head_lr.is_some() {
            config.head_lr = self.head_lr;
        }
        config
    }
}

impl TrainConfig {
    /// The default run for a registry model: its recipe (d2l's for d2l presets: 10 epochs,
    /// plain SGD, constant rate), on Fashion-MNIST at [`registry::Entry::train_input`] with 10
    /// classes.
    pub fn for_model(name: &str, input: Option<[usize; 3]>) -> Result<Self> {
        let entry = registry::find(name)?;
        let input = input.unwrap_or(entry.train_input());
        let recipe = entry.recipe;
        let dataset = DatasetSpec::FashionMnist;
        Ok(Self {
            model: entry.name.to_string(),
            model_config: entry.config_with(10, input[0]),
            input,
            classes: builtin_classes(&dataset).unwrap_or_default(),
            dataset,
            val: ValSpec::Default,
            epochs: recipe.epochs,
            lr: recipe.lr,
            batch_size: recipe.batch_size,
            optimizer: recipe.optimizer,
            weight_decay: recipe.weight_decay,
            schedule: recipe.schedule,
            warmup: 0.0,
            seed: 42,
            train_subset: None,
            test_subset: None,
            preprocess: Preprocess::Grey,
            imported_from: None,
            transforms: None,
            init: None,
            freeze_backbone: false,
            head_lr: None,
        })
    }

    /// The class names in label order: the stored ones, else the data set's (when the model
    /// has as many classes), else the preset's own labels at its default class count, else
    /// `class 0`, `class 1`, ….
    pub fn class_names(&self) -> Vec<String> {
        let n = self.model_config.num_classes();
        if self.classes.len() == n {
            return self.classes.clone();
        }
        if let Some(names) = builtin_classes(&self.dataset).filter(|c| c.len() == n) {
            return names;
        }
        if let Ok(entry) = registry::find(&self.model)
            && entry.num_classes == n
        {
            return entry.labels.names();
        }
        (0..n).map(|i| format!("class {i}")).collect()
    }

    /// The line `train` prints before it starts.
    pub fn banner(&self, train_images: usize, test_images: usize, dir: &std::path::Path) -> String {
        let [c, h, w] = self.input;
        format!(
            "training {} on {} ({} train / {} test images) at {c}x{h}x{w}: {} epochs, lr {}, batch {}, {:?}, run dir {}",
            self.model,
            self.dataset,
            self.train_subset.unwrap_or(train_images).min(train_images),
            self.test_subset.unwrap_or(test_images).min(test_images),
            self.epochs,
            self.lr,
            self.batch_size,
            self.optimizer,
            dir.display()
        ) + &self.init.as_ref().map_or(String::new(), |init| {
            let frozen = if self.freeze_backbone { ", backbone frozen" } else { "" };
            let head = self.head_lr.map_or(String::new(), |lr| format!(", head lr {lr}"));
            format!("\n  starting from {init}{frozen}{head}")
        })
    }

    /// Fits a new run to the data set it will train on (as torchvision's `num_classes=`): the
    /// class names and count follow the data set, and so do the input channels — unless they
    /// were given (`explicit_channels`) or the run starts from other weights (`--init`), whose
    /// first layer decides.
    pub fn adapt_to(&mut self, data: &Opened, explicit_channels: bool) -> Result<()> {
        let entry = registry::find(&self.model)?;
        let channels = match &self.init {
            _ if explicit_channels => self.input[0],
            // The weights' own first layer: a run's input, or the preset's (torchvision's RGB).
            Some(init) if std::path::Path::new(init).is_dir() => {
                super::read_config(std::path::Path::new(init))?.input[0]
            }
            Some(_) => entry.input[0],
            None => data.channels,
        };
        self.input[0] = channels;
        self.model_config = entry.config_with(data.classes.len(), channels);
        self.classes = data.classes.clone();
        self.preprocess = entry.preprocess_for(channels);
        Ok(())
    }

    /// Sets the transforms from `--transforms`, `--train-transforms` and `--eval-transforms`
    /// (for the final input: call after [`TrainConfig::adapt_to`]); none given keeps d2l's.
    pub fn choose_transforms(&mut self, o: &Overrides) -> Result<()> {
        if o.transforms.is_none() && o.train_transforms.is_none() && o.eval_transforms.is_none() {
            return Ok(());
        }
        let mut t = Transforms::preset(o.transforms.as_deref().unwrap_or("d2l"), self.input)?;
        if let Some(spec) = &o.train_transforms {
            t.train = Pipeline::parse(spec)?;
        }
        if let Some(spec) = &o.eval_transforms {
            t.eval = Pipeline::parse(spec)?;
        }
        t.check(self.input)?;
        self.transforms = Some(t);
        Ok(())
    }

    /// The run's transforms: its own, else d2l's (or, for imported ImageNet weights,
    /// torchvision's eval transform for both).
    pub fn transforms(&self) -> Result<Transforms> {
        if let Some(t) = &self.transforms {
            return Ok(t.clone());
        }
        match self.preprocess {
            Preprocess::Imagenet => {
                let t = Transforms::preset("imagenet", self.input)?;
                Ok(Transforms { train: t.eval.clone(), eval: t.eval })
            }
            Preprocess::Grey => Transforms::preset("d2l", self.input),
        }
    }

    /// A new run of `model` as `cnnzoo train` sets it up: the preset's recipe with the flags
    /// applied, fitted to the data set (opened here and returned), with its transforms.
    pub fn prepare(
        model: &str,
        input: Option<[usize; 3]>,
        o: &Overrides,
        data_dir: Option<&std::path::Path>,
    ) -> Result<(Self, Opened)> {
        let mut config = o.apply(Self::for_model(model, input)?);
        let opened = crate::data::open(&config.dataset, data_dir, &config.val, config.seed)?;
        config.adapt_to(&opened, input.is_some())?;
        config.choose_transforms(o)?;
        config.validate()?;
        Ok((config, opened))
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("--lr", format!("must be > 0, got {}", self.lr)));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("--batch-size", "must be at least 1"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid("--weight-decay", format!("must be ≥ 0, got {}", self.weight_decay)));
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0 && self.warmup < self.epochs as f64) {
            return Err(Error::invalid("--warmup", format!("must be in [0, epochs), got {}", self.warmup)));
        }
        if self.model_config.in_channels() != self.input[0] {
            return Err(Error::invalid(
                "--input",
                format!(
                    "has {} channels but the model takes {}",
                    self.input[0],
                    self.model_config.in_channels()
                ),
            ));
        }
        let n = self.model_config.num_classes();
        if !self.classes.is_empty() && self.classes.len() != n {
            return Err(Error::invalid(
                "config",
                format!("names {} classes but the model predicts {n}", self.classes.len()),
            ));
        }
        if let Some(head_lr) = self.head_lr
            && !(head_lr.is_finite() && head_lr > 0.0)
        {
            return Err(Error::invalid("--head-lr", format!("must be > 0, got {head_lr}")));
        }
        Ok(())
    }

    /// Learning rate at global step `step` with `steps_per_epoch` (warm-up, then the schedule).
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        let total = (self.epochs * steps_per_epoch).max(1) as f64;
        let warm = self.warmup * steps_per_epoch as f64;
        let s = step as f64;
        if s < warm {
            return self.lr * (s + 1.0) / warm;
        }
        let progress = ((s - warm) / (total - warm).max(1.0)).min(1.0);
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => self.lr * 0.1f64.powi((progress * 3.0).floor().min(2.0) as i32),
            Schedule::Cosine => self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    /// A fresh optimizer as configured.
    pub(crate) fn optimizer(&self) -> ModuleOptimizer {
        let decay = (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            OptimizerKind::Sgd => SgdConfig::new().with_weight_decay(decay).init(),
            OptimizerKind::Momentum => SgdConfig::new()
                .with_weight_decay(decay)
                .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
                .init(),
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).with_epsilon(1e-8).init(),
            OptimizerKind::Adamw => {
                AdamWConfig::new().with_weight_decay(self.weight_decay as f32).with_epsilon(1e-8).init()
            }
        }
    }
}

fn is_default_val(v: &ValSpec) -> bool {
    *v == ValSpec::Default
}

/// The class names of a built-in data set whose names are known without reading it.
fn builtin_classes(spec: &DatasetSpec) -> Option<Vec<String>> {
    let kind = match spec {
        DatasetSpec::FashionMnist => DatasetKind::FashionMnist,
        DatasetSpec::Mnist => DatasetKind::Mnist,
        _ => return None,
    };
    Some(kind.classes().iter().map(|s| s.to_string()).collect())
}
