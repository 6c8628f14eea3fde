//! 2-D convolution: forward, input gradient, weight gradient, bias gradient.
//!
//! **Algorithm.** Implicit GEMM on NCHW, batch-chunked. The batch is cut into chunks of `nb`
//! images so that one chunk has about [`TARGET_COLS`] output pixels (the late ResNet stages
//! have 3×3 maps: one image alone would give GEMMs with N = 9), and into at least as many
//! chunks as threads when the batch allows. Per chunk and group, with `col[K, nb·P]` the
//! column matrix of the chunk — never written out: the GEMM packs its panels straight from
//! zero-bordered copies of the chunk's input planes ([`crate::view::Rhs::Conv`], vector
//! gathers at a per-tap base, plain loads where a panel's pixels are contiguous):
//! - forward: `y[Co, nb·P] = W[Co, K] · col` (+ bias folded into the GEMM's destination);
//! - backward, in one pass over the same chunks: `dW[Co, K] += dy[Co, nb·P] · colᵀ` into a
//!   per-thread accumulator (`colᵀ` packed from the planes the same way,
//!   [`crate::view::Rhs::ConvT`]: a plain GEMM with K = nb·P, never the N = 9 "swapped
//!   conv" that Burn's default weight gradient becomes), `db += Σ dy`, and `dcol = Wᵀ · dy`
//!   followed by a col2im scatter-add (through the padded planes) into the chunk's own images
//!   of `dx` (chunks own disjoint images, so no locks; a 1×1 conv's `dcol` is a few images at
//!   a time, small enough to stay in L2, and copied: each element of `dx` has one term).
//!
//! K = Cin/groups·kh·kw, P = Ho·Wo. A 1×1 stride-1 unpadded conv with one image per chunk
//! uses the image itself as the column matrix. Without our GEMM kernel (no AVX2: ARM, older
//! x86) the column matrix is written by `im2col` (one vectorized 2-D copy per row and image)
//! for the `gemm` crate.
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
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, module};
use rayon::prelude::*;

use crate::act::Activation;
use crate::autodiff;
use crate::buf::{self, contiguous, slice};
use crate::copy;
use crate::dispatch::{Route, route_all};
use crate::gemm::{self, Lhs};
use crate::geom::Geom;
use crate::view::{ConvCols, Mat, Rhs};

/// Which algorithms 3×3 stride-1 convolutions may take (`CNNZOO_CONV`; for comparison and for
/// the property tests, which check every path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Winograd with the tile that saves most ([`crate::winograd::choose`]); the default.
    Auto,
    /// Winograd F(2×2, 3×3) only (`CNNZOO_CONV=winograd2`).
    Winograd2,
    /// No Winograd: the implicit GEMM for every layer (`CNNZOO_CONV=im2col`).
    Im2col,
}

/// The [`Mode`] of this process, read once from `CNNZOO_CONV` (unset or any other value:
/// [`Mode::Auto`]).
pub fn mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("CNNZOO_CONV").as_deref() {
        Ok("im2col") => Mode::Im2col,
        Ok("winograd2") => Mode::Winograd2,
        _ => Mode::Auto,
    })
}

/// Whether the Winograd path is switched off (`CNNZOO_CONV=im2col`).
pub fn im2col_only() -> bool {
    mode() == Mode::Im2col
}

/// Output pixels one chunk aims for (columns of the chunk's GEMM).
pub const TARGET_COLS: usize = 1024;

/// Floats of a 1×1 convolution's GEMM destination computed at a time (half of a 1 MiB L2)
/// when a chunk has several images: the output, or the input gradient's `dcol`, each copied
/// into the images' planes while still in cache.
const POINTWISE_COLS: usize = 128 * 1024;

