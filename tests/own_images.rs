//! Training on your own images, end to end through the binary: an image folder (one sub-folder
//! per class, PNG and JPEG of any size) with a held-out split, a corrupt image skipped and
//! named (or, with --strict, an error), class names carried to `eval` and `predict`, and
//! fine-tuning a Fashion-MNIST run on the folder with a frozen backbone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Horizontal or vertical stripes of random period, phase, colours and size, with noise.
fn stripes(vertical: bool, seed: u64) -> image::RgbImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let (w, h) = (24 + (next() % 24) as u32, 24 + (next() % 24) as u32);
    let period = 8 + (next() % 6) as u32;
    let phase = (next() % 8) as u32;
    let (a, b) =
        ([next() as u8 / 4, next() as u8 / 4, 40], [200 + next() as u8 % 55, 180, 160 + next() as u8 % 90]);
    image::RgbImage::from_fn(w, h, |x, y| {
        let t = if vertical { x } else { y };
        let base = if ((t + phase) / (period / 2).max(1)).is_multiple_of(2) { a } else { b };
        let n = (next() % 21) as u8;
        image::Rgb(base.map(|v| v.saturating_add(n)))
    })
}

/// `root/{horizontal,vertical}/NN.(png|jpg)`, `per_class` each, plus one corrupt PNG.
fn folder(root: &Path, per_class: u64) -> PathBuf {
    for (class, vertical) in [("horizontal", false), ("vertical", true)] {
        let dir = root.join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..per_class {
            let img = stripes(vertical, i * 2 + u64::from(vertical));
            let ext = if i.is_multiple_of(3) { "jpg" } else { "png" };
            img.save(dir.join(format!("{i:02}.{ext}"))).unwrap();
        }
    }
    let broken = root.join("horizontal/zz-broken.png");
    std::fs::write(&broken, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR truncated").unwrap();
    broken
}

fn train_args<'a>(model: &'a str, spec: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        model,
        "--dataset",
        spec,
        "--val-split",
        "0.25",
        "--epochs",
        "20",
        "--batch-size",
        "16",
        "--lr",
        "0.003",
        "--optimizer",
        "adam",
        "--out",
        out,
        "--quiet",
        "--checkpoint-every",
        "0",
    ]
}

#[test]
fn a_folder_of_images_trains_evaluates_and_predicts_with_its_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("stripes");
    let broken = folder(&root, 80);
    let spec = format!("folder:{}", root.display());
    let run = dir.path().join("run");
    let out = cnnzoo(&train_args("d2l_lenet_bn", &spec, run.to_str().unwrap()));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The corrupt image is named, skipped and counted; the run goes on.
    assert!(err.contains(&format!("image `{}`: ", broken.display())), "{err}");
    assert!(err.contains("unreadable images were skipped"), "{err}");

    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["classes"], serde_json::json!(["horizontal", "vertical"]));
    assert_eq!(config["input"][0], 3, "a folder of RGB images gives a 3-channel model");
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last: Vec<f64> = metrics.lines().last().unwrap().split(',').map(|v| v.parse().unwrap()).collect();
    assert!(last[3] >= 0.8, "held-out accuracy {} on stripes:\n{metrics}", last[3]);

    // eval on the held-out images (the same split: it follows --seed) and predict by name.
    let out = cnnzoo(&["eval", run.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["evaluation"];
    assert_eq!(e["images"].as_u64().unwrap() + e["skipped"].as_array().unwrap().len() as u64, 40, "{v}");
    assert!((v["evaluation"]["top1"].as_f64().unwrap() - last[3]).abs() < 1e-9, "{v}");
    let probe = dir.path().join("probe.png");
    stripes(true, 1001).save(&probe).unwrap();
    let out = cnnzoo(&["predict", run.to_str().unwrap(), probe.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["predictions"][0]["name"], "vertical", "{v}");

    // --strict: the corrupt image is an error naming it, exit code 1.
    let strict_run = dir.path().join("strict");
    let mut args = train_args("d2l_lenet_bn", &spec, strict_run.to_str().unwrap());
    args.push("--strict");
    let out = cnnzoo(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("zz-broken.png"), "{}", text(&out.stderr));
}

#[test]
fn a_fashion_mnist_run_fine_tunes_on_a_folder_with_a_frozen_backbone() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let base = dir.path().join("base");
    let out = cnnzoo(&[
        "train",
        "d2l_lenet_bn",
        "--data",
        fixture.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--test-subset",
        "50",
        "--out",
        base.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let root = dir.path().join("stripes");
    folder(&root, 12);
    std::fs::remove_file(root.join("horizontal/zz-broken.png")).unwrap();
    let spec = format!("folder:{}", root.display());
    let tuned = dir.path().join("tuned");
    let mut args = train_args("d2l_lenet_bn", &spec, tuned.to_str().unwrap());
    args.extend(["--init", base.to_str().unwrap(), "--freeze", "backbone", "--head-lr", "0.5"]);
    let out = cnnzoo(&args);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The 10-class head is replaced by a 2-class one, and the report says exactly that.
    assert!(
        err.contains("not loaded: `classifier.6.weight`: shape [10, 84] in the source, [2, 84] in the model"),
        "{err}"
    );
    assert!(err.contains("loaded 24 tensors"), "{err}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tuned.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["input"][0], 1, "the Fashion-MNIST backbone keeps its grey input");
    assert_eq!(config["freeze_backbone"], true);

    // Another architecture is refused by name, exit code 1.
    let mut args =
        train_args("d2l_alexnet", &spec, dir.path().join("alex").to_str().unwrap().to_owned().leak());
    args.extend(["--init", base.to_str().unwrap()]);
    let out = cnnzoo(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("another architecture"), "{}", text(&out.stderr));
}
