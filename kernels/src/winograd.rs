//! Winograd F(2×2, 3×3), F(3×3, 3×3) and F(4×4, 3×3) for 3×3 stride-1 convolutions: forward,
//! input gradient and weight gradient.
//!
//! **Algorithm.** Each m×m block of outputs (m = 2, 3 or 4, the [`Tile`]) is computed from an α×α
//! input tile `d`, α = m + 2, as `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`: α² multiplies per channel pair
//! instead of 9·m², i.e. 2.25× fewer for F(2×2) (16 for 4 outputs), 3.24× for F(3×3) (25 for 9) and
//! 4× for F(4×4) (36 for 16). Batched over channels the element-wise products become α² GEMMs,
//! `M[ξ][Co, T] = U[ξ][Co, Ci] · V[ξ][Ci, T]` for the α² positions ξ of the transform domain, T =
//! tiles in a chunk of images (V is stored `[Ci][α²][T]`, so one channel's transform is one
//! contiguous block and channels transform in parallel at batch 1). The weight transform `U` is
//! done (in parallel, vectorized across input channels) and packed once per call; the input
//! transform writes `V` tile by tile (zeros outside the image, so any padding ≤ 2 works); the
//! output transform scatters `Aᵀ M A` (+ bias) into NCHW, clipping the last row/column of tiles
//! where m does not divide the size. The matrices are Lavin & Gray's (2016), with the points 0, ±1
//! (F(2×2)) and 0, ±1, ±2 (F(4×4)); F(3×3)'s are the Toom-Cook matrices of the points 0, ±1, 2 (and
//! ∞, like the others), with `Bᵀ` in integers. Larger constants cost precision: against a float64
//! reference F(4×4)'s relative error is ≈ 5e-6 … 2e-5 at 64 … 512 channels, F(2×2)'s ≈ 3e-7 … 1e-6,
//! F(3×3)'s in between (about half of F(4×4)'s at 128 channels:
//! `winograd_error_grows_with_the_tile`; the property tests allow 1e-4).
//!
//! The input gradient of a 3×3 stride-1 convolution with padding p is itself such a
//! convolution: `dx = conv(dy, W′, padding 2 − p)` with `W′[ci, co] = rot180(W[co, ci])`. The
//! weight gradient stays in the transform domain: `dW = Gᵀ dU G` with
//! `dU[ξ] = Σ_tiles (A dY Aᵀ)[ξ] ⊙ V[ξ]`, α² GEMMs over the tiles ([`weight_grad`]).
//!
//! **Which tile.** [`choose`] takes the one with the fewest multiplies over the whole batch:
//! F(4×4) wherever its tiles do not waste much (56², 28², 24², 14², 12², 7² at a large batch:
//! 1.78× fewer than F(2×2) where 4 divides the size), F(3×3) on the maps 3 divides and 4 does
//! not (6²: 100 multiplies per channel pair, 144 with either other tile; 3²: 25 against 36
//! and 64), F(2×2) where the larger tiles have too few tiles to fill a GEMM panel (batch 1).
//! `CNNZOO_CONV=winograd2` keeps every layer on F(2×2) (for comparison), `CNNZOO_CONV=im2col`
//! switches Winograd off.
//!
//! **Where the time goes.** The GEMMs (K = Ci, or K = tiles for the weight gradient); the
//! input transform is the next largest part (about a quarter of a 64-channel layer's time,
//! most of it memory traffic), then the weight transform, paid on every training call and
//! kept between inference calls ([`crate::cache`]). Used when both channel counts are at least
//! [`MIN_CHANNELS`] and either the batch has two images or more and [`MIN_TILES`] tiles of
//! F(2×2), or one image has enough work ([`eligible`]); otherwise the transforms dominate and
//! the implicit GEMM of the `conv` module wins.

use std::mem::MaybeUninit;
use std::ops::{Add, Mul, Sub};

use rayon::prelude::*;

use crate::act::{Activation, relu1, sigmoid1};
use crate::gemm::{self, Lhs};
use crate::geom::Geom;
use crate::view::Mat;
use crate::{buf, copy};

/// Smallest channel count (in and out) that takes the Winograd path.
pub const MIN_CHANNELS: usize = 16;
/// Values per channel a chunk's transformed input aims for (α² × tiles): 256 tiles of
/// F(2×2), 113 of F(4×4).
const TARGET_VALUES: usize = 4096;

/// Fewest output tiles of F(2×2) (over the whole batch) for which the Winograd path pays.
pub const MIN_TILES: usize = 256;

/// A Winograd scheme F(m×m, 3×3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tile {
    /// F(2×2, 3×3): 4×4 input tiles.
    F2,
    /// F(3×3, 3×3): 5×5 input tiles.
    F3,
    /// F(4×4, 3×3): 6×6 input tiles.
    F4,
}

impl Tile {
    /// Outputs per tile side.
    pub const fn m(self) -> usize {
        match self {
            Tile::F2 => 2,
            Tile::F3 => 3,
            Tile::F4 => 4,
        }
    }

    /// Input tile side, m + 2.
    pub const fn alpha(self) -> usize {
        self.m() + 2
    }

    /// Multiplies per (in, out) channel pair over the whole batch of `geo`.
    pub fn multiplies(self, geo: &Geom) -> usize {
        let m = self.m();
        geo.n * geo.ho.div_ceil(m) * geo.wo.div_ceil(m) * self.alpha() * self.alpha()
    }
}

