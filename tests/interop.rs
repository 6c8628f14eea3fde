//! Importing and exporting PyTorch weights: formats, refusals, round trips, a training step and
//! torchvision's ImageNet preprocessing, all against fixtures from make_fixtures.py.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use cnnzoo::interop;
use cnnzoo::registry;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn fixture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.json"))).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn input(shape: &[usize], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(interop::synthetic("input", shape), shape.to_vec()), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= tol * scale, "{what}: {got:?} vs {want:?}");
    }
}

/// Imports `file` as `name` and checks the logits against that preset's fixture.
fn import_matches(file: &Path, name: &str) -> interop::ImportReport {
    let device = Device::flex();
    let entry = registry::find(name).unwrap();
    let fx = fixture(name);
    let (model, report) = interop::import(file, name, &entry.config_with(10, 1), &device).unwrap();
    let logits = model.forward(input(&[2, 1, 28, 28], &device));
    assert_close(&values(logits), &floats(&fx["logits"]), 1e-4, name);
    report
}

#[test]
fn imports_zip_and_legacy_pth() {
    let report = import_matches(&fixtures().join("d2l_lenet.pth"), "d2l_lenet");
    assert_eq!(report.applied, 10);
    import_matches(&fixtures().join("d2l_lenet_legacy.pth"), "d2l_lenet");
}

#[test]
fn safetensors_export_import_round_trip_and_old_densenet_keys() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    // d2l DenseNet with synthetic weights, exported with PyTorch's names …
    let entry = registry::find("d2l_densenet").unwrap();
    let model = entry.config().init(&device);
    let tensors = interop::synthetic_tensors(&model).unwrap();
    let (model, _) = interop::apply_checked(model, tensors, Path::new("synthetic"), entry.name).unwrap();
    let file = dir.path().join("densenet.safetensors");
    let n = interop::export_safetensors(&model, &file).unwrap();
    let sd = interop::state_dict(&model).unwrap();
    assert_eq!(n, sd.len());
    assert!(sd.iter().any(|t| t.key == "features.denseblock2.denselayer3.conv2.weight"));
    assert!(sd.iter().any(|t| t.key == "features.norm0.num_batches_tracked"));
    // … imports back to the same logits as PyTorch's.
    let fx = fixture("d2l_densenet");
    let (back, report) = interop::import(&file, entry.name, &entry.config(), &device).unwrap();
    assert!(report.expected_unused.iter().all(|k| k.ends_with("num_batches_tracked")));
    assert!(!report.expected_unused.is_empty());
    let x = input(&[2, 1, 96, 96], &device);
    assert_close(&values(back.forward(x)), &floats(&fx["logits"]), 1e-4, "round trip");

    // Checkpoints from before torchvision 0.3 spell `norm2` as `norm.2`: they load too.
    let old: Vec<interop::StateTensor> = sd
        .into_iter()
        .map(|mut t| {
            t.key = t.key.replace(".norm2.", ".norm.2.").replace(".conv2.", ".conv.2.");
            t
        })
        .collect();
    assert!(old.iter().any(|t| t.key.contains("denselayer1.norm.2.weight")));
    let old_file = dir.path().join("old.safetensors");
    interop::write_safetensors(&old_file, &old).unwrap();
    let (back, _) = interop::import(&old_file, entry.name, &entry.config(), &device).unwrap();
    let x = input(&[2, 1, 96, 96], &device);
    assert_close(&values(back.forward(x)), &floats(&fx["logits"]), 1e-4, "old keys");
}

