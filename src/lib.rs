//! cnnzoo: the classic convolutional networks — LeNet, AlexNet, VGG, NiN, GoogLeNet, ResNet,
//! DenseNet — in the d2l.ai Fashion-MNIST flavour and the torchvision ImageNet flavour, on Burn.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::flex();
//! let entry = cnnzoo::registry::find("d2l_lenet").unwrap();
//! let model = entry.config().init(&device);
//! let logits = model.try_forward(entry.name, Tensor::zeros([2, 1, 28, 28], &device)).unwrap();
//! assert_eq!(logits.dims(), [2, 10]);
//! ```

// Module enums hold whole sub-networks by value: Burn's `Module` derive walks them in place, and
// boxing would add an indirection to every forward for no memory that matters (one model).
#![allow(clippy::large_enum_variant)]

// Layers, bottom up (rustfmt lists the modules alphabetically; no module uses one above its own
// layer): `error`, `fsutil`, `device`, `instrument`, `plot` → `recipe`, `data` → `layers`, `probe` →
// `models`, `model` → `registry`, `inspect`, `interop` → `train` → `predict`, `bench`, `compare`,
// `visualize` → `serve`, `experiment`.
pub mod bench;
pub mod compare;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod fsutil;
pub mod inspect;
pub mod instrument;
pub mod interop;
pub mod layers;
pub mod model;
pub mod models;
pub mod plot;
pub mod predict;
pub mod probe;
pub mod recipe;
pub mod registry;
pub mod serve;
pub mod train;
pub mod visualize;

/// The CPU kernels under [`layers`] (re-exported: the reference switch, the allocator setting).
pub use cnnzoo_kernels as kernels;
pub use error::{Error, Result};
pub use model::{Model, ModelConfig};