/// Whether `geo` is a convolution this module computes (with either tile).
pub fn eligible(geo: &Geom) -> bool {
    let tiles = Tile::F2.multiplies(geo) / 16;
    geo.kh == 3
        && geo.kw == 3
        && geo.stride == [1, 1]
        && geo.dil == [1, 1]
        && geo.groups == 1
        && geo.pad[0] <= 2
        && geo.pad[1] <= 2
        && geo.ci >= MIN_CHANNELS
        && geo.co >= MIN_CHANNELS
        && if geo.n >= 2 {
            // The transforms must be paid for by enough tiles: the late, weight-heavy layers
            // of a small batch stay on the implicit GEMM.
            tiles >= MIN_TILES
        } else {
            // At batch 1 the GEMMs of one image are each split across the threads, a fixed
            // cost per GEMM: Winograd pays where the GEMM work is large and the tiles do not
            // waste much of it (measured on torchvision's ResNet-18: its 3×3 layers at 56²,
            // 28², 14² and 7² take 1.1–1.4 ms instead of 1.6–1.75; d2l's at 24² … 3², with
            // a quarter of that work, lose).
            tiles * geo.ci * geo.co >= MIN_WORK_B1 && 2 * 9 * geo.ho * geo.wo >= 3 * fewest_multiplies(geo).1
        }
}

/// The GEMM work (F(2×2) tiles × in × out channels) from which a single image takes Winograd.
pub const MIN_WORK_B1: usize = 1 << 21;

/// Fewest tiles F(3×3) and F(4×4) need: one column panel of the micro-kernel (fewer leave
/// most of each panel empty: ResNet-18's 7² layers at batch 1 have 4 of F(4×4), 9 of F(3×3)).
const MIN_BIG_TILES: usize = 16;

/// The tile with the fewest multiplies per channel pair (the smaller tile on a tie: cheaper
/// transforms, fewer rounding steps; F(3×3) and F(4×4) only with [`MIN_BIG_TILES`]), and that
/// count.
fn fewest_multiplies(geo: &Geom) -> (Tile, usize) {
    let mut best = (Tile::F2, Tile::F2.multiplies(geo));
    for tile in [Tile::F3, Tile::F4] {
        let mults = tile.multiplies(geo);
        if mults < best.1 && mults / (tile.alpha() * tile.alpha()) >= MIN_BIG_TILES {
            best = (tile, mults);
        }
    }
    best
}

/// The tile `geo` takes, or `None` for the implicit GEMM: [`eligible`] geometries, the tile
/// with fewer multiplies ([`fewest_multiplies`]), as `CNNZOO_CONV` allows.
pub fn choose(geo: &Geom) -> Option<Tile> {
    match crate::conv::mode() {
        crate::conv::Mode::Im2col => None,
        _ if !eligible(geo) => None,
        crate::conv::Mode::Winograd2 => Some(Tile::F2),
        crate::conv::Mode::Auto => Some(fewest_multiplies(geo).0),
    }
}

/// A value the transforms compute with: one `f32`, or [`V8`] (eight lanes at once).
trait Lane: Copy + Add<Output = Self> + Sub<Output = Self> + Mul<f32, Output = Self> {}
impl Lane for f32 {}

