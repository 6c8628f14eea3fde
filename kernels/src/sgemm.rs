//! Single-precision GEMM for AVX-512 CPUs: `C[m×n] (+)= A[m×k] · B[k×n]`, any strides.
//!
//! **Algorithm.** The BLIS loop nest: the reduction is cut into [`KC`]-deep slabs; per slab
//! B is packed into `NR`-column micro-panels (k-major, zero-padded) and A, [`MC`] rows at a
//! time, into `MR`-row micro-panels; a 12×32 register-blocked micro-kernel (24 zmm
//! accumulators, 2 loads of B and 12 broadcasts of A per k, 24 FMAs) computes each tile and
//! adds it into C. Packing absorbs any operand layout, so transposed operands (the weight
//! and input gradients of a convolution) cost one strided read per slab and nothing else; a
//! column-major B and a convolution's implicit column matrix ([`Rhs::Conv`], [`Rhs::ConvT`]) are
//! packed with 16-lane gathers. Operands reused across calls (a convolution's weights) are
//! packed once ([`pack_a_full`]). Edge tiles run the same kernel and store through a lane mask.
//! Slabs have equal depth (576 = 2 × 288, not 256 + 256 + 64); when few column panels reuse
//! each A panel (weights streaming from memory at batch 1) the kernel prefetches A ahead.
//!
//! **Why not the `gemm` crate.** On the Intel Xeon (AVX-512, 2 FMA ports) these machines run,
//! `gemm` 0.19 reaches 50–62 GFLOP/s per thread on convolution shapes — about a third of
//! PyTorch's MKL (160 GFLOP/s per thread, measured in the same session). This kernel reaches
//! 125–153 GFLOP/s per thread on the same shapes, 297–317 on two threads at 1024³ (MKL: 333;
//! `examples/gemm_probe.rs`). CPUs without AVX-512 use the `gemm` crate (the `gemm` module picks one or the other).
//!
//! **Where the time goes.** The micro-kernel (FMA-bound); packing is one pass over each
//! operand per slab/panel (≈ 1/MR + 1/NR of the arithmetic in memory traffic).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use crate::cpu::lanes;
use crate::view::{Mat, Rhs};

/// Rows of a micro-tile.
pub const MR: usize = 12;
/// Columns of a micro-tile (two zmm registers).
pub const NR: usize = 32;
/// Depth of a packed slab.
pub const KC: usize = 256;
/// Rows of A packed at a time (fits L2 with a slab of B streaming through L1).
pub const MC: usize = 120;

/// Whether this CPU runs the AVX-512 kernel (and the kernels' other AVX-512 paths); see
/// [`crate::cpu::avx512`] (`CNNZOO_NO_AVX512=1` turns them off).
pub fn available() -> bool {
    crate::cpu::avx512()
}

/// Packs rows `r0..r0+mc`, depth `p0..p0+kc` of A into MR-row micro-panels (k-major), into the
/// first `mc.div_ceil(MR)·MR·kc` floats of `out`. The caller has checked that `a` covers
/// `(r0 + mc) × (p0 + kc)` ([`Mat::covers`]): the reads are unchecked.
///
/// # Safety
/// `a` covers `(r0 + mc) × (p0 + kc)`.
unsafe fn pack_a(a: Mat, r0: usize, mc: usize, p0: usize, kc: usize, out: &mut [f32]) {
    for ip in 0..mc.div_ceil(MR) {
        let panel = &mut out[ip * MR * kc..(ip + 1) * MR * kc];
        let rows = MR.min(mc - ip * MR);
        if rows < MR {
            panel.fill(0.0); // the padding rows of an edge panel
        }
        let (rs, cs) = (a.rs(), a.cs());
        // SAFETY (all reads below): the caller checked that `a` covers rows `r0..r0 + mc` and
        // columns `p0..p0 + kc` (`Mat::covers`), so every offset formed lies in its data.
        let origin = unsafe { a.ptr().add((r0 + ip * MR) * rs + p0 * cs) };
        if rs == 1 {
            // Column-major A (a transposed operand): each k step is `rows` contiguous values.
            for p in 0..kc {
                let src = unsafe { std::slice::from_raw_parts(origin.add(p * cs), rows) };
                panel[p * MR..p * MR + rows].copy_from_slice(src);
            }
        } else if cs == 1 && rows == MR {
            // Row-major A (weights): read the MR rows side by side so the panel is written
            // in order, one k step (MR values) at a time.
            let row: [&[f32]; MR] =
                std::array::from_fn(|i| unsafe { std::slice::from_raw_parts(origin.add(i * rs), kc) });
            for (p, dst) in panel.chunks_exact_mut(MR).enumerate() {
                for i in 0..MR {
                    dst[i] = row[i][p];
                }
            }
        } else {
            for i in 0..rows {
                let row = unsafe { origin.add(i * rs) };
                for p in 0..kc {
                    panel[p * MR + i] = unsafe { *row.add(p * cs) };
                }
            }
        }
    }
}

