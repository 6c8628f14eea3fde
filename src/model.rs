//! [`ModelConfig`] (the saved, serializable description), [`Model`] (the module tree) and the
//! lists that join them: one line per family here, everything else in the family's file.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::instrument::{Describe, shape_only, take_fault};
use crate::models::Family;
use crate::models::alexnet::AlexNetConfig;
use crate::models::chain::ChainConfig;
use crate::models::densenet::{DenseNet, DenseNetConfig};
use crate::models::googlenet::{GoogLeNet, GoogLeNetConfig};
use crate::models::lenet::LeNetConfig;
use crate::models::nin::NinConfig;
use crate::models::resnet::{ResNet, ResNetConfig};
use crate::models::sequential::SeqNet;
use crate::models::thin_resnet::{ThinResNet, ThinResNetConfig};
use crate::models::vgg::VggConfig;
use crate::probe::Probe;

/// The saved, serializable description of a model: one variant per family (the `family` tag
/// in `config.json`), each delegating to the family's [`Family`] implementation and building
/// its network with the config's own `init`.
macro_rules! families {
    ($($(#[$doc:meta])* $variant:ident($config:ty) => $network:ident,)*) => {
        /// Everything needed to rebuild a model: one variant per family.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "family", rename_all = "snake_case")]
        pub enum ModelConfig {
            $($(#[$doc])* $variant($config),)*
        }

        impl ModelConfig {
            /// Builds the module tree on `device` (parameters are initialized lazily, on first use).
            pub fn init(&self, device: &Device) -> Model {
                match self {
                    $(ModelConfig::$variant(c) => Model::$network(c.init(device)),)*
                }
            }

            /// The family's own definition.
            pub fn family(&self) -> &dyn Family {
                match self {
                    $(ModelConfig::$variant(c) => c,)*
                }
            }

            /// The family's own definition, to change.
            pub fn family_mut(&mut self) -> &mut dyn Family {
                match self {
                    $(ModelConfig::$variant(c) => c,)*
                }
            }
        }

        $(impl From<$config> for ModelConfig {
            fn from(c: $config) -> Self {
                ModelConfig::$variant(c)
            }
        })*
    };
}

// One line per family: its config type, and the [`Model`] variant its `init` builds.
families! {
    /// LeNet / BN-LeNet.
    LeNet(LeNetConfig) => Seq,
    /// AlexNet.
    AlexNet(AlexNetConfig) => Seq,
    /// VGG.
    Vgg(VggConfig) => Seq,
    /// Network in Network.
    Nin(NinConfig) => Seq,
    /// GoogLeNet.
    GoogLeNet(GoogLeNetConfig) => GoogLeNet,
    /// ResNet.
    ResNet(ResNetConfig) => ResNet,
    /// DenseNet.
    DenseNet(DenseNetConfig) => DenseNet,
    /// A chain of layers written as a list (`cnnzoo experiment`'s ablations).
    Chain(ChainConfig) => Seq,
    /// He et al.'s thin CIFAR-style ResNet and its plain twin (`cnnzoo experiment residual`).
    ThinResNet(ThinResNetConfig) => ThinResNet,
}

impl ModelConfig {
    /// Input channels the first layer expects.
    pub fn in_channels(&self) -> usize {
        self.family().in_channels()
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        self.family().num_classes()
    }

    /// The same model with other classes and/or input channels.
    pub fn with_io(mut self, num_classes: usize, in_channels: usize) -> Self {
        self.family_mut().set_io(num_classes, in_channels);
        self
    }
}

/// A built network of any family: one variant per network type (LeNet, AlexNet, VGG and NiN
/// share [`SeqNet`]), each with a `forward_with(x, probe)`.
macro_rules! networks {
    ($($(#[$doc:meta])* $variant:ident($net:ty),)*) => {
        /// A built network of any family.
        #[derive(Module, Debug)]
        pub enum Model {
            $($(#[$doc])* $variant($net),)*
        }

        impl Model {
            /// Forward pass reporting every stage to `probe`.
            pub fn forward_with<P: Probe>(&self, x: Tensor<4>, probe: &mut P) -> Tensor<2> {
                match self {
                    $(Model::$variant(m) => m.forward_with(x, probe),)*
                }
            }
        }
    };
}

networks! {
    /// LeNet, AlexNet, VGG, NiN.
    Seq(SeqNet),
    /// GoogLeNet.
    GoogLeNet(GoogLeNet),
    /// ResNet.
    ResNet(ResNet),
    /// DenseNet.
    DenseNet(DenseNet),
    /// Thin ResNet / plain net.
    ThinResNet(ThinResNet),
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
            && !crate::instrument::is_shape_only()
        {
            return crate::kernels::on_pool(|| self.forward_with(x, &mut ()));
        }
        self.forward_with(x, &mut ())
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