/// Eight `f32` lanes, computed element-wise (vectorized by the compiler).
#[derive(Clone, Copy)]
struct V8([f32; 8]);
impl Lane for V8 {}
impl Add for V8 {
    type Output = V8;
    #[inline(always)]
    fn add(self, o: V8) -> V8 {
        V8(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
}
impl Sub for V8 {
    type Output = V8;
    #[inline(always)]
    fn sub(self, o: V8) -> V8 {
        V8(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}
impl Mul<f32> for V8 {
    type Output = V8;
    #[inline(always)]
    fn mul(self, c: f32) -> V8 {
        V8(std::array::from_fn(|i| self.0[i] * c))
    }
}

/// A 1-D transform of I values into O, on any [`Lane`].
trait Transform<const I: usize, const O: usize> {
    fn apply<T: Lane>(x: [T; I]) -> [T; O];
}

/// `G g` of F(2×2), F(3×3) and F(4×4), `Bᵀ d` and `Aᵀ m` of each, and for the weight gradient the
/// transposes `A y` (m → α) and `Gᵀ u` (α → 3).
struct GF2;
struct GF3;
struct GF4;
struct BtF2;
struct BtF3;
struct BtF4;
struct AtF2;
struct AtF3;
struct AtF4;
struct AF2;
struct AF3;
struct AF4;
struct GtF2;
struct GtF3;
struct GtF4;

impl Transform<3, 4> for GF2 {
    #[inline(always)]
    fn apply<T: Lane>([a, b, c]: [T; 3]) -> [T; 4] {
        [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c]
    }
}
impl Transform<3, 5> for GF3 {
    #[inline(always)]
    fn apply<T: Lane>([a, b, c]: [T; 3]) -> [T; 5] {
        let s = a + c;
        [a * 0.5, (s + b) * -0.5, (s - b) * (-1.0 / 6.0), (a + (b + c * 2.0) * 2.0) * (1.0 / 6.0), c]
    }
}
impl Transform<3, 6> for GF4 {
    #[inline(always)]
    fn apply<T: Lane>([a, b, c]: [T; 3]) -> [T; 6] {
        let (s, q) = (a + c, a * (1.0 / 24.0) + c * (1.0 / 6.0));
        [
            a * 0.25,
            (s + b) * (-1.0 / 6.0),
            (s - b) * (-1.0 / 6.0),
            q + b * (1.0 / 12.0),
            q - b * (1.0 / 12.0),
            c,
        ]
    }
}
impl Transform<4, 4> for BtF2 {
    #[inline(always)]
    fn apply<T: Lane>([d0, d1, d2, d3]: [T; 4]) -> [T; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }
}
impl Transform<5, 5> for BtF3 {
    #[inline(always)]
    fn apply<T: Lane>([d0, d1, d2, d3, d4]: [T; 5]) -> [T; 5] {
        let q = d3 - d1;
        [(d0 - d2) * 2.0 + q, q - (d1 + d2), q + (d1 - d2) * 3.0, q, (d4 - d2) - q * 2.0]
    }
}
impl Transform<6, 6> for BtF4 {
    #[inline(always)]
    fn apply<T: Lane>([d0, d1, d2, d3, d4, d5]: [T; 6]) -> [T; 6] {
        let (p, q) = (d4 - d2 * 4.0, d3 - d1 * 4.0);
        let (r, s) = (d4 - d2, (d3 - d1) * 2.0);
        [d0 * 4.0 - d2 * 5.0 + d4, p + q, p - q, r + s, r - s, d1 * 4.0 - d3 * 5.0 + d5]
    }
}
impl Transform<4, 2> for AtF2 {
    #[inline(always)]
    fn apply<T: Lane>([m0, m1, m2, m3]: [T; 4]) -> [T; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }
}
impl Transform<5, 3> for AtF3 {
    #[inline(always)]
    fn apply<T: Lane>([m0, m1, m2, m3, m4]: [T; 5]) -> [T; 3] {
        let s = m1 + m2;
        [m0 + s + m3, (m1 - m2) + m3 * 2.0, s + m3 * 4.0 + m4]
    }
}
impl Transform<6, 4> for AtF4 {
    #[inline(always)]
    fn apply<T: Lane>([m0, m1, m2, m3, m4, m5]: [T; 6]) -> [T; 4] {
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        [m0 + s12 + s34, d12 + d34 * 2.0, s12 + s34 * 4.0, d12 + d34 * 8.0 + m5]
    }
}
impl Transform<2, 4> for AF2 {
    #[inline(always)]
    fn apply<T: Lane>([y0, y1]: [T; 2]) -> [T; 4] {
        [y0, y0 + y1, y0 - y1, y1 * -1.0]
    }
}
impl Transform<3, 5> for AF3 {
    #[inline(always)]
    fn apply<T: Lane>([y0, y1, y2]: [T; 3]) -> [T; 5] {
        let e = y0 + y2;
        [y0, e + y1, e - y1, y0 + (y1 + y2 * 2.0) * 2.0, y2]
    }
}
impl Transform<4, 6> for AF4 {
    #[inline(always)]
    fn apply<T: Lane>([y0, y1, y2, y3]: [T; 4]) -> [T; 6] {
        let (e, o) = (y0 + y2, y1 + y3);
        let (e2, o2) = (y0 + y2 * 4.0, (y1 + y3 * 4.0) * 2.0);
        [y0, e + o, e - o, e2 + o2, e2 - o2, y3]
    }
}
impl Transform<4, 3> for GtF2 {
    #[inline(always)]
    fn apply<T: Lane>([u0, u1, u2, u3]: [T; 4]) -> [T; 3] {
        let (s, d) = ((u1 + u2) * 0.5, (u1 - u2) * 0.5);
        [u0 + s, d, s + u3]
    }
}
impl Transform<5, 3> for GtF3 {
    #[inline(always)]
    fn apply<T: Lane>([u0, u1, u2, u3, u4]: [T; 5]) -> [T; 3] {
        let (h1, s2, s3) = (u1 * -0.5, u2 * (1.0 / 6.0), u3 * (1.0 / 6.0));
        [u0 * 0.5 + h1 - s2 + s3, h1 + s2 + s3 * 2.0, h1 - s2 + s3 * 4.0 + u4]
    }
}
impl Transform<6, 3> for GtF4 {
    #[inline(always)]
    fn apply<T: Lane>([u0, u1, u2, u3, u4, u5]: [T; 6]) -> [T; 3] {
        let (s12, d12, s34, d34) = (u1 + u2, u2 - u1, u3 + u4, u3 - u4);
        [
            u0 * 0.25 + s12 * (-1.0 / 6.0) + s34 * (1.0 / 24.0),
            d12 * (1.0 / 6.0) + d34 * (1.0 / 12.0),
            (s34 - s12) * (1.0 / 6.0) + u5,
        ]
    }
}

/// `dst[o][t] = F(src[0][t], …, src[I−1][t])[o]` for every lane `t < tw`, eight lanes at a
/// time; `dst` holds the O rows of `tw` one after another.
#[inline(always)]
fn lanes<const I: usize, const O: usize, F: Transform<I, O>>(src: [&[f32]; I], dst: &mut [f32], tw: usize) {
    let mut rows = dst[..O * tw].chunks_exact_mut(tw);
    lanes_into::<I, O, F>(src, std::array::from_fn(|_| rows.next().expect("O rows of tw")), tw);
}

/// [`lanes`] into O separate rows, in 8-lane AVX registers where the CPU has AVX2 (LLVM
/// vectorizes the `V8` arithmetic with SSE's 4 lanes otherwise). Rust fuses no multiply and add
/// on its own, so both copies give the same bits.
#[inline(always)]
fn lanes_into<const I: usize, const O: usize, F: Transform<I, O>>(
    src: [&[f32]; I],
    dst: [&mut [f32]; O],
    tw: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<const I: usize, const O: usize, F: Transform<I, O>>(
            src: [&[f32]; I],
            dst: [&mut [f32]; O],
            tw: usize,
        ) {
            lanes_body::<I, O, F>(src, dst, tw)
        }
        if crate::cpu::avx2() {
            // SAFETY: the CPU supports the features `avx2` was compiled for.
            return unsafe { avx2::<I, O, F>(src, dst, tw) };
        }
    }
    lanes_body::<I, O, F>(src, dst, tw)
}

#[inline(always)]
fn lanes_body<const I: usize, const O: usize, F: Transform<I, O>>(
    src: [&[f32]; I],
    dst: [&mut [f32]; O],
    tw: usize,
) {
    let src = src.map(|s| &s[..tw]);
    let mut rows = dst.map(|r| &mut r[..tw]);
    let full = tw - tw % 8;
    for t in (0..full).step_by(8) {
        let v = F::apply(std::array::from_fn(|k| V8(src[k][t..t + 8].try_into().expect("8 lanes"))));
        for (row, v) in rows.iter_mut().zip(v) {
            row[t..t + 8].copy_from_slice(&v.0);
        }
    }
    for t in full..tw {
        let v = F::apply(std::array::from_fn(|k| src[k][t]));
        for (row, v) in rows.iter_mut().zip(v) {
            row[t] = v;
        }
    }
}

/// `U[ξ] = G g Gᵀ` for every (out, in) pair, as α² packed `[co × ci]` operands. `g(o)` gives
/// the 3×3 kernels of output channel `o` as 9 rows of `ci` (`g(o)[i·3 + j][c]` = row i, column
/// j of the kernel from input channel c).
fn transform_weights(
    tile: Tile,
    co: usize,
    ci: usize,
    g: impl Fn(usize) -> Vec<f32> + Sync,
) -> Vec<Lhs<'static>> {
    match tile {
        Tile::F2 => weights_with::<4, GF2>(co, ci, g),
        Tile::F3 => weights_with::<5, GF3>(co, ci, g),
        Tile::F4 => weights_with::<6, GF4>(co, ci, g),
    }
}

fn weights_with<const A: usize, G: Transform<3, A>>(
    co: usize,
    ci: usize,
    g: impl Fn(usize) -> Vec<f32> + Sync,
) -> Vec<Lhs<'static>> {
    let mut u = vec![vec![0f32; co * ci]; A * A];
    // Output channels split across the threads: part p writes rows `parts[p]` of all α²
    // matrices, each row vectorized across the input channels. Then each matrix is packed.
    let parts = buf::ranges(co, buf::threads(), 1);
    let mut rows: Vec<Vec<&mut [f32]>> = parts.iter().map(|_| Vec::with_capacity(A * A)).collect();
    for ux in u.iter_mut() {
        for (dst, piece) in rows.iter_mut().zip(buf::split_mut(ux, parts.iter().map(|r| r.len() * ci))) {
            dst.push(piece);
        }
    }
    rows.into_par_iter().zip(parts).for_each(|(mut mats, range)| {
        let mut gg = vec![0f32; 3 * A * ci];
        for (i, o) in range.enumerate() {
            let k = g(o);
            // G g, column j at a time: gg[(j·α + r)·ci ..] = (G g)[r][j].
            for (j, dst) in gg.chunks_exact_mut(A * ci).enumerate() {
                lanes::<3, A, G>(std::array::from_fn(|r| &k[(r * 3 + j) * ci..]), dst, ci);
            }
            // (G g) Gᵀ, row r at a time, straight into row o of U[r·α + s].
            for (r, mats) in mats.chunks_exact_mut(A).enumerate() {
                let mut dst = mats.iter_mut().map(|m| &mut m[i * ci..][..ci]);
                let dst = std::array::from_fn(|_| dst.next().expect("α matrices"));
                lanes_into::<3, A, G>(std::array::from_fn(|j| &gg[(j * A + r) * ci..]), dst, ci);
            }
        }
    });
    u.into_par_iter().map(|ux| Lhs::owned(ux, ci, co, ci)).collect()
}

/// A 2-D transform `F · X · Fᵀ` of I×I values into O×O, vectorized across `tw` tiles:
/// `src(r·I + s)` is the vector of element (r, s), and `emit(i, row)` receives row i of the
/// result (element (i, j) at `row[j·tw ..]`), rows in order.
#[inline(always)]
fn two_pass<'a, const I: usize, const O: usize, F: Transform<I, O>>(
    src: impl Fn(usize) -> &'a [f32],
    tw: usize,
    mut emit: impl FnMut(usize, &[f32]),
) {
    // F applied to each column s, stored transposed: t[(s·O + i)·tw ..] = (F X)[i][s]; then
    // row i of (F X) Fᵀ is F applied to row i of F X. Both in scratch space, written in full.
    buf::with_scratch((I + 1) * O * tw, |scratch| {
        let (t, row) = scratch.split_at_mut(I * O * tw);
        for (s, ts) in t.chunks_exact_mut(O * tw).enumerate() {
            lanes::<I, O, F>(std::array::from_fn(|r| src(r * I + s)), ts, tw);
        }
        for i in 0..O {
            lanes::<I, O, F>(std::array::from_fn(|s| &t[(s * O + i) * tw..]), row, tw);
            emit(i, row);
        }
    })
}

