//! ResNet (He et al. 2015), torchvision's V1.5 (the stride sits on the bottleneck's 3×3 conv,
//! not on its first 1×1), and d2l §8.6's ResNet-18 for 1×96×96 Fashion-MNIST.
//!
//! The d2l net differs in two ways: every conv keeps its bias (PyTorch's default), and the
//! projection shortcut is a biased 1×1 conv *without* batch norm.

use burn::module::{Initializer, Module};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::sequential::forward_seq4;
use super::{InitScheme, kaiming_normal_fan_out};
use crate::instrument::Describe;
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Flatten, Layer, Linear,
    LinearConfig, MaxPool2d, Relu, conv_bn, residual_sum,
};
use crate::probe::Probe;

/// Residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convs (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1 → 3×3 → 1×1, expansion 4 (ResNet-50/101/152).
    Bottleneck,
}

impl BlockKind {
    fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// ResNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage.
    pub layers: [usize; 4],
    /// Block type.
    pub block: BlockKind,
    /// d2l's variant: biased convs and a BN-free 1×1 shortcut.
    pub d2l: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
    /// torchvision's `zero_init_residual`: the last batch norm of every block starts with
    /// γ = 0, so that each block starts as the identity on its (non-negative) input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub zero_init_residual: bool,
}

impl_family!(ResNetConfig);

impl ResNetConfig {
    /// torchvision `resnetNN()` with the given block counts.
    pub fn torchvision(layers: [usize; 4], block: BlockKind, num_classes: usize, in_channels: usize) -> Self {
        Self {
            layers,
            block,
            d2l: false,
            in_channels,
            num_classes,
            init: InitScheme::Torchvision,
            zero_init_residual: false,
        }
    }

    /// d2l §8.6 ResNet-18 for 1×96×96.
    pub fn d2l() -> Self {
        Self {
            layers: [2, 2, 2, 2],
            block: BlockKind::Basic,
            d2l: true,
            in_channels: 1,
            num_classes: 10,
            init: InitScheme::Xavier,
            zero_init_residual: false,
        }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.init.weight(kaiming_normal_fan_out());
        let conv = |c_in, c_out, k, s, p| {
            Conv2dConfig::new(c_in, c_out, k)
                .stride(s)
                .padding(p)
                .bias(self.d2l)
                .init_with(w.clone(), None)
                .init(device)
        };
        let bn = |c| BatchNormConfig::new(c).init(device);
        // The block's last batch norm: γ = 0 under zero_init_residual.
        let last_bn = |c| {
            let mut norm = bn(c);
            if self.zero_init_residual {
                norm.gamma = Initializer::Zeros.init([c], device);
            }
            norm
        };
        let expansion = self.block.expansion();
        let mut c_in = 64;
        let mut stage = |width: usize, blocks: usize, stride: usize| -> Vec<Block> {
            (0..blocks)
                .map(|i| {
                    let s = if i == 0 { stride } else { 1 };
                    let c_out = width * expansion;
                    let downsample = (s != 1 || c_in != c_out).then(|| {
                        let proj = Layer::Conv(conv(c_in, c_out, 1, s, 0));
                        if self.d2l { vec![proj] } else { vec![proj, Layer::Norm(bn(c_out))] }
                    });
                    let block = match self.block {
                        BlockKind::Basic => Block::Basic(BasicBlock {
                            conv1: conv(c_in, width, 3, s, 1),
                            bn1: bn(width),
                            conv2: conv(width, width, 3, 1, 1),
                            bn2: last_bn(width),
                            downsample,
                        }),
                        BlockKind::Bottleneck => Block::Bottleneck(Bottleneck {
                            conv1: conv(c_in, width, 1, 1, 0),
                            bn1: bn(width),
                            conv2: conv(width, width, 3, s, 1),
                            bn2: bn(width),
                            conv3: conv(width, c_out, 1, 1, 0),
                            bn3: last_bn(c_out),
                            downsample,
                        }),
                    };
                    c_in = c_out;
                    block
                })
                .collect()
        };
        let layer1 = stage(64, self.layers[0], 1);
        let layer2 = stage(128, self.layers[1], 2);
        let layer3 = stage(256, self.layers[2], 2);
        let layer4 = stage(512, self.layers[3], 2);
        let fc_w = self.init.weight(crate::layers::pytorch_weight_init());
        let fc = LinearConfig::new(512 * expansion, self.num_classes).init_with(fc_w, None::<Initializer>);
        ResNet {
            conv1: conv(self.in_channels, 64, 7, 2, 3),
            bn1: bn(64),
            relu: Relu,
            maxpool: MaxPool2d::new(3, 2, 1),
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            fc: fc.init(device),
        }
    }
}

/// Two 3×3 convs with an identity or projection shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Vec<Layer>>,
}

/// 1×1 reduce → 3×3 (carries the stride) → 1×1 expand, with a shortcut.
#[derive(Module, Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Vec<Layer>>,
}

/// One residual block of either kind.
#[derive(Module, Debug)]
pub enum Block {
    /// ResNet-18/34.
    Basic(BasicBlock),
    /// ResNet-50/101/152.
    Bottleneck(Bottleneck),
}

