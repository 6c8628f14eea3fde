//! The model registry: one row per preset, iterated by `cnnzoo list`, name lookup, the tests
//! and the benchmarks. Names are torchvision's (`resnet18`, `vgg11_bn`); the d2l Fashion-MNIST
//! nets carry a `d2l_` prefix.

use serde::Serialize;

use crate::data::transforms::Preprocess;
use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::models::alexnet::AlexNetConfig;
use crate::models::densenet::DenseNetConfig;
use crate::models::googlenet::GoogLeNetConfig;
use crate::models::lenet::LeNetConfig;
use crate::models::nin::NinConfig;
use crate::models::resnet::{BlockKind, ResNetConfig};
use crate::models::vgg::{self, VggConfig};
use crate::recipe::Recipe;

/// Where a preset comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// d2l.ai, Fashion-MNIST (1 channel, 10 classes), the chapter's exact definition.
    D2l,
    /// torchvision, ImageNet (3 channels, 1000 classes by default).
    Torchvision,
}

impl Flavour {
    /// "d2l" or "torchvision".
    pub fn as_str(self) -> &'static str {
        match self {
            Flavour::D2l => "d2l",
            Flavour::Torchvision => "torchvision",
        }
    }
}

/// Which names a preset's classes have at its default class count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Labels {
    /// Fashion-MNIST's ten classes (the d2l presets).
    FashionMnist,
    /// ImageNet-1k's classes (the torchvision presets).
    Imagenet,
}

impl Labels {
    /// The class names, in label order.
    pub fn names(self) -> Vec<String> {
        match self {
            Labels::FashionMnist => crate::data::FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            Labels::Imagenet => {
                crate::data::transforms::imagenet_classes().into_iter().map(String::from).collect()
            }
        }
    }
}

/// One registry row: everything cnnzoo knows about a preset, in one place (as torchvision's
/// weights enums hold a model's transforms, categories and metrics).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Registry name, e.g. `resnet18`.
    pub name: &'static str,
    /// Family, e.g. `ResNet`.
    pub family: &'static str,
    /// Source of the definition.
    pub flavour: Flavour,
    /// Default input `[c, h, w]`.
    pub input: [usize; 3],
    /// Default number of classes.
    pub num_classes: usize,
    /// Names of those classes.
    pub labels: Labels,
    /// How an image is prepared for the default input (`predict`, imported weights).
    pub preprocess: Preprocess,
    /// Default training recipe (`train`, `bench` batch sizes, `compare`).
    pub recipe: Recipe,
    /// Published parameter count at the default classes and channels.
    pub params: usize,
    /// One-line description.
    pub about: &'static str,
    build: fn(num_classes: usize, in_channels: usize) -> ModelConfig,
}

impl Entry {
    /// The config at the default classes and channels.
    pub fn config(&self) -> ModelConfig {
        (self.build)(self.num_classes, self.input[0])
    }

    /// The config with other classes and/or input channels.
    pub fn config_with(&self, num_classes: usize, in_channels: usize) -> ModelConfig {
        (self.build)(num_classes, in_channels)
    }

    /// The input `train` uses by default: the d2l input for d2l presets; Fashion-MNIST's one
    /// channel at the preset's side for torchvision presets.
    pub fn train_input(&self) -> [usize; 3] {
        match self.flavour {
            Flavour::D2l => self.input,
            Flavour::Torchvision => [1, self.input[1], self.input[2]],
        }
    }

    /// The preprocessing for weights of this preset with `in_channels` input channels: the
    /// preset's own at its own channel count, else grey levels.
    pub fn preprocess_for(&self, in_channels: usize) -> Preprocess {
        if in_channels == self.input[0] { self.preprocess } else { Preprocess::Grey }
    }

    /// Whether the preset is one of the seven models of d2l's comparison ([`D2L_SEVEN`]).
    pub fn in_d2l_seven(&self) -> bool {
        D2L_SEVEN.contains(&self.name)
    }
}

macro_rules! d2l {
    ($name:literal, $family:literal, $side:literal, $params:literal, ($lr:literal, $batch:literal), $about:literal, $cfg:expr) => {
        Entry {
            name: $name,
            family: $family,
            flavour: Flavour::D2l,
            input: [1, $side, $side],
            num_classes: 10,
            labels: Labels::FashionMnist,
            preprocess: Preprocess::Grey,
            recipe: Recipe::d2l($lr, $batch),
            params: $params,
            about: $about,
            build: |num_classes, in_channels| ModelConfig::from($cfg).with_io(num_classes, in_channels),
        }
    };
}

