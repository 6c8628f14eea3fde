//! Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions: forward and input gradient.
//!
//! **Algorithm.** Each 2×2 block of outputs is computed from a 4×4 input tile `d` as
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`: 16 multiplies per channel pair instead of 36, i.e.
//! 2.25× fewer. Batched over channels the element-wise products become 16 GEMMs,
//! `M[ξ][Co, T] = U[ξ][Co, Ci] · V[ξ][Ci, T]` for the 16 positions ξ of the 4×4 transform
//! domain, T = tiles in a chunk of images (V is stored `[Ci][16][T]`, so one channel's
//! transform is one contiguous block and channels transform in parallel at batch 1). The weight transform `U` is done and packed once
//! per call; the input transform writes `V` tile by tile (zeros outside the image, so any
//! padding ≤ 2 works); the output transform scatters `Aᵀ M A` (+ bias) into NCHW, clipping
//! the last row/column of tiles on odd sizes.
//!
//! The input gradient of a 3×3 stride-1 convolution with padding p is itself such a
//! convolution: `dx = conv(dy, W′, padding 2 − p)` with `W′[ci, co] = rot180(W[co, ci])`.
//!
//! **Where the time goes.** The 16 GEMMs (K = Ci); the transforms are a few adds per element
//! (≈ 3 % of the GEMM work at 64 channels, less above), plus the weight transform once per
//! call (kept between inference calls, [`crate::cache`]). Used when both channel counts are
//! at least [`MIN_CHANNELS`], the batch has at least two images and [`MIN_TILES`] tiles;
//! otherwise the transforms dominate and the implicit GEMM of the `conv` module wins.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::buf;
use crate::gemm::{self, Lhs};
use crate::geom::Geom;
use crate::view::Mat;

/// Smallest channel count (in and out) that takes the Winograd path.
pub const MIN_CHANNELS: usize = 16;
/// Tiles a chunk aims for (columns of each of the 16 GEMMs).
const TARGET_TILES: usize = 256;

/// Whether `geo` is a convolution this module computes.
pub fn eligible(geo: &Geom) -> bool {
    geo.kh == 3
        && geo.kw == 3
        && geo.stride == [1, 1]
        && geo.dil == [1, 1]
        && geo.groups == 1
        && geo.pad[0] <= 2
        && geo.pad[1] <= 2
        && geo.ci >= MIN_CHANNELS
        && geo.co >= MIN_CHANNELS
        // The transforms must be paid for by enough tiles: the late, weight-heavy layers of a
        // small batch stay on im2col.
        && geo.n * geo.ho.div_ceil(2) * geo.wo.div_ceil(2) >= MIN_TILES
        // At batch 1 the 16 GEMMs of one chunk are each split across the threads and lose to
        // one im2col GEMM (ResNet-18's 64-channel 56² layers: 1.6 ms against 1.3 ms).
        && geo.n >= 2
}

/// Fewest output tiles (over the whole batch) for which the Winograd path pays.
pub const MIN_TILES: usize = 256;

/// `U[ξ] = G g Gᵀ` for every (out, in) pair, as 16 packed `[co × ci]` operands. `g(o, c)`
/// gives the 3×3 kernel (row-major) of output channel `o`, input channel `c`.
fn transform_weights(co: usize, ci: usize, g: impl Fn(usize, usize) -> [f32; 9]) -> Vec<Lhs<'static>> {
    let mut u = vec![vec![0f32; co * ci]; 16];
    for o in 0..co {
        for c in 0..ci {
            let k = g(o, c);
            // Gg: 4×3.
            let mut gg = [[0f32; 3]; 4];
            for j in 0..3 {
                let (a, b, d) = (k[j], k[3 + j], k[6 + j]);
                gg[0][j] = a;
                gg[1][j] = 0.5 * (a + b + d);
                gg[2][j] = 0.5 * (a - b + d);
                gg[3][j] = d;
            }
            for (r, row) in gg.iter().enumerate() {
                let [a, b, d] = *row;
                let t = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
                for (s, v) in t.iter().enumerate() {
                    u[r * 4 + s][o * ci + c] = *v;
                }
            }
        }
    }
    u.into_iter().map(|ux| Lhs::owned(ux, ci, co, ci)).collect()
}

/// `Bᵀ d B` on a row of tiles: `d` and `e` hold 16 vectors of `tw` tiles, element `(r, s)` at
/// `[(r·4 + s)·tw ..]`; every element of `e` (16·tw) is written.
fn input_rows<'e>(d: &[f32], e: &'e mut [MaybeUninit<f32>], tw: usize) -> &'e mut [f32] {
    let at = |r: usize, s: usize| (r * 4 + s) * tw;
    let mut t = vec![0f32; 16 * tw];
    for s in 0..4 {
        for i in 0..tw {
            let (d0, d1, d2, d3) = (d[at(0, s) + i], d[at(1, s) + i], d[at(2, s) + i], d[at(3, s) + i]);
            t[at(0, s) + i] = d0 - d2;
            t[at(1, s) + i] = d1 + d2;
            t[at(2, s) + i] = d2 - d1;
            t[at(3, s) + i] = d1 - d3;
        }
    }
    // Row r of the result is written in order s = 0..4, rows in order: front to back.
    let mut out = buf::Filler::new(e);
    for r in 0..4 {
        let row = |s: usize| &t[at(r, s)..][..tw];
        let (t0, t1, t2, t3) = (row(0), row(1), row(2), row(3));
        out.next(tw, t0.iter().zip(t2).map(|(a, b)| a - b));
        out.next(tw, t1.iter().zip(t2).map(|(a, b)| a + b));
        out.next(tw, t2.iter().zip(t1).map(|(a, b)| a - b));
        out.next(tw, t1.iter().zip(t3).map(|(a, b)| a - b));
    }
    out.finish()
}

/// `Aᵀ m A` on a row of tiles: `m(ξ)` is the vector of `tw` tiles at transform position
/// ξ = r·4 + s, `out` receives the 4 outputs `(a, b)` at `[(a·2 + b)·tw ..]`.
fn output_rows<'a>(m: impl Fn(usize) -> &'a [f32], out: &mut [f32], tw: usize) {
    let row = |r: usize, s: usize| m(r * 4 + s);
    let mut s0 = vec![0f32; 4 * tw];
    let mut s1 = vec![0f32; 4 * tw];
    for j in 0..4 {
        let (m0, m1, m2, m3) = (row(0, j), row(1, j), row(2, j), row(3, j));
        let (a, b) = (&mut s0[j * tw..][..tw], &mut s1[j * tw..][..tw]);
        for i in 0..tw {
            a[i] = m0[i] + m1[i] + m2[i];
            b[i] = m1[i] - m2[i] - m3[i];
        }
    }
    for (a, sa) in [&s0, &s1].into_iter().enumerate() {
        let (c0, c1, c2, c3) = (&sa[..tw], &sa[tw..2 * tw], &sa[2 * tw..3 * tw], &sa[3 * tw..]);
        let (lo, hi) = out[a * 2 * tw..(a * 2 + 2) * tw].split_at_mut(tw);
        for i in 0..tw {
            lo[i] = c0[i] + c1[i] + c2[i];
            hi[i] = c1[i] - c2[i] - c3[i];
        }
    }
}

/// The convolution of `x [n, ci, h, w]` with the transformed weights `u`, output
/// `[n, co, ho, wo]` (shapes from `geo`), plus `bias`.
pub(crate) fn run(geo: &Geom, x: &[f32], u: &[Lhs], bias: Option<&[f32]>, relu: bool) -> Vec<f32> {
    let (ci, co, h, w, ho, wo) = (geo.ci, geo.co, geo.h, geo.w, geo.ho, geo.wo);
    let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
    let per_img = th * tw;
    let threads = buf::threads();
    let mut nb = TARGET_TILES.div_ceil(per_img).max(1);
    if geo.n >= threads {
        nb = nb.min(geo.n.div_ceil(threads));
    }
    let nb = nb.clamp(1, geo.n.max(1));
    let chunks = geo.n.div_ceil(nb);
    let inner = if chunks < threads { threads } else { 1 };
    let (p0, p1) = (geo.pad[0] as isize, geo.pad[1] as isize);
    let mut y = buf::zeros(geo.n * co * ho * wo);
    let body = |(idx, ychunk): (usize, &mut [f32])| {
        let n0 = idx * nb;
        let nbc = ychunk.len() / (co * ho * wo);
        let t_all = nbc * per_img;
        // V[c][ξ][t]: one channel's 16 transform-domain rows are contiguous, so channels can
        // be transformed in parallel when this chunk has the machine to itself (batch 1).
        let transform_in = buf::piece_fn(|c: usize, vc: &mut [MaybeUninit<f32>]| {
            // d[r·4 + s][t] = x[2·ty + r − p, 2·tx + s − p], vectorized across all tiles.
            let mut d = vec![0f32; 16 * t_all];
            for j in 0..nbc {
                let img = &x[((n0 + j) * ci + c) * h * w..][..h * w];
                for ty in 0..th {
                    let t0 = j * per_img + ty * tw;
                    for r in 0..4 {
                        let iy = (2 * ty + r) as isize - p0;
                        for s in 0..4 {
                            let dst = &mut d[(r * 4 + s) * t_all + t0..][..tw];
                            if iy < 0 || iy >= h as isize {
                                dst.fill(0.0);
                                continue;
                            }
                            let src = &img[iy as usize * w..][..w];
                            for (tx, val) in dst.iter_mut().enumerate() {
                                let ix = (2 * tx + s) as isize - p1;
                                *val = if ix >= 0 && ix < w as isize { src[ix as usize] } else { 0.0 };
                            }
                        }
                    }
                }
            }
            input_rows(&d, vc, t_all)
        });
        let v = if inner > 1 {
            buf::par_init(16 * ci * t_all, 16 * t_all, 1, transform_in)
        } else {
            buf::seq_init(16 * ci * t_all, 16 * t_all, transform_in)
        };
        // 16 GEMMs: M[ξ][o][t] = U[ξ] · V[·][ξ][·] (rows c at stride 16·T).
        let mut m = buf::zeros(16 * co * t_all);
        for (xi, (mx, ux)) in m.chunks_mut(co * t_all).zip(u).enumerate() {
            gemm::gemm(co, t_all, ci, mx, t_all, ux, Mat::rows(&v[xi * t_all..], 16 * t_all), false, inner);
        }
        // Output transform, one channel at a time, vectorized across all tiles of the chunk:
        // the four outputs of every tile (`[(a·2 + b)·T + t]`) …
        let transform_out = |o: usize| -> Vec<f32> {
            let mut out4 = vec![0f32; 4 * t_all];
            output_rows(|xi| &m[(xi * co + o) * t_all..][..t_all], &mut out4, t_all);
            out4
        };
        // … scattered into image j's plane of channel o, clipped at odd sizes, plus bias.
        let write = |o: usize, out4: &[f32], j: usize, out: &mut [f32]| {
            let bv = bias.map_or(0.0, |b| b[o]);
            for ty in 0..th {
                let t0 = j * per_img + ty * tw;
                for a in 0..2 {
                    let oy = 2 * ty + a;
                    if oy >= ho {
                        continue;
                    }
                    let row = &mut out[oy * wo..][..wo];
                    for bc in 0..2 {
                        let src = &out4[(a * 2 + bc) * t_all + t0..][..tw];
                        for (tx, val) in src.iter().enumerate() {
                            let ox = 2 * tx + bc;
                            if ox < wo {
                                row[ox] = if relu { (val + bv).max(0.0) } else { val + bv };
                            }
                        }
                    }
                }
            }
        };
        if inner > 1 && nbc == 1 {
            ychunk
                .par_chunks_mut(ho * wo)
                .enumerate()
                .for_each(|(o, plane)| write(o, &transform_out(o), 0, plane));
        } else {
            for o in 0..co {
                let out4 = transform_out(o);
                for j in 0..nbc {
                    write(o, &out4, j, &mut ychunk[(j * co + o) * ho * wo..][..ho * wo]);
                }
            }
        }
    };
    if y.is_empty() {
        return y;
    }
    if inner > 1 {
        y.chunks_mut(nb * co * ho * wo).enumerate().for_each(body);
    } else {
        y.par_chunks_mut(nb * co * ho * wo).enumerate().for_each(body);
    }
    y
}

/// The transformed weights `U` of an [`eligible`] convolution, and their size in bytes.
pub(crate) fn prepare(geo: &Geom, w: &[f32]) -> (Vec<Lhs<'static>>, usize) {
    let (co, ci) = (geo.co, geo.ci);
    let u = transform_weights(co, ci, |o, c| w[(o * ci + c) * 9..][..9].try_into().expect("3×3 kernel"));
    let bytes = u.iter().map(Lhs::bytes).sum();
    (u, bytes)
}

/// Forward of an [`eligible`] convolution, followed by a ReLU when `relu` (in the output
/// transform); with `keep` (the weight tensor of `w`, inference), the transformed weights are
/// kept for the next call ([`crate::cache`]).
pub fn forward(
    geo: &Geom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep: Option<&burn::backend::flex::FlexTensor>,
    relu: bool,
) -> Vec<f32> {
    let (co, ci) = (geo.co, geo.ci);
    let make = || prepare(geo, w);
    let u = match keep {
        Some(t) => crate::cache::prepared(t, w, crate::cache::tag(&[1, co, ci]), make),
        None => std::sync::Arc::new(make().0),
    };
    run(geo, x, &u, bias, relu)
}

/// Input gradient of an [`eligible`] convolution: `conv(dy, rot180(Wᵀ), padding 2 − p)`.
pub fn input_grad(geo: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (co, ci) = (geo.co, geo.ci);
    // The transposed convolution's "out" channels are our inputs and vice versa.
    let u = transform_weights(ci, co, |c, o| {
        let k = &w[(o * ci + c) * 9..][..9];
        std::array::from_fn(|i| k[8 - i])
    });
    let pad = [2 - geo.pad[0], 2 - geo.pad[1]];
    let back = Geom::new([geo.n, co, geo.ho, geo.wo], [ci, co, 3, 3], [1, 1], pad, [1, 1], 1)
        .expect("the transposed geometry of a valid convolution");
    debug_assert_eq!([back.ho, back.wo], [geo.h, geo.w]);
    run(&back, dy, &u, None, false)
}