#[test]
fn bad_checkpoints_are_refused_with_clear_errors() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let lenet = registry::find("d2l_lenet").unwrap();
    let err = |path: &Path, name: &str| {
        let e = registry::find(name).unwrap();
        interop::import(path, name, &e.config(), &device).expect_err("import should fail").to_string()
    };

    // Not a checkpoint at all.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    assert!(err(&text, lenet.name).contains("is not a checkpoint"));

    // Truncated .pth (zip) and truncated safetensors.
    let pth = std::fs::read(fixtures().join("d2l_lenet.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &pth[..pth.len() / 3]).unwrap();
    let e = err(&cut, lenet.name);
    assert!(e.contains("cut.pth") && e.contains("cannot be read"), "{e}");
    let model = lenet.config().init(&device);
    let st = dir.path().join("w.safetensors");
    interop::export_safetensors(&model, &st).unwrap();
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..40]).unwrap();
    assert!(err(&st, lenet.name).contains("truncated"), "{}", err(&st, lenet.name));

    // A checkpoint of another architecture: LeNet's weights into BN-LeNet.
    let e = err(&fixtures().join("d2l_lenet.pth"), "d2l_lenet_bn");
    assert!(e.contains("does not fit `d2l_lenet_bn`"), "{e}");
    assert!(e.contains("`classifier.0.weight` has shape [120, 400] in the file but [120, 256]"), "{e}");

    // A pickle that tries to run code: refused, and nothing ran.
    let marker = Path::new("/tmp/cnnzoo-pwned");
    let _ = std::fs::remove_file(marker);
    let e = err(&fixtures().join("evil.pth"), lenet.name);
    assert!(e.contains("evil.pth") && e.contains("never executed"), "{e}");
    assert!(!marker.exists(), "the pickle's code ran");
}

#[test]
fn resnet18_training_step_matches_pytorch() {
    let fx = fixture("resnet18_train_step");
    let ad = Device::flex().autodiff();
    let entry = registry::find("resnet18").unwrap();
    let model = entry.config_with(10, 3).init(&ad);
    let tensors = interop::synthetic_tensors(&model).unwrap();
    let (model, _) = interop::apply_checked(model, tensors, Path::new("synthetic"), "resnet18").unwrap();
    let x = input(&[4, 3, 32, 32], &ad);
    let labels: Vec<i64> = fx["labels"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [4]), &ad);
    let logits = model.forward(x);
    let loss = CrossEntropyLossConfig::new().init(&ad).forward(logits.clone(), y);
    assert_close(&values(logits.clone().detach()), &floats(&fx["train_logits"]), 1e-4, "train-mode logits");
    let loss_value = values(loss.clone().detach())[0];
    assert!(
        (loss_value - fx["loss"].as_f64().unwrap() as f32).abs() < 1e-4,
        "loss {loss_value} vs {}",
        fx["loss"]
    );
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let lr = fx["lr"].as_f64().unwrap();
    let model = SgdConfig::new().init().step(lr, model, grads).valid();

    let sd = interop::state_dict(&model).unwrap();
    let get = |k: &str| sd.iter().find(|t| t.key == k).unwrap().values.clone().unwrap();
    assert_close(&get("bn1.running_mean")[..8], &floats(&fx["bn1_running_mean"]), 1e-5, "running mean");
    assert_close(
        &get("bn1.running_var")[..8],
        &floats(&fx["bn1_running_var"]),
        1e-5,
        "running var (unbiased)",
    );
    let after = model.forward(input(&[4, 3, 32, 32], &Device::flex()));
    assert_close(
        &values(after),
        &floats(&fx["eval_logits_after_step"]),
        1e-4,
        "eval logits after one SGD step",
    );
}

#[test]
fn imagenet_preprocessing_matches_torchvision() {
    let fx = fixture("imagenet_preprocess");
    let (w, h) = (90usize, 70usize);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 256) as u8).collect();
    let out = cnnzoo::data::transforms::imagenet_eval(&rgb, w, h, 64, 56);
    assert_eq!(out.len(), 3 * 56 * 56);
    let sum: f64 = out.iter().map(|v| f64::from(*v)).sum();
    let want = fx["sum"].as_f64().unwrap();
    assert!((sum - want).abs() < 1e-3 * (out.len() as f64).sqrt(), "sum {sum} vs torchvision {want}");
    assert_close(&out[..16], &floats(&fx["head"]), 1e-5, "first values");
}