/// Packs all of A (`m×k`) once into MR-row panels spanning the whole depth, k-major, for
/// operands reused across many GEMMs (a convolution's weights across batch chunks); panels in
/// parallel. Slab `p0..p0+kc` of panel `ip` is then `packed[ip·MR·k + p0·MR ..][.. kc·MR]`.
///
/// # Panics
/// If `a` does not cover `m×k`.
pub fn pack_a_full(a: Mat, m: usize, k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    assert!(a.covers(m, k), "pack_a_full: operand smaller than {m}×{k}");
    let panels = m.div_ceil(MR);
    let mut out = crate::buf::zeros(panels * MR * k);
    if out.is_empty() {
        return out;
    }
    // About 64 KiB of packed values per task, whole panels.
    let per_task = (16384 / (MR * k).max(1)).max(1);
    out.par_chunks_mut(per_task * MR * k).enumerate().for_each(|(t, dst)| {
        let r0 = t * per_task * MR;
        // SAFETY: `a` covers `m×k` (checked above) and `r0 + rows ≤ m`.
        unsafe { pack_a(a, r0, (per_task * MR).min(m - r0), 0, k, dst) };
    });
    out
}

/// Packs depth `p0..p0+kc`, columns `0..n` of B into NR-column micro-panels (k-major).
///
/// # Safety
/// AVX-512F is available and `b` covers `(p0 + kc) × n` ([`Rhs::covers`]).
unsafe fn pack_b(b: Rhs, n: usize, p0: usize, kc: usize, out: &mut Vec<f32>) {
    let panels = n.div_ceil(NR);
    let out = crate::buf::scratch(out, panels * NR * kc);
    let (cc, transposed) = match b {
        // SAFETY: the caller's contract.
        Rhs::Mat(b) => return unsafe { pack_b_mat(b, n, p0, kc, out) },
        Rhs::Conv(cc) => (cc, false),
        Rhs::ConvT(cc) => (cc, true),
    };
    // Columns are output pixels and depth steps kernel taps — or, transposed, the other way
    // round: per panel the columns' offsets are fixed, per depth step the base moves.
    let col_off = |i: usize| if transposed { cc.tap_off(i) } else { cc.pix_off(i) };
    let step_off = |i: usize| if transposed { cc.pix_off(i) } else { cc.tap_off(i) };
    for (jp, panel) in out.chunks_exact_mut(NR * kc).enumerate() {
        let cols = NR.min(n - jp * NR);
        let mut offs = [0i32; NR];
        for (t, o) in offs.iter_mut().enumerate().take(cols) {
            *o = col_off(cc.j0() + jp * NR + t) as i32; // fits: checked by `ConvCols::new`
        }
        // SAFETY: AVX-512F holds (this module's kernels run only where it does); every element
        // read lies in the source (`ConvCols::new` checked every tap and pixel, the caller that
        // the view covers this depth and these columns: `Rhs::covers`).
        unsafe { gather_panel(cc.ptr(), &offs, cols, (p0..p0 + kc).map(step_off), panel) };
    }
}

