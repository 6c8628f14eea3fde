//! Every kernel against Burn's own op on the same inputs: forward values and the gradients of
//! every input, within 1e-4 (relative to the largest reference value, or absolute below 1).
//! Shapes cover odd sizes, strides, padding, dilation, groups, batch 1, large channel counts,
//! and chunks holding several images.

use burn::tensor::module as reference;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData, activation};
use cnnzoo_kernels as k;

const TOL: f32 = 1e-4;

/// Deterministic values in [-1, 1) (splitmix64), distinct with probability ~1.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(shape: [usize; D], seed: u64, dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values(shape.iter().product(), seed), shape), dev)
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[track_caller]
fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let (g, w) = (vec_of(got), vec_of(want));
    let scale = w.iter().fold(1f32, |m, v| m.max(v.abs()));
    let err = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= TOL * scale, "{what}: max |Δ| {err} > {TOL} × {scale}");
    assert!(g.iter().all(|v| v.is_finite()), "{what}: non-finite values");
}

fn ad() -> Device {
    Device::flex().autodiff()
}

/// Runs `f` on fresh leaves `inputs` (tracked), backpropagates `Σ f(..)·r` for a fixed random
/// `r`, and returns the output and each input's gradient.
fn run_with_grads<const D: usize, const O: usize>(
    inputs: &[Tensor<D>],
    f: impl Fn(&[Tensor<D>]) -> Tensor<O>,
) -> (Tensor<O>, Vec<Tensor<D>>) {
    let leaves: Vec<Tensor<D>> = inputs.iter().map(|t| t.clone().require_grad()).collect();
    let y = f(&leaves);
    let r = tensor(y.dims(), 991, &y.device());
    let grads = (y.clone() * r).sum().backward();
    // An input the output does not depend on (a conv's unused bias) gets zeros.
    let g = leaves.iter().map(|l| l.grad(&grads).unwrap_or_else(|| l.zeros_like().inner())).collect();
    (y.inner(), g)
}

#[derive(Debug, Clone, Copy)]
struct ConvCase {
    n: usize,
    ci: usize,
    hw: [usize; 2],
    co: usize,
    k: [usize; 2],
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
    bias: bool,
}

const fn conv(n: usize, ci: usize, hw: usize, co: usize, k: usize, stride: usize, pad: usize) -> ConvCase {
    ConvCase { n, ci, hw: [hw, hw], co, k: [k, k], stride, pad, dil: 1, groups: 1, bias: true }
}

type ConvFn = fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>;

fn conv_with(f: ConvFn, c: ConvCase, opts: ConvOptions<2>) -> impl Fn(&[Tensor<4>]) -> Tensor<4> {
    move |t| f(t[0].clone(), t[1].clone(), c.bias.then(|| t[2].clone().reshape([c.co])), opts.clone())
}

fn check_conv(c: ConvCase) {
    let dev = ad();
    let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [c.dil; 2], c.groups);
    let x = tensor([c.n, c.ci, c.hw[0], c.hw[1]], 1, &dev);
    let w = tensor([c.co, c.ci / c.groups, c.k[0], c.k[1]], 2, &dev);
    let b = tensor([c.co], 3, &dev);
    // Bias rides along as a 4-d leaf so that one helper handles all three gradients.
    let b4 = b.clone().reshape([1, 1, 1, c.co]);
    let inputs = [x.clone(), w.clone(), b4];
    let before = k::kernel_calls();
    let (y, g) = run_with_grads(&inputs, conv_with(k::conv2d, c, opts.clone()));
    assert!(k::kernel_calls() > before, "the conv ran on our kernel");
    let (y_ref, g_ref) = run_with_grads(&inputs, conv_with(reference::conv2d, c, opts.clone()));
    let what = format!("{c:?}");
    assert_close(y, y_ref, &format!("conv forward {what}"));
    assert_close(g[0].clone(), g_ref[0].clone(), &format!("conv dx {what}"));
    assert_close(g[1].clone(), g_ref[1].clone(), &format!("conv dw {what}"));
    if c.bias {
        assert_close(g[2].clone(), g_ref[2].clone(), &format!("conv db {what}"));
    }
    // Inference (plain flex) gives the same values as the autodiff path.
    let plain = Device::flex();
    let xp = Tensor::<4>::from_data(x.into_data(), &plain);
    let wp = Tensor::<4>::from_data(w.into_data(), &plain);
    let bp = c.bias.then(|| Tensor::<1>::from_data(b.into_data(), &plain));
    let yp = k::conv2d(xp.clone(), wp.clone(), bp.clone(), opts.clone());
    assert_close(yp, reference::conv2d(xp, wp, bp, opts), &format!("conv inference {what}"));
}

