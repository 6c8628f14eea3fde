//! 2-D convolution: forward, input gradient, weight gradient, bias gradient.
//!
//! **Algorithm.** Implicit GEMM on NCHW, batch-chunked. The batch is cut into chunks of `nb`
//! images so that one chunk has about [`TARGET_COLS`] output pixels (the late ResNet stages
//! have 3×3 maps: one image alone would give GEMMs with N = 9), and into at least as many
//! chunks as threads when the batch allows. Per chunk and group, with `col[K, nb·P]` the
//! column matrix of the chunk — never written out: the GEMM packs its panels straight from
//! zero-bordered copies of the chunk's input planes ([`crate::sgemm::Rhs::Conv`], 16-lane
//! gathers at a per-tap base):
//! - forward: `y[Co, nb·P] = W[Co, K] · col` (+ bias folded into the GEMM's destination);
//! - backward, in one pass over the same chunks: `dW[Co, K] += dy[Co, nb·P] · colᵀ` into a
//!   per-thread accumulator (`colᵀ` packed from the planes the same way,
//!   [`crate::sgemm::Rhs::ConvT`]: a plain GEMM with K = nb·P, never the N = 9 "swapped
//!   conv" that Burn's default weight gradient becomes), `db += Σ dy`, and `dcol = Wᵀ · dy`
//!   followed by a col2im scatter-add (through the padded planes) into the chunk's own images
//!   of `dx` (chunks own disjoint images, so no locks).
//!
//! K = Cin/groups·kh·kw, P = Ho·Wo. A 1×1 stride-1 unpadded conv with one image per chunk
//! uses the image itself as the column matrix. Without AVX-512 the column matrix is written
//! by `im2col` (one vectorized 2-D copy per row and image) for the `gemm` crate.
//!
//! **Threads.** Chunks run on rayon's pool with single-threaded GEMMs; when there are fewer
//! chunks than threads (batch 1) the GEMM itself is split instead.
//!
//! **Where the time goes.** GEMM is 80–90 % on ResNet-sized layers; building the padded planes
//! is one pass over the input (Cin·H·W per image, kh·kw times less than a column matrix);
//! col2im is one pass over K·nb·P floats in backward, and the dy gather plus output scatter
//! are one pass each over the output.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, module};
use rayon::prelude::*;

use crate::buf::{self, Lhs, Mat, contiguous, slice};
use crate::sgemm::{ConvCols, Rhs};
use crate::{AD, Route, route_all};

/// Whether the Winograd path is switched off (`CNNZOO_CONV=im2col`; for comparison and for
/// the property tests, which check both paths).
pub fn im2col_only() -> bool {
    static IM2COL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IM2COL.get_or_init(|| std::env::var("CNNZOO_CONV").is_ok_and(|v| v == "im2col"))
}

/// Output pixels one chunk aims for (columns of the chunk's GEMM).
pub const TARGET_COLS: usize = 1024;

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
        let ho = crate::window_out(h, kh, stride[0], pad[0], dil[0], false)?;
        let wo = crate::window_out(wd, kw, stride[1], pad[1], dil[1], false)?;
        Some(Self { n, ci, h, w: wd, co, kh, kw, stride, pad, dil, groups, ho, wo })
    }

    fn cig(&self) -> usize {
        self.ci / self.groups
    }
    fn cog(&self) -> usize {
        self.co / self.groups
    }
    /// Rows of the column matrix (reduction length of the forward GEMM).
    fn k(&self) -> usize {
        self.cig() * self.kh * self.kw
    }
    fn hw(&self) -> usize {
        self.h * self.w
    }
    /// Output pixels per image.
    fn pix(&self) -> usize {
        self.ho * self.wo
    }
    /// 1×1, stride 1, no padding: the image is its own column matrix.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }
    /// Output shape.
    pub fn out_dims(&self) -> [usize; 4] {
        [self.n, self.co, self.ho, self.wo]
    }
    /// Images per chunk.
    fn chunk(&self) -> usize {
        let mut nb = TARGET_COLS.div_ceil(self.pix().max(1)).max(1);
        let t = buf::threads();
        if self.n >= t {
            nb = nb.min(self.n.div_ceil(t));
        }
        nb.clamp(1, self.n.max(1))
    }
    /// Threads each GEMM may use when `parts` work items run side by side.
    fn inner_threads(&self, parts: usize) -> usize {
        if parts < buf::threads() { buf::threads() } else { 1 }
    }
}