/// [`pack_b`] of a strided matrix.
///
/// # Safety
/// As [`pack_b`].
unsafe fn pack_b_mat(b: Mat, n: usize, p0: usize, kc: usize, out: &mut [f32]) {
    let panels = n.div_ceil(NR);
    for jp in 0..panels {
        let panel = &mut out[jp * NR * kc..(jp + 1) * NR * kc];
        let cols = NR.min(n - jp * NR);
        if cols < NR {
            panel.fill(0.0); // the padding columns of an edge panel
        }
        let (rs, cs) = (b.rs(), b.cs());
        // SAFETY (all reads below): the caller checked that `b` covers depth `p0..p0 + kc` and
        // columns `0..n` (`Rhs::covers`).
        let origin = unsafe { b.ptr().add(p0 * rs + jp * NR * cs) };
        if cs == 1 {
            // SAFETY: AVX-512F holds (as below); rows `p < kc` of `cols` values are readable.
            unsafe { pack_b_rows(origin, rs, cols, kc, panel) };
        } else if rs == 1 && cs <= i32::MAX as usize / NR {
            // Column-major B (a transposed operand): 16-lane gathers, one panel row per step.
            let offs: [i32; NR] = std::array::from_fn(|t| t as i32 * cs as i32);
            // SAFETY: `available()` holds (only AVX-512 machines run this module's kernels),
            // and every gathered address is an element of the operand.
            unsafe { gather_panel(origin, &offs, cols, 0..kc, panel) };
        } else if rs == 1 {
            // Column-major B: read each column contiguously.
            for j in 0..cols {
                let src = unsafe { std::slice::from_raw_parts(origin.add(j * cs), kc) };
                for (p, &v) in src.iter().enumerate() {
                    panel[p * NR + j] = v;
                }
            }
        } else {
            for p in 0..kc {
                for j in 0..cols {
                    panel[p * NR + j] = unsafe { *origin.add(p * rs + j * cs) };
                }
            }
        }
    }
}

/// Packs one NR-wide panel by gathers: depth step `p` reads the `cols` values at
/// `ptr + bases[p] + offs[t]` (two masked 16-lane gathers). Serves a column-major B (bases
/// `p`, offsets `t·cs`), a convolution's implicit columns (bases: tap offsets, offsets: pixel
/// offsets) and their transpose (bases: pixel offsets, offsets: tap offsets).
///
/// # Safety
/// AVX-512F must be available; `cols ≤ NR`; every gathered address lies in the operand.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_panel(
    ptr: *const f32,
    offs: &[i32; NR],
    cols: usize,
    bases: impl Iterator<Item = usize>,
    panel: &mut [f32],
) {
    unsafe {
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
        let i0 = _mm512_loadu_si512(offs.as_ptr().cast());
        let i1 = _mm512_loadu_si512(offs.as_ptr().add(16).cast());
        let out = panel.as_mut_ptr();
        for (p, b) in bases.enumerate() {
            let base = ptr.add(b);
            let g0 = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m0, i0, base);
            _mm512_storeu_ps(out.add(p * NR), g0);
            let g1 = if m1 != 0 {
                _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m1, i1, base)
            } else {
                _mm512_setzero_ps()
            };
            _mm512_storeu_ps(out.add(p * NR + 16), g1);
        }
    }
}

/// Packs a row-major `kc × cols` block (row `p` at `origin[p·rs ..]`) into a k-major NR-wide
/// panel: two (masked) 16-lane copies per depth step, no `memcpy` call per row.
///
/// # Safety
/// AVX-512F must be available; `cols ≤ NR` and every `(p, j)` with `p < kc`, `j < cols` is
/// readable at `origin[p·rs + j]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_rows(origin: *const f32, rs: usize, cols: usize, kc: usize, panel: &mut [f32]) {
    unsafe {
        let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
        let out = panel.as_mut_ptr();
        for p in 0..kc {
            let src = origin.add(p * rs);
            _mm512_storeu_ps(out.add(p * NR), _mm512_maskz_loadu_ps(m0, src));
            // `src + 16` may lie past the operand when `cols ≤ 16` (then `m1` is empty and
            // nothing is read there): formed with `wrapping_add`, never dereferenced.
            _mm512_storeu_ps(out.add(p * NR + 16), _mm512_maskz_loadu_ps(m1, src.wrapping_add(16)));
        }
    }
}

