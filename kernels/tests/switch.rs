//! The reference switch: with it on, every op takes Burn's path (no kernel call is counted)
//! and gives the same values; with it off, our kernels run. Its own test binary, because the
//! switch is process-wide.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use cnnzoo_kernels as k;

fn forward(x: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let y = k::conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    k::sigmoid(k::relu(y))
}

#[test]
fn reference_switch_routes_to_burn() {
    let dev = Device::flex();
    let x = Tensor::<4>::ones([2, 3, 6, 6], &dev);
    let w = Tensor::<4>::ones([4, 3, 3, 3], &dev).mul_scalar(0.01);

    let before = k::kernel_calls();
    let ours = forward(x.clone(), w.clone());
    assert_eq!(k::kernel_calls() - before, 3, "conv, relu and sigmoid ran on our kernels");

    k::set_reference_kernels(true);
    assert!(k::reference_kernels());
    let before = k::kernel_calls();
    let theirs = forward(x, w);
    assert_eq!(k::kernel_calls(), before, "nothing ran on our kernels");
    k::set_reference_kernels(false);

    let diff = (ours - theirs).abs().max().into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
}
