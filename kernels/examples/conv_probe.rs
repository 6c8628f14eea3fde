//! Milliseconds and GFLOP/s of each convolution of torchvision's ResNet-18 at one batch size
//! (default 1; `-- 32` for another), forward in inference (prepared weights kept) and, with
//! `train`, forward + backward: `cargo run -p cnnzoo-kernels --example conv_probe -- 1`.
//! Other layers instead of ResNet-18's: `CI,CO,K,S,P,SIZE` arguments (e.g. `384,384,3,1,1,12`).
//! `benchmarks/conv_peer.py` times the same list on PyTorch.
use cnnzoo_kernels::buf;
use cnnzoo_kernels::conv;
use cnnzoo_kernels::geom::Geom;
use std::time::Instant;

/// (in channels, out channels, kernel, stride, padding, input size, repeats in the network).
const LAYERS: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    (3, 64, 7, 2, 3, 224, 1),
    (64, 64, 3, 1, 1, 56, 4),
    (64, 128, 3, 2, 1, 56, 1),
    (64, 128, 1, 2, 0, 56, 1),
    (128, 128, 3, 1, 1, 28, 3),
    (128, 256, 3, 2, 1, 28, 1),
    (128, 256, 1, 2, 0, 28, 1),
    (256, 256, 3, 1, 1, 14, 3),
    (256, 512, 3, 2, 1, 14, 1),
    (256, 512, 1, 2, 0, 14, 1),
    (512, 512, 3, 1, 1, 7, 3),
];

fn main() {
    cnnzoo_kernels::tune_allocator();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1);
    let train = args.iter().any(|a| a == "train");
    let own: Vec<_> = args
        .iter()
        .filter_map(|a| {
            let v: Vec<usize> = a.split(',').map(|d| d.parse().ok()).collect::<Option<_>>()?;
            (v.len() == 6).then(|| (v[0], v[1], v[2], v[3], v[4], v[5], 1))
        })
        .collect();
    let mut total = 0.0;
    for &(ci, co, k, s, p, hw, reps) in if own.is_empty() { LAYERS } else { &own } {
        let geo = Geom::new([n, ci, hw, hw], [co, ci, k, k], [s, s], [p, p], [1, 1], 1).expect("geometry");
        let x: Vec<f32> = (0..n * ci * hw * hw).map(|i| (i % 13) as f32 * 0.1).collect();
        let w: Vec<f32> = (0..co * ci * k * k).map(|i| (i % 7) as f32 * 0.01).collect();
        let wt = buf::tensor(w.clone(), &[co, ci, k, k]);
        let dy = vec![0.5f32; n * co * geo.ho * geo.wo];
        let mut best = f64::MAX;
        for _ in 0..8 {
            let t = Instant::now();
            let y = conv::forward(
                &geo,
                &x,
                &w,
                None,
                (!train).then_some(&wt),
                cnnzoo_kernels::Activation::Identity,
            );
            if train {
                let g = conv::backward(&geo, &x, &w, &dy, [true, true, false]);
                std::hint::black_box(g.x);
            }
            std::hint::black_box(y);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (n * co * geo.ho * geo.wo * ci * k * k) as f64 * if train { 3.0 } else { 1.0 };
        total += best * reps as f64;
        println!(
            "{ci:>3}→{co:<3} {k}×{k} s{s} {hw:>3}²  ×{reps}: {:7.3} ms  {:6.1} GFLOP/s",
            best * 1e3,
            flops / best / 1e9
        );
    }
    println!("total (with repeats): {:.2} ms", total * 1e3);
}