/// [`two_pass`] of the I² vectors of `tw` values laid end to end in `d`, written front to back
/// into `dst` (O² vectors of `tw`), which it returns initialised.
#[inline(always)]
fn two_pass_into<'e, const I: usize, const O: usize, F: Transform<I, O>>(
    d: &[f32],
    tw: usize,
    dst: &'e mut [MaybeUninit<f32>],
) -> &'e mut [f32] {
    let mut out = buf::Filler::new(dst);
    two_pass::<I, O, F>(|xi| &d[xi * tw..][..tw], tw, |_, row| _ = out.next(O * tw, row.iter().copied()));
    out.finish()
}

/// `src` (rows of `w`) into the interior of `dst` (rows of `wp`) at row `p0`, column `p1`. The
/// cells around it are not written: the caller zeroes `dst` once, and every plane of one call
/// has the same geometry, so they stay zero (a fill per border run cost as much as the copy).
fn pad_plane(src: &[f32], w: usize, [p0, p1]: [usize; 2], wp: usize, dst: &mut [f32]) {
    let h = src.len() / w;
    assert!(
        p1 + w <= wp && (p0 + h) * wp <= dst.len(),
        "pad_plane: {h}×{w} at ({p0}, {p1}) past the padded plane"
    );
    for (row, src) in dst[p0 * wp..].chunks_exact_mut(wp).zip(src.chunks_exact(w)) {
        copy::copy_short(&mut row[p1..p1 + w], src);
    }
}

