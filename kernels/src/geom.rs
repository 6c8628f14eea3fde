//! Window geometry shared by convolution and pooling: PyTorch's output-size formula and the
//! shapes of one convolution.

use crate::buf;

/// Output length of a conv/pool window along one axis, PyTorch's formula; `None` if no window
/// fits (or the kernel or stride is 0, or the sizes overflow). In ceil mode the last window
/// must start inside the input or the left padding, as in PyTorch.
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
    let span = dil.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = pad.checked_mul(2)?.checked_add(len)?;
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

/// Shapes and hyper-parameters of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dil: [usize; 2],
    pub groups: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Geom {
    /// The geometry of `x [n, ci, h, w] ⋆ w [co, ci/groups, kh, kw]`, or `None` if the shapes do
    /// not fit (the caller then leaves the error to Burn's op).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        pad: [usize; 2],
        dil: [usize; 2],
        groups: usize,
    ) -> Option<Self> {
        let [n, ci, h, wd] = x;
        let [co, cig, kh, kw] = w;
        if groups == 0 || ci != cig * groups || co % groups != 0 || stride.contains(&0) || dil.contains(&0) {
            return None;
        }
        let ho = window_out(h, kh, stride[0], pad[0], dil[0], false)?;
        let wo = window_out(wd, kw, stride[1], pad[1], dil[1], false)?;
        Some(Self { n, ci, h, w: wd, co, kh, kw, stride, pad, dil, groups, ho, wo })
    }

    pub(crate) fn cig(&self) -> usize {
        self.ci / self.groups
    }
    pub(crate) fn cog(&self) -> usize {
        self.co / self.groups
    }
    /// Rows of the column matrix (reduction length of the forward GEMM).
    pub(crate) fn k(&self) -> usize {
        self.cig() * self.kh * self.kw
    }
    pub(crate) fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Output pixels per image.
    pub(crate) fn pix(&self) -> usize {
        self.ho * self.wo
    }
    /// 1×1, stride 1, no padding: the image is its own column matrix.
    pub(crate) fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }
    /// Output shape.
    pub fn out_dims(&self) -> [usize; 4] {
        [self.n, self.co, self.ho, self.wo]
    }
    /// Images per chunk (about `target_cols` output pixels, and at least as many chunks as
    /// threads when the batch allows).
    pub(crate) fn chunk(&self, target_cols: usize) -> usize {
        let mut nb = target_cols.div_ceil(self.pix().max(1)).max(1);
        let t = buf::threads();
        if self.n >= t {
            nb = nb.min(self.n.div_ceil(t));
        }
        nb.clamp(1, self.n.max(1))
    }
    /// Threads each GEMM may use when `parts` work items run side by side.
    pub(crate) fn inner_threads(&self, parts: usize) -> usize {
        if parts < buf::threads() { buf::threads() } else { 1 }
    }
}
