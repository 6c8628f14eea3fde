//! The portable paths — what a CPU without AVX2 (ARM, older x86) runs: the `gemm` crate under
//! every GEMM, explicit im2col columns, Winograd weights kept unpacked — against Burn's ops,
//! values and gradients. `CNNZOO_NO_AVX2=1` selects them; it is read once per process, so this
//! is its own test binary with one test. (The AVX2 paths are what the other tests run on an
//! AVX2-only CPU, and under `CNNZOO_NO_AVX512=1` on an AVX-512 one.)

use burn::tensor::module as reference;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo_kernels as k;

fn tensor<const D: usize>(shape: [usize; D], seed: u32, dev: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

#[track_caller]
fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g: Vec<f32> = got.into_data().try_to_vec().expect("f32");
    let w: Vec<f32> = want.into_data().try_to_vec().expect("f32");
    let scale = w.iter().fold(1f32, |m, v| m.max(v.abs()));
    let err = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-4 * scale, "{what}: max |Δ| {err} > 1e-4 × {scale}");
}

#[test]
fn portable_paths_match_burn() {
    // SAFETY: set before any kernel runs, and no other test in this binary reads the environment.
    unsafe { std::env::set_var("CNNZOO_NO_AVX2", "1") };
    assert!(!k::sgemm::available(), "the switch turns the AVX-512 and AVX2 paths off");
    assert!(!k::cpu::avx2() && !k::cpu::avx512(), "the switch turns every vectorized tier off");
    let dev = Device::flex().autodiff();
    // (n, ci, hw, co, k, stride, pad): 5×5 padded, stride 2, 1×1, and two 3×3 stride-1 shapes
    // (the first with enough tiles for the Winograd path, the second without).
    let mut winograd_layers = 0;
    for (n, ci, hw, co, kk, s, p) in [
        (2, 3, 11, 5, 5, 1, 2),
        (2, 4, 12, 6, 3, 2, 1),
        (3, 8, 5, 4, 1, 1, 0),
        (4, 16, 16, 16, 3, 1, 1),
        (2, 20, 9, 24, 3, 1, 2),
    ] {
        let opts = ConvOptions::new([s, s], [p, p], [1, 1], 1);
        let x = tensor([n, ci, hw, hw], 1, &dev);
        let w = tensor([co, ci, kk, kk], 2, &dev);
        let b = tensor([co], 3, &dev);
        let what = format!("conv n{n} ci{ci} {hw}² co{co} k{kk} s{s} p{p}");
        let run = |f: fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>| {
            let (xl, wl, bl) = (x.clone().require_grad(), w.clone().require_grad(), b.clone().require_grad());
            let y = f(xl.clone(), wl.clone(), Some(bl.clone()), opts.clone());
            let r = tensor(y.dims(), 4, &dev);
            let grads = (y.clone() * r).sum().backward();
            (
                y.inner(),
                xl.grad(&grads).expect("dx"),
                wl.grad(&grads).expect("dw"),
                bl.grad(&grads).expect("db"),
            )
        };
        let before = k::kernel_calls();
        let (y, dx, dw, db) = run(k::conv2d);
        assert!(k::kernel_calls() > before, "{what}: ran on our kernel");
        let (yr, dxr, dwr, dbr) = run(reference::conv2d);
        assert_close(y, yr, &format!("{what} forward"));
        assert_close(dx, dxr, &format!("{what} dx"));
        assert_close(dw, dwr, &format!("{what} dw"));
        assert_close(db, dbr, &format!("{what} db"));
        // Inference twice. On this path only the Winograd layers prepare (transform) their
        // weights, kept by the first call and reused by the second; the others use the weights
        // as they are and keep nothing.
        let geo = k::geom::Geom::new([n, ci, hw, hw], [co, ci, kk, kk], [s, s], [p, p], [1, 1], 1)
            .expect("geometry");
        let keeps = k::winograd::eligible(&geo) && !k::conv::im2col_only();
        winograd_layers += usize::from(k::winograd::eligible(&geo));
        let kept = k::cache::stats().0;
        let plain = Device::flex();
        let (xp, wp) = (
            Tensor::<4>::from_data(x.clone().into_data(), &plain),
            Tensor::<4>::from_data(w.clone().into_data(), &plain),
        );
        let want = reference::conv2d(xp.clone(), wp.clone(), None, opts.clone());
        for _ in 0..2 {
            assert_close(
                k::conv2d(xp.clone(), wp.clone(), None, opts.clone()),
                want.clone(),
                &format!("{what} inference"),
            );
        }
        assert_eq!(k::cache::stats().0, kept + usize::from(keeps), "{what}: weights kept");
    }
    assert_eq!(winograd_layers, 1, "one shape takes the Winograd path");
    // Linear (three GEMMs on the `gemm` crate).
    let x = tensor([5, 7], 5, &dev).require_grad();
    let w = tensor([7, 3], 6, &dev).require_grad();
    let y = k::linear(x.clone(), w.clone(), None);
    let yr = x.clone().matmul(w.clone());
    assert_close(y.clone().inner(), yr.inner(), "linear");
    let grads = y.sum().backward();
    let (dx, dw) = (x.grad(&grads).expect("dx"), w.grad(&grads).expect("dw"));
    assert_close(
        dx,
        Tensor::<2>::ones([5, 3], &Device::flex()).matmul(w.clone().inner().transpose()),
        "linear dx",
    );
    assert_close(dw, x.inner().transpose().matmul(Tensor::<2>::ones([5, 3], &Device::flex())), "linear dw");
}
