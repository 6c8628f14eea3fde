//! GoogLeNet / Inception v1 (Szegedy et al. 2014), two versions.
//!
//! - d2l §8.4 for 1×96×96: convs with bias and ReLU, **no** batch norm, floor-mode
//!   `MaxPool(3, 2, p1)` everywhere, the paper's 5×5 conv in the third branch, no aux heads, no
//!   dropout.
//! - torchvision `googlenet()`: every conv is `BasicConv2d` (bias-free conv → BN(eps 1e-3) →
//!   ReLU), ceil-mode pools without padding (`maxpool4` is 2×2), a **3×3** conv in the "5×5"
//!   branch (known bug pytorch/vision#906, kept for weight compatibility), optional auxiliary
//!   classifiers on 4a and 4d (training only), dropout 0.2 before `fc`, and `transform_input`,
//!   which maps ImageNet-normalized input to the (x − 0.5)/0.5 range the ported TF weights expect.

use burn::module::{Initializer, Module};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::InitScheme;
use crate::instrument::{Describe, is_receptive_field_mode};
use crate::layers::{
    AdaptiveAvgPool2d, BatchNorm, BatchNormConfig, Conv2d, Conv2dConfig, Dropout, Flatten, Linear,
    LinearConfig, MaxPool2d, Relu, conv_act, conv_bn,
};
use crate::probe::Probe;
use cnnzoo_kernels::Activation;

/// `(in, 1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool proj)` of inception 3a … 5b.
pub const INCEPTION: [[usize; 7]; 9] = [
    [192, 64, 96, 128, 16, 32, 32],
    [256, 128, 128, 192, 32, 96, 64],
    [480, 192, 96, 208, 16, 48, 64],
    [512, 160, 112, 224, 24, 64, 64],
    [512, 128, 128, 256, 24, 64, 64],
    [512, 112, 144, 288, 32, 64, 64],
    [528, 256, 160, 320, 32, 128, 128],
    [832, 256, 160, 320, 32, 128, 128],
    [832, 384, 192, 384, 48, 128, 128],
];

/// GoogLeNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoogLeNetConfig {
    /// d2l's net (no BN, 5×5 branch, floor pools with padding, no dropout).
    pub d2l: bool,
    /// Build the two auxiliary classifiers (torchvision only).
    pub aux_logits: bool,
    /// Re-normalize ImageNet-normalized RGB input as torchvision's ported weights expect.
    pub transform_input: bool,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(GoogLeNetConfig);

impl GoogLeNetConfig {
    /// torchvision `googlenet()` (aux heads off, `transform_input` off, as its constructor).
    pub fn torchvision(num_classes: usize, in_channels: usize) -> Self {
        Self {
            d2l: false,
            aux_logits: false,
            transform_input: false,
            in_channels,
            num_classes,
            init: InitScheme::Torchvision,
        }
    }