macro_rules! tv {
    ($name:literal, $family:literal, $params:literal, $about:literal, $build:expr) => {
        Entry {
            name: $name,
            family: $family,
            flavour: Flavour::Torchvision,
            input: [3, 224, 224],
            num_classes: 1000,
            labels: Labels::Imagenet,
            preprocess: Preprocess::Imagenet,
            recipe: Recipe::torchvision(0.01, 128),
            params: $params,
            about: $about,
            build: $build,
        }
    };
}

fn resnet(layers: [usize; 4], block: BlockKind) -> impl Fn(usize, usize) -> ModelConfig {
    move |n, c| ModelConfig::ResNet(ResNetConfig::torchvision(layers, block, n, c))
}

/// Every preset, d2l first (in chapter order), then torchvision.
pub const MODELS: &[Entry] =
    &[
        d2l!(
            "d2l_lenet",
            "LeNet",
            28,
            61_706,
            (0.9, 256),
            "LeNet-5, sigmoid + average pooling (d2l 7.6)",
            LeNetConfig::d2l(false)
        ),
        d2l!(
            "d2l_lenet_bn",
            "LeNet",
            28,
            44_878,
            (1.0, 256),
            "LeNet with batch norm (d2l 8.5)",
            LeNetConfig::d2l(true)
        ),
        d2l!(
            "d2l_alexnet",
            "AlexNet",
            224,
            46_764_746,
            (0.01, 128),
            "single-tower AlexNet, no LRN (d2l 8.1)",
            AlexNetConfig::d2l()
        ),
        d2l!(
            "d2l_vgg11",
            "VGG",
            224,
            128_806_154,
            (0.05, 128),
            "VGG-11, full width (d2l 8.2)",
            VggConfig::d2l(1)
        ),
        d2l!(
            "d2l_vgg11_r4",
            "VGG",
            224,
            43_093_322,
            (0.05, 128),
            "VGG-11, channels / 4 — the one d2l trains (d2l 8.2)",
            VggConfig::d2l(4)
        ),
        d2l!("d2l_nin", "NiN", 224, 1_992_166, (0.1, 128), "Network in Network (d2l 8.3)", NinConfig::d2l()),
        d2l!(
            "d2l_googlenet",
            "GoogLeNet",
            96,
            5_977_530,
            (0.1, 128),
            "GoogLeNet without BN or aux heads (d2l 8.4)",
            GoogLeNetConfig::d2l()
        ),
        d2l!(
            "d2l_resnet18",
            "ResNet",
            96,
            11_178_378,
            (0.05, 256),
            "ResNet-18, biased 1x1 shortcut without BN (d2l 8.6)",
            ResNetConfig::d2l()
        ),
        d2l!(
            "d2l_densenet",
            "DenseNet",
            96,
            758_226,
            (0.1, 256),
            "DenseNet, 4 blocks of 4, growth 32 (d2l 8.7)",
            DenseNetConfig::d2l()
        ),
        tv!("alexnet", "AlexNet", 61_100_840, "AlexNet, one-weird-trick variant", |n, c| {
            ModelConfig::AlexNet(AlexNetConfig::torchvision(n, c))
        }),
        tv!("vgg11", "VGG", 132_863_336, "VGG-11 (config A)", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG11, false, n, c)
        )),
        tv!("vgg11_bn", "VGG", 132_868_840, "VGG-11 with batch norm", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG11, true, n, c)
        )),
        tv!("vgg13", "VGG", 133_047_848, "VGG-13 (config B)", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG13, false, n, c)
        )),
        tv!("vgg13_bn", "VGG", 133_053_736, "VGG-13 with batch norm", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG13, true, n, c)
        )),
        tv!("vgg16", "VGG", 138_357_544, "VGG-16 (config D)", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG16, false, n, c)
        )),
        tv!("vgg16_bn", "VGG", 138_365_992, "VGG-16 with batch norm", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG16, true, n, c)
        )),
        tv!("vgg19", "VGG", 143_667_240, "VGG-19 (config E)", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG19, false, n, c)
        )),
        tv!("vgg19_bn", "VGG", 143_678_248, "VGG-19 with batch norm", |n, c| ModelConfig::Vgg(
            VggConfig::torchvision(vgg::VGG19, true, n, c)
        )),
        tv!("googlenet", "GoogLeNet", 6_624_904, "Inception v1 with BN (aux heads off)", |n, c| {
            ModelConfig::GoogLeNet(GoogLeNetConfig::torchvision(n, c))
        }),
        tv!("resnet18", "ResNet", 11_689_512, "ResNet-18 (v1.5)", |n, c| resnet(
            [2, 2, 2, 2],
            BlockKind::Basic
        )(n, c)),
        tv!("resnet34", "ResNet", 21_797_672, "ResNet-34 (v1.5)", |n, c| resnet(
            [3, 4, 6, 3],
            BlockKind::Basic
        )(n, c)),
        tv!("resnet50", "ResNet", 25_557_032, "ResNet-50 (v1.5, stride on the 3x3)", |n, c| resnet(
            [3, 4, 6, 3],
            BlockKind::Bottleneck
        )(n, c)),
        tv!("resnet101", "ResNet", 44_549_160, "ResNet-101 (v1.5)", |n, c| resnet(
            [3, 4, 23, 3],
            BlockKind::Bottleneck
        )(n, c)),
        tv!("resnet152", "ResNet", 60_192_808, "ResNet-152 (v1.5)", |n, c| resnet(
            [3, 8, 36, 3],
            BlockKind::Bottleneck
        )(n, c)),
        tv!("densenet121", "DenseNet", 7_978_856, "DenseNet-BC-121, k=32", |n, c| ModelConfig::DenseNet(
            DenseNetConfig::torchvision(32, [6, 12, 24, 16], 64, n, c)
        )),
        tv!("densenet161", "DenseNet", 28_681_000, "DenseNet-BC-161, k=48", |n, c| ModelConfig::DenseNet(
            DenseNetConfig::torchvision(48, [6, 12, 36, 24], 96, n, c)
        )),
        tv!("densenet169", "DenseNet", 14_149_480, "DenseNet-BC-169, k=32", |n, c| ModelConfig::DenseNet(
            DenseNetConfig::torchvision(32, [6, 12, 32, 32], 64, n, c)
        )),
        tv!("densenet201", "DenseNet", 20_013_928, "DenseNet-BC-201, k=32", |n, c| ModelConfig::DenseNet(
            DenseNetConfig::torchvision(32, [6, 12, 48, 32], 64, n, c)
        )),
    ];

