//! Prepared weights kept between inference calls: the second call reuses them, and other
//! weights (or the same shapes with new values) never see a stale preparation. Its own test
//! binary, because the cache is process-wide.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo_kernels as k;

fn tensor(shape: [usize; 4], seed: u32, dev: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), dev)
}

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

// One test function: the cache and its statistics are process-wide, so the checks must not run
// side by side.
#[test]
fn inference_keeps_prepared_weights_training_does_not() {
    inference_reuses_prepared_weights_and_never_goes_stale();
    training_does_not_fill_the_cache();
    bypass_keeps_nothing_directly_and_on_the_pool();
}

/// An im2col layer (5×5) and a Winograd layer (3×3 stride 1, 16 channels, 4 images: 256 tiles).
const LAYERS: [([usize; 4], [usize; 4], usize); 2] =
    [([2, 3, 12, 12], [8, 3, 5, 5], 2), ([4, 16, 16, 16], [16, 16, 3, 3], 1)];

fn geom(xs: [usize; 4], ws: [usize; 4], pad: usize) -> k::geom::Geom {
    k::geom::Geom::new(xs, ws, [1, 1], [pad, pad], [1, 1], 1).expect("valid convolution")
}

/// Whether inference keeps prepared weights for this layer on this machine. The Winograd path
/// keeps its transformed weights everywhere; the implicit GEMM keeps its packed weights only
/// where the AVX-512 kernel packs them — the portable path (the `gemm` crate) reads the weights
/// as they are, so there is nothing to keep.
fn prepares(geo: &k::geom::Geom) -> bool {
    (k::winograd::eligible(geo) && !k::conv::im2col_only()) || k::sgemm::available()
}

fn inference_reuses_prepared_weights_and_never_goes_stale() {
    let dev = Device::flex();
    assert!(
        k::winograd::eligible(&geom(LAYERS[1].0, LAYERS[1].1, LAYERS[1].2)),
        "the second layer is Winograd's"
    );
    assert!(!k::winograd::eligible(&geom(LAYERS[0].0, LAYERS[0].1, LAYERS[0].2)));
    for (xs, ws, pad) in LAYERS {
        k::cache::clear();
        let keeps = prepares(&geom(xs, ws, pad));
        // Entries after 1, 2 calls with the same weights and a third with other weights.
        let expect = |n: usize| if keeps { n } else { 0 };
        let opts = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let x = tensor(xs, 1, &dev);
        let w1 = tensor(ws, 2, &dev);
        let w2 = tensor(ws, 3, &dev);
        let reference = |w: &Tensor<4>| {
            k::set_reference_kernels(true);
            let y = k::conv2d(x.clone(), w.clone(), None, opts.clone());
            k::set_reference_kernels(false);
            y
        };
        let (r1, r2) = (reference(&w1), reference(&w2));

        let calls = k::kernel_calls();
        let y1 = k::conv2d(x.clone(), w1.clone(), None, opts.clone());
        assert!(k::kernel_calls() > calls, "{ws:?}: ran on our kernel");
        assert_eq!(k::cache::stats().0, expect(1), "{ws:?}: the first call keeps its prepared weights");
        let again = k::conv2d(x.clone(), w1.clone(), None, opts.clone());
        assert_eq!(k::cache::stats().0, expect(1), "{ws:?}: the second call finds them");
        let y2 = k::conv2d(x.clone(), w2.clone(), None, opts.clone());
        assert_eq!(k::cache::stats().0, expect(2), "{ws:?}: other weights get their own entry");
        assert!(max_diff(y1.clone(), r1.clone()) < 1e-4);
        assert!(max_diff(again, r1.clone()) < 1e-4);
        assert!(max_diff(y2, r2.clone()) < 1e-4, "no stale weights for {ws:?}");

        // New values in a fresh tensor of the same shape, after the old one is gone.
        drop(w1);
        let w3 = tensor(ws, 4, &dev);
        let r3 = reference(&w3);
        assert!(max_diff(k::conv2d(x.clone(), w3, None, opts.clone()), r3) < 1e-4);
        let (entries, bytes) = k::cache::stats();
        if keeps {
            assert!(entries >= 2 && bytes > 0, "{ws:?}: entries hold prepared bytes ({entries}, {bytes})");
        } else {
            assert_eq!((entries, bytes), (0, 0), "{ws:?}: nothing prepared, nothing kept");
        }
        k::cache::clear();
        assert_eq!(k::cache::stats(), (0, 0));
    }
}

