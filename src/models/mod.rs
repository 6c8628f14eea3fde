//! The seven families. LeNet, AlexNet, VGG and NiN are plain chains and share [`SeqNet`](sequential::SeqNet); their
//! files hold the layer tables. GoogLeNet, ResNet and DenseNet have their own module types.

// Defined before the family modules so that they can use it (textual macro scope).
/// Implements [`Family`] for a config with `in_channels` and `num_classes` fields.
macro_rules! impl_family {
    ($config:ty) => {
        impl crate::models::Family for $config {
            fn in_channels(&self) -> usize {
                self.in_channels
            }
            fn num_classes(&self) -> usize {
                self.num_classes
            }
            fn set_io(&mut self, num_classes: usize, in_channels: usize) {
                self.num_classes = num_classes;
                self.in_channels = in_channels;
            }
        }
    };
}

pub mod alexnet;
pub mod chain;
pub mod densenet;
pub mod googlenet;
pub mod lenet;
pub mod nin;
pub mod resnet;
pub mod sequential;
pub mod thin_resnet;
pub mod vgg;

use burn::module::Initializer;
use serde::{Deserialize, Serialize};

use crate::layers::pytorch_weight_init;

/// What every family's configuration provides, besides its `init(&self, &Device)` that builds
/// the network. Implemented with `impl_family!` next to each config type.
pub trait Family {
    /// Input channels the first layer expects.
    fn in_channels(&self) -> usize;
    /// Number of output classes.
    fn num_classes(&self) -> usize;
    /// Sets the classifier's classes and the first layer's input channels.
    fn set_io(&mut self, num_classes: usize, in_channels: usize);
}

/// How a model's parameters are initialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitScheme {
    /// d2l's `train_ch6` / `init_cnn`: Xavier-uniform on every conv and linear weight, biases
    /// keep PyTorch's default.
    Xavier,
    /// What torchvision's model constructor does for this family.
    Torchvision,
    /// PyTorch's layer defaults everywhere (kaiming_uniform(a=√5), U(±1/√fan_in) biases).
    Pytorch,
}

impl InitScheme {
    /// Weight initializer for conv/linear layers under the d2l or PyTorch schemes, or `tv` under
    /// the torchvision scheme.
    pub(crate) fn weight(self, tv: Initializer) -> Initializer {
        match self {
            InitScheme::Xavier => Initializer::XavierUniform { gain: 1.0 },
            InitScheme::Torchvision => tv,
            InitScheme::Pytorch => pytorch_weight_init(),
        }
    }

    /// Bias initializer: `tv` under the torchvision scheme, PyTorch's default otherwise.
    pub(crate) fn bias(self, tv: Option<Initializer>) -> Option<Initializer> {
        match self {
            InitScheme::Torchvision => tv,
            _ => None,
        }
    }
}

/// torchvision's `kaiming_normal_(w, mode="fan_out", nonlinearity="relu")`.
pub(crate) fn kaiming_normal_fan_out() -> Initializer {
    Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: true }
}

/// torchvision's `kaiming_normal_(w)` (fan-in, gain √2).
pub(crate) fn kaiming_normal_fan_in() -> Initializer {
    Initializer::KaimingNormal { gain: 2f64.sqrt(), fan_out_only: false }
}