#[test]
fn conv2d_matches_burn_values_and_gradients() {
    let cases = [
        conv(2, 3, 9, 4, 3, 1, 1),                             // odd size, padded 3×3
        conv(1, 5, 11, 7, 3, 2, 1),                            // batch 1, stride 2
        conv(3, 4, 10, 6, 5, 1, 2),                            // 5×5, pad 2
        conv(2, 1, 28, 6, 5, 1, 2),                            // LeNet's first layer
        conv(2, 3, 23, 8, 11, 4, 1),                           // AlexNet-style stem
        conv(1, 4, 40, 8, 3, 1, 1), // 40-wide rows: panels within a row (plain loads) and across rows (gathers)
        conv(4, 8, 8, 16, 1, 1, 0), // 1×1 stride 1 (image is the column matrix)
        conv(3, 8, 9, 16, 1, 2, 0), // 1×1 stride 2 (ResNet shortcut)
        conv(9, 6, 3, 5, 3, 1, 1),  // 3×3 maps: several images per chunk
        conv(17, 4, 1, 3, 1, 1, 0), // 1×1 maps, many images per chunk, uneven split
        conv(6, 24, 6, 20, 1, 1, 0), // 1×1 on 6² maps: weight gradient by transposes across image seams
        conv(3, 40, 12, 24, 1, 1, 0), // 1×1 on 12² maps, several images per chunk
        conv(20, 40, 3, 24, 1, 1, 0), // 1×1 on 3² maps: every weight-gradient block of 8 pixels is two runs
        conv(16, 512, 6, 8, 1, 1, 0), // 1×1, 512 channels: the input gradient a few images at a time
        conv(16, 8, 6, 512, 1, 1, 0), // 1×1, 512 outputs: the forward a few images at a time
        conv(1, 96, 6, 160, 3, 1, 1), // large channel counts
        conv(3, 16, 7, 16, 3, 1, 1), // 3×3 stride 1 with too few tiles for Winograd
        conv(4, 16, 16, 16, 3, 1, 1), // Winograd F(4×4) (256 tiles of F(2×2))
        conv(2, 20, 23, 24, 3, 1, 2), // Winograd F(4×4), padding 2, odd size: clipped last tiles
        conv(80, 16, 4, 32, 3, 1, 1), // Winograd F(4×4) (one tile per 4² map), several images per chunk
        conv(32, 16, 6, 16, 3, 1, 1), // Winograd F(2×2) (a tie at 6²)
        conv(2, 32, 31, 17, 3, 1, 0), // Winograd F(4×4), no padding, odd channel count
        conv(1, 128, 24, 128, 3, 1, 1), // batch 1, enough work for Winograd F(4×4)
        conv(2, 40, 5, 70, 3, 1, 0), // no padding, K not a multiple of any tile
        ConvCase { k: [3, 1], ..conv(2, 3, 7, 5, 3, 1, 0) }, // non-square kernel
        ConvCase { hw: [7, 12], ..conv(2, 3, 7, 5, 3, 2, 1) }, // non-square input
        ConvCase { dil: 2, ..conv(2, 3, 11, 4, 3, 1, 2) }, // dilation
        ConvCase { groups: 2, ..conv(2, 4, 8, 6, 3, 1, 1) }, // groups
        ConvCase { bias: false, ..conv(3, 4, 6, 5, 3, 1, 1) }, // no bias
        ConvCase { bias: false, ..conv(3, 8, 6, 4, 1, 1, 0) }, // no bias, pointwise
    ];
    for c in cases {
        check_conv(c);
    }
}

#[test]
fn batch_norm_train_matches_burn() {
    let dev = ad();
    for (shape, eps) in
        [([4, 3, 5, 7], 1e-5), ([1, 6, 4, 4], 1e-3), ([16, 8, 1, 1], 1e-5), ([3, 64, 9, 9], 1e-5)]
    {
        let c = shape[1];
        let x = tensor(shape, 5, &dev).mul_scalar(3.0).add_scalar(0.7);
        let gamma = tensor([1, c, 1, 1], 6, &dev);
        let beta = tensor([1, c, 1, 1], 7, &dev);
        let inputs = [x, gamma, beta];
        let run =
            |f: fn(Tensor<4>, Tensor<1>, Tensor<1>, f64) -> burn::tensor::module::BatchNormTrainOutput<4>| {
                run_with_grads(&inputs, move |t| {
                    f(t[0].clone(), t[1].clone().reshape([c]), t[2].clone().reshape([c]), eps).output
                })
            };
        let (y, g) = run(k::batch_norm_train);
        let (y_ref, g_ref) = run(reference::batch_norm_train);
        assert_close(y, y_ref, &format!("bn forward {shape:?}"));
        for (i, name) in ["dx", "dgamma", "dbeta"].iter().enumerate() {
            assert_close(g[i].clone(), g_ref[i].clone(), &format!("bn {name} {shape:?}"));
        }
        // The batch statistics used for the running averages.
        let x = inputs[0].clone();
        let (gm, bt) = (inputs[1].clone().reshape([c]), inputs[2].clone().reshape([c]));
        let ours = k::batch_norm_train(x.clone(), gm.clone(), bt.clone(), eps);
        let theirs = reference::batch_norm_train(x, gm, bt, eps);
        assert_close(ours.mean, theirs.mean, "bn mean");
        assert_close(ours.variance, theirs.variance, "bn variance");
    }
    // Rank 2 (BatchNorm1d).
    let x = tensor([6, 5], 8, &dev);
    let g2 = tensor([5], 9, &dev);
    let b2 = tensor([5], 10, &dev);
    let ours = k::batch_norm_train(x.clone(), g2.clone(), b2.clone(), 1e-5).output;
    assert_close(ours, reference::batch_norm_train(x, g2, b2, 1e-5).output, "bn1d forward");
}

