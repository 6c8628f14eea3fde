//! The `cnnzoo` binary: outputs, exit codes and error messages.

use std::process::{Command, Output};

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_json_carries_exact_parameter_counts() {
    let out = cnnzoo(&["list", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), cnnzoo::registry::MODELS.len());
    let find = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap();
    assert_eq!(find("resnet50")["params"], 25_557_032);
    assert_eq!(find("d2l_densenet")["params"], 758_226);
    assert_eq!(find("d2l_lenet")["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(find("vgg16")["macs"].as_u64().unwrap() / 10_000_000, 1547);
}

#[test]
fn list_table_has_one_row_per_model() {
    let out = cnnzoo(&["list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1 + cnnzoo::registry::MODELS.len());
    assert!(text.contains("densenet201") && text.contains("20,013,928"), "{text}");
}

#[test]
fn summary_walks_d2l_alexnet() {
    let out = cnnzoo(&["summary", "d2l_alexnet", "--shape-only"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for shape in ["[1, 96, 54, 54]", "[1, 96, 26, 26]", "[1, 256, 12, 12]", "[1, 256, 5, 5]", "[1, 6400]"] {
        assert!(text.contains(shape), "missing {shape} in\n{text}");
    }
    assert!(text.contains("total params 46,764,746"), "{text}");
}

#[test]
fn summary_json_with_custom_input_and_batch() {
    let out = cnnzoo(&[
        "summary", "resnet18", "--input", "1,64,64", "--batch", "3", "--depth", "1", "--format", "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["input"], serde_json::json!([3, 1, 64, 64]));
    let rows = s["rows"].as_array().unwrap();
    let layer4 = rows.iter().find(|r| r["name"] == "layer4").unwrap();
    assert_eq!(layer4["output"], serde_json::json!([3, 512, 2, 2]));
    assert_eq!(rows.last().unwrap()["output"], serde_json::json!([3, 1000]));
}

#[test]
fn unknown_model_suggests_the_nearest_names() {
    let out = cnnzoo(&["summary", "resnt50"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown model `resnt50`") && err.contains("`resnet50`"), "{err}");
}

#[test]
fn too_small_input_is_an_error_not_a_panic() {
    let out = cnnzoo(&["summary", "vgg11", "--input", "3,16,16"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("vgg11") && err.contains("at least 3×32×32"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_input_flag_is_rejected() {
    let out = cnnzoo(&["summary", "resnet18", "--input", "3,224"]);
    assert_eq!(out.status.code(), Some(1)); // a usage error is bad input
    assert!(stderr(&out).contains("expected C,H,W"), "{}", stderr(&out));
}

#[test]
fn help_documents_exit_codes_and_both_export_formats() {
    let out = cnnzoo(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("Exit codes") && help.contains("130 interrupted"), "{help}");
    assert!(help.contains("safetensors") && help.contains("ONNX"), "{help}");
}

#[test]
fn an_os_error_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = cnnzoo(&["train", "--resume", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("config.json"), "{err}");
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
}

#[test]
fn exit_codes_are_the_documented_ones() {
    // 0: success, also for --help; 1: bad input (an unknown flag, an unknown model).
    assert_eq!(cnnzoo(&["--help"]).status.code(), Some(0));
    assert_eq!(cnnzoo(&["list", "--bogus"]).status.code(), Some(1));
    assert_eq!(cnnzoo(&["summary", "resnet19"]).status.code(), Some(1));
    // 2: the output could not be written (here: a full device). 130 is tested in tests/train.rs.
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cnnzoo")).arg("list").stdout(full).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
}

#[test]
fn the_device_flag_is_checked_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let weights = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parity/d2l_lenet.pth");
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let out = cnnzoo(&["import", weights, "--model", "d2l_lenet", "--out", run, "--device", "cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let image = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/examples/ankle-boot.png");
    assert!(cnnzoo(&["predict", run, image, "--device", "cpu"]).status.success());

    // Nonsense is named, for every command; CUDA in a CPU build says how to rebuild.
    for args in [
        vec!["predict", run, image, "--device", "tpu"],
        vec!["bench", "d2l_lenet", "--device", "cuda:x"],
        vec!["serve", run, "--device", "gpu0"],
    ] {
        let out = cnnzoo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains("is not a device"), "{args:?}: {}", stderr(&out));
    }
    if !cnnzoo::device::CUDA_BUILT {
        for args in [
            vec!["predict", run, image, "--device", "cuda"],
            vec!["eval", run, "--device", "cuda:1"],
            vec!["train", "d2l_lenet", "--device", "cuda", "--out", run],
            vec!["bench", "d2l_lenet", "--device", "cuda"],
            vec!["visualize", run, image, "--device", "cuda"],
            vec!["serve", run, "--device", "cuda"],
        ] {
            let out = cnnzoo(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = stderr(&out);
            assert!(err.contains("--features cuda") && !err.contains("panicked"), "{args:?}: {err}");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
            .args(["predict", run, image])
            .env("CNNZOO_DEVICE", "cuda")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "CNNZOO_DEVICE is --device's default");
    }
}
