//! Single-precision GEMM for x86-64 CPUs with AVX-512, or AVX2 + FMA: `C[m×n] (+)= A[m×k] · B[k×n]`,
//! any strides.
//!
//! **Algorithm.** The BLIS loop nest: the reduction is cut into [`KC`]-deep slabs; per slab
//! B is packed into `NR`-column micro-panels (k-major, zero-padded) and A, [`MC`] rows at a
//! time, into `MR`-row micro-panels; a register-blocked micro-kernel computes each tile and
//! adds it into C. Two micro-kernels, picked once per process ([`isa`]):
//! - AVX-512: 12×32 (24 zmm accumulators, 2 loads of B and 12 broadcasts of A per k, 24 FMAs),
//!   with 4-, 6- and 8-row copies for a short last row panel (LeNet's 6 channels, 64 = 5·12 + 4);
//! - AVX2 + FMA: 6×16 (12 ymm accumulators, 2 loads of B and 6 broadcasts of A per k, 12 FMAs
//!   — the 16 ymm registers hold the 12 accumulators, B's two vectors and a broadcast).
//!
//! Packing absorbs any operand layout, so transposed operands (the weight and input gradients
//! of a convolution) cost one strided read per slab and nothing else; a column-major B and a
//! convolution's implicit column matrix ([`Rhs::Conv`], [`Rhs::ConvT`]) are packed with plain
//! vector loads where a panel's columns are contiguous in the source (a stride-1 convolution's
//! output pixels along a row), one masked load per run where they are a few runs (pixels across
//! short rows, kernel taps), 8×8 in-register transposes for column-major panels (and a 1×1
//! convolution's weight-gradient columns over consecutive pixels), and vector gathers (16
//! lanes, or 8) for the rest: gathers are slow on AMD, Zen 4's AVX-512 ones included. Operands
//! reused across calls (a convolution's weights) are packed once ([`pack_a_full`]). Edge tiles
//! run the same kernel and store through a lane mask (AVX-512) or a small buffer (AVX2).
//! Slabs have equal depth (576 = 2 × 288, not 256 + 256 + 64); when few column panels reuse
//! each A panel (weights streaming from memory at batch 1) the kernel prefetches A ahead.
//!
//! **Why not the `gemm` crate.** On the Intel Xeon (AVX-512, 2 FMA ports) these machines run,
//! `gemm` 0.19 reaches 50–62 GFLOP/s per thread on convolution shapes — about a third of
//! PyTorch's MKL (160 GFLOP/s per thread, measured in the same session). The AVX-512 kernel
//! reaches 125–153 GFLOP/s per thread on the same shapes, 297–317 on two threads at 1024³ (MKL:
//! 333; `examples/gemm_probe.rs`). On AVX2 machines the gain is less the micro-kernel than what
//! the packing makes possible: the implicit column matrix (no im2col written and re-read) and
//! weights packed once and kept between inference calls. CPUs with neither (ARM, older x86, or
//! `CNNZOO_NO_AVX2=1`) use the `gemm` crate (the `gemm` module picks one or the other).
//!
//! **Where the time goes.** The micro-kernel (FMA-bound); packing is one pass over each
//! operand per slab/panel (≈ 1/MR + 1/NR of the arithmetic in memory traffic).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
use crate::copy::mask8;
#[cfg(target_arch = "x86_64")]
use crate::cpu::lanes;
use crate::view::{Mat, Rhs};

/// Depth of a packed slab on AVX-512 (tuned on the Xeon; the AVX2 kernel uses [`Arch::KC`]).
pub const KC: usize = 256;
/// Rows of A packed at a time (fits L2 with a slab of B streaming through L1; a multiple of
/// both micro-kernels' `MR`).
pub const MC: usize = 120;
/// The widest micro-panel (AVX-512's `NR`): the size of the column-offset arrays of a panel.
const MAX_NR: usize = 32;

/// The instruction set this module's GEMM runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// 12×32 micro-kernel on zmm registers.
    Avx512,
    /// 6×16 micro-kernel on ymm registers.
    Avx2,
}

/// The micro-kernel this CPU runs, decided once per process; `None` where neither AVX-512
/// nor AVX2 + FMA is available or both are switched off (`CNNZOO_NO_AVX512=1` selects AVX2 on
/// an AVX-512 machine, `CNNZOO_NO_AVX2=1` the portable paths; see [`crate::cpu`]).
pub fn isa() -> Option<Isa> {
    if crate::cpu::avx512() {
        Some(Isa::Avx512)
    } else if crate::cpu::avx2() {
        Some(Isa::Avx2)
    } else {
        None
    }
}

/// Whether this module's GEMM runs on this CPU (and with it the kernels' implicit column
/// matrices and packed weights); else the `gemm` crate and explicit im2col do.
pub fn available() -> bool {
    isa().is_some()
}

/// Rows of a micro-tile (and of a packed A panel) on this CPU.
pub fn mr() -> usize {
    match isa() {
        Some(Isa::Avx2) => 6,
        _ => 12,
    }
}