#[test]
fn batch_norm_train_relu_fuses_to_the_two_ops() {
    // The fused op masks the gradient with the same bits the ReLU op would: values, gradients
    // and statistics equal the two ops' exactly, and Burn's two ops within the tolerance.
    let dev = ad();
    for shape in [[4, 3, 5, 7], [3, 64, 9, 9], [16, 8, 1, 1], [2, 5, 3, 3]] {
        let c = shape[1];
        let x = tensor(shape, 31, &dev).mul_scalar(3.0).add_scalar(0.4);
        let inputs = [x, tensor([1, c, 1, 1], 32, &dev), tensor([1, c, 1, 1], 33, &dev)];
        let args = |t: &[Tensor<4>]| (t[0].clone(), t[1].clone().reshape([c]), t[2].clone().reshape([c]));
        let fused = run_with_grads(&inputs, |t| {
            let (x, g, b) = args(t);
            k::batch_norm_train_relu(x, g, b, 1e-5).output
        });
        let two = run_with_grads(&inputs, |t| {
            let (x, g, b) = args(t);
            k::relu(k::batch_norm_train(x, g, b, 1e-5).output)
        });
        let burn = run_with_grads(&inputs, |t| {
            let (x, g, b) = args(t);
            activation::relu(reference::batch_norm_train(x, g, b, 1e-5).output)
        });
        let what = format!("bn + relu {shape:?}");
        // Some outputs are zeroed, some are not: the mask is exercised both ways.
        let y = vec_of(fused.0.clone());
        assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0), "{what}: mask one-sided");
        assert_eq!(y, vec_of(two.0.clone()), "{what}: forward");
        for i in 0..3 {
            assert_eq!(vec_of(fused.1[i].clone()), vec_of(two.1[i].clone()), "{what}: gradient {i}");
            assert_close(fused.1[i].clone(), burn.1[i].clone(), &format!("{what}: gradient {i} (Burn)"));
        }
        assert_close(fused.0, burn.0, &format!("{what}: forward (Burn)"));
        let (x, g, b) = args(&inputs);
        let (ours, plain) = (
            k::batch_norm_train_relu(x.clone(), g.clone(), b.clone(), 1e-5),
            k::batch_norm_train(x, g, b, 1e-5),
        );
        assert_eq!(vec_of(ours.mean), vec_of(plain.mean), "{what}: mean");
        assert_eq!(vec_of(ours.variance), vec_of(plain.variance), "{what}: variance");
    }
}

#[test]
fn batch_norm_eval_matches_burn() {
    let dev = Device::flex();
    let x = tensor([3, 4, 5, 6], 11, &dev);
    let p = |s| tensor([4], s, &dev);
    let var = p(15).abs().add_scalar(0.1);
    let ours = k::batch_norm_eval(x.clone(), p(12), p(13), p(14), var.clone(), 1e-5);
    assert_close(ours, reference::batch_norm(x, p(12), p(13), p(14), var, 1e-5), "bn eval");
}

#[test]
fn pools_match_burn() {
    let dev = ad();
    let max_cases = [
        ([2, 3, 9, 9], 3, 2, 0, false),
        ([2, 3, 9, 9], 3, 2, 1, false),
        ([1, 4, 14, 14], 2, 2, 0, true),
        ([2, 2, 10, 10], 3, 2, 0, true), // GoogLeNet's ceil-mode pool
        ([2, 2, 7, 7], 3, 1, 1, true),
        ([2, 5, 6, 6], 3, 1, 1, false), // GoogLeNet's inception pool on a 6² map
        ([1, 3, 12, 9], 3, 1, 1, false), // stride 1, non-square
        ([3, 2, 24, 24], 3, 2, 1, false), // ResNet stem pool
    ];
    for (shape, kk, s, p, ceil) in max_cases {
        let opts = MaxPoolOptions::new([kk; 2]).with_stride([s; 2]).with_padding([p; 2]).with_ceil_mode(ceil);
        let inputs = [tensor(shape, 20, &dev)];
        let (y, g) = run_with_grads(&inputs, |t| k::max_pool2d(t[0].clone(), opts.clone()));
        let (yr, gr) = run_with_grads(&inputs, |t| reference::max_pool2d(t[0].clone(), opts.clone()));
        assert_close(y, yr, &format!("max pool {shape:?} k{kk} s{s} p{p} ceil {ceil}"));
        assert_close(g[0].clone(), gr[0].clone(), &format!("max pool grad {shape:?} k{kk} s{s} p{p}"));
        // Inference (no indices kept): same values.
        let plain = Tensor::<4>::from_data(inputs[0].clone().into_data(), &Device::flex());
        let yp = k::max_pool2d(plain.clone(), opts.clone());
        assert_close(
            yp,
            reference::max_pool2d(plain, opts.clone()),
            &format!("max pool inference {shape:?}"),
        );
    }
    let avg_cases = [
        ([2, 6, 28, 28], 2, 2, 0, true, false), // LeNet
        ([2, 3, 9, 9], 3, 2, 1, true, false),
        ([2, 3, 9, 9], 3, 2, 1, false, false),
        ([1, 2, 7, 7], 7, 7, 0, true, false), // global average
        ([2, 2, 10, 10], 3, 2, 1, true, true),
    ];
    for (shape, kk, s, p, include_pad, ceil) in avg_cases {
        let opts = AvgPoolOptions::new([kk; 2])
            .with_stride([s; 2])
            .with_padding([p; 2])
            .with_count_include_pad(include_pad)
            .with_ceil_mode(ceil);
        let inputs = [tensor(shape, 21, &dev)];
        let (y, g) = run_with_grads(&inputs, |t| k::avg_pool2d(t[0].clone(), opts.clone()));
        let (yr, gr) = run_with_grads(&inputs, |t| reference::avg_pool2d(t[0].clone(), opts.clone()));
        let what = format!("avg pool {shape:?} k{kk} s{s} p{p} pad {include_pad} ceil {ceil}");
        assert_close(y, yr, &what);
        assert_close(g[0].clone(), gr[0].clone(), &format!("{what} grad"));
        let plain = Tensor::<4>::from_data(inputs[0].clone().into_data(), &Device::flex());
        let yp = k::avg_pool2d(plain.clone(), opts.clone());
        assert_close(yp, reference::avg_pool2d(plain, opts.clone()), &format!("{what} inference"));
    }
}