/// The planes of images `n0..n0+nb`, group `g`, copied into zero-bordered planes of the padded
/// size (empty when there is no padding: the input planes serve as they are), and that size.
fn padded_planes(
    geo: &Geom,
    x: &[f32],
    g: usize,
    n0: usize,
    nb: usize,
    parallel: bool,
) -> (Vec<f32>, [usize; 2]) {
    let (hw, cig) = (geo.hw(), geo.cig());
    let [p0, p1] = geo.pad;
    let (hp, wp) = (geo.h + 2 * p0, geo.w + 2 * p1);
    if p0 + p1 == 0 {
        return (Vec::new(), [hp, wp]);
    }
    let mut b = buf::uninit(nb * cig * hp * wp);
    let fill = |(i, plane): (usize, &mut [f32])| {
        let (j, c) = (i / cig, i % cig);
        let img = &x[((n0 + j) * geo.ci + g * cig + c) * hw..][..hw];
        plane[..p0 * wp].fill(0.0);
        plane[(p0 + geo.h) * wp..].fill(0.0);
        for (r, src) in img.chunks(geo.w).enumerate() {
            let row = &mut plane[(p0 + r) * wp..(p0 + r + 1) * wp];
            row[..p1].fill(0.0);
            row[p1 + geo.w..].fill(0.0);
            buf::copy_short(&mut row[p1..p1 + geo.w], src);
        }
    };
    if parallel {
        b.par_chunks_mut(hp * wp).enumerate().for_each(fill);
    } else {
        b.chunks_mut(hp * wp).enumerate().for_each(fill);
    }
    (b, [hp, wp])
}

/// The implicit column matrix of images `n0..n0+nb`, group `g`, with the zero-bordered planes
/// it reads ([`padded_planes`]; empty without padding: then it reads `x`). `None` where the
/// AVX-512 kernel does not run (the caller writes the column matrix instead) or the offsets do
/// not fit. The `ConvCols` points into the returned planes: keep them together.
fn implicit_cols(
    geo: &Geom,
    x: &[f32],
    g: usize,
    n0: usize,
    nb: usize,
    parallel: bool,
) -> Option<(Vec<f32>, ConvCols)> {
    if !crate::sgemm::available() {
        return None;
    }
    let cig = geo.cig();
    let (padded, [hp, wp]) = padded_planes(geo, x, g, n0, nb, parallel);
    let (src, strides) = if geo.pad != [0, 0] {
        (&padded[..], [cig * hp * wp, hp * wp, wp])
    } else {
        (&x[(n0 * geo.ci + g * cig) * geo.hw()..], [geo.ci * geo.hw(), geo.hw(), geo.w])
    };
    let cc = ConvCols::new(src, nb, cig, strides, [geo.kh, geo.kw], geo.stride, geo.dil, [geo.ho, geo.wo])?;
    // Moving the vector keeps its heap buffer (and so the pointer in `cc`) where it is.
    Some((padded, cc))
}

/// Fills `col[K, nb·P]` (leading dim `nb·P`) with the patches of images `n0..n0+nb`, group `g`;
/// rows in parallel when `parallel` (a chunk that has the machine to itself: batch 1).
///
/// With padding, the chunk's planes are first copied into a zero-bordered buffer, so every
/// column-matrix row is a plain (strided) copy of input rows with no bounds logic per run.
fn im2col(geo: &Geom, x: &[f32], g: usize, n0: usize, nb: usize, col: &mut [f32], parallel: bool) {
    let (pix, hw, cig) = (geo.pix(), geo.hw(), geo.cig());
    let ld = nb * pix;
    let col = &mut col[..geo.k() * ld];
    if geo.pointwise() {
        for (c, dst_row) in col.chunks_mut(ld).enumerate() {
            for j in 0..nb {
                let img = &x[((n0 + j) * geo.ci + g * cig + c) * hw..][..hw];
                buf::copy_short(&mut dst_row[j * pix..(j + 1) * pix], img);
            }
        }
        return;
    }
    let (padded, [hp, wp]) = padded_planes(geo, x, g, n0, nb, parallel);
    let plane = |j: usize, c: usize| -> &[f32] {
        if geo.pad != [0, 0] {
            &padded[(j * cig + c) * hp * wp..][..hp * wp]
        } else {
            &x[((n0 + j) * geo.ci + g * cig + c) * hw..][..hw]
        }
    };
    let [s0, s1] = geo.stride;
    let [d0, d1] = geo.dil;
    let row = |(r, dst_row): (usize, &mut [f32])| {
        let (c, ki, kj) = (r / (geo.kh * geo.kw), (r / geo.kw) % geo.kh, r % geo.kw);
        for j in 0..nb {
            let src = plane(j, c);
            let dst = &mut dst_row[j * pix..(j + 1) * pix];
            let start = ki * d0 * wp + kj * d1;
            buf::copy_2d(dst, &src[start..], geo.ho, geo.wo, s0 * wp, s1);
        }
    };
    if parallel {
        col.par_chunks_mut(ld).enumerate().for_each(row);
    } else {
        col.chunks_mut(ld).enumerate().for_each(row);
    }
}