/// Images of a chunk of `nbc` whose `rows × pix` GEMM destination fits [`POINTWISE_COLS`]
/// (at least one).
fn pointwise_images(rows: usize, pix: usize, nbc: usize) -> usize {
    (POINTWISE_COLS / (rows * pix).max(1)).clamp(1, nbc)
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
    // Zeroed: the borders stay as they are, the interior is copied in.
    let mut b = buf::zeros(nb * cig * hp * wp);
    let fill = |(i, plane): (usize, &mut [f32])| {
        let (j, c) = (i / cig, i % cig);
        let img = &x[((n0 + j) * geo.ci + g * cig + c) * hw..][..hw];
        for (r, src) in img.chunks(geo.w).enumerate() {
            let row = &mut plane[(p0 + r) * wp..(p0 + r + 1) * wp];
            copy::copy_short(&mut row[p1..p1 + geo.w], src);
        }
    };
    if parallel {
        b.par_chunks_mut(hp * wp).enumerate().for_each(fill);
    } else {
        b.chunks_mut(hp * wp).enumerate().for_each(fill);
    }
    (b, [hp, wp])
}

/// The zero-bordered planes the implicit column matrix of images `n0..n0+nb`, group `g`
/// reads ([`padded_planes`]; empty without padding: then it reads `x`); `None` where the
/// `sgemm` kernel does not run (the caller writes the column matrix instead).
fn implicit_planes(
    geo: &Geom,
    x: &[f32],
    g: usize,
    n0: usize,
    nb: usize,
    parallel: bool,
) -> Option<Vec<f32>> {
    crate::sgemm::available().then(|| padded_planes(geo, x, g, n0, nb, parallel).0)
}

/// The implicit column matrix of images `n0..n0+nb`, group `g`, over the planes
/// [`implicit_planes`] made (or `x` itself without padding); `None` if the offsets do not fit.
fn implicit_cols<'a>(
    geo: &Geom,
    x: &'a [f32],
    padded: &'a [f32],
    g: usize,
    n0: usize,
    nb: usize,
) -> Option<ConvCols<'a>> {
    let cig = geo.cig();
    let [p0, p1] = geo.pad;
    let (hp, wp) = (geo.h + 2 * p0, geo.w + 2 * p1);
    let (src, strides) = if geo.pad != [0, 0] {
        (padded, [cig * hp * wp, hp * wp, wp])
    } else {
        (x.get((n0 * geo.ci + g * cig) * geo.hw()..)?, [geo.ci * geo.hw(), geo.hw(), geo.w])
    };
    ConvCols::new(src, nb, cig, strides, [geo.kh, geo.kw], geo.stride, geo.dil, [geo.ho, geo.wo])
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
                copy::copy_short(&mut dst_row[j * pix..(j + 1) * pix], img);
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
            copy::copy_2d(dst, &src[start..], geo.ho, geo.wo, s0 * wp, s1);
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
                    copy::add_2d(&mut plane[start..], src, geo.ho, geo.wo, s0 * wp, s1);
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

/// Forward: `y [n, co, ho, wo]`, followed by the activation `act` (applied to each chunk while
/// it is in cache). With `keep`, the weight tensor whose values `w` are, the prepared weights are
/// kept for the next call ([`crate::cache`]; inference only).
pub fn forward(
    geo: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep: Option<&FlexTensor>,
    act: Activation,
) -> Vec<f32> {
    if let Some(tile) = crate::winograd::choose(geo) {
        return crate::winograd::forward(geo, tile, x, w, bias, keep, act);
    }
    let (k, cog) = (geo.k(), geo.cog());
    // The weights are packed once and shared by every chunk, and kept across calls in
    // inference. Without the `sgemm` kernel nothing is packed (the `gemm` crate reads `w` as
    // it is): nothing to keep.
    let group_w = |g: usize| Mat::rows(&w[g * cog * k..], k);
    let kept = match keep {
        Some(t) if crate::sgemm::available() => {
            let pack = || {
                let wg: Vec<Lhs<'static>> = (0..geo.groups)
                    .map(|g| Lhs::packed(group_w(g), cog, k).expect("the sgemm kernel runs"))
                    .collect();
                let bytes = wg.iter().map(Lhs::bytes).sum();
                (wg, bytes)
            };
            Some(crate::cache::prepared(t, w, crate::cache::tag(&[0, geo.groups, cog, k]), pack))
        }
        _ => None,
    };
    let local: Vec<Lhs>;
    let wg: &[Lhs] = match &kept {
        Some(wg) => wg,
        None => {
            local = (0..geo.groups).map(|g| Lhs::prepacked(group_w(g), cog, k)).collect();
            &local
        }
    };
    gemm_forward(geo, x, wg, bias, act)
}

