//! Read-only views of matrix operands for the GEMMs: a strided matrix ([`Mat`]), a
//! convolution's implicit column matrix ([`ConvCols`]) and the right operand that is either
//! ([`Rhs`]). Each borrows the slice it reads, and knows its extent, so the GEMM entry points
//! check every operand against the shape asked for before the kernels read it unchecked.

/// A strided matrix operand over a borrowed slice: element (i, j) at `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with leading dimension `ld`.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: ld, cs: 1 }
    }
    /// The transpose of a row-major matrix with leading dimension `ld`.
    pub fn cols(data: &'a [f32], ld: usize) -> Self {
        Self { data, rs: 1, cs: ld }
    }
    /// The same matrix without its first `j` columns (empty data if they are all there is).
    pub fn skip_cols(self, j: usize) -> Self {
        self.skip(j.saturating_mul(self.cs))
    }
    /// The same matrix without its first `i` rows (empty data if they are all there is).
    pub fn skip_rows(self, i: usize) -> Self {
        self.skip(i.saturating_mul(self.rs))
    }
    fn skip(self, off: usize) -> Self {
        Self { data: self.data.get(off..).unwrap_or(&[]), ..self }
    }
    /// Whether every element `(i, j)` with `i < m`, `j < n` lies in the borrowed data.
    pub fn covers(&self, m: usize, n: usize) -> bool {
        if m == 0 || n == 0 {
            return true;
        }
        let last = (m - 1).checked_mul(self.rs).and_then(|r| (n - 1).checked_mul(self.cs)?.checked_add(r));
        last.is_some_and(|l| l < self.data.len())
    }
    /// Row stride.
    pub fn rs(&self) -> usize {
        self.rs
    }
    /// Column stride.
    pub fn cs(&self) -> usize {
        self.cs
    }
    /// Start of the data (element (0, 0) when the matrix is not empty).
    pub(crate) fn ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }
}

/// The column matrix of a convolution, never materialized: element `(p, j)` — kernel tap
/// `p = (c, ki, kj)`, output pixel `j` of the chunk — is read from the (zero-bordered) input
/// planes when B is packed, so a convolution's forward GEMM skips im2col's write and re-read
/// of a `K × pixels` matrix (the largest memory stream when the output channels are few).
#[derive(Clone, Copy, Debug)]
pub struct ConvCols<'a> {
    data: &'a [f32],
    /// Floats between images, channel planes and input rows.
    img: usize,
    plane: usize,
    row: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    dil: [usize; 2],
    ho: usize,
    wo: usize,
    /// Kernel taps (`cin·kh·kw`) and output pixels (`images·ho·wo`) the view was checked for.
    taps: usize,
    pixels: usize,
    /// First column (a thread's share starts here).
    j0: usize,
}

impl<'a> ConvCols<'a> {
    /// The column matrix (`cin·kh·kw` rows, `images·ho·wo` columns) of `images` images laid
    /// out in `src` with the given strides (already padded: tap `(ki, kj)` of output `(oh, ow)`
    /// reads row `oh·s + ki·d`, column `ow·s + kj·d`). `None` if some element would lie outside
    /// `src` or an offset would not fit the gathers' 32-bit indices. Serves as [`Rhs::Conv`]
    /// and as its transpose [`Rhs::ConvT`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src: &'a [f32],
        images: usize,
        cin: usize,
        [img, plane, row]: [usize; 3],
        [kh, kw]: [usize; 2],
        stride: [usize; 2],
        dil: [usize; 2],
        [ho, wo]: [usize; 2],
    ) -> Option<Self> {
        if images == 0 || cin == 0 || kh == 0 || kw == 0 || ho == 0 || wo == 0 {
            return None;
        }
        let taps = cin.checked_mul(kh)?.checked_mul(kw)?;
        let pixels = images.checked_mul(ho)?.checked_mul(wo)?;
        // The largest offsets (every index at its maximum), computed without overflow; every
        // other tap or pixel offset is smaller, term by term.
        let sum = |terms: [(usize, usize); 3]| {
            terms.iter().try_fold(0usize, |acc, &(i, s)| i.checked_mul(s).and_then(|v| acc.checked_add(v)))
        };
        let last_tap = sum([(cin - 1, plane), ((kh - 1).checked_mul(dil[0])?, row), (kw - 1, dil[1])])?;
        let last_pix =
            sum([(images - 1, img), ((ho - 1).checked_mul(stride[0])?, row), (wo - 1, stride[1])])?;
        let fits = last_pix.max(last_tap) < i32::MAX as usize;
        let inside = last_pix.checked_add(last_tap).is_some_and(|l| l < src.len());
        let c = Self { data: src, img, plane, row, kh, kw, stride, dil, ho, wo, taps, pixels, j0: 0 };
        (inside && fits).then_some(c)
    }
    /// Source offset of kernel tap `p = (c, ki, kj)` (the oracle of [`Self::tap_offs`]).
    #[cfg(test)]
    fn tap_off(&self, p: usize) -> usize {
        let (c, ki, kj) = (p / (self.kh * self.kw), (p / self.kw) % self.kh, p % self.kw);
        c * self.plane + ki * self.dil[0] * self.row + kj * self.dil[1]
    }
    /// Source offset of output pixel `j` of the chunk (image, row, column; the oracle of
    /// [`Self::pix_offs`]).
    #[cfg(test)]
    fn pix_off(&self, j: usize) -> usize {
        let pix = self.ho * self.wo;
        let (i, q) = (j / pix, j % pix);
        i * self.img + (q / self.wo) * self.stride[0] * self.row + (q % self.wo) * self.stride[1]
    }
    /// Source offsets of kernel taps `p0, p0 + 1, …`, tap `p = (c, ki, kj)` at
    /// `c·plane + ki·dil·row + kj·dil` (stepped, without dividing for each).
    pub(crate) fn tap_offs(&self, p0: usize) -> impl Iterator<Item = usize> + '_ {
        let (kk, kw) = (self.kh * self.kw, self.kw);
        Odometer::new([p0 / kk, (p0 / kw) % self.kh, p0 % kw], [self.kh, kw])
            .map(move |[c, ki, kj]| c * self.plane + ki * self.dil[0] * self.row + kj * self.dil[1])
    }
    /// Source offsets of output pixels `j, j + 1, …` of the chunk, pixel `(image, row, column)`
    /// at `image·img + row·stride·row + column·stride` (stepped, without dividing for each).
    pub(crate) fn pix_offs(&self, j: usize) -> impl Iterator<Item = usize> + '_ {
        let pix = self.ho * self.wo;
        let q = j % pix;
        Odometer::new([j / pix, q / self.wo, q % self.wo], [self.ho, self.wo])
            .map(move |[i, oy, ox]| i * self.img + oy * self.stride[0] * self.row + ox * self.stride[1])
    }
    /// First column of this view.
    pub(crate) fn j0(&self) -> usize {
        self.j0
    }
    /// Start of the source data.
    pub(crate) fn ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }
}