#[test]
fn max_pool_ties_and_nan_route_like_a_row_major_scan() {
    // Ties (ReLU zeros, repeated maxima) and NaNs: the gradient goes where a row-major scan
    // with `v > best || v.is_nan()` lands (first maximum, last NaN), as in PyTorch. Rows wide
    // enough that strided pools take the contiguous horizontal pass (k2 s2, k3 s2: 9 and 10
    // outputs a row) and narrow ones that do not (k3 s3: 7).
    let (h, w) = (7, 19);
    let mut x = vec![0f32; h * w];
    for (i, v) in x.iter_mut().enumerate() {
        *v = [0.0, 1.0, 1.0, 0.0, 2.0, 0.0, 2.0][i % 7];
    }
    x[3 * w + 3] = f32::NAN;
    x[3 * w + 5] = f32::NAN;
    x[5 * w + 1] = f32::NAN;
    x[2 * w + 12] = f32::NAN;
    x[4 * w + 15] = f32::NAN;
    x[4 * w + 16] = f32::NAN;
    // A corner of −∞: the windows there have −∞ padding and only −∞ real cells.
    let mut x_inf = x.clone();
    for i in [0, 1, w, w + 1] {
        x_inf[i] = f32::NEG_INFINITY;
    }
    let dev = ad();
    let cases = [(3, 2, 1), (3, 1, 0), (3, 1, 1), (2, 2, 0), (3, 3, 1)];
    for (x, (kk, s, p)) in [&x, &x_inf].into_iter().flat_map(|x| cases.map(|c| (x.clone(), c))) {
        let opts = MaxPoolOptions::new([kk; 2]).with_stride([s; 2]).with_padding([p; 2]);
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 1, h, w]), &dev).require_grad();
        let y = k::max_pool2d(xt.clone(), opts.clone());
        let [_, _, ho, wo] = y.dims();
        let dy: Vec<f32> = (0..ho * wo).map(|i| (i + 1) as f32).collect();
        let dyt = Tensor::<4>::from_data(TensorData::new(dy.clone(), [1, 1, ho, wo]), &dev);
        let grads = (y * dyt).sum().backward();
        let got = vec_of(xt.grad(&grads).expect("grad"));
        let mut want = vec![0f32; h * w];
        for oh in 0..ho {
            for ow in 0..wo {
                let (r0, c0) = ((oh * s) as isize - p as isize, (ow * s) as isize - p as isize);
                let (mut best, mut at) = (f32::NEG_INFINITY, None);
                for r in r0.max(0)..(r0 + kk as isize).min(h as isize) {
                    for c in c0.max(0)..(c0 + kk as isize).min(w as isize) {
                        let i = r as usize * w + c as usize;
                        if at.is_none() {
                            at = Some(i);
                        }
                        if x[i] > best || x[i].is_nan() {
                            best = x[i];
                            at = Some(i);
                        }
                    }
                }
                want[at.expect("window")] += dy[oh * wo + ow];
            }
        }
        assert_eq!(got, want, "k{kk} s{s} p{p} (−∞ corner: {})", x[0] == f32::NEG_INFINITY);
    }
}

#[test]
fn activations_match_burn() {
    let dev = ad();
    // Spread over [-24, 24]: the sigmoid's saturated tails included.
    let inputs = [tensor([3, 5, 7, 11], 30, &dev).mul_scalar(24.0)];
    let (y, g) = run_with_grads(&inputs, |t| k::sigmoid(t[0].clone()));
    let (yr, gr) = run_with_grads(&inputs, |t| activation::sigmoid(t[0].clone()));
    assert_close(y, yr, "sigmoid");
    assert_close(g[0].clone(), gr[0].clone(), "sigmoid grad");
    let (y, g) = run_with_grads(&inputs, |t| k::relu(t[0].clone()));
    let (yr, gr) = run_with_grads(&inputs, |t| activation::relu(t[0].clone()));
    assert_close(y, yr, "relu");
    assert_close(g[0].clone(), gr[0].clone(), "relu grad");
    // NaN propagates (a diverging run must be seen as one).
    let nan = Tensor::<1>::from_floats([f32::NAN, -1.0, 2.0], &Device::flex());
    let r = vec_of(k::relu(nan.clone()));
    assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 2.0, "relu {r:?}");
    assert!(vec_of(k::sigmoid(nan))[0].is_nan(), "sigmoid of NaN");
    // Large tensors run in parallel blocks.
    let big = [tensor([70_001], 31, &dev).mul_scalar(8.0)];
    let (y, g) = run_with_grads(&big, |t| k::sigmoid(t[0].clone()));
    let (yr, gr) = run_with_grads(&big, |t| activation::sigmoid(t[0].clone()));
    assert_close(y, yr, "sigmoid, large");
    assert_close(g[0].clone(), gr[0].clone(), "sigmoid grad, large");
}

#[test]
fn linear_matches_burn() {
    let dev = ad();
    for (b, i, o, bias) in [(5, 7, 3, true), (128, 300, 70, true), (1, 33, 10, true), (4, 50, 40, false)] {
        let inputs = [tensor([b, i], 40, &dev), tensor([i, o], 41, &dev), tensor([1, o], 42, &dev)];
        let run = |f: fn(Tensor<2>, Tensor<2>, Option<Tensor<1>>) -> Tensor<2>| {
            run_with_grads(&inputs, move |t| {
                f(t[0].clone(), t[1].clone(), bias.then(|| t[2].clone().reshape([o])))
            })
        };
        let reference = |x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>| match bias {
            Some(bias) => x.matmul(w) + bias.unsqueeze(),
            None => x.matmul(w),
        };
        let (y, g) = run(k::linear);
        let (yr, gr) = run(reference);
        let what = format!("linear {b}×{i}→{o} bias {bias}");
        assert_close(y, yr, &what);
        for (n, name) in ["dx", "dw", "db"].iter().enumerate() {
            assert_close(g[n].clone(), gr[n].clone(), &format!("{what} {name}"));
        }
    }
}

#[test]
fn exp_is_accurate() {
    for i in -8700..8800 {
        let x = i as f32 / 100.0;
        let (got, want) = (k::act::exp(x), x.exp());
        assert!((got - want).abs() <= 3e-7 * want, "exp({x}) = {got}, libm {want}");
    }
}

