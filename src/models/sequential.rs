//! [`SeqNet`]: `features → [adaptive pool] → flatten → classifier`, the shape of LeNet, AlexNet,
//! VGG and NiN in both d2l and torchvision. Field names are torchvision's, so Burn paths equal
//! `state_dict` keys (`features.0.weight`, `classifier.6.bias`).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::layers::{AdaptiveAvgPool2d, Flatten, Layer, forward_seq2, forward_seq4};
use crate::probe::{Describe, Probe};

/// A plain chain of layers with an optional adaptive pool before the flatten.
#[derive(Module, Debug)]
pub struct SeqNet {
    /// Convolutional part, run on `[b, c, h, w]`.
    pub features: Vec<Layer>,
    /// torchvision pools to a fixed size here (so any input size works); d2l flattens directly.
    pub avgpool: Option<AdaptiveAvgPool2d>,
    /// Part after the flatten, run on `[b, n]`.
    pub classifier: Vec<Layer>,
}

impl Describe for SeqNet {}

impl SeqNet {
    /// `[b, c, h, w]` → `[b, num_classes]`, reporting every layer to `probe`.
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, probe: &mut P) -> Tensor<2> {
        let x = probe.stage("features", &self.features, |p| forward_seq4(&self.features, x, p));
        let x = match &self.avgpool {
            Some(pool) => probe.stage("avgpool", pool, |_| pool.forward(x)),
            None => x,
        };
        let x = probe.stage("flatten", &Flatten, |_| Flatten.forward(x));
        if self.classifier.is_empty() {
            return x;
        }
        probe.stage("classifier", &self.classifier, |p| forward_seq2(&self.classifier, x, p))
    }
}