/// Columns of a micro-tile (and of a packed B panel) on this CPU.
pub fn nr() -> usize {
    match isa() {
        Some(Isa::Avx2) => 16,
        _ => 32,
    }
}

/// Packs rows `r0..r0+mc`, depth `p0..p0+kc` of A into `mr`-row micro-panels (k-major), into
/// the first `mc.div_ceil(mr)·mr·kc` floats of `out`. The caller has checked that `a` covers
/// `(r0 + mc) × (p0 + kc)` ([`Mat::covers`]): the reads are unchecked.
///
/// # Safety
/// `a` covers `(r0 + mc) × (p0 + kc)`; `mr ≤ 12`.
unsafe fn pack_a(a: Mat, r0: usize, mc: usize, p0: usize, kc: usize, mr: usize, out: &mut [f32]) {
    for ip in 0..mc.div_ceil(mr) {
        let panel = &mut out[ip * mr * kc..(ip + 1) * mr * kc];
        let rows = mr.min(mc - ip * mr);
        if rows < mr {
            panel.fill(0.0); // the padding rows of an edge panel
        }
        let (rs, cs) = (a.rs(), a.cs());
        // SAFETY (all reads below): the caller checked that `a` covers rows `r0..r0 + mc` and
        // columns `p0..p0 + kc` (`Mat::covers`), so every offset formed lies in its data.
        let origin = unsafe { a.ptr().add((r0 + ip * mr) * rs + p0 * cs) };
        if rs == 1 {
            // Column-major A (a transposed operand): each k step is `rows` contiguous values.
            for p in 0..kc {
                let src = unsafe { std::slice::from_raw_parts(origin.add(p * cs), rows) };
                panel[p * mr..p * mr + rows].copy_from_slice(src);
            }
        } else if cs == 1 && crate::cpu::avx2() {
            // Row-major A (weights, an output gradient): each k step of the panel is a column
            // of `rows` values, 8×8 blocks transposed in registers. (Every CPU this module's GEMM
            // runs on has AVX2; the value-by-value loop below serves only a direct call of
            // `pack_a_full` elsewhere.)
            // SAFETY: the CPU has AVX2; row `i < rows` of the panel's source holds `kc` values.
            #[cfg(target_arch = "x86_64")]
            unsafe {
                transpose_panel(origin, rs, rows, kc, panel, mr)
            };
        } else {
            for i in 0..rows {
                let row = unsafe { origin.add(i * rs) };
                for p in 0..kc {
                    panel[p * mr + i] = unsafe { *row.add(p * cs) };
                }
            }
        }
    }
}

/// Packs all of A (`m×k`) once into [`mr`]-row panels spanning the whole depth, k-major, for
/// operands reused across many GEMMs (a convolution's weights across batch chunks); panels in
/// parallel. Slab `p0..p0+kc` of panel `ip` is then `packed[ip·mr·k + p0·mr ..][.. kc·mr]`.
/// The layout is this CPU's ([`isa`]), decided once per process.
///
/// # Panics
/// If `a` does not cover `m×k`.
pub fn pack_a_full(a: Mat, m: usize, k: usize) -> Vec<f32> {
    use rayon::prelude::*;
    assert!(a.covers(m, k), "pack_a_full: operand smaller than {m}×{k}");
    let mr = mr();
    let panels = m.div_ceil(mr);
    let mut out = crate::buf::zeros(panels * mr * k);
    if out.is_empty() {
        return out;
    }
    // About 64 KiB of packed values per task, whole panels.
    let per_task = (16384 / (mr * k).max(1)).max(1);
    out.par_chunks_mut(per_task * mr * k).enumerate().for_each(|(t, dst)| {
        let r0 = t * per_task * mr;
        // SAFETY: `a` covers `m×k` (checked above), `r0 + rows ≤ m` and `mr ≤ 12`.
        unsafe { pack_a(a, r0, (per_task * mr).min(m - r0), 0, k, mr, dst) };
    });
    out
}

