//! cnnzoo's own CPU kernels for Burn's `flex` device.
//!
//! Each public function here has the signature of the Burn op it replaces (`conv2d`,
//! `batch_norm`, `max_pool2d`, `relu`, `matmul` + bias, …) and takes the same [`Tensor`]s. On
//! the flex device with `f32` data it runs our kernel — forward, and on an autodiff device a
//! backward step registered in Burn's graph, so `loss.backward()` and the stock optimizers see
//! an ordinary op. On any other device (CUDA, wgpu), for other dtypes, or when the reference
//! switch is on ([`set_reference_kernels`] or `CNNZOO_REFERENCE_KERNELS=1`), it calls Burn's
//! own op.
//!
//! In inference the prepared (packed or transformed) weights of a convolution are kept between
//! calls ([`cache`]).
//!
//! Modules, one kernel family each, with a header that says the algorithm, the layout and
//! where the time goes: [`conv`] (with [`winograd`] for 3×3 stride-1 layers and [`sgemm`]
//! under both), [`linear`](mod@linear), [`norm`], [`pool`], [`act`]. [`alloc`] has the process-wide
//! allocator setting; [`buf`] holds the raw-slice helpers they share (splitting work across
//! threads, wrapping vectors as flex tensors, the GEMM entry points).

pub mod act;
pub mod alloc;
pub mod buf;
pub mod cache;
pub mod conv;
pub mod linear;
pub mod norm;
pub mod pool;
pub mod sgemm;
pub mod winograd;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use burn::backend::autodiff::ops::NodeGuard;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor};

pub use act::{relu, sigmoid};
pub use alloc::tune_allocator;
pub use conv::conv2d;
pub use linear::linear;
pub use norm::{BatchNormTrainOutput, batch_norm_eval, batch_norm_train};
pub use pool::{avg_pool2d, max_pool2d};

/// Output length of a conv/pool window along one axis, PyTorch's formula; `None` if no window
/// fits (or the kernel or stride is 0). In ceil mode the last window must start inside the input
/// or the left padding, as in PyTorch.
pub fn window_out(
    len: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    ceil: bool,
) -> Option<usize> {
    if kernel == 0 || stride == 0 {
        return None;
    }
    let span = dil * (kernel - 1) + 1;
    let padded = len + 2 * pad;
    if padded < span {
        return None;
    }
    let steps = padded - span;
    let mut out = if ceil { steps.div_ceil(stride) } else { steps / stride } + 1;
    if ceil && (out - 1) * stride >= len + pad {
        out -= 1;
    }
    Some(out)
}

/// The autodiff flex backend our backward steps are written for (no gradient checkpointing).
pub(crate) type AD = Autodiff<Flex>;

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

/// Runs `f` on a thread of the kernels' thread pool (rayon's global pool), or right here if
/// this already is one.
///
/// Every kernel splits its work with rayon. Called from outside the pool (the program's main
/// thread), each op hands its work to the pool and sleeps on a lock until it is done — a
/// wake-up and a hand-back per op, tens of microseconds each, which adds up over the ~100 short
/// ops of a small-batch forward. From inside, ops fork and join among the pool's threads
/// directly. Meant for small inference forwards: tensors allocated on pool threads come from
/// glibc's secondary arena, which is slow for the hundreds of megabytes of a training batch,
/// and Burn keeps batch-norm running statistics per thread (a training forward must stay put).
///
/// The calling thread's [`cache::bypass`] setting holds inside `f` too. (It is set, not just
/// inherited, on the pool thread for the duration of `f`: a pool thread that picks up another
/// caller's `on_pool` closure while `f` waits runs it with that caller's setting.)
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let bypass = cache::bypassed();
    rayon::scope(|_| cache::with_bypass(bypass, f))
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
