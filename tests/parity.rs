//! Numerical parity with PyTorch/torchvision for every preset, against the fixtures written by
//! tests/fixtures/make_fixtures.py (weights are generated identically on both sides from their
//! state_dict keys; see `cnnzoo::interop::synthetic`).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo::interop;
use cnnzoo::probe::CaptureProbe;
use cnnzoo::registry::{self, MODELS};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn load(name: &str) -> Value {
    let path = fixtures().join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// max |a − b| relative to the reference's overall magnitude (1 for logits of order 1).
fn max_rel_diff(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1.0f64, |m, v| m.max(f64::from(v.abs())));
    got.iter().zip(want).map(|(a, b)| f64::from((a - b).abs()) / scale).fold(0.0, f64::max)
}

fn input(shape: &[usize], device: &Device) -> Tensor<4> {
    let values = interop::synthetic("input", shape);
    Tensor::from_data(TensorData::new(values, shape.to_vec()), device)
}

/// Logit tolerance: 1e-4 of the logits' magnitude (`max(1, max |logit|)`).
const TOL: f64 = 1e-4;

fn check(name: &str) -> f64 {
    let fx = load(name);
    let device = Device::flex();
    let entry = registry::find(name).unwrap();
    let shape = usizes(&fx["input"]);
    let config = entry.config_with(10, shape[1]);
    let model = config.init(&device);

    // Same state_dict layout as PyTorch: keys and shapes, so strict loading works both ways.
    let ours: Vec<(String, Vec<usize>)> =
        interop::state_dict(&model).unwrap().into_iter().map(|t| (t.key, t.shape)).collect();
    let theirs: Vec<(String, Vec<usize>)> = fx["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv[0].as_str().unwrap().to_string(), usizes(&kv[1])))
        .collect();
    let mut a = ours.clone();
    let mut b = theirs.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b, "{name}: state_dict layout differs from PyTorch's");

    let tensors = interop::synthetic_tensors(&model).unwrap();
    let (model, report) = interop::apply_checked(model, tensors, Path::new("synthetic"), name).unwrap();
    assert_eq!(report.applied, theirs.iter().filter(|(k, _)| !k.ends_with("num_batches_tracked")).count());

    let mut probe = CaptureProbe::new(1);
    let logits = model.try_forward_with(name, input(&shape, &device), &mut probe).unwrap();
    let got: Vec<f32> = logits.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
    let want = floats(&fx["logits"]);

    // Per-stage summaries first, so a mismatch names the stage where it starts. Every stage
    // the fixture recorded must be one our forward reported, and the other way round.
    let stages = fx["stages"].as_object().expect("fixture has stages");
    // Stages that are functions in PyTorch's forward (no module, so no hook) but stages in ours:
    // `flatten` everywhere, and DenseNet's final pooling (`F.adaptive_avg_pool2d`). In NiN, which
    // has no classifier, the fixture's `classifier` is its flatten.
    let has_classifier = probe.outputs.iter().any(|(p, _, _)| p == "classifier");
    let functional_pool = name.contains("densenet");
    let fixture_path = |p: &str| -> Option<String> {
        match p {
            "flatten" if !has_classifier && stages.contains_key("classifier") => Some("classifier".into()),
            "flatten" => None,
            "avgpool" if functional_pool => None,
            other => Some(other.to_string()),
        }
    };
    let ours: std::collections::BTreeSet<String> =
        probe.outputs.iter().filter_map(|(p, _, _)| fixture_path(p)).collect();
    let theirs: std::collections::BTreeSet<String> = stages.keys().cloned().collect();
    assert_eq!(ours, theirs, "{name}: top-level stages differ from the fixture's");
    for (path, dims, values) in &probe.outputs {
        let Some(stage) = fixture_path(path).map(|p| &stages[&p]) else { continue };
        assert_eq!(dims, &usizes(&stage["shape"]), "{name}: stage `{path}` shape");
        let abs: f64 = values.iter().map(|v| f64::from(v.abs())).sum();
        let want_abs = stage["abs_sum"].as_f64().unwrap();
        let sum: f64 = values.iter().map(|v| f64::from(*v)).sum();
        let want_sum = stage["sum"].as_f64().unwrap();
        let tol = 1e-4 * want_abs.max(1.0);
        assert!((abs - want_abs).abs() <= tol, "{name}: stage `{path}` sum|x| {abs} vs PyTorch {want_abs}");
        assert!((sum - want_sum).abs() <= tol, "{name}: stage `{path}` sum {sum} vs PyTorch {want_sum}");
        let head = floats(&stage["head"]);
        let d = max_rel_diff(&values[..head.len()], &head);
        assert!(d <= TOL, "{name}: stage `{path}` first values differ by {d:e}");
    }
    let d = max_rel_diff(&got, &want);
    assert!(d <= TOL, "{name}: logits differ from PyTorch by {d:e} (relative), got {got:?}, want {want:?}");
    // The unprobed forward, where each conv → batch norm (→ ReLU) runs as one convolution with
    // the batch norm folded into its weights (`layers::conv_bn`), twice (the second call reuses
    // the folded and packed weights).
    for call in 1..=2 {
        let plain = model.try_forward(name, input(&shape, &device)).unwrap();
        let plain: Vec<f32> = plain.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let dp = max_rel_diff(&plain, &want);
        assert!(dp <= TOL, "{name}: unprobed forward (call {call}) differs from PyTorch by {dp:e}");
    }
    d
}

#[test]
fn every_d2l_preset_matches_pytorch() {
    for e in MODELS.iter().filter(|e| e.name.starts_with("d2l_")) {
        let d = check(e.name);
        eprintln!("{:<14} max |Δ logits| / scale = {d:.1e}", e.name);
    }
}

#[test]
fn every_torchvision_preset_matches_torchvision() {
    for e in MODELS.iter().filter(|e| !e.name.starts_with("d2l_")) {
        let d = check(e.name);
        eprintln!("{:<14} max |Δ logits| / scale = {d:.1e}", e.name);
    }
}
