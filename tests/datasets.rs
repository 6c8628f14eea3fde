//! CIFAR-10/100 (against the committed fixture of `make_cifar_fixture.py`), image folders (written
//! here with the `image` crate), the bounded decoder, validation splits, `DatasetSpec` strings and
//! archive installation — all without the network.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use cnnzoo::data::cifar::{self, Cifar};
use cnnzoo::data::decode::{decode_bytes, decode_file};
use cnnzoo::data::download::install_archive;
use cnnzoo::data::source::Source;
use cnnzoo::data::{DatasetSpec, ValSpec, open};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datasets").join(name)
}

/// The fixture's pixel formula (see make_cifar_fixture.py).
fn px(k: usize, x: usize, y: usize, c: usize) -> u8 {
    ((k * 37 + c * 85 + y * 11 + x * 3) % 256) as u8
}

fn err_of<T: std::fmt::Debug>(r: cnnzoo::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// A copy of a CIFAR fixture's files in a temp folder (the files directly in it).
fn cifar_copy(which: Cifar) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture(which.dir_name()).join(which.archive_dir());
    for f in which.files() {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

#[test]
fn cifar10_reads_labels_pixels_and_names() {
    // `--data` pointing at the folder above the archive's `cifar-10-batches-bin`.
    let d = open(&DatasetSpec::Cifar10, Some(&fixture("cifar10")), &ValSpec::Default, 0).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.channels), (10, 3, 3));
    assert!(d.location.ends_with("cifar-10-batches-bin"), "{}", d.location.display());
    assert_eq!(d.classes.len(), 10);
    assert_eq!((d.classes[0].as_str(), d.classes[9].as_str()), ("airplane", "truck"));
    for k in 0..10 {
        assert_eq!(d.train.label(k), (3 * k) % 10, "train label {k}");
        let img = d.train.get(k).unwrap();
        assert_eq!((img.width, img.height, img.channels), (32, 32, 3));
        for (x, y, c) in [(0, 0, 0), (5, 2, 1), (31, 0, 2), (0, 31, 1), (17, 23, 0), (31, 31, 2)] {
            assert_eq!(img.at(x, y, c), px(k, x, y, c), "train {k} pixel ({x},{y},{c})");
        }
    }
    for k in 0..3 {
        assert_eq!(d.val.label(k), (7 * k + 1) % 10);
        assert_eq!(d.val.get(k).unwrap().at(9, 4, 2), px(k, 9, 4, 2));
    }
    // Spelled out, in case the formula above and the script's agree on a mistake.
    let img = d.train.get(3).unwrap();
    assert_eq!((d.train.label(3), img.at(5, 2, 1), img.at(0, 0, 0)), (9, 233, 111));
    assert_eq!((d.val.label(2), d.val.get(2).unwrap().at(31, 31, 2)), (5, 166));
    assert_eq!(d.train.name(3), "data_batch_2.bin #1");
    assert_eq!(d.val.name(2), "test_batch.bin #2");
}

#[test]
fn cifar100_uses_fine_labels() {
    let dir = fixture("cifar100").join("cifar-100-binary");
    let d = open(&DatasetSpec::Cifar100, Some(&dir), &ValSpec::Default, 0).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.classes.len()), (6, 4, 100));
    assert_eq!(d.classes[99], "fine99");
    for k in 0..6 {
        assert_eq!(d.train.label(k), (17 * k) % 100);
        assert_eq!(d.train.get(k).unwrap().at(30, 1, 1), px(k, 30, 1, 1));
    }
    assert_eq!((0..4).map(|k| d.val.label(k)).collect::<Vec<_>>(), [99, 30, 61, 92]);
}

