//! DenseNet (Huang et al. 2016), torchvision's DenseNet-BC (121/161/169/201: 1×1 bottleneck of
//! `bn_size · growth` channels, compression 0.5), and d2l §8.7's small DenseNet for 1×96×96:
//! four dense blocks of four BN → ReLU → 3×3 conv layers (no bottleneck), growth 32, biased
//! convs, transitions that halve the channels.
//!
//! d2l-en v0.17 ends in `AdaptiveMaxPool2d`; d2l-zh v2 and d2l 1.0 use average pooling, as
//! torchvision does — we follow the latter.

use burn::module::{Initializer, Module};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{InitScheme, kaiming_normal_fan_in};
use crate::instrument::Describe;
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Flatten, Linear,
    LinearConfig, MaxPool2d, Relu,
};
use crate::probe::Probe;

/// DenseNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseNetConfig {
    /// Channels each dense layer adds (k).
    pub growth_rate: usize,
    /// Dense layers per block (four blocks).
    pub block_config: [usize; 4],
    /// Channels after the stem.
    pub num_init_features: usize,
    /// Bottleneck width factor (`bn_size · k` channels in the 1×1 conv); `None` = no bottleneck
    /// (d2l).
    pub bn_size: Option<usize>,
    /// Convs carry a bias (d2l) or not (torchvision).
    pub conv_bias: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
    /// Transition layers between the blocks (BN → ReLU → 1×1 conv halving the channels → 2×2
    /// average pool); without them (`cnnzoo experiment transition`) only the pool remains and
    /// the channels keep growing.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub transitions: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl_family!(DenseNetConfig);

impl DenseNetConfig {
    /// torchvision `densenetNNN()`.
    pub fn torchvision(
        growth_rate: usize,
        block_config: [usize; 4],
        num_init_features: usize,
        num_classes: usize,
        in_channels: usize,
    ) -> Self {
        Self {
            growth_rate,
            block_config,
            num_init_features,
            bn_size: Some(4),
            conv_bias: false,
            in_channels,
            num_classes,
            init: InitScheme::Torchvision,
            transitions: true,
        }
    }

    /// d2l §8.7 DenseNet for 1×96×96.
    pub fn d2l() -> Self {
        Self {
            growth_rate: 32,
            block_config: [4, 4, 4, 4],
            num_init_features: 64,
            bn_size: None,
            conv_bias: true,
            in_channels: 1,
            num_classes: 10,
            init: InitScheme::Xavier,
            transitions: true,
        }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> DenseNet {
        let w = self.init.weight(kaiming_normal_fan_in());
        let conv = |c_in, c_out, k, s, p| {
            Conv2dConfig::new(c_in, c_out, k)
                .stride(s)
                .padding(p)
                .bias(self.conv_bias)
                .init_with(w.clone(), None)
                .init(device)
        };
        let bn = |c| BatchNormConfig::new(c).init(device);
        let k = self.growth_rate;
        let mut c = self.num_init_features;
        let mut blocks = Vec::new();
        let mut transitions = Vec::new();
        for (i, &n) in self.block_config.iter().enumerate() {
            let layers = (0..n)
                .map(|j| {
                    let c_in = c + j * k;
                    match self.bn_size {
                        Some(bn_size) => DenseLayer {
                            norm1: Some(bn(c_in)),
                            conv1: Some(conv(c_in, bn_size * k, 1, 1, 0)),
                            norm2: bn(bn_size * k),
                            conv2: conv(bn_size * k, k, 3, 1, 1),
                        },
                        None => DenseLayer {
                            norm1: None,
                            conv1: None,
                            norm2: bn(c_in),
                            conv2: conv(c_in, k, 3, 1, 1),
                        },
                    }
                })
                .collect();
            blocks.push(DenseBlock { layers });
            c += n * k;
            if i + 1 < self.block_config.len() {
                let pool = AvgPool2d::new(2, 2);
                if self.transitions {
                    transitions.push(Transition {
                        norm: Some(bn(c)),
                        conv: Some(conv(c, c / 2, 1, 1, 0)),
                        pool,
                    });
                    c /= 2;
                } else {
                    transitions.push(Transition { norm: None, conv: None, pool });
                }
            }
        }
        let [denseblock1, denseblock2, denseblock3, denseblock4]: [DenseBlock; 4] =
            blocks.try_into().expect("four dense blocks");
        let [transition1, transition2, transition3]: [Transition; 3] =
            transitions.try_into().expect("three transitions");
        // torchvision: linear bias 0 (weight keeps PyTorch's default).
        let lin_w = self.init.weight(crate::layers::pytorch_weight_init());
        let classifier = LinearConfig::new(c, self.num_classes)
            .init_with(lin_w, self.init.bias(Some(Initializer::Zeros)))
            .init(device);
        DenseNet {
            features: Features {
                conv0: conv(self.in_channels, self.num_init_features, 7, 2, 3),
                norm0: bn(self.num_init_features),
                relu0: Relu,
                pool0: MaxPool2d::new(3, 2, 1),
                denseblock1,
                transition1,
                denseblock2,
                transition2,
                denseblock3,
                transition3,
                denseblock4,
                norm5: bn(c),
            },
            classifier,
        }
    }
}

/// BN → ReLU → [1×1 conv → BN → ReLU →] 3×3 conv producing `growth_rate` new channels.
#[derive(Module, Debug)]
pub struct DenseLayer {
    norm1: Option<BatchNorm>,
    conv1: Option<Conv2d>,
    norm2: BatchNorm,
    conv2: Conv2d,
}

impl DenseLayer {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match (&self.norm1, &self.conv1) {
            (Some(norm), Some(conv)) => conv.forward(norm.forward_relu(x)),
            _ => x,
        };
        self.conv2.forward(self.norm2.forward_relu(x))
    }
}

