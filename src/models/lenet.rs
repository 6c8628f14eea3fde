//! LeNet-5 as d2l teaches it (§7.6): sigmoid activations and average pooling, and the
//! batch-norm variant of d2l §8.5 (BN after every conv and hidden linear, no padding on conv1).
//!
//! Deviations from LeCun et al. 1998 follow d2l: a padded first conv so 28×28 works, a dense
//! C3 layer instead of the sparse connection table, and a plain linear output instead of RBF units.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::InitScheme;
use super::sequential::SeqNet;
use crate::layers::{AvgPool2d, BatchNormConfig, Conv2dConfig, Layer, LinearConfig, Sigmoid};

/// LeNet hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeNetConfig {
    /// d2l §8.5's BN-LeNet instead of §7.6's LeNet.
    pub batch_norm: bool,
    /// Input channels (1 for Fashion-MNIST).
    pub in_channels: usize,
    /// Output classes.
    pub num_classes: usize,
    /// Initialization.
    pub init: InitScheme,
}

impl_family!(LeNetConfig);

impl LeNetConfig {
    /// d2l §7.6 LeNet: 1×28×28 → 10, Xavier init.
    pub fn d2l(batch_norm: bool) -> Self {
        Self { batch_norm, in_channels: 1, num_classes: 10, init: InitScheme::Xavier }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> SeqNet {
        let w = self.init.weight(crate::layers::pytorch_weight_init());
        let conv = |c_in, c_out, pad| {
            Layer::Conv(
                Conv2dConfig::new(c_in, c_out, 5).padding(pad).init_with(w.clone(), None).init(device),
            )
        };
        let linear = |i, o| Layer::Linear(LinearConfig::new(i, o).init_with(w.clone(), None).init(device));
        let norm = |c| Layer::Norm(BatchNormConfig::new(c).init(device));
        let sig = || Layer::Sigmoid(Sigmoid);
        let pool = || Layer::AvgPool(AvgPool2d::new(2, 2));

        let (features, classifier) = if self.batch_norm {
            (
                vec![
                    conv(self.in_channels, 6, 0),
                    norm(6),
                    sig(),
                    pool(),
                    conv(6, 16, 0),
                    norm(16),
                    sig(),
                    pool(),
                ],
                vec![
                    linear(16 * 4 * 4, 120),
                    norm(120),
                    sig(),
                    linear(120, 84),
                    norm(84),
                    sig(),
                    linear(84, self.num_classes),
                ],
            )
        } else {
            (
                vec![conv(self.in_channels, 6, 2), sig(), pool(), conv(6, 16, 0), sig(), pool()],
                vec![linear(16 * 5 * 5, 120), sig(), linear(120, 84), sig(), linear(84, self.num_classes)],
            )
        };
        SeqNet { features, avgpool: None, classifier }
    }
}