/// Mixed-radix digits `[a, b, c]` counting up from a start (`c` runs fastest, `b` and `c` wrap
/// at their extents), without end.
struct Odometer {
    at: [usize; 3],
    ext: [usize; 2],
}

impl Odometer {
    fn new(at: [usize; 3], ext: [usize; 2]) -> Self {
        Self { at, ext }
    }
}

impl Iterator for Odometer {
    type Item = [usize; 3];
    #[inline]
    fn next(&mut self) -> Option<[usize; 3]> {
        let cur = self.at;
        self.at[2] += 1;
        if self.at[2] == self.ext[1] {
            self.at[2] = 0;
            self.at[1] += 1;
            if self.at[1] == self.ext[0] {
                self.at[1] = 0;
                self.at[0] += 1;
            }
        }
        Some(cur)
    }
}

/// The right operand of the GEMMs: a strided matrix, a convolution's implicit column matrix
/// (`taps × pixels`, the forward GEMM), or its transpose (`pixels × taps`: the weight gradient
/// `dW = dy · colᵀ`).
#[derive(Clone, Copy, Debug)]
pub enum Rhs<'a> {
    Mat(Mat<'a>),
    Conv(ConvCols<'a>),
    ConvT(ConvCols<'a>),
}

impl<'a> Rhs<'a> {
    /// The same operand without its first `j` columns (pixels for `Conv`, taps for `ConvT`).
    pub fn skip_cols(self, j: usize) -> Self {
        match self {
            Rhs::Mat(m) => Rhs::Mat(m.skip_cols(j)),
            Rhs::Conv(c) => Rhs::Conv(ConvCols { j0: c.j0.saturating_add(j), ..c }),
            Rhs::ConvT(c) => Rhs::ConvT(ConvCols { j0: c.j0.saturating_add(j), ..c }),
        }
    }
    /// Whether the operand has every element of a `k × n` matrix (for the column-matrix views:
    /// `k` depth steps, and `n` columns after its first).
    pub fn covers(&self, k: usize, n: usize) -> bool {
        let within = |depth: usize, cols: usize| k <= depth && c_end(self, n).is_some_and(|e| e <= cols);
        match self {
            Rhs::Mat(m) => m.covers(k, n),
            Rhs::Conv(c) => within(c.taps, c.pixels),
            Rhs::ConvT(c) => within(c.pixels, c.taps),
        }
    }
}

/// One past the last column a `Conv`/`ConvT` view is asked for (`None` on overflow).
fn c_end(r: &Rhs, n: usize) -> Option<usize> {
    match r {
        Rhs::Mat(_) => Some(n),
        Rhs::Conv(c) | Rhs::ConvT(c) => c.j0.checked_add(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stepped_offsets_match_the_divided_ones() {
        let src = vec![0f32; 4000];
        // 2 images of 3 channels, 9×10 planes, 3×2 kernels, stride 2×1, dilation 1×2.
        let cc = ConvCols::new(&src, 2, 3, [3 * 90, 90, 10], [3, 2], [2, 1], [1, 2], [4, 8]).unwrap();
        for start in [0, 1, 5, 6, 17] {
            let taps: Vec<usize> = cc.tap_offs(start).take(18 - start).collect();
            assert_eq!(taps, (start..18).map(|p| cc.tap_off(p)).collect::<Vec<_>>(), "taps from {start}");
        }
        for start in [0, 7, 8, 31, 32, 63] {
            let pix: Vec<usize> = cc.pix_offs(start).take(64 - start).collect();
            assert_eq!(pix, (start..64).map(|j| cc.pix_off(j)).collect::<Vec<_>>(), "pixels from {start}");
        }
    }
}