/// The adjoint of [`im2col`]: adds `col[K, nb·P]` into images `0..nb` of `dx` (which starts at
/// the chunk's first image), group `g`. With padding the rows are summed into a zero-bordered
/// buffer whose interior is then added into `dx`.
fn col2im(geo: &Geom, col: &[f32], g: usize, nb: usize, dx: &mut [f32]) {
    let (pix, hw, cig) = (geo.pix(), geo.hw(), geo.cig());
    let ld = nb * pix;
    let [p0, p1] = geo.pad;
    let (hp, wp) = (geo.h + 2 * p0, geo.w + 2 * p1);
    let padded = p0 + p1 > 0;
    let mut pbuf = if padded { buf::zeros(nb * cig * hp * wp) } else { Vec::new() };
    let [s0, s1] = geo.stride;
    let [d0, d1] = geo.dil;
    for j in 0..nb {
        for c in 0..cig {
            let plane: &mut [f32] = if padded {
                &mut pbuf[(j * cig + c) * hp * wp..][..hp * wp]
            } else {
                &mut dx[(j * geo.ci + g * cig + c) * hw..][..hw]
            };
            for ki in 0..geo.kh {
                for kj in 0..geo.kw {
                    let row = (c * geo.kh + ki) * geo.kw + kj;
                    let src = &col[row * ld + j * pix..][..pix];
                    if geo.pointwise() {
                        plane.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                        continue;
                    }
                    let start = ki * d0 * wp + kj * d1;
                    buf::add_2d(&mut plane[start..], src, geo.ho, geo.wo, s0 * wp, s1);
                }
            }
            if padded {
                let img = &mut dx[(j * geo.ci + g * cig + c) * hw..][..hw];
                let plane = &pbuf[(j * cig + c) * hp * wp..][..hp * wp];
                for (r, dst) in img.chunks_mut(geo.w).enumerate() {
                    let src = &plane[(p0 + r) * wp + p1..][..geo.w];
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
                }
            }
        }
    }
}

/// Forward: `y [n, co, ho, wo]`. With `keep`, the weight tensor whose values `w` are, the
/// prepared weights are kept for the next call ([`crate::cache`]; inference only).
pub fn forward(
    geo: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep: Option<&FlexTensor>,
) -> Vec<f32> {
    if crate::winograd::eligible(geo) && !im2col_only() {
        return crate::winograd::forward(geo, x, w, bias, keep);
    }
    let (pix, co) = (geo.pix(), geo.co);
    let mut y = buf::uninit(geo.n * co * pix);
    if y.is_empty() {
        return y;
    }
    let nb = geo.chunk();
    let inner = geo.inner_threads(geo.n.div_ceil(nb));
    let (k, cog) = (geo.k(), geo.cog());
    // The weights are packed once and shared by every chunk, and kept across calls in
    // inference. Without the AVX-512 kernel nothing is packed (the `gemm` crate reads `w` as
    // it is): nothing to keep.
    let pack = || {
        let wg: Vec<Lhs> =
            (0..geo.groups).map(|g| Lhs::prepacked(Mat::rows(&w[g * cog * k..], k), cog, k)).collect();
        let bytes = wg.iter().map(Lhs::bytes).sum();
        (wg, bytes)
    };
    let wg = match keep {
        Some(t) if crate::sgemm::available() => {
            crate::cache::prepared(t, w, crate::cache::tag(&[0, geo.groups, cog, k]), pack)
        }
        _ => std::sync::Arc::new(pack().0),
    };
    let body = |(idx, ychunk): (usize, &mut [f32])| {
        let n0 = idx * nb;
        let nbc = ychunk.len() / (co * pix);
        let direct = geo.pointwise() && nbc == 1;
        SCRATCH.with(|s| {
            let (col, tmp) = &mut *s.borrow_mut();
            forward_chunk(geo, x, &wg[..], bias, n0, nbc, direct, ychunk, col, tmp, inner)
        })
    };
    if inner > 1 {
        y.chunks_mut(nb * co * pix).enumerate().for_each(body);
    } else {
        y.par_chunks_mut(nb * co * pix).enumerate().for_each(body);
    }
    y
}

