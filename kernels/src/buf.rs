//! Buffer helpers shared by the kernels: contiguous `f32` views of flex tensors, wrapping
//! result vectors back into tensors without a copy, scratch space, splitting work across
//! threads, and two vectorizable reductions.

use std::mem::MaybeUninit;

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

/// A zeroed `f32` buffer (fresh large blocks come zeroed from the OS, so this costs no pass;
/// recycled ones cost one `memset`). The GEMM destinations start from it: their kernels write
/// through `&mut [f32]`, and a pass over the output is a few percent of a GEMM's work;
/// elementwise kernels write uninitialised memory instead ([`par_init`]).
pub fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// Writes the values of `src` into every element of `dst`, in order, and returns `dst` as the
/// initialised floats it now is.
///
/// # Panics
/// If `src` has fewer values than `dst` has elements (extra values are ignored).
#[inline(always)]
pub fn write_all(dst: &mut [MaybeUninit<f32>], src: impl IntoIterator<Item = f32>) -> &mut [f32] {
    let mut written = 0;
    for (d, v) in dst.iter_mut().zip(src) {
        d.write(v);
        written += 1;
    }
    assert_eq!(written, dst.len(), "write_all: source shorter than destination");
    // SAFETY: all `dst.len()` elements were written just above, and `MaybeUninit<f32>` has the
    // layout of `f32`.
    unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Initialises an uninitialised buffer front to back, one segment at a time: each segment is
/// written in full ([`write_all`]) before the next, so the buffer's front up to the cursor is
/// always initialised, and [`Filler::finish`] hands it all back once the cursor is at its end.
pub struct Filler<'a> {
    buf: &'a mut [MaybeUninit<f32>],
    done: usize,
}

impl<'a> Filler<'a> {
    pub fn new(buf: &'a mut [MaybeUninit<f32>]) -> Self {
        Self { buf, done: 0 }
    }
    /// Writes the next `n` elements from `src` and returns them (to be updated in place).
    ///
    /// # Panics
    /// If fewer than `n` elements are left, or `src` has fewer than `n` values.
    pub fn next(&mut self, n: usize, src: impl IntoIterator<Item = f32>) -> &mut [f32] {
        let seg = &mut self.buf[self.done..self.done + n];
        let seg = write_all(seg, src);
        self.done += n;
        seg
    }
    /// The whole buffer, initialised.
    ///
    /// # Panics
    /// If the cursor is not at its end.
    pub fn finish(self) -> &'a mut [f32] {
        assert_eq!(self.done, self.buf.len(), "Filler: buffer not filled");
        // SAFETY: elements `0..done` were each written by a completed `next` (a `next` that
        // panics does not advance the cursor), and `done` is the whole length.
        unsafe { &mut *(self.buf as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }
}

/// A vector of `n` floats initialised in parallel without zeroing them first: `f(i, piece)`
/// gets piece `i` of `block` elements (the last may be shorter; at least `min_len` pieces per
/// task) and must return that same piece initialised — from [`write_all`] or
/// [`Filler::finish`] (a `&mut [f32]` of that place and length can only exist once it is).
///
/// # Panics
/// If `f` returns anything but its piece (or panics itself).
pub fn par_init<F>(n: usize, block: usize, min_len: usize, f: F) -> Vec<f32>
where
    F: for<'a> Fn(usize, &'a mut [MaybeUninit<f32>]) -> &'a mut [f32] + Sync,
{
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(block.max(1))
        .enumerate()
        .with_min_len(min_len.max(1))
        .for_each(|(i, piece)| {
            let (ptr, len) = (piece.as_ptr().cast::<f32>(), piece.len());
            let done = f(i, piece);
            assert!(
                std::ptr::eq(done.as_ptr(), ptr) && done.len() == len,
                "par_init: piece {i} not returned"
            );
        });
    // SAFETY: the pieces partition the first `n` elements, and each was returned as a
    // `&mut [f32]` of its own place and length (checked above) — a reference safe code can only
    // hold to initialised floats — so all `n` elements are initialised.
    unsafe { v.set_len(n) };
    v
}

