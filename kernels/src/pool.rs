//! Max and average pooling over NCHW planes, forward and backward.
//!
//! **Algorithm.** Direct loops per `(n, c)` plane, groups of planes in parallel; each output
//! row is a vertical pass over its window's input rows (whole rows: vectorized), then a short
//! horizontal pass per output. Stride-1 max pools on small planes (GoogLeNet's inception pools
//! on 12², 6² and 3² maps, rows too short to vectorize) instead take every window offset as
//! one shifted vector over a group of padded planes laid end to end ([`max_s1`]). Max pooling records (in training) the flat in-plane index of
//! each window's maximum (the first one in row-major order on ties, the last NaN if any, −∞
//! padding never wins) and its backward scatters `dy` to those indices. Average pooling
//! divides by the window size clipped to the padded input (`count_include_pad`, PyTorch's
//! default) or by the number of real pixels; its backward spreads `dy / divisor` over the
//! window. Output sizes follow PyTorch, including `ceil_mode` (the last window must start
//! inside the input or the left padding).
//!
//! **Where the time goes.** One read of the input (k²/s² reads for overlapping windows) and
//! one write of the output; nothing else. Burn's flex pools are already direct, but its
//! average-pool backward and the surrounding layout copies dominated LeNet's profile.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Tensor, module};
use rayon::prelude::*;

use crate::autodiff;
use crate::buf::{self, contiguous, slice};
use crate::copy;

/// Window geometry of one pooling op (square or not, symmetric padding, no dilation).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub p: [usize; 2],
    pub ho: usize,
    pub wo: usize,
}

impl Window {
    fn new(dims: [usize; 4], k: [usize; 2], s: [usize; 2], p: [usize; 2], ceil: bool) -> Option<Self> {
        let [n, c, h, w] = dims;
        if p[0] * 2 > k[0] || p[1] * 2 > k[1] {
            return None; // PyTorch's own limit; let Burn report it
        }
        let ho = crate::geom::window_out(h, k[0], s[0], p[0], 1, ceil)?;
        let wo = crate::geom::window_out(w, k[1], s[1], p[1], 1, ceil)?;
        Some(Self { planes: n * c, h, w, k, s, p, ho, wo })
    }
    fn out_dims(&self, dims: [usize; 4]) -> [usize; 4] {
        [dims[0], dims[1], self.ho, self.wo]
    }
    /// Rows (or columns) `start..end` of output position `o` along axis `a`, clipped to the
    /// input, and the unclipped-but-padded length (the `count_include_pad` divisor factor).
    fn span(&self, a: usize, o: usize) -> (usize, usize, usize) {
        let len = if a == 0 { self.h } else { self.w };
        let start = (o * self.s[a]) as isize - self.p[a] as isize;
        let end = start + self.k[a] as isize;
        let padded_end = end.min((len + self.p[a]) as isize);
        let lo = start.max(0) as usize;
        let hi = (end.min(len as isize)).max(0) as usize;
        (lo, hi.max(lo), (padded_end - start) as usize)
    }
    /// [`Window::span`] of every output row (`a = 0`) or column (`a = 1`).
    fn spans(&self, a: usize) -> Vec<(usize, usize, usize)> {
        (0..if a == 0 { self.ho } else { self.wo }).map(|o| self.span(a, o)).collect()
    }
    /// Planes per parallel task.
    fn group(&self) -> usize {
        (4096 / (self.h * self.w).max(1)).max(1)
    }
}

/// The padded rows [`max_plane`] works in: the vertical pass's column maxima (`vb`, with their
/// flat indices `vi` in training) and, for strided training pools, the horizontal pass's window
/// maxima at every column (`hb`, `hi`, written before they are read). The padding cells of
/// `vb` and `vi` are −∞ and `u32::MAX`, and never written.
struct RowBufs {
    vb: Vec<f32>,
    vi: Vec<u32>,
    hb: Vec<f32>,
    hi: Vec<u32>,
}

impl RowBufs {
    fn new(len: usize, want_idx: bool) -> Self {
        let (hb, hi) = if want_idx {
            (vec![f32::NEG_INFINITY; len], vec![u32::MAX; len])
        } else {
            (Vec::new(), Vec::new())
        };
        let vi = if want_idx { vec![u32::MAX; len] } else { Vec::new() };
        Self { vb: vec![f32::NEG_INFINITY; len], vi, hb, hi }
    }
}

