//! Milliseconds of the max pools of d2l's GoogLeNet (batch 128), training (indices kept) and
//! inference: `cargo run -p cnnzoo-kernels --example pool_probe`.
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};
use std::time::Instant;

fn main() {
    cnnzoo_kernels::tune_allocator();
    for (c, hw, k, s, p) in
        [(64, 48, 3, 2, 1), (192, 24, 3, 2, 1), (256, 12, 3, 1, 1), (512, 6, 3, 1, 1), (832, 6, 3, 2, 1)]
    {
        for ad in [true, false] {
            let dev = if ad { Device::flex().autodiff() } else { Device::flex() };
            let x = Tensor::<4>::random([128, c, hw, hw], burn::tensor::Distribution::Default, &dev);
            let opts = MaxPoolOptions::new([k, k]).with_stride([s, s]).with_padding([p, p]);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                let y = cnnzoo_kernels::max_pool2d(x.clone(), opts.clone());
                std::hint::black_box(y);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let n = (128 * c * hw * hw) as f64;
            println!(
                "{c}×{hw}² k{k} s{s} {}: {:.2} ms, {:.2} ns/input",
                if ad { "train" } else { "infer" },
                best * 1e3,
                best * 1e9 / n
            );
        }
    }
}
