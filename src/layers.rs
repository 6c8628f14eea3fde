//! The project's own layer types: every family is built from these and nothing else.
//!
//! They are thin wrappers over tensor-level ops — our own CPU kernels on the flex device
//! (the `cnnzoo-kernels` crate, Burn's ops on other devices) — that keep
//! burn-nn's parameter names (`weight`, `bias`, `gamma`, `beta`, `running_mean`,
//! `running_var`), so that a faster kernel can replace the computation of a layer here, under all
//! seven families at once, without touching a model file or a weight key.
//!
//! Besides computing, each layer
//! - counts its multiply-accumulates into a per-thread counter (conv and linear only, the
//!   convention of torchvision's `_ops` and d2l's tables), read by [`crate::inspect`];
//! - checks its input shape and, instead of letting Burn panic, records a
//!   [`ShapeFault`](crate::instrument::ShapeFault) and
//!   returns a placeholder, which [`crate::Model::try_forward`] turns into an error;
//! - in *shape-only* mode ([`shape_only`](crate::instrument::shape_only)) skips the arithmetic and returns zeros of the right
//!   shape, which makes shape inference (the minimum input size, `cnnzoo list`) nearly free.

use burn::module::{Initializer, Module, Param, RunningState};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
// Our own CPU kernels on the flex device, Burn's ops everywhere else (see the kernels crate).
use cnnzoo_kernels::{
    Activation, Norm, avg_pool2d, batch_norm_eval as batch_norm, batch_norm_train, batch_norm_train_relu,
    conv2d, conv2d_act, conv2d_bn, linear, max_pool2d, relu, sigmoid, window_out,
};

use crate::instrument::{Describe, count_macs, fault, is_eval_mode, is_receptive_field_mode, is_shape_only};

/// PyTorch's default for a layer's bias: U(−1/√fan_in, 1/√fan_in).
fn pytorch_bias_init(fan_in: usize) -> Initializer {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    Initializer::Uniform { min: -bound, max: bound }
}

/// PyTorch's default for conv/linear weights: kaiming_uniform(a=√5) = U(−1/√fan_in, 1/√fan_in).
pub fn pytorch_weight_init() -> Initializer {
    Initializer::KaimingUniform { gain: 1.0 / 3f64.sqrt(), fan_out_only: false }
}

// ---------------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------------

/// How to build a [`Conv2d`].
#[derive(Debug, Clone)]
pub struct Conv2dConfig {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Symmetric zero padding.
    pub padding: usize,
    /// Groups.
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Weight initializer (fan-in and fan-out are computed like PyTorch's).
    pub weight_init: Initializer,
    /// Bias initializer; `None` = PyTorch's default U(±1/√fan_in).
    pub bias_init: Option<Initializer>,
}

impl Conv2dConfig {
    /// A `k×k` convolution, stride 1, no padding, with bias and PyTorch's default init.
    pub fn new(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self {
            channels: [c_in, c_out],
            kernel,
            stride: 1,
            padding: 0,
            groups: 1,
            bias: true,
            weight_init: pytorch_weight_init(),
            bias_init: None,
        }
    }
    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }
    /// Sets whether the layer has a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    /// Sets the weight and bias initializers.
    pub fn init_with(mut self, weight: Initializer, bias: Option<Initializer>) -> Self {
        self.weight_init = weight;
        self.bias_init = bias;
        self
    }

    /// Builds the layer.
    pub fn init(&self, device: &Device) -> Conv2d {
        let [c_in, c_out] = self.channels;
        let k2 = self.kernel * self.kernel;
        let fan_in = c_in / self.groups * k2;
        let fan_out = c_out / self.groups * k2;
        let shape = [c_out, c_in / self.groups, self.kernel, self.kernel];
        let weight = self.weight_init.init_with(shape, Some(fan_in), Some(fan_out), device);
        let bias = self.bias.then(|| {
            let init = self.bias_init.clone().unwrap_or_else(|| pytorch_bias_init(fan_in));
            init.init_with([c_out], Some(fan_in), Some(fan_out), device)
        });
        Conv2d {
            weight,
            bias,
            channels: self.channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
        }
    }
}

