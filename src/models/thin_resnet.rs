//! The thin residual networks of He et al. 2016 §4.2 (their CIFAR-10 study, Fig. 6 and
//! Table 6): a 3×3 stem, three stages of `n` basic blocks at widths w, 2w, 4w (the first block
//! of stages two and three halves the map), global average pool, linear — `6n + 2` weighted
//! layers — and the same network without its shortcuts ("plain"), which is what `cnnzoo
//! experiment residual` trains side by side.
//!
//! Where the widths change, the shortcut is a 1×1 projection with batch norm (the paper's
//! option B; its CIFAR nets use zero-padding, option A).

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::kaiming_normal_fan_out;
use crate::instrument::Describe;
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Flatten, Linear, LinearConfig, Relu,
    residual_sum,
};
use crate::probe::Probe;

/// Thin ResNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThinResNetConfig {
    /// Blocks per stage (depth `6n + 2`).
    pub blocks: usize,
    /// Channels of the first stage (the paper: 16).
    pub width: usize,
    /// Identity shortcuts (a ResNet) or none (a plain network).
    pub shortcuts: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
}

impl_family!(ThinResNetConfig);

impl ThinResNetConfig {
    /// A net of `depth = 6n + 2` weighted layers (20, 32, 44, 56, 110 in the paper), first
    /// stage `width` channels, for 1-channel inputs and 10 classes.
    pub fn new(depth: usize, width: usize, shortcuts: bool) -> Option<Self> {
        (depth >= 8 && (depth - 2).is_multiple_of(6) && width > 0).then(|| Self {
            blocks: (depth - 2) / 6,
            width,
            shortcuts,
            in_channels: 1,
            num_classes: 10,
        })
    }

    /// Weighted layers: convolutions on the main path and the linear layer.
    pub fn depth(&self) -> usize {
        6 * self.blocks + 2
    }

    /// Builds the network (Kaiming-normal convs, γ = 1, as torchvision's ResNets).
    pub fn init(&self, device: &Device) -> ThinResNet {
        let conv = |c_in, c_out, k, s| {
            Conv2dConfig::new(c_in, c_out, k)
                .stride(s)
                .padding(k / 2)
                .bias(false)
                .init_with(kaiming_normal_fan_out(), None)
                .init(device)
        };
        let bn = |c| BatchNormConfig::new(c).init(device);
        let mut c_in = self.width;
        let mut stages = Vec::new();
        for stage in 0..3 {
            let width = self.width << stage;
            let blocks = (0..self.blocks)
                .map(|i| {
                    let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                    let projection = self.shortcuts && (stride != 1 || c_in != width);
                    let block = ThinBlock {
                        conv1: conv(c_in, width, 3, stride),
                        bn1: bn(width),
                        conv2: conv(width, width, 3, 1),
                        bn2: bn(width),
                        projection: projection.then(|| (conv(c_in, width, 1, stride), bn(width))),
                        shortcut: self.shortcuts,
                    };
                    c_in = width;
                    block
                })
                .collect();
            stages.push(blocks);
        }
        let fc = LinearConfig::new(c_in, self.num_classes).init(device);
        let [stage1, stage2, stage3]: [Vec<ThinBlock>; 3] = stages.try_into().expect("three stages");
        ThinResNet {
            conv1: conv(self.in_channels, self.width, 3, 1),
            bn1: bn(self.width),
            stage1,
            stage2,
            stage3,
            fc,
        }
    }
}

/// Two 3×3 convs, with or without the shortcut around them.
#[derive(Module, Debug)]
pub struct ThinBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    projection: Option<(Conv2d, BatchNorm)>,
    shortcut: bool,
}

impl Describe for ThinBlock {
    fn describe(&self) -> String {
        if self.shortcut { "BasicBlock".into() } else { "PlainBlock".into() }
    }
}

impl Describe for Vec<ThinBlock> {
    fn describe(&self) -> String {
        format!("{}×{}", self.len(), self.first().map(Describe::describe).unwrap_or_default())
    }
}

impl ThinBlock {
    fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<4> {
        let y = p.stage("conv1", &self.conv1, |_| self.conv1.forward(x.clone()));
        let y = Relu.forward(p.stage("bn1", &self.bn1, |_| self.bn1.forward(y)));
        let y = p.stage("conv2", &self.conv2, |_| self.conv2.forward(y));
        let y = p.stage("bn2", &self.bn2, |_| self.bn2.forward(y));
        if !self.shortcut {
            return Relu.forward(y);
        }
        let identity = match &self.projection {
            Some((conv, bn)) => p.stage("downsample", conv, |_| bn.forward(conv.forward(x))),
            None => x,
        };
        Relu.forward(residual_sum(y, identity))
    }
}

/// Stem, three stages of [`ThinBlock`]s, global average pool, linear classifier.
#[derive(Module, Debug)]
pub struct ThinResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    stage1: Vec<ThinBlock>,
    stage2: Vec<ThinBlock>,
    stage3: Vec<ThinBlock>,
    fc: Linear,
}

impl Describe for ThinResNet {}

impl ThinResNet {
    /// `[b, c, h, w]` → `[b, num_classes]`, reporting every stage to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<2> {
        let x = p.stage("conv1", &self.conv1, |_| self.conv1.forward(x));
        let mut x = Relu.forward(p.stage("bn1", &self.bn1, |_| self.bn1.forward(x)));
        for (name, blocks) in [("stage1", &self.stage1), ("stage2", &self.stage2), ("stage3", &self.stage3)] {
            x = p.stage(name, blocks, |p| {
                blocks.iter().enumerate().fold(x, |x, (i, b)| p.stage(i, b, |p| b.forward_with(x, p)))
            });
        }
        let pool = AdaptiveAvgPool2d::new(1, 1);
        let x = p.stage("avgpool", &pool, |_| pool.forward(x));
        let x = p.stage("flatten", &Flatten, |_| Flatten.forward(x));
        p.stage("fc", &self.fc, |_| self.fc.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    #[test]
    fn depth_and_parameters_follow_the_paper() {
        assert!(ThinResNetConfig::new(21, 16, true).is_none());
        let device = Device::flex();
        for depth in [20, 56] {
            let res = ThinResNetConfig::new(depth, 16, true).unwrap();
            let plain = ThinResNetConfig { shortcuts: false, ..res.clone() };
            assert_eq!(res.depth(), depth);
            let count = |c: &ThinResNetConfig| {
                crate::instrument::num_params(&ModelConfig::from(c.clone()).init(&device))
            };
            // He et al. Table 6: ResNet-20 0.27M, ResNet-56 0.85M (3 input channels, option A).
            let n = count(&res) as f64;
            let published = if depth == 20 { 0.27e6 } else { 0.85e6 };
            assert!((n / published - 1.0).abs() < 0.06, "{depth}: {n}");
            // The plain net lacks only the two projections (conv + BN each).
            assert_eq!(count(&res) - count(&plain), (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64));
            let y = ModelConfig::from(plain).init(&device).forward(Tensor::zeros([2, 1, 28, 28], &device));
            assert_eq!(y.dims(), [2, 10]);
        }
    }
}