/// A convolution's weights prepared for the algorithm its geometry takes: Winograd-transformed,
/// or (implicit GEMM) one operand per group, packed where the `sgemm` kernel runs.
pub(crate) enum Prepared {
    Winograd(crate::winograd::Tile, Vec<Lhs<'static>>),
    Gemm(Vec<Lhs<'static>>),
}

/// Prepares the weights `w` of `geo` ([`Prepared`]) and says how many bytes they hold. Takes
/// them by value: a single group's operand is packed from them and they are dropped (where the
/// `sgemm` kernel runs) or kept as they are, without a copy.
pub(crate) fn prepare(geo: &Geom, w: Vec<f32>) -> (Prepared, usize) {
    if let Some(tile) = crate::winograd::choose(geo) {
        let (u, bytes) = crate::winograd::prepare(geo, tile, &w);
        return (Prepared::Winograd(tile, u), bytes);
    }
    let (k, cog) = (geo.k(), geo.cog());
    let wg: Vec<Lhs<'static>> = if geo.groups == 1 {
        vec![Lhs::owned(w, k, cog, k)]
    } else {
        (0..geo.groups).map(|g| Lhs::owned(w[g * cog * k..(g + 1) * cog * k].to_vec(), k, cog, k)).collect()
    };
    let bytes = wg.iter().map(Lhs::bytes).sum();
    (Prepared::Gemm(wg), bytes)
}

/// [`forward`] with weights [`prepare`]d before.
pub(crate) fn forward_prepared(
    geo: &Geom,
    x: &[f32],
    w: &Prepared,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    match w {
        Prepared::Winograd(tile, u) => crate::winograd::run(geo, *tile, x, u, bias, act),
        Prepared::Gemm(wg) => gemm_forward(geo, x, wg, bias, act),
    }
}

/// The implicit-GEMM forward over per-group operands `wg` (packed or not).
fn gemm_forward(geo: &Geom, x: &[f32], wg: &[Lhs], bias: Option<&[f32]>, act: Activation) -> Vec<f32> {
    let (pix, co) = (geo.pix(), geo.co);
    let mut y = buf::zeros(geo.n * co * pix);
    if y.is_empty() {
        return y;
    }
    let nb = geo.chunk(TARGET_COLS);
    let inner = geo.inner_threads(geo.n.div_ceil(nb));
    let body = |(idx, ychunk): (usize, &mut [f32])| {
        let n0 = idx * nb;
        let nbc = ychunk.len() / (co * pix);
        if geo.pointwise() && nbc > 1 {
            // The GEMM's destination (images side by side) is copied into the images: a few
            // at a time, so that it is still in L2.
            let step = pointwise_images(geo.cog(), pix, nbc);
            for (s, ys) in ychunk.chunks_mut(step * co * pix).enumerate() {
                let nj = ys.len() / (co * pix);
                forward_chunk(geo, x, wg, bias, n0 + s * step, nj, nj == 1, ys, inner);
            }
        } else {
            let direct = geo.pointwise() && nbc == 1;
            forward_chunk(geo, x, wg, bias, n0, nbc, direct, ychunk, inner);
        }
        act.in_place(ychunk);
    };
    if inner > 1 {
        y.chunks_mut(nb * co * pix).enumerate().for_each(body);
    } else {
        y.par_chunks_mut(nb * co * pix).enumerate().for_each(body);
    }
    y
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
    inner: usize,
) {
    let (pix, co, k, cog) = (geo.pix(), geo.co, geo.k(), geo.cog());
    let cols = nbc * pix;
    for g in 0..geo.groups {
        // Where the `sgemm` kernel runs, B is packed straight from the (padded) images: no
        // column matrix. The padded planes live until this group's GEMM is done.
        let planes = if direct { None } else { implicit_planes(geo, x, g, n0, nbc, inner > 1) };
        let implicit = planes.as_deref().and_then(|p| implicit_cols(geo, x, p, g, n0, nbc));
        let a = &wg[g];
        // The GEMM of this group with right-hand side `b`, written into the chunk's outputs.
        let mut run = |b: Rhs| {
            if nbc == 1 {
                let dst = &mut ychunk[g * cog * pix..(g + 1) * cog * pix];
                if let Some(bias) = bias {
                    for (o, row) in dst.chunks_mut(pix).enumerate() {
                        row.fill(bias[g * cog + o]);
                    }
                }
                gemm::gemm_rhs(cog, pix, k, dst, pix, a, b, bias.is_some(), inner);
                return;
            }
            buf::with_scratch(cog * cols, |tmp| {
                gemm::gemm_rhs(cog, cols, k, tmp, cols, a, b, false, inner);
                for j in 0..nbc {
                    for o in 0..cog {
                        let dst = &mut ychunk[(j * co + g * cog + o) * pix..][..pix];
                        let src = &tmp[o * cols + j * pix..][..pix];
                        match bias {
                            Some(bias) => {
                                let bv = bias[g * cog + o];
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d = s + bv);
                            }
                            None => copy::copy_short(dst, src),
                        }
                    }
                }
            })
        };
        if direct {
            run(Rhs::Mat(Mat::rows(&x[(n0 * geo.ci + g * geo.cig()) * geo.hw()..], pix)));
        } else if let Some(cc) = implicit {
            run(Rhs::Conv(cc));
        } else {
            buf::with_scratch(k * cols, |col| {
                im2col(geo, x, g, n0, nbc, col, inner > 1);
                run(Rhs::Mat(Mat::rows(col, cols)));
            });
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
    // A 3×3 stride-1 conv's input gradient is another such conv, and its weight gradient
    // α² GEMMs in the same transform domain: Winograd, outside the chunk loop, which then only
    // does what is left (the bias gradient).
    let tile = crate::winograd::choose(geo);
    let dx_winograd = tile.filter(|_| need_x).map(|tile| crate::winograd::input_grad(geo, tile, w, dy));
    let dw_winograd = tile.filter(|_| need_w).map(|tile| crate::winograd::weight_grad(geo, tile, x, dy));
    let need_w = need_w && dw_winograd.is_none();
    // Any other stride-1 conv: dx is the forward conv of dy with the flipped, transposed
    // weights — an implicit GEMM, instead of writing `dcol` (K × pixels) and scattering it.
    let dx_flipped = if need_x && dx_winograd.is_none() && crate::sgemm::available() {
        input_grad_as_conv(geo, w, dy)
    } else {
        None
    };
    let dx_direct = dx_winograd.or(dx_flipped);
    let need_x = need_x && dx_direct.is_none();
    if !(need_x || need_w) {
        // Nothing left for the chunk loop but the bias gradient (a Winograd layer), which needs
        // no copy of dy in column order.
        return Grads { x: dx_direct, w: dw_winograd, b: need_b.then(|| bias_grad(geo, dy)) };
    }
    let (pix, co, k, cog, ci, hw) = (geo.pix(), geo.co, geo.k(), geo.cog(), geo.ci, geo.hw());
    let nb = geo.chunk(TARGET_COLS);
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
                        copy::copy_short(
                            &mut dyc[o * cols + j * pix..][..pix],
                            &dy[((n0 + j) * co + o) * pix..][..pix],
                        );
                    }
                }
                dyc
            };
            if need_b {
                for (o, acc) in db.iter_mut().enumerate() {
                    *acc += buf::sum_f64(&dys[o * cols..(o + 1) * cols]);
                }
            }
            let direct = geo.pointwise() && nbc == 1;
            // A 1×1 convolution's weight gradient with few output channels takes the
            // dot-product form of `gemm_nt` over a copy of the chunk's planes (its column
            // matrix), which needs no packing; as a GEMM its input is transposed for the few
            // row panels of `dy` (GoogLeNet's 16–64-channel 1×1 layers: 30–50 % faster).
            let dot = geo.pointwise() && gemm::nt_is_dot(cog);
            for g in 0..geo.groups {
                let dyg = Mat::rows(&dys[g * cog * cols..], cols);
                let planes = if need_w && !direct && !dot {
                    implicit_planes(geo, x, g, n0, nbc, inner > 1)
                } else {
                    None
                };
                let implicit = planes.as_deref().and_then(|p| implicit_cols(geo, x, p, g, n0, nbc));
                if let Some(cc) = implicit {
                    // dW[Co, K] += dy[Co, cols] · colᵀ, colᵀ packed straight from the images.
                    let dyg = Lhs::new(Mat::rows(&dys[g * cog * cols..], cols));
                    gemm::gemm_rhs(cog, k, cols, &mut dw[g * cog * k..], k, &dyg, Rhs::ConvT(cc), true, 1);
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
                    gemm::gemm_nt(cog, k, cols, &mut dw[g * cog * k..], k, dyg, cols, colm, ld, true);
                }
                if let Some(dxp) = dxp.as_deref_mut() {
                    let wt = &wt[g];
                    let local = &mut dxp[(n0 - range.start) * ci * hw..];
                    if direct {
                        let dst = &mut local[g * geo.cig() * hw..(g + 1) * geo.cig() * hw];
                        gemm::gemm(k, cols, cog, dst, hw, wt, dyg, false, inner);
                    } else if geo.pointwise() {
                        // A few images at a time, through a `dcol` that stays in L2, copied
                        // (not added: each element has one term) into their planes.
                        let step = pointwise_images(k, pix, nbc);
                        let dcol = buf::scratch(&mut dcol, k * step * pix);
                        for j0 in (0..nbc).step_by(step) {
                            let w = step.min(nbc - j0) * pix;
                            let dcol = &mut dcol[..k * w];
                            gemm::gemm(k, w, cog, dcol, w, wt, dyg.skip_cols(j0 * pix), false, inner);
                            for (c, row) in dcol.chunks_exact(w).enumerate() {
                                for (j, src) in row.chunks_exact(pix).enumerate() {
                                    let dst = &mut local[((j0 + j) * ci + g * k + c) * hw..][..hw];
                                    copy::copy_short(dst, src);
                                }
                            }
                        }
                    } else {
                        let dcol = buf::scratch(&mut dcol, k * cols);
                        gemm::gemm(k, cols, cog, dcol, cols, wt, dyg, false, inner);
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
        w: dw_winograd.or(need_w.then_some(dw)),
        b: need_b.then(|| db.into_iter().map(|v| v as f32).collect()),
    }
}

/// The bias gradient `db[o] = Σ dy[·, o, ·, ·]`, in `f64` (eight lanes per plane): image
/// ranges in parallel.
fn bias_grad(geo: &Geom, dy: &[f32]) -> Vec<f32> {
    let (co, pix) = (geo.co, geo.pix());
    let partial: Vec<Vec<f64>> = buf::ranges(geo.n, buf::threads(), 1)
        .into_par_iter()
        .map(|range| {
            let mut acc = vec![0f64; co];
            for n in range {
                for (o, a) in acc.iter_mut().enumerate() {
                    *a += buf::sum_f64(&dy[(n * co + o) * pix..][..pix]);
                }
            }
            acc
        })
        .collect();
    (0..co).map(|o| partial.iter().map(|p| p[o]).sum::<f64>() as f32).collect()
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
    let mut wf = buf::zeros(w.len());
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
    Some(forward(&back, dy, &wf, None, None, Activation::Identity))
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
        let dy = autodiff::output_grad(grads, &ops);
        let [nx, nw, nb] = ops.parents.map(|p| p.map(|n| n.id));
        let ConvState { x, w, geo } = ops.state;
        let need = [nx.is_some(), nw.is_some(), nb.is_some()];
        let g = backward(&geo, slice(&x), slice(&w), slice(&dy), need);
        autodiff::register(grads, nx, g.x, &[geo.n, geo.ci, geo.h, geo.w]);
        autodiff::register(grads, nw, g.w, &[geo.co, geo.cig(), geo.kh, geo.kw]);
        autodiff::register(grads, nb, g.b, &[geo.co]);
    }
}