/// [`max_plane`] compiled for AVX2 (8-lane compares and blends) when the CPU has it.
fn max_plane_wide(
    win: &Window,
    rows: &[(usize, usize, usize)],
    want_idx: bool,
    yp: &mut [f32],
    ip: &mut [u32],
    xp: &[f32],
    bufs: &mut RowBufs,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2(
            win: &Window,
            rows: &[(usize, usize, usize)],
            want_idx: bool,
            yp: &mut [f32],
            ip: &mut [u32],
            xp: &[f32],
            bufs: &mut RowBufs,
        ) {
            max_plane(win, rows, want_idx, yp, ip, xp, bufs)
        }
        if crate::cpu::avx2() {
            // SAFETY: the CPU supports the features `avx2` is compiled for.
            return unsafe { avx2(win, rows, want_idx, yp, ip, xp, bufs) };
        }
    }
    max_plane(win, rows, want_idx, yp, ip, xp, bufs)
}

/// One plane of [`max_forward`]. In training, a strided pool's horizontal pass on wide rows
/// runs over every column of the padded row (contiguous candidates: it vectorizes) and then
/// keeps every `s`-th result; comparing only the strided windows (`step_by(s)` candidates) ran
/// scalar and was half of a training pool's time.
#[inline(always)]
fn max_plane(
    win: &Window,
    rows: &[(usize, usize, usize)],
    want_idx: bool,
    yp: &mut [f32],
    ip: &mut [u32],
    xp: &[f32],
    bufs: &mut RowBufs,
) {
    let (w, wo, k, s, p) = (win.w, win.wo, win.k[1], win.s[1], win.p[1]);
    let RowBufs { vb, vi, hb, hi } = bufs;
    // The contiguous horizontal pass compares every column from the first window's start to
    // the last's.
    let m = (wo - 1) * s + 1;

    for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
        if want_idx {
            column_max_idx(&mut vb[p..p + w], &mut vi[p..p + w], xp, w, r0, r1);
        } else {
            column_max(&mut vb[p..p + w], xp, w, r0, r1);
        }
        let out = &mut yp[oh * wo..(oh + 1) * wo];
        if want_idx {
            let oi = &mut ip[oh * wo..(oh + 1) * wo];
            if s > 1 && wo >= WIDE_ROW {
                window_max_idx(&mut hb[..m], &mut hi[..m], vb, vi, k);
                out.iter_mut().zip(hb.iter().step_by(s)).for_each(|(o, &v)| *o = v);
                oi.iter_mut().zip(hi.iter().step_by(s)).for_each(|(o, &i)| *o = i);
            } else {
                out.iter_mut().zip(vb.iter().step_by(s)).for_each(|(o, &v)| *o = v);
                oi.iter_mut().zip(vi.iter().step_by(s)).for_each(|(o, &i)| *o = i);
                for t in 1..k {
                    let cand = vb[t..].iter().step_by(s).zip(vi[t..].iter().step_by(s));
                    merge_idx(out.iter_mut().zip(oi.iter_mut()), cand);
                }
            }
        } else {
            out.iter_mut().zip(vb.iter().step_by(s)).for_each(|(o, &v)| *o = v);
            for t in 1..k {
                for (b, &v) in out.iter_mut().zip(vb[t..].iter().step_by(s)) {
                    *b = if (v > *b) | v.is_nan() { v } else { *b };
                }
            }
        }
    }
}

/// Output rows at least this wide take the contiguous horizontal pass of a strided training
/// pool; narrower ones (GoogLeNet's 6² maps) lose more to the extra copies than they gain.
const WIDE_ROW: usize = 8;