/// 2-D convolution, NCHW, weight `[out, in/groups, k, k]` as in PyTorch.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in/groups, k, k]`.
    pub weight: Param<Tensor<4>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Symmetric zero padding.
    pub padding: usize,
    /// Groups.
    pub groups: usize,
}

impl Conv2d {
    /// `[b, in, h, w]` → `[b, out, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let [c_in, c_out] = self.channels;
        let out = |len| window_out(len, self.kernel, self.stride, self.padding, 1, false);
        let (ho, wo) = match (out(h), out(w)) {
            _ if c != c_in => {
                fault(format!("a convolution expects {c_in} input channels, got {c}"));
                return Tensor::zeros([b, c_out, 1, 1], &x.device());
            }
            (Some(ho), Some(wo)) => (ho, wo),
            _ => {
                let k = self.kernel;
                let p = self.padding;
                fault(format!("a {k}×{k} convolution (padding {p}) got a {h}×{w} feature map"));
                return Tensor::zeros([b, c_out, 1, 1], &x.device());
            }
        };
        count_macs(b * c_out * ho * wo * (c_in / self.groups) * self.kernel * self.kernel);
        if is_shape_only() {
            return Tensor::zeros([b, c_out, ho, wo], &x.device());
        }
        if is_receptive_field_mode() {
            let k = [self.kernel; 2];
            return window_min(x.min_dim(1), k, self.stride, self.padding, false).repeat_dim(1, c_out);
        }
        let options = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], self.groups);
        conv2d(x, self.weight.val(), self.bias.as_ref().map(Param::val), options)
    }
}

// ---------------------------------------------------------------------------------------------
// Batch normalization
// ---------------------------------------------------------------------------------------------

/// How to build a [`BatchNorm`].
#[derive(Debug, Clone)]
pub struct BatchNormConfig {
    /// Channels (features).
    pub num_features: usize,
    /// Added to the variance (PyTorch default 1e-5; torchvision's GoogLeNet uses 1e-3).
    pub epsilon: f64,
    /// Running-statistics momentum in PyTorch's sense: `new = (1 − m)·old + m·batch`.
    pub momentum: f64,
}