/// The geometry of a convolution our kernels compute: `None` for asymmetric padding or an
/// invalid shape (Burn's op then runs, and reports it).
fn geometry(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> Option<Geom> {
    let symmetric = options.padding.iter().all(|(a, b)| a == b);
    let geo = Geom::new(
        x.dims(),
        weight.dims(),
        options.stride,
        options.padding.map(|p| p.0),
        options.dilation,
        options.groups,
    );
    geo.filter(|_| symmetric)
}

/// `conv2d` with Burn's signature: our kernel on flex/f32 with symmetric padding, Burn's op
/// elsewhere.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let Some(geo) = geometry(&x, &weight, &options) else {
        return module::conv2d(x, weight, bias, options);
    };
    let Some(routes) = route_all(&x, &[&weight]) else {
        return module::conv2d(x, weight, bias, options);
    };
    let on_ad = matches!(routes[0], Route::Ad(..));
    let Some((bp, bg)) = crate::dispatch::route_bias(bias.as_ref(), geo.co, on_ad, &x.device()) else {
        return module::conv2d(x, weight, bias, options);
    };
    crate::dispatch::count_call();
    let mut routes = routes.into_iter();
    let (xp, xg) = routes.next().expect("x").into_parts();
    let (wp, wg) = routes.next().expect("w").into_parts();
    let (xp, wp) = (contiguous(xp), contiguous(wp));
    let bias_vals = if bias.is_some() { bp.as_ref().map(slice) } else { None };
    let keep = wg.is_none().then_some(&wp);
    let y = buf::tensor(
        forward(&geo, slice(&xp), slice(&wp), bias_vals, keep, Activation::Identity),
        &geo.out_dims(),
    );
    autodiff::finish(ConvBackward, [xg, wg, bg], |_| ConvState { x: xp, w: wp, geo }, y)
}

