//! Every preset exported to ONNX and run in onnxruntime (the real consumer of the file) gives
//! our own logits within 1e-4 of their magnitude. `.ci/run` installs onnxruntime into a venv
//! and sets `CNNZOO_PYTHON`; with `CI` set the test fails when onnxruntime is missing, elsewhere
//! it says so and skips. torchvision presets are checked at 3×224×224, where their adaptive
//! pools are plain pools (the exporter cannot lower `AdaptiveAvgPool2d` at other sizes).

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo::interop;
use cnnzoo::registry::MODELS;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CNNZOO_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.is_file() { venv } else { PathBuf::from("python3") }
}

#[test]
fn every_preset_runs_in_onnxruntime_with_our_logits() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx_check.py");
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in MODELS {
        let config = entry.config_with(10, entry.input[0]);
        let model = config.init(&device);
        let tensors = interop::synthetic_tensors(&model).unwrap();
        let (model, _) = interop::apply_checked(model, tensors, Path::new("synthetic"), entry.name).unwrap();
        let onnx = dir.path().join(format!("{}.onnx", entry.name));
        let info = interop::export_onnx(&model, entry.input, &onnx).unwrap();
        assert!(info.dynamic_batch, "{}: batch axis is symbolic", entry.name);

        let [c, h, w] = entry.input;
        let shape = [2, c, h, w];
        let input = interop::synthetic("input", &shape);
        let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), &device);
        let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let case = dir.path().join("case.json");
        let json = serde_json::json!({"onnx": onnx, "shape": shape, "input": input, "logits": logits});
        std::fs::write(&case, json.to_string()).unwrap();

        let out = Command::new(python()).arg(&script).arg(&case).output().expect("run python");
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.code() == Some(3) {
            assert!(std::env::var_os("CI").is_none(), "onnxruntime is required in CI: {said}");
            eprintln!(
                "skipping the ONNX check: {said} (pip install onnxruntime numpy, or set CNNZOO_PYTHON)"
            );
            return;
        }
        assert!(out.status.success(), "{}: onnxruntime disagrees: {said}", entry.name);
        eprintln!("{:<14} onnxruntime {}", entry.name, said.trim());
        std::fs::remove_file(&onnx).unwrap();
        checked += 1;
    }
    assert_eq!(checked, MODELS.len());
}