/// One instruction set's micro-kernel and panel copies.
#[cfg(target_arch = "x86_64")]
trait Arch {
    /// Rows of a micro-tile (≤ 12).
    const MR: usize;
    /// Columns of a micro-tile (≤ [`MAX_NR`]).
    const NR: usize;
    /// Depth of a packed slab.
    const KC: usize;
    /// Packs one NR-wide panel by gathers: depth step `p` reads the `cols` values at
    /// `ptr + bases[p] + offs[t]`.
    ///
    /// # Safety
    /// The CPU has the instruction set; `cols ≤ NR`; every address read lies in the operand.
    unsafe fn gather(
        ptr: *const f32,
        offs: &[i32; MAX_NR],
        cols: usize,
        bases: impl Iterator<Item = usize>,
        panel: &mut [f32],
    );
    /// Packs one NR-wide panel from contiguous runs: depth step `p` reads the `cols` values at
    /// `ptr + bases[p]` on.
    ///
    /// # Safety
    /// As [`Arch::gather`].
    unsafe fn runs(ptr: *const f32, cols: usize, bases: impl Iterator<Item = usize>, panel: &mut [f32]);
    /// Packs one panel whose columns are a few contiguous runs of the source ([`Pieces`]): per
    /// depth step one masked load per run, where a gather is slow (AMD). `None` where this
    /// instruction set has no such path or the columns are not a few runs: gather then.
    ///
    /// # Safety
    /// As [`Arch::gather`]; `offs` are the columns' offsets as for [`Arch::gather`].
    unsafe fn pieces(
        _ptr: *const f32,
        _offs: &[i32; MAX_NR],
        _cols: usize,
        _bases: impl Iterator<Item = usize> + Clone,
        _panel: &mut [f32],
    ) -> Option<()> {
        None
    }
    /// Packs one panel of a column-major B (column `j` of the panel at `ptr + j·cs`, its
    /// `kc` depth steps contiguous) by in-register transposes; `false` where this instruction
    /// set has no such path (gather then).
    ///
    /// # Safety
    /// The CPU has the instruction set; `cols ≤ NR`; `ptr + j·cs + p` lies in the operand for
    /// every `j < cols`, `p < kc`.
    unsafe fn transpose(_ptr: *const f32, _cs: usize, _cols: usize, _kc: usize, _panel: &mut [f32]) -> bool {
        false
    }
    /// `C[MR×NR tile] (+)= Apanel · Bpanel`, storing `rows × cols` of it; with `PREFETCH`, A is
    /// prefetched ahead (a large weight matrix streaming from memory).
    ///
    /// # Safety
    /// The CPU has the instruction set; `a`/`b` hold `kc` packed steps; `c` is valid for `rows`
    /// rows of `cols` elements at stride `ldc`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const PREFETCH: bool>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    );
}

/// The first `n` floats of `v` that start on a 64-byte boundary (a cache line), growing `v` as
/// needed: a packed B panel's depth steps (64 or 128 bytes) then never straddle two lines, and
/// the micro-kernel's vector loads never split.
fn cache_aligned(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    const LINE: usize = 64 / std::mem::size_of::<f32>();
    let buf = crate::buf::scratch(v, n + LINE);
    let skip = buf.as_ptr().align_offset(64).min(LINE);
    &mut buf[skip..skip + n]
}

