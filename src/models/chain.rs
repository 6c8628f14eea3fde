//! [`ChainConfig`]: a plain chain of layers written as a list of [`Op`]s — the networks that
//! `cnnzoo experiment` builds to change one design choice at a time (LeNet with ReLU instead of
//! sigmoid, dense layers with and without dropout, stacked 3×3 convs against one larger kernel).
//!
//! The chain is a [`SeqNet`]: the ops up to [`Op::Flatten`] form `features`, the rest and a last
//! linear layer to `num_classes` form `classifier`. Linear layers' input sizes follow from the
//! input side the chain is built for.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::InitScheme;
use super::sequential::SeqNet;
use crate::error::{Error, Result};
use crate::layers::{
    AvgPool2d, BatchNormConfig, Conv2dConfig, Dropout, Layer, LinearConfig, MaxPool2d, Relu, Sigmoid,
};

/// One layer of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Op {
    /// Convolution with a bias: `out` channels, a `kernel`×`kernel` window.
    Conv {
        /// Output channels.
        out: usize,
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on each side.
        padding: usize,
    },
    /// Batch norm over the channels (or features, after the flatten).
    BatchNorm,
    /// ReLU.
    Relu,
    /// Sigmoid.
    Sigmoid,
    /// Max pool.
    MaxPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Average pool.
    AvgPool {
        /// Window side.
        kernel: usize,
        /// Stride.
        stride: usize,
    },
    /// Dropout with probability `p`.
    Dropout {
        /// Probability of zeroing an element.
        p: f64,
    },
    /// The end of the convolutional part.
    Flatten,
    /// Linear layer with `out` features.
    Linear {
        /// Output features.
        out: usize,
    },
}

impl Op {
    /// A `kernel`×`kernel` convolution to `out` channels keeping the size (stride 1, "same"
    /// padding for odd kernels).
    pub fn conv_same(out: usize, kernel: usize) -> Self {
        Op::Conv { out, kernel, stride: 1, padding: kernel / 2 }
    }
}

/// A chain of layers for an input of `in_channels`×`side`×`side`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// The layers, a final linear layer to `num_classes` excluded.
    pub ops: Vec<Op>,
    /// Input side the linear layers are sized for.
    pub side: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(ChainConfig);

/// The shape flowing through a chain while it is checked.
#[derive(Clone, Copy)]
enum Flow {
    Map { c: usize, side: usize },
    Flat(usize),
}

impl ChainConfig {
    /// A chain for `in_channels`×`side`×`side` inputs and 10 classes, checked: every op must
    /// fit the shape it receives (convolutions and pools before the flatten, a window no larger
    /// than the map, a dropout probability in [0, 1)).
    pub fn new(ops: Vec<Op>, in_channels: usize, side: usize, init: InitScheme) -> Result<Self> {
        let config = Self { ops, side, in_channels, num_classes: 10, init };
        config.flat_features()?;
        Ok(config)
    }

    /// Features reaching the final linear layer, or why the chain does not fit its input.
    fn flat_features(&self) -> Result<usize> {
        let bad = |i: usize, why: String| {
            Err(Error::invalid("chain", format!("op {} ({:?}): {why}", i + 1, self.ops[i])))
        };
        let mut flow = Flow::Map { c: self.in_channels, side: self.side };
        for (i, op) in self.ops.iter().enumerate() {
            flow = match (*op, flow) {
                (Op::Conv { out, kernel, stride, padding }, Flow::Map { side, .. }) => {
                    if out == 0 || kernel == 0 || stride == 0 || side + 2 * padding < kernel {
                        return bad(i, format!("does not fit a {side}×{side} map"));
                    }
                    Flow::Map { c: out, side: (side + 2 * padding - kernel) / stride + 1 }
                }
                (Op::MaxPool { kernel, stride } | Op::AvgPool { kernel, stride }, Flow::Map { c, side }) => {
                    if kernel == 0 || stride == 0 || side < kernel {
                        return bad(i, format!("does not fit a {side}×{side} map"));
                    }
                    Flow::Map { c, side: (side - kernel) / stride + 1 }
                }
                (Op::Flatten, Flow::Map { c, side }) => Flow::Flat(c * side * side),
                (Op::Linear { out }, Flow::Flat(_)) if out > 0 => Flow::Flat(out),
                (Op::Dropout { p }, f) if (0.0..1.0).contains(&p) => f,
                (Op::BatchNorm | Op::Relu | Op::Sigmoid, f) => f,
                (_, Flow::Map { .. }) => return bad(i, "needs flat features (after `flatten`)".into()),
                (_, Flow::Flat(_)) => return bad(i, "needs a feature map (before `flatten`)".into()),
            };
        }
        Ok(match flow {
            Flow::Map { c, side } => c * side * side,
            Flow::Flat(n) => n,
        })
    }

