//! Batch normalization over dim 1 of `[N, C, …]` (BatchNorm1d and BatchNorm2d).
//!
//! **Algorithm.** The input is viewed as `[N, C, S]` (S = H·W, or 1 for rank 2).
//! - Train forward, two passes: per-channel statistics (parallel over channels; mean, then
//!   the centred sum of squares — two-pass for accuracy, 8-lane sums, f64 across segments),
//!   then `y = x·(γ·σ⁻¹) + (β − μ·γ·σ⁻¹)` (parallel over images). Returns the batch mean and
//!   the *biased* variance like Burn's `batch_norm_train`; the caller updates the running
//!   statistics PyTorch's way.
//! - Train backward, two passes: `Σdy` and `Σdy·(x−μ)` per channel (one pass for both), then
//!   `dx = γσ⁻¹·(dy − Σdy/M − (x−μ)·σ⁻²·Σdy(x−μ)/M)`; `dγ = σ⁻¹·Σdy(x−μ)`, `dβ = Σdy`.
//! - Eval: one pass, `y = x·scale[c] + shift[c]`.
//! - With a ReLU after it ([`batch_norm_train_relu`]): the forward's second pass writes
//!   `relu(y)`, and the backward recomputes the ReLU's mask `x·scale + shift > 0` from `x`
//!   in both of its passes (the same expression as the forward's, so the same bits) — no
//!   separate ReLU passes, and no ReLU output kept for the backward step.
//!
//! **Where the time goes.** Memory bandwidth: two reads of x forward plus one write; two
//! reads of x and dy backward plus one write. Burn's composed default is ~10 full-tensor
//! passes forward and ~14 backward, mostly single-threaded broadcasts.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::module;
pub use burn::tensor::module::BatchNormTrainOutput;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

use crate::act::relu1;
use crate::autodiff;
use crate::buf::{self, contiguous, slice};
use crate::dispatch::{Route, route_all};

/// `[N, C, S]` view of the input.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn of(dims: &[usize]) -> Self {
        Self { n: dims[0], c: dims[1], s: dims[2..].iter().product() }
    }
    fn m(&self) -> usize {
        self.n * self.s
    }
}

/// Per-channel reduction over all images: `f(channel, segment of image i)` summed in f64.
fn per_channel(d: Dims, f: impl Fn(usize, usize) -> f32 + Sync) -> Vec<f64> {
    (0..d.c).into_par_iter().map(|ch| (0..d.n).map(|i| f(ch, i) as f64).sum()).collect()
}

/// The ReLU after a batch norm: `g` where the norm's output `x·scale + shift` is positive
/// (what the ReLU's own backward step, `dy·[y > 0]`, passes), else 0.
#[inline(always)]
fn relu_masked(g: f32, x: f32, scale: f32, shift: f32) -> f32 {
    if x * scale + shift > 0.0 { g } else { 0.0 }
}

/// `(Σ g, Σ g·(x − mean))` over a segment, `g = grad(dy, x)` (`dy` itself, or ReLU-masked:
/// [`relu_masked`]), with 8 lanes: one pass over `dy` and `x` for both sums.
#[inline(always)]
fn grad_sums(dy: &[f32], x: &[f32], mean: f32, grad: impl Fn(f32, f32) -> f32) -> (f32, f32) {
    let (mut s0, mut s1) = ([0f32; 8], [0f32; 8]);
    let (gc, xc) = (dy.chunks_exact(8), x.chunks_exact(8));
    let (mut r0, mut r1) = (0f32, 0f32);
    for (&g, &x) in gc.remainder().iter().zip(xc.remainder()) {
        let g = grad(g, x);
        r0 += g;
        r1 += g * (x - mean);
    }
    for (g, x) in gc.zip(xc) {
        for i in 0..8 {
            let gi = grad(g[i], x[i]);
            s0[i] += gi;
            s1[i] += gi * (x[i] - mean);
        }
    }
    (s0.iter().sum::<f32>() + r0, s1.iter().sum::<f32>() + r1)
}

/// Training-mode statistics: `(mean, biased variance)`.
fn stats(d: Dims, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let seg = |ch: usize, i: usize| &x[(i * d.c + ch) * d.s..][..d.s];
    let m = d.m().max(1) as f64;
    let mean: Vec<f32> =
        per_channel(d, |ch, i| buf::sum(seg(ch, i))).into_iter().map(|v| (v / m) as f32).collect();
    let var = per_channel(d, |ch, i| {
        let s = seg(ch, i);
        buf::dot_centered(s, mean[ch], s, mean[ch])
    });
    (mean, var.into_iter().map(|v| (v / m) as f32).collect())
}

