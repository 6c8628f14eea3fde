//! What a network sees, checked against PyTorch: Grad-CAM, Grad-CAM++ and saliency of models
//! with the shared synthetic weights on a fixed image (fixtures from
//! `tests/fixtures/make_cam_fixtures.py`), the default stage per family, SmoothGrad, the
//! model-randomisation sanity check, and `cnnzoo visualize` end to end.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo::visualize::{self, Map};
use cnnzoo::{interop, registry};

fn fixture() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cam/cam.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// The largest difference relative to the largest magnitude of `want` (maps differ in scale).
fn rel_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max) / scale
}

/// Model `name` with the synthetic parity weights, and the fixture's image.
fn model_and_image(case: &serde_json::Value) -> (cnnzoo::Model, Tensor<4>) {
    let device = Device::flex();
    let name = case["model"].as_str().unwrap();
    let chw: Vec<usize> =
        case["input"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let entry = registry::find(name).unwrap();
    let model = entry.config_with(10, chw[0]).init(&device);
    let tensors = interop::synthetic_tensors(&model).unwrap();
    let (model, _) = interop::apply_checked(model, tensors, Path::new("synthetic"), name).unwrap();
    let n = chw.iter().product::<usize>();
    let pixels: Vec<f32> =
        (0..n).map(|i| (0.5 + 0.5 * (0.37 * i as f64).sin() * (0.011 * i as f64).cos()) as f32).collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, chw[0], chw[1], chw[2]]), &device);
    (model, x)
}

