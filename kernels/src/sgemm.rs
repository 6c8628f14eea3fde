//! Single-precision GEMM for AVX-512 CPUs: `C[m×n] (+)= A[m×k] · B[k×n]`, any strides.
//!
//! **Algorithm.** The BLIS loop nest: the reduction is cut into [`KC`]-deep slabs; per slab
//! B is packed into `NR`-column micro-panels (k-major, zero-padded) and A, [`MC`] rows at a
//! time, into `MR`-row micro-panels; a 12×32 register-blocked micro-kernel (24 zmm
//! accumulators, 2 loads of B and 12 broadcasts of A per k, 24 FMAs) computes each tile and
//! adds it into C. Packing absorbs any operand layout, so transposed operands (the weight
//! and input gradients of a convolution) cost one strided read per slab and nothing else.
//! Edge tiles run the same kernel and store through a lane mask.
//!
//! **Why not the `gemm` crate.** On the Intel Xeon (AVX-512, 2 FMA ports) these machines run,
//! `gemm` 0.19 reaches 50–62 GFLOP/s per thread on convolution shapes — about a third of
//! PyTorch's MKL (160 GFLOP/s per thread, measured in the same session). This kernel reaches
//! roughly [`crate::sgemm`]'s measured rate quoted in the README. CPUs without AVX-512 use
//! `gemm` (see [`crate::buf::gemm`]).
//!
//! **Where the time goes.** The micro-kernel (FMA-bound); packing is one pass over each
//! operand per slab/panel (≈ 1/MR + 1/NR of the arithmetic in memory traffic).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use crate::buf::Mat;

/// Rows of a micro-tile.
pub const MR: usize = 12;
/// Columns of a micro-tile (two zmm registers).
pub const NR: usize = 32;
/// Depth of a packed slab.
pub const KC: usize = 256;
/// Rows of A packed at a time (fits L2 with a slab of B streaming through L1).
pub const MC: usize = 120;

/// Whether this CPU runs the AVX-512 kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Packs rows `r0..r0+mc`, depth `p0..p0+kc` of A into MR-row micro-panels (k-major).
fn pack_a(a: Mat, r0: usize, mc: usize, p0: usize, kc: usize, out: &mut Vec<f32>) {
    let panels = mc.div_ceil(MR);
    out.clear();
    out.resize(panels * MR * kc, 0.0);
    for ip in 0..panels {
        let panel = &mut out[ip * MR * kc..(ip + 1) * MR * kc];
        let rows = MR.min(mc - ip * MR);
        for i in 0..rows {
            let r = (r0 + ip * MR + i) as isize;
            // SAFETY: the caller's operand covers rows < m and columns < k.
            let row = unsafe { a.ptr.offset(r * a.rs + p0 as isize * a.cs) };
            for p in 0..kc {
                panel[p * MR + i] = unsafe { *row.offset(p as isize * a.cs) };
            }
        }
    }
}

/// Packs depth `p0..p0+kc`, columns `0..n` of B into NR-column micro-panels (k-major).
fn pack_b(b: Mat, n: usize, p0: usize, kc: usize, out: &mut Vec<f32>) {
    let panels = n.div_ceil(NR);
    out.clear();
    out.resize(panels * NR * kc, 0.0);
    for jp in 0..panels {
        let panel = &mut out[jp * NR * kc..(jp + 1) * NR * kc];
        let cols = NR.min(n - jp * NR);
        for p in 0..kc {
            // SAFETY: as in `pack_a`.
            let row = unsafe { b.ptr.offset((p0 + p) as isize * b.rs + (jp * NR) as isize * b.cs) };
            let dst = &mut panel[p * NR..p * NR + cols];
            if b.cs == 1 {
                dst.copy_from_slice(unsafe { std::slice::from_raw_parts(row, cols) });
            } else {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = unsafe { *row.offset(j as isize * b.cs) };
                }
            }
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
unsafe fn kernel(
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
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
            }
        }
        let lo: __mmask16 = if cols >= 16 { 0xffff } else { ((1u32 << cols) - 1) as u16 };
        let hi: __mmask16 = if cols >= 32 {
            0xffff
        } else if cols > 16 {
            ((1u32 << (cols - 16)) - 1) as u16
        } else {
            0
        };
        for (i, acc) in acc.iter().enumerate().take(rows) {
            let row = c.add(i * ldc);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(lo, row));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(hi, row.add(16)));
            }
            _mm512_mask_storeu_ps(row, lo, v0);
            _mm512_mask_storeu_ps(row.add(16), hi, v1);
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
/// [`available`] must be true; `a` and `b` must be valid for `m×k` and `k×n` reads with their
/// strides, `dst` for `m` rows of `n` elements at stride `ldd`, not aliasing `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    a: Mat,
    b: Mat,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        let mut p0 = 0;
        while p0 < k {
            let kc = KC.min(k - p0);
            let acc = accumulate || p0 > 0;
            pack_b(b, n, p0, kc, &mut s.b);
            let mut r0 = 0;
            while r0 < m {
                let mc = MC.min(m - r0);
                pack_a(a, r0, mc, p0, kc, &mut s.a);
                for jp in 0..n.div_ceil(NR) {
                    let cols = NR.min(n - jp * NR);
                    let bp = s.b[jp * NR * kc..].as_ptr();
                    for ip in 0..mc.div_ceil(MR) {
                        let rows = MR.min(mc - ip * MR);
                        let ap = s.a[ip * MR * kc..].as_ptr();
                        // SAFETY: the tile lies inside `dst` (rows < m, cols < n); see above.
                        unsafe {
                            let c = dst.add((r0 + ip * MR) * ldd + jp * NR);
                            kernel(kc, ap, bp, c, ldd, rows, cols, acc);
                        }
                    }
                }
                r0 += mc;
            }
            p0 += kc;
        }
    });
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (m, n, k, dst, ldd, a, b, accumulate);
}
