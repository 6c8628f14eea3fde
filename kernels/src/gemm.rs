//! The GEMM entry points of the kernels, in the row-major form they use: our AVX-512 or AVX2
//! kernel ([`crate::sgemm`]) split across threads, or the `gemm` crate on other CPUs.

use rayon::prelude::*;

use crate::buf::ranges;
use crate::view::{Mat, Rhs};

/// The left operand of [`gemm()`]: a matrix, optionally packed once up front for reuse.
pub struct Lhs<'a> {
    kind: LhsKind<'a>,
}

enum LhsKind<'a> {
    /// Packed by each GEMM that uses it.
    Raw(Mat<'a>),
    /// Packed once ([`crate::sgemm::pack_a_full`]) for an `m×k` product.
    Packed { data: Vec<f32>, m: usize, k: usize },
    /// Values this operand owns: a row-major `m×k` matrix with leading dimension `ld`.
    Owned { data: Vec<f32>, ld: usize, m: usize, k: usize },
}

impl<'a> Lhs<'a> {
    /// An operand packed by each GEMM that uses it.
    pub fn new(raw: Mat<'a>) -> Self {
        Self { kind: LhsKind::Raw(raw) }
    }
    /// An `m×k` operand packed now, for many GEMMs, where our `sgemm` kernel runs (else read
    /// as it is by each GEMM). Panics if `raw` does not cover `m×k`.
    pub fn prepacked(raw: Mat<'a>, m: usize, k: usize) -> Self {
        match Lhs::packed(raw, m, k) {
            Some(p) => p,
            None => {
                assert!(raw.covers(m, k), "Lhs::prepacked: operand smaller than {m}×{k}");
                Self::new(raw)
            }
        }
    }
    /// The `m×k` operand `raw` packed now, owning its values; `None` where our `sgemm` kernel
    /// does not run (nothing to pack for). Panics if `raw` does not cover `m×k`.
    pub fn packed(raw: Mat<'_>, m: usize, k: usize) -> Option<Lhs<'static>> {
        crate::sgemm::available()
            .then(|| Lhs { kind: LhsKind::Packed { data: crate::sgemm::pack_a_full(raw, m, k), m, k } })
    }
    /// A row-major `m×k` operand (leading dimension `ld`) this `Lhs` keeps: packed now where the
    /// packed kernel runs, else held as is. Panics if `data` does not hold `m×k`.
    pub fn owned(data: Vec<f32>, ld: usize, m: usize, k: usize) -> Lhs<'static> {
        assert!(Mat::rows(&data, ld).covers(m, k), "Lhs::owned: {} values do not hold {m}×{k}", data.len());
        match Lhs::packed(Mat::rows(&data, ld), m, k) {
            Some(p) => p,
            None => Lhs { kind: LhsKind::Owned { data, ld, m, k } },
        }
    }
    /// Bytes this operand holds (its packed copy or owned values).
    pub fn bytes(&self) -> usize {
        let n = match &self.kind {
            LhsKind::Raw(_) => 0,
            LhsKind::Packed { data, .. } | LhsKind::Owned { data, .. } => data.len(),
        };
        n * std::mem::size_of::<f32>()
    }
    /// The operand for an `m×k` product: a view of it, and its packed copy if it has one.
    /// Panics if it does not hold `m×k` (a packed copy: made for `k` and at least `m` rows).
    fn operand(&self, m: usize, k: usize) -> (Mat<'_>, Option<&[f32]>) {
        match &self.kind {
            LhsKind::Raw(raw) => {
                assert!(raw.covers(m, k), "gemm: left operand smaller than {m}×{k}");
                (*raw, None)
            }
            LhsKind::Packed { data, m: pm, k: pk } => {
                assert!(m <= *pm && k == *pk, "gemm: left operand packed for {pm}×{pk}, not {m}×{k}");
                (Mat::rows(&[], 0), Some(data))
            }
            LhsKind::Owned { data, ld, m: om, k: ok } => {
                assert!(m <= *om && k <= *ok, "gemm: left operand is {om}×{ok}, not {m}×{k}");
                (Mat::rows(data, *ld), None)
            }
        }
    }
}

/// `dst[m×n] (row-major, leading dim ldd) = (accumulate ? dst : 0) + a[m×k] · b[k×n]`.
///
/// `threads > 1` lets `gemm` split the product itself (used when there are fewer independent
/// work items than threads).
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    a: &Lhs,
    b: Mat,
    accumulate: bool,
    threads: usize,
) {
    gemm_rhs(m, n, k, dst, ldd, a, Rhs::Mat(b), accumulate, threads)
}

