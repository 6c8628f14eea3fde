//! [`ModelConfig`] (the saved, serializable description) and [`Model`] (the module tree).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layers::{shape_only, take_fault};
use crate::models::alexnet::AlexNetConfig;
use crate::models::densenet::{DenseNet, DenseNetConfig};
use crate::models::googlenet::{GoogLeNet, GoogLeNetConfig};
use crate::models::lenet::LeNetConfig;
use crate::models::nin::NinConfig;
use crate::models::resnet::{ResNet, ResNetConfig};
use crate::models::sequential::SeqNet;
use crate::models::vgg::VggConfig;
use crate::probe::{Describe, Probe};

/// Everything needed to rebuild a model: one variant per family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    /// LeNet / BN-LeNet.
    LeNet(LeNetConfig),
    /// AlexNet.
    AlexNet(AlexNetConfig),
    /// VGG.
    Vgg(VggConfig),
    /// Network in Network.
    Nin(NinConfig),
    /// GoogLeNet.
    GoogLeNet(GoogLeNetConfig),
    /// ResNet.
    ResNet(ResNetConfig),
    /// DenseNet.
    DenseNet(DenseNetConfig),
}

impl ModelConfig {
    /// Builds the module tree on `device` (parameters are initialized lazily, on first use).
    pub fn init(&self, device: &Device) -> Model {
        match self {
            ModelConfig::LeNet(c) => Model::Seq(c.init(device)),
            ModelConfig::AlexNet(c) => Model::Seq(c.init(device)),
            ModelConfig::Vgg(c) => Model::Seq(c.init(device)),
            ModelConfig::Nin(c) => Model::Seq(c.init(device)),
            ModelConfig::GoogLeNet(c) => Model::GoogLeNet(c.init(device)),
            ModelConfig::ResNet(c) => Model::ResNet(c.init(device)),
            ModelConfig::DenseNet(c) => Model::DenseNet(c.init(device)),
        }
    }

    /// Input channels the first layer expects.
    pub fn in_channels(&self) -> usize {
        match self {
            ModelConfig::LeNet(c) => c.in_channels,
            ModelConfig::AlexNet(c) => c.in_channels,
            ModelConfig::Vgg(c) => c.in_channels,
            ModelConfig::Nin(c) => c.in_channels,
            ModelConfig::GoogLeNet(c) => c.in_channels,
            ModelConfig::ResNet(c) => c.in_channels,
            ModelConfig::DenseNet(c) => c.in_channels,
        }
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelConfig::LeNet(c) => c.num_classes,
            ModelConfig::AlexNet(c) => c.num_classes,
            ModelConfig::Vgg(c) => c.num_classes,
            ModelConfig::Nin(c) => c.num_classes,
            ModelConfig::GoogLeNet(c) => c.num_classes,
            ModelConfig::ResNet(c) => c.num_classes,
            ModelConfig::DenseNet(c) => c.num_classes,
        }
    }
}

/// A built network of any family.
#[derive(Module, Debug)]
pub enum Model {
    /// LeNet, AlexNet, VGG, NiN.
    Seq(SeqNet),
    /// GoogLeNet.
    GoogLeNet(GoogLeNet),
    /// ResNet.
    ResNet(ResNet),
    /// DenseNet.
    DenseNet(DenseNet),
}

impl Describe for Model {}

/// Which square input sizes a model accepts, found by shape inference on the real module tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputRange {
    /// Smallest side that works.
    pub min: usize,
    /// Largest side that works, when there is one (a fixed-size flatten).
    pub max: Option<usize>,
}

/// Input values up to which an inference forward runs on the kernels' pool ([`Model::forward`]).
pub const SMALL_INPUT: usize = 1 << 20;

impl Model {
    /// `[b, c, h, w]` → logits `[b, num_classes]`. Panics only if the input does not fit, which
    /// [`Model::try_forward`] reports as an error instead.
    ///
    /// A small inference batch (at most [`SMALL_INPUT`] input values: a few 224² images)
    /// runs on the kernels' thread pool ([`crate::kernels::on_pool`]), where its many short ops
    /// fork without a thread hand-off each; training and large batches stay on this thread.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        if !x.device().is_autodiff()
            && x.shape().num_elements() <= SMALL_INPUT
            && !crate::layers::is_shape_only()
        {
            return crate::kernels::on_pool(|| self.forward_with(x, &mut ()));
        }
        self.forward_with(x, &mut ())
    }

    /// Forward pass reporting every stage to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, probe: &mut P) -> Tensor<2> {
        match self {
            Model::Seq(m) => m.forward_with(x, probe),
            Model::GoogLeNet(m) => m.forward_with(x, probe),
            Model::ResNet(m) => m.forward_with(x, probe),
            Model::DenseNet(m) => m.forward_with(x, probe),
        }
    }

    /// Like [`Model::forward_with`], but an input that does not fit the network is an
    /// [`Error::InputShape`] naming `name` and the sizes the network accepts.
    pub fn try_forward_with<P: Probe>(&self, name: &str, x: Tensor<4>, probe: &mut P) -> Result<Tensor<2>> {
        let [_, c, h, w] = x.dims();
        take_fault();
        let out = self.forward_with(x, probe);
        match take_fault() {
            None => Ok(out),
            Some(fault) => Err(self.shape_error(name, [c, h, w], fault.reason)),
        }
    }

    /// [`Model::forward`] with shape errors as [`Error::InputShape`].
    pub fn try_forward(&self, name: &str, x: Tensor<4>) -> Result<Tensor<2>> {
        self.try_forward_with(name, x, &mut ())
    }

    /// Checks that a `[c, h, w]` input fits, without computing anything.
    pub fn check_input(&self, name: &str, chw: [usize; 3], device: &Device) -> Result<()> {
        match self.fits(chw, device) {
            Ok(()) => Ok(()),
            Err(reason) => Err(self.shape_error(name, chw, reason)),
        }
    }

    fn fits(&self, [c, h, w]: [usize; 3], device: &Device) -> std::result::Result<(), String> {
        take_fault();
        shape_only(|| self.forward(Tensor::zeros([1, c, h, w], device)));
        take_fault().map_or(Ok(()), |f| Err(f.reason))
    }

    /// The square input sides this model accepts with `c` channels (searched up to 1024).
    pub fn input_range(&self, c: usize, device: &Device) -> Option<InputRange> {
        const LIMIT: usize = 1024;
        let ok = |s: usize| self.fits([c, s, s], device).is_ok();
        let min = (1..=LIMIT).find(|&s| ok(s))?;
        // A fixed flatten admits a short range; past min + 64 every model here is unbounded.
        let max = (min + 1..=min + 64).find(|&s| !ok(s)).map(|s| s - 1);
        Some(InputRange { min, max })
    }

    fn shape_error(&self, name: &str, [c, h, w]: [usize; 3], reason: String) -> Error {
        let device = Device::flex();
        let accepts = match self.input_range(c, &device) {
            None => format!("it accepts no {c}-channel input; check the channel count"),
            Some(InputRange { min, max: None }) => format!("it needs at least {c}×{min}×{min}"),
            Some(InputRange { min, max: Some(max) }) if min == max => {
                format!("it needs exactly {c}×{min}×{min}")
            }
            Some(InputRange { min, max: Some(max) }) => {
                format!("it accepts {c}×{min}×{min} up to {c}×{max}×{max}")
            }
        };
        Error::InputShape { model: name.to_string(), got: format!("{c}×{h}×{w}"), reason, accepts }
    }
}