/// The K×K taps of every tile of a plane, tiles at stride M (`th` rows of `tw`): tap (r, s) of
/// tile (ty, tx) is `pp[(M·ty + r)·wp + M·tx + s]`, written to `d[(r·K + s)·t_all + t0 + ty·tw +
/// tx]`. `pp` must hold every tap (zero-bordered, [`pad_plane`]).
#[inline(always)]
fn taps<const M: usize, const K: usize>(
    pp: &[f32],
    wp: usize,
    th: usize,
    tw: usize,
    d: &mut [f32],
    t_all: usize,
    t0: usize,
) {
    assert!(
        th > 0 && tw > 0 && M * (tw - 1) + K <= wp && (M * (th - 1) + K) * wp <= pp.len(),
        "taps: plane too small"
    );
    for ty in 0..th {
        for r in 0..K {
            let row = &pp[(M * ty + r) * wp..][..wp];
            for s in 0..K {
                let dst = &mut d[(r * K + s) * t_all + t0 + ty * tw..][..tw];
                for (v, src) in dst.iter_mut().zip(row[s..].iter().step_by(M)) {
                    *v = *src;
                }
            }
        }
    }
}

/// `Bᵀ d B` of channel `c` of images `n0..n0 + nbc` into `vc` (α² vectors of the chunk's `T`
/// tiles, element (r, s) at `[(r·α + s)·T ..]`), the input tiles read from `x` (zeros outside
/// the image).
fn transform_input<'e>(
    geo: &Geom,
    tile: Tile,
    x: &[f32],
    n0: usize,
    nbc: usize,
    c: usize,
    vc: &'e mut [MaybeUninit<f32>],
) -> &'e mut [f32] {
    let (ci, h, w) = (geo.ci, geo.h, geo.w);
    let m = tile.m();
    let (th, tw) = (geo.ho.div_ceil(m), geo.wo.div_ceil(m));
    // d[r·α + s][t] = x[m·ty + r − p, m·tx + s − p], vectorized across all tiles.
    let plane = |j: usize| &x[((n0 + j) * ci + c) * h * w..][..h * w];
    match tile {
        Tile::F2 => tiles_transformed::<2, 4, 4, BtF2>(plane, nbc, w, geo.pad, [th, tw], vc),
        Tile::F3 => tiles_transformed::<3, 5, 5, BtF3>(plane, nbc, w, geo.pad, [th, tw], vc),
        Tile::F4 => tiles_transformed::<4, 6, 6, BtF4>(plane, nbc, w, geo.pad, [th, tw], vc),
    }
}

/// `A dy Aᵀ` of output channel `o` of images `n0..n0 + nbc` into `yo` (α² vectors of the
/// chunk's tiles, like [`transform_input`]), the m×m output tiles read from `dy` (zeros past
/// the edge: outputs the clipped tiles computed but never wrote).
fn transform_grad<'e>(
    geo: &Geom,
    tile: Tile,
    dy: &[f32],
    n0: usize,
    nbc: usize,
    o: usize,
    yo: &'e mut [MaybeUninit<f32>],
) -> &'e mut [f32] {
    let (co, ho, wo) = (geo.co, geo.ho, geo.wo);
    let m = tile.m();
    let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
    // g[ra·m + rb][t] = dy[m·ty + ra, m·tx + rb] (zeros past the edge).
    let plane = |j: usize| &dy[((n0 + j) * co + o) * ho * wo..][..ho * wo];
    match tile {
        Tile::F2 => tiles_transformed::<2, 2, 4, AF2>(plane, nbc, wo, [0, 0], [th, tw], yo),
        Tile::F3 => tiles_transformed::<3, 3, 5, AF3>(plane, nbc, wo, [0, 0], [th, tw], yo),
        Tile::F4 => tiles_transformed::<4, 4, 6, AF4>(plane, nbc, wo, [0, 0], [th, tw], yo),
    }
}

/// The K×K taps of every tile (tiles at stride M, `th` rows of `tw` per plane) of the planes
/// `plane(j)`, `j < nbc` (rows of `w`, read as if placed at `pad` in a zero-bordered plane of
/// the tiles' extent), transformed by `F` into `out` (O² vectors of the `nbc·th·tw` tiles,
/// like [`transform_input`]), which it returns initialised. The gathered taps and the padded
/// plane are scratch space, written in full before they are read.
fn tiles_transformed<'p, 'e, const M: usize, const K: usize, const O: usize, F: Transform<K, O>>(
    plane: impl Fn(usize) -> &'p [f32],
    nbc: usize,
    w: usize,
    pad: [usize; 2],
    [th, tw]: [usize; 2],
    out: &'e mut [MaybeUninit<f32>],
) -> &'e mut [f32] {
    let t_all = nbc * th * tw;
    // The taps reach M·(th − 1) + K rows and as many columns (for the input: m·th + α − m ≥
    // h + 2p, as ho = h + 2p − 2). The chunk's padded planes lie end to end, with 8 floats
    // of slack for the 8-float loads of the last tile's taps.
    let (hp, wp) = (M * th.saturating_sub(1) + K, M * tw.saturating_sub(1) + K);
    let ps = hp * wp;
    buf::with_scratch(K * K * t_all + nbc * ps + 8, |scratch| {
        let (d, pp) = scratch.split_at_mut(K * K * t_all);
        pp.fill(0.0);
        for (j, pj) in pp.chunks_exact_mut(ps).enumerate() {
            pad_plane(plane(j), w, pad, wp, pj);
        }
        #[cfg(target_arch = "x86_64")]
        if crate::cpu::avx2() {
            // SAFETY: the CPU has AVX2; `pp` holds the `nbc` planes of `hp` rows of `wp` and 8
            // floats more, `d` the K² rows of `t_all`.
            unsafe { taps_avx2::<M, K>(pp, [nbc, th, tw], wp, d) };
            return two_pass_into::<K, O, F>(d, t_all, out);
        }
        for (j, pj) in pp.chunks_exact(ps).enumerate() {
            taps::<M, K>(pj, wp, th, tw, d, t_all, j * th * tw);
        }
        two_pass_into::<K, O, F>(d, t_all, out)
    })
}