thread_local! {
    /// Per-thread im2col and GEMM-output scratch, reused across chunks and calls.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// One chunk of the forward pass: images `n0..n0+nbc` into `ychunk`.
#[allow(clippy::too_many_arguments)]
fn forward_chunk(
    geo: &Geom,
    x: &[f32],
    wg: &[Lhs],
    bias: Option<&[f32]>,
    n0: usize,
    nbc: usize,
    direct: bool,
    ychunk: &mut [f32],
    col: &mut Vec<f32>,
    tmp: &mut Vec<f32>,
    inner: usize,
) {
    let (pix, co, k, cog) = (geo.pix(), geo.co, geo.k(), geo.cog());
    let cols = nbc * pix;
    for g in 0..geo.groups {
        // Where the AVX-512 kernel runs, B is packed straight from the (padded) images: no
        // column matrix. The padded planes live until this group's GEMM is done.
        let implicit = if direct { None } else { implicit_cols(geo, x, g, n0, nbc, inner > 1) };
        let b = if direct {
            Rhs::Mat(Mat::rows(&x[(n0 * geo.ci + g * geo.cig()) * geo.hw()..], pix))
        } else if let Some((_, cc)) = &implicit {
            Rhs::Conv(*cc)
        } else {
            let col = buf::scratch(col, k * cols);
            im2col(geo, x, g, n0, nbc, col, inner > 1);
            Rhs::Mat(Mat::rows(col, cols))
        };
        let a = &wg[g];
        if nbc == 1 {
            let dst = &mut ychunk[g * cog * pix..(g + 1) * cog * pix];
            if let Some(bias) = bias {
                for (o, row) in dst.chunks_mut(pix).enumerate() {
                    row.fill(bias[g * cog + o]);
                }
            }
            buf::gemm_rhs(cog, pix, k, dst, pix, a, b, bias.is_some(), inner);
        } else {
            let tmp = buf::scratch(tmp, cog * cols);
            buf::gemm_rhs(cog, cols, k, tmp, cols, a, b, false, inner);
            for j in 0..nbc {
                for o in 0..cog {
                    let dst = &mut ychunk[(j * co + g * cog + o) * pix..][..pix];
                    let src = &tmp[o * cols + j * pix..][..pix];
                    match bias {
                        Some(bias) => {
                            let bv = bias[g * cog + o];
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + bv);
                        }
                        None => buf::copy_short(dst, src),
                    }
                }
            }
        }
    }
}

/// Gradients of one convolution.
pub struct Grads {
    pub x: Option<Vec<f32>>,
    pub w: Option<Vec<f32>>,
    pub b: Option<Vec<f32>>,
}