impl BatchNormConfig {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1.
    pub fn new(num_features: usize) -> Self {
        Self { num_features, epsilon: 1e-5, momentum: 0.1 }
    }
    /// Sets epsilon.
    pub fn epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Builds the layer: γ = 1, β = 0, running mean 0, running var 1.
    pub fn init(&self, device: &Device) -> BatchNorm {
        let n = self.num_features;
        BatchNorm {
            gamma: Initializer::Ones.init([n], device),
            beta: Initializer::Zeros.init([n], device),
            running_mean: RunningState::new(Tensor::zeros([n], device)),
            running_var: RunningState::new(Tensor::ones([n], device)),
            num_features: n,
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// Batch normalization over dim 1 of a rank-2 (`BatchNorm1d`) or rank-4 (`BatchNorm2d`) input.
///
/// On an autodiff device it normalizes with the batch statistics and updates the running ones
/// the way PyTorch does (the running variance gets the *unbiased* batch variance); elsewhere, and
/// when its parameters are frozen, it uses the running statistics.
#[derive(Module, Debug)]
pub struct BatchNorm {
    /// Scale γ.
    pub gamma: Param<Tensor<1>>,
    /// Shift β.
    pub beta: Param<Tensor<1>>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running variance.
    pub running_var: RunningState<Tensor<1>>,
    /// Channels.
    pub num_features: usize,
    /// Momentum (PyTorch sense).
    pub momentum: f64,
    /// Epsilon.
    pub epsilon: f64,
}

impl BatchNorm {
    /// Normalizes `x` (`[b, c]` or `[b, c, h, w]`).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward_then(x, false)
    }

    /// `self.forward(x)` then a ReLU: in training one fused op
    /// (`cnnzoo_kernels::batch_norm_train_relu`: no separate ReLU passes and no ReLU output
    /// kept for the backward step), elsewhere exactly the two layers. Callers use it only where
    /// no probe reports the norm's output on its own.
    pub fn forward_relu<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.forward_then(x, true)
    }

    fn forward_then<const D: usize>(&self, x: Tensor<D>, relu: bool) -> Tensor<D> {
        let then = |y: Tensor<D>| if relu { Relu.forward(y) } else { y };
        let dims = x.dims();
        if dims[1] != self.num_features {
            fault(format!("a batch norm expects {} channels, got {}", self.num_features, dims[1]));
            return then(x);
        }
        if is_shape_only() || is_receptive_field_mode() {
            return then(x);
        }
        let device = x.device();
        // Frozen (fine-tuning a head on a frozen backbone): normalize with the running
        // statistics and leave them as they are, as in evaluation.
        let frozen = !self.gamma.val().is_require_grad();
        if !device.is_autodiff() || frozen || is_eval_mode() {
            // A training model used for inference keeps its statistics on the autodiff device:
            // move them off it. Otherwise they stay where they are (the ONNX exporter's tracing
            // device holds them and cannot move tensors).
            let on_device = |t: Tensor<1>| if t.device().is_autodiff() { t.to_device(&device) } else { t };
            let mean = on_device(self.running_mean.value_sync());
            let var = on_device(self.running_var.value_sync());
            return then(batch_norm(x, self.gamma.val(), self.beta.val(), mean, var, self.epsilon));
        }
        let n = dims.iter().product::<usize>() / self.num_features;
        let train = if relu { batch_norm_train_relu } else { batch_norm_train };
        let out = train(x, self.gamma.val(), self.beta.val(), self.epsilon);
        let unbias = if n > 1 { n as f64 / (n - 1) as f64 } else { 1.0 };
        let m = self.momentum;
        let mean = self.running_mean.value_sync().to_device(&device);
        let var = self.running_var.value_sync().to_device(&device);
        let mean = mean.mul_scalar(1.0 - m).add(out.mean.detach().mul_scalar(m));
        let var = var.mul_scalar(1.0 - m).add(out.variance.detach().mul_scalar(m * unbias));
        // `update` parks the value per thread until the next sync; syncing now keeps `value`
        // (what `valid()` copies for evaluation, and what a checkpoint saves) current, so an
        // evaluation sees the same statistics whether or not a checkpoint came between.
        self.running_mean.update(mean.detach());
        self.running_var.update(var.detach());
        let _ = (self.running_mean.value_sync(), self.running_var.value_sync());
        out.output
    }
}

/// `conv → batch norm (→ ReLU)` as one layer where nothing needs the steps apart: in inference
/// (input, weights and statistics off any autodiff device) the batch norm is folded into the
/// convolution's weights and bias and the ReLU runs inside the convolution's output pass
/// (`cnnzoo_kernels::conv2d_bn`). Everywhere else — training, gradients with respect to the
/// input (Grad-CAM, saliency), shape inference, a shape fault — it is the three layers'
/// forwards, the norm and the ReLU as one op in training ([`BatchNorm::forward_relu`], the
/// same values bit for bit). The parameters stay where they are: model files and weight keys do not
/// change, and the folded weights are kept between calls like packed ones.
///
/// Callers use it only where no probe reports the convolution's or the norm's output on its
/// own (ResNet's blocks: when the probe is inactive; GoogLeNet's `BasicConv2d`: always, its
/// probe stage is the whole conv → BN → ReLU).
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    let plain = |t: &Tensor<1>| !t.device().is_autodiff();
    let fused =
        fused_conv_options(conv, &x, || bn.num_features == conv.channels[1] && plain(&bn.gamma.val()));
    let Some(options) = fused else {
        return unfused_conv_bn(conv, bn, x, relu);
    };
    let norm = Norm {
        gamma: bn.gamma.val(),
        beta: bn.beta.val(),
        mean: bn.running_mean.value_sync(),
        var: bn.running_var.value_sync(),
        epsilon: bn.epsilon,
    };
    if !plain(&norm.mean) || !plain(&norm.var) {
        return unfused_conv_bn(conv, bn, x, relu);
    }
    conv2d_bn(x, conv.weight.val(), conv.bias.as_ref().map(Param::val), norm, relu, options)
}