/// [`taps`] of the `nbc` planes laid end to end in `pp` (each `hp = M·(th − 1) + K` rows of
/// `wp`), eight tiles at a time, tiles and planes alike: per row r of the K×K taps, the eight
/// tiles' K taps are loaded as eight 8-float runs and transposed in registers, so each of the
/// K rows `(r, s)` of `d` gets eight tiles with one store — instead of a strided scalar loop
/// per tile row (3 tiles long on a 12² map, 1 on a 3² one).
///
/// # Safety
/// The CPU has AVX2; `K ≤ 8`; `pp` holds `nbc·hp·wp + 8` floats and `d` `K²·nbc·th·tw`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn taps_avx2<const M: usize, const K: usize>(
    pp: &[f32],
    [nbc, th, tw]: [usize; 3],
    wp: usize,
    d: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (per, ps) = (th * tw, (M * th.saturating_sub(1) + K) * wp);
    let t_all = nbc * per;
    assert!(
        K <= 8 && tw > 0 && M * (tw - 1) + K <= wp && pp.len() >= nbc * ps + 8 && d.len() >= K * K * t_all,
        "taps_avx2: buffers too small"
    );
    // Offsets of the tiles' first taps, in order (plane, tile row, tile column), stepped
    // without divisions; the last tile's runs end at most 8 − K floats past the last plane
    // (its last row ends at nbc·ps, the run at M·(tw − 1) + 8 ≤ wp + 8 − K into that row).
    let [mut plane, mut ty, mut tx] = [0usize; 3];
    let mut next = || {
        let o = plane + M * ty * wp + M * tx;
        tx += 1;
        if tx == tw {
            (tx, ty) = (0, ty + 1);
            if ty == th {
                (ty, plane) = (0, plane + ps);
            }
        }
        o
    };
    let (src, dst) = (pp.as_ptr(), d.as_mut_ptr());
    for t0 in (0..t_all).step_by(8) {
        let n = (t_all - t0).min(8);
        // Past the last tile, lanes repeat it (loaded, never stored).
        let mut offs = [0usize; 8];
        for i in 0..8 {
            offs[i] = if i < n { next() } else { offs[n - 1] };
        }
        for r in 0..K {
            // SAFETY: offs[i] + r·wp + 8 ≤ nbc·ps + 8 − K ≤ pp.len() (asserted above).
            let rows: [__m256; 8] =
                std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(offs[i] + r * wp)) });
            let cols = crate::copy::transpose8(rows);
            for (s, col) in cols.iter().enumerate().take(K) {
                // SAFETY: row r·K + s of `d` has t_all ≥ t0 + n floats from its start.
                unsafe {
                    let at = dst.add((r * K + s) * t_all + t0);
                    if n == 8 {
                        _mm256_storeu_ps(at, *col);
                    } else {
                        let mut lanes = [0f32; 8];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), *col);
                        std::ptr::copy_nonoverlapping(lanes.as_ptr(), at, n);
                    }
                }
            }
        }
    }
}

/// `Aᵀ M A` on a row of tiles: `m(ξ)` is the vector of `tw` tiles at transform position
/// ξ = r·α + s, `out` receives the m² outputs `(a, b)` at `[(a·m + b)·tw ..]`.
fn output_rows<'a>(tile: Tile, m: impl Fn(usize) -> &'a [f32], out: &mut [f32], tw: usize) {
    let mt = tile.m() * tw;
    let emit = |a: usize, row: &[f32]| out[a * mt..][..mt].copy_from_slice(row);
    match tile {
        Tile::F2 => two_pass::<4, 2, AtF2>(m, tw, emit),
        Tile::F3 => two_pass::<5, 3, AtF3>(m, tw, emit),
        Tile::F4 => two_pass::<6, 4, AtF4>(m, tw, emit),
    }
}

/// The M×M output tiles of one plane, output (ra, rb) of tile (ty, tx) at `outs[(ra·M + rb)·
/// t_all + t0 + ty·tw + tx]`, written to the plane `out` (rows of `wo`, clipped at its edges)
/// plus `bias`, then the activation `act` — the inverse of [`taps`].
#[allow(clippy::too_many_arguments)]
fn untile<const M: usize>(
    outs: &[f32],
    t_all: usize,
    t0: usize,
    [th, tw]: [usize; 2],
    wo: usize,
    out: &mut [f32],
    bias: f32,
    act: Activation,
) {
    let ho = out.len() / wo;
    for ty in 0..th {
        for ra in 0..M {
            let oy = M * ty + ra;
            if oy >= ho {
                break;
            }
            let row = &mut out[oy * wo..][..wo];
            for rb in 0..M {
                let src = &outs[(ra * M + rb) * t_all + t0 + ty * tw..][..tw];
                let dst = row.iter_mut().skip(rb).step_by(M).zip(src);
                match act {
                    Activation::Identity => dst.for_each(|(d, v)| *d = v + bias),
                    Activation::Relu => dst.for_each(|(d, v)| *d = relu1(v + bias)),
                    Activation::Sigmoid => dst.for_each(|(d, v)| *d = sigmoid1(v + bias)),
                }
            }
        }
    }
}

