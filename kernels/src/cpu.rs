//! CPU feature detection: which vectorized paths this machine runs, decided once per process.

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

/// Whether this CPU runs the AVX-512 GEMM kernel (the `sgemm` module) and the kernels' other AVX-512
/// paths. `CNNZOO_NO_AVX512=1` turns them off — the portable paths (the `gemm` crate, im2col)
/// then run, as on a CPU without AVX-512 (for comparison, and for the tests of those paths).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| {
            let off = std::env::var("CNNZOO_NO_AVX512").is_ok_and(|v| !v.is_empty() && v != "0");
            !off && std::arch::is_x86_feature_detected!("avx512f")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The mask of the first `min(n, 16)` lanes of a 16-lane register.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn lanes(n: usize) -> std::arch::x86_64::__mmask16 {
    if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 }
}