#[test]
fn winograd_matches_burn_directly() {
    use k::geom::Geom;
    use k::winograd::Tile;
    let dev = ad();
    let cases = [(2, 16, 9, 7, 20, 1), (1, 24, 5, 5, 16, 0), (3, 16, 6, 8, 16, 2), (2, 16, 13, 10, 16, 1)];
    for ((n, ci, h, w, co, pad), tile) in
        cases.into_iter().flat_map(|c| [(c, Tile::F2), (c, Tile::F3), (c, Tile::F4)])
    {
        let geo = Geom::new([n, ci, h, w], [co, ci, 3, 3], [1, 1], [pad, pad], [1, 1], 1).unwrap();
        let x = tensor([n, ci, h, w], 50, &dev);
        let wt = tensor([co, ci, 3, 3], 51, &dev);
        let b = tensor([co], 52, &dev);
        let opts = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let (xl, wl) = (x.clone().require_grad(), wt.clone().require_grad());
        let y_ref = reference::conv2d(xl.clone(), wl.clone(), Some(b.clone()), opts);
        let dy = tensor(y_ref.dims(), 53, &dev);
        let grads = (y_ref.clone() * dy.clone()).sum().backward();
        let (dx_ref, dw_ref) = (xl.grad(&grads).unwrap(), wl.grad(&grads).unwrap());
        let (xv, wv, bv) = (vec_of(x), vec_of(wt), vec_of(b));
        let plain = Device::flex();
        let as_t = |v: Vec<f32>, s: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, s), &plain);
        let what = format!("{tile:?} {geo:?}");
        for act in [k::Activation::Identity, k::Activation::Relu, k::Activation::Sigmoid] {
            let y = k::winograd::forward(&geo, tile, &xv, &wv, Some(&bv), None, act);
            let want = act.tensor(y_ref.clone().inner());
            assert_close(as_t(y, geo.out_dims()), want, &format!("winograd forward ({act:?}) {what}"));
        }
        let dy = vec_of(dy.inner());
        let dx = k::winograd::input_grad(&geo, tile, &wv, &dy);
        assert_close(as_t(dx, [n, ci, h, w]), dx_ref, &format!("winograd input grad {what}"));
        let dw = k::winograd::weight_grad(&geo, tile, &xv, &dy);
        assert_close(as_t(dw, [co, ci, 3, 3]), dw_ref, &format!("winograd weight grad {what}"));
    }
}