/// `y = x·scale[c] + shift[c]` (then the ReLU, with `relu`), parallel over images.
fn affine(d: Dims, x: &[f32], scale: &[f32], shift: &[f32], relu: bool) -> Vec<f32> {
    // Parallel over (image, channel) planes, a few thousand elements per task at least.
    let s = d.s.max(1);
    buf::par_init(x.len(), s, 4096usize.div_ceil(s), |p, yp| {
        let ch = p % d.c.max(1);
        let (a, b) = (scale[ch], shift[ch]);
        let xp = &x[p * s..][..yp.len()];
        if relu {
            buf::write_all(yp, xp.iter().map(|x| relu1(x * a + b)))
        } else {
            buf::write_all(yp, xp.iter().map(|x| x * a + b))
        }
    })
}

/// Train forward: `(y, mean, biased var, 1/σ, scale, shift)`; `y` is ReLU'd with `relu`.
fn train_forward(d: Dims, x: &[f32], gamma: &[f32], beta: &[f32], eps: f64, relu: bool) -> [Vec<f32>; 6] {
    let (mean, var) = stats(d, x);
    let inv: Vec<f32> = var.iter().map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32).collect();
    let scale: Vec<f32> = (0..d.c).map(|c| gamma[c] * inv[c]).collect();
    let shift: Vec<f32> = (0..d.c).map(|c| beta[c] - mean[c] * scale[c]).collect();
    [affine(d, x, &scale, &shift, relu), mean, var, inv, scale, shift]
}

/// Train backward: `(dx, dγ, dβ)`. With `relu = Some((scale, shift))` the norm was followed
/// by a ReLU and `dy` is the ReLU's output gradient: it is masked on the fly
/// ([`relu_masked`]).
fn train_backward(
    d: Dims,
    x: &[f32],
    dy: &[f32],
    mean: &[f32],
    inv: &[f32],
    gamma: &[f32],
    relu: Option<(&[f32], &[f32])>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let at = |ch: usize, i: usize| (i * d.c + ch) * d.s..(i * d.c + ch + 1) * d.s;
    // `Σdy` and `Σdy·(x−μ)` per channel, in one pass over each segment.
    let (sdy, sdyx): (Vec<f64>, Vec<f64>) = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let sums = |i| {
                let (dy, x) = (&dy[at(ch, i)], &x[at(ch, i)]);
                match relu {
                    None => grad_sums(dy, x, mean[ch], |g, _| g),
                    Some((scale, shift)) => {
                        grad_sums(dy, x, mean[ch], |g, x| relu_masked(g, x, scale[ch], shift[ch]))
                    }
                }
            };
            (0..d.n).map(sums).fold((0f64, 0f64), |(a, b), (s0, s1)| (a + s0 as f64, b + s1 as f64))
        })
        .unzip();
    let m = d.m().max(1) as f64;
    // dx = a·dy + b·x + c per channel.
    let mut a = vec![0f32; d.c];
    let mut b = vec![0f32; d.c];
    let mut c = vec![0f32; d.c];
    for ch in 0..d.c {
        let (g, iv) = (gamma[ch] as f64, inv[ch] as f64);
        let k = sdyx[ch] / m * iv * iv;
        a[ch] = (g * iv) as f32;
        b[ch] = (-g * iv * k) as f32;
        c[ch] = (g * iv * (k * mean[ch] as f64 - sdy[ch] / m)) as f32;
    }
    let s = d.s.max(1);
    assert_eq!(x.len(), dy.len(), "batch norm: x and dy differ in length");
    let dx = buf::par_init(x.len(), s, 4096usize.div_ceil(s), |p, dp| {
        let ch = p % d.c.max(1);
        let (a, b, c) = (a[ch], b[ch], c[ch]);
        let r = p * s..p * s + dp.len();
        let (x, dy) = (&x[r.clone()], &dy[r]);
        match relu {
            None => buf::write_all(dp, x.iter().zip(dy).map(|(x, g)| a * g + b * x + c)),
            Some((scale, shift)) => {
                let (sc, sh) = (scale[ch], shift[ch]);
                buf::write_all(dp, x.iter().zip(dy).map(|(&x, &g)| a * relu_masked(g, x, sc, sh) + b * x + c))
            }
        }
    });
    let dgamma = (0..d.c).map(|ch| (sdyx[ch] * inv[ch] as f64) as f32).collect();
    let dbeta = sdy.into_iter().map(|v| v as f32).collect();
    (dx, dgamma, dbeta)
}

