//! VGG (Simonyan & Zisserman 2014), configurations A/B/D/E = VGG-11/13/16/19, with or without
//! batch norm (torchvision), and d2l §8.2's VGG-11 with its channel `ratio` (d2l trains ratio 4).
//!
//! torchvision pools to 7×7 with `AdaptiveAvgPool2d` (any input ≥ 32×32); d2l flattens the
//! 7×7 map directly, so it needs 224×224 inputs.

use burn::module::Initializer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::sequential::SeqNet;
use super::{InitScheme, kaiming_normal_fan_out};
use crate::layers::{
    AdaptiveAvgPool2d, BatchNormConfig, Conv2dConfig, Dropout, Layer, LinearConfig, MaxPool2d, Relu,
};

/// 0 marks a 2×2 max pool, any other number a 3×3 conv with that many channels.
const M: usize = 0;
/// VGG-11 (configuration A).
pub const VGG11: &[usize] = &[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M];
/// VGG-13 (configuration B).
pub const VGG13: &[usize] = &[64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M];
/// VGG-16 (configuration D).
pub const VGG16: &[usize] = &[64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M];
/// VGG-19 (configuration E).
pub const VGG19: &[usize] =
    &[64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M];

/// VGG hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VggConfig {
    /// Layer table, see [`VGG11`].
    pub cfg: Vec<usize>,
    /// BN after every conv (`vgg11_bn` …).
    pub batch_norm: bool,
    /// Conv channels are divided by this (d2l's `ratio`; 1 = full width).
    pub ratio: usize,
    /// d2l's head (flatten of the 7×7 map, no adaptive pool).
    pub d2l: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(VggConfig);

impl VggConfig {
    /// torchvision `vggNN[_bn]()`.
    pub fn torchvision(cfg: &[usize], batch_norm: bool, num_classes: usize, in_channels: usize) -> Self {
        Self {
            cfg: cfg.to_vec(),
            batch_norm,
            ratio: 1,
            d2l: false,
            in_channels,
            num_classes,
            init: InitScheme::Torchvision,
        }
    }

    /// d2l §8.2 VGG-11 on 1×224×224, channels divided by `ratio`.
    pub fn d2l(ratio: usize) -> Self {
        Self {
            cfg: VGG11.to_vec(),
            batch_norm: false,
            ratio,
            d2l: true,
            in_channels: 1,
            num_classes: 10,
            init: InitScheme::Xavier,
        }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> SeqNet {
        // torchvision: kaiming_normal(fan_out) convs and N(0, 0.01) linears, zero biases.
        let conv_w = self.init.weight(kaiming_normal_fan_out());
        let lin_w = self.init.weight(Initializer::Normal { mean: 0.0, std: 0.01 });
        let bias = self.init.bias(Some(Initializer::Zeros));
        let mut features = Vec::new();
        let mut c_in = self.in_channels;
        for &v in &self.cfg {
            if v == M {
                features.push(Layer::MaxPool(MaxPool2d::new(2, 2, 0)));
                continue;
            }
            let c_out = v / self.ratio;
            let conv = Conv2dConfig::new(c_in, c_out, 3).padding(1).init_with(conv_w.clone(), bias.clone());
            features.push(Layer::Conv(conv.init(device)));
            if self.batch_norm {
                features.push(Layer::Norm(BatchNormConfig::new(c_out).init(device)));
            }
            features.push(Layer::Relu(Relu));
            c_in = c_out;
        }
        let linear =
            |i, o| Layer::Linear(LinearConfig::new(i, o).init_with(lin_w.clone(), bias.clone()).init(device));
        let classifier = vec![
            linear(c_in * 7 * 7, 4096),
            Layer::Relu(Relu),
            Layer::Dropout(Dropout::new(0.5)),
            linear(4096, 4096),
            Layer::Relu(Relu),
            Layer::Dropout(Dropout::new(0.5)),
            linear(4096, self.num_classes),
        ];
        let avgpool = (!self.d2l).then(|| AdaptiveAvgPool2d::new(7, 7));
        SeqNet { features, avgpool, classifier }
    }
}
