//! Training, resuming, evaluating and predicting end to end on the committed Fashion-MNIST
//! subset (tests/fixtures/fashion-mnist-subset: 1000 train / 500 test images cut from the real
//! files by make_fmnist_subset.py), plus every corrupt-input case.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset")
}

fn cnnzoo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo")).args(args).output().expect("run cnnzoo")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn metrics_rows(run: &Path) -> Vec<Vec<f64>> {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect()
}

/// BN-LeNet with d2l's recipe (lr 1.0, batch 256) learns fast enough to test on 1000 images.
fn train_args<'a>(run: &'a str, data: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "d2l_lenet_bn",
        "--data",
        data,
        "--epochs",
        epochs,
        "--batch-size",
        "64",
        "--out",
        run,
        "--quiet",
    ]
}

/// Waits (up to two minutes) until `cond` holds, polling; `what` names it if it never does.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(120), "{what} never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `cnnzoo` with `args` in the background, stdout discarded.
fn spawn(args: &[&str], stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[test]
fn trains_lenet_far_above_chance_and_writes_the_run_directory() {
    let dir = tmp();
    let run = dir.path().join("run");
    let data = fixture();
    let out = cnnzoo(&train_args(run.to_str().unwrap(), data.to_str().unwrap(), "4"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = metrics_rows(&run);
    assert_eq!(rows.len(), 4);
    let (first, last) = (&rows[0], &rows[3]);
    assert!(last[1] < first[1], "train loss did not go down: {rows:?}");
    assert!(last[3] > 0.6, "test accuracy {} is not far above chance (0.1)", last[3]);
    for f in ["config.json", "model.bpk", "curves.svg", "checkpoint.json"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    let png = std::fs::read(run.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(std::fs::read_to_string(run.join("curves.svg")).unwrap().contains("test acc"));
    // stdout: one line per epoch.
    assert_eq!(text(&out.stdout).lines().filter(|l| l.starts_with("epoch")).count(), 4);

    // eval: the same test accuracy as the last epoch, top-5 ≥ top-1, a 10×10 confusion matrix.
    let out = cnnzoo(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["evaluation"];
    assert!((e["top1"].as_f64().unwrap() - last[3]).abs() < 1e-9, "{e}");
    assert!(e["top5"].as_f64().unwrap() >= e["top1"].as_f64().unwrap());
    let confusion = e["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    let total: u64 = confusion.iter().flat_map(|r| r.as_array().unwrap()).map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(total, 500);

    // predict: a Fashion-MNIST test image saved as PNG (scaled up, in colour) is classified.
    let img_path = dir.path().join("item.png");
    let images = std::fs::read(data.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&images[..]), &mut raw).unwrap();
    let first_image = &raw[16..16 + 784];
    let grey = image::GrayImage::from_raw(28, 28, first_image.to_vec()).unwrap();
    let big = image::imageops::resize(&grey, 56, 56, image::imageops::FilterType::Triangle);
    image::DynamicImage::ImageLuma8(big).to_rgb8().save(&img_path).unwrap();
    let out = cnnzoo(&[
        "predict",
        run.to_str().unwrap(),
        img_path.to_str().unwrap(),
        "--top-k",
        "2",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let preds = v[0]["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert!(preds[0]["probability"].as_f64().unwrap() >= preds[1]["probability"].as_f64().unwrap());
    // The first test image is an ankle boot (label 9).
    assert_eq!(preds[0]["name"], "ankle boot", "{v}");
}

#[test]
fn sigkill_mid_run_then_resume_finishes_the_run() {
    let dir = tmp();
    let run = dir.path().join("run");
    let data = fixture();
    let mut args = train_args(run.to_str().unwrap(), data.to_str().unwrap(), "3");
    args.extend(["--checkpoint-every", "2"]);
    let mut child = spawn(&args, Stdio::null());
    // Kill as soon as a mid-epoch checkpoint of epoch 2 exists.
    let pointer = run.join("checkpoint.json");
    wait_until("a mid-epoch checkpoint of epoch 2", || {
        let text = std::fs::read_to_string(&pointer).unwrap_or_default();
        text.contains("\"epoch\": 1") && !text.contains("\"batch\": 0")
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(metrics_rows(&run).len(), 1, "epoch 1 was recorded before the kill");
    assert!(!run.join("model.bpk").exists());

    let out =
        cnnzoo(&["train", "--resume", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("resuming d2l_lenet_bn"), "{}", text(&out.stderr));
    let rows = metrics_rows(&run);
    assert_eq!(rows.iter().map(|r| r[0] as usize).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(run.join("model.bpk").is_file());
}

#[test]
fn resume_continues_exactly_where_an_interrupted_run_stopped() {
    let mut config = cnnzoo::train::TrainConfig::for_model("d2l_lenet_bn", None).unwrap();
    config.epochs = 2;
    config.batch_size = 100;
    // 10 batches per epoch: stop in the middle of epoch 2.
    let (x, y) = straight_and_resumed(&config, 13);
    assert_eq!(x.len(), 2);
    assert_eq!(y.len(), 2);
    // Bit for bit: the batch-norm statistics, the optimizer, the order and the loss sums all
    // come back exactly from the checkpoint.
    for (a, b) in x.iter().zip(&y) {
        assert_eq!((a.train_loss, a.train_acc, a.test_acc), (b.train_loss, b.train_acc, b.test_acc));
    }
}

/// Serializes the tests that train in this process: Burn's flex device draws initialization
/// and dropout from one process-wide generator, which tests running side by side would share.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Trains `config` on the fixture twice — straight through, and stopped after `stop_after`
/// batches then resumed — and returns both histories.
fn straight_and_resumed(
    config: &cnnzoo::train::TrainConfig,
    stop_after: usize,
) -> (Vec<cnnzoo::train::EpochMetrics>, Vec<cnnzoo::train::EpochMetrics>) {
    use cnnzoo::train::{self, EpochMetrics, Outcome, Reporter, TrainConfig, TrainOptions};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct StopAfter(Arc<AtomicBool>, usize, usize);
    impl Reporter for StopAfter {
        fn batch(&mut self, _: usize, _: usize, _: usize, _: f64, _: f64, _: f64) {
            self.2 += 1;
            if self.2 == self.1 {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        fn epoch(&mut self, _: &TrainConfig, _: &EpochMetrics) {}
        fn note(&mut self, _: &str) {}
    }

    let _serial = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let data = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &fixture()).unwrap();
    let data = train::RunData::from_dataset(config, &data, train::LoadOptions::default()).unwrap();
    let device = burn::tensor::Device::flex();
    let run = |dir: &Path, resume: bool, stop_after: usize| {
        let flag = Arc::new(AtomicBool::new(false));
        let mut reporter = StopAfter(flag.clone(), stop_after, 0);
        let opts = TrainOptions {
            device: device.clone(),
            interrupt: flag,
            checkpoint_every: 0,
            reporter: &mut reporter,
        };
        train::train(config, &data, dir, resume, opts).unwrap()
    };
    let dir = tmp();
    let straight = run(&dir.path().join("a"), false, usize::MAX);
    let b = dir.path().join("b");
    assert!(matches!(run(&b, false, stop_after), Outcome::Interrupted { .. }));
    let resumed = run(&b, true, usize::MAX);
    let (Outcome::Finished(x), Outcome::Finished(y)) = (straight, resumed) else { panic!("not finished") };
    (x, y)
}

#[test]
fn resume_mid_epoch_draws_the_same_dropout_masks() {
    // A VGG-11 at 1/64 width with torchvision's head: two dropout layers in a 4096-wide
    // classifier, small enough to train on the fixture in seconds.
    let mut config = cnnzoo::train::TrainConfig::for_model("d2l_vgg11_r4", Some([1, 32, 32])).unwrap();
    config.model_config = cnnzoo::ModelConfig::Vgg(cnnzoo::models::vgg::VggConfig {
        ratio: 64,
        d2l: false,
        ..cnnzoo::models::vgg::VggConfig::d2l(64)
    });
    config.epochs = 2;
    config.batch_size = 50;
    config.train_subset = Some(300);
    config.test_subset = Some(100);
    // 6 batches per epoch: stop in the middle of epoch 2.
    let (x, y) = straight_and_resumed(&config, 9);
    assert_eq!((x.len(), y.len()), (2, 2));
    // Equal to the last bit (the checkpoint's JSON round-trips floats exactly); different masks
    // would move them far more.
    for (a, b) in x.iter().zip(&y) {
        assert_eq!((a.train_loss, a.train_acc, a.test_acc), (b.train_loss, b.train_acc, b.test_acc));
    }
}

#[test]
fn diverging_run_stops_with_a_clear_message() {
    let dir = tmp();
    let run = dir.path().join("run");
    let data = fixture();
    let out = cnnzoo(&[
        "train",
        "d2l_resnet18",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--subset",
        "96",
        "--batch-size",
        "32",
        "--out",
        run.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("at epoch 1, batch") && err.contains("--lr 1e29"), "{err}");
    assert!(!run.join("model.bpk").exists());
}

/// Writes a copy of the fixture into a temp dir with one file replaced by `bytes`.
fn data_with(file: &str, bytes: &[u8]) -> tempfile::TempDir {
    let dir = tmp();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    std::fs::write(dir.path().join(file), bytes).unwrap();
    dir
}

fn gunzip(file: &str) -> Vec<u8> {
    let gz = std::fs::read(fixture().join(file)).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    raw
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, raw).unwrap();
    enc.finish().unwrap()
}

fn train_error(data: &Path) -> (Option<i32>, String, tempfile::TempDir) {
    let dir = tmp();
    let run = dir.path().join("run");
    let out = cnnzoo(&[
        "train",
        "lenet",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
    ]);
    (out.status.code(), text(&out.stderr), dir)
}

#[test]
fn corrupt_data_files_are_clear_errors() {
    const IMAGES: &str = "train-images-idx3-ubyte.gz";
    const LABELS: &str = "train-labels-idx1-ubyte.gz";
    let gz = std::fs::read(fixture().join(IMAGES)).unwrap();

    // Truncated gzip.
    let d = data_with(IMAGES, &gz[..gz.len() / 2]);
    let (code, err, _) = train_error(d.path());
    assert_eq!(code, Some(1));
    assert!(err.contains(IMAGES) && err.contains("gzip"), "{err}");

    // Wrong magic (a labels file where images belong).
    let d = data_with(IMAGES, &std::fs::read(fixture().join(LABELS)).unwrap());
    let (code, err, _) = train_error(d.path());
    assert_eq!(code, Some(1));
    assert!(err.contains(IMAGES) && err.contains("magic number 00000801, expected 00000803"), "{err}");

    // Image/label count mismatch: 999 labels.
    let mut labels = gunzip(LABELS);
    labels[4..8].copy_from_slice(&999u32.to_be_bytes());
    labels.pop();
    let d = data_with(LABELS, &gzip(&labels));
    let (code, err, _) = train_error(d.path());
    assert_eq!(code, Some(1));
    assert!(err.contains("999 labels") && err.contains("1000 images"), "{err}");

    // Dimensions that do not match the file size (raw, not gzip, to test both paths).
    let mut images = gunzip(IMAGES);
    images.truncate(images.len() - 100);
    let d = data_with(IMAGES, &[]);
    std::fs::remove_file(d.path().join(IMAGES)).unwrap();
    std::fs::write(d.path().join("train-images-idx3-ubyte"), &images).unwrap();
    let (code, err, run_dir) = train_error(d.path());
    assert_eq!(code, Some(1));
    assert!(err.contains("1000×28×28 = 784000 bytes") && err.contains("holds 783900"), "{err}");
    // Nothing half-written: the run never started.
    assert!(!run_dir.path().join("run").exists());

    // A missing file in --data.
    let d = data_with(LABELS, b"");
    std::fs::remove_file(d.path().join(LABELS)).unwrap();
    let (code, err, _) = train_error(d.path());
    assert_eq!(code, Some(1));
    assert!(err.contains("train-labels-idx1-ubyte") && err.contains("not found"), "{err}");
}

#[test]
fn bad_run_directories_and_images_are_clear_errors() {
    let dir = tmp();
    let data = fixture();
    // An empty directory is not a run.
    let out = cnnzoo(&["eval", dir.path().to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("config.json"), "{}", text(&out.stderr));

    // A run whose config.json describes another model than its weights.
    let run = dir.path().join("run");
    let out = cnnzoo(&train_args(run.to_str().unwrap(), data.to_str().unwrap(), "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&config).unwrap();
    v["model_config"] = serde_json::to_value(cnnzoo::registry::find("lenet").unwrap().config()).unwrap();
    v["model"] = "d2l_lenet".into();
    std::fs::write(run.join("config.json"), v.to_string()).unwrap();
    let out = cnnzoo(&["eval", run.to_str().unwrap(), "--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("model.bpk") && err.contains("does not hold weights for this model"), "{err}");
    std::fs::write(run.join("config.json"), config).unwrap();

    // Missing weights.
    std::fs::remove_file(run.join("model.bpk")).unwrap();
    std::fs::remove_file(run.join("checkpoint.json")).unwrap();
    let out = cnnzoo(&["predict", run.to_str().unwrap(), "x.png"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("model.bpk"), "{}", text(&out.stderr));

    // An image that cannot be decoded.
    let out = cnnzoo(&train_args(dir.path().join("run2").to_str().unwrap(), data.to_str().unwrap(), "1"));
    assert!(out.status.success());
    let bad = dir.path().join("bad.png");
    std::fs::write(&bad, b"not a png at all").unwrap();
    let out = cnnzoo(&["predict", dir.path().join("run2").to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.png") && err.contains("cannot be decoded"), "{err}");

    // Starting a run over an existing one is refused.
    let out = cnnzoo(&train_args(dir.path().join("run2").to_str().unwrap(), data.to_str().unwrap(), "1"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already holds a run"), "{}", text(&out.stderr));
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_130() {
    let dir = tmp();
    let run = dir.path().join("run");
    let data = fixture();
    let args = train_args(run.to_str().unwrap(), data.to_str().unwrap(), "50");
    let child = spawn(&args, Stdio::piped());
    // Interrupt once the first epoch is on disk (the handler is installed by then).
    wait_until("the first epoch", || run.join("metrics.csv").is_file());
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(run.join("checkpoint.json").is_file());
}

#[test]
fn mnist_files_of_the_official_size_must_be_the_official_files() {
    // The fixture's training files, and a test set with the official 10,000 images that are
    // not MNIST's (all black): it must be refused, naming the file and the digest.
    let idx = |magic: u8, dims: &[u32], body: usize| {
        let mut v = vec![0, 0, 8, magic];
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.resize(v.len() + body, 0);
        v
    };
    let dir = data_with("t10k-images-idx3-ubyte.gz", &gzip(&idx(3, &[10_000, 28, 28], 10_000 * 784)));
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), gzip(&idx(1, &[10_000], 10_000))).unwrap();
    let err = cnnzoo::data::load(cnnzoo::data::DatasetKind::Mnist, dir.path()).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("official"), "{err}");
}

#[test]
fn a_second_train_in_the_same_run_directory_is_refused_until_the_first_ends() {
    let dir = tmp();
    let run = dir.path().join("run");
    let data = fixture();
    let args = train_args(run.to_str().unwrap(), data.to_str().unwrap(), "50");
    let mut first = spawn(&args, Stdio::null());
    wait_until("the first checkpoint", || run.join("checkpoint.json").is_file());
    let resume = ["train", "--resume", run.to_str().unwrap(), "--data", data.to_str().unwrap(), "--quiet"];
    let second = cnnzoo(&resume);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("in use by another"), "{}", text(&second.stderr));
    // SIGKILL: the OS releases the lock with the process, and the run resumes.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut resume = resume.to_vec();
    resume.extend(["--checkpoint-every", "0"]);
    let out = cnnzoo(&resume);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(metrics_rows(&run).len(), 50);
}
