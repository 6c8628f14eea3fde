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

/// The shape flowing through a chain: a feature map, or flat features after the flatten.
#[derive(Clone, Copy)]
enum Flow {
    Map { c: usize, side: usize },
    Flat(usize),
}

impl Flow {
    /// Channels of a map, features of a flat input (what a batch norm normalizes).
    fn width(self) -> usize {
        match self {
            Flow::Map { c, .. } => c,
            Flow::Flat(n) => n,
        }
    }

    /// Values per image (what a flatten produces).
    fn size(self) -> usize {
        match self {
            Flow::Map { c, side } => c * side * side,
            Flow::Flat(n) => n,
        }
    }
}

impl ChainConfig {
    /// A chain for `in_channels`×`side`×`side` inputs and 10 classes, checked: every op must
    /// fit the shape it receives (convolutions and pools before the flatten, a window no larger
    /// than the map, a dropout probability in [0, 1)).
    pub fn new(ops: Vec<Op>, in_channels: usize, side: usize, init: InitScheme) -> Result<Self> {
        let config = Self { ops, side, in_channels, num_classes: 10, init };
        config.flows()?;
        Ok(config)
    }

    /// The shape each op receives, and last the one the final linear layer receives; or why
    /// the chain does not fit its input.
    fn flows(&self) -> Result<Vec<Flow>> {
        let bad = |i: usize, why: String| {
            Err(Error::invalid("chain", format!("op {} ({:?}): {why}", i + 1, self.ops[i])))
        };
        let mut flows = vec![Flow::Map { c: self.in_channels, side: self.side }];
        for (i, op) in self.ops.iter().enumerate() {
            let next = match (*op, flows[i]) {
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
                (Op::Flatten, f @ Flow::Map { .. }) => Flow::Flat(f.size()),
                (Op::Linear { out }, Flow::Flat(_)) if out > 0 => Flow::Flat(out),
                (Op::Dropout { p }, f) if (0.0..1.0).contains(&p) => f,
                (Op::BatchNorm | Op::Relu | Op::Sigmoid, f) => f,
                (_, Flow::Map { .. }) => return bad(i, "needs flat features (after `flatten`)".into()),
                (_, Flow::Flat(_)) => return bad(i, "needs a feature map (before `flatten`)".into()),
            };
            flows.push(next);
        }
        Ok(flows)
    }

    /// Builds the network. Panics only on a chain that [`ChainConfig::new`] would refuse.
    pub fn init(&self, device: &Device) -> SeqNet {
        let w = self.init.weight(crate::layers::pytorch_weight_init());
        let flows = self.flows().expect("a checked chain");
        let (mut features, mut classifier) = (Vec::new(), Vec::new());
        for (op, input) in self.ops.iter().zip(&flows) {
            let layer = match *op {
                Op::Conv { out, kernel, stride, padding } => {
                    let cfg = Conv2dConfig::new(input.width(), out, kernel).stride(stride).padding(padding);
                    Layer::Conv(cfg.init_with(w.clone(), None).init(device))
                }
                Op::BatchNorm => Layer::Norm(BatchNormConfig::new(input.width()).init(device)),
                Op::Relu => Layer::Relu(Relu),
                Op::Sigmoid => Layer::Sigmoid(Sigmoid),
                Op::MaxPool { kernel, stride } => Layer::MaxPool(MaxPool2d::new(kernel, stride, 0)),
                Op::AvgPool { kernel, stride } => Layer::AvgPool(AvgPool2d::new(kernel, stride)),
                Op::Dropout { p } => Layer::Dropout(Dropout::new(p)),
                Op::Flatten => continue,
                Op::Linear { out } => Layer::Linear(
                    LinearConfig::new(input.size(), out).init_with(w.clone(), None).init(device),
                ),
            };
            match input {
                Flow::Map { .. } => features.push(layer),
                Flow::Flat(_) => classifier.push(layer),
            }
        }
        let d_in = flows.last().expect("the input's flow").size();
        classifier
            .push(Layer::Linear(LinearConfig::new(d_in, self.num_classes).init_with(w, None).init(device)));
        SeqNet { features, avgpool: None, classifier }
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