/// The vertical pass of [`max_plane`]: `vb[c]` = the maximum of column `c` over input rows
/// `r0..r1` as a row-major scan keeps it (a NaN takes over), eight columns at a time with the
/// running maximum in registers, each group stored once. (Updated in place, row after row, as
/// `*b = if take { v } else { *b }`, the compiler stored only the taken lanes, with masked
/// stores, which AMD's Zen cores run slowly: most of the stride-2 training pools' time.)
#[inline(always)]
fn column_max(vb: &mut [f32], xp: &[f32], w: usize, r0: usize, r1: usize) {
    let n8 = w / LANES * LANES;
    for c0 in (0..n8).step_by(LANES) {
        let mut b: [f32; LANES] = xp[r0 * w + c0..][..LANES].try_into().expect("8 lanes");
        for r in r0 + 1..r1 {
            let v: &[f32; LANES] = xp[r * w + c0..][..LANES].try_into().expect("8 lanes");
            for l in 0..LANES {
                b[l] = if (v[l] > b[l]) | v[l].is_nan() { v[l] } else { b[l] };
            }
        }
        vb[c0..c0 + LANES].copy_from_slice(&b);
    }
    for (c, out) in vb.iter_mut().enumerate().skip(n8) {
        let mut b = xp[r0 * w + c];
        for r in r0 + 1..r1 {
            let v = xp[r * w + c];
            b = if (v > b) | v.is_nan() { v } else { b };
        }
        *out = b;
    }
}

/// [`column_max`] with the winners' flat indices (`r·w + c`) in `vi`.
#[inline(always)]
fn column_max_idx(vb: &mut [f32], vi: &mut [u32], xp: &[f32], w: usize, r0: usize, r1: usize) {
    let n8 = w / LANES * LANES;
    for c0 in (0..n8).step_by(LANES) {
        let mut b: [f32; LANES] = xp[r0 * w + c0..][..LANES].try_into().expect("8 lanes");
        let mut bi: [u32; LANES] = std::array::from_fn(|l| (r0 * w + c0 + l) as u32);
        for r in r0 + 1..r1 {
            let v: &[f32; LANES] = xp[r * w + c0..][..LANES].try_into().expect("8 lanes");
            for l in 0..LANES {
                let take = (v[l] > b[l]) | v[l].is_nan();
                b[l] = if take { v[l] } else { b[l] };
                bi[l] = if take { (r * w + c0 + l) as u32 } else { bi[l] };
            }
        }
        vb[c0..c0 + LANES].copy_from_slice(&b);
        vi[c0..c0 + LANES].copy_from_slice(&bi);
    }
    for (c, (out, out_i)) in vb.iter_mut().zip(vi.iter_mut()).enumerate().skip(n8) {
        let (mut b, mut bi) = (xp[r0 * w + c], (r0 * w + c) as u32);
        for r in r0 + 1..r1 {
            let v = xp[r * w + c];
            let take = (v > b) | v.is_nan();
            b = if take { v } else { b };
            bi = if take { (r * w + c) as u32 } else { bi };
        }
        (*out, *out_i) = (b, bi);
    }
}

/// The contiguous horizontal pass of a strided training pool: `hb[c]` (and its index `hi[c]`)
/// = the winner of `vb[c..c + k]` ([`merge_idx`] order), for every `c < hb.len()`, eight at a
/// time in registers (as [`column_max`], for the same reason).
#[inline(always)]
fn window_max_idx(hb: &mut [f32], hi: &mut [u32], vb: &[f32], vi: &[u32], k: usize) {
    let m = hb.len();
    let m8 = m / LANES * LANES;
    for c0 in (0..m8).step_by(LANES) {
        let mut b: [f32; LANES] = vb[c0..c0 + LANES].try_into().expect("8 lanes");
        let mut bi: [u32; LANES] = vi[c0..c0 + LANES].try_into().expect("8 lanes");
        for t in 1..k {
            let cand = vb[c0 + t..c0 + t + LANES].iter().zip(&vi[c0 + t..c0 + t + LANES]);
            merge_idx(b.iter_mut().zip(bi.iter_mut()), cand);
        }
        hb[c0..c0 + LANES].copy_from_slice(&b);
        hi[c0..c0 + LANES].copy_from_slice(&bi);
    }
    for c in m8..m {
        let (mut b, mut bi) = (vb[c], vi[c]);
        for t in 1..k {
            merge_idx(std::iter::once((&mut b, &mut bi)), std::iter::once((&vb[c + t], &vi[c + t])));
        }
        (hb[c], hi[c]) = (b, bi);
    }
}