/// `f` itself, typed as the piece writer [`par_init`] and [`seq_init`] take (for a closure kept
/// in a variable, whose signature would otherwise not be inferred as one).
pub fn piece_fn<F>(f: F) -> F
where
    F: for<'a> Fn(usize, &'a mut [MaybeUninit<f32>]) -> &'a mut [f32],
{
    f
}

/// [`par_init`] on this thread, pieces in order.
///
/// # Panics
/// As [`par_init`].
pub fn seq_init<F>(n: usize, block: usize, f: F) -> Vec<f32>
where
    F: for<'a> Fn(usize, &'a mut [MaybeUninit<f32>]) -> &'a mut [f32],
{
    let mut v = Vec::with_capacity(n);
    for (i, piece) in v.spare_capacity_mut()[..n].chunks_mut(block.max(1)).enumerate() {
        let (ptr, len) = (piece.as_ptr().cast::<f32>(), piece.len());
        let done = f(i, piece);
        assert!(std::ptr::eq(done.as_ptr(), ptr) && done.len() == len, "seq_init: piece {i} not returned");
    }
    // SAFETY: as in `par_init`.
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

thread_local! {
    /// Vectors lent out by [`with_scratch`], most recently returned last.
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Calls `f` with `n` floats of this thread's scratch space and returns its result. The floats
/// hold whatever an earlier user left (`f` must write before it reads), so a temporary costs
/// neither an allocation nor a `memset` once the thread has lent one that large. Calls may nest:
/// each level borrows its own vector, the smallest one that holds `n` (else the largest, which
/// grows), so a thread keeps about one vector per nesting level.
pub fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = take_scratch(n);
    let r = f(scratch(&mut v, n));
    SCRATCH.with(|s| s.borrow_mut().push(v));
    r
}

/// The vector [`with_scratch`] lends for `n` floats (not yet grown to `n`).
fn take_scratch(n: usize) -> Vec<f32> {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let fits = (0..s.len()).filter(|&i| s[i].len() >= n).min_by_key(|&i| s[i].len());
        let pick = fits.or_else(|| (0..s.len()).max_by_key(|&i| s[i].len()));
        pick.map(|i| s.swap_remove(i)).unwrap_or_default()
    })
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
pub fn split_mut<T>(mut data: &mut [T], lens: impl IntoIterator<Item = usize>) -> Vec<&mut [T]> {
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

/// Sum of a slice in `f64`, with 8 independent lanes (vectorizes). For sums that cancel to
/// nearly nothing (a convolution's bias gradient ahead of a batch norm is zero but for rounding)
/// `f32` lanes would leave rounding errors larger than the result.
pub fn sum_f64(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] as f64;
        }
    }
    acc.iter().sum::<f64>() + rest
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_scratch_is_disjoint_and_reused() {
        let outer = with_scratch(1000, |a| {
            assert_eq!(a.len(), 1000);
            a.fill(1.0);
            with_scratch(10, |b| {
                assert_eq!(b.len(), 10);
                b.fill(2.0);
            });
            // The inner call had a vector of its own: the outer one is untouched.
            assert!(a.iter().all(|&v| v == 1.0));
            a.as_ptr() as usize
        });
        // The next call of that size gets the same vector back (no allocation), holding what
        // the last user left.
        with_scratch(1000, |a| {
            assert_eq!(a.as_ptr() as usize, outer);
            assert!(a.iter().all(|&v| v == 1.0));
        });
        // A small request takes the smallest vector that holds it, not the large one.
        with_scratch(8, |b| assert_ne!(b.as_ptr() as usize, outer));
        SCRATCH.with(|s| assert_eq!(s.borrow().len(), 2));
    }
}
