//! Training, including the evaluation after each epoch, leaves the kernels' prepared-weight
//! cache as it found it: every epoch's weights are new, so keeping them would only hold memory.
//! Its own test binary, because the cache is process-wide.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use cnnzoo::train::{self, Outcome, Silent, TrainConfig, TrainOptions};

#[test]
fn training_and_its_evaluation_do_not_grow_the_weight_cache() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let data = cnnzoo::data::load(cnnzoo::data::DatasetKind::FashionMnist, &fixture).unwrap();
    let mut config = TrainConfig::for_model("d2l_lenet", None).unwrap();
    config.epochs = 2;
    config.train_subset = Some(256);
    config.test_subset = Some(100);
    cnnzoo::kernels::cache::clear();
    let dir = tempfile::tempdir().unwrap();
    let opts = TrainOptions {
        device: burn::tensor::Device::flex(),
        interrupt: Arc::new(AtomicBool::new(false)),
        checkpoint_every: 0,
        reporter: &mut Silent,
    };
    let data = train::RunData::from_dataset(&config, &data, train::LoadOptions::default()).unwrap();
    let outcome = train::train(&config, &data, &dir.path().join("run"), false, opts).unwrap();
    assert!(matches!(outcome, Outcome::Finished(ref h) if h.len() == 2));
    assert_eq!(cnnzoo::kernels::cache::stats(), (0, 0), "training left prepared weights in the cache");
}