/// One horizontal step of a training max pool: each `(best, index)` takes its candidate when a
/// row-major scan would have preferred it — a NaN wins unless the best is a later NaN; a number
/// wins over a smaller one, or an equal one further on. Non-short-circuit `&`/`|`: branch-free,
/// so contiguous candidates vectorize.
#[inline(always)]
fn merge_idx<'a, 'b>(
    best: impl Iterator<Item = (&'a mut f32, &'a mut u32)>,
    cand: impl Iterator<Item = (&'b f32, &'b u32)>,
) {
    for ((b, bi), (&v, &i)) in best.zip(cand) {
        let (vn, bn) = (v.is_nan(), b.is_nan());
        let take = (vn & (!bn | (i > *bi))) | (!vn & !bn & ((v > *b) | ((v == *b) & (i < *bi))));
        *b = if take { v } else { *b };
        *bi = if take { i } else { *bi };
    }
}

/// [`max_s1`] compiled for AVX2 when the CPU has it.
fn max_s1_wide(
    win: &Window,
    want_idx: bool,
    yp: &mut [f32],
    ip: &mut [u32],
    xp: &[f32],
    scratch: &mut S1Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2(
            win: &Window,
            want_idx: bool,
            yp: &mut [f32],
            ip: &mut [u32],
            xp: &[f32],
            scratch: &mut S1Scratch,
        ) {
            max_s1(win, want_idx, yp, ip, xp, scratch)
        }
        if crate::cpu::avx2() {
            // SAFETY: the CPU supports the features `avx2` is compiled for.
            return unsafe { avx2(win, want_idx, yp, ip, xp, scratch) };
        }
    }
    max_s1(win, want_idx, yp, ip, xp, scratch)
}

/// Buffers of [`max_s1`], reused across the groups of one task.
#[derive(Default)]
struct S1Scratch {
    padded: Vec<f32>,
    best: Vec<f32>,
    at: Vec<i32>,
}

/// Positions [`max_s1`] takes at once (one AVX2 vector).
const LANES: usize = 8;

