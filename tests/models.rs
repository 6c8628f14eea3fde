//! Registry-wide model tests: published parameter counts, a forward on every preset, shape
//! walks against d2l's printed shapes, and clear errors for inputs that do not fit.

use burn::tensor::{Device, Tensor};
use cnnzoo::Error;
use cnnzoo::inspect::{SummaryOptions, summarize};
use cnnzoo::model::ModelConfig;
use cnnzoo::models::googlenet::GoogLeNetConfig;
use cnnzoo::probe::ShapeProbe;
use cnnzoo::registry::{self, Flavour, MODELS};

#[test]
fn parameter_counts_equal_the_published_ones() {
    let device = Device::flex();
    for e in MODELS {
        let model = e.config().init(&device);
        assert_eq!(cnnzoo::instrument::num_params(&model), e.params, "{}", e.name);
    }
}

#[test]
fn googlenet_aux_heads_add_their_published_parameters() {
    let mut cfg = GoogLeNetConfig::torchvision(1000, 3);
    cfg.aux_logits = true;
    let model = ModelConfig::GoogLeNet(cfg).init(&Device::flex());
    assert_eq!(cnnzoo::instrument::num_params(&model), 13_004_888);
}

/// The input each forward test uses: d2l nets at their own size (their flatten is fixed), and
/// torchvision nets at a small size, since only the structure is under test.
fn test_input(e: &registry::Entry) -> [usize; 3] {
    match e.flavour {
        Flavour::D2l => e.input,
        Flavour::Torchvision => match e.family {
            "AlexNet" => [3, 63, 63],
            "GoogLeNet" | "DenseNet" => [3, 32, 32],
            _ => [3, 32, 32],
        },
    }
}

