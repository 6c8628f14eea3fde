//! `cnnzoo experiment` at the quick budget on the fixture subset: the reports it writes, the
//! verdicts that hold at any budget, resuming without remeasuring, and bad names.

use std::path::Path;
use std::process::{Command, Output};

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn args<'a>(names: &[&'a str], data: &'a str, out: &'a str) -> Vec<&'a str> {
    let mut v = vec!["experiment"];
    v.extend_from_slice(names);
    v.extend_from_slice(&["--quick", "--quiet", "--data", data, "--out", out]);
    v
}

#[test]
fn experiments_write_reports_with_verdicts_and_resume() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let (data, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let names = ["static-claims", "relu-vs-sigmoid", "transition", "one-by-one"];
    let run = cnnzoo(&args(&names, data, out_s));
    assert!(run.status.success(), "{}", text(&run.stderr));
    // stdout is the markdown report alone (epoch lines go to stderr).
    let md = text(&run.stdout);
    assert!(md.starts_with("# The chapter's lessons, measured"), "{md}");
    assert!(md.contains("**Verdict: supported at this budget.** every checked claim holds"), "{md}");
    for f in [
        "experiments.md",
        "experiments.json",
        "report.html",
        "relu-vs-sigmoid/loss.png",
        "relu-vs-sigmoid/gradients.svg",
        "one-by-one/params.png",
        "one-by-one/nin_alexnet_epochs.png",
        "one-by-one/nin_alexnet_seconds.svg",
        "transition/ratios.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let findings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("experiments.json")).unwrap()).unwrap();
    let order: Vec<&str> = findings.as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    // The report follows the catalogue's order, whatever the command line's.
    assert_eq!(order, ["relu-vs-sigmoid", "one-by-one", "transition", "static-claims"]);
    for f in findings.as_array().unwrap() {
        assert_eq!(f["budget"], "quick");
        assert!(!f["verdict"].as_str().unwrap().is_empty());
    }
    // Budget-independent verdicts: the reductions cut parameters, zero-γ blocks pass their
    // input, the sigmoid net's gradients fade towards the input; without transitions the
    // channels keep growing (the time per step is a measurement, and may go either way).
    for name in ["one-by-one", "static-claims"] {
        let f = findings.as_array().unwrap().iter().find(|f| f["name"] == name).unwrap();
        assert_eq!(f["status"], "supported", "{name}: {}", f["verdict"]);
    }
    // NiN and AlexNet trained side by side: a row per net and seed, an accuracy per epoch.
    let one = findings.as_array().unwrap().iter().find(|f| f["name"] == "one-by-one").unwrap();
    let trained = one["tables"].as_array().unwrap().last().unwrap();
    let rows = trained["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "{trained}");
    assert!(rows[0][0].as_str().unwrap().starts_with("nin, lr 0.1"), "{trained}");
    assert!(rows[5][0].as_str().unwrap().starts_with("alexnet, lr 0.01"), "{trained}");
    assert!(rows.iter().all(|r| r[2].as_str().unwrap().ends_with('%')), "{trained}");
    assert!(one["verdict"].as_str().unwrap().contains("NiN vs AlexNet — seed 1: "), "{}", one["verdict"]);
    assert!(
        one["protocol"].as_str().unwrap().contains("d2l's learning rates (0.1 and 0.01"),
        "{}",
        one["protocol"]
    );
    let transition = findings.as_array().unwrap().iter().find(|f| f["name"] == "transition").unwrap();
    let verdict = transition["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("576 channels instead of 248") && verdict.contains("1920 channels instead of 1024"),
        "{verdict}"
    );
    let relu = &findings[0];
    let grads = &relu["tables"][2]["rows"];
    let first: f64 = grads[0][1].as_str().unwrap().parse().unwrap();
    let last: f64 = grads[4][1].as_str().unwrap().parse().unwrap();
    assert!(first < last / 10.0, "sigmoid gradient norms {first} (input) vs {last} (output)");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("Verdict: supported at this budget"),
        "report is not self-contained"
    );
    assert_eq!(html.matches("<section").count(), 4);

    // Again: nothing is remeasured.
    let again = cnnzoo(&args(&names, data, out_s));
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stderr).matches("already measured").count(), 4, "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), md);

    // Remeasured from finished arms, an experiment still counts their training time.
    std::fs::remove_file(out.join("relu-vs-sigmoid/finding.json")).unwrap();
    let third = cnnzoo(&args(&["relu-vs-sigmoid"], data, out_s));
    assert!(third.status.success(), "{}", text(&third.stderr));
    let mut trained = 0.0;
    for arm in std::fs::read_dir(out.join("relu-vs-sigmoid")).unwrap() {
        if let Ok(t) = std::fs::read_to_string(arm.unwrap().path().join("arm.json")) {
            trained += serde_json::from_str::<serde_json::Value>(&t).unwrap()["seconds"].as_f64().unwrap();
        }
    }
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("relu-vs-sigmoid/finding.json")).unwrap())
            .unwrap();
    assert!(trained > 0.0 && f["seconds"].as_f64().unwrap() >= trained, "{} < {trained}", f["seconds"]);
}

#[test]
fn an_unknown_experiment_is_an_error_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let run = cnnzoo(&["experiment", "relu-vs-tanh", "--quick", "--out", out.to_str().unwrap()]);
    assert!(!run.status.success());
    let err = text(&run.stderr);
    assert!(
        err.contains("unknown experiment `relu-vs-tanh`") && err.contains("residual, batch-norm"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written for a bad name");
}

#[test]
fn the_trained_experiments_run_at_the_quick_budget() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let (data, out_s) = (data.to_str().unwrap(), out.to_str().unwrap());
    let names = ["dropout", "augmentation", "residual", "batch-norm", "small-kernels"];
    let run = cnnzoo(&args(&names, data, out_s));
    assert!(run.status.success(), "{}", text(&run.stderr));
    let findings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("experiments.json")).unwrap()).unwrap();
    let findings = findings.as_array().unwrap();
    assert_eq!(findings.len(), names.len());
    for f in findings {
        let name = f["name"].as_str().unwrap();
        // Three seeds per arm: every per-seed table row names one of them.
        let rows = f["tables"][0]["rows"].as_array().unwrap();
        assert!(rows.len() >= 2, "{name}: {rows:?}");
        for chart in f["charts"].as_array().unwrap() {
            let file = chart["file"].as_str().unwrap();
            assert!(out.join(name).join(format!("{file}.png")).is_file(), "{name}/{file}.png");
        }
        // Each arm and seed is a run directory with its result.
        let arms = std::fs::read_dir(out.join(name))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().join("arm.json").is_file())
            .count();
        assert!(arms >= 6 && arms % 3 == 0, "{name}: {arms} arms");
    }
    // The residual nets: 8 and 14 layers, plain and with shortcuts, a gradient norm per layer.
    let residual = findings.iter().find(|f| f["name"] == "residual").unwrap();
    let grads = residual["tables"][1]["rows"].as_array().unwrap();
    let nets: Vec<&str> = grads.iter().map(|r| r[0].as_str().unwrap()).collect();
    assert_eq!(nets, ["plain-8", "plain-14", "resnet-8", "resnet-14"]);
}