/// Each tile's relative error against a float64 direct convolution, at 128 channels: the larger
/// the tile, the larger its matrices' constants and the error (F(2×2) < F(3×3) < F(4×4)), all
/// far inside the property tests' 1e-4.
#[test]
fn winograd_error_grows_with_the_tile() {
    use k::geom::Geom;
    use k::winograd::Tile;
    let (n, c, hw) = (2, 128, 12);
    let geo = Geom::new([n, c, hw, hw], [c, c, 3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    let mut seed = 7u32;
    let mut rnd = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let x: Vec<f32> = (0..n * c * hw * hw).map(|_| rnd()).collect();
    let w: Vec<f32> = (0..c * c * 9).map(|_| rnd()).collect();
    let mut want = vec![0f64; n * c * hw * hw];
    for (i, out) in want.iter_mut().enumerate() {
        let (img, o, y, xx) = (i / (c * hw * hw), (i / (hw * hw)) % c, (i / hw) % hw, i % hw);
        for ci in 0..c {
            for (r, s) in (0..9).map(|t| (t / 3, t % 3)) {
                let (iy, ix) = ((y + r) as isize - 1, (xx + s) as isize - 1);
                if (0..hw as isize).contains(&iy) && (0..hw as isize).contains(&ix) {
                    let xv = x[((img * c + ci) * hw + iy as usize) * hw + ix as usize] as f64;
                    *out += xv * w[(o * c + ci) * 9 + r * 3 + s] as f64;
                }
            }
        }
    }
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = |tile| {
        let y = k::winograd::forward(&geo, tile, &x, &w, None, None, k::Activation::Identity);
        y.iter().zip(&want).fold(0f64, |m, (g, r)| m.max((*g as f64 - r).abs())) / scale
    };
    let [e2, e3, e4] = [Tile::F2, Tile::F3, Tile::F4].map(err);
    assert!(e2 < e3 && e3 < e4 && e4 < 2e-5, "relative errors F2 {e2:.2e}, F3 {e3:.2e}, F4 {e4:.2e}");
}

#[test]
fn winograd_takes_the_tile_with_fewer_multiplies() {
    use k::geom::Geom;
    use k::winograd::{Tile, choose};
    let geo = |n, hw, c| Geom::new([n, c, hw, hw], [c, c, 3, 3], [1, 1], [1, 1], [1, 1], 1).unwrap();
    if k::conv::mode() != k::conv::Mode::Auto {
        return; // CNNZOO_CONV picks for every layer
    }
    // d2l's ResNet-18 at batch 128 (96×96 input: stages at 24², 12², 6², 3²).
    assert_eq!(choose(&geo(128, 24, 64)), Some(Tile::F4));
    assert_eq!(choose(&geo(128, 12, 128)), Some(Tile::F4));
    assert_eq!(choose(&geo(128, 6, 256)), Some(Tile::F3), "4 tiles of 25 (the others: 144)");
    assert_eq!(choose(&geo(128, 3, 512)), Some(Tile::F3), "one tile of 25 (F(4×4): 36)");
    // torchvision's ResNet-18 at batch 32, 7²: F(4×4)'s 4 tiles of 36 against F(3×3)'s 9 of 25.
    assert_eq!(choose(&geo(32, 7, 512)), Some(Tile::F4));
    // torchvision's ResNet-18 at batch 1: Winograd; F(2×2) at 7² (F(4×4) would have 4 tiles).
    assert_eq!(choose(&geo(1, 56, 64)), Some(Tile::F4));
    assert_eq!(choose(&geo(1, 14, 256)), Some(Tile::F4));
    assert_eq!(choose(&geo(1, 7, 512)), Some(Tile::F2));
    // d2l's at batch 1 has a quarter of that work per layer: the implicit GEMM.
    assert_eq!(choose(&geo(1, 24, 64)), None);
    assert_eq!(choose(&geo(1, 3, 512)), None);
    assert_eq!(choose(&geo(2, 4, 16)), None, "too few tiles");
    assert_eq!(Tile::F4.multiplies(&geo(2, 24, 16)), 2 * 36 * 36);
    assert_eq!(Tile::F2.multiplies(&geo(2, 24, 16)), 2 * 144 * 16);
    assert_eq!(Tile::F3.multiplies(&geo(2, 24, 16)), 2 * 64 * 25);
}

#[test]
fn gemm_splits_by_rows_or_columns_like_a_naive_product() {
    use k::gemm::{self, Lhs};
    use k::view::Mat;
    // (m, n, k): few column panels and many rows (split by rows), the reverse, edge tiles; last
    // row panels of 4, 1, 4, 5, 8 and 6 rows (the AVX-512 kernel's 4-, 6-, 8- and 12-row tiles).
    for (m, n, kk) in [(100, 20, 300), (13, 200, 70), (64, 49, 577), (5, 3, 2), (20, 45, 33), (30, 70, 9)] {
        let a = values(m * kk, 60);
        let b = values(kk * n, 61);
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for p in 0..kk {
                for j in 0..n {
                    want[i * n + j] += a[i * kk + p] as f64 * b[p * n + j] as f64;
                }
            }
        }
        // B also column-major (a transposed operand, columns at a stride longer than K).
        let ldb = kk + 3;
        let mut bt = vec![f32::NAN; n * ldb];
        for p in 0..kk {
            for j in 0..n {
                bt[j * ldb + p] = b[p * n + j];
            }
        }
        for (packed, b_cols) in [(false, false), (true, false), (false, true), (true, true)] {
            for threads in [1, 2, 3] {
                let lhs = if packed {
                    Lhs::prepacked(Mat::rows(&a, kk), m, kk)
                } else {
                    Lhs::new(Mat::rows(&a, kk))
                };
                let rhs = if b_cols { Mat::cols(&bt, ldb) } else { Mat::rows(&b, n) };
                let mut c = vec![1f32; m * n];
                gemm::gemm(m, n, kk, &mut c, n, &lhs, rhs, true, threads);
                for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                    assert!(
                        (got as f64 - (w + 1.0)).abs() < 1e-3 * (1.0 + w.abs()),
                        "{m}x{n}x{kk} packed {packed} B column-major {b_cols} threads {threads}: c[{i}] = {got}, want {}",
                        w + 1.0
                    );
                }
            }
        }
        // A·Bᵀ with B's rows `bt` (NaN past K: never read), added to and overwriting C — the dot
        // kernel (m ≤ 64 on AVX2) or the GEMM.
        for accumulate in [true, false] {
            let mut c = vec![1f32; m * n];
            gemm::gemm_nt(m, n, kk, &mut c, n, &a, kk, &bt, ldb, accumulate);
            let base = if accumulate { 1.0 } else { 0.0 };
            for (i, (&got, &w)) in c.iter().zip(&want).enumerate() {
                assert!(
                    (got as f64 - (w + base)).abs() < 1e-3 * (1.0 + w.abs()),
                    "gemm_nt {m}x{n}x{kk} accumulate {accumulate}: c[{i}] = {got}, want {}",
                    w + base
                );
            }
        }
    }
}

#[test]
fn copy_2d_matches_scalar() {
    for (rows, cols, rs, cs) in
        [(3, 5, 7, 1), (4, 17, 40, 2), (2, 33, 70, 2), (5, 16, 16, 1), (3, 4, 20, 3), (1, 1, 1, 2)]
    {
        let n = (rows - 1) * rs + (cols - 1) * cs + 1;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dst = vec![-1f32; rows * cols];
        k::copy::copy_2d(&mut dst, &src, rows, cols, rs, cs);
        let want: Vec<f32> = (0..rows * cols).map(|i| ((i / cols) * rs + (i % cols) * cs) as f32).collect();
        assert_eq!(dst, want, "{rows}x{cols} rs {rs} cs {cs}");
        // The adjoint adds the block back where it came from.
        let mut back = vec![1f32; n];
        k::copy::add_2d(&mut back, &dst, rows, cols, rs, cs);
        let mut want_back = vec![1f32; n];
        for (i, v) in want.iter().enumerate() {
            want_back[(i / cols) * rs + (i % cols) * cs] += v;
        }
        assert_eq!(back, want_back, "add_2d {rows}x{cols} rs {rs} cs {cs}");
    }
}

