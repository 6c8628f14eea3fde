//! [`SeqNet`]: `features → [adaptive pool] → flatten → classifier`, the shape of LeNet, AlexNet,
//! VGG and NiN in both d2l and torchvision. Field names are torchvision's, so Burn paths equal
//! `state_dict` keys (`features.0.weight`, `classifier.6.bias`).

use burn::module::Module;
use burn::tensor::Tensor;

use crate::instrument::Describe;
use crate::layers::{AdaptiveAvgPool2d, Flatten, Layer, conv_act, conv_bn};
use crate::probe::Probe;
use cnnzoo_kernels::Activation;

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

/// Probe-aware forwards of a [`Layer`] (nested chains report their elements as stages).
trait LayerForward {
    fn forward4<P: Probe>(&self, x: Tensor<4>, probe: &mut P) -> Tensor<4>;
    fn forward2<P: Probe>(&self, x: Tensor<2>, probe: &mut P) -> Tensor<2>;
}

impl LayerForward for Layer {
    /// Forward on a feature map. Linear layers belong after a flatten: a preset that puts one
    /// here is a bug.
    fn forward4<P: Probe>(&self, x: Tensor<4>, probe: &mut P) -> Tensor<4> {
        match self {
            Layer::Conv(m) => m.forward(x),
            Layer::Norm(m) => m.forward(x),
            Layer::Relu(m) => m.forward(x),
            Layer::Sigmoid(m) => m.forward(x),
            Layer::MaxPool(m) => m.forward(x),
            Layer::AvgPool(m) => m.forward(x),
            Layer::AdaptiveAvgPool(m) => m.forward(x),
            Layer::Dropout(m) => m.forward(x),
            Layer::Seq(layers) => forward_seq4(layers, x, probe),
            Layer::Linear(_) => unreachable!("a Linear layer inside a feature extractor"),
        }
    }

    /// Forward on a flat `[b, n]` input (classifier heads).
    fn forward2<P: Probe>(&self, x: Tensor<2>, probe: &mut P) -> Tensor<2> {
        match self {
            Layer::Linear(m) => m.forward(x),
            Layer::Norm(m) => m.forward(x),
            Layer::Relu(m) => m.forward(x),
            Layer::Sigmoid(m) => m.forward(x),
            Layer::Dropout(m) => m.forward(x),
            Layer::Seq(layers) => forward_seq2(layers, x, probe),
            other => unreachable!("{other:?} inside a classifier head"),
        }
    }
}

/// Runs a chain on a feature map, tapping each element by its index.
///
/// Unprobed, a convolution followed by a batch norm (and a ReLU) runs as one layer
/// ([`conv_bn`]: folded in inference), and so does a convolution followed by a ReLU or a sigmoid
/// ([`conv_act`]: the activation inside the convolution's output pass in inference), and a
/// batch norm followed by a ReLU ([`crate::layers::BatchNorm::forward_relu`]: one op in
/// training).
pub(crate) fn forward_seq4<P: Probe>(layers: &[Layer], mut x: Tensor<4>, probe: &mut P) -> Tensor<4> {
    let mut i = 0;
    while i < layers.len() {
        if !probe.active()
            && let Layer::Conv(conv) = &layers[i]
        {
            match layers.get(i + 1) {
                Some(Layer::Norm(bn)) => {
                    let relu = matches!(layers.get(i + 2), Some(Layer::Relu(_)));
                    x = conv_bn(conv, bn, x, relu);
                    i += 2 + usize::from(relu);
                    continue;
                }
                Some(Layer::Relu(_)) => {
                    x = conv_act(conv, x, Activation::Relu);
                    i += 2;
                    continue;
                }
                Some(Layer::Sigmoid(_)) => {
                    x = conv_act(conv, x, Activation::Sigmoid);
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        if !probe.active()
            && let (Layer::Norm(bn), Some(Layer::Relu(_))) = (&layers[i], layers.get(i + 1))
        {
            x = bn.forward_relu(x);
            i += 2;
            continue;
        }
        let layer = &layers[i];
        x = probe.stage(i, layer, |p| layer.forward4(x, p));
        i += 1;
    }
    x
}

/// Runs a chain on flat features, tapping each element by its index.
pub(crate) fn forward_seq2<P: Probe>(layers: &[Layer], mut x: Tensor<2>, probe: &mut P) -> Tensor<2> {
    for (i, layer) in layers.iter().enumerate() {
        x = probe.stage(i, layer, |p| layer.forward2(x, p));
    }
    x
}