/// A stride-1 max pool of a group of planes (`xp`, whole planes), for small planes where a
/// row-at-a-time pass is mostly overhead (GoogLeNet's 3×3 pools on 12² and 6² maps). The
/// planes are copied with their −∞ padding end to end into one buffer of row length
/// `wp = w + 2p`; then every window offset `(dr, dc)`, in row-major order, is one flat shifted
/// vector `padded[q + dr·wp + dc]` compared with the running maximum at positions `q`, eight
/// at a time, all taps in turn (branch-free; positions outside the outputs are computed and
/// ignored).
/// Strictly greater or NaN takes over, so the winner is the first maximum in row-major order,
/// or the last NaN. A −∞ padding cell can stay the winner only when every real cell of its
/// window is −∞ as well; the first real cell is then the answer.
#[inline(always)]
fn max_s1(win: &Window, want_idx: bool, yp: &mut [f32], ip: &mut [u32], xp: &[f32], scratch: &mut S1Scratch) {
    let (h, w, [kh, kw], [p0, p1], ho, wo) = (win.h, win.w, win.k, win.p, win.ho, win.wo);
    let (hw, ohw) = (h * w, ho * wo);
    let (hp, wp) = (h + 2 * p0, w + 2 * p1);
    let block = hp * wp;
    let planes = xp.len() / hw.max(1);
    let len = planes * block;
    // Positions are taken eight at a time: `len8` of them, the last window of each reaching
    // `(kh − 1)·wp + kw − 1` cells further.
    let len8 = len.next_multiple_of(LANES);
    let slack = (kh - 1) * wp + kw;
    let S1Scratch { padded, best, at } = scratch;
    padded.clear();
    padded.resize(len8 + slack, f32::NEG_INFINITY);
    for (j, plane) in xp.chunks_exact(hw).enumerate() {
        for (r, row) in plane.chunks_exact(w).enumerate() {
            copy::copy_short(&mut padded[j * block + (r + p0) * wp + p1..][..w], row);
        }
    }
    // Window offsets in row-major order, and each one's in-plane index relative to the output
    // position's own (`oh·w + ow`; a padding cell's is out of the window's real cells).
    let offs: Vec<usize> = (0..kh).flat_map(|dr| (0..kw).map(move |dc| dr * wp + dc)).collect();
    let rel: Vec<i32> = (0..kh)
        .flat_map(|dr| (0..kw).map(move |dc| (dr as i32 - p0 as i32) * w as i32 + dc as i32 - p1 as i32))
        .collect();
    best.resize(len8, 0.0);
    at.resize(if want_idx { len8 } else { 0 }, 0);
    // Every tap of eight positions with the running maximum (and its index relative to the output position's own) in registers: one
    // read of each candidate and one write of the result (a pass per tap over the whole buffer
    // read and wrote the running maximum once per tap).
    for (q, bq) in best.chunks_exact_mut(LANES).enumerate() {
        let q0 = q * LANES;
        let mut b: [f32; LANES] = padded[q0..q0 + LANES].try_into().expect("8 lanes");
        let mut t = [rel[0]; LANES];
        for (&off, &r) in offs.iter().zip(&rel).skip(1) {
            let c: &[f32; LANES] = padded[q0 + off..q0 + off + LANES].try_into().expect("8 lanes");
            for l in 0..LANES {
                let take = (c[l] > b[l]) | c[l].is_nan();
                b[l] = if take { c[l] } else { b[l] };
                t[l] = if take { r } else { t[l] };
            }
        }
        bq.copy_from_slice(&b);
        if want_idx {
            at[q0..q0 + LANES].copy_from_slice(&t);
        }
    }
    for j in 0..planes {
        for oh in 0..ho {
            let q0 = j * block + oh * wp;
            let vals = &best[q0..q0 + wo];
            copy::copy_short(&mut yp[j * ohw + oh * wo..][..wo], vals);
            if want_idx {
                let first_row = oh.saturating_sub(p0) * w;
                let out = ip[j * ohw + oh * wo..][..wo].iter_mut().zip(vals.iter().zip(&at[q0..q0 + wo]));
                for (ow, (i, (&v, &r))) in out.enumerate() {
                    // A window whose maximum is −∞ has only −∞ real cells (a NaN or anything
                    // larger would have won), and may have kept a padding cell: the answer is
                    // then its first real cell, which is also right when the winner was real.
                    let first = (first_row + ow.saturating_sub(p1)) as u32;
                    let own = (oh * w + ow) as i32;
                    *i = if v == f32::NEG_INFINITY { first } else { (own + r) as u32 };
                }
            }
        }
    }
}

/// Largest plane (h·w) that takes [`max_s1`]; larger ones have rows long enough to vectorize.
const S1_MAX_PLANE: usize = 1024;

/// Max pool; with `want_idx` also the in-plane index of each maximum (for the backward step).
///
/// Separable: per output row, a vertical pass over the window's input rows keeps each
/// column's maximum (and its flat index) — whole rows, branch-free, so it vectorizes — in a
/// row padded with −∞ on both sides; then for each of the `k` window columns every output
/// compares one candidate (branch-free again). The winner is the one a row-major scan would
/// pick: the first maximum, or the last NaN (NaN propagates, as in PyTorch). The flat index
/// orders candidates in row-major order, so ties compare indices; padding cells carry index
/// `u32::MAX` and lose every tie to a real cell.
fn max_forward(win: &Window, x: &[f32], want_idx: bool) -> (Vec<f32>, Vec<u32>) {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let mut idx = if want_idx { vec![0u32; win.planes * ohw] } else { Vec::new() };
    let g = win.group();
    let rows = win.spans(0);
    // Padded row: cell `p + c` is input column `c`; long enough for every window (ceil mode).
    let len = (win.w + 2 * win.p[1]).max((win.wo - 1) * win.s[1] + win.k[1]);
    // Small stride-1 planes: all windows of a group of planes at once.
    let stride1 = win.s == [1, 1] && (1..=S1_MAX_PLANE).contains(&(win.h * win.w));
    if want_idx {
        // Training: the indices are written alongside (into a zeroed buffer, as `y`).
        let mut y = buf::zeros(win.planes * ohw);
        y.par_chunks_mut(g * ohw).zip(idx.par_chunks_mut(g * ohw)).zip(x.par_chunks(g * hw)).for_each(
            |((yp, ip), xp)| {
                if stride1 {
                    return max_s1_wide(win, true, yp, ip, xp, &mut S1Scratch::default());
                }
                let mut bufs = RowBufs::new(len, true);
                for ((yp, ip), xp) in yp.chunks_mut(ohw).zip(ip.chunks_mut(ohw)).zip(xp.chunks(hw)) {
                    max_plane_wide(win, &rows, true, yp, ip, xp, &mut bufs);
                }
            },
        );
        (y, idx)
    } else {
        // Inference: each task zeroes its share of `y` in cache, just before writing it.
        let y = buf::par_init(win.planes * ohw, g * ohw, 1, |t, yp| {
            let yp = buf::write_all(yp, std::iter::repeat(0.0));
            let xp = &x[t * g * hw..];
            if stride1 {
                let xp = &xp[..yp.len() / ohw * hw];
                max_s1_wide(win, false, yp, &mut [], xp, &mut S1Scratch::default());
                return yp;
            }
            let mut bufs = RowBufs::new(len, false);
            for (yp, xp) in yp.chunks_mut(ohw).zip(xp.chunks(hw)) {
                max_plane_wide(win, &rows, false, yp, &mut [], xp, &mut bufs);
            }
            yp
        });
        (y, idx)
    }
}