/// [`gemm()`] with any right operand; a convolution's implicit columns
/// ([`Rhs::Conv`], [`Rhs::ConvT`]) only where our `sgemm` kernel runs ([`crate::sgemm::available`]).
///
/// # Panics
/// If `dst` does not hold `m` rows of `n` at stride `ldd` (with `ldd ≥ n` when `m > 1`), if `a`
/// does not hold `m×k` or `b` `k×n`, or if `b` is a column-matrix view where our `sgemm` kernel
/// does not run.
#[allow(clippy::too_many_arguments)]
pub fn gemm_rhs(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    a: &Lhs,
    b: Rhs,
    accumulate: bool,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let rows_fit = (m - 1).checked_mul(ldd).and_then(|r| r.checked_add(n)).is_some_and(|e| e <= dst.len());
    assert!(rows_fit && (m == 1 || ldd >= n), "gemm destination too small for {m}×{n} at stride {ldd}");
    let (a, packed) = a.operand(m, k);
    assert!(b.covers(k, n), "gemm: right operand smaller than {k}×{n}");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ldd..r * ldd + n].fill(0.0);
            }
        }
        return;
    }
    if crate::sgemm::available() {
        let dst_ptr = SendPtr(dst.as_mut_ptr());
        let (mr, nr) = (crate::sgemm::mr(), crate::sgemm::nr());
        // Split the columns (whole micro-panels) across threads, or the rows when that balances
        // better or A is the larger operand (a late layer at batch 1: few column panels, and
        // each thread then streams only its share of the weights instead of all of them).
        let (rows_bal, cols_bal) = (balance(m.div_ceil(mr), threads), balance(n.div_ceil(nr), threads));
        let by_rows = threads > 1 && (rows_bal > cols_bal || (m > n && rows_bal >= 0.9));
        let run = |r: &std::ops::Range<usize>| {
            // SAFETY: our `sgemm` kernel runs (`available`); `dst`, `a` (or its packed copy, made
            // for this `k` and at least `m` rows) and `b` are checked above for the full
            // product, so every part's rows or columns `r` of it lie inside them; parts write
            // disjoint rows or columns of `dst` (`ldd ≥ n`), which aliases neither operand (a
            // `&mut` and shared borrows); a row part starts on a micro-panel boundary of the
            // packed A.
            unsafe {
                if by_rows {
                    let pa = packed.map(|p| &p[r.start * k..]);
                    crate::sgemm::sgemm(
                        r.len(),
                        n,
                        k,
                        dst_ptr.get().add(r.start * ldd),
                        ldd,
                        a.skip_rows(r.start),
                        pa,
                        b,
                        accumulate,
                    )
                } else {
                    let b = b.skip_cols(r.start);
                    crate::sgemm::sgemm(
                        m,
                        r.len(),
                        k,
                        dst_ptr.get().add(r.start),
                        ldd,
                        a,
                        packed,
                        b,
                        accumulate,
                    )
                }
            }
        };
        let parts = if by_rows {
            ranges(m, threads.min(m.div_ceil(mr)), mr)
        } else {
            ranges(n, threads.min(n.div_ceil(nr)), nr)
        };
        if parts.len() > 1 {
            parts.par_iter().for_each(run);
        } else {
            parts.iter().for_each(run);
        }
        return;
    }
    let Rhs::Mat(b) = b else {
        panic!("gemm: implicit convolution columns need our `sgemm` kernel (sgemm::available)")
    };
    assert!(packed.is_none(), "gemm: a packed operand needs our `sgemm` kernel");
    let parallelism =
        if threads > 1 { ::gemm::Parallelism::Rayon(threads) } else { ::gemm::Parallelism::None };
    // SAFETY: `dst`, `a` and `b` are checked above for `m×n`, `m×k` and `k×n` at their
    // strides (all non-negative); `dst` is a `&mut` borrow, so it aliases neither operand.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.ptr(),
            a.cs() as isize,
            a.rs() as isize,
            b.ptr(),
            b.cs() as isize,
            b.rs() as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// How evenly `units` micro-panels spread over `threads` (1.0 = every thread gets as many).
fn balance(units: usize, threads: usize) -> f64 {
    let per = units.div_ceil(threads.max(1)).max(1);
    units as f64 / (per * threads.max(1)) as f64
}