/// `conv → activation` as one layer where nothing needs the steps apart: in inference (input
/// and weights off any autodiff device) the activation runs inside the convolution's output
/// pass (`cnnzoo_kernels::conv2d_act`). Everywhere else — training, gradients with respect to
/// the input, shape inference, receptive fields, a shape fault — it is exactly the two layers'
/// forwards. Parameters and model files do not change. Callers use it only where no probe
/// reports the convolution's output on its own.
pub fn conv_act(conv: &Conv2d, x: Tensor<4>, act: Activation) -> Tensor<4> {
    match fused_conv_options(conv, &x, || true) {
        Some(options) => conv2d_act(x, conv.weight.val(), conv.bias.as_ref().map(Param::val), act, options),
        None => {
            let y = conv.forward(x);
            match act {
                Activation::Identity => y,
                Activation::Relu => Relu.forward(y),
                Activation::Sigmoid => Sigmoid.forward(y),
            }
        }
    }
}

/// Whether `conv` can run on `x` as one fused inference kernel ([`conv_bn`], [`conv_act`]): `x`
/// and the weights off any autodiff device, no shape-only or receptive-field pass, `x` fitting
/// the layer, and the caller's `more` checks. If so, it counts the layer's multiply-adds (as
/// `Conv2d::forward` would) and returns the convolution's options.
fn fused_conv_options(conv: &Conv2d, x: &Tensor<4>, more: impl FnOnce() -> bool) -> Option<ConvOptions<2>> {
    let [b, c, h, w] = x.dims();
    let [c_in, c_out] = conv.channels;
    let out = |len| window_out(len, conv.kernel, conv.stride, conv.padding, 1, false);
    // Cheap checks first: `val()` initializes a lazily initialized parameter, which a
    // shape-only pass (before training) must not do out of the layers' order.
    let fusable = !x.device().is_autodiff()
        && !is_shape_only()
        && !is_receptive_field_mode()
        && c == c_in
        && !conv.weight.val().device().is_autodiff()
        && more();
    let (true, Some(ho), Some(wo)) = (fusable, out(h), out(w)) else { return None };
    count_macs(b * c_out * ho * wo * (c_in / conv.groups) * conv.kernel * conv.kernel);
    Some(ConvOptions::new([conv.stride; 2], [conv.padding; 2], [1, 1], conv.groups))
}

/// The three layers of [`conv_bn`] one after the other (the norm and the ReLU as one op in
/// training: [`BatchNorm::forward_relu`]).
fn unfused_conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, relu: bool) -> Tensor<4> {
    bn.forward_then(conv.forward(x), relu)
}

// ---------------------------------------------------------------------------------------------
// Pooling
// ---------------------------------------------------------------------------------------------

/// Max pooling with a square window (PyTorch's `MaxPool2d`).
#[derive(Module, Debug)]
pub struct MaxPool2d {
    /// Window.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Padding (implicit −∞).
    pub padding: usize,
    /// Round the output size up (PyTorch `ceil_mode`).
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// `MaxPool2d(kernel, stride, padding)`, floor mode.
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        Self { kernel, stride, padding, ceil_mode: false }
    }
    /// The same window in ceil mode.
    pub fn ceil(mut self) -> Self {
        self.ceil_mode = true;
        self
    }

    /// `[b, c, h, w]` → `[b, c, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let Some((b, c, ho, wo)) =
            pool_out(&x, "max", self.kernel, self.stride, self.padding, self.ceil_mode)
        else {
            return x;
        };
        if is_shape_only() {
            return Tensor::zeros([b, c, ho, wo], &x.device());
        }
        if is_receptive_field_mode() {
            return window_min(x, [self.kernel; 2], self.stride, self.padding, self.ceil_mode);
        }
        let options = MaxPoolOptions::new([self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_padding([self.padding; 2])
            .with_ceil_mode(self.ceil_mode);
        max_pool2d(x, options)
    }
}

/// Average pooling with a square window (PyTorch's `AvgPool2d`, `count_include_pad=True`).
#[derive(Module, Debug)]
pub struct AvgPool2d {
    /// Window.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding (counted in the average, as PyTorch's default).
    pub padding: usize,
}