#[test]
fn cifar_bad_files_are_named() {
    // Not a multiple of the record size.
    let (_t, dir) = cifar_copy(Cifar::Ten);
    let f = dir.join("data_batch_2.bin");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 1]).unwrap();
    let e = err_of(cifar::load(Cifar::Ten, &dir));
    assert!(e.contains("data_batch_2.bin") && e.contains("6145 bytes") && e.contains("3073"), "{e}");
    // Empty.
    std::fs::write(&f, b"").unwrap();
    let e = err_of(cifar::load(Cifar::Ten, &dir));
    assert!(e.contains("data_batch_2.bin") && e.contains("has 0 bytes"), "{e}");

    // A label out of range, in the second record of the test file.
    let (_t, dir) = cifar_copy(Cifar::Ten);
    let f = dir.join("test_batch.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[3073] = 10;
    std::fs::write(&f, &bytes).unwrap();
    let e = err_of(open(&DatasetSpec::Cifar10, Some(&dir), &ValSpec::Default, 0));
    assert!(e.contains("test_batch.bin") && e.contains("record 1") && e.contains("label 10"), "{e}");

    // CIFAR-100: the fine label (second byte) is checked against 100, not the coarse one.
    let (_t, dir) = cifar_copy(Cifar::Hundred);
    let f = dir.join("train.bin");
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[2 * 3074 + 1] = 100;
    std::fs::write(&f, &bytes).unwrap();
    let e = err_of(cifar::load(Cifar::Hundred, &dir));
    assert!(e.contains("train.bin") && e.contains("record 2") && e.contains("label 100"), "{e}");

    // A missing batch: named, and `--data` never falls back to a download.
    let (_t, dir) = cifar_copy(Cifar::Ten);
    std::fs::remove_file(dir.join("data_batch_4.bin")).unwrap();
    let e = err_of(open(&DatasetSpec::Cifar10, Some(&dir), &ValSpec::Default, 0));
    assert!(e.contains("data_batch_4.bin") && e.contains("not found"), "{e}");
    let e = err_of(cifar::load(Cifar::Ten, &dir));
    assert!(e.contains("data_batch_4.bin"), "{e}");
}

#[test]
fn val_split_is_seeded_disjoint_and_held_out_of_training() {
    let data = fixture("cifar10");
    let a = open(&DatasetSpec::Cifar10, Some(&data), &ValSpec::Split(0.3), 42).unwrap();
    let names = |s: &Arc<dyn Source>| (0..s.len()).map(|i| s.name(i)).collect::<Vec<_>>();
    let (train, val) = (names(&a.train), names(&a.val));
    assert_eq!((train.len(), val.len()), (7, 3));
    assert!(val.iter().all(|n| n.starts_with("data_batch_")), "held out of the training split: {val:?}");
    assert!(val.iter().all(|n| !train.contains(n)));
    let again = open(&DatasetSpec::Cifar10, Some(&data), &ValSpec::Split(0.3), 42).unwrap();
    assert_eq!(names(&again.val), val);
    let seeds: Vec<Vec<String>> = (0..8)
        .map(|s| names(&open(&DatasetSpec::Cifar10, Some(&data), &ValSpec::Split(0.3), s).unwrap().val))
        .collect();
    assert!(seeds.iter().any(|v| *v != val), "the seed changes the held-out images");
    // Labels and pixels follow the images.
    let first = val[0].clone();
    let k: usize = {
        let (file, idx) = first.split_once(" #").unwrap();
        let batch: usize = file["data_batch_".len()..file.len() - 4].parse().unwrap();
        (batch - 1) * 2 + idx.parse::<usize>().unwrap()
    };
    assert_eq!(a.val.label(0), (3 * k) % 10);
    assert_eq!(a.val.get(0).unwrap().at(1, 2, 0), px(k, 1, 2, 0));
    for bad in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(open(&DatasetSpec::Cifar10, Some(&data), &ValSpec::Split(bad), 0).is_err());
    }
}

#[test]
fn fashion_mnist_opens_as_grey_sources() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fashion-mnist-subset");
    let d = open(&DatasetSpec::FashionMnist, Some(&data), &ValSpec::Default, 0).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.channels, d.location.clone()), (1000, 500, 1, data.clone()));
    assert_eq!((d.classes.len(), d.classes[9].as_str()), (10, "ankle boot"));
    let img = d.train.get(0).unwrap();
    assert_eq!((img.width, img.height, img.channels), (28, 28, 1));
    let s = open(&DatasetSpec::FashionMnist, Some(&data), &ValSpec::Split(0.1), 9).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (900, 100));
    assert_eq!(s.val.get(0).unwrap().data.len(), 28 * 28);
}