#[test]
fn cli_import_then_predict_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let bin = env!("CARGO_BIN_EXE_cnnzoo");
    let pth = fixtures().join("d2l_lenet.pth");
    let out = Command::new(bin)
        .args(["import", pth.to_str().unwrap(), "--model", "lenet", "--out", run.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("10 tensors applied, 0 missing"));
    let st = dir.path().join("back.safetensors");
    let out = Command::new(bin)
        .args(["export", run.to_str().unwrap(), "--out", st.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The exported file imports back into the same logits.
    import_matches(&st, "d2l_lenet");
    let img = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/trouser.png");
    let out =
        Command::new(bin).args(["predict", run.to_str().unwrap(), img.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A wrong --model is a clear error and leaves no run directory behind.
    let run2 = dir.path().join("run2");
    let out = Command::new(bin)
        .args(["import", pth.to_str().unwrap(), "--model", "resnet18", "--out", run2.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not fit `resnet18`"));
    assert!(!run2.exists());
}

#[test]
fn onnx_export_embeds_weights_with_a_symbolic_batch() {
    let device = Device::flex();
    let entry = registry::find("d2l_lenet").unwrap();
    let (model, _) =
        interop::import(&fixtures().join("d2l_lenet.pth"), entry.name, &entry.config(), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lenet.onnx");
    let info = interop::export_onnx(&model, entry.input, &path).unwrap();
    assert!(info.dynamic_batch);
    let bytes = std::fs::read(&path).unwrap();
    // 61,706 f32 weights are embedded; the graph names its symbolic batch axis.
    assert!(bytes.len() > 61_706 * 4, "{} bytes", bytes.len());
    assert!(bytes.windows(5).any(|w| w == b"batch"));
    for op in [&b"Conv"[..], b"Sigmoid", b"AveragePool", b"Gemm"] {
        let found = bytes.windows(op.len()).any(|w| w == op)
            || (op == b"Gemm" && bytes.windows(6).any(|w| w == b"MatMul"));
        assert!(found, "no {} node", String::from_utf8_lossy(op));
    }
}

/// The tensors of a safetensors file: key → (dtype, shape, raw little-endian bytes).
fn read_safetensors(path: &Path) -> std::collections::BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let [a, b] = [0, 1].map(|i| v["data_offsets"][i].as_u64().unwrap() as usize);
            let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (k.clone(), (v["dtype"].as_str().unwrap().to_string(), shape, data[a..b].to_vec()))
        })
        .collect()
}

#[test]
fn pth_import_then_export_gives_back_the_files_own_tensors_bit_for_bit() {
    use burn::store::pytorch::PytorchReader;
    let device = Device::flex();
    let entry = registry::find("d2l_lenet").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["d2l_lenet.pth", "d2l_lenet_legacy.pth"] {
        let pth = fixtures().join(file);
        let (model, _) = interop::import(&pth, entry.name, &entry.config(), &device).unwrap();
        let out = dir.path().join(format!("{file}.safetensors"));
        interop::export_safetensors(&model, &out).unwrap();
        let exported = read_safetensors(&out);

        let reader = PytorchReader::new(&pth).unwrap();
        let mut theirs: Vec<String> = reader.keys();
        theirs.sort();
        let ours: Vec<String> = exported.keys().cloned().collect();
        assert_eq!(ours, theirs, "{file}: key sets");
        for key in &theirs {
            let t = reader.get(key).unwrap();
            let (dtype, shape, bytes) = &exported[key];
            assert_eq!(dtype, "F32", "{file}: {key}");
            assert_eq!(shape.as_slice(), t.shape(), "{file}: {key} shape");
            // The file's bytes are native-endian f32; ours little-endian.
            let want: Vec<u8> = t
                .read()
                .unwrap()
                .chunks_exact(4)
                .flat_map(|c| f32::from_ne_bytes(c.try_into().unwrap()).to_le_bytes())
                .collect();
            assert!(bytes == &want, "{file}: {key} values differ");
        }
    }
}

#[test]
fn onnx_export_of_batch_norm_models() {
    // Batch norm in eval mode on the exporter's tracing device (it cannot move tensors).
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    for name in ["d2l_lenet_bn", "d2l_resnet18"] {
        let entry = registry::find(name).unwrap();
        let model = entry.config().init(&device);
        let path = dir.path().join(format!("{name}.onnx"));
        let info = interop::export_onnx(&model, entry.input, &path).unwrap();
        assert!(info.dynamic_batch, "{name}");
        let bytes = std::fs::read(&path).unwrap().len();
        assert!(
            bytes > entry.params * 4,
            "{name}: {bytes} bytes hold fewer than its {} weights",
            entry.params
        );
    }
}