/// Scatters `dy` to the recorded maxima. Each task zeroes its group of planes just before
/// scattering into it, while they are in cache (zeroing all of `dx` first was one more pass
/// over it, on one thread).
fn max_backward(win: &Window, idx: &[u32], dy: &[f32]) -> Vec<f32> {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let g = win.group();
    buf::par_init(win.planes * hw, g * hw, 1, |t, piece| {
        let dxp = buf::write_all(piece, std::iter::repeat(0.0));
        let planes = dxp.len() / hw;
        let (ip, gp) = (&idx[t * g * ohw..][..planes * ohw], &dy[t * g * ohw..][..planes * ohw]);
        for (dxp, (ip, gp)) in dxp.chunks_mut(hw).zip(ip.chunks(ohw).zip(gp.chunks(ohw))) {
            for (&i, &g) in ip.iter().zip(gp) {
                dxp[i as usize] += g;
            }
        }
        dxp
    })
}

/// The divisor of each output position of an average pool.
fn avg_divisors(win: &Window, include_pad: bool) -> Vec<f32> {
    let mut d = Vec::with_capacity(win.ho * win.wo);
    for oh in 0..win.ho {
        let (r0, r1, rp) = win.span(0, oh);
        for ow in 0..win.wo {
            let (c0, c1, cp) = win.span(1, ow);
            let n = if include_pad { rp * cp } else { (r1 - r0) * (c1 - c0) };
            d.push(1.0 / n.max(1) as f32);
        }
    }
    d
}

/// Average pool, separable: per output row the window's input rows are summed column-wise
/// (whole rows, vectorized), then each output sums its window's columns and scales.
fn avg_forward(win: &Window, x: &[f32], inv: &[f32]) -> Vec<f32> {
    let (hw, ohw, w) = (win.h * win.w, win.ho * win.wo, win.w);
    let g = win.group();
    let (rows, cols) = (win.spans(0), win.spans(1));
    // Every output is written once, row by row in order.
    buf::par_init(win.planes * ohw, g * ohw, 1, |t, yp| {
        let planes = yp.len() / ohw.max(1);
        let xp = &x[t * g * hw..][..planes * hw];
        let mut out = buf::Filler::new(yp);
        let mut vsum = vec![0f32; w];
        for xp in xp.chunks(hw.max(1)).take(planes) {
            for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
                vsum.fill(0.0);
                for r in r0..r1 {
                    vsum.iter_mut().zip(&xp[r * w..(r + 1) * w]).for_each(|(a, v)| *a += v);
                }
                let inv = &inv[oh * win.wo..(oh + 1) * win.wo];
                out.next(
                    win.wo,
                    inv.iter().zip(&cols).map(|(&d, &(c0, c1, _))| vsum[c0..c1].iter().sum::<f32>() * d),
                );
            }
        }
        out.finish()
    })
}

