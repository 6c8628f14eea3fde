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
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn cols(data: &[f32], ld: usize) -> Self {
        Self { ptr: data.as_ptr(), rs: 1, cs: ld as isize }
    }
}

/// The left operand of [`gemm()`]: a matrix, optionally packed once up front for reuse.
pub struct Lhs {
    pub raw: Mat,
    packed: Option<Vec<f32>>,
}

impl Lhs {
    /// An operand packed by each GEMM that uses it.
    pub fn new(raw: Mat) -> Self {
        Self { raw, packed: None }
    }
    /// An `m×k` operand packed now, for many GEMMs (when the AVX-512 kernel runs).
    pub fn prepacked(raw: Mat, m: usize, k: usize) -> Self {
        let packed = crate::sgemm::available().then(|| crate::sgemm::pack_a_full(raw, m, k));
        Self { raw, packed }
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
        // Columns per thread, in whole micro-panels.
        let parts = ranges(n, threads.min(n.div_ceil(crate::sgemm::NR)), crate::sgemm::NR);
        let run = |r: &std::ops::Range<usize>| {
            let b = b.skip_cols(r.start);
            // SAFETY: `dst` is checked above; each part writes its own columns `r`; the
            // operands are valid for the shapes given (the caller's contract).
            unsafe {
                crate::sgemm::sgemm(m, r.len(), k, dst_ptr.get().add(r.start), ldd, a, packed, b, accumulate)
            }
        };
        if parts.len() > 1 {
            parts.par_iter().for_each(run);
        } else {
            parts.iter().for_each(run);
        }
        return;
    }
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
/// call per run (which costs more than the copy for a 3- or 12-float row).
#[inline]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    if dst.len() >= 64 {
        dst.copy_from_slice(src);
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