/// `dst[m×n] (leading dim ldd) (+)= A·Bᵀ` with A `m×k` and B `n×k` both row-major (strides
/// `lda`, `ldb`): a convolution's weight gradient, `dW = dy · colᵀ`. Single-threaded.
///
/// Both operands run along `k`. Where A has at most [`DOT_MAX_ROWS`] rows and the CPU has AVX2
/// and FMA ([`nt_is_dot`]), this is a dot-product kernel that reads them where they lie
/// ([`dot_nt`]): as a GEMM both would be packed by transposes first, which costs as much as
/// the arithmetic when A has few rows (a 1×1 convolution's weight gradient with 16–64 output
/// channels: B, its input, is packed for a handful of row panels). With more rows the GEMM
/// wins (B would stream past every four rows of A).
///
/// # Panics
/// If `dst` does not hold `m` rows of `n` at stride `ldd` (`ldd ≥ n` when `m > 1`), `a` `m`
/// rows of `k` at `lda` or `b` `n` rows of `k` at `ldb`.
#[allow(clippy::too_many_arguments)]
pub fn gemm_nt(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if nt_is_dot(m) && m > 0 && n > 0 && k > 0 {
        assert!(
            Mat::rows(a, lda).covers(m, k)
                && Mat::rows(b, ldb).covers(n, k)
                && Mat::rows(dst, ldd).covers(m, n)
                && (m == 1 || ldd >= n),
            "gemm_nt: operands smaller than {m}×{k}, {n}×{k} or {m}×{n}"
        );
        if !accumulate {
            for r in 0..m {
                dst[r * ldd..r * ldd + n].fill(0.0);
            }
        }
        // SAFETY: the CPU has AVX2 and FMA; the extents are checked above; `dst` is a `&mut`
        // borrow, so it overlaps neither operand.
        unsafe { dot_nt(m, n, k, dst.as_mut_ptr(), ldd, a.as_ptr(), lda, b.as_ptr(), ldb) };
        return;
    }
    // `gemm` checks every extent (and panics where one is short).
    // C = A·Bᵀ is a plain GEMM whose right operand is column-major; our `sgemm` kernel
    // gathers it (see `sgemm::pack_b`).
    gemm(m, n, k, dst, ldd, &Lhs::new(Mat::rows(a, lda)), Mat::cols(b, ldb), accumulate, 1);
}

/// A raw pointer handed to worker threads that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes while the owning slice is borrowed mutably.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Most rows of A for which [`gemm_nt`] takes the dot-product kernel.
pub const DOT_MAX_ROWS: usize = 64;

/// Whether [`gemm_nt`] with `m` rows of A runs as dot products (no packing): at most
/// [`DOT_MAX_ROWS`] rows, on a CPU with AVX2 and FMA.
pub fn nt_is_dot(m: usize) -> bool {
    m <= DOT_MAX_ROWS && crate::cpu::avx2()
}

/// `dst[i·ldd + j] += Σ_p a[i·lda + p] · b[j·ldb + p]` for `i < m`, `j < n`, `p < k`: blocks of
/// 4 rows of A by 3 rows of B, twelve 8-lane accumulators along `k` (the last `k mod 8` steps by
/// masked loads), each row's three sums reduced by horizontal adds at the end. The block's rows
/// of A stay in L1 while the rows of B stream past.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a` holds `m` rows of `k` at stride `lda`, `b` `n` rows of `k` at
/// `ldb`, `dst` `m` rows of `n` at `ldd`, overlapping neither.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn dot_nt(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    ldd: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
) {
    use std::arch::x86_64::*;
    let full = k - k % 8;
    let tail = crate::copy::mask8(k % 8);
    for i0 in (0..m).step_by(4) {
        let mi = (m - i0).min(4);
        // Rows past the block's last read its last row again; their sums are dropped.
        // SAFETY (of the pointer arithmetic here and below): every row index is < m or < n.
        let ar: [*const f32; 4] = std::array::from_fn(|i| unsafe { a.add((i0 + i.min(mi - 1)) * lda) });
        for j0 in (0..n).step_by(3) {
            let nj = (n - j0).min(3);
            let br: [*const f32; 3] = std::array::from_fn(|j| unsafe { b.add((j0 + j.min(nj - 1)) * ldb) });
            let mut acc = [[_mm256_setzero_ps(); 3]; 4];
            let mut step = |av: [__m256; 4], bv: [__m256; 3]| {
                for (acc, av) in acc.iter_mut().zip(av) {
                    for (acc, bv) in acc.iter_mut().zip(bv) {
                        *acc = _mm256_fmadd_ps(av, bv, *acc);
                    }
                }
            };
            // SAFETY: p + 8 ≤ full ≤ k: inside every row; the tail loads only lanes below k.
            unsafe {
                for p in (0..full).step_by(8) {
                    step(ar.map(|r| _mm256_loadu_ps(r.add(p))), br.map(|r| _mm256_loadu_ps(r.add(p))));
                }
                if full < k {
                    step(
                        ar.map(|r| _mm256_maskload_ps(r.add(full), tail)),
                        br.map(|r| _mm256_maskload_ps(r.add(full), tail)),
                    );
                }
            }
            for (i, acc) in acc.iter().enumerate().take(mi) {
                // [Σ acc0, Σ acc1, Σ acc2, Σ acc2]: two horizontal adds and a fold of the halves.
                let h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[2]));
                let sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
                let mut s = [0f32; 4];
                // SAFETY: `s` has 4 lanes; row i0 + i < m and columns j0 + j < n of `dst`.
                unsafe {
                    _mm_storeu_ps(s.as_mut_ptr(), sums);
                    for (j, v) in s.iter().enumerate().take(nj) {
                        *dst.add((i0 + i) * ldd + j0 + j) += v;
                    }
                }
            }
        }
    }
}