/// Backward: the gradients asked for, from the saved input and weight and the output gradient.
pub fn backward(geo: &Geom, x: &[f32], w: &[f32], dy: &[f32], need: [bool; 3]) -> Grads {
    let [need_x, need_w, need_b] = need;
    // The input gradient of a 3×3 stride-1 conv is another such conv: Winograd, outside the
    // chunk loop, which then only does the weight and bias gradients.
    let dx_winograd = (need_x && crate::winograd::eligible(geo) && !im2col_only())
        .then(|| crate::winograd::input_grad(geo, w, dy));
    // Any other stride-1 conv: dx is the forward conv of dy with the flipped, transposed
    // weights — an implicit GEMM, instead of writing `dcol` (K × pixels) and scattering it.
    let dx_flipped = if need_x && dx_winograd.is_none() && crate::sgemm::available() {
        input_grad_as_conv(geo, w, dy)
    } else {
        None
    };
    let dx_direct = dx_winograd.or(dx_flipped);
    let need_x = need_x && dx_direct.is_none();
    let (pix, co, k, cog, ci, hw) = (geo.pix(), geo.co, geo.k(), geo.cog(), geo.ci, geo.hw());
    let nb = geo.chunk();
    let parts = buf::ranges(geo.n, buf::threads(), nb);
    let inner = geo.inner_threads(parts.len());
    let mut dx = if need_x { buf::zeros(geo.n * ci * hw) } else { Vec::new() };
    let dx_parts: Vec<Option<&mut [f32]>> = if need_x {
        buf::split_mut(&mut dx, parts.iter().map(|r| r.len() * ci * hw)).into_iter().map(Some).collect()
    } else {
        parts.iter().map(|_| None).collect()
    };
    // Wᵀ per group, packed once for every chunk's input gradient.
    let wt: Vec<Lhs> = if need_x {
        (0..geo.groups).map(|g| Lhs::prepacked(Mat::cols(&w[g * cog * k..], k), k, cog)).collect()
    } else {
        Vec::new()
    };
    let work = |(range, mut dxp): (std::ops::Range<usize>, Option<&mut [f32]>)| {
        let mut dw = if need_w { buf::zeros(co * k) } else { Vec::new() };
        let mut db = if need_b { vec![0f64; co] } else { Vec::new() };
        let mut col = Vec::new();
        let mut dcol = Vec::new();
        let mut dyc = Vec::new();
        let mut n0 = range.start;
        while n0 < range.end {
            let nbc = nb.min(range.end - n0);
            let cols = nbc * pix;
            let dys: &[f32] = if nbc == 1 {
                &dy[n0 * co * pix..(n0 + 1) * co * pix]
            } else {
                let dyc = buf::scratch(&mut dyc, co * cols);
                for j in 0..nbc {
                    for o in 0..co {
                        buf::copy_short(
                            &mut dyc[o * cols + j * pix..][..pix],
                            &dy[((n0 + j) * co + o) * pix..][..pix],
                        );
                    }
                }
                dyc
            };
            if need_b {
                for (o, acc) in db.iter_mut().enumerate() {
                    *acc += dys[o * cols..(o + 1) * cols].iter().map(|&v| v as f64).sum::<f64>();
                }
            }
            let direct = geo.pointwise() && nbc == 1;
            for g in 0..geo.groups {
                let dyg = Mat::rows(&dys[g * cog * cols..], cols);
                let implicit =
                    if need_w && !direct { implicit_cols(geo, x, g, n0, nbc, inner > 1) } else { None };
                if let Some((_, cc)) = &implicit {
                    // dW[Co, K] += dy[Co, cols] · colᵀ, colᵀ packed straight from the images.
                    let dyg = Lhs::new(Mat::rows(&dys[g * cog * cols..], cols));
                    buf::gemm_rhs(cog, k, cols, &mut dw[g * cog * k..], k, &dyg, Rhs::ConvT(*cc), true, 1);
                } else if need_w {
                    // dW[Co, K] += dy[Co, cols] · col[K, cols]ᵀ: both run along the pixels.
                    let (colm, ld): (&[f32], usize) = if direct {
                        (&x[(n0 * ci + g * geo.cig()) * hw..(n0 * ci + (g + 1) * geo.cig()) * hw], pix)
                    } else {
                        let col = buf::scratch(&mut col, k * cols);
                        im2col(geo, x, g, n0, nbc, col, inner > 1);
                        (col, cols)
                    };
                    let dyg = &dys[g * cog * cols..(g + 1) * cog * cols];
                    buf::gemm_nt(cog, k, cols, &mut dw[g * cog * k..], k, dyg, cols, colm, ld, true);
                }
                if let Some(dxp) = dxp.as_deref_mut() {
                    let wt = &wt[g];
                    let local = &mut dxp[(n0 - range.start) * ci * hw..];
                    if direct {
                        let dst = &mut local[g * geo.cig() * hw..(g + 1) * geo.cig() * hw];
                        buf::gemm(k, cols, cog, dst, hw, wt, dyg, false, inner);
                    } else {
                        let dcol = buf::scratch(&mut dcol, k * cols);
                        buf::gemm(k, cols, cog, dcol, cols, wt, dyg, false, inner);
                        col2im(geo, dcol, g, nbc, local);
                    }
                }
            }
            n0 += nbc;
        }
        (dw, db)
    };
    let partial: Vec<(Vec<f32>, Vec<f64>)> = if inner > 1 {
        parts.into_iter().zip(dx_parts).map(work).collect()
    } else {
        parts.into_par_iter().zip(dx_parts).map(work).collect()
    };
    let mut partial = partial.into_iter();
    let (mut dw, mut db) = partial.next().unwrap_or_default();
    for (pw, pb) in partial {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    Grads {
        x: dx_direct.or(need_x.then_some(dx)),
        w: need_w.then_some(dw),
        b: need_b.then(|| db.into_iter().map(|v| v as f32).collect()),
    }
}

/// The input gradient of a stride-1, undilated, ungrouped conv with padding `p ≤ k − 1`, as the
/// conv `dx = conv(dy, W′, padding k − 1 − p)` with `W′[ci, co] = rot180(W[co, ci])`; `None` for
/// other convs.
fn input_grad_as_conv(geo: &Geom, w: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
    let (kh, kw) = (geo.kh, geo.kw);
    if geo.stride != [1, 1] || geo.dil != [1, 1] || geo.groups != 1 || geo.pad[0] >= kh || geo.pad[1] >= kw {
        return None;
    }
    if geo.pointwise() {
        return None; // the chunk loop's 1×1 path has no column matrix to avoid
    }
    if geo.ci < 16 {
        // Few input channels are few rows for this GEMM (LeNet's 6): packing K = Co·kh·kw
        // taps per column then costs more than `dcol` + col2im.
        return None;
    }
    let (ci, co) = (geo.ci, geo.co);
    let mut wf = buf::uninit(w.len());
    for c in 0..ci {
        for o in 0..co {
            let src = &w[(o * ci + c) * kh * kw..][..kh * kw];
            let dst = &mut wf[(c * co + o) * kh * kw..][..kh * kw];
            for (d, v) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *v;
            }
        }
    }
    let back = Geom::new(
        [geo.n, co, geo.ho, geo.wo],
        [ci, co, kh, kw],
        [1, 1],
        [kh - 1 - geo.pad[0], kw - 1 - geo.pad[1]],
        [1, 1],
        1,
    )?;
    debug_assert_eq!([back.ho, back.wo], [geo.h, geo.w]);
    Some(forward(&back, dy, &wf, None, None))
}