/// Dense layers, each fed the concatenation of all earlier outputs.
#[derive(Module, Debug)]
pub struct DenseBlock {
    layers: Vec<DenseLayer>,
}

/// BN → ReLU → 1×1 conv (halves the channels) → 2×2 average pool; only the pool when the
/// config has no transitions.
#[derive(Module, Debug)]
pub struct Transition {
    norm: Option<BatchNorm>,
    conv: Option<Conv2d>,
    pool: AvgPool2d,
}

/// torchvision's `features` Sequential, with its names.
#[derive(Module, Debug)]
pub struct Features {
    conv0: Conv2d,
    norm0: BatchNorm,
    relu0: Relu,
    pool0: MaxPool2d,
    denseblock1: DenseBlock,
    transition1: Transition,
    denseblock2: DenseBlock,
    transition2: Transition,
    denseblock3: DenseBlock,
    transition3: Transition,
    denseblock4: DenseBlock,
    norm5: BatchNorm,
}

/// DenseNet: stem, dense blocks joined by transitions, BN → ReLU → global pool → linear.
#[derive(Module, Debug)]
pub struct DenseNet {
    features: Features,
    classifier: Linear,
}

impl Describe for DenseLayer {}
impl Describe for DenseBlock {}
impl Describe for Transition {}
impl Describe for Features {}
impl Describe for DenseNet {}

impl DenseBlock {
    fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<4> {
        let mut features = vec![x];
        for (i, layer) in self.layers.iter().enumerate() {
            let input = Tensor::cat(features.clone(), 1);
            // torchvision names the layers denselayer1, denselayer2, …
            features.push(p.stage(format!("denselayer{}", i + 1), layer, |_| layer.forward(input)));
        }
        Tensor::cat(features, 1)
    }
}

impl Transition {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = match (&self.norm, &self.conv) {
            (Some(norm), Some(conv)) => conv.forward(norm.forward_relu(x)),
            _ => x,
        };
        self.pool.forward(x)
    }
}

impl DenseNet {
    /// `[b, c, h, w]` → `[b, num_classes]`, reporting every stage to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<2> {
        let f = &self.features;
        let x = p.stage("features", f, |p| {
            let x = p.stage("conv0", &f.conv0, |_| f.conv0.forward(x));
            let x = p.stage("norm0", &f.norm0, |_| f.norm0.forward(x));
            let x = p.stage("relu0", &f.relu0, |_| f.relu0.forward(x));
            let x = p.stage("pool0", &f.pool0, |_| f.pool0.forward(x)); // [b, c0, h/4, w/4]
            let x = p.stage("denseblock1", &f.denseblock1, |p| f.denseblock1.forward_with(x, p));
            let x = p.stage("transition1", &f.transition1, |_| f.transition1.forward(x));
            let x = p.stage("denseblock2", &f.denseblock2, |p| f.denseblock2.forward_with(x, p));
            let x = p.stage("transition2", &f.transition2, |_| f.transition2.forward(x));
            let x = p.stage("denseblock3", &f.denseblock3, |p| f.denseblock3.forward_with(x, p));
            let x = p.stage("transition3", &f.transition3, |_| f.transition3.forward(x));
            let x = p.stage("denseblock4", &f.denseblock4, |p| f.denseblock4.forward_with(x, p));
            p.stage("norm5", &f.norm5, |_| f.norm5.forward(x))
        });
        let x = Relu.forward(x);
        let x =
            p.stage("avgpool", &AdaptiveAvgPool2d::new(1, 1), |_| AdaptiveAvgPool2d::new(1, 1).forward(x));
        let x = p.stage("flatten", &Flatten, |_| Flatten.forward(x));
        p.stage("classifier", &self.classifier, |_| self.classifier.forward(x))
    }
}