/// Packs depth `p0..p0+kc`, columns `0..n` of B into NR-column micro-panels (k-major), into the
/// cache-aligned start of `out` ([`cache_aligned`]), which it returns.
///
/// # Safety
/// The CPU has `A`'s instruction set and `b` covers `(p0 + kc) × n` ([`Rhs::covers`]).
#[cfg(target_arch = "x86_64")]
unsafe fn pack_b<'o, A: Arch>(b: Rhs, n: usize, p0: usize, kc: usize, out: &'o mut Vec<f32>) -> &'o [f32] {
    let nr = A::NR;
    let panels = n.div_ceil(nr);
    let out = cache_aligned(out, panels * nr * kc);
    let (cc, transposed) = match b {
        // SAFETY: the caller's contract.
        Rhs::Mat(b) => {
            unsafe { pack_b_mat::<A>(b, n, p0, kc, out) };
            return out;
        }
        Rhs::Conv(cc) => (cc, false),
        Rhs::ConvT(cc) => (cc, true),
    };
    // Columns are output pixels and depth steps kernel taps — or, transposed, the other way
    // round: per panel the columns' offsets are fixed, per depth step the base moves.
    // The depth steps' offsets are the same for every panel, and the columns' run on across
    // the panels: both computed once, stepping the indices instead of dividing for each, into
    // this thread's scratch space.
    OFFSETS.with(|offsets| {
        let (steps, col_offs) = &mut *offsets.borrow_mut();
        steps.clear();
        col_offs.clear();
        if transposed {
            steps.extend(cc.pix_offs(p0).take(kc));
            col_offs.extend(cc.tap_offs(cc.j0()).take(n));
        } else {
            steps.extend(cc.tap_offs(p0).take(kc));
            col_offs.extend(cc.pix_offs(cc.j0()).take(n));
        }
        // Whether at least three in four blocks of eight depth steps are at most two runs of
        // consecutive pixels (the transposes then beat gathers, which are slow on AMD).
        let mostly_runs = transposed && {
            let runs = steps.chunks(8).filter(|b| two_runs(b).is_some()).count();
            4 * runs >= 3 * steps.len().div_ceil(8)
        };
        for (jp, panel) in out.chunks_exact_mut(nr * kc).enumerate() {
            let cols = nr.min(n - jp * nr);
            let mut offs = [0i32; MAX_NR];
            for (o, &c) in offs.iter_mut().zip(&col_offs[jp * nr..][..cols]) {
                *o = c as i32; // fits: checked by `ConvCols::new`
            }
            // SAFETY: the CPU has `A`'s instruction set (the caller's contract); every element read
            // lies in the source (`ConvCols::new` checked every tap and pixel, the caller that the
            // view covers this depth and these columns: `Rhs::covers`).
            unsafe {
                if offs[..cols].windows(2).all(|w| w[1] == w[0] + 1) {
                    // One contiguous run per depth step (a stride-1 conv's pixels along a row).
                    let first = offs[0] as usize;
                    A::runs(cc.ptr(), cols, steps.iter().map(|&s| s + first), panel)
                } else if A::pieces(cc.ptr(), &offs, cols, steps.iter().copied(), panel).is_some() {
                    // A few runs per depth step (kernel taps along a row, pixels across short rows).
                } else if transposed && mostly_runs {
                    // Taps a plane apart (a 1×1 convolution's channels), pixels in long runs.
                    if cols < nr {
                        panel.fill(0.0); // the padding columns of an edge panel
                    }
                    transpose_steps(cc.ptr(), &offs, cols, steps, panel, nr)
                } else {
                    A::gather(cc.ptr(), &offs, cols, steps.iter().copied(), panel)
                }
            }
        }
    });
    out
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// [`pack_b`]'s source offsets of the depth steps and of the columns.
    static OFFSETS: std::cell::RefCell<(Vec<usize>, Vec<usize>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// [`pack_b`] of a strided matrix.
///
/// # Safety
/// As [`pack_b`].
#[cfg(target_arch = "x86_64")]
unsafe fn pack_b_mat<A: Arch>(b: Mat, n: usize, p0: usize, kc: usize, out: &mut [f32]) {
    let nr = A::NR;
    let panels = n.div_ceil(nr);
    for jp in 0..panels {
        let panel = &mut out[jp * nr * kc..(jp + 1) * nr * kc];
        let cols = nr.min(n - jp * nr);
        if cols < nr {
            panel.fill(0.0); // the padding columns of an edge panel
        }
        let (rs, cs) = (b.rs(), b.cs());
        // SAFETY (all reads below): the caller checked that `b` covers depth `p0..p0 + kc` and
        // columns `0..n` (`Rhs::covers`), and that the CPU has `A`'s instruction set.
        let origin = unsafe { b.ptr().add(p0 * rs + jp * nr * cs) };
        if cs == 1 {
            unsafe { A::runs(origin, cols, (0..kc).map(|p| p * rs), panel) };
        } else if rs == 1 && unsafe { A::transpose(origin, cs, cols, kc, panel) } {
            // Column-major B (a transposed operand), 8×8 blocks transposed in registers.
        } else if rs == 1 && cs <= i32::MAX as usize / MAX_NR {
            // Column-major B: gathers, one panel row per step.
            let offs: [i32; MAX_NR] = std::array::from_fn(|t| t as i32 * cs as i32);
            unsafe { A::gather(origin, &offs, cols, 0..kc, panel) };
        } else if rs == 1 {
            // Column-major B: read each column contiguously.
            for j in 0..cols {
                let src = unsafe { std::slice::from_raw_parts(origin.add(j * cs), kc) };
                for (p, &v) in src.iter().enumerate() {
                    panel[p * nr + j] = v;
                }
            }
        } else {
            for p in 0..kc {
                for j in 0..cols {
                    panel[p * nr + j] = unsafe { *origin.add(p * rs + j * cs) };
                }
            }
        }
    }
}

/// The AVX-512 micro-kernel, 12×32: runs are two masked 16-lane loads per depth step, a few
/// runs one masked load each, column-major panels 8×8 transposes, anything else two masked
/// 16-lane gathers; edge tiles store through lane masks.
#[cfg(target_arch = "x86_64")]
struct Avx512;

#[cfg(target_arch = "x86_64")]
impl Arch for Avx512 {
    const MR: usize = 12;
    const NR: usize = 32;
    const KC: usize = KC;
    #[target_feature(enable = "avx512f")]
    unsafe fn gather(
        ptr: *const f32,
        offs: &[i32; MAX_NR],
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
                _mm512_storeu_ps(out.add(p * 32), g0);
                let g1 = if m1 != 0 {
                    _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), m1, i1, base)
                } else {
                    _mm512_setzero_ps()
                };
                _mm512_storeu_ps(out.add(p * 32 + 16), g1);
            }
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn runs(ptr: *const f32, cols: usize, bases: impl Iterator<Item = usize>, panel: &mut [f32]) {
        unsafe {
            let (m0, m1) = (lanes(cols), lanes(cols.saturating_sub(16)));
            let out = panel.as_mut_ptr();
            for (p, b) in bases.enumerate() {
                let src = ptr.add(b);
                _mm512_storeu_ps(out.add(p * 32), _mm512_maskz_loadu_ps(m0, src));
                // `src + 16` may lie past the operand when `cols ≤ 16` (then `m1` is empty and
                // nothing is read there): formed with `wrapping_add`, never dereferenced.
                _mm512_storeu_ps(out.add(p * 32 + 16), _mm512_maskz_loadu_ps(m1, src.wrapping_add(16)));
            }
        }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn pieces(
        ptr: *const f32,
        offs: &[i32; MAX_NR],
        cols: usize,
        bases: impl Iterator<Item = usize> + Clone,
        panel: &mut [f32],
    ) -> Option<()> {
        let pieces = Pieces::of(offs, cols, 16, PIECES)?;
        unsafe {
            let out = panel.as_mut_ptr();
            for (p, b) in bases.enumerate() {
                let base = ptr.add(b);
                for (h, (bits, shifts)) in pieces.bits.iter().zip(&pieces.shift).enumerate() {
                    let mut acc = _mm512_setzero_ps();
                    for (&bits, &shift) in bits.iter().zip(shifts).take(pieces.n[h]) {
                        // Lane l of this load is `base + shift + l`; only the piece's own lanes
                        // (the addresses a gather would read) are loaded, the others kept.
                        acc = _mm512_mask_loadu_ps(acc, bits, base.wrapping_offset(shift));
                    }
                    _mm512_storeu_ps(out.add(p * 32 + h * 16), acc);
                }
            }
        }
        Some(())
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose(ptr: *const f32, cs: usize, cols: usize, kc: usize, panel: &mut [f32]) -> bool {
        // SAFETY: the caller's contract, with NR = 32; an AVX-512 CPU here has AVX2 (`cpu::avx512`).
        unsafe { transpose_panel(ptr, cs, cols, kc, panel, 32) };
        true
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const PREFETCH: bool>(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // A short last row panel (an output channel count that is not a multiple of 12: LeNet's
        // 6 and 16, GoogLeNet's 16, 64 = 5·12 + 4) runs on as many accumulator rows as it needs,
        // not on 12 of which the padding rows are thrown away.
        // SAFETY: the caller's contract; each variant computes at least `rows` rows.
        unsafe {
            match rows {
                0..=4 => avx512_tile::<4, PREFETCH>(kc, a, b, c, ldc, rows, cols, accumulate),
                5..=6 => avx512_tile::<6, PREFETCH>(kc, a, b, c, ldc, rows, cols, accumulate),
                7..=8 => avx512_tile::<8, PREFETCH>(kc, a, b, c, ldc, rows, cols, accumulate),
                _ => avx512_tile::<12, PREFETCH>(kc, a, b, c, ldc, rows, cols, accumulate),
            }
        }
    }
}

/// The AVX-512 micro-kernel on the first `R` (≤ 12) rows of a 12-row packed A panel:
/// `C[rows × cols] (+)= Apanel[..R] · Bpanel` with `rows ≤ R`.
///
/// # Safety
/// As [`Arch::tile`], with AVX-512F available and `rows ≤ R ≤ 12`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_tile<const R: usize, const PREFETCH: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    debug_assert!(rows <= R && R <= 12);
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(p * 32));
            let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
            let ap = a.add(p * 12);
            if PREFETCH {
                // 32 steps ahead, past the panel's end near its end: a prefetch never faults,
                // and the address is formed with `wrapping_add` (not an out-of-bounds `add`).
                _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(32 * 12).cast());
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

/// The AVX2 + FMA micro-kernel, 6×16: gathers are two masked 8-lane gathers per depth step
/// (masked-off lanes are not read), runs two (masked) 8-lane loads; a full tile is stored
/// straight into C, an edge tile through a 6×16 buffer of which only `rows × cols` is copied.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Arch for Avx2 {
    const MR: usize = 6;
    const NR: usize = 16;
    // Measured on the AMD EPYC (Zen, 32 KiB L1d, 512 KiB L2) with `gemm_probe`: 512 beats 256 by
    // 2–8 % on convolution shapes (fewer passes over C), 192 and 384 lie between.
    const KC: usize = 512;
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gather(
        ptr: *const f32,
        offs: &[i32; MAX_NR],
        cols: usize,
        bases: impl Iterator<Item = usize>,
        panel: &mut [f32],
    ) {
        unsafe {
            let (m0, m1) = (mask8(cols), mask8(cols.saturating_sub(8)));
            let (f0, f1) = (_mm256_castsi256_ps(m0), _mm256_castsi256_ps(m1));
            let i0 = _mm256_loadu_si256(offs.as_ptr().cast());
            let i1 = _mm256_loadu_si256(offs.as_ptr().add(8).cast());
            let out = panel.as_mut_ptr();
            let zero = _mm256_setzero_ps();
            let second = cols > 8;
            for (p, b) in bases.enumerate() {
                let base = ptr.add(b);
                _mm256_storeu_ps(out.add(p * 16), _mm256_mask_i32gather_ps::<4>(zero, base, i0, f0));
                let g1 = if second { _mm256_mask_i32gather_ps::<4>(zero, base, i1, f1) } else { zero };
                _mm256_storeu_ps(out.add(p * 16 + 8), g1);
            }
        }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn runs(ptr: *const f32, cols: usize, bases: impl Iterator<Item = usize>, panel: &mut [f32]) {
        unsafe {
            let out = panel.as_mut_ptr();
            if cols == 16 {
                for (p, b) in bases.enumerate() {
                    let src = ptr.add(b);
                    _mm256_storeu_ps(out.add(p * 16), _mm256_loadu_ps(src));
                    _mm256_storeu_ps(out.add(p * 16 + 8), _mm256_loadu_ps(src.add(8)));
                }
                return;
            }
            let (m0, m1) = (mask8(cols), mask8(cols.saturating_sub(8)));
            for (p, b) in bases.enumerate() {
                let src = ptr.add(b);
                _mm256_storeu_ps(out.add(p * 16), _mm256_maskload_ps(src, m0));
                // Past the operand when `cols ≤ 8` (`m1` is empty then, nothing is read):
                // formed with `wrapping_add`.
                _mm256_storeu_ps(out.add(p * 16 + 8), _mm256_maskload_ps(src.wrapping_add(8), m1));
            }
        }
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose(ptr: *const f32, cs: usize, cols: usize, kc: usize, panel: &mut [f32]) -> bool {
        // SAFETY: the caller's contract, with NR = 16.
        unsafe { transpose_panel(ptr, cs, cols, kc, panel, 16) };
        true
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pieces(
        ptr: *const f32,
        offs: &[i32; MAX_NR],
        cols: usize,
        bases: impl Iterator<Item = usize> + Clone,
        panel: &mut [f32],
    ) -> Option<()> {
        // Four runs per half at most: with more, the gathers measured faster (AMD EPYC, AVX2).
        let pieces = Pieces::of(offs, cols, 8, 4)?;
        unsafe {
            let out = panel.as_mut_ptr();
            let lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let masks: [[__m256i; PIECES]; 2] = std::array::from_fn(|h| {
                std::array::from_fn(|k| {
                    let bits = _mm256_and_si256(_mm256_set1_epi32(pieces.bits[h][k] as i32), lane_bit);
                    _mm256_cmpeq_epi32(bits, lane_bit)
                })
            });
            for (p, b) in bases.enumerate() {
                let base = ptr.add(b);
                for (h, (masks, shifts)) in masks.iter().zip(&pieces.shift).enumerate() {
                    let mut acc = _mm256_setzero_ps();
                    for (mask, shift) in masks.iter().zip(shifts).take(pieces.n[h]) {
                        // Lane l of this load is `base + shift + l`; only the piece's own lanes
                        // (the addresses a gather would read) are loaded, the others are 0.
                        acc = _mm256_or_ps(acc, _mm256_maskload_ps(base.wrapping_offset(*shift), *mask));
                    }
                    _mm256_storeu_ps(out.add(p * 16 + h * 8), acc);
                }
            }
        }
        Some(())
    }
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile<const PREFETCH: bool>(
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
            let mut acc = [[_mm256_setzero_ps(); 2]; 6];
            for p in 0..kc {
                let b0 = _mm256_loadu_ps(b.add(p * 16));
                let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
                let ap = a.add(p * 6);
                if PREFETCH {
                    // As in the AVX-512 kernel: a prefetch never faults.
                    _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(64 * 6).cast());
                }
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*ap.add(i));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
            if rows == 6 && cols == 16 {
                for (i, acc) in acc.iter().enumerate() {
                    let row = c.add(i * ldc);
                    let (mut v0, mut v1) = (acc[0], acc[1]);
                    if accumulate {
                        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(row));
                        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(row.add(8)));
                    }
                    _mm256_storeu_ps(row, v0);
                    _mm256_storeu_ps(row.add(8), v1);
                }
                return;
            }
            let mut tile = [0f32; 6 * 16];
            for (i, acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16), acc[0]);
                _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16 + 8), acc[1]);
            }
            for (i, t) in tile.chunks_exact(16).enumerate().take(rows) {
                let row = std::slice::from_raw_parts_mut(c.add(i * ldc), cols);
                if accumulate {
                    row.iter_mut().zip(t).for_each(|(r, v)| *r += v);
                } else {
                    row.copy_from_slice(&t[..cols]);
                }
            }
        }
    }
}