    /// d2l §8.4 GoogLeNet for 1×96×96.
    pub fn d2l() -> Self {
        Self {
            d2l: true,
            aux_logits: false,
            transform_input: false,
            in_channels: 1,
            num_classes: 10,
            init: InitScheme::Xavier,
        }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> GoogLeNet {
        // torchvision: trunc_normal(0, 0.01, ±2) on conv and linear weights; at σ = 0.01 the
        // truncation at ±2 (200 σ) never triggers, so a plain normal is the same distribution.
        let w = self.init.weight(Initializer::Normal { mean: 0.0, std: 0.01 });
        let d2l = self.d2l;
        let basic = |c_in, c_out, k, s, p| BasicConv2d {
            conv: Conv2dConfig::new(c_in, c_out, k)
                .stride(s)
                .padding(p)
                .bias(d2l)
                .init_with(w.clone(), None)
                .init(device),
            bn: (!d2l).then(|| BatchNormConfig::new(c_out).epsilon(1e-3).init(device)),
        };
        let pool = |k| if d2l { MaxPool2d::new(3, 2, 1) } else { MaxPool2d::new(k, 2, 0).ceil() };
        let branch3_kernel = if d2l { 5 } else { 3 };
        let inception = |i: usize| {
            let [c_in, c1, c2r, c2, c3r, c3, c4] = INCEPTION[i];
            Inception {
                branch1: basic(c_in, c1, 1, 1, 0),
                branch2: vec![basic(c_in, c2r, 1, 1, 0), basic(c2r, c2, 3, 1, 1)],
                branch3: vec![
                    basic(c_in, c3r, 1, 1, 0),
                    basic(c3r, c3, branch3_kernel, 1, branch3_kernel / 2),
                ],
                branch4: vec![
                    PoolProj::Pool(if d2l {
                        MaxPool2d::new(3, 1, 1)
                    } else {
                        MaxPool2d::new(3, 1, 1).ceil()
                    }),
                    PoolProj::Proj(basic(c_in, c4, 1, 1, 0)),
                ],
            }
        };
        let linear = |i, o| LinearConfig::new(i, o).init_with(w.clone(), None).init(device);
        let aux = |c_in| InceptionAux {
            conv: basic(c_in, 128, 1, 1, 0),
            fc1: linear(2048, 1024),
            fc2: linear(1024, self.num_classes),
        };
        let aux_on = self.aux_logits && !d2l;
        GoogLeNet {
            conv1: basic(self.in_channels, 64, 7, 2, 3),
            maxpool1: pool(3),
            conv2: basic(64, 64, 1, 1, 0),
            conv3: basic(64, 192, 3, 1, 1),
            maxpool2: pool(3),
            inception3a: inception(0),
            inception3b: inception(1),
            maxpool3: pool(3),
            inception4a: inception(2),
            inception4b: inception(3),
            inception4c: inception(4),
            inception4d: inception(5),
            inception4e: inception(6),
            maxpool4: pool(2),
            inception5a: inception(7),
            inception5b: inception(8),
            aux1: aux_on.then(|| aux(512)),
            aux2: aux_on.then(|| aux(528)),
            avgpool: AdaptiveAvgPool2d::new(1, 1),
            dropout: Dropout::new(if d2l { 0.0 } else { 0.2 }),
            fc: linear(1024, self.num_classes),
            transform_input: self.transform_input && self.in_channels == 3,
        }
    }
}

/// Conv → (BN) → ReLU. torchvision's `BasicConv2d`; d2l has no BN and a biased conv.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl BasicConv2d {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.bn {
            Some(bn) => conv_bn(&self.conv, bn, x, true),
            None => conv_act(&self.conv, x, Activation::Relu),
        }
    }
}

/// The pool-projection branch: 3×3/1 max pool, then a 1×1 conv.
#[derive(Module, Debug)]
pub enum PoolProj {
    /// The pool.
    Pool(MaxPool2d),
    /// The projection.
    Proj(BasicConv2d),
}

/// Four parallel branches concatenated on channels.
#[derive(Module, Debug)]
pub struct Inception {
    branch1: BasicConv2d,
    branch2: Vec<BasicConv2d>,
    branch3: Vec<BasicConv2d>,
    branch4: Vec<PoolProj>,
}

impl Inception {
    fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<4> {
        let chain = |convs: &[BasicConv2d], x| convs.iter().fold(x, |x, c| c.forward(x));
        let b1 = p.stage("branch1", &self.branch1, |_| self.branch1.forward(x.clone()));
        let b2 = p.stage("branch2", &self.branch2, |_| chain(&self.branch2, x.clone()));
        let b3 = p.stage("branch3", &self.branch3, |_| chain(&self.branch3, x.clone()));
        let b4 = p.stage("branch4", &self.branch4, |_| {
            self.branch4.iter().fold(x, |x, m| match m {
                PoolProj::Pool(pool) => pool.forward(x),
                PoolProj::Proj(conv) => conv.forward(x),
            })
        });
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }
}

/// Auxiliary classifier: 4×4 average pool, 1×1 conv to 128, FC 2048→1024, dropout 0.7, FC.
#[derive(Module, Debug)]
pub struct InceptionAux {
    conv: BasicConv2d,
    fc1: Linear,
    fc2: Linear,
}

impl InceptionAux {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = AdaptiveAvgPool2d::new(4, 4).forward(x);
        let x = self.conv.forward(x).flatten(1, 3);
        let x = Relu.forward(self.fc1.forward(x));
        self.fc2.forward(Dropout::new(0.7).forward(x))
    }
}

/// GoogLeNet: stem, nine inception blocks in three groups, global average pool, classifier.
#[derive(Module, Debug)]
pub struct GoogLeNet {
    conv1: BasicConv2d,
    maxpool1: MaxPool2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    maxpool2: MaxPool2d,
    inception3a: Inception,
    inception3b: Inception,
    maxpool3: MaxPool2d,
    inception4a: Inception,
    inception4b: Inception,
    inception4c: Inception,
    inception4d: Inception,
    inception4e: Inception,
    maxpool4: MaxPool2d,
    inception5a: Inception,
    inception5b: Inception,
    aux1: Option<InceptionAux>,
    aux2: Option<InceptionAux>,
    avgpool: AdaptiveAvgPool2d,
    dropout: Dropout,
    fc: Linear,
    transform_input: bool,
}

