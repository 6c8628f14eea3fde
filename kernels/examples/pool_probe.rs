//! Milliseconds of the max pools of d2l's GoogLeNet (batch 128), training (indices kept; and
//! the backward step) and inference: `cargo run -p cnnzoo-kernels --example pool_probe`.
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use std::time::Instant;

fn main() {
    cnnzoo_kernels::tune_allocator();
    for (c, hw, k, s, p) in [
        (64, 48, 3, 2, 1),
        (192, 24, 3, 2, 1),
        (256, 12, 3, 1, 1),
        (512, 6, 3, 1, 1),
        (480, 12, 3, 2, 1),
        (832, 6, 3, 2, 1),
    ] {
        for ad in [true, false] {
            let dev = if ad { Device::flex().autodiff() } else { Device::flex() };
            let x = Tensor::<4>::random([128, c, hw, hw], burn::tensor::Distribution::Default, &dev);
            let opts = MaxPoolOptions::new([k, k]).with_stride([s, s]).with_padding([p, p]);
            let (mut best, mut best_bwd) = (f64::MAX, f64::MAX);
            for _ in 0..5 {
                let xg = if ad { x.clone().require_grad() } else { x.clone() };
                let t = Instant::now();
                let y = cnnzoo_kernels::max_pool2d(xg.clone(), opts.clone());
                best = best.min(t.elapsed().as_secs_f64());
                if ad {
                    // The backward step alone: dy is ready before the clock starts.
                    let dy = Tensor::<4>::ones(y.dims(), &dev);
                    let loss = (y * dy).sum();
                    let t = Instant::now();
                    let grads = loss.backward();
                    std::hint::black_box(xg.grad(&grads));
                    best_bwd = best_bwd.min(t.elapsed().as_secs_f64());
                } else {
                    std::hint::black_box(y);
                }
            }
            let n = (128 * c * hw * hw) as f64;
            println!(
                "{c}×{hw}² k{k} s{s} {}: {:.2} ms, {:.2} ns/input",
                if ad { "train" } else { "infer" },
                best * 1e3,
                best * 1e9 / n
            );
            if ad {
                println!(
                    "{c}×{hw}² k{k} s{s} backward (with the product and sum's): {:.2} ms",
                    best_bwd * 1e3
                );
            }
        }
    }
}