/// The adjoint of [`avg_forward`]: each output row's `dy / divisor` is spread over its
/// window's columns into one row, which is then added to each of the window's input rows.
fn avg_backward(win: &Window, dy: &[f32], inv: &[f32]) -> Vec<f32> {
    let (hw, ohw, w) = (win.h * win.w, win.ho * win.wo, win.w);
    let mut dx = buf::zeros(win.planes * hw);
    let g = win.group();
    let (rows, cols) = (win.spans(0), win.spans(1));
    dx.par_chunks_mut(g * hw).zip(dy.par_chunks(g * ohw)).for_each(|(dxp, gp)| {
        let mut hrow = vec![0f32; w];
        for (dxp, gp) in dxp.chunks_mut(hw).zip(gp.chunks(ohw)) {
            for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
                hrow.fill(0.0);
                let gr = &gp[oh * win.wo..(oh + 1) * win.wo];
                let inv = &inv[oh * win.wo..(oh + 1) * win.wo];
                for ((&gv, &d), &(c0, c1, _)) in gr.iter().zip(inv).zip(&cols) {
                    let v = gv * d;
                    hrow[c0..c1].iter_mut().for_each(|h| *h += v);
                }
                for r in r0..r1 {
                    dxp[r * w..(r + 1) * w].iter_mut().zip(&hrow).for_each(|(d, h)| *d += h);
                }
            }
        }
    });
    dx
}

#[derive(Debug, Clone)]
enum PoolState {
    Max { win: Window, dims: [usize; 4], idx: Vec<u32> },
    Avg { win: Window, dims: [usize; 4], inv: Vec<f32> },
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents.each_ref().map(|p| p.as_ref().map(|n| n.id)) else { return };
        let dy = autodiff::output_grad(grads, &ops);
        let (dx, dims) = match &ops.state {
            PoolState::Max { win, dims, idx } => (max_backward(win, idx, slice(&dy)), *dims),
            PoolState::Avg { win, dims, inv } => (avg_backward(win, slice(&dy), inv), *dims),
        };
        autodiff::register(grads, Some(node), Some(dx), &dims);
    }
}

/// Runs a pooling forward on our kernel; `None` = use Burn's op.
fn run(
    x: &Tensor<4>,
    win: Option<Window>,
    fwd: impl FnOnce(&Window, &[f32], bool) -> (Vec<f32>, PoolState),
) -> Option<Tensor<4>> {
    let win = win?;
    let dims = x.dims();
    let (xp, guard) = crate::dispatch::route(x)?.into_parts();
    crate::dispatch::count_call();
    let xp = contiguous(xp);
    // The backward state (max-pool indices) only matters on an autodiff device.
    let (y, state) = fwd(&win, slice(&xp), guard.is_some());
    let y = buf::tensor(y, &win.out_dims(dims));
    Some(autodiff::finish(PoolBackward, [guard], |_| state, y))
}

fn symmetric(p: [(usize, usize); 2]) -> Option<[usize; 2]> {
    (p[0].0 == p[0].1 && p[1].0 == p[1].1).then_some([p[0].0, p[1].0])
}

/// Burn's `max_pool2d` with our kernel on flex (dilation 1, symmetric padding).
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    let dims = x.dims();
    let win = symmetric(options.padding)
        .filter(|_| options.dilation == [1, 1])
        .and_then(|p| Window::new(dims, options.kernel_size, options.stride, p, options.ceil_mode));
    let out = run(&x, win, |win, xs, track| {
        let (y, idx) = max_forward(win, xs, track);
        (y, PoolState::Max { win: *win, dims, idx })
    });
    out.unwrap_or_else(|| module::max_pool2d(x, options))
}

/// Burn's `avg_pool2d` with our kernel on flex (symmetric padding).
pub fn avg_pool2d(x: Tensor<4>, options: AvgPoolOptions<2>) -> Tensor<4> {
    let dims = x.dims();
    let win = symmetric(options.padding)
        .and_then(|p| Window::new(dims, options.kernel_size, options.stride, p, options.ceil_mode));
    let include_pad = options.count_include_pad;
    let out = run(&x, win, |win, xs, _| {
        let inv = avg_divisors(win, include_pad);
        let y = avg_forward(win, xs, &inv);
        (y, PoolState::Avg { win: *win, dims, inv })
    });
    out.unwrap_or_else(|| module::avg_pool2d(x, options))
}
