//! `cnnzoo bench` and `cnnzoo compare` on tiny settings: the JSON schema the PyTorch peer shares,
//! the files a comparison writes, and that a finished comparison is not retrained.

use std::path::Path;
use std::process::{Command, Output};

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `cnnzoo compare` of `models` on the fixture subset, one timed step per speed, into `out`.
fn compare_args(models: &str, epochs: &str, subset: &str, out: &Path) -> Vec<String> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let args = ["compare", "--models", models, "--epochs", epochs, "--subset", subset, "--bench-steps", "1"];
    let paths = ["--quiet", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.iter().chain(&paths).map(|s| s.to_string()).collect()
}

/// The rows a comparison cached in `out/compare.json`.
fn compare_json(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap()
}

#[test]
fn bench_reports_throughput_phases_and_memory() {
    let out =
        cnnzoo(&["bench", "lenet", "--steps", "2", "--warmup", "1", "--batch", "32", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["mode"], "train");
    assert_eq!(rows[1]["mode"], "infer");
    for r in &rows {
        assert_eq!(r["framework"], "cnnzoo");
        assert_eq!(r["batch"], 32);
        let ips = &r["images_per_sec"];
        assert!(ips["median"].as_f64().unwrap() > 0.0);
        assert!(ips["min"].as_f64().unwrap() <= ips["median"].as_f64().unwrap());
        assert!(ips["max"].as_f64().unwrap() >= ips["median"].as_f64().unwrap());
        assert!(r["gflops"].as_f64().unwrap() > 0.0);
    }
    let phases: Vec<&str> =
        rows[0]["phases"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(phases, ["data", "forward", "backward", "optimizer"]);
}

#[test]
fn compare_writes_reports_and_resumes_without_retraining() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("cmp");
    let args = compare_args("lenet,lenet_bn", "2", "300", &out_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cnnzoo(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let md = text(&out.stdout);
    assert!(md.contains("| d2l_lenet | 28×28 | 61.7K"), "{md}");
    assert!(md.contains("| d2l_lenet_bn |"), "{md}");
    for f in [
        "compare.md",
        "compare.json",
        "report.html",
        "params.svg",
        "params.png",
        "macs.svg",
        "train_speed.png",
        "accuracy.svg",
        "curves.svg",
        "curves.png",
    ] {
        assert!(out_dir.join(f).is_file(), "{f} missing");
    }
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("<table>"), "report is not self-contained");
    let rows = compare_json(&out_dir);
    assert_eq!(rows[0]["history"].as_array().unwrap().len(), 2);
    // Second run: nothing is retrained.
    let out = cnnzoo(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.matches("already trained").count(), 2, "{err}");
    assert_eq!(err.matches("throughput reused").count(), 2, "{err}");
    // Speeds measured another way (here: with Burn's own ops) are measured again, not reused.
    let mut reference = args.to_vec();
    reference.push("--reference-kernels");
    let out = cnnzoo(&reference);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).matches("throughput reused").count(), 0, "{}", text(&out.stderr));
    let rows = compare_json(&out_dir);
    assert_eq!(rows[0]["measured_with"]["reference_kernels"], true);
}

#[test]
fn compare_of_one_epoch_draws_its_points_and_sizes_on_a_log_axis() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("cmp");
    let args = compare_args("lenet,d2l_densenet", "1", "64", &out_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cnnzoo(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // One epoch is one point per model: each is drawn as a marker.
    let curves = std::fs::read_to_string(out_dir.join("curves.svg")).unwrap();
    assert!(curves.matches("<circle").count() >= 2, "no markers in curves.svg");
    // 62K against 758K parameters and 0.4M against 129M MACs: both bar charts need a log axis.
    let rows = compare_json(&out_dir);
    let macs: Vec<f64> = rows.as_array().unwrap().iter().map(|r| r["macs"].as_f64().unwrap()).collect();
    assert!(cnnzoo::plot::wants_log(&macs));
    let svg = std::fs::read_to_string(out_dir.join("macs.svg")).unwrap();
    assert!(svg.contains("log scale"), "the MACs chart does not say its axis is logarithmic");
}
