//! Fully connected layer: `y[b, out] = x[b, in] · W[in, out] + bias` (Burn's weight layout).
//!
//! **Algorithm.** Three GEMMs on the kernel of [`crate::sgemm`], each split by output columns
//! across threads: forward `x·W` (bias pre-filled into the destination), input gradient
//! `dy·Wᵀ` (Wᵀ packed by gathers), weight gradient `xᵀ·dy` (xᵀ packs from contiguous runs),
//! bias gradient `Σ_b dy`.
//!
//! **Where the time goes.** The GEMMs; with d2l's batch sizes they are short and wide
//! (`b = 128..256` rows), so the weight matrix is read once per GEMM and dominates traffic.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::tensor::Tensor;

use crate::autodiff;
use crate::buf::{self, contiguous, slice};
use crate::dispatch::{Route, route_all};
use crate::gemm::{self, Lhs};
use crate::view::Mat;

#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    w: FlexTensor,
    dims: [usize; 3],
}

#[derive(Debug)]
struct LinearBackward;

impl Backward<Flex, 3> for LinearBackward {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = autodiff::output_grad(grads, &ops);
        let [nx, nw, nb] = ops.parents.map(|p| p.map(|n| n.id));
        let LinearState { x, w, dims: [b, i, o] } = ops.state;
        let (dy, x, w) = (slice(&dy), slice(&x), slice(&w));
        let t = buf::threads();
        let dx = nx.map(|_| {
            let mut dx = buf::zeros(b * i);
            gemm::gemm(b, i, o, &mut dx, i, &Lhs::new(Mat::rows(dy, o)), Mat::cols(w, o), false, t);
            dx
        });
        autodiff::register(grads, nx, dx, &[b, i]);
        let dw = nw.map(|_| {
            let mut dw = buf::zeros(i * o);
            gemm::gemm(i, o, b, &mut dw, o, &Lhs::new(Mat::cols(x, i)), Mat::rows(dy, o), false, t);
            dw
        });
        autodiff::register(grads, nw, dw, &[i, o]);
        let db = nb.map(|_| {
            let mut db = vec![0f32; o];
            for row in dy.chunks(o.max(1)) {
                db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
            }
            db
        });
        autodiff::register(grads, nb, db, &[o]);
    }
}

/// `x [b, in] · w [in, out] (+ bias [out])` with our GEMM on flex, Burn's `matmul` elsewhere.
pub fn linear(x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    let reference = |x: Tensor<2>, w: Tensor<2>, bias: Option<Tensor<1>>| {
        let y = x.matmul(w);
        match bias {
            Some(b) => y + b.unsqueeze(),
            None => y,
        }
    };
    let ([b, i], [i2, o]) = (x.dims(), w.dims());
    if i != i2 || bias.as_ref().is_some_and(|t| t.dims() != [o]) {
        return reference(x, w, bias);
    }
    let Some(routes) = route_all(&x, &[&w]) else {
        return reference(x, w, bias);
    };
    let on_ad = matches!(routes[0], Route::Ad(..));
    let Some((bp, bg)) = crate::dispatch::route_bias(bias.as_ref(), o, on_ad, &x.device()) else {
        return reference(x, w, bias);
    };
    crate::dispatch::count_call();
    let mut routes = routes.into_iter().map(Route::into_parts);
    let (xp, xg) = routes.next().expect("x");
    let (wp, wg) = routes.next().expect("w");
    let (xp, wp) = (contiguous(xp), contiguous(wp));
    let has_bias = bias.is_some();
    // The GEMM adds into the bias rows, or writes into zeros.
    let mut y = match (has_bias, &bp) {
        (true, Some(bp)) => slice(bp).iter().copied().cycle().take(b * o).collect(),
        _ => buf::zeros(b * o),
    };
    let xs = slice(&xp);
    gemm::gemm(
        b,
        o,
        i,
        &mut y,
        o,
        &Lhs::new(Mat::rows(xs, i)),
        Mat::rows(slice(&wp), o),
        has_bias,
        buf::threads(),
    );
    let y = buf::tensor(y, &[b, o]);
    autodiff::finish(LinearBackward, [xg, wg, bg], |_| LinearState { x: xp, w: wp, dims: [b, i, o] }, y)
}
