//! Max and average pooling over NCHW planes, forward and backward.
//!
//! **Algorithm.** Direct loops per `(n, c)` plane, groups of planes in parallel. Max pooling
//! records the flat in-plane index of each window's maximum (the first one on ties, −∞
//! padding never wins) and its backward scatters `dy` to those indices. Average pooling
//! divides by the window size clipped to the padded input (`count_include_pad`, PyTorch's
//! default) or by the number of real pixels; its backward spreads `dy / divisor` over the
//! window. Output sizes follow PyTorch, including `ceil_mode` (the last window must start
//! inside the input or the left padding).
//!
//! **Where the time goes.** One read of the input (k²/s² reads for overlapping windows) and
//! one write of the output; nothing else. Burn's flex pools are already direct, but its
//! average-pool backward and the surrounding layout copies dominated LeNet's profile.

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Tensor, module};
use rayon::prelude::*;

use crate::AD;
use crate::buf::{self, contiguous, slice};

/// Window geometry of one pooling op (square or not, symmetric padding, no dilation).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub p: [usize; 2],
    pub ho: usize,
    pub wo: usize,
}

impl Window {
    fn new(dims: [usize; 4], k: [usize; 2], s: [usize; 2], p: [usize; 2], ceil: bool) -> Option<Self> {
        let [n, c, h, w] = dims;
        if p[0] * 2 > k[0] || p[1] * 2 > k[1] {
            return None; // PyTorch's own limit; let Burn report it
        }
        let ho = crate::window_out(h, k[0], s[0], p[0], 1, ceil)?;
        let wo = crate::window_out(w, k[1], s[1], p[1], 1, ceil)?;
        Some(Self { planes: n * c, h, w, k, s, p, ho, wo })
    }
    fn out_dims(&self, dims: [usize; 4]) -> [usize; 4] {
        [dims[0], dims[1], self.ho, self.wo]
    }
    /// Rows (or columns) `start..end` of output position `o` along axis `a`, clipped to the
    /// input, and the unclipped-but-padded length (the `count_include_pad` divisor factor).
    fn span(&self, a: usize, o: usize) -> (usize, usize, usize) {
        let len = if a == 0 { self.h } else { self.w };
        let start = (o * self.s[a]) as isize - self.p[a] as isize;
        let end = start + self.k[a] as isize;
        let padded_end = end.min((len + self.p[a]) as isize);
        let lo = start.max(0) as usize;
        let hi = (end.min(len as isize)).max(0) as usize;
        (lo, hi.max(lo), (padded_end - start) as usize)
    }
    /// [`Window::span`] of every output row (`a = 0`) or column (`a = 1`).
    fn spans(&self, a: usize) -> Vec<(usize, usize, usize)> {
        (0..if a == 0 { self.ho } else { self.wo }).map(|o| self.span(a, o)).collect()
    }
    /// Planes per parallel task.
    fn group(&self) -> usize {
        (4096 / (self.h * self.w).max(1)).max(1)
    }
}

fn max_forward(win: &Window, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let mut y = buf::uninit(win.planes * ohw);
    let mut idx = vec![0u32; win.planes * ohw];
    let g = win.group();
    let (rows, cols) = (win.spans(0), win.spans(1));
    y.par_chunks_mut(g * ohw).zip(idx.par_chunks_mut(g * ohw)).zip(x.par_chunks(g * hw)).for_each(
        |((yp, ip), xp)| {
            for ((yp, ip), xp) in yp.chunks_mut(ohw).zip(ip.chunks_mut(ohw)).zip(xp.chunks(hw)) {
                for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
                    for (ow, &(c0, c1, _)) in cols.iter().enumerate() {
                        let mut best = f32::NEG_INFINITY;
                        let mut at = r0 * win.w + c0;
                        for r in r0..r1 {
                            for (c, &v) in xp[r * win.w + c0..r * win.w + c1].iter().enumerate() {
                                if v > best || v.is_nan() {
                                    best = v;
                                    at = r * win.w + c0 + c;
                                }
                            }
                        }
                        yp[oh * win.wo + ow] = best;
                        ip[oh * win.wo + ow] = at as u32;
                    }
                }
            }
        },
    );
    (y, idx)
}

fn max_backward(win: &Window, idx: &[u32], dy: &[f32]) -> Vec<f32> {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let mut dx = buf::zeros(win.planes * hw);
    let g = win.group();
    dx.par_chunks_mut(g * hw).zip(idx.par_chunks(g * ohw).zip(dy.par_chunks(g * ohw))).for_each(
        |(dxp, (ip, gp))| {
            for (dxp, (ip, gp)) in dxp.chunks_mut(hw).zip(ip.chunks(ohw).zip(gp.chunks(ohw))) {
                for (&i, &g) in ip.iter().zip(gp) {
                    dxp[i as usize] += g;
                }
            }
        },
    );
    dx
}

/// The divisor of each output position of an average pool.
fn avg_divisors(win: &Window, include_pad: bool) -> Vec<f32> {
    let mut d = Vec::with_capacity(win.ho * win.wo);
    for oh in 0..win.ho {
        let (r0, r1, rp) = win.span(0, oh);
        for ow in 0..win.wo {
            let (c0, c1, cp) = win.span(1, ow);
            let n = if include_pad { rp * cp } else { (r1 - r0) * (c1 - c0) };
            d.push(1.0 / n.max(1) as f32);
        }
    }
    d
}