/// Packs one `nr`-wide panel of a column-major B (column `j` at `ptr + j·cs`, its `kc` depth
/// steps contiguous; `nr` = 16 or 32), or of a row-major A (row `j` at `ptr + j·cs`; `nr` = the
/// micro-kernel's 6 or 12 rows), by 8×8 in-register transposes; groups of eight columns wholly
/// past `cols` are not written (an edge panel is zeroed first).
///
/// # Safety
/// The CPU has AVX2; `cols ≤ nr`, `panel` holds `kc·nr` floats; `ptr + j·cs + p` lies in the
/// operand for every `j < cols`, `p < kc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_panel(ptr: *const f32, cs: usize, cols: usize, kc: usize, panel: &mut [f32], nr: usize) {
    // SAFETY: the caller's contract: column `j`'s depth steps are contiguous from `ptr + j·cs`.
    unsafe { transpose_blocks(cols, kc, panel, nr, |p, j| ptr.add(j * cs + p), |_, depth| Some(depth)) }
}

/// Packs one `nr`-wide panel of a convolution's transposed implicit columns ([`Rhs::ConvT`]:
/// depth steps are pixels at `steps[p]`, columns kernel taps at `offs[j]`) by 8×8 transposes
/// where eight depth steps are at most two runs of consecutive pixels (a 1×1 convolution's
/// weight gradient, whose taps are input channels a plane apart; a block crosses at most one
/// image seam when images have at least 8 pixels), value by value elsewhere.
///
/// # Safety
/// The CPU has AVX2; `cols ≤ nr`, `panel` holds `steps.len()·nr` floats; `ptr + steps[p] +
/// offs[j]` lies in the operand for every `j < cols`, `p < steps.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_steps(
    ptr: *const f32,
    offs: &[i32; MAX_NR],
    cols: usize,
    steps: &[usize],
    panel: &mut [f32],
    nr: usize,
) {
    let at = |p: usize, j: usize| ptr.wrapping_add(steps[p] + offs[j] as usize);
    let split = |k0: usize, depth: usize| two_runs(&steps[k0..k0 + depth]);
    // SAFETY: the caller's contract; a block is loaded as runs only where its steps are
    // consecutive within each run, so lane `t` of column `j`'s load is `at(k0 + t, j)`.
    unsafe { transpose_blocks(cols, steps.len(), panel, nr, at, split) }
}