impl Describe for BasicConv2d {}
impl Describe for Inception {}
impl Describe for GoogLeNet {}
impl Describe for Vec<BasicConv2d> {
    fn describe(&self) -> String {
        "BasicConv2d chain".into()
    }
}
impl Describe for Vec<PoolProj> {
    fn describe(&self) -> String {
        "MaxPool+BasicConv2d".into()
    }
}

/// ImageNet mean/std, and the affine map torchvision's `_transform_input` applies per channel.
fn transform_input(x: Tensor<4>) -> Tensor<4> {
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    let channels = (0..3)
        .map(|c| {
            let xc = x.clone().narrow(1, c, 1);
            xc.mul_scalar(STD[c] / 0.5).add_scalar((MEAN[c] - 0.5) / 0.5)
        })
        .collect();
    Tensor::cat(channels, 1)
}

impl GoogLeNet {
    /// `[b, c, h, w]` → `[b, num_classes]`, reporting every stage to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, p: &mut P) -> Tensor<2> {
        self.forward_all(x, p).0
    }

    /// Logits plus the two auxiliary logits when the aux heads exist and the device is a
    /// training (autodiff) device — torchvision's `GoogLeNetOutputs`.
    pub fn forward_all<P: Probe>(
        &self,
        x: Tensor<4>,
        p: &mut P,
    ) -> (Tensor<2>, Option<Tensor<2>>, Option<Tensor<2>>) {
        let training = x.device().is_autodiff();
        let x = if self.transform_input && !is_receptive_field_mode() { transform_input(x) } else { x };
        let x = p.stage("conv1", &self.conv1, |_| self.conv1.forward(x));
        let x = p.stage("maxpool1", &self.maxpool1, |_| self.maxpool1.forward(x));
        let x = p.stage("conv2", &self.conv2, |_| self.conv2.forward(x));
        let x = p.stage("conv3", &self.conv3, |_| self.conv3.forward(x));
        let x = p.stage("maxpool2", &self.maxpool2, |_| self.maxpool2.forward(x)); // [b, 192, h/8, w/8]
        let x = p.stage("inception3a", &self.inception3a, |p| self.inception3a.forward_with(x, p));
        let x = p.stage("inception3b", &self.inception3b, |p| self.inception3b.forward_with(x, p));
        let x = p.stage("maxpool3", &self.maxpool3, |_| self.maxpool3.forward(x)); // [b, 480, h/16, w/16]
        let x = p.stage("inception4a", &self.inception4a, |p| self.inception4a.forward_with(x, p));
        let aux1 = self.aux1.as_ref().filter(|_| training).map(|a| a.forward(x.clone()));
        let x = p.stage("inception4b", &self.inception4b, |p| self.inception4b.forward_with(x, p));
        let x = p.stage("inception4c", &self.inception4c, |p| self.inception4c.forward_with(x, p));
        let x = p.stage("inception4d", &self.inception4d, |p| self.inception4d.forward_with(x, p));
        let aux2 = self.aux2.as_ref().filter(|_| training).map(|a| a.forward(x.clone()));
        let x = p.stage("inception4e", &self.inception4e, |p| self.inception4e.forward_with(x, p));
        let x = p.stage("maxpool4", &self.maxpool4, |_| self.maxpool4.forward(x)); // [b, 832, h/32, w/32]
        let x = p.stage("inception5a", &self.inception5a, |p| self.inception5a.forward_with(x, p));
        let x = p.stage("inception5b", &self.inception5b, |p| self.inception5b.forward_with(x, p));
        let x = p.stage("avgpool", &self.avgpool, |_| self.avgpool.forward(x));
        let x = p.stage("flatten", &Flatten, |_| Flatten.forward(x));
        // torchvision's `dropout` module (a stage there); d2l's net has none.
        let x = if self.dropout.prob > 0.0 {
            p.stage("dropout", &self.dropout, |_| self.dropout.forward(x))
        } else {
            x
        };
        (p.stage("fc", &self.fc, |_| self.fc.forward(x)), aux1, aux2)
    }
}