// ---------------------------------------------------------------------------------------------
// Image folders.

fn save_png_rgb(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([seed, x as u8, y as u8]));
    img.save_with_format(path, image::ImageFormat::Png).unwrap();
}

fn save_png_grey(path: &Path, w: u32, h: u32, v: u8) {
    image::GrayImage::from_pixel(w, h, image::Luma([v]))
        .save_with_format(path, image::ImageFormat::Png)
        .unwrap();
}

fn save_jpeg(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([200, 100, 50]));
    img.save_with_format(path, image::ImageFormat::Jpeg).unwrap();
}

/// bird: 2 images, cat: 3, dog: 2; several sizes, grey and RGB(A), 8- and 16-bit, PNG and JPEG.
fn make_folder(root: &Path) {
    for c in ["bird", "cat", "dog"] {
        std::fs::create_dir_all(root.join(c)).unwrap();
    }
    save_png_rgb(&root.join("cat/b.png"), 7, 5, 11);
    save_png_grey(&root.join("cat/a.PNG"), 12, 9, 77);
    save_jpeg(&root.join("cat/c.jpeg"), 20, 16);
    save_jpeg(&root.join("dog/1.JPG"), 33, 8);
    image::RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 0]))
        .save_with_format(root.join("dog/2.png"), image::ImageFormat::Png)
        .unwrap();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(3, 2, image::Luma([65535]))
        .save_with_format(root.join("bird/x.png"), image::ImageFormat::Png)
        .unwrap();
    std::fs::create_dir_all(root.join("bird/more")).unwrap();
    save_png_rgb(&root.join("bird/more/y.png"), 1, 1, 5);
    std::fs::write(root.join("cat/.DS_Store"), b"junk").unwrap();
    std::fs::write(root.join(".hidden"), b"junk").unwrap();
}

fn folder_spec(root: &Path) -> DatasetSpec {
    DatasetSpec::Folder(root.to_path_buf())
}

#[test]
fn image_folder_scans_sorted_classes_and_decodes_to_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("pets");
    make_folder(&root);
    let d = open(&folder_spec(&root), None, &ValSpec::Split(0.5), 3).unwrap();
    assert_eq!(d.classes, ["bird", "cat", "dog"]);
    assert_eq!((d.channels, d.train.len() + d.val.len()), (3, 7));
    assert_eq!(d.location, root);

    let all = cnnzoo::data::folder::ImageFolder::scan(&root).unwrap();
    let names: Vec<String> = (0..all.len()).map(|i| all.name(i)).collect();
    let rel = |i: usize| Path::new(&names[i]).strip_prefix(&root).unwrap().to_string_lossy().into_owned();
    let rels: Vec<String> = (0..7).map(rel).collect();
    assert_eq!(
        rels,
        ["bird/more/y.png", "bird/x.png", "cat/a.PNG", "cat/b.png", "cat/c.jpeg", "dog/1.JPG", "dog/2.png"]
    );
    assert_eq!((0..7).map(|i| all.label(i)).collect::<Vec<_>>(), [0, 0, 1, 1, 1, 2, 2]);

    let sizes: Vec<(usize, usize, usize)> =
        (0..7).map(|i| all.get(i).unwrap()).map(|img| (img.width, img.height, img.channels)).collect();
    assert_eq!(sizes, [(1, 1, 3), (3, 2, 3), (12, 9, 3), (7, 5, 3), (20, 16, 3), (33, 8, 3), (4, 4, 3)]);
    // 16-bit grey → 8-bit, replicated to RGB.
    assert_eq!(all.get(1).unwrap().data, vec![255; 18]);
    // Grey 77 → RGB (77, 77, 77).
    assert_eq!(&all.get(2).unwrap().data[..6], &[77; 6]);
    // RGB PNG is lossless: pixel (x, y) = (seed, x, y).
    let img = all.get(3).unwrap();
    assert_eq!((img.at(6, 4, 0), img.at(6, 4, 1), img.at(6, 4, 2)), (11, 6, 4));
    // RGBA: alpha dropped.
    assert_eq!(&all.get(6).unwrap().data[..3], &[1, 2, 3]);
    // JPEG is lossy: close to (200, 100, 50).
    let j = all.get(4).unwrap();
    assert!((i32::from(j.at(10, 8, 0)) - 200).abs() <= 3 && (i32::from(j.at(10, 8, 2)) - 50).abs() <= 3);
    // Grey output for a one-channel set (PIL's convert("L")).
    let grey = cnnzoo::data::folder::ImageFolder::scan(&root).unwrap().with_channels(1);
    let g = grey.get(3).unwrap();
    assert_eq!((g.channels, g.at(0, 0, 0)), (1, ((11 * 19595 + 0x8000) >> 16) as u8));
}