#[test]
fn gemm_entry_points_reject_operands_smaller_than_the_product() {
    use k::gemm::{self, Lhs};
    use k::view::{ConvCols, Mat, Rhs};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let (m, n, kk) = (5, 7, 3);
    let (a, b) = (values(m * kk, 70), values(kk * n, 71));
    let mut c = vec![0f32; m * n];
    // The full operands pass; each one a value short is refused before anything is read.
    gemm::gemm(m, n, kk, &mut c, n, &Lhs::new(Mat::rows(&a, kk)), Mat::rows(&b, n), false, 1);
    type Case<'a> = (&'static str, Box<dyn Fn(&mut [f32]) + 'a>);
    let cases: [Case; 6] = [
        (
            "short A",
            Box::new(|c| {
                gemm::gemm(m, n, kk, c, n, &Lhs::new(Mat::rows(&a[1..], kk)), Mat::rows(&b, n), false, 1)
            }),
        ),
        (
            "short B",
            Box::new(|c| {
                gemm::gemm(m, n, kk, c, n, &Lhs::new(Mat::rows(&a, kk)), Mat::rows(&b[1..], n), false, 2)
            }),
        ),
        (
            "short C",
            Box::new(|c| {
                gemm::gemm(m, n, kk, &mut c[1..], n, &Lhs::new(Mat::rows(&a, kk)), Mat::rows(&b, n), false, 1)
            }),
        ),
        (
            "overlapping rows of C",
            Box::new(|c| {
                gemm::gemm(m, n, kk, c, n - 1, &Lhs::new(Mat::rows(&a, kk)), Mat::rows(&b, n), false, 1)
            }),
        ),
        (
            "A prepared for another depth",
            Box::new(|c| {
                let lhs = Lhs::prepacked(Mat::rows(&a[..m * (kk - 1)], kk - 1), m, kk - 1);
                gemm::gemm(m, n, kk, c, n, &lhs, Mat::rows(&b, n), false, 1)
            }),
        ),
        (
            "A transposed, too short",
            Box::new(|c| {
                gemm::gemm(
                    m,
                    n,
                    kk,
                    c,
                    n,
                    &Lhs::new(Mat::cols(&a[..m * kk - 1], m)),
                    Mat::rows(&b, n),
                    false,
                    1,
                )
            }),
        ),
    ];
    for (what, f) in &cases {
        let before = c.clone();
        let r = catch_unwind(AssertUnwindSafe(|| f(&mut c)));
        assert!(r.is_err(), "{what}: accepted");
        assert_eq!(c, before, "{what}: wrote before refusing");
    }
    assert!(
        catch_unwind(|| k::sgemm::pack_a_full(Mat::rows(&a[1..], kk), m, kk)).is_err(),
        "pack_a_full: short A"
    );
    assert!(catch_unwind(|| Lhs::owned(a[1..].to_vec(), kk, m, kk)).is_err(), "Lhs::owned: short values");
    // The implicit column matrix checks its source once, and each product against its extent.
    let src = values(2 * 3 * 6 * 6, 72);
    let view = |len: usize| ConvCols::new(&src[..len], 2, 3, [108, 36, 6], [3, 3], [1, 1], [1, 1], [4, 4]);
    assert!(view(src.len()).is_some(), "a source that holds every tap of every pixel");
    assert!(view(src.len() - 1).is_none(), "one value short");
    let cc = view(src.len()).expect("checked above");
    assert!(Rhs::Conv(cc).covers(27, 32) && !Rhs::Conv(cc).covers(28, 32) && !Rhs::Conv(cc).covers(27, 33));
    assert!(Rhs::ConvT(cc).covers(32, 27) && !Rhs::ConvT(cc).skip_cols(1).covers(32, 27));
}

/// Burn's conv → batch norm (inference form) → ReLU, for [`k::conv2d_bn`] to match.
fn conv_bn_reference(
    x: Tensor<4>,
    w: Tensor<4>,
    b: Option<Tensor<1>>,
    norm: &k::Norm,
    relu: bool,
    opts: ConvOptions<2>,
) -> Tensor<4> {
    let y = reference::conv2d(x, w, b, opts);
    let co = y.dims()[1];
    let per_channel = |t: &Tensor<1>| t.clone().reshape([1, co, 1, 1]);
    let scale = per_channel(&norm.gamma) / (per_channel(&norm.var) + norm.epsilon).sqrt();
    let y = (y - per_channel(&norm.mean)) * scale + per_channel(&norm.beta);
    if relu { activation::relu(y) } else { y }
}

#[test]
fn conv2d_bn_folds_to_the_three_ops() {
    let plain = Device::flex();
    let cases = [
        (conv(2, 3, 9, 4, 3, 1, 1), true),     // implicit GEMM
        (conv(1, 96, 6, 160, 3, 1, 1), false), // batch 1, split GEMM
        (conv(4, 16, 16, 16, 3, 1, 1), true),  // Winograd
        (ConvCase { bias: false, ..conv(3, 8, 6, 4, 1, 1, 0) }, true), // pointwise, no bias (ResNet)
        (ConvCase { groups: 2, ..conv(2, 4, 8, 6, 3, 1, 1) }, false), // groups
    ];
    for (c, relu) in cases {
        let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [c.dil; 2], c.groups);
        let x = tensor([c.n, c.ci, c.hw[0], c.hw[1]], 1, &plain);
        let w = tensor([c.co, c.ci / c.groups, c.k[0], c.k[1]], 2, &plain);
        let b = c.bias.then(|| tensor([c.co], 3, &plain));
        let norm = |seed: u64| k::Norm {
            gamma: tensor([c.co], seed, &plain),
            beta: tensor([c.co], seed + 1, &plain),
            mean: tensor([c.co], seed + 2, &plain),
            var: tensor([c.co], seed + 3, &plain).abs() + 0.05,
            epsilon: 1e-5,
        };
        let fold = |n: &k::Norm| k::Norm {
            gamma: n.gamma.clone(),
            beta: n.beta.clone(),
            mean: n.mean.clone(),
            var: n.var.clone(),
            epsilon: n.epsilon,
        };
        let n1 = norm(10);
        let want = conv_bn_reference(x.clone(), w.clone(), b.clone(), &n1, relu, opts.clone());
        let what = format!("conv_bn {c:?} relu {relu}");
        // Twice: the second call finds the folded weights kept by the first.
        for call in 0..2 {
            let before = k::kernel_calls();
            let got = k::conv2d_bn(x.clone(), w.clone(), b.clone(), fold(&n1), relu, opts.clone());
            assert!(k::kernel_calls() > before, "{what}: ran on our kernel (call {call})");
            assert_close(got, want.clone(), &format!("{what} (call {call})"));
        }
        // The same convolution weights with other statistics: never the folding kept above.
        let n2 = norm(20);
        let want2 = conv_bn_reference(x.clone(), w.clone(), b.clone(), &n2, relu, opts.clone());
        let got2 = k::conv2d_bn(x.clone(), w.clone(), b.clone(), fold(&n2), relu, opts.clone());
        assert_close(got2, want2, &format!("{what}, new statistics"));
        // On an autodiff device (training, input gradients) it is the three ops, values and
        // the input's gradient alike.
        let on_ad = |t: &Tensor<1>| Tensor::<1>::from_data(t.clone().into_data(), &ad());
        let n_ad = k::Norm {
            gamma: on_ad(&n1.gamma),
            beta: on_ad(&n1.beta),
            mean: on_ad(&n1.mean),
            var: on_ad(&n1.var),
            epsilon: n1.epsilon,
        };
        fused_on_autodiff(&what, [&x, &w], b.as_ref(), want, |x, w, b| {
            k::conv2d_bn(x, w, b, n_ad, relu, opts.clone())
        });
    }
}