/// `C[MR×NR tile] (+)= Apanel · Bpanel`, storing `rows × cols` of it.
///
/// # Safety
/// AVX-512F must be available; `a`/`b` hold `kc` packed steps; `c` is valid for `rows` rows
/// of `cols` elements at stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const PREFETCH: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            let ap = a.add(p * MR);
            if PREFETCH {
                // 32 steps ahead, past the panel's end near its end: a prefetch never faults,
                // and the address is formed with `wrapping_add` (not an out-of-bounds `add`).
                _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(32 * MR).cast());
            }
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
            }
        }
        let (lo, hi) = (lanes(cols), lanes(cols.saturating_sub(16)));
        for (i, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(i * ldc);
            // Past the destination when `cols ≤ 16` (`hi` is empty then): never dereferenced.
            let row_hi = row.wrapping_add(16);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, row_hi));
            }
            _mm512_mask_storeu_ps(row, lo, v0);
            _mm512_mask_storeu_ps(row_hi, hi, v1);
        }
    }
}

/// Scratch buffers for packing, reused across calls on a thread.
#[derive(Default)]
pub struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Single-threaded `dst[m×n] (leading dim ldd) = (accumulate ? dst : 0) + A·B`.
///
/// # Safety
/// [`available`] must be true; `a` and `b` must cover `m×k` and `k×n` ([`Mat::covers`],
/// [`Rhs::covers`]), `dst` for `m` rows of `n` elements at stride `ldd`, not aliasing `a` or `b`.
/// `packed`, if given, is A as [`pack_a_full`] made it (then `a` is not read). A
/// [`Rhs::Conv`] must have been built for at least `k` rows and `n` columns (after its `j0`).
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    a: Mat,
    packed: Option<&[f32]>,
    b: Rhs,
    accumulate: bool,
) {
    debug_assert!(available(), "sgemm without AVX-512");
    debug_assert!(b.covers(k, n), "sgemm: right operand smaller than {k}×{n}");
    debug_assert!(
        packed.map_or(a.covers(m, k), |p| p.len() >= m.div_ceil(MR) * MR * k),
        "sgemm: left operand smaller than {m}×{k}"
    );
    #[cfg(target_arch = "x86_64")]
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        // With few column panels each A panel is used only a few times after coming from
        // memory (a large weight matrix at batch 1): prefetch it 32 depth steps ahead. With
        // many, A stays in cache and the prefetches only cost issue slots.
        let prefetch = n.div_ceil(NR) <= 8;
        let mut p0 = 0;
        while p0 < k {
            // Equal slabs (576 = 2 × 288, not 256 + 256 + 64): a short last slab pays a full
            // pass over C for little arithmetic.
            let kc = k.div_ceil(k.div_ceil(KC)).min(k - p0);
            let acc = accumulate || p0 > 0;
            // SAFETY: this function's contract (`available`, `b` covers `k×n`).
            unsafe { pack_b(b, n, p0, kc, &mut s.b) };
            let mut r0 = 0;
            while r0 < m {
                let mc = MC.min(m - r0);
                if packed.is_none() {
                    let out = crate::buf::scratch(&mut s.a, mc.div_ceil(MR) * MR * kc);
                    // SAFETY: `a` covers `m×k` (this function's contract).
                    unsafe { pack_a(a, r0, mc, p0, kc, out) };
                }
                for jp in 0..n.div_ceil(NR) {
                    let cols = NR.min(n - jp * NR);
                    let bp = s.b[jp * NR * kc..].as_ptr();
                    for ip in 0..mc.div_ceil(MR) {
                        let rows = MR.min(mc - ip * MR);
                        let ap = match packed {
                            Some(pa) => pa[((r0 / MR + ip) * k + p0) * MR..].as_ptr(),
                            None => s.a[ip * MR * kc..].as_ptr(),
                        };
                        // SAFETY: the tile lies inside `dst` (rows < m, cols < n); see above.
                        unsafe {
                            let c = dst.add((r0 + ip * MR) * ldd + jp * NR);
                            if prefetch {
                                kernel::<true>(kc, ap, bp, c, ldd, rows, cols, acc);
                            } else {
                                kernel::<false>(kc, ap, bp, c, ldd, rows, cols, acc);
                            }
                        }
                    }
                }
                r0 += mc;
            }
            p0 += kc;
        }
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (m, n, k, dst, ldd, a, packed, b, accumulate);
}