/// `t` as a contiguous flex tensor when it is one off any autodiff device (inference, our
/// kernels on); `None` otherwise.
fn plain_route<const D: usize>(t: &Tensor<D>) -> Option<FlexTensor> {
    match crate::dispatch::route(t)? {
        Route::Plain(p) => Some(contiguous(p)),
        _ => None,
    }
}

/// The operands of a fused inference convolution ([`conv2d_act`], [`conv2d_bn`]): input, weights
/// and the bias (of `co` values) as [`plain_route`]s; `None` when any is not one (the caller
/// then runs the ops one by one).
fn plain_operands(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    co: usize,
) -> Option<(FlexTensor, FlexTensor, Option<FlexTensor>)> {
    let b = match bias {
        Some(b) => Some(plain_route(b).filter(|p| slice(p).len() == co)?),
        None => None,
    };
    Some((plain_route(x)?, plain_route(weight)?, b))
}

/// `act(conv2d(x, weight, bias))` with the activation fused into the convolution's output
/// pass on plain flex tensors (inference): applied to each chunk, or in Winograd's output
/// transform, while it is in cache — one pass over the output instead of two. The prepared
/// weights are kept between calls as [`conv2d`] keeps them. Anywhere else (an autodiff device:
/// training, or gradients with respect to the input; another device; the reference switch) it
/// is the two ops.
pub fn conv2d_act(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    act: Activation,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let unfused = |x, weight, bias| act.tensor(conv2d(x, weight, bias, options.clone()));
    let operands = geometry(&x, &weight, &options)
        .and_then(|geo| Some((plain_operands(&x, &weight, bias.as_ref(), geo.co)?, geo)));
    let Some(((xp, wp, b), geo)) = operands else {
        return unfused(x, weight, bias);
    };
    crate::dispatch::count_call();
    let y = forward(&geo, slice(&xp), slice(&wp), b.as_ref().map(slice), Some(&wp), act);
    Tensor::from_primitive::<Flex>(buf::tensor(y, &geo.out_dims()))
}

