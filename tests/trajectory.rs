//! A few SGD steps of each of the seven d2l models, once on our kernels and once on Burn's own
//! ops (`--reference-kernels`), from the same weights, data and dropout masks: the loss
//! trajectories must agree. Its own test binary, because the reference switch is process-wide.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use cnnzoo::{Model, kernels, registry};

/// Every parameter's gradient, flattened, in visiting order.
struct Grads<'a>(&'a GradientsParams, Vec<Vec<f32>>);

impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.0.get::<D>(param.id) {
            self.1.push(g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap());
        }
    }
}

/// The gradients of the loss of one batch, per parameter.
fn gradients(model: &Model, input: [usize; 3], dev: &Device) -> Vec<Vec<f32>> {
    let [c, h, w] = input;
    let b = 4;
    let x: Vec<f32> = (0..b * c * h * w).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let labels: Vec<i64> = (0..b as i64).map(|i| (i * 3) % 10).collect();
    let xb = Tensor::<4>::from_data(TensorData::new(x, [b, c, h, w]), dev);
    let yb = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), dev);
    dev.seed(7);
    let loss = CrossEntropyLossConfig::new().init(dev).forward(model.forward(xb), yb);
    let grads = GradientsParams::from_grads(loss.backward(), model);
    let mut visitor = Grads(&grads, Vec::new());
    model.visit(&mut visitor);
    visitor.1
}

/// Losses of `steps` SGD steps at d2l's learning rate on a fixed batch.
fn losses(model: Model, name: &str, input: [usize; 3], steps: usize, dev: &Device) -> Vec<f32> {
    let [c, h, w] = input;
    let b = 4;
    let n = b * c * h * w;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let labels: Vec<i64> = (0..b as i64).map(|i| (i * 3) % 10).collect();
    let lr = registry::find(name).unwrap().recipe.lr;
    let mut optim = SgdConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(dev);
    let mut model = model;
    let mut out = Vec::new();
    dev.seed(7); // the same dropout masks on both paths
    for _ in 0..steps {
        let xb = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, c, h, w]), dev);
        let yb = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [b]), dev);
        let loss = loss_fn.forward(model.forward(xb), yb);
        out.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(lr, model, grads);
    }
    out
}

#[test]
fn d2l_models_follow_the_reference_loss_trajectory() {
    let dev = Device::flex().autodiff();
    for name in registry::D2L_SEVEN {
        let entry = registry::find(name).unwrap();
        dev.seed(1);
        let model = entry.config().init(&dev);
        // Burn initializes parameters lazily, drawing from the same generator as dropout: touch
        // them all once so that both runs start from the same weights and the same draws.
        let [c, h, w] = entry.input;
        let _ = model.forward(Tensor::zeros([1, c, h, w], &dev));
        let calls = kernels::kernel_calls();
        let ours = losses(model.clone(), entry.name, entry.input, 3, &dev);
        assert!(kernels::kernel_calls() > calls, "{name}: our kernels ran");
        kernels::set_reference_kernels(true);
        let calls = kernels::kernel_calls();
        let reference = losses(model.clone(), entry.name, entry.input, 3, &dev);
        assert_eq!(kernels::kernel_calls(), calls, "{name}: the reference run used Burn's ops only");
        let reference_grads = gradients(&model, entry.input, &dev);
        kernels::set_reference_kernels(false);
        let our_grads = gradients(&model, entry.input, &dev);

        // Every parameter's gradient agrees with Burn's: a wrong backward of any layer shows
        // here, whatever it does to the loss.
        assert_eq!(our_grads.len(), reference_grads.len(), "{name}: gradient count");
        assert!(our_grads.len() >= 4, "{name}: gradients of every layer were visited");
        // Gradients that are zero by construction (a conv bias right before batch norm) are
        // rounding noise on both paths: each parameter is compared relative to its own largest
        // gradient, but to no less than 1e-2 of the largest gradient of the whole model.
        let max_abs = |v: &[f32]| v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let global = reference_grads.iter().map(|r| max_abs(r)).fold(0f32, f32::max);
        for (i, (g, r)) in our_grads.iter().zip(&reference_grads).enumerate() {
            let scale = max_abs(r).max(1e-2 * global);
            let diff = g.iter().zip(r).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff <= 1e-3 * scale,
                "{name}: parameter {i} gradient differs by {diff:e} (max |g| {:e}, model {global:e})",
                max_abs(r)
            );
        }
        // The loss after one step agrees tightly, and the step moved it by far more than that
        // tolerance (so agreement is not an accident of a step that did nothing).
        assert!(ours.iter().all(|l| l.is_finite()), "{name}: losses {ours:?}");
        let diff = (ours[1] - reference[1]).abs();
        assert!(diff <= 1e-3 * reference[1].abs(), "{name} step 1: ours {ours:?}, Burn {reference:?}");
        let moved = (ours[0] - ours[1]).abs();
        assert!(
            moved >= 10.0 * diff && moved > 1e-4,
            "{name}: one step moved the loss by {moved:e} only {ours:?}"
        );
        eprintln!("{name}: step-1 loss differs by {diff:e}, the step moved it by {moved:e}");
    }
}