#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    w: FlexTensor,
    geo: Geom,
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [nx, nw, nb] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let ConvState { x, w, geo } = ops.state;
        let need = [nx.is_some(), nw.is_some(), nb.is_some()];
        let g = backward(&geo, slice(&x), slice(&w), slice(&dy), need);
        if let (Some(node), Some(v)) = (nx, g.x) {
            grads.register::<Flex>(node.id, buf::tensor(v, &[geo.n, geo.ci, geo.h, geo.w]));
        }
        if let (Some(node), Some(v)) = (nw, g.w) {
            grads.register::<Flex>(node.id, buf::tensor(v, &[geo.co, geo.cig(), geo.kh, geo.kw]));
        }
        if let (Some(node), Some(v)) = (nb, g.b) {
            grads.register::<Flex>(node.id, buf::tensor(v, &[geo.co]));
        }
    }
}

/// `conv2d` with Burn's signature: our kernel on flex/f32 with symmetric padding, Burn's op
/// elsewhere.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let symmetric = options.padding.iter().all(|(a, b)| a == b);
    let geo = Geom::new(
        x.dims(),
        weight.dims(),
        options.stride,
        options.padding.map(|p| p.0),
        options.dilation,
        options.groups,
    );
    let (Some(geo), true) = (geo, symmetric) else {
        return module::conv2d(x, weight, bias, options);
    };
    let Some(routes) = route_all(&x, &[&weight]) else {
        return module::conv2d(x, weight, bias, options);
    };
    let autodiff = matches!(routes[0], Route::Ad(..));
    let Some((bp, bg)) = crate::route_bias(bias.as_ref(), geo.co, autodiff, &x.device()) else {
        return module::conv2d(x, weight, bias, options);
    };
    crate::count_call();
    let mut routes = routes.into_iter();
    let (xp, xg) = routes.next().expect("x").into_parts();
    let (wp, wg) = routes.next().expect("w").into_parts();
    let (xp, wp) = (contiguous(xp), contiguous(wp));
    let bias_vals = if bias.is_some() { bp.as_ref().map(slice) } else { None };
    let keep = wg.is_none().then_some(&wp);
    let y = buf::tensor(forward(&geo, slice(&xp), slice(&wp), bias_vals, keep), &geo.out_dims());
    match (xg, wg, bg) {
        (Some(xg), Some(wg), Some(bg)) => {
            let out = match ConvBackward.prepare::<NoCheckpointing>([xg, wg, bg]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(ConvState { x: xp, w: wp, geo }, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Tensor::from_primitive::<AD>(out)
        }
        _ => Tensor::from_primitive::<Flex>(y),
    }
}