/// The seven models of d2l's "Modern CNNs" comparison, as d2l trains them (VGG at ratio 4).
pub const D2L_SEVEN: [&str; 7] =
    ["d2l_lenet", "d2l_alexnet", "d2l_vgg11_r4", "d2l_nin", "d2l_googlenet", "d2l_resnet18", "d2l_densenet"];

/// Short names for d2l presets that no torchvision model shares (`cnnzoo train lenet`).
pub const ALIASES: &[(&str, &str)] =
    &[("lenet", "d2l_lenet"), ("lenet_bn", "d2l_lenet_bn"), ("bn_lenet", "d2l_lenet_bn"), ("nin", "d2l_nin")];

/// Looks a preset up by name (case-insensitive, `-` and `_` equivalent); an unknown name is an
/// error that suggests the nearest names.
pub fn find(name: &str) -> Result<&'static Entry> {
    // Case, `-` and `_` do not matter: `ResNet-18`, `vgg11bn` and `D2L_LeNet` all resolve.
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let wanted = norm(name);
    let target =
        ALIASES.iter().find(|(alias, _)| norm(alias) == wanted).map_or(wanted.clone(), |a| norm(a.1));
    if let Some(e) = MODELS.iter().find(|e| norm(e.name) == target) {
        return Ok(e);
    }
    let wanted = name.to_ascii_lowercase().replace('-', "_");
    let mut scored: Vec<(usize, &str)> = MODELS
        .iter()
        .map(|e| {
            let d = levenshtein(&wanted, e.name);
            // "resnet" should suggest resnet18…, "lenet" should suggest d2l_lenet.
            let d = if e.name.contains(&wanted) && wanted.len() >= 3 { d.min(2) } else { d };
            (d, e.name)
        })
        .collect();
    scored.sort();
    let best = scored.first().map_or(usize::MAX, |s| s.0);
    let limit = (wanted.len() / 2).max(2);
    let suggestions = scored
        .iter()
        .filter(|(d, _)| *d <= limit && *d <= best + 1)
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect();
    Err(Error::UnknownModel { name: name.to_string(), suggestions })
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = MODELS.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODELS.len());
    }

    #[test]
    fn lookup_and_suggestions() {
        assert_eq!(find("ResNet-18").unwrap().name, "resnet18");
        let Err(Error::UnknownModel { suggestions, .. }) = find("resnet19") else { panic!() };
        assert_eq!(suggestions[0], "resnet18");
        assert_eq!(find("lenet").unwrap().name, "d2l_lenet");
        let Err(Error::UnknownModel { suggestions, .. }) = find("densnet") else { panic!() };
        assert!(suggestions.iter().all(|s| s.starts_with("densenet")), "{suggestions:?}");
        let Err(Error::UnknownModel { suggestions, .. }) = find("qqqqqqqqq") else { panic!() };
        assert!(suggestions.is_empty());
    }
}
