//! Fine-tuning (`--init`, `--freeze backbone`, `--head-lr`) through the library: the head is
//! replaced for a new class count, a frozen backbone (batch-norm statistics included) is
//! bit-identical after training, the loss goes down, another architecture is refused by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cnnzoo::data::Split;
use cnnzoo::data::image::Image;
use cnnzoo::data::source::Source;
use cnnzoo::train::{self, EpochMetrics, LoadOptions, Outcome, RunData, Silent, TrainConfig, TrainOptions};
use cnnzoo::{Result, interop, registry};

/// Training and initialization draw from the device's seeded generator: one test at a time.
static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset")
}

/// Fashion-MNIST as two classes: tops (t-shirt, pullover, dress, coat, shirt) and the rest.
struct Tops(Split);

impl Source for Tops {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn label(&self, i: usize) -> usize {
        usize::from([0, 2, 3, 4, 6].contains(&self.0.labels[i]))
    }
    fn get(&self, i: usize) -> Result<Image> {
        self.0.get(i)
    }
    fn name(&self, i: usize) -> String {
        self.0.name(i)
    }
}

fn run(config: &TrainConfig, data: &RunData, dir: &Path) -> Vec<EpochMetrics> {
    let opts = TrainOptions {
        device: burn::tensor::Device::flex(),
        interrupt: Arc::new(AtomicBool::new(false)),
        checkpoint_every: 0,
        reporter: &mut Silent,
    };
    match train::train(config, data, dir, false, opts).unwrap() {
        Outcome::Finished(history) => history,
        other => panic!("{other:?}"),
    }
}

/// Every tensor of a run's final model by PyTorch key.
fn tensors(run: &Path) -> BTreeMap<String, Vec<f32>> {
    let loaded = train::load_run(run, &burn::tensor::Device::flex()).unwrap();
    interop::state_dict(&loaded.model)
        .unwrap()
        .into_iter()
        .filter_map(|t| t.values.map(|v| (t.key, v)))
        .collect()
}

/// A 10-class LeNet-BN trained briefly on Fashion-MNIST: the "pretrained" source.
fn source_run(dir: &Path) -> PathBuf {
    let data = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &fixture()).unwrap();
    let mut config = TrainConfig::for_model("d2l_lenet_bn", None).unwrap();
    config.epochs = 2;
    config.batch_size = 64;
    config.test_subset = Some(32);
    let path = dir.join("source");
    run(&config, &RunData::from_dataset(&config, &data, LoadOptions::default()).unwrap(), &path);
    path
}

/// The two-class fine-tuning config and data, starting from `source`.
fn two_class(source: &Path) -> (TrainConfig, RunData) {
    let data = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &fixture()).unwrap();
    let entry = registry::find("d2l_lenet_bn").unwrap();
    let mut config = TrainConfig::for_model("d2l_lenet_bn", None).unwrap();
    config.model_config = entry.config_with(2, 1);
    config.classes = vec!["top".into(), "other".into()];
    config.init = Some(source.display().to_string());
    config.epochs = 3;
    config.train_subset = Some(256);
    config.test_subset = Some(64);
    config.lr = 0.1;
    let opts = LoadOptions { workers: 1, ..LoadOptions::default() };
    let data = RunData::new(&config, Arc::new(Tops(data.train)), Arc::new(Tops(data.test)), opts).unwrap();
    (config, data)
}

#[test]
fn the_head_is_replaced_and_a_frozen_backbone_stays_bit_identical() {
    let _serial = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let source = source_run(dir.path());
    let (config, _) = two_class(&source);

    // --init loads everything but the 10-class head, and says so.
    let device = burn::tensor::Device::flex();
    let (_, report) =
        cnnzoo::train::finetune::init_from(&source, "d2l_lenet_bn", &config.model_config, &device).unwrap();
    let not_loaded: Vec<&str> = report.not_loaded.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(not_loaded, ["classifier.6.weight", "classifier.6.bias"], "{report:?}");
    assert!(
        report.not_loaded[0].1.contains("[10, 84]") && report.not_loaded[0].1.contains("[2, 84]"),
        "{report:?}"
    );
    let before = tensors(&source);
    assert_eq!(report.loaded, before.len() - 2);

    // --freeze backbone: only the head moves; running statistics too stay as they were.
    let (mut frozen, data) = two_class(&source);
    frozen.freeze_backbone = true;
    let history = run(&frozen, &data, &dir.path().join("frozen"));
    // The replaced head is drawn under the run's seed: a second run is the same run.
    let numbers =
        |h: &[EpochMetrics]| h.iter().map(|m| (m.train_loss, m.train_acc, m.test_acc)).collect::<Vec<_>>();
    assert_eq!(numbers(&run(&frozen, &data, &dir.path().join("again"))), numbers(&history));
    let after = tensors(&dir.path().join("frozen"));
    let mut compared = 0;
    for (key, values) in &before {
        if key.starts_with("classifier.6.") {
            continue;
        }
        assert_eq!(&after[key], values, "`{key}` changed under --freeze backbone");
        compared += 1;
    }
    assert!(compared > 10 && before.keys().any(|k| k.ends_with("running_var")));
    assert_eq!(after["classifier.6.weight"].len(), 2 * 84);
    let first = &history[0];
    let last = &history[history.len() - 1];
    assert!(last.train_loss < first.train_loss, "loss did not go down: {history:?}");
    assert!(last.test_acc > 0.6, "two-class accuracy {} from a pretrained backbone", last.test_acc);
}

#[test]
fn head_lr_trains_the_head_at_its_own_rate_and_other_architectures_are_refused() {
    let _serial = IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let source = source_run(dir.path());
    // A backbone rate too small to move an f32 weight, a head rate that trains.
    let (mut config, data) = two_class(&source);
    config.lr = 1e-30;
    config.head_lr = Some(0.1);
    config.batch_size = 32;
    let history = run(&config, &data, &dir.path().join("head-lr"));
    let (before, after) = (tensors(&source), tensors(&dir.path().join("head-lr")));
    assert_eq!(before["features.0.weight"], after["features.0.weight"]);
    assert!(history[2].train_loss < history[0].train_loss, "the head did not learn: {history:?}");

    // LeNet (no batch norm) into LeNet-BN: the missing tensors are named.
    let lenet = TrainConfig::for_model("d2l_lenet", None).unwrap();
    let device = burn::tensor::Device::flex();
    let plain = lenet.model_config.init(&device);
    let file = dir.path().join("lenet.safetensors");
    interop::export_safetensors(&plain, &file).unwrap();
    let err = cnnzoo::train::finetune::init_from(&file, "d2l_lenet_bn", &config.model_config, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("another architecture") && err.contains("lenet.safetensors"), "{err}");
    // LeNet's first dense layer sees 16·5·5 features, LeNet-BN's 16·4·4: named with both shapes.
    assert!(err.contains("`classifier.0.weight`") && err.contains("[120, 400]"), "{err}");
}