impl AvgPool2d {
    /// `AvgPool2d(kernel, stride)`, no padding.
    pub fn new(kernel: usize, stride: usize) -> Self {
        Self { kernel, stride, padding: 0 }
    }

    /// `[b, c, h, w]` → `[b, c, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let Some((b, c, ho, wo)) = pool_out(&x, "average", self.kernel, self.stride, self.padding, false)
        else {
            return x;
        };
        if is_shape_only() {
            return Tensor::zeros([b, c, ho, wo], &x.device());
        }
        if is_receptive_field_mode() {
            return window_min(x, [self.kernel; 2], self.stride, self.padding, false);
        }
        let options = AvgPoolOptions::new([self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_padding([self.padding; 2]);
        avg_pool2d(x, options)
    }
}

/// Receptive-field mode ([`crate::instrument::receptive_field_mode`]): the smallest value of
/// each window, padding ignored (Burn's max pool of the negated map, which pads with −∞).
fn window_min(x: Tensor<4>, kernel: [usize; 2], stride: usize, padding: usize, ceil: bool) -> Tensor<4> {
    let options =
        MaxPoolOptions::new(kernel).with_stride([stride; 2]).with_padding([padding; 2]).with_ceil_mode(ceil);
    burn::tensor::module::max_pool2d(x.neg(), options).neg()
}

/// [`window_min`] over adaptive pooling's windows (PyTorch's: rows `⌊i·h/oh⌋ .. ⌈(i+1)·h/oh⌉`).
fn adaptive_window_min(x: Tensor<4>, [oh, ow]: [usize; 2]) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let span = |i: usize, n: usize, o: usize| (i * n / o, ((i + 1) * n).div_ceil(o));
    let rows: Vec<Tensor<4>> = (0..oh)
        .map(|i| {
            let (r0, r1) = span(i, h, oh);
            let cells: Vec<Tensor<4>> = (0..ow)
                .map(|j| {
                    let (c0, c1) = span(j, w, ow);
                    x.clone().narrow(2, r0, r1 - r0).narrow(3, c0, c1 - c0).min_dim(2).min_dim(3)
                })
                .collect();
            Tensor::cat(cells, 3)
        })
        .collect();
    Tensor::cat(rows, 2)
}

/// `a + b`, a residual connection's sum (in receptive-field mode the smaller of the two).
pub fn residual_sum(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    if is_receptive_field_mode() { a.min_pair(b) } else { a + b }
}

fn pool_out(
    x: &Tensor<4>,
    kind: &str,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil: bool,
) -> Option<(usize, usize, usize, usize)> {
    let [b, c, h, w] = x.dims();
    let out = |len| window_out(len, kernel, stride, padding, 1, ceil);
    match (out(h), out(w)) {
        (Some(ho), Some(wo)) => Some((b, c, ho, wo)),
        _ => {
            fault(format!("a {kernel}×{kernel} {kind} pool (padding {padding}) got a {h}×{w} feature map"));
            None
        }
    }
}

/// Adaptive average pooling to a fixed output size (PyTorch's `AdaptiveAvgPool2d`).
#[derive(Module, Debug)]
pub struct AdaptiveAvgPool2d {
    /// `[h, w]` of the output.
    pub output_size: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// Pools to `h×w`.
    pub fn new(h: usize, w: usize) -> Self {
        Self { output_size: [h, w] }
    }

    /// `[b, c, h, w]` → `[b, c, oh, ow]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if is_shape_only() {
            let [b, c, _, _] = x.dims();
            let [oh, ow] = self.output_size;
            return Tensor::zeros([b, c, oh, ow], &x.device());
        }
        let [_, _, h, w] = x.dims();
        let [oh, ow] = self.output_size;
        if (h, w) == (oh, ow) {
            return x;
        }
        if is_receptive_field_mode() {
            return adaptive_window_min(x, [oh, ow]);
        }
        if h % oh == 0 && w % ow == 0 {
            // Evenly divisible (7×7 → 1×1, 14×14 → 7×7): a plain average pool computes the same
            // windows, and ONNX exporters lower it where they cannot lower the adaptive op.
            let k = [h / oh, w / ow];
            return avg_pool2d(x, AvgPoolOptions::new(k).with_stride(k));
        }
        adaptive_avg_pool2d(x, self.output_size)
    }
}

