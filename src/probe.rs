//! Taps on the real forward pass (built on [`crate::instrument`]; it knows no layer type).
//!
//! Every model's `forward_with(x, probe)` wraps each named stage in [`Probe::stage`]; the plain
//! `forward(x)` passes `&mut ()`, for which all bookkeeping compiles away. A probe sees the stage's
//! dotted path (`layer2.0.conv1`, matching the weight keys), the module that ran and its output,
//! which is how `cnnzoo summary` builds its table and how parity tests compare per-stage
//! activations — from the one module tree that also computes, never from a second description.

use std::fmt::Display;

use burn::module::Module;
use burn::tensor::Tensor;

use crate::instrument::{Describe, macs_counter, num_params};

/// Observer of a forward pass.
pub trait Probe: Sized {
    /// `false` for the no-op probe: [`Probe::stage`] then just runs the stage.
    fn active(&self) -> bool;

    /// A stage named `name` starts (names nest: the probe keeps the path).
    fn enter(&mut self, name: String);

    /// The stage entered last finished: its module's kind and parameter count, and its output.
    fn leave<const D: usize>(&mut self, kind: String, params: usize, out: &Tensor<D>);

    /// The output of the stage entered last, before [`Probe::leave`] sees it; what is returned
    /// flows on through the network (a probe may swap in a tensor of its own: a new autodiff
    /// leaf, to take the gradient with respect to an intermediate activation).
    fn output<const D: usize>(&mut self, out: Tensor<D>) -> Tensor<D> {
        out
    }

    /// Runs `f` as the stage `name` of `module`, reporting it to the probe.
    fn stage<M, const D: usize>(
        &mut self,
        name: impl Display,
        module: &M,
        f: impl FnOnce(&mut Self) -> Tensor<D>,
    ) -> Tensor<D>
    where
        M: Module + Describe,
    {
        if !self.active() {
            return f(self);
        }
        self.enter(name.to_string());
        let out = f(self);
        let out = self.output(out);
        self.leave(module.describe(), num_params(module), &out);
        out
    }
}

/// The no-op probe used by plain forwards.
impl Probe for () {
    fn active(&self) -> bool {
        false
    }
    fn enter(&mut self, _name: String) {}
    fn leave<const D: usize>(&mut self, _kind: String, _params: usize, _out: &Tensor<D>) {}
}

/// `parent.name`, or `name` at the top level.
pub(crate) fn join_path(parent: Option<&str>, name: String) -> String {
    match parent {
        Some(parent) => format!("{parent}.{name}"),
        None => name,
    }
}

/// One stage as recorded by [`ShapeProbe`].
#[derive(Debug, Clone, PartialEq)]
pub struct Tap {
    /// Dotted path, e.g. `layer2.0.conv1`.
    pub path: String,
    /// Module kind.
    pub kind: String,
    /// Output dims.
    pub shape: Vec<usize>,
    /// Parameters of the module.
    pub params: usize,
    /// Multiply-accumulates spent inside the stage (whole batch).
    pub macs: u64,
}

impl Tap {
    /// Nesting depth: 1 for a top-level stage.
    pub fn depth(&self) -> usize {
        self.path.split('.').count()
    }
}

/// Records every stage's path, output shape, parameters and MACs, in the order stages finish.
#[derive(Debug, Default)]
pub struct ShapeProbe {
    stack: Vec<(String, u64)>,
    /// Finished stages (post-order: children before their parent).
    pub taps: Vec<Tap>,
}

impl Probe for ShapeProbe {
    fn active(&self) -> bool {
        true
    }

    fn enter(&mut self, name: String) {
        let path = join_path(self.stack.last().map(|(p, _)| p.as_str()), name);
        self.stack.push((path, macs_counter()));
    }

    fn leave<const D: usize>(&mut self, kind: String, params: usize, out: &Tensor<D>) {
        let (path, macs_before) = self.stack.pop().expect("leave without enter");
        self.taps.push(Tap {
            path,
            kind,
            shape: out.dims().to_vec(),
            params,
            macs: macs_counter() - macs_before,
        });
    }
}

impl ShapeProbe {
    /// The rows to show at `depth`: stages at that depth, plus shallower stages that have no
    /// recorded children. They do not nest, so in finishing order they follow the computation.
    pub fn rows(&self, depth: usize) -> Vec<&Tap> {
        let has_children = |t: &Tap| {
            let prefix = format!("{}.", t.path);
            self.taps.iter().any(|c| c.path.starts_with(&prefix))
        };
        self.taps.iter().filter(|t| t.depth() == depth || (t.depth() < depth && !has_children(t))).collect()
    }
}

/// Records the values of every stage up to `max_depth` (for parity tests against PyTorch).
#[derive(Debug, Default)]
pub struct CaptureProbe {
    /// Deepest stage recorded (1 = top-level stages).
    pub max_depth: usize,
    stack: Vec<String>,
    /// `(path, shape, values)` in finishing order.
    pub outputs: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl CaptureProbe {
    /// Captures stages down to `max_depth`.
    pub fn new(max_depth: usize) -> Self {
        Self { max_depth, ..Self::default() }
    }
}

impl Probe for CaptureProbe {
    fn active(&self) -> bool {
        true
    }

    fn enter(&mut self, name: String) {
        let path = join_path(self.stack.last().map(String::as_str), name);
        self.stack.push(path);
    }

    fn leave<const D: usize>(&mut self, _kind: String, _params: usize, out: &Tensor<D>) {
        let path = self.stack.pop().expect("leave without enter");
        if self.stack.len() < self.max_depth {
            let values = out.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
            self.outputs.push((path, out.dims().to_vec(), values));
        }
    }
}
