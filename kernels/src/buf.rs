//! Buffer helpers shared by the kernels: contiguous `f32` views of flex tensors, wrapping
//! result vectors back into tensors without a copy, scratch space, splitting work across
//! threads, and two vectorizable reductions.

use burn::backend::flex::FlexTensor;
use burn::tensor::TensorData;

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
