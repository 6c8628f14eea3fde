//! Per-layer gradient norms at initialization: how strongly the loss of one batch pulls on each
//! weighted layer of a freshly initialized network, from the input to the output. Vanishing
//! gradients (sigmoid nets) show as norms that fall towards the input, exploding ones (deep plain
//! nets with batch norm) as norms that grow towards it.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Device, Int, Tensor};

use crate::model::ModelConfig;
use crate::train::finetune::{enter, exit};

/// The gradient of one weight tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGradient {
    /// Parameter path (`features.0.weight`, `stage2.3.conv1.weight`).
    pub path: String,
    /// Euclidean norm of ∂loss/∂W.
    pub norm: f64,
}

/// Builds `config` with seed `seed`, runs the batch `(x, y)` (on `device`) through it in
/// training mode and returns the gradient norm of every convolution and linear weight on the
/// main path (projection shortcuts left out), input to output.
pub fn weight_gradient_norms(
    config: &ModelConfig,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    seed: u64,
    device: &Device,
) -> Vec<LayerGradient> {
    let ad = device.clone().autodiff();
    ad.seed(seed);
    let model = config.init(&ad);
    let logits = model.forward(x.to_device(&ad));
    let loss = CrossEntropyLossConfig::new().init(&ad).forward(logits, y.to_device(&ad));
    let grads = loss.backward();

    struct Norms<'a> {
        path: Vec<String>,
        grads: &'a burn::tensor::Gradients,
        out: Vec<LayerGradient>,
    }
    impl ModuleVisitor for Norms<'_> {
        fn enter_module(&mut self, name: &str, container: &str) {
            enter(&mut self.path, name, container);
        }
        fn exit_module(&mut self, _: &str, container: &str) {
            exit(&mut self.path, container);
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let path = self.path.join(".");
            if D < 2 || path.contains("downsample") || path.contains("projection") {
                return;
            }
            if let Some(g) = param.val().grad(self.grads) {
                let norm = f64::from(g.powf_scalar(2.0).sum().sqrt().into_scalar::<f32>());
                self.out.push(LayerGradient { path, norm });
            }
        }
    }
    let mut visitor = Norms { path: Vec::new(), grads: &grads, out: Vec::new() };
    model.visit(&mut visitor);
    visitor.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::thin_resnet::ThinResNetConfig;

    #[test]
    fn one_norm_per_main_path_layer_all_positive() {
        let device = Device::flex();
        let config = ModelConfig::from(ThinResNetConfig::new(8, 4, true).unwrap());
        let x = Tensor::<4>::random([4, 1, 12, 12], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let y = Tensor::<1, Int>::from_ints([0, 1, 2, 3], &device);
        let norms = weight_gradient_norms(&config, x, y, 7, &device);
        // Depth 8: the stem, 3 stages × 1 block × 2 convs, the linear layer.
        assert_eq!(norms.len(), 8, "{norms:?}");
        assert_eq!(norms[0].path, "conv1.weight");
        assert_eq!(norms[7].path, "fc.weight");
        assert!(norms.iter().all(|g| g.norm > 0.0 && g.norm.is_finite()), "{norms:?}");
    }
}