/// On an autodiff device a fused op (`f` of input, weights and bias moved there) is its ops one
/// by one: the values `want`, and the input gets a gradient.
fn fused_on_autodiff(
    what: &str,
    [x, w]: [&Tensor<4>; 2],
    b: Option<&Tensor<1>>,
    want: Tensor<4>,
    f: impl FnOnce(Tensor<4>, Tensor<4>, Option<Tensor<1>>) -> Tensor<4>,
) {
    let dev = ad();
    let xa = Tensor::<4>::from_data(x.clone().into_data(), &dev).require_grad();
    let wa = Tensor::<4>::from_data(w.clone().into_data(), &dev);
    let ba = b.map(|t| Tensor::<1>::from_data(t.clone().into_data(), &dev));
    let ya = f(xa.clone(), wa, ba);
    let grads = ya.clone().sum().backward();
    assert!(xa.grad(&grads).is_some(), "{what}: the input gets a gradient on autodiff");
    assert_close(ya.inner(), want, &format!("{what} on autodiff"));
}

#[test]
fn conv2d_act_fuses_to_the_two_ops() {
    let plain = Device::flex();
    let cases = [
        conv(2, 3, 9, 4, 3, 1, 1),                             // implicit GEMM
        conv(1, 96, 6, 160, 3, 1, 1),                          // batch 1, split GEMM
        conv(4, 16, 16, 16, 3, 1, 1),                          // Winograd
        conv(1, 16, 12, 16, 3, 1, 1),                          // Winograd, batch 1
        ConvCase { bias: false, ..conv(3, 8, 6, 4, 1, 1, 0) }, // pointwise, no bias
        conv(2, 1, 28, 6, 5, 1, 2),                            // LeNet's first layer
        ConvCase { groups: 2, ..conv(2, 4, 8, 6, 3, 1, 1) },   // groups
    ];
    let acts = [k::Activation::Identity, k::Activation::Relu, k::Activation::Sigmoid];
    for c in cases {
        for act in acts {
            let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [c.dil; 2], c.groups);
            let x = tensor([c.n, c.ci, c.hw[0], c.hw[1]], 1, &plain);
            let w = tensor([c.co, c.ci / c.groups, c.k[0], c.k[1]], 2, &plain);
            let b = c.bias.then(|| tensor([c.co], 3, &plain));
            let y = reference::conv2d(x.clone(), w.clone(), b.clone(), opts.clone());
            let want = match act {
                k::Activation::Identity => y,
                k::Activation::Relu => activation::relu(y),
                k::Activation::Sigmoid => activation::sigmoid(y),
            };
            let what = format!("conv_act {c:?} {act:?}");
            // Twice: the second call finds the prepared weights kept by the first.
            for call in 0..2 {
                let before = k::kernel_calls();
                let got = k::conv2d_act(x.clone(), w.clone(), b.clone(), act, opts.clone());
                assert!(k::kernel_calls() > before, "{what}: ran on our kernel (call {call})");
                assert_close(got, want.clone(), &format!("{what} (call {call})"));
            }
            // On an autodiff device it is the two ops, values and the input's gradient alike.
            fused_on_autodiff(&what, [&x, &w], b.as_ref(), want, |x, w, b| {
                k::conv2d_act(x, w, b, act, opts.clone())
            });
        }
    }
}

#[test]
fn fused_relu_lets_nan_through_as_the_relu_op_does() {
    // A NaN weight makes every output of its channel NaN; max(NaN, 0) would hide it as 0.
    let plain = Device::flex();
    for c in [conv(2, 3, 9, 4, 3, 1, 1), conv(4, 16, 16, 16, 3, 1, 1)] {
        let opts = ConvOptions::new([c.stride; 2], [c.pad; 2], [c.dil; 2], c.groups);
        let x = tensor([c.n, c.ci, c.hw[0], c.hw[1]], 1, &plain);
        let mut wv = vec_of(tensor([c.co, c.ci, c.k[0], c.k[1]], 2, &plain));
        wv[0] = f32::NAN;
        let w = Tensor::<4>::from_data(TensorData::new(wv, [c.co, c.ci, c.k[0], c.k[1]]), &plain);
        let got = vec_of(k::conv2d_act(x, w, None, k::Activation::Relu, opts));
        let per_channel = got.len() / c.n / c.co;
        assert!(got[..per_channel].iter().all(|v| v.is_nan()), "{c:?}: channel 0 is NaN");
        assert!(got[per_channel..2 * per_channel].iter().all(|v| !v.is_nan()), "{c:?}: channel 1 is not");
    }
}