#[test]
fn image_folder_layout_errors_name_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("set");
    make_folder(&root);
    // A plain folder has no default validation set.
    let e = err_of(open(&folder_spec(&root), None, &ValSpec::Default, 0));
    assert!(e.contains("--val-split") && e.contains("--val folder:"), "{e}");
    // Stray non-image file inside a class folder.
    std::fs::write(root.join("cat/notes.txt"), b"hi").unwrap();
    let e = err_of(open(&folder_spec(&root), None, &ValSpec::Split(0.5), 0));
    assert!(e.contains("notes.txt") && e.contains("not an image"), "{e}");
    std::fs::remove_file(root.join("cat/notes.txt")).unwrap();
    // Stray file among the class folders.
    std::fs::write(root.join("labels.csv"), b"hi").unwrap();
    let e = err_of(open(&folder_spec(&root), None, &ValSpec::Split(0.5), 0));
    assert!(e.contains("labels.csv"), "{e}");
    std::fs::remove_file(root.join("labels.csv")).unwrap();
    // Empty class folder (a hidden file does not count).
    std::fs::create_dir_all(root.join("eel")).unwrap();
    std::fs::write(root.join("eel/.keep"), b"").unwrap();
    let e = err_of(open(&folder_spec(&root), None, &ValSpec::Split(0.5), 0));
    assert!(e.contains("eel") && e.contains("no images"), "{e}");
    // No class folders at all.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = err_of(open(&folder_spec(&empty), None, &ValSpec::Split(0.5), 0));
    assert!(e.contains("empty") && e.contains("no class folders"), "{e}");
    // A folder that does not exist.
    let e = err_of(open(&folder_spec(&tmp.path().join("nope")), None, &ValSpec::Split(0.5), 0));
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn corrupt_image_fails_alone_naming_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_folder(root);
    let good = std::fs::read(root.join("cat/b.png")).unwrap();
    std::fs::write(root.join("cat/broken.png"), &good[..good.len() / 2]).unwrap();
    std::fs::write(root.join("dog/text.jpg"), b"this is not a jpeg").unwrap();
    let all = cnnzoo::data::folder::ImageFolder::scan(root).unwrap();
    let mut failed = Vec::new();
    for i in 0..all.len() {
        match all.get(i) {
            Ok(_) => {}
            Err(e) => failed.push((all.name(i), e.to_string())),
        }
    }
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (name, e) in &failed {
        assert!(e.contains(name.as_str()), "`{e}` names `{name}`");
    }
    assert!(failed[0].0.ends_with("broken.png") && failed[1].0.ends_with("text.jpg"));
}

#[test]
fn decompression_bombs_are_refused_before_decoding() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    let bomb = tmp.path().join("a/bomb.png");
    std::fs::write(&bomb, common::png_claiming(50_000, 50_000)).unwrap();
    let start = Instant::now();
    let e = err_of(decode_file(&bomb));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert!(e.contains("bomb.png") && e.contains("50000×50000"), "{e}");
    // Within the side limit but over the pixel count.
    let e = err_of(decode_bytes(&common::png_claiming(12_000, 12_000), "upload.png"));
    assert!(e.contains("upload.png") && e.contains("12000×12000"), "{e}");
    // predict's reader and a folder's images go through the same check.
    let e = err_of(cnnzoo::predict::read_image(&bomb));
    assert!(e.contains("50000×50000"), "{e}");
    let folder = cnnzoo::data::folder::ImageFolder::scan(tmp.path()).unwrap();
    assert!(err_of(folder.get(0)).contains("50000×50000"));
    // A small honest image with the same construction decodes.
    let ok = decode_bytes(&common::png_claiming(16, 16), "small.png").unwrap();
    assert_eq!((ok.width, ok.height, ok.channels), (16, 16, 3));
}

