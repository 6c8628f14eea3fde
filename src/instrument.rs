//! Instrumentation of the forward pass, below the layers: a per-thread multiply-accumulate
//! counter, *shape-only* mode, the first shape fault of a forward, the parameter count, and the
//! [`Describe`] trait that names a module kind. Layers report into it; [`crate::probe`] and
//! [`crate::inspect`] read it. It imports nothing of the crate.

use std::cell::{Cell, RefCell};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// A short, human name for a module kind ("Conv3x3", "BasicBlock"), shown by `cnnzoo summary`.
/// Each module type implements it next to its definition.
pub trait Describe {
    /// The kind of this module.
    fn describe(&self) -> String {
        let full = std::any::type_name::<Self>();
        full.rsplit("::").next().unwrap_or(full).to_string()
    }
}

thread_local! {
    static MACS: Cell<u64> = const { Cell::new(0) };
    static SHAPE_ONLY: Cell<bool> = const { Cell::new(false) };
    static EVAL_MODE: Cell<bool> = const { Cell::new(false) };
    static RF_MODE: Cell<bool> = const { Cell::new(false) };
    static FAULT: RefCell<Option<ShapeFault>> = const { RefCell::new(None) };
}

/// Multiply-accumulates counted on this thread since it started (conv + linear layers).
pub fn macs_counter() -> u64 {
    MACS.with(Cell::get)
}

/// Adds `n` multiply-accumulates to this thread's counter (conv and linear layers).
pub(crate) fn count_macs(n: usize) {
    MACS.with(|m| m.set(m.get() + n as u64));
}

/// Runs `f` with the thread-local `flag` set, then restores it.
fn with_flag<T>(flag: &'static std::thread::LocalKey<Cell<bool>>, f: impl FnOnce() -> T) -> T {
    let before = flag.with(|s| s.replace(true));
    let out = f();
    flag.with(|s| s.set(before));
    out
}

/// Runs `f` with shape-only layers on this thread: outputs are zeros of the right shape.
pub fn shape_only<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&SHAPE_ONLY, f)
}

/// Runs `f` with the layers in evaluation mode even on an autodiff device (dropout off, batch
/// norm on its running statistics): for gradients of a trained model's eval-mode output, as
/// Grad-CAM and saliency maps need.
pub fn eval_mode<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&EVAL_MODE, f)
}

/// Whether layers on this thread run in evaluation mode (inside [`eval_mode`]).
pub fn is_eval_mode() -> bool {
    EVAL_MODE.with(Cell::get)
}

/// Runs `f` with layers in receptive-field mode on this thread: each layer passes on, per output
/// position, the smallest value in its window (over all input channels for convolutions and
/// linear layers, per channel for pools; padding ignored), elementwise layers (batch norm,
/// activations, dropout) pass values through and residual sums take the smaller of the two. An
/// input holding each pixel's row (or column) index, negated or not, so comes out as the first
/// and last input row (or column) each unit depends on, whatever the topology
/// ([`crate::inspect::receptive_fields`]).
pub fn receptive_field_mode<T>(f: impl FnOnce() -> T) -> T {
    with_flag(&RF_MODE, f)
}

/// Whether layers on this thread are in receptive-field mode ([`receptive_field_mode`]).
pub fn is_receptive_field_mode() -> bool {
    RF_MODE.with(Cell::get)
}

/// Whether layers on this thread only compute shapes (inside [`shape_only`]).
pub fn is_shape_only() -> bool {
    SHAPE_ONLY.with(Cell::get)
}

/// The first layer whose input did not fit, as recorded during a forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeFault {
    /// What the layer expected and what it got.
    pub reason: String,
}

/// Records `reason` as this thread's shape fault unless one is recorded already.
pub(crate) fn fault(reason: String) {
    FAULT.with(|f| {
        let mut f = f.borrow_mut();
        if f.is_none() {
            *f = Some(ShapeFault { reason });
        }
    });
}

/// Clears and returns the fault recorded on this thread, if any.
pub fn take_fault() -> Option<ShapeFault> {
    FAULT.with(|f| f.borrow_mut().take())
}

/// Trainable parameters of a module, as PyTorch counts them: batch-norm running statistics
/// are buffers, not parameters (Burn's `Module::num_params` counts them too).
pub fn num_params<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        total: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let buffer = matches!(self.path.last().map(String::as_str), Some("running_mean" | "running_var"));
            if !buffer {
                self.total += param.lazy_shape().num_elements();
            }
        }
    }
    let mut counter = Counter { path: Vec::new(), total: 0 };
    module.visit(&mut counter);
    counter.total
}