/// The convolution of `x [n, ci, h, w]` with the weights `u` transformed for `tile`, output
/// `[n, co, ho, wo]` (shapes from `geo`), plus `bias`.
pub(crate) fn run(
    geo: &Geom,
    tile: Tile,
    x: &[f32],
    u: &[Lhs],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (ci, co, ho, wo) = (geo.ci, geo.co, geo.ho, geo.wo);
    let (m, a) = (tile.m(), tile.alpha());
    let (aa, mm) = (a * a, m * m);
    debug_assert_eq!(u.len(), aa, "weights transformed for {tile:?}");
    let (th, tw) = (ho.div_ceil(m), wo.div_ceil(m));
    let per_img = th * tw;
    let threads = buf::threads();
    // Images per chunk: enough for about TARGET_VALUES transform values per tile column, or up
    // to twice that where the chunk's tiles then fill the GEMMs' column panels better (a
    // partial last panel costs as much as a full one: 117 tiles take 128 columns, 144 take 144).
    let nb0 = (TARGET_VALUES / aa).div_ceil(per_img).max(1);
    let nr = crate::sgemm::nr();
    let waste = |nb: usize| {
        let t = nb * per_img;
        (t.div_ceil(nr) * nr - t, t)
    };
    let mut nb = (nb0..=2 * nb0)
        .min_by(|&p, &q| {
            let ((wp, tp), (wq, tq)) = (waste(p), waste(q));
            (wp * tq).cmp(&(wq * tp))
        })
        .unwrap_or(nb0);
    if geo.n >= threads {
        nb = nb.min(geo.n.div_ceil(threads));
    }
    let nb = nb.clamp(1, geo.n.max(1));
    let chunks = geo.n.div_ceil(nb);
    let inner = if chunks < threads { threads } else { 1 };
    let mut y = buf::zeros(geo.n * co * ho * wo);
    let body = |(idx, ychunk): (usize, &mut [f32])| {
        let n0 = idx * nb;
        let nbc = ychunk.len() / (co * ho * wo);
        let t_all = nbc * per_img;
        // V[c][ξ][t]: one channel's α² transform-domain rows are contiguous, so channels can
        // be transformed in parallel when this chunk has the machine to itself (batch 1).
        let transform_in = buf::piece_fn(|c: usize, vc: &mut [MaybeUninit<f32>]| {
            transform_input(geo, tile, x, n0, nbc, c, vc)
        });
        let v = if inner > 1 {
            buf::par_init(aa * ci * t_all, aa * t_all, 1, transform_in)
        } else {
            buf::seq_init(aa * ci * t_all, aa * t_all, transform_in)
        };
        // α² GEMMs: M[ξ][o][t] = U[ξ] · V[·][ξ][·] (rows c at stride α²·T), in scratch space
        // the GEMMs overwrite in full (ci ≥ 16 > 0 terms each).
        // When this chunk has the machine to itself (batch 1), the threads share out the α²
        // GEMMs whole: one fork and join per layer instead of one per GEMM.
        buf::with_scratch(aa * co * t_all, |mt| {
            let product = |(xi, (mx, ux)): (usize, (&mut [f32], &Lhs))| {
                let vx = Mat::rows(&v[xi * t_all..], aa * t_all);
                gemm::gemm(co, t_all, ci, mx, t_all, ux, vx, false, 1);
            };
            if inner > 1 {
                mt.par_chunks_mut(co * t_all).zip(u).enumerate().for_each(product);
            } else {
                mt.chunks_mut(co * t_all).zip(u).enumerate().for_each(product);
            }
            let mt = &*mt;
            // Output transform, one channel at a time, vectorized across all tiles of the chunk:
            // the m² outputs of every tile (`[(a·m + b)·T + t]`, scratch space written in full) …
            let transform_out = |o: usize, then: &mut dyn FnMut(&[f32])| {
                buf::with_scratch(mm * t_all, |outs| {
                    output_rows(tile, |xi| &mt[(xi * co + o) * t_all..][..t_all], outs, t_all);
                    then(outs)
                })
            };
            // … scattered into image j's plane of channel o, clipped at the edges, plus bias.
            let write = |o: usize, outs: &[f32], j: usize, out: &mut [f32]| {
                let bv = bias.map_or(0.0, |b| b[o]);
                match tile {
                    Tile::F2 => untile::<2>(outs, t_all, j * per_img, [th, tw], wo, out, bv, act),
                    Tile::F3 => untile::<3>(outs, t_all, j * per_img, [th, tw], wo, out, bv, act),
                    Tile::F4 => untile::<4>(outs, t_all, j * per_img, [th, tw], wo, out, bv, act),
                }
            };
            if inner > 1 && nbc == 1 {
                ychunk
                    .par_chunks_mut(ho * wo)
                    .enumerate()
                    .for_each(|(o, plane)| transform_out(o, &mut |outs| write(o, outs, 0, plane)));
            } else {
                for o in 0..co {
                    transform_out(o, &mut |outs| {
                        for j in 0..nbc {
                            write(o, outs, j, &mut ychunk[(j * co + o) * ho * wo..][..ho * wo]);
                        }
                    });
                }
            }
        })
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

/// The weights `w` of an [`eligible`] convolution transformed for `tile`, and their size in
/// bytes.
pub(crate) fn prepare(geo: &Geom, tile: Tile, w: &[f32]) -> (Vec<Lhs<'static>>, usize) {
    let (co, ci) = (geo.co, geo.ci);
    let u = transform_weights(tile, co, ci, |o| {
        let mut k = vec![0f32; 9 * ci];
        for (c, kc) in w[o * ci * 9..][..ci * 9].chunks_exact(9).enumerate() {
            for (t, v) in kc.iter().enumerate() {
                k[t * ci + c] = *v;
            }
        }
        k
    });
    let bytes = u.iter().map(Lhs::bytes).sum();
    (u, bytes)
}

/// Forward of an [`eligible`] convolution with `tile`, followed by the activation `act` (in the
/// output transform); with `keep` (the weight tensor of `w`, inference), the transformed
/// weights are kept for the next call ([`crate::cache`]).
pub fn forward(
    geo: &Geom,
    tile: Tile,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    keep: Option<&burn::backend::flex::FlexTensor>,
    act: Activation,
) -> Vec<f32> {
    let (co, ci) = (geo.co, geo.ci);
    let make = || prepare(geo, tile, w);
    let u = match keep {
        Some(t) => crate::cache::prepared(t, w, crate::cache::tag(&[1, co, ci, tile.m()]), make),
        None => std::sync::Arc::new(make().0),
    };
    run(geo, tile, x, &u, bias, act)
}

/// Input gradient of an [`eligible`] convolution with `tile`:
/// `conv(dy, rot180(Wᵀ), padding 2 − p)`.
pub fn input_grad(geo: &Geom, tile: Tile, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let (co, ci) = (geo.co, geo.ci);
    // The transposed convolution's "out" channels are our inputs and vice versa.
    let u = transform_weights(tile, ci, co, |c| {
        // Kernel t of the pair (c, o) is rot180(W[o, c]): element 8 − t.
        let mut k = vec![0f32; 9 * co];
        for o in 0..co {
            for (t, v) in w[(o * ci + c) * 9..][..9].iter().rev().enumerate() {
                k[t * co + o] = *v;
            }
        }
        k
    });
    let pad = [2 - geo.pad[0], 2 - geo.pad[1]];
    let back = Geom::new([geo.n, co, geo.ho, geo.wo], [ci, co, 3, 3], [1, 1], pad, [1, 1], 1)
        .expect("the transposed geometry of a valid convolution");
    debug_assert_eq!([back.ho, back.wo], [geo.h, geo.w]);
    run(&back, tile, dy, &u, None, Activation::Identity)
}

/// Weight gradient of an [`eligible`] convolution with `tile`, `[co, ci, 3, 3]`: with
/// `Y = Aᵀ[U ⊙ V]A` per tile and `U = G g Gᵀ`, the gradient is `Gᵀ dU G` with
/// `dU[ξ] = Σ_tiles (A dY Aᵀ)[ξ] ⊙ V[ξ]` — per position ξ a GEMM over the tiles,
/// `dU[ξ][Co, Ci] += Ŷ[ξ][Co, T] · V[ξ][Ci, T]ᵀ`, the α² GEMMs shared among the threads.
pub fn weight_grad(geo: &Geom, tile: Tile, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (ci, co) = (geo.ci, geo.co);
    let (m, a) = (tile.m(), tile.alpha());
    let aa = a * a;
    let per_img = geo.ho.div_ceil(m) * geo.wo.div_ceil(m);
    // Deeper GEMMs than the forward's (K = tiles): each chunk adds into every dU[ξ].
    let nb = (2 * TARGET_VALUES / aa).div_ceil(per_img).clamp(1, geo.n.max(1));
    let mut du: Vec<Vec<f32>> = (0..aa).map(|_| buf::zeros(co * ci)).collect();
    let mut n0 = 0;
    while n0 < geo.n {
        let nbc = nb.min(geo.n - n0);
        let t_all = nbc * per_img;
        let v = buf::par_init(aa * ci * t_all, aa * t_all, 1, |c, vc| {
            transform_input(geo, tile, x, n0, nbc, c, vc)
        });
        let yh = buf::par_init(aa * co * t_all, aa * t_all, 1, |o, yo| {
            transform_grad(geo, tile, dy, n0, nbc, o, yo)
        });
        du.par_iter_mut().enumerate().for_each(|(xi, dux)| {
            let lhs = Lhs::new(Mat::rows(&yh[xi * t_all..], aa * t_all));
            gemm::gemm(co, ci, t_all, dux, ci, &lhs, Mat::cols(&v[xi * t_all..], aa * t_all), true, 1);
        });
        n0 += nbc;
    }
    // dW[o][c] = Gᵀ dU[·][o][c] G, vectorized across the input channels c.
    let mut dw = buf::zeros(co * ci * 9);
    dw.par_chunks_mut(ci * 9).enumerate().for_each(|(o, dwo)| {
        let src = |xi: usize| &du[xi][o * ci..][..ci];
        let emit = |i: usize, row: &[f32]| {
            for (j, vals) in row.chunks_exact(ci).enumerate() {
                for (c, v) in vals.iter().enumerate() {
                    dwo[c * 9 + i * 3 + j] = *v;
                }
            }
        };
        match tile {
            Tile::F2 => two_pass::<4, 3, GtF2>(src, ci, emit),
            Tile::F3 => two_pass::<5, 3, GtF3>(src, ci, emit),
            Tile::F4 => two_pass::<6, 3, GtF4>(src, ci, emit),
        }
    });
    dw
}