/// A LeNet-BN trained on the fixture by the binary (with `args`, e.g. the epochs) in `dir/run`:
/// the fixture's directory and the run directory.
fn trained_lenet_bn(dir: &Path, args: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let run = dir.join("run");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(["train", "d2l_lenet_bn", "--data", data.to_str().unwrap()])
        .args(args)
        .args(["--test-subset", "50", "--out", run.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (data, run)
}

#[test]
fn grad_cam_grad_cam_pp_and_saliency_match_pytorch() {
    let device = Device::flex();
    for case in fixture()["cases"].as_array().unwrap() {
        let name = case["model"].as_str().unwrap();
        let (model, x) = model_and_image(case);
        let class = case["class"].as_u64().unwrap() as usize;
        let layer = case["layer"].as_str().unwrap();
        // The fixture's class is the predicted one for the cases that asked for it.
        let cam = visualize::grad_cam(&model, name, x.clone(), layer, Some(class), &device).unwrap();
        assert_eq!(cam.class, class);
        let want_p = case["probability"].as_f64().unwrap() as f32;
        assert!(
            (cam.probability - want_p).abs() <= 1e-4 * want_p.max(1e-3),
            "{name}: p {} vs {want_p}",
            cam.probability
        );
        let act: Vec<usize> =
            case["activation"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(cam.activation.to_vec(), act, "{name}");
        let want = floats(&case["gradcam"]);
        assert!(want.iter().any(|&v| v > 0.0), "{name}: a fixture map that is all zero tests nothing");
        let d = rel_diff(&cam.gradcam.values, &want);
        assert!(d < 1e-4, "{name}: Grad-CAM differs by {d} (relative)");
        let d = rel_diff(&cam.gradcam_pp.values, &floats(&case["gradcam_pp"]));
        assert!(d < 1e-4, "{name}: Grad-CAM++ differs by {d} (relative)");
        let (c, sal) = visualize::saliency(&model, name, x, Some(class), &device).unwrap();
        assert_eq!(c, class);
        let d = rel_diff(&sal.values, &floats(&case["saliency"]));
        assert!(d < 1e-4, "{name}: saliency differs by {d} (relative)");
    }
}

#[test]
fn the_default_stage_is_the_last_convolutional_one_and_bad_names_are_clear() {
    let device = Device::flex();
    for (name, want) in [
        ("d2l_lenet", "features"),
        ("d2l_resnet18", "layer4"),
        ("d2l_nin", "features"),
        ("d2l_googlenet", "inception5b"),
        ("d2l_densenet", "features"),
        ("resnet18", "layer4"),
        ("alexnet", "features"),
    ] {
        let entry = registry::find(name).unwrap();
        let model = entry.config().init(&device);
        let input = entry.input;
        assert_eq!(visualize::default_layer(&model, entry.name, input, &device).unwrap(), want, "{name}");
    }
    let case = &fixture()["cases"][0];
    let (model, x) = model_and_image(case);
    let err = visualize::grad_cam(&model, "d2l_lenet", x.clone(), "features.9", None, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`features.9` is not a stage") && err.contains("classifier"), "{err}");
    let err =
        visualize::grad_cam(&model, "d2l_lenet", x, "features", Some(10), &device).unwrap_err().to_string();
    assert!(err.contains("--class") && err.contains("10 classes"), "{err}");
}

#[test]
fn smoothgrad_is_saliency_without_noise_and_reproducible_with_it() {
    let device = Device::flex();
    let case = &fixture()["cases"][0];
    let (model, x) = model_and_image(case);
    let (_, plain) = visualize::saliency(&model, "d2l_lenet", x.clone(), Some(8), &device).unwrap();
    let (_, quiet) =
        visualize::smoothgrad(&model, "d2l_lenet", x.clone(), Some(8), 4, 0.0, 1, &device).unwrap();
    assert!(rel_diff(&quiet.values, &plain.values) < 1e-6);
    let noisy = |seed| {
        visualize::smoothgrad(&model, "d2l_lenet", x.clone(), Some(8), 6, 0.2, seed, &device).unwrap().1
    };
    let (a, b) = (noisy(7), noisy(7));
    assert_eq!(a, b);
    assert!(rel_diff(&a.values, &plain.values) > 1e-3, "noise changed nothing");
    assert_eq!((a.height, a.width), (28, 28));
}

/// Spearman-free sanity check (Adebayo et al. 2018): a trained model's Grad-CAM must differ from
/// that of the same architecture with freshly drawn weights.
#[test]
fn maps_of_a_trained_model_differ_from_those_of_a_randomised_one() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained_lenet_bn(dir.path(), &["--epochs", "2", "--batch-size", "32"]);
    let trained = cnnzoo::train::load_run(&run, &device).unwrap();
    let fresh = trained.config.model_config.init(&device);
    let d2l = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &data).unwrap();
    let mut total = 0.0;
    for i in 0..8 {
        let (x, _) = d2l.test.batch(&[i], [28, 28], &device);
        let map = |m: &cnnzoo::Model| -> Map {
            let cam = visualize::grad_cam(
                m,
                "d2l_lenet_bn",
                x.clone(),
                "features",
                Some(usize::from(d2l.test.labels[i])),
                &device,
            )
            .unwrap();
            cam.gradcam.upsampled([28, 28])
        };
        let (a, b) = (map(&trained.model), map(&fresh));
        total +=
            a.values.iter().zip(&b.values).map(|(p, q)| (p - q).abs()).sum::<f32>() / a.values.len() as f32;
    }
    assert!(total / 8.0 > 0.05, "trained and random maps are nearly the same: mean |Δ| {}", total / 8.0);
}

#[test]
fn visualize_writes_the_maps_and_a_page() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained_lenet_bn(dir.path(), &["--epochs", "1"]);
    let bin = env!("CARGO_BIN_EXE_cnnzoo");
    let img = dir.path().join("boot.png");
    let d2l = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &data).unwrap();
    image::GrayImage::from_raw(28, 28, d2l.test.images[..784].to_vec()).unwrap().save(&img).unwrap();
    let vis = dir.path().join("vis");
    let out = std::process::Command::new(bin)
        .args(["visualize", run.to_str().unwrap(), img.to_str().unwrap(), "--out", vis.to_str().unwrap()])
        .args(["--class", "ankle boot", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["class_name"], "ankle boot");
    assert_eq!(v["layer"], "features");
    for f in [
        "gradcam.png",
        "gradcam-pp.png",
        "saliency.png",
        "smoothgrad.png",
        "filters.png",
        "features-features.png",
        "index.html",
    ] {
        assert!(vis.join(f).is_file(), "{f} missing");
    }
    let png = image::open(vis.join("gradcam.png")).unwrap();
    assert_eq!((png.width(), png.height()), (28, 28));
    let html = std::fs::read_to_string(vis.join("index.html")).unwrap();
    assert!(html.contains("ankle boot") && html.contains("gradcam.png") && html.contains("filters.png"));
    // Bad stage and class names are errors naming what exists.
    for (flag, value, named) in [("--layer", "layer4", "its stages are"), ("--class", "sock", "ankle boot")] {
        let out = std::process::Command::new(bin)
            .args(["visualize", run.to_str().unwrap(), img.to_str().unwrap(), "--out", vis.to_str().unwrap()])
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(named),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
