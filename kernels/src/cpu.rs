//! CPU feature detection: which vectorized paths this machine runs, decided once per process.
//!
//! Three tiers: AVX-512 (the 12×32 GEMM micro-kernel and masked copies), AVX2 + FMA (the 6×16
//! micro-kernel; the elementwise loops' AVX2 copies) and portable (the `gemm` crate, explicit
//! im2col, plain loops: ARM, older x86). Two switches step down for comparison and for the
//! tests of each tier on one machine: `CNNZOO_NO_AVX512=1` (an AVX-512 machine runs what an
//! AVX2-only laptop runs) and `CNNZOO_NO_AVX2=1` (the portable paths, which also implies no
//! AVX-512).

/// Whether environment variable `name` is set to something other than empty or `0`.
fn switched_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether the CPU has AVX2 and FMA and `CNNZOO_NO_AVX2` is not set: the AVX2 GEMM kernel
/// (the `sgemm` module, where AVX-512 is off) and the AVX2 copies of the elementwise loops run.
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            !switched_on("CNNZOO_NO_AVX2")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether this CPU runs the AVX-512 GEMM kernel (the `sgemm` module) and the kernels' other
/// AVX-512 paths. `CNNZOO_NO_AVX512=1` turns them off (the AVX2 paths then run, as on a CPU
/// without AVX-512), and so does `CNNZOO_NO_AVX2=1`.
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX512: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX512.get_or_init(|| {
            // The AVX-512 paths also use AVX2 + FMA instructions (every AVX-512 CPU has them).
            !switched_on("CNNZOO_NO_AVX512") && avx2() && std::arch::is_x86_feature_detected!("avx512f")
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