fn avg_forward(win: &Window, x: &[f32], inv: &[f32]) -> Vec<f32> {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let mut y = buf::uninit(win.planes * ohw);
    let g = win.group();
    let (rows, cols) = (win.spans(0), win.spans(1));
    y.par_chunks_mut(g * ohw).zip(x.par_chunks(g * hw)).for_each(|(yp, xp)| {
        for (yp, xp) in yp.chunks_mut(ohw).zip(xp.chunks(hw)) {
            for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
                for (ow, &(c0, c1, _)) in cols.iter().enumerate() {
                    let mut acc = 0.0;
                    for r in r0..r1 {
                        acc += xp[r * win.w + c0..r * win.w + c1].iter().sum::<f32>();
                    }
                    yp[oh * win.wo + ow] = acc * inv[oh * win.wo + ow];
                }
            }
        }
    });
    y
}

fn avg_backward(win: &Window, dy: &[f32], inv: &[f32]) -> Vec<f32> {
    let (hw, ohw) = (win.h * win.w, win.ho * win.wo);
    let mut dx = buf::zeros(win.planes * hw);
    let g = win.group();
    let (rows, cols) = (win.spans(0), win.spans(1));
    dx.par_chunks_mut(g * hw).zip(dy.par_chunks(g * ohw)).for_each(|(dxp, gp)| {
        for (dxp, gp) in dxp.chunks_mut(hw).zip(gp.chunks(ohw)) {
            for (oh, &(r0, r1, _)) in rows.iter().enumerate() {
                for (ow, &(c0, c1, _)) in cols.iter().enumerate() {
                    let v = gp[oh * win.wo + ow] * inv[oh * win.wo + ow];
                    for r in r0..r1 {
                        dxp[r * win.w + c0..r * win.w + c1].iter_mut().for_each(|d| *d += v);
                    }
                }
            }
        }
    });
    dx
}

#[derive(Debug, Clone)]
enum PoolState {
    Max { win: Window, dims: [usize; 4], idx: Vec<u32> },
    Avg { win: Window, dims: [usize; 4], inv: Vec<f32> },
}

#[derive(Debug)]
struct PoolBackward;

impl Backward<Flex, 1> for PoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [Some(node)] = ops.parents else { return };
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (dx, dims) = match &ops.state {
            PoolState::Max { win, dims, idx } => (max_backward(win, idx, slice(&dy)), *dims),
            PoolState::Avg { win, dims, inv } => (avg_backward(win, slice(&dy), inv), *dims),
        };
        grads.register::<Flex>(node.id, buf::tensor(dx, &dims));
    }
}

/// Runs a pooling forward on our kernel; `None` = use Burn's op.
fn run(
    x: &Tensor<4>,
    win: Option<Window>,
    fwd: impl FnOnce(&Window, &[f32]) -> (Vec<f32>, PoolState),
) -> Option<Tensor<4>> {
    let win = win?;
    let dims = x.dims();
    let (xp, guard) = crate::route(x)?.into_parts();
    crate::count_call();
    let xp = contiguous(xp);
    let (y, state) = fwd(&win, slice(&xp));
    let y = buf::tensor(y, &win.out_dims(dims));
    Some(match guard {
        Some(g) => {
            let out = match PoolBackward.prepare::<NoCheckpointing>([g]).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(state, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Tensor::from_primitive::<AD>(out)
        }
        None => Tensor::from_primitive::<Flex>(y),
    })
}

fn symmetric(p: [(usize, usize); 2]) -> Option<[usize; 2]> {
    (p[0].0 == p[0].1 && p[1].0 == p[1].1).then_some([p[0].0, p[1].0])
}

/// Burn's `max_pool2d` with our kernel on flex (dilation 1, symmetric padding).
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    let dims = x.dims();
    let win = symmetric(options.padding)
        .filter(|_| options.dilation == [1, 1])
        .and_then(|p| Window::new(dims, options.kernel_size, options.stride, p, options.ceil_mode));
    let out = run(&x, win, |win, xs| {
        let (y, idx) = max_forward(win, xs);
        (y, PoolState::Max { win: *win, dims, idx })
    });
    out.unwrap_or_else(|| module::max_pool2d(x, options))
}

/// Burn's `avg_pool2d` with our kernel on flex (symmetric padding).
pub fn avg_pool2d(x: Tensor<4>, options: AvgPoolOptions<2>) -> Tensor<4> {
    let dims = x.dims();
    let win = symmetric(options.padding)
        .and_then(|p| Window::new(dims, options.kernel_size, options.stride, p, options.ceil_mode));
    let include_pad = options.count_include_pad;
    let out = run(&x, win, |win, xs| {
        let inv = avg_divisors(win, include_pad);
        let y = avg_forward(win, xs, &inv);
        (y, PoolState::Avg { win: *win, dims, inv })
    });
    out.unwrap_or_else(|| module::avg_pool2d(x, options))
}
