//! cnnzoo's own CPU kernels for Burn's `flex` device.
//!
//! Each public function here has the signature of the Burn op it replaces (`conv2d`,
//! `batch_norm`, `max_pool2d`, `relu`, `matmul` + bias, …) and takes the same
//! [`Tensor`](burn::tensor::Tensor)s. On the flex device with `f32` data it runs our kernel —
//! forward, and on an autodiff device a backward step registered in Burn's graph, so
//! `loss.backward()` and the stock optimizers see an ordinary op. On any other device (CUDA,
//! wgpu), for other dtypes, or when the reference switch is on ([`set_reference_kernels`] or
//! `CNNZOO_REFERENCE_KERNELS=1`), it calls Burn's own op.
//!
//! In inference the prepared (packed or transformed) weights of a convolution are kept between
//! calls ([`cache`]).
//!
//! Modules, one kernel family each, with a header that says the algorithm, the layout and
//! where the time goes: [`conv`] (with [`winograd`] for 3×3 stride-1 layers and [`sgemm`]
//! under both), [`linear`](mod@linear), [`norm`], [`pool`], [`act`]. [`alloc`] has the process-wide
//! allocator setting. Shared by the kernels: [`gemm`] (the GEMM entry points) over the operand
//! views of [`view`], [`copy`] (short strided copies), [`buf`] (buffers: wrapping vectors as
//! flex tensors, scratch, splitting work across threads), [`cpu`] (feature detection),
//! [`geom`] (window sizes, convolution shapes); [`dispatch`] routes each op to our kernel or
//! Burn's and [`autodiff`] registers our backward steps.

pub mod act;
pub mod alloc;
pub mod autodiff;
pub mod buf;
pub mod cache;
pub mod conv;
pub mod copy;
pub mod cpu;
pub mod dispatch;
pub mod gemm;
pub mod geom;
pub mod linear;
pub mod norm;
pub mod pool;
pub mod sgemm;
pub mod view;
pub mod winograd;

pub use act::{Activation, relu, sigmoid};
pub use alloc::tune_allocator;
pub use conv::{Norm, conv2d, conv2d_act, conv2d_bn};
pub use dispatch::{kernel_calls, reference_kernels, set_reference_kernels};
pub use geom::window_out;
pub use linear::linear;
pub use norm::{BatchNormTrainOutput, batch_norm_eval, batch_norm_train, batch_norm_train_relu};
pub use pool::{avg_pool2d, max_pool2d};

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