// ---------------------------------------------------------------------------------------------
// Linear, activations, dropout
// ---------------------------------------------------------------------------------------------

/// How to build a [`Linear`].
#[derive(Debug, Clone)]
pub struct LinearConfig {
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
    /// Weight initializer (fan-in / fan-out as PyTorch).
    pub weight_init: Initializer,
    /// Bias initializer; `None` = PyTorch's default U(±1/√fan_in).
    pub bias_init: Option<Initializer>,
}

impl LinearConfig {
    /// A fully connected layer with PyTorch's default init.
    pub fn new(d_in: usize, d_out: usize) -> Self {
        Self { d_in, d_out, weight_init: pytorch_weight_init(), bias_init: None }
    }
    /// Sets the weight and bias initializers.
    pub fn init_with(mut self, weight: Initializer, bias: Option<Initializer>) -> Self {
        self.weight_init = weight;
        self.bias_init = bias;
        self
    }
    /// Builds the layer.
    pub fn init(&self, device: &Device) -> Linear {
        let (i, o) = (self.d_in, self.d_out);
        let bias = self.bias_init.clone().unwrap_or_else(|| pytorch_bias_init(i));
        Linear {
            weight: self.weight_init.init_with([i, o], Some(i), Some(o), device),
            bias: Some(bias.init_with([o], Some(i), Some(o), device)),
            d_in: i,
            d_out: o,
        }
    }
}

/// Fully connected layer. The weight is stored `[in, out]` (Burn's layout; burn-store transposes
/// PyTorch's `[out, in]` on import and export).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
}

impl Linear {
    /// `[b, in]` → `[b, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, d] = x.dims();
        if d != self.d_in {
            fault(format!("a linear layer expects {} input features, got {d}", self.d_in));
            return Tensor::zeros([b, self.d_out], &x.device());
        }
        count_macs(b * self.d_in * self.d_out);
        if is_shape_only() {
            return Tensor::zeros([b, self.d_out], &x.device());
        }
        if is_receptive_field_mode() {
            return x.min_dim(1).repeat_dim(1, self.d_out);
        }
        linear(x, self.weight.val(), self.bias.as_ref().map(Param::val))
    }
}

/// ReLU.
#[derive(Module, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Elementwise max(x, 0).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if is_shape_only() || is_receptive_field_mode() { x } else { relu(x) }
    }
}

/// Logistic sigmoid (LeNet's activation).
#[derive(Module, Debug, Default)]
pub struct Sigmoid;

impl Sigmoid {
    /// Elementwise 1 / (1 + e^−x).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if is_shape_only() || is_receptive_field_mode() { x } else { sigmoid(x) }
    }
}

/// Flattens `[b, c, h, w]` to `[b, c·h·w]`.
#[derive(Module, Debug, Default)]
pub struct Flatten;

impl Flatten {
    /// `[b, c, h, w]` → `[b, c·h·w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        x.flatten(1, 3)
    }
}

/// Inverted dropout, active only on an autodiff (training) device.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element.
    pub prob: f64,
}

impl Dropout {
    /// Dropout with probability `prob`.
    pub fn new(prob: f64) -> Self {
        Self { prob }
    }

    /// Identity in eval mode; zeroes and rescales in training mode.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.prob == 0.0 || is_shape_only() || is_eval_mode() || !x.device().is_autodiff() {
            return x;
        }
        let keep = 1.0 - self.prob;
        let mask = x.random_like(Distribution::Bernoulli(keep));
        x * mask * (1.0 / keep)
    }
}

// ---------------------------------------------------------------------------------------------
// Sequential building block
// ---------------------------------------------------------------------------------------------