fn training_does_not_fill_the_cache() {
    // Both layers, on an autodiff device: the Winograd one would be kept in inference on every
    // path (see `inference_reuses_prepared_weights_and_never_goes_stale`).
    let dev = Device::flex().autodiff();
    for (i, (xs, ws, pad)) in LAYERS.into_iter().enumerate() {
        let x = tensor(xs, 5, &dev);
        let w = tensor(ws, 6 + i as u32, &dev).require_grad();
        let before = k::cache::stats().0;
        let y = k::conv2d(x, w.clone(), None, ConvOptions::new([1, 1], [pad, pad], [1, 1], 1));
        let grads = y.sum().backward();
        assert!(w.grad(&grads).is_some());
        assert_eq!(k::cache::stats().0, before, "{ws:?}: tracked weights change every step: not cached");
    }
}

fn bypass_keeps_nothing_directly_and_on_the_pool() {
    let dev = Device::flex();
    // The Winograd layer: kept in inference on every path (unless `CNNZOO_CONV=im2col` on a CPU
    // without AVX-512, where nothing is ever kept and these checks hold trivially).
    let (xs, ws, pad) = LAYERS[1];
    let keeps = prepares(&geom(xs, ws, pad));
    let opts = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
    let (x, w, w2) = (tensor(xs, 7, &dev), tensor(ws, 8, &dev), tensor(ws, 9, &dev));
    k::set_reference_kernels(true);
    let (want, want2) = (
        k::conv2d(x.clone(), w.clone(), None, opts.clone()),
        k::conv2d(x.clone(), w2.clone(), None, opts.clone()),
    );
    k::set_reference_kernels(false);
    let conv = {
        let (x, opts) = (x.clone(), opts.clone());
        move |w: &Tensor<4>| k::conv2d(x.clone(), w.clone(), None, opts.clone())
    };
    k::cache::clear();

    let y = k::cache::bypass(|| conv(&w));
    assert_eq!(k::cache::stats(), (0, 0), "a forward under `bypass` keeps nothing");
    assert!(max_diff(y, want.clone()) < 1e-4, "bypassed forward");
    let y = k::cache::bypass(|| {
        assert!(k::cache::bypassed());
        let (conv, w) = (conv.clone(), w.clone());
        k::on_pool(move || conv(&w))
    });
    assert_eq!(k::cache::stats(), (0, 0), "nor one run on the kernels' pool inside `bypass`");
    assert!(max_diff(y, want.clone()) < 1e-4, "bypassed forward on the pool");
    assert!(!k::cache::bypassed(), "the setting ends with `bypass`");

    // The same forward on the pool without the bypass keeps its weights (so the checks above
    // could fail); inside `bypass` a kept entry may serve, but other weights are not added.
    let y = {
        let (conv, w) = (conv.clone(), w.clone());
        k::on_pool(move || conv(&w))
    };
    assert_eq!(
        k::cache::stats().0,
        usize::from(keeps),
        "outside `bypass` the pool's forward keeps its weights"
    );
    assert!(max_diff(y, want.clone()) < 1e-4);
    let kept = k::cache::stats();
    let (y, y2) = k::cache::bypass(|| (conv(&w), conv(&w2)));
    assert_eq!(k::cache::stats(), kept, "nothing added under `bypass`");
    assert!(max_diff(y, want) < 1e-4 && max_diff(y2, want2) < 1e-4, "kept and fresh weights under `bypass`");
    k::cache::clear();
}
