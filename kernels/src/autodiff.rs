//! The glue between our kernels and Burn's autodiff graph: finishing a forward (registering
//! its backward step, or returning a plain tensor) and reading/writing gradients in a step.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::Tensor;

use crate::buf;

/// The autodiff flex backend our backward steps are written for (no gradient checkpointing).
pub(crate) type AD = Autodiff<Flex>;

/// The output tensor of a forward whose result is `y`: on an autodiff device (every input has
/// its node guard) `step` is registered as its backward step, with the state made by `state`
/// (from `y`) only if some input needs a gradient; otherwise (plain flex) `y` itself.
pub(crate) fn finish<B, const N: usize, const D: usize>(
    step: B,
    guards: [Option<NodeGuard>; N],
    state: impl FnOnce(&FlexTensor) -> B::State,
    y: FlexTensor,
) -> Tensor<D>
where
    B: Backward<Flex, N>,
    B::State: Clone + Send + std::fmt::Debug + 'static,
{
    if guards.iter().any(Option::is_none) {
        return Tensor::from_primitive::<Flex>(y);
    }
    let guards = guards.map(|g| g.expect("checked above"));
    let out = match step.prepare::<NoCheckpointing>(guards).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(&y), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::from_primitive::<AD>(out)
}

/// The gradient of a backward step's output, made contiguous.
pub(crate) fn output_grad<S, const N: usize>(grads: &mut Gradients, ops: &Ops<S, N>) -> FlexTensor {
    buf::contiguous(grads.consume::<Flex>(&ops.node))
}

/// Registers `values` (of shape `shape`) as the gradient of the parent node `parent` (its id:
/// `ops.parents[i].map(|n| n.id)`), if it needs one and the step computed it.
pub(crate) fn register(
    grads: &mut Gradients,
    parent: Option<NodeId>,
    values: Option<Vec<f32>>,
    shape: &[usize],
) {
    if let (Some(id), Some(v)) = (parent, values) {
        grads.register::<Flex>(id, buf::tensor(v, shape));
    }
}
