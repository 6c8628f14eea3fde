//! AlexNet (Krizhevsky et al. 2012), two versions.
//!
//! - d2l §8.1: single tower, no LRN, 96-256-384-384-256 channels, conv1 padding 1, a fixed
//!   6400-wide flatten (needs 5×5 maps: 224×224 inputs), dropout *after* each hidden ReLU.
//! - torchvision: the "one weird trick" variant (arXiv 1404.5997), 64-192-384-256-256 channels,
//!   conv1 padding 2, `AdaptiveAvgPool2d(6, 6)` (any input ≥ 63×63), and dropout *before* each
//!   hidden linear (pytorch/vision#549, kept for weight compatibility).

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::InitScheme;
use super::sequential::SeqNet;
use crate::layers::{AdaptiveAvgPool2d, Conv2dConfig, Dropout, Layer, LinearConfig, MaxPool2d, Relu};

/// AlexNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlexNetConfig {
    /// d2l's single-tower net instead of torchvision's.
    pub d2l: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(AlexNetConfig);

impl AlexNetConfig {
    /// torchvision `alexnet()`.
    pub fn torchvision(num_classes: usize, in_channels: usize) -> Self {
        Self { d2l: false, in_channels, num_classes, init: InitScheme::Pytorch }
    }

    /// d2l §8.1 AlexNet for 1×224×224 Fashion-MNIST.
    pub fn d2l() -> Self {
        Self { d2l: true, in_channels: 1, num_classes: 10, init: InitScheme::Xavier }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> SeqNet {
        let w = self.init.weight(crate::layers::pytorch_weight_init());
        let conv = |c_in, c_out, k, s, p| {
            Layer::Conv(
                Conv2dConfig::new(c_in, c_out, k)
                    .stride(s)
                    .padding(p)
                    .init_with(w.clone(), None)
                    .init(device),
            )
        };
        let linear = |i, o| Layer::Linear(LinearConfig::new(i, o).init_with(w.clone(), None).init(device));
        let relu = || Layer::Relu(Relu);
        let pool = || Layer::MaxPool(MaxPool2d::new(3, 2, 0));
        let drop = || Layer::Dropout(Dropout::new(0.5));
        let nc = self.num_classes;
        let c = if self.d2l { [96, 256, 384, 384, 256] } else { [64, 192, 384, 256, 256] };
        let features = vec![
            conv(self.in_channels, c[0], 11, 4, if self.d2l { 1 } else { 2 }),
            relu(),
            pool(),
            conv(c[0], c[1], 5, 1, 2),
            relu(),
            pool(),
            conv(c[1], c[2], 3, 1, 1),
            relu(),
            conv(c[2], c[3], 3, 1, 1),
            relu(),
            conv(c[3], c[4], 3, 1, 1),
            relu(),
            pool(),
        ];
        if self.d2l {
            let classifier = vec![
                linear(6400, 4096),
                relu(),
                drop(),
                linear(4096, 4096),
                relu(),
                drop(),
                linear(4096, nc),
            ];
            SeqNet { features, avgpool: None, classifier }
        } else {
            let classifier = vec![
                drop(),
                linear(256 * 6 * 6, 4096),
                relu(),
                drop(),
                linear(4096, 4096),
                relu(),
                linear(4096, nc),
            ];
            SeqNet { features, avgpool: Some(AdaptiveAvgPool2d::new(6, 6)), classifier }
        }
    }
}