/// Where a block of depth steps splits into two runs of consecutive steps: the first run's
/// length (the block's length if it is one run), or `None` for three runs or more.
fn two_runs(steps: &[usize]) -> Option<usize> {
    let breaks = |from: usize| (from + 1..steps.len()).find(|&t| steps[t] != steps[t - 1] + 1);
    match breaks(0) {
        None => Some(steps.len()),
        Some(a) => breaks(a).is_none().then_some(a),
    }
}

/// The 8×8 transposes of [`transpose_panel`] and [`transpose_steps`]: depth step `p` of column
/// `j` is at `at(p, j)`; a block of `depth` steps from `k0` is loaded per column as two masked
/// runs where `split(k0, depth) = Some(a)` (then `at(k0 + t, j) = at(k0, j) + t` for `t < a`
/// and `at(k0 + a, j) + (t − a)` for `a ≤ t < depth`; `a = depth`: one run), else copied value
/// by value.
///
/// # Safety
/// The CPU has AVX2; `cols ≤ nr`, `panel` holds `kc·nr` floats; `at(p, j)` is readable for
/// every `j < cols`, `p < kc`, and `split` answers as above.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_blocks(
    cols: usize,
    kc: usize,
    panel: &mut [f32],
    nr: usize,
    at: impl Fn(usize, usize) -> *const f32,
    split: impl Fn(usize, usize) -> Option<usize>,
) {
    unsafe {
        let out = panel.as_mut_ptr();
        for k0 in (0..kc).step_by(8) {
            let depth = (kc - k0).min(8);
            let Some(a) = split(k0, depth) else {
                for p in k0..k0 + depth {
                    for j in 0..cols {
                        *out.add(p * nr + j) = *at(p, j);
                    }
                }
                continue;
            };
            // Lanes `0..a` from the first run, `a..depth` from the second (read from `a` lanes
            // before its start: those lanes are masked off, never read).
            let (m1, m2) = (mask8(a), _mm256_andnot_si256(mask8(a), mask8(depth)));
            for g in 0..cols.div_ceil(8) {
                // Eight columns' next `depth` values (zeros past `cols` and `depth`) …
                let r: [__m256; 8] = if a == depth {
                    std::array::from_fn(|j| {
                        let col = g * 8 + j;
                        if col < cols { _mm256_maskload_ps(at(k0, col), m1) } else { _mm256_setzero_ps() }
                    })
                } else {
                    std::array::from_fn(|j| {
                        let col = g * 8 + j;
                        if col < cols {
                            let first = _mm256_maskload_ps(at(k0, col), m1);
                            let second = _mm256_maskload_ps(at(k0 + a, col).wrapping_sub(a), m2);
                            _mm256_or_ps(first, second) // masked-off lanes load as +0.0 bits
                        } else {
                            _mm256_setzero_ps()
                        }
                    })
                };
                // … transposed: row t holds depth step k0 + t of the eight columns.
                let rows = crate::copy::transpose8(r);
                let width = (nr - g * 8).min(8);
                for (t, row) in rows.iter().enumerate().take(depth) {
                    let dst = out.add((k0 + t) * nr + g * 8);
                    if width == 8 {
                        _mm256_storeu_ps(dst, *row);
                    } else {
                        // A panel of 12 or 6 rows of A: the last group's lanes past its width
                        // are not stored (they would be the next depth step's).
                        _mm256_maskstore_ps(dst, mask8(width), *row);
                    }
                }
            }
        }
    }
}