impl Describe for BasicBlock {}
impl Describe for Bottleneck {}
impl Describe for Block {
    fn describe(&self) -> String {
        match self {
            Block::Basic(b) => b.describe(),
            Block::Bottleneck(b) => b.describe(),
        }
    }
}
impl Describe for Vec<Block> {
    fn describe(&self) -> String {
        format!("{}×{}", self.len(), self.first().map(Describe::describe).unwrap_or_default())
    }
}

fn shortcut<P: Probe>(downsample: &Option<Vec<Layer>>, x: Tensor<4>, p: &mut P) -> Tensor<4> {
    match downsample {
        Some(layers) => p.stage("downsample", layers, |p| forward_seq4(layers, x, p)),
        None => x,
    }
}

impl Block {
    /// The block on its own: `[b, c, h, w]` → the block's output.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, &mut ())
    }

    /// Whether the shortcut is the identity (no projection).
    pub fn has_identity_shortcut(&self) -> bool {
        match self {
            Block::Basic(b) => b.downsample.is_none(),
            Block::Bottleneck(b) => b.downsample.is_none(),
        }
    }

    fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<4> {
        match self {
            // Unprobed, each conv → BN (→ ReLU) runs as one layer (folded in inference).
            Block::Basic(b) if !p.active() => {
                let y = conv_bn(&b.conv1, &b.bn1, x.clone(), true);
                let y = conv_bn(&b.conv2, &b.bn2, y, false);
                Relu.forward(residual_sum(y, shortcut(&b.downsample, x, p)))
            }
            Block::Bottleneck(b) if !p.active() => {
                let y = conv_bn(&b.conv1, &b.bn1, x.clone(), true);
                let y = conv_bn(&b.conv2, &b.bn2, y, true);
                let y = conv_bn(&b.conv3, &b.bn3, y, false);
                Relu.forward(residual_sum(y, shortcut(&b.downsample, x, p)))
            }
            Block::Basic(b) => {
                let y = p.stage("conv1", &b.conv1, |_| b.conv1.forward(x.clone()));
                let y = Relu.forward(p.stage("bn1", &b.bn1, |_| b.bn1.forward(y)));
                let y = p.stage("conv2", &b.conv2, |_| b.conv2.forward(y));
                let y = p.stage("bn2", &b.bn2, |_| b.bn2.forward(y));
                Relu.forward(residual_sum(y, shortcut(&b.downsample, x, p)))
            }
            Block::Bottleneck(b) => {
                let y = p.stage("conv1", &b.conv1, |_| b.conv1.forward(x.clone()));
                let y = Relu.forward(p.stage("bn1", &b.bn1, |_| b.bn1.forward(y)));
                let y = p.stage("conv2", &b.conv2, |_| b.conv2.forward(y));
                let y = Relu.forward(p.stage("bn2", &b.bn2, |_| b.bn2.forward(y)));
                let y = p.stage("conv3", &b.conv3, |_| b.conv3.forward(y));
                let y = p.stage("bn3", &b.bn3, |_| b.bn3.forward(y));
                Relu.forward(residual_sum(y, shortcut(&b.downsample, x, p)))
            }
        }
    }
}

/// ResNet: stem, four stages of residual blocks, global average pool, linear classifier.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    relu: Relu,
    maxpool: MaxPool2d,
    layer1: Vec<Block>,
    layer2: Vec<Block>,
    layer3: Vec<Block>,
    layer4: Vec<Block>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl Describe for ResNet {}

impl ResNet {
    /// The blocks of stage `stage` (1 to 4: torchvision's `layer1` … `layer4`).
    pub fn stage(&self, stage: usize) -> &[Block] {
        match stage {
            1 => &self.layer1,
            2 => &self.layer2,
            3 => &self.layer3,
            4 => &self.layer4,
            _ => &[],
        }
    }

    /// `[b, c, h, w]` → `[b, num_classes]`, reporting every stage to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<2> {
        let x = if p.active() {
            let x = p.stage("conv1", &self.conv1, |_| self.conv1.forward(x));
            let x = p.stage("bn1", &self.bn1, |_| self.bn1.forward(x));
            p.stage("relu", &self.relu, |_| self.relu.forward(x))
        } else {
            conv_bn(&self.conv1, &self.bn1, x, true)
        };
        let x = p.stage("maxpool", &self.maxpool, |_| self.maxpool.forward(x)); // [b, 64, h/4, w/4]
        let stages = [
            ("layer1", &self.layer1),
            ("layer2", &self.layer2),
            ("layer3", &self.layer3),
            ("layer4", &self.layer4),
        ];
        let mut x = x;
        for (name, blocks) in stages {
            x = p.stage(name, blocks, |p| {
                blocks
                    .iter()
                    .enumerate()
                    .fold(x, |x, (i, block)| p.stage(i, block, |p| block.forward_with(x, p)))
            });
        } // [b, 512·e, h/32, w/32]
        let x = p.stage("avgpool", &self.avgpool, |_| self.avgpool.forward(x));
        let x = p.stage("flatten", &Flatten, |_| Flatten.forward(x));
        p.stage("fc", &self.fc, |_| self.fc.forward(x))
    }
}