#[test]
fn imagenet_style_train_val_and_val_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("inet");
    for (split, class, n) in [("train", "ant", 3), ("train", "bee", 2), ("val", "bee", 2)] {
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            save_png_grey(&dir.join(format!("{i}.png")), 4 + i, 4, 9);
        }
    }
    let d = open(&folder_spec(&root), None, &ValSpec::Default, 0).unwrap();
    assert_eq!(d.classes, ["ant", "bee"]);
    assert_eq!((d.train.len(), d.val.len()), (5, 2));
    // The validation folder lacks `ant`: `bee` keeps the training label 1.
    assert_eq!((d.val.label(0), d.val.label(1)), (1, 1));
    assert!(d.val.name(0).contains("val"));
    assert_eq!(d.val.get(1).unwrap().channels, 3);
    // A split holds out of train/ only.
    let s = open(&folder_spec(&root), None, &ValSpec::Split(0.4), 0).unwrap();
    assert_eq!((s.train.len(), s.val.len()), (3, 2));
    assert!((0..2).all(|i| s.val.name(i).contains("train")));
    // A validation class the training set lacks is an error naming it.
    std::fs::create_dir_all(root.join("val/cow")).unwrap();
    save_png_grey(&root.join("val/cow/0.png"), 4, 4, 1);
    let e = err_of(open(&folder_spec(&root), None, &ValSpec::Default, 0));
    assert!(e.contains("cow") && e.contains("not a class of the training set"), "{e}");
    // --val folder:PATH with a plain training folder.
    let v = open(&folder_spec(&root.join("train")), None, &ValSpec::Folder(root.join("val")), 0);
    assert!(err_of(v).contains("cow"));
    std::fs::remove_dir_all(root.join("val/cow")).unwrap();
    let v = open(&folder_spec(&root.join("train")), None, &ValSpec::Folder(root.join("val")), 0).unwrap();
    assert_eq!((v.train.len(), v.val.len(), v.val.label(0)), (5, 2, 1));
}

#[test]
fn folder_val_split_is_seeded_disjoint_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    for c in ["a", "b"] {
        std::fs::create_dir_all(tmp.path().join(c)).unwrap();
        for i in 0..10 {
            save_png_grey(&tmp.path().join(format!("{c}/{i:02}.png")), 2, 2, i);
        }
    }
    let spec = folder_spec(tmp.path());
    let names = |s: &Arc<dyn Source>| (0..s.len()).map(|i| s.name(i)).collect::<Vec<_>>();
    let a = open(&spec, None, &ValSpec::Split(0.25), 5).unwrap();
    let (train, val) = (names(&a.train), names(&a.val));
    assert_eq!((train.len(), val.len()), (15, 5));
    let mut all: Vec<String> = train.iter().chain(&val).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 20, "disjoint and complete");
    assert_eq!(names(&open(&spec, None, &ValSpec::Split(0.25), 5).unwrap().val), val);
    assert_ne!(names(&open(&spec, None, &ValSpec::Split(0.25), 6).unwrap().val), val);
}

// ---------------------------------------------------------------------------------------------
// Specs and archives.

