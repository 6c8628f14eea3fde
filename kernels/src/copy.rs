//! Short strided copies for im2col and friends: `copy_short` (one run), `copy_2d` (a window of
//! a plane into a dense block) and its adjoint `add_2d`, with masked AVX-512 paths; the 8×8
//! in-register transpose and the lane masks of the AVX2 packing, gathering and dot-product loops.

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
    if crate::cpu::avx512() {
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
    if crate::cpu::avx512() && cs <= 2 {
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
    use crate::cpu::lanes;
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
                    // `p + 16` may lie past `src` (then the mask is empty): `wrapping_add`.
                    let hi = _mm512_maskz_loadu_ps(
                        lanes(avail.min(2 * n - 1).saturating_sub(16)),
                        p.wrapping_add(16),
                    );
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
    if crate::cpu::avx512() && cs == 1 {
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
            let m = crate::cpu::lanes(n);
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

/// The 8×8 transpose of eight 8-lane registers: lane `j` of row `i` of the result is lane `i` of
/// `r[j]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ]
}

/// The lane mask of the first `min(n, 8)` lanes of an 8-lane register (all bits set in each).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn mask8(n: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    let n = n.min(8) as i32;
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}
