//! GFLOP/s of the kernels' GEMM (`gemm::gemm`: our AVX-512 SGEMM, or the `gemm` crate without
//! AVX-512) on square and convolution-shaped problems, 1 and 2 threads, and of the weight-gradient
//! form `A·Bᵀ`: `cargo run --release -p cnnzoo-kernels --example gemm_probe`.
use cnnzoo_kernels::gemm::{self, Lhs};
use cnnzoo_kernels::view::Mat;
use std::time::Instant;

fn main() {
    for &(m, n, k) in &[
        (1024, 1024, 1024),
        (64, 576, 576),
        (64, 1152, 576),
        (128, 1024, 1152),
        (512, 144, 4608),
        (64, 576, 2304),
    ] {
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; k * n];
        let mut c = vec![0.0f32; m * n];
        for threads in [1usize, 2] {
            let mut best = f64::MAX;
            for _ in 0..10 {
                let t = Instant::now();
                gemm::gemm(m, n, k, &mut c, n, &Lhs::new(Mat::rows(&a, k)), Mat::rows(&b, n), false, threads);
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!("{m}x{n}x{k} threads {threads}: {:.1} GFLOP/s", 2.0 * (m * n * k) as f64 / best / 1e9);
        }
    }
    // The weight-gradient form: C[m×n] += A[m×k]·B[n×k]ᵀ, both row-major.
    for &(m, n, k) in &[(64, 576, 1152), (128, 1152, 1152), (96, 121, 2916), (512, 4608, 144)] {
        let a = vec![1.0f32; m * k];
        let b = vec![1.0f32; n * k];
        let mut c = vec![0.0f32; m * n];
        let mut best = f64::MAX;
        for _ in 0..10 {
            let t = Instant::now();
            gemm::gemm_nt(m, n, k, &mut c, n, &a, k, &b, k, true);
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("nt {m}x{n}x{k} threads 1: {:.1} GFLOP/s", 2.0 * (m * n * k) as f64 / best / 1e9);
    }
}