/// The inference statistics and affine parameters of a batch norm ([`conv2d_bn`]).
pub struct Norm {
    pub gamma: Tensor<1>,
    pub beta: Tensor<1>,
    pub mean: Tensor<1>,
    pub var: Tensor<1>,
    pub epsilon: f64,
}

/// `relu?(batch_norm(conv2d(x, weight, bias), norm))` with the batch norm in inference form
/// (running statistics).
///
/// On plain flex tensors (inference) the batch norm is folded into the convolution — weights
/// `w′[o] = w[o]·s[o]` and bias `b′[o] = (b[o] − μ[o])·s[o] + β[o]` with `s = γ/√(σ² + ε)` —
/// and the ReLU runs on each chunk of the convolution's output while it is in cache: one pass
/// over the output instead of three. The folded weights are kept between calls like any
/// prepared weights ([`crate::cache`]), keyed by the convolution's weights and the batch norm's
/// four tensors together. Anywhere else (an autodiff device: training, or gradients with
/// respect to the input; another device; the reference switch) it runs the three ops.
pub fn conv2d_bn(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    norm: Norm,
    relu: bool,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let unfused = |x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, norm: Norm| {
        let y = conv2d(x, weight, bias, options.clone());
        let y = crate::norm::batch_norm_eval(y, norm.gamma, norm.beta, norm.mean, norm.var, norm.epsilon);
        if relu { crate::act::relu(y) } else { y }
    };
    let operands = geometry(&x, &weight, &options)
        .and_then(|geo| Some((plain_operands(&x, &weight, bias.as_ref(), geo.co)?, geo)));
    let Some(((xp, wp, b), geo)) = operands else {
        return unfused(x, weight, bias, norm);
    };
    let co = geo.co;
    let params = [&norm.gamma, &norm.beta, &norm.mean, &norm.var];
    let [Some(g), Some(be), Some(mu), Some(var)] =
        params.map(|t| plain_route(t).filter(|p| slice(p).len() == co))
    else {
        return unfused(x, weight, bias, norm);
    };
    crate::dispatch::count_call();
    let eps = norm.epsilon;
    // Folded, then prepared (packed or transformed) at once: the folded weights themselves are
    // not kept, only what the convolution runs on.
    let fold = || {
        let w = slice(&wp);
        let per = w.len() / co; // one output channel's weights
        let mut wf = Vec::with_capacity(w.len());
        let mut bf = Vec::with_capacity(co);
        for o in 0..co {
            let s = slice(&g)[o] as f64 / (slice(&var)[o] as f64 + eps).sqrt();
            wf.extend(w[o * per..(o + 1) * per].iter().map(|&v| (v as f64 * s) as f32));
            let b0 = b.as_ref().map_or(0.0, |b| slice(b)[o] as f64);
            bf.push(((b0 - slice(&mu)[o] as f64) * s + slice(&be)[o] as f64) as f32);
        }
        let (prepared, bytes) = prepare(&geo, wf);
        let bytes = bytes + bf.len() * std::mem::size_of::<f32>();
        ((prepared, bf), bytes)
    };
    let mut sources: Vec<(&FlexTensor, &[f32])> =
        [&wp, &g, &be, &mu, &var].into_iter().map(|t| (t, slice(t))).collect();
    if let Some(b) = &b {
        sources.push((b, slice(b)));
    }
    // Winograd's preparation and the GEMM's differ, and which one runs depends on the batch.
    let winograd = crate::winograd::choose(&geo).map_or(0, |tile| tile.m());
    let tag = crate::cache::tag(&[2, eps.to_bits() as usize, geo.groups, winograd]);
    let folded = crate::cache::prepared_from(&sources, tag, fold);
    let (wf, bf) = &*folded;
    let act = if relu { Activation::Relu } else { Activation::Identity };
    let y = forward_prepared(&geo, slice(&xp), wf, Some(bf), act);
    Tensor::from_primitive::<Flex>(buf::tensor(y, &geo.out_dims()))
}
