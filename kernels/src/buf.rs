//! Raw-buffer helpers shared by the kernels: contiguous `f32` views of flex tensors, wrapping
//! result vectors back into tensors without a copy, splitting work across threads, and the
//! `gemm` call in the row-major form the kernels use.

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;
use rayon::prelude::*;

/// The tensor itself if its `f32` data is one contiguous run, else a contiguous copy.
pub fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() }
}

/// The `f32` data of a tensor made [`contiguous`].
pub fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor (see buf::contiguous)")
}

/// The shape of a flex tensor.
pub fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

/// Wraps a vector as a contiguous flex tensor (no copy).
pub fn tensor(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(v.len(), shape.iter().product::<usize>());
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// A zeroed `f32` buffer (fresh large blocks come zeroed from the OS, so this costs no pass).
pub fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// An output buffer of `n` floats that the caller overwrites completely before anything reads
/// it (skips the zeroing pass `zeros` costs once the allocator recycles memory).
pub fn uninit(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: `f32` has no invalid bit patterns, and every caller writes all `n` elements
    // before reading any (conv/pool/activation outputs, batch-norm outputs).
    unsafe { v.set_len(n) };
    v
}

/// The first `n` floats of a reusable scratch vector (grown with zeros when too short; the
/// contents are whatever the last user left: callers overwrite before reading).
pub fn scratch(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Whether the CPU has AVX2 and FMA (the kernels' auto-vectorized loops have copies compiled
/// for them).
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Threads in rayon's pool.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Splits `n` items into at most `parts` contiguous ranges of nearly equal size, each a
/// multiple of `align` items (except the last).
pub fn ranges(n: usize, parts: usize, align: usize) -> Vec<std::ops::Range<usize>> {
    let units = n.div_ceil(align);
    let parts = parts.clamp(1, units.max(1));
    (0..parts)
        .map(|i| {
            let a = (units * i / parts * align).min(n);
            let b = (units * (i + 1) / parts * align).min(n);
            a..b
        })
        .filter(|r| !r.is_empty())
        .collect()
}

/// Cuts `data` into consecutive mutable pieces of the given lengths.
pub fn split_mut<'a, T>(mut data: &'a mut [T], lens: impl IntoIterator<Item = usize>) -> Vec<&'a mut [T]> {
    let mut out = Vec::new();
    for len in lens {
        let (head, tail) = data.split_at_mut(len);
        out.push(head);
        data = tail;
    }
    out
}

/// A row-major matrix operand: element (i, j) at `ptr[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

// SAFETY: a `Mat` is a read-only view; the kernels only read through it while the slice it
// was made from is borrowed.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    /// A row-major matrix with leading dimension `ld`.
    pub fn rows(data: &[f32], ld: usize) -> Self {
        Self { ptr: data.as_ptr(), rs: ld as isize, cs: 1 }
    }
    /// The same matrix without its first `j` columns.
    pub fn skip_cols(self, j: usize) -> Self {
        Self { ptr: self.ptr.wrapping_offset(j as isize * self.cs), ..self }
    }
    /// The same matrix without its first `i` rows.
    pub fn skip_rows(self, i: usize) -> Self {
        Self { ptr: self.ptr.wrapping_offset(i as isize * self.rs), ..self }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn cols(data: &[f32], ld: usize) -> Self {
        Self { ptr: data.as_ptr(), rs: 1, cs: ld as isize }
    }
}

/// The left operand of [`gemm()`]: a matrix, optionally packed once up front for reuse.
pub struct Lhs {
    pub raw: Mat,
    packed: Option<Vec<f32>>,
    /// The operand's values when this `Lhs` owns them (`raw` points into them; empty when
    /// `raw` borrows the caller's slice or the packed copy replaced them).
    owned: Vec<f32>,
}

impl Lhs {
    /// An operand packed by each GEMM that uses it.
    pub fn new(raw: Mat) -> Self {
        Self { raw, packed: None, owned: Vec::new() }
    }
    /// An `m×k` operand packed now, for many GEMMs (when the AVX-512 kernel runs). `raw` must
    /// stay valid as long as this `Lhs` is used (it is read directly where packing is off).
    pub fn prepacked(raw: Mat, m: usize, k: usize) -> Self {
        let packed = crate::sgemm::available().then(|| crate::sgemm::pack_a_full(raw, m, k));
        Self { raw, packed, owned: Vec::new() }
    }
    /// A row-major `m×k` operand (leading dimension `ld`) this `Lhs` keeps: packed now where the
    /// AVX-512 kernel runs, else held as is.
    pub fn owned(data: Vec<f32>, ld: usize, m: usize, k: usize) -> Self {
        let raw = Mat::rows(&data, ld);
        if crate::sgemm::available() {
            let packed = crate::sgemm::pack_a_full(raw, m, k);
            drop(data);
            Self { raw: Mat { ptr: std::ptr::null(), ..raw }, packed: Some(packed), owned: Vec::new() }
        } else {
            // Moving the vector keeps its heap buffer (and so `raw.ptr`) where it is.
            Self { raw, packed: None, owned: data }
        }
    }
    /// Bytes this operand holds (its packed copy or owned values).
    pub fn bytes(&self) -> usize {
        (self.packed.as_ref().map_or(0, Vec::len) + self.owned.len()) * std::mem::size_of::<f32>()
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
    gemm_rhs(m, n, k, dst, ldd, a, crate::sgemm::Rhs::Mat(b), accumulate, threads)
}

/// [`gemm()`] with any right operand; a convolution's implicit columns
/// ([`crate::sgemm::Rhs::Conv`]) only where the AVX-512 kernel runs ([`crate::sgemm::available`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_rhs(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    ldd: usize,
    a: &Lhs,
    b: crate::sgemm::Rhs,
    accumulate: bool,
    threads: usize,
) {
    let packed = a.packed.as_deref();
    let a = a.raw;
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * ldd + n, "gemm destination too small");
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
        let (mr, nr) = (crate::sgemm::MR, crate::sgemm::NR);
        // Split the columns (whole micro-panels) across threads, or the rows when that balances
        // better or A is the larger operand (a late layer at batch 1: few column panels, and
        // each thread then streams only its share of the weights instead of all of them).
        let (rows_bal, cols_bal) = (balance(m.div_ceil(mr), threads), balance(n.div_ceil(nr), threads));
        let by_rows = threads > 1 && (rows_bal > cols_bal || (m > n && rows_bal >= 0.9));
        let run = |r: &std::ops::Range<usize>| {
            // SAFETY: `dst` is checked above; each part writes its own rows or columns `r`;
            // the operands are valid for the shapes given (the caller's contract), and a row
            // part starts on a micro-panel boundary of the packed A.
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
    let crate::sgemm::Rhs::Mat(b) = b else {
        unreachable!("implicit convolution columns are only built where the AVX-512 kernel runs")
    };
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the operands are valid for the given shapes and strides (callers build them from
    // slices of sufficient length; `dst` is checked above) and `dst` does not alias them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
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
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst.len() >= (m - 1) * ldd + n, "gemm destination too small");
    assert!(a.len() >= (m - 1) * lda + k && b.len() >= (n - 1) * ldb + k, "gemm operand too small");
    // C = A·Bᵀ is a plain GEMM whose right operand is column-major; the packed kernel
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

/// `dst.copy_from_slice(src)` for the short runs of im2col and friends, without a `memcpy`
/// call per run (which costs more than the copy for a 3- or 28-float row): 16-lane masked
/// copies on AVX-512, 8-float blocks elsewhere.
#[inline]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    if dst.len() >= 64 {
        dst.copy_from_slice(src);
        return;
    }
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if crate::sgemm::available() {
        // SAFETY: AVX-512F is available; both slices have `dst.len()` elements (one row).
        unsafe { copy_2d_avx512(dst, src, 1, dst.len(), dst.len(), 1) };
        return;
    }
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let v: [f32; 8] = s.try_into().expect("chunk of 8");
        d.copy_from_slice(&v);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `dst[r·cols + c] = src[r·rs + c·cs]` for `r < rows`, `c < cols`: a window of a plane into a
/// dense block (im2col's rows). One call per block, so the AVX-512 copies inline into the
/// loop (a call per short run costs as much as the run).
pub fn copy_2d(dst: &mut [f32], src: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(dst.len() >= rows * cols, "copy_2d: destination too short");
    assert!(src.len() > (rows - 1) * rs + (cols - 1) * cs, "copy_2d: source too short");
    #[cfg(target_arch = "x86_64")]
    if crate::sgemm::available() && cs <= 2 {
        // SAFETY: AVX-512F is available; the bounds are checked above.
        unsafe { copy_2d_avx512(dst, src, rows, cols, rs, cs) };
        return;
    }
    for (r, d) in dst[..rows * cols].chunks_exact_mut(cols).enumerate() {
        for (c, v) in d.iter_mut().enumerate() {
            *v = src[r * rs + c * cs];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_2d_avx512(dst: &mut [f32], src: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) {
    use crate::sgemm::lanes;
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for r in 0..rows {
        let d = dst[r * cols..].as_mut_ptr();
        let base = r * rs;
        let mut c = 0;
        while c < cols {
            let n = (cols - c).min(16);
            // SAFETY: the masks keep every access inside the bounds `copy_2d` checked.
            unsafe {
                let v = if cs == 1 {
                    _mm512_maskz_loadu_ps(lanes(n), src.as_ptr().add(base + c))
                } else {
                    // Stride 2: the next 2n − 1 source values, even lanes kept.
                    let p = src.as_ptr().add(base + 2 * c);
                    let avail = src.len() - (base + 2 * c);
                    let lo = _mm512_maskz_loadu_ps(lanes(avail.min(2 * n - 1)), p);
                    let hi = _mm512_maskz_loadu_ps(lanes(avail.min(2 * n - 1).saturating_sub(16)), p.add(16));
                    _mm512_permutex2var_ps(lo, even, hi)
                };
                _mm512_mask_storeu_ps(d.add(c), lanes(n), v);
            }
            c += n;
        }
    }
}

/// `dst[r·rs + c·cs] += src[r·cols + c]`: the adjoint of [`copy_2d`] (col2im's rows).
pub fn add_2d(dst: &mut [f32], src: &[f32], rows: usize, cols: usize, rs: usize, cs: usize) {
    if rows == 0 || cols == 0 {
        return;
    }
    assert!(src.len() >= rows * cols, "add_2d: source too short");
    assert!(dst.len() > (rows - 1) * rs + (cols - 1) * cs, "add_2d: destination too short");
    #[cfg(target_arch = "x86_64")]
    if crate::sgemm::available() && cs == 1 {
        // SAFETY: AVX-512F is available; the bounds are checked above.
        unsafe { add_rows_avx512(dst, src, rows, cols, rs) };
        return;
    }
    for (r, s) in src[..rows * cols].chunks_exact(cols).enumerate() {
        for (c, v) in s.iter().enumerate() {
            dst[r * rs + c * cs] += v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_rows_avx512(dst: &mut [f32], src: &[f32], rows: usize, cols: usize, rs: usize) {
    use std::arch::x86_64::*;
    for r in 0..rows {
        let mut c = 0;
        while c < cols {
            let n = (cols - c).min(16);
            let m = crate::sgemm::lanes(n);
            // SAFETY: the mask keeps every access inside the bounds `add_2d` checked.
            unsafe {
                let d = dst.as_mut_ptr().add(r * rs + c);
                let v = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(m, d),
                    _mm512_maskz_loadu_ps(m, src.as_ptr().add(r * cols + c)),
                );
                _mm512_mask_storeu_ps(d, m, v);
            }
            c += n;
        }
    }
}

/// Sum of a slice with 8 independent lanes (vectorizes; a plain `iter().sum()` cannot).
pub fn sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// `Σ (a − ca)·(b − cb)` with 8 lanes.
pub fn dot_centered(a: &[f32], ca: f32, b: &[f32], cb: f32) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| (x - ca) * (y - cb)).sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += (x[i] - ca) * (y[i] - cb);
        }
    }
    acc.iter().sum::<f32>() + rest
}