#[test]
fn dataset_spec_strings_round_trip() {
    for s in ["fashion-mnist", "mnist", "cifar10", "cifar100", "folder:/data/pets", "folder:rel/dir"] {
        let spec: DatasetSpec = s.parse().unwrap();
        assert_eq!(spec.to_string(), s);
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<DatasetSpec>(&json).unwrap(), spec);
    }
    assert_eq!("folder:/x".parse::<DatasetSpec>().unwrap(), DatasetSpec::Folder("/x".into()));
    let e = err_of("cifar-10".parse::<DatasetSpec>());
    assert!(e.contains("cifar-10") && e.contains("cifar10, cifar100 or folder:PATH"), "{e}");
    assert!(err_of("folder:".parse::<DatasetSpec>()).contains("needs a path"));
    assert!(serde_json::from_str::<DatasetSpec>("\"imagenet\"").is_err());

    for s in ["default", "folder:/v", "split:0.1"] {
        let v: ValSpec = s.parse().unwrap();
        assert_eq!(v.to_string(), s);
        assert_eq!(serde_json::from_str::<ValSpec>(&serde_json::to_string(&v).unwrap()).unwrap(), v);
    }
    assert_eq!(ValSpec::from_flags(None, Some(0.2)).unwrap(), ValSpec::Split(0.2));
    assert_eq!(ValSpec::from_flags(Some("folder:v"), None).unwrap(), ValSpec::Folder("v".into()));
    assert_eq!(ValSpec::from_flags(None, None).unwrap(), ValSpec::Default);
    assert!(ValSpec::from_flags(Some("folder:v"), Some(0.2)).is_err());
    assert!(ValSpec::from_flags(Some("v"), None).is_err());
    for bad in [0.0, 1.0, 1.5, -0.1] {
        assert!(err_of(ValSpec::from_flags(None, Some(bad))).contains("--val-split"));
    }
}

/// A `.tar.gz` of `(path, bytes)` entries.
fn targz(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn archives_are_checked_and_installed_atomically() {
    let which = Cifar::Ten;
    let src = fixture("cifar10").join(which.archive_dir());
    let mut entries: Vec<(String, Vec<u8>)> = which
        .files()
        .into_iter()
        .map(|f| (format!("{}/{f}", which.archive_dir()), std::fs::read(src.join(f)).unwrap()))
        .collect();
    entries.push(("cifar-10-batches-bin/readme.html".into(), b"<p>hi</p>".to_vec()));
    entries.push(("elsewhere/evil.bin".into(), b"x".to_vec()));
    let borrowed: Vec<(&str, Vec<u8>)> = entries.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let archive = targz(&borrowed);
    let md5 = md5_hex(&archive);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("cache/cifar10");
    let what = Path::new("cifar-10-binary.tar.gz");
    let files = which.files();

    // A wrong digest: refused, nothing installed.
    let e = err_of(install_archive(&archive, &"0".repeat(32), what, which.archive_dir(), &files, &dest));
    assert!(e.contains("MD5") && e.contains(&md5), "{e}");
    assert!(!dest.join(which.archive_dir()).exists());

    // A stale, incomplete folder is replaced.
    std::fs::create_dir_all(dest.join(which.archive_dir())).unwrap();
    std::fs::write(dest.join(which.archive_dir()).join("data_batch_1.bin"), b"partial").unwrap();
    let dir = install_archive(&archive, &md5, what, which.archive_dir(), &files, &dest).unwrap();
    assert_eq!(dir, dest.join(which.archive_dir()));
    let listing: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, [which.archive_dir()], "no temp folders or stray paths left");
    assert!(dir.join("readme.html").is_file());
    let data = cifar::load(which, &dir).unwrap();
    assert_eq!((data.train.len(), data.test.len(), data.train.label(3)), (10, 3, 9));
    // And `--data` finds it through the archive's folder name.
    assert_eq!(cifar::locate(which, Some(&dest)).unwrap(), dir);

    // An archive lacking a required file: refused, naming it; the installed copy stays.
    let partial = targz(&borrowed[1..]);
    let e = err_of(install_archive(&partial, &md5_hex(&partial), what, which.archive_dir(), &files, &dest));
    assert!(e.contains("data_batch_1.bin") && e.contains("cifar-10-binary.tar.gz"), "{e}");
    assert!(cifar::load(which, &dir).is_ok());
    // Not gzip at all.
    let junk = b"not an archive".to_vec();
    let e = err_of(install_archive(&junk, &md5_hex(&junk), what, which.archive_dir(), &files, &dest));
    assert!(e.contains("cifar-10-binary.tar.gz"), "{e}");
}