/// One element of a sequential chain (`nn.Sequential` in PyTorch). Parameter-free elements
/// keep their index, so Burn paths equal PyTorch's `state_dict` keys (`features.3.weight`).
#[derive(Module, Debug)]
pub enum Layer {
    /// Convolution.
    Conv(Conv2d),
    /// Batch norm (1d or 2d).
    Norm(BatchNorm),
    /// ReLU.
    Relu(Relu),
    /// Sigmoid.
    Sigmoid(Sigmoid),
    /// Max pool.
    MaxPool(MaxPool2d),
    /// Average pool.
    AvgPool(AvgPool2d),
    /// Adaptive average pool.
    AdaptiveAvgPool(AdaptiveAvgPool2d),
    /// Dropout.
    Dropout(Dropout),
    /// Linear.
    Linear(Linear),
    /// A nested chain (a d2l block such as NiN's `nin_block`).
    Seq(Vec<Layer>),
}

// What `cnnzoo summary` calls each layer.
macro_rules! describe_as_type {
    ($($t:ty),* $(,)?) => { $(impl Describe for $t {})* };
}
describe_as_type!(BatchNorm, Relu, Sigmoid, Flatten, Dropout, AdaptiveAvgPool2d, Linear);

impl Describe for Conv2d {
    fn describe(&self) -> String {
        format!("Conv{k}x{k}", k = self.kernel)
    }
}
impl Describe for MaxPool2d {
    fn describe(&self) -> String {
        format!("MaxPool{k}x{k}", k = self.kernel)
    }
}
impl Describe for AvgPool2d {
    fn describe(&self) -> String {
        format!("AvgPool{k}x{k}", k = self.kernel)
    }
}
impl Describe for Layer {
    fn describe(&self) -> String {
        match self {
            Layer::Conv(m) => m.describe(),
            Layer::Norm(m) => m.describe(),
            Layer::Relu(m) => m.describe(),
            Layer::Sigmoid(m) => m.describe(),
            Layer::MaxPool(m) => m.describe(),
            Layer::AvgPool(m) => m.describe(),
            Layer::AdaptiveAvgPool(m) => m.describe(),
            Layer::Dropout(m) => m.describe(),
            Layer::Linear(m) => m.describe(),
            Layer::Seq(_) => "Sequential".into(),
        }
    }
}
impl Describe for Vec<Layer> {
    fn describe(&self) -> String {
        "Sequential".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::take_fault;

    #[test]
    fn window_out_matches_pytorch() {
        // AlexNet d2l conv1: 224, k11, s4, p1 → 54; pool 3/2 → 26.
        assert_eq!(window_out(224, 11, 4, 1, 1, false), Some(54));
        assert_eq!(window_out(54, 3, 2, 0, 1, false), Some(26));
        // torchvision GoogLeNet: 112 → maxpool(3,2,ceil) → 56; 14 → maxpool(2,2,ceil) → 7.
        assert_eq!(window_out(112, 3, 2, 0, 1, true), Some(56));
        assert_eq!(window_out(14, 2, 2, 0, 1, true), Some(7));
        // Ceil mode drops a window that would start in the right padding: 5, k3, s2, p1.
        assert_eq!(window_out(5, 3, 2, 1, 1, true), Some(3));
        assert_eq!(window_out(2, 3, 1, 0, 1, false), None);
    }

    #[test]
    fn shape_fault_instead_of_panic() {
        let dev = Device::flex();
        let conv = Conv2dConfig::new(1, 4, 5).init(&dev);
        take_fault();
        let y = conv.forward(Tensor::zeros([2, 1, 3, 3], &dev));
        assert_eq!(y.dims()[..2], [2, 4]);
        let fault = take_fault().expect("fault recorded");
        assert!(fault.reason.contains("5×5"), "{}", fault.reason);
        assert!(take_fault().is_none());
    }

    #[test]
    fn batch_norm_running_stats_follow_pytorch() {
        let dev = Device::flex().autodiff();
        let bn = BatchNormConfig::new(1).init(&dev);
        // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased var 5/3.
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &dev).reshape([4, 1]);
        let _ = bn.forward(x);
        let mean: Vec<f32> = bn.running_mean.value_sync().into_data().try_to_vec::<f32>().unwrap();
        let var: Vec<f32> = bn.running_var.value_sync().into_data().try_to_vec::<f32>().unwrap();
        assert!((mean[0] - 0.25).abs() < 1e-6, "{mean:?}");
        assert!((var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-5, "{var:?}");
    }
}