#[test]
fn every_preset_gives_finite_logits_of_the_right_shape() {
    let device = Device::flex();
    for e in MODELS {
        let [c, h, w] = test_input(e);
        // Few classes keep the torchvision heads cheap; the trunk is unchanged.
        let classes = 7;
        let model = e.config_with(classes, c).init(&device);
        let x = Tensor::<4>::random([2, c, h, w], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let y = model.try_forward(e.name, x).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(y.dims(), [2, classes], "{}", e.name);
        let values: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{}: {values:?}", e.name);
    }
}

#[test]
fn shape_only_inference_agrees_with_the_real_forward() {
    let device = Device::flex();
    for e in MODELS {
        let [c, h, w] = test_input(e);
        let model = e.config_with(5, c).init(&device);
        let walk = |shape_only: bool| {
            let mut probe = ShapeProbe::default();
            let x = Tensor::zeros([1, c, h, w], &device);
            let run = || model.try_forward_with(e.name, x, &mut probe).map(|_| ());
            if shape_only { cnnzoo::instrument::shape_only(run) } else { run() }.unwrap();
            probe.taps.into_iter().map(|t| (t.path, t.shape, t.macs)).collect::<Vec<_>>()
        };
        assert_eq!(walk(true), walk(false), "{}", e.name);
    }
}

fn walk(name: &str, depth: usize) -> Vec<(String, Vec<usize>)> {
    let device = Device::flex();
    let e = registry::find(name).unwrap();
    let model = e.config().init(&device);
    let [c, h, w] = e.input;
    let opts = SummaryOptions { depth, shape_only: true };
    let s = summarize(e.name, &model, [1, c, h, w], opts, &device).unwrap();
    s.rows.into_iter().map(|r| (r.name, r.output)).collect()
}

#[test]
fn d2l_alexnet_walks_54_26_26_12_12_5() {
    let rows = walk("d2l_alexnet", 2);
    let sides: Vec<usize> =
        rows.iter().filter(|(name, _)| name.starts_with("features.")).map(|(_, s)| s[2]).collect();
    assert_eq!(sides, [54, 54, 26, 26, 26, 12, 12, 12, 12, 12, 12, 12, 5]);
    let flat = rows.iter().find(|(n, _)| n == "flatten").unwrap();
    assert_eq!(flat.1, [1, 6400]);
    assert_eq!(rows.last().unwrap().1, [1, 10]);
}

#[test]
fn d2l_resnet18_walks_24_24_12_6_3() {
    let rows = walk("d2l_resnet18", 1);
    let side = |n: &str| rows.iter().find(|(name, _)| name == n).unwrap().1[2];
    let sides: Vec<usize> = ["maxpool", "layer1", "layer2", "layer3", "layer4"].map(side).to_vec();
    assert_eq!(sides, [24, 24, 12, 6, 3]);
}

#[test]
fn d2l_densenet_transitions_keep_channels_in_check() {
    let rows = walk("d2l_densenet", 2);
    let channels: Vec<usize> = rows
        .iter()
        .filter(|(n, _)| n.contains("denseblock") || n.contains("transition") || n.ends_with("pool0"))
        .map(|(_, s)| s[1])
        .collect();
    assert_eq!(channels, [64, 192, 96, 224, 112, 240, 120, 248]);
}

#[test]
fn d2l_googlenet_walks_24_12_6_3_1() {
    let rows = walk("d2l_googlenet", 1);
    let side = |n: &str| rows.iter().find(|(name, _)| name == n).unwrap().1[2];
    assert_eq!(["maxpool1", "maxpool2", "maxpool3", "maxpool4", "avgpool"].map(side), [24, 12, 6, 3, 1]);
}

#[test]
fn summary_macs_match_d2l_table() {
    // reference.md §1.1 [calc]: forward MACs per image at the d2l resolution, in millions.
    let expected = [
        ("d2l_lenet", 0.4),
        ("d2l_lenet_bn", 0.3),
        ("d2l_alexnet", 938.0),
        ("d2l_vgg11", 7547.0),
        ("d2l_vgg11_r4", 512.0),
        ("d2l_nin", 762.0),
        ("d2l_googlenet", 276.0),
        ("d2l_resnet18", 319.0),
        ("d2l_densenet", 129.0),
    ];
    let device = Device::flex();
    for (name, millions) in expected {
        let e = registry::find(name).unwrap();
        let model = e.config().init(&device);
        let [c, h, w] = e.input;
        let opts = SummaryOptions { depth: 1, shape_only: true };
        let s = summarize(name, &model, [1, c, h, w], opts, &device).unwrap();
        let got = s.macs as f64 / 1e6;
        let tolerance = if millions < 1.0 { 0.05 } else { 0.5 };
        assert!((got - millions).abs() <= tolerance, "{name}: {got:.2}M MACs, expected {millions}M");
    }
}

#[test]
fn torchvision_macs_match_published_gflops() {
    // torchvision's `_ops` (labelled GFLOPS, actually GMACs) at 3×224×224.
    let expected = [
        ("alexnet", 0.714),
        ("vgg16", 15.470),
        ("googlenet", 1.498),
        ("resnet18", 1.814),
        ("resnet50", 4.089),
        ("densenet121", 2.834),
    ];
    let device = Device::flex();
    for (name, gmacs) in expected {
        let e = registry::find(name).unwrap();
        let model = e.config().init(&device);
        let opts = SummaryOptions { depth: 1, shape_only: true };
        let s = summarize(name, &model, [1, 3, 224, 224], opts, &device).unwrap();
        let got = s.macs as f64 / 1e9;
        // torchvision also counts pooling/BN/elementwise ops; conv + linear is within 1.5 %.
        assert!((got - gmacs).abs() / gmacs < 0.015, "{name}: {got:.3} GMACs, expected {gmacs}");
    }
}

#[test]
fn any_admissible_input_works() {
    let device = Device::flex();
    let e = registry::find("resnet18").unwrap();
    let model = e.config_with(10, 1).init(&device);
    let y = model.try_forward("resnet18", Tensor::zeros([1, 1, 64, 64], &device)).unwrap();
    assert_eq!(y.dims(), [1, 10]);
}

#[test]
fn too_small_input_names_the_model_and_the_minimum() {
    let device = Device::flex();
    let e = registry::find("alexnet").unwrap();
    let model = e.config().init(&device);
    let err = model.try_forward("alexnet", Tensor::zeros([1, 3, 40, 40], &device)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InputShape { .. }));
    assert!(msg.contains("alexnet") && msg.contains("at least 3×63×63"), "{msg}");

    let e = registry::find("d2l_lenet").unwrap();
    let model = e.config().init(&device);
    let err = model.try_forward("d2l_lenet", Tensor::zeros([1, 1, 32, 32], &device)).unwrap_err().to_string();
    assert!(err.contains("1×28×28 up to 1×31×31"), "{err}");

    let err = model.try_forward("d2l_lenet", Tensor::zeros([1, 3, 28, 28], &device)).unwrap_err().to_string();
    assert!(err.contains("expects 1 input channels, got 3"), "{err}");
}

