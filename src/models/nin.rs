//! Network in Network (Lin et al. 2013) as d2l §8.3 builds it for 1×224×224 Fashion-MNIST:
//! four `nin_block`s (a k×k conv then two 1×1 convs, each followed by ReLU), max pools between,
//! dropout before the last block, whose 10 channels are averaged into the logits — no dense layer.
//! The last block ends in ReLU, as in d2l, so the logits are ≥ 0.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::InitScheme;
use super::sequential::SeqNet;
use crate::layers::{AdaptiveAvgPool2d, Conv2dConfig, Dropout, Layer, MaxPool2d, Relu};

/// `(out channels, kernel, stride, padding)` of each block's first conv.
const BLOCKS: [(usize, usize, usize, usize); 3] = [(96, 11, 4, 0), (256, 5, 1, 2), (384, 3, 1, 1)];

/// NiN hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NinConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output classes (the last block's channels).
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(NinConfig);

impl NinConfig {
    /// d2l §8.3 NiN.
    pub fn d2l() -> Self {
        Self { in_channels: 1, num_classes: 10, init: InitScheme::Xavier }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> SeqNet {
        let w = self.init.weight(crate::layers::pytorch_weight_init());
        let block = |c_in, c_out, k, s, p| {
            let conv = |c_in, k, s, p| {
                let cfg = Conv2dConfig::new(c_in, c_out, k).stride(s).padding(p);
                Layer::Conv(cfg.init_with(w.clone(), None).init(device))
            };
            Layer::Seq(vec![
                conv(c_in, k, s, p),
                Layer::Relu(Relu),
                conv(c_out, 1, 1, 0),
                Layer::Relu(Relu),
                conv(c_out, 1, 1, 0),
                Layer::Relu(Relu),
            ])
        };
        let pool = || Layer::MaxPool(MaxPool2d::new(3, 2, 0));
        let mut features = Vec::new();
        let mut c_in = self.in_channels;
        for (c_out, k, s, p) in BLOCKS {
            features.push(block(c_in, c_out, k, s, p));
            features.push(pool());
            c_in = c_out;
        }
        features.push(Layer::Dropout(Dropout::new(0.5)));
        features.push(block(c_in, self.num_classes, 3, 1, 1));
        SeqNet { features, avgpool: Some(AdaptiveAvgPool2d::new(1, 1)), classifier: Vec::new() }
    }
}