#[derive(Debug, Clone)]
struct BnState {
    x: FlexTensor,
    mean: Vec<f32>,
    inv: Vec<f32>,
    gamma: Vec<f32>,
    /// With a ReLU fused after the norm: the forward's `(scale, shift)`, for its mask.
    relu: Option<(Vec<f32>, Vec<f32>)>,
}

#[derive(Debug)]
struct BnBackward;

impl Backward<Flex, 3> for BnBackward {
    type State = BnState;

    fn backward(self, ops: Ops<BnState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = autodiff::output_grad(grads, &ops);
        let [nx, ng, nb] = ops.parents.map(|p| p.map(|n| n.id));
        let st = ops.state;
        let shape = buf::dims(&st.x);
        let d = Dims::of(&shape);
        let relu = st.relu.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice()));
        let (dx, dg, db) = train_backward(d, slice(&st.x), slice(&dy), &st.mean, &st.inv, &st.gamma, relu);
        autodiff::register(grads, nx, Some(dx), &shape);
        autodiff::register(grads, ng, Some(dg), &[d.c]);
        autodiff::register(grads, nb, Some(db), &[d.c]);
    }
}

fn values(t: &Tensor<1>) -> Option<Vec<f32>> {
    t.clone().into_data().try_to_vec::<f32>().ok()
}

/// Burn's `batch_norm_train` with our kernel on flex: normalizes with the batch statistics
/// and returns them (mean, biased variance) untracked, for the running-statistics update.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<D> {
    train(x, gamma, beta, epsilon, false)
}

/// [`batch_norm_train`] followed by a ReLU, as one op on flex (the ReLU inside the norm's
/// output pass and its mask inside the norm's backward passes); elsewhere the two ops. The
/// output is the ReLU's; the statistics are the norm's.
pub fn batch_norm_train_relu<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> BatchNormTrainOutput<D> {
    train(x, gamma, beta, epsilon, true)
}

fn train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> BatchNormTrainOutput<D> {
    let dims = x.dims();
    let fits = D >= 2 && gamma.dims() == [dims[1]] && beta.dims() == [dims[1]];
    let routes = if fits { route_all(&x, &[&gamma, &beta]) } else { None };
    let Some(routes) = routes else {
        let out = module::batch_norm_train(x, gamma, beta, epsilon);
        if !relu {
            return out;
        }
        return BatchNormTrainOutput { output: crate::act::relu(out.output), ..out };
    };
    crate::dispatch::count_call();
    let device = x.device();
    let d = Dims::of(&dims);
    let mut routes = routes.into_iter().map(Route::into_parts);
    let (xp, xg) = routes.next().expect("x");
    let (gp, gg) = routes.next().expect("gamma");
    let (bp, bg) = routes.next().expect("beta");
    let (xp, gp, bp) = (contiguous(xp), contiguous(gp), contiguous(bp));
    let [y, mean, var, inv, scale, shift] =
        train_forward(d, slice(&xp), slice(&gp), slice(&bp), epsilon, relu);
    let y = buf::tensor(y, &dims);
    let stat = |v: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(v.clone(), [d.c]), &device);
    let (mean_t, var_t) = (stat(&mean), stat(&var));
    let relu = relu.then_some((scale, shift));
    let state = |_: &FlexTensor| BnState { x: xp, mean, inv, gamma: slice(&gp).to_vec(), relu };
    let output = autodiff::finish(BnBackward, [xg, gg, bg], state, y);
    BatchNormTrainOutput { output, mean: mean_t, variance: var_t }
}

/// Burn's `batch_norm` (inference, running statistics) with our kernel on plain flex.
pub fn batch_norm_eval<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let dims = x.dims();
    let xp = match crate::dispatch::route(&x) {
        Some(Route::Plain(xp)) if D >= 2 => xp,
        _ => return module::batch_norm(x, gamma, beta, mean, var, epsilon),
    };
    let d = Dims::of(&dims);
    let params = [&gamma, &beta, &mean, &var].map(values);
    let [Some(g), Some(b), Some(m), Some(v)] = params else {
        return module::batch_norm(x, gamma, beta, mean, var, epsilon);
    };
    if [&g, &b, &m, &v].iter().any(|p| p.len() != d.c) {
        return module::batch_norm(x, gamma, beta, mean, var, epsilon);
    }
    crate::dispatch::count_call();
    let xp = contiguous(xp);
    let scale: Vec<f32> = (0..d.c).map(|c| (g[c] as f64 / (v[c] as f64 + epsilon).sqrt()) as f32).collect();
    let shift: Vec<f32> = (0..d.c).map(|c| b[c] - m[c] * scale[c]).collect();
    Tensor::from_primitive::<Flex>(buf::tensor(affine(d, slice(&xp), &scale, &shift, false), &dims))
}
