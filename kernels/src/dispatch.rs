//! Which implementation runs: the reference switch (Burn's own ops instead of ours), the count
//! of ops committed to our kernels, and the routing of each op's tensors (plain flex, autodiff
//! flex, or elsewhere: Burn's op).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use burn::backend::Flex;
use burn::backend::autodiff::ops::NodeGuard;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Tensor};

use crate::autodiff::AD;
use crate::buf;

/// 0 = not decided yet, 1 = our kernels, 2 = Burn's reference ops.
static MODE: AtomicU8 = AtomicU8::new(0);
static ENV: OnceLock<bool> = OnceLock::new();

/// Switches every op in this crate to Burn's own implementation (`true`) or back to ours.
/// Overrides the `CNNZOO_REFERENCE_KERNELS` environment variable.
pub fn set_reference_kernels(reference: bool) {
    MODE.store(if reference { 2 } else { 1 }, Ordering::Relaxed);
}

/// Whether Burn's reference ops are in use instead of ours.
pub fn reference_kernels() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => *ENV.get_or_init(|| {
            std::env::var("CNNZOO_REFERENCE_KERNELS").is_ok_and(|v| !v.is_empty() && v != "0")
        }),
    }
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// How many ops have run on our kernels in this process (forward calls; a diagnostic, and how
/// the tests know which path ran).
pub fn kernel_calls() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// Records one op committed to our kernels.
pub(crate) fn count_call() {
    CALLS.fetch_add(1, Ordering::Relaxed);
}

/// Where a tensor lives, as far as the kernels care.
pub(crate) enum Route {
    /// Autodiff flex, f32: primitive plus the node guard that ties our step into the graph.
    Ad(FlexTensor, NodeGuard),
    /// Plain flex, f32 (inference).
    Plain(FlexTensor),
}

/// Classifies a tensor; `None` means "use Burn's op" (other device or dtype, or the switch).
pub(crate) fn route<const D: usize>(t: &Tensor<D>) -> Option<Route> {
    if reference_kernels() || t.dtype() != DType::F32 {
        return None;
    }
    if t.device().is_autodiff() {
        let (p, guard) = t.clone().try_into_primitive::<AD>().ok()?.into_parts();
        return Some(Route::Ad(p, guard));
    }
    t.clone().try_into_primitive::<Flex>().ok().map(Route::Plain)
}

/// Routes every tensor of one op the same way, or none of them.
pub(crate) fn route_all<const D: usize, const E: usize>(
    x: &Tensor<D>,
    params: &[&Tensor<E>],
) -> Option<Vec<Route>> {
    let first = route(x)?;
    let autodiff = matches!(first, Route::Ad(..));
    let mut out = vec![first];
    for p in params {
        let r = route(p)?;
        if matches!(r, Route::Ad(..)) != autodiff {
            return None;
        }
        out.push(r);
    }
    Some(out)
}

/// Routes an op's optional bias of length `len` like its input. `None`: the bias lives
/// elsewhere (use Burn's op); `Some((None, None))`: no bias on plain flex; on an autodiff device
/// a missing bias becomes an untracked zero bias (our backward steps have a fixed arity), whose
/// values the kernels never read.
pub(crate) fn route_bias(
    bias: Option<&Tensor<1>>,
    len: usize,
    autodiff: bool,
    x_device: &burn::tensor::Device,
) -> Option<(Option<FlexTensor>, Option<NodeGuard>)> {
    let zeros;
    let b = match (bias, autodiff) {
        (Some(b), _) => b,
        (None, true) => {
            zeros = Tensor::<1>::zeros([len], x_device);
            &zeros
        }
        (None, false) => return Some((None, None)),
    };
    match route(b)? {
        r if matches!(r, Route::Ad(..)) == autodiff => {
            let (p, g) = r.into_parts();
            Some((Some(buf::contiguous(p)), g))
        }
        _ => None,
    }
}

impl Route {
    /// The flex primitive, whichever route.
    pub(crate) fn into_parts(self) -> (FlexTensor, Option<NodeGuard>) {
        match self {
            Route::Ad(p, g) => (p, Some(g)),
            Route::Plain(p) => (p, None),
        }
    }
}