/// Most runs per half of a panel that [`Pieces`] can hold.
const PIECES: usize = 8;

/// The columns of a panel as contiguous runs of the source, per half (8 lanes of a 16-wide
/// AVX2 panel, 16 of a 32-wide AVX-512 one): run `k` of half `h` is the lanes `bits[h][k]` of
/// a half-wide load at `base + shift[h][k]`.
struct Pieces {
    n: [usize; 2],
    shift: [[isize; PIECES]; 2],
    bits: [[u16; PIECES]; 2],
}

impl Pieces {
    /// The runs of the first `cols` (≤ 2·`half`) offsets, or `None` where a half has more than
    /// `most` (≤ [`PIECES`]).
    fn of(offs: &[i32; MAX_NR], cols: usize, half: usize, most: usize) -> Option<Pieces> {
        debug_assert!(half <= 16 && most <= PIECES && cols <= 2 * half);
        let mut p = Pieces { n: [0; 2], shift: [[0; PIECES]; 2], bits: [[0; PIECES]; 2] };
        for h in 0..2 {
            let (lo, hi) = (h * half, (h * half + half).min(cols));
            let mut t = lo;
            while t < hi {
                let start = t;
                while t + 1 < hi && offs[t + 1] == offs[t] + 1 {
                    t += 1;
                }
                t += 1;
                let k = p.n[h];
                if k == most {
                    return None;
                }
                p.shift[h][k] = offs[start] as isize - (start - lo) as isize;
                p.bits[h][k] = (((1u32 << (t - lo)) - 1) & !((1u32 << (start - lo)) - 1)) as u16;
                p.n[h] += 1;
            }
        }
        Some(p)
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

/// Single-threaded `dst[m×n] (leading dim ldd) = (accumulate ? dst : 0) + A·B`, on this CPU's
/// micro-kernel ([`isa`]).
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
    debug_assert!(available(), "sgemm without AVX-512 or AVX2");
    debug_assert!(b.covers(k, n), "sgemm: right operand smaller than {k}×{n}");
    debug_assert!(
        packed.map_or(a.covers(m, k), |p| p.len() >= m.div_ceil(mr()) * mr() * k),
        "sgemm: left operand smaller than {m}×{k}"
    );
    // SAFETY: this function's contract; `isa` names the instruction set the CPU has.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match isa() {
            Some(Isa::Avx512) => drive::<Avx512>(m, n, k, dst, ldd, a, packed, b, accumulate),
            Some(Isa::Avx2) => drive::<Avx2>(m, n, k, dst, ldd, a, packed, b, accumulate),
            None => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (m, n, k, dst, ldd, a, packed, b, accumulate);
}

/// [`sgemm`] on micro-kernel `A`.
///
/// # Safety
/// As [`sgemm`], with `A`'s instruction set available (and `packed` made for `A::MR`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn drive<A: Arch>(
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
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        // With few column panels each A panel is used only a few times after coming from
        // memory (a large weight matrix at batch 1): prefetch it 32 depth steps ahead. With
        // many, A stays in cache and the prefetches only cost issue slots.
        let prefetch = n <= 256;
        let mut p0 = 0;
        while p0 < k {
            // Equal slabs (576 = 2 × 288, not 256 + 256 + 64): a short last slab pays a full
            // pass over C for little arithmetic.
            let kc = k.div_ceil(k.div_ceil(A::KC)).min(k - p0);
            let acc = accumulate || p0 > 0;
            // SAFETY: this function's contract (the CPU has `A`'s instruction set, `b` covers `k×n`).
            let packed_b = unsafe { pack_b::<A>(b, n, p0, kc, &mut s.b) };
            let mut r0 = 0;
            while r0 < m {
                let mc = MC.min(m - r0);
                if packed.is_none() {
                    let out = crate::buf::scratch(&mut s.a, mc.div_ceil(A::MR) * A::MR * kc);
                    // SAFETY: `a` covers `m×k` (this function's contract).
                    unsafe { pack_a(a, r0, mc, p0, kc, A::MR, out) };
                }
                for jp in 0..n.div_ceil(A::NR) {
                    let cols = A::NR.min(n - jp * A::NR);
                    let bp = packed_b[jp * A::NR * kc..].as_ptr();
                    for ip in 0..mc.div_ceil(A::MR) {
                        let rows = A::MR.min(mc - ip * A::MR);
                        let ap = match packed {
                            Some(pa) => pa[((r0 / A::MR + ip) * k + p0) * A::MR..].as_ptr(),
                            None => s.a[ip * A::MR * kc..].as_ptr(),
                        };
                        // SAFETY: the tile lies inside `dst` (rows < m, cols < n); see above.
                        unsafe {
                            let c = dst.add((r0 + ip * A::MR) * ldd + jp * A::NR);
                            if prefetch {
                                A::tile::<true>(kc, ap, bp, c, ldd, rows, cols, acc)
                            } else {
                                A::tile::<false>(kc, ap, bp, c, ldd, rows, cols, acc)
                            }
                        }
                    }
                }
                r0 += mc;
            }
            p0 += kc;
        }
    });
}