    /// Builds the network. Panics only on a chain that [`ChainConfig::new`] would refuse.
    pub fn init(&self, device: &Device) -> SeqNet {
        let w = self.init.weight(crate::layers::pytorch_weight_init());
        let (mut features, mut classifier) = (Vec::new(), Vec::new());
        let mut c = self.in_channels;
        let mut flat = None;
        let mut last_width = 0;
        for op in &self.ops {
            let layer = match *op {
                Op::Conv { out, kernel, stride, padding } => {
                    let cfg = Conv2dConfig::new(c, out, kernel).stride(stride).padding(padding);
                    c = out;
                    Layer::Conv(cfg.init_with(w.clone(), None).init(device))
                }
                Op::BatchNorm => Layer::Norm(
                    BatchNormConfig::new(if flat.is_some() { last_width } else { c }).init(device),
                ),
                Op::Relu => Layer::Relu(Relu),
                Op::Sigmoid => Layer::Sigmoid(Sigmoid),
                Op::MaxPool { kernel, stride } => Layer::MaxPool(MaxPool2d::new(kernel, stride, 0)),
                Op::AvgPool { kernel, stride } => Layer::AvgPool(AvgPool2d::new(kernel, stride)),
                Op::Dropout { p } => Layer::Dropout(Dropout::new(p)),
                Op::Flatten => {
                    let n = self.flat_until_flatten();
                    flat = Some(n);
                    last_width = n;
                    continue;
                }
                Op::Linear { out } => {
                    let layer = LinearConfig::new(last_width, out).init_with(w.clone(), None).init(device);
                    last_width = out;
                    Layer::Linear(layer)
                }
            };
            if flat.is_some() { classifier.push(layer) } else { features.push(layer) }
        }
        let d_in = if flat.is_some() { last_width } else { self.flat_features().expect("a checked chain") };
        classifier
            .push(Layer::Linear(LinearConfig::new(d_in, self.num_classes).init_with(w, None).init(device)));
        SeqNet { features, avgpool: None, classifier }
    }

    /// Features at the flatten: the chain cut there.
    fn flat_until_flatten(&self) -> usize {
        let end = self.ops.iter().position(|op| *op == Op::Flatten).unwrap_or(self.ops.len());
        let head = Self { ops: self.ops[..end].to_vec(), ..self.clone() };
        head.flat_features().expect("a checked chain")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    fn lenet(act: Op) -> Vec<Op> {
        vec![
            Op::conv_same(6, 5),
            act,
            Op::AvgPool { kernel: 2, stride: 2 },
            Op::Conv { out: 16, kernel: 5, stride: 1, padding: 0 },
            act,
            Op::AvgPool { kernel: 2, stride: 2 },
            Op::Flatten,
            Op::Linear { out: 120 },
            act,
            Op::Linear { out: 84 },
            act,
        ]
    }

    #[test]
    fn a_lenet_chain_has_lenets_parameters() {
        let device = Device::flex();
        let chain = ChainConfig::new(lenet(Op::Relu), 1, 28, InitScheme::Xavier).unwrap();
        let model = ModelConfig::from(chain).init(&device);
        // d2l LeNet: 61,706 parameters (reference.md), whatever the activation.
        assert_eq!(crate::instrument::num_params(&model), 61_706);
        let y = model.forward(burn::tensor::Tensor::zeros([2, 1, 28, 28], &device));
        assert_eq!(y.dims(), [2, 10]);
    }

    #[test]
    fn chains_that_do_not_fit_are_refused_with_the_op() {
        let err = ChainConfig::new(vec![Op::Flatten, Op::conv_same(4, 3)], 1, 28, InitScheme::Xavier);
        assert!(err.unwrap_err().to_string().contains("op 2"), "conv after flatten");
        let err = ChainConfig::new(
            vec![Op::Conv { out: 4, kernel: 9, stride: 1, padding: 0 }],
            1,
            8,
            InitScheme::Xavier,
        );
        assert!(err.unwrap_err().to_string().contains("8×8"));
        let err = ChainConfig::new(vec![Op::Dropout { p: 1.0 }], 1, 8, InitScheme::Xavier);
        assert!(err.is_err());
        // Without a flatten, the last map is flattened into the final linear layer.
        let ok = ChainConfig::new(vec![Op::conv_same(4, 3), Op::Relu], 1, 8, InitScheme::Xavier).unwrap();
        let model = ModelConfig::from(ok).init(&Device::flex());
        assert_eq!(crate::instrument::num_params(&model), (9 + 1) * 4 + (4 * 64 + 1) * 10);
    }
}