/// The receptive field (side) of every stage at `depth` of `name` for a `[c, h, w]` input.
fn fields(name: &str, input: [usize; 3], depth: usize) -> Vec<(String, cnnzoo::inspect::ReceptiveField)> {
    let device = Device::flex();
    let model = registry::find(name).unwrap().config().init(&device);
    cnnzoo::inspect::receptive_fields(name, &model, input, &device)
        .unwrap()
        .into_iter()
        .filter(|(p, _)| p.split('.').count() == depth)
        .collect()
}

fn side(fields: &[(String, cnnzoo::inspect::ReceptiveField)], path: &str) -> usize {
    let f = fields.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("no stage {path}")).1;
    assert_eq!(f.height, f.width, "{path}");
    f.height
}

#[test]
fn receptive_fields_are_the_textbook_ones() {
    // VGG-16: the published walk (Araujo et al. 2019, "Computing receptive fields of CNNs").
    let vgg = fields("vgg16", [3, 224, 224], 2);
    let convs_and_pools: Vec<usize> = vgg
        .iter()
        .filter(|(p, _)| {
            p.starts_with("features.")
                && ![1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29]
                    .contains(&p[9..].parse::<usize>().unwrap())
        })
        .map(|(_, f)| f.height)
        .collect();
    assert_eq!(convs_and_pools, [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]);
    // ResNet-18: 435 at the end of layer4, once the input is large enough to hold it.
    let resnet = fields("resnet18", [3, 512, 512], 1);
    let walk: Vec<usize> = ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        .iter()
        .map(|p| side(&resnet, p))
        .collect();
    assert_eq!(walk, [7, 11, 43, 99, 211, 435]);
    // Branches: GoogLeNet's 5×5 branch (d2l) sets inception3a's field; torchvision's (3×3) does not.
    assert_eq!(side(&fields("d2l_googlenet", [1, 96, 96], 1), "inception3a"), 59);
    assert_eq!(side(&fields("googlenet", [3, 224, 224], 1), "inception3a"), 43);
    // Concatenation: a dense block's output holds its input's channels and each layer's.
    let dense = fields("densenet121", [3, 512, 512], 2);
    assert_eq!(side(&dense, "features.denseblock1"), 11 + 6 * 2 * 4);
    assert_eq!(side(&dense, "features.denseblock2"), 63 + 12 * 2 * 8);
    // LeNet: where the first convolution's centre unit looks, and the classifier sees it all.
    let lenet = fields("d2l_lenet", [1, 28, 28], 2);
    let first = lenet.iter().find(|(p, _)| p == "features.0").unwrap().1;
    assert_eq!((first.rows, first.cols, first.whole_input), ([12, 16], [12, 16], false));
    assert_eq!(side(&lenet, "features.5"), 16);
    let head = lenet.iter().find(|(p, _)| p == "classifier.4").unwrap().1;
    assert!(head.whole_input && head.height == 28);
    // The summary shows them.
    let device = Device::flex();
    let model = registry::find("d2l_lenet").unwrap().config().init(&device);
    let table = summarize(
        "d2l_lenet",
        &model,
        [1, 1, 28, 28],
        SummaryOptions { depth: 2, shape_only: true },
        &device,
    )
    .unwrap()
    .to_table();
    assert!(
        table.contains("recept. field") && table.contains("14×14") && table.contains("28×28 (all)"),
        "{table}"
    );
}
