//! Mutation fuzzing of every parser of files that users did not make (issue 13), on stable Rust.
//!
//! Each parser gets valid seeds (made here, or the committed fixtures) and then mutated copies
//! of them (see `fuzz/mutate.rs`). A case fails when the parser panics, takes longer than
//! [`TIME_BOUND`], makes a single allocation over [`alloc::BOUND`] (the counting allocator of
//! `fuzz/alloc.rs` is this binary's global allocator), or returns an error whose message does
//! not name the file it was given. A failing input is saved under `fuzz-crashes/` in Cargo's
//! test temp folder, and the message names the parser, the seed and the case.
//!
//! `CNNZOO_FUZZ_CASES` sets the cases per parser (default 300, a few seconds in all);
//! `CNNZOO_FUZZ_TARGETS` (comma-separated parts of names) picks parsers; `CNNZOO_FUZZ_SEED`
//! changes the random stream. The long run and its measured table are in `docs/fuzzing.md`:
//! `CNNZOO_FUZZ_CASES=100000 cargo test --test fuzz -- --nocapture` (the test profile: the
//! dependencies optimized, our code with overflow checks).
//!
//! The tests after the fuzzer are the lying headers, one each (a size far beyond the file or
//! memory must be refused before anything of that size is allocated), and the regression tests
//! of what the fuzzer found, each with its minimized input.

#[path = "fuzz/alloc.rs"]
mod alloc;
#[path = "fuzz/mutate.rs"]
mod mutate;

use std::io::{Cursor, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use cnnzoo::Error;
use cnnzoo::data::cifar::{self, Cifar};
use cnnzoo::data::decode::{decode_bytes, decode_file};
use cnnzoo::data::folder::ImageFolder;
use cnnzoo::data::source::Source;
use cnnzoo::data::transforms::Transforms;
use cnnzoo::data::{DatasetKind, idx};
use cnnzoo::interop::{self, StateTensor};
use cnnzoo::registry;
use cnnzoo::train::finetune;
use cnnzoo::train::{self, TrainConfig};
use mutate::Rng;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// The longest one case may take (a debug build on a slow machine stays far below it).
const TIME_BOUND: Duration = Duration::from_secs(2);

/// Failures reported per parser before it is abandoned (the first is what matters).
const MAX_FAILURES: usize = 3;

/// The tests of this binary run one at a time: the allocation counter is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes")
}

/// The last panic's message and place, recorded by a hook that stays quiet while fuzzing.
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn install_panic_hook() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let place = info.location().map(|l| l.to_string()).unwrap_or_default();
                *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("`{message}` at {place}");
            } else {
                default(info);
            }
        }));
    });
}

/// Errors a run of a parser returned, each with the name its message must contain.
type Errors = Vec<(Error, String)>;

/// Runs `f`, recording its error (if any) with the name it must show.
fn named<T>(errors: &mut Errors, name: &Path, result: cnnzoo::Result<T>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push((e, name.display().to_string()));
            None
        }
    }
}

/// How mutations treat a parser's seeds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bytes,
    /// Half the cases have their chunk CRCs fixed after mutation.
    Png,
    /// Half the cases have their stored entries' CRCs fixed after mutation.
    Zip,
    /// Half the cases mutate the JSON header (its length field kept right).
    Safetensors,
    /// Per seed: for `.json` names, half the cases swap JSON values for extreme ones.
    Mixed,
}

struct Seed {
    name: String,
    bytes: Vec<u8>,
    /// Whether the parser must accept the seed as it is.
    valid: bool,
}

fn seed(name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed { name: name.into(), bytes, valid: true }
}

struct Target {
    name: &'static str,
    seeds: Vec<Seed>,
    kind: Kind,
    /// Runs the parser on `input`, which replaces seed `i`'s file, in work folder `dir`.
    run: Parser,
}

/// A parser under test: seed index, input, work folder → the errors it returned.
type Parser = Box<dyn Fn(usize, &[u8], &Path) -> Errors>;

/// Files by name, with their bytes.
type Files = Vec<(String, Vec<u8>)>;

/// One parser's results.
struct Stats {
    name: &'static str,
    cases: usize,
    errors: usize,
    ok: usize,
    slowest: Duration,
    slowest_case: usize,
    largest: usize,
    failures: Vec<String>,
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn fuzz(target: &Target, cases: usize, stream: u64) -> Stats {
    install_panic_hook();
    let work = tempfile::tempdir().expect("temp dir");
    let crashes = crash_dir();
    std::fs::create_dir_all(&crashes).expect("crash dir");
    let in_flight = crashes.join(format!("in-flight-{}.bin", slug(target.name)));
    let mut rng = Rng::new(stream ^ fnv(target.name));
    let mut s = Stats {
        name: target.name,
        cases: 0,
        errors: 0,
        ok: 0,
        slowest: Duration::ZERO,
        slowest_case: 0,
        largest: 0,
        failures: Vec::new(),
    };
    let n = target.seeds.len();
    for case in 0..cases.max(n) {
        let (i, input) = if case < n {
            (case, target.seeds[case].bytes.clone())
        } else {
            let (i, j) = (rng.below(n), rng.below(n));
            let (seed, other) = (&target.seeds[i].bytes, &target.seeds[j].bytes);
            let json = match target.kind {
                Kind::Mixed => target.seeds[i].name.contains(".json"),
                _ => false,
            };
            let structured = rng.one_in(2);
            let mut v = match target.kind {
                _ if json && structured => mutate::mutate_json(&mut rng, seed),
                Kind::Safetensors if structured => mutate::mutate_safetensors_header(&mut rng, seed),
                _ => None,
            }
            .unwrap_or_else(|| mutate::mutate(&mut rng, seed, other));
            match target.kind {
                Kind::Png if structured => mutate::fix_png_crcs(&mut v),
                Kind::Zip if structured => mutate::fix_zip_crcs(&mut v),
                _ => {}
            }
            (i, v)
        };
        std::fs::write(&in_flight, &input).expect("in-flight input");
        QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
        alloc::arm();
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| (target.run)(i, &input, work.path())));
        let took = start.elapsed();
        let largest = alloc::disarm();
        QUIET.store(false, std::sync::atomic::Ordering::Relaxed);
        s.cases += 1;
        s.largest = s.largest.max(largest);
        if took > s.slowest {
            s.slowest = took;
            s.slowest_case = case;
        }
        let mut problems = Vec::new();
        match result {
            Err(_) => {
                let message = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone();
                problems.push(format!("panicked: {message}"));
            }
            Ok(errors) if errors.is_empty() => s.ok += 1,
            Ok(errors) => {
                s.errors += 1;
                if case < n && target.seeds[i].valid {
                    problems.push(format!("the unmutated seed is refused: {}", errors[0].0));
                }
                for (e, name) in &errors {
                    let message = e.to_string();
                    if !message.contains(name.as_str()) {
                        problems.push(format!("its error does not name `{name}`: {message}"));
                    }
                }
            }
        }
        if took > TIME_BOUND {
            problems.push(format!("took {took:.2?}, over the {TIME_BOUND:?} bound"));
        }
        if largest > alloc::BOUND {
            problems.push(format!(
                "allocated {largest} bytes at once, over the {} MiB bound",
                alloc::BOUND >> 20
            ));
        }
        if !problems.is_empty() {
            let saved = crashes.join(format!("{}-seed{i}-case{case}.bin", slug(target.name)));
            std::fs::write(&saved, &input).expect("crash input");
            s.failures.push(format!(
                "parser `{}`, seed `{}`, case {case}: {}; input ({} bytes) saved as {}",
                target.name,
                target.seeds[i].name,
                problems.join("; "),
                input.len(),
                saved.display()
            ));
            if s.failures.len() >= MAX_FAILURES {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(&in_flight);
    s
}

fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

// ---------------------------------------------------------------------------------------------
// Seeds.

fn idx_file(ndim: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, ndim];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).expect("fixture gzip");
    out
}

fn pixels(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt)).collect()
}

fn idx_images(n: u32, side: u32) -> Vec<u8> {
    idx_file(3, &[n, side, side], &pixels((n * side * side) as usize, 7))
}

fn idx_labels(n: u32) -> Vec<u8> {
    idx_file(1, &[n], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).expect("encode");
    out
}

fn rgb(w: u32, h: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 37) as u8, (y * 53) as u8, ((x + y) * 11) as u8])
    }))
}

fn png_seeds() -> Vec<Seed> {
    use image::DynamicImage as D;
    let png = |img| encode(img, image::ImageFormat::Png);
    vec![
        seed("rgb 7×5.png", png(rgb(7, 5))),
        seed(
            "grey16 4×4.png",
            png(D::ImageLuma16(image::ImageBuffer::from_fn(4, 4, |x, y| {
                image::Luma([(x * 9000 + y) as u16])
            }))),
        ),
        seed(
            "rgba 3×3.png",
            png(D::ImageRgba8(image::RgbaImage::from_fn(3, 3, |x, y| {
                image::Rgba([x as u8, y as u8, 9, 200])
            }))),
        ),
        seed(
            "grey-alpha 5×2.png",
            png(D::ImageLumaA8(image::ImageBuffer::from_fn(5, 2, |x, _| image::LumaA([x as u8 * 40, 255])))),
        ),
        seed("rgb 32×32.png", png(rgb(32, 32))),
    ]
}

fn jpeg_seeds() -> Vec<Seed> {
    let jpeg = |img| encode(img, image::ImageFormat::Jpeg);
    vec![
        seed("rgb 16×16.jpg", jpeg(rgb(16, 16))),
        seed("grey 9×7.jpg", jpeg(rgb(9, 7).grayscale())),
        seed("rgb 33×17.jpg", jpeg(rgb(33, 17))),
    ]
}

fn lenet() -> (&'static registry::Entry, cnnzoo::ModelConfig) {
    let entry = registry::find("d2l_lenet").expect("d2l_lenet");
    (entry, entry.config())
}

/// A safetensors state dict of two small tensors (valid as a file, not a LeNet).
fn tiny_safetensors(dir: &Path) -> Vec<u8> {
    let path = dir.join("tiny.safetensors");
    let tensors = [
        StateTensor {
            key: "net.0.weight".into(),
            path: String::new(),
            shape: vec![2, 3],
            values: Some(vec![0.5; 6]),
        },
        StateTensor {
            key: "bn.num_batches_tracked".into(),
            path: String::new(),
            shape: vec![],
            values: None,
        },
    ];
    interop::write_safetensors(&path, &tensors).expect("tiny safetensors");
    std::fs::read(path).expect("tiny safetensors")
}

fn lenet_safetensors(dir: &Path) -> Vec<u8> {
    let (_, config) = lenet();
    let path = dir.join("lenet.safetensors");
    interop::export_safetensors(&config.init(&Device::flex()), &path).expect("export");
    std::fs::read(path).expect("lenet safetensors")
}

/// A LeNet run directory's four files: config, checkpoint pointer, metrics, weights.
fn run_seeds(dir: &Path) -> Vec<Seed> {
    let (entry, config) = lenet();
    let run = dir.join("seed-run");
    let tc = TrainConfig::for_model(entry.name, None).expect("config");
    train::save_run(&run, &tc, &config.init(&Device::flex())).expect("save_run");
    let history = vec![train::EpochMetrics {
        epoch: 1,
        train_loss: 0.9,
        train_acc: 0.6,
        test_acc: 0.65,
        lr: 0.9,
        train_seconds: 1.5,
        images_per_sec: 4000.0,
    }];
    train::run_dir::write_metrics(&run, &history).expect("metrics");
    let state = train::RunState {
        epoch: 1,
        batch: 0,
        loss_sum: 0.0,
        correct: 0,
        seen: 0,
        seconds: 0.0,
        history,
        skipped: 0,
    };
    let pointer = serde_json::json!({ "dir": "checkpoint-1-0", "state": state });
    let read = |name: &str| std::fs::read(run.join(name)).expect("run file");
    // A second config with every optional part: a folder data set, a held-out split, a
    // transform pipeline, an ImageNet preprocessing, `--init`, `--head-lr`.
    let mut full = tc.clone();
    full.dataset = "folder:/data/pets".parse().expect("dataset");
    full.val = "split:0.2".parse().expect("val split");
    full.transforms = Some(Transforms::preset("alexnet", full.input).expect("preset"));
    full.preprocess = registry::find("resnet18").expect("resnet18").preprocess;
    full.init = Some("/runs/base".into());
    full.head_lr = Some(0.1);
    full.classes = (0..10).map(|c| format!("class {c}")).collect();
    vec![
        seed("config.json", read("config.json")),
        seed("checkpoint.json", serde_json::to_vec_pretty(&pointer).expect("json")),
        seed("metrics.csv", read("metrics.csv")),
        seed("model.bpk", read("model.bpk")),
        seed("config.json (every option)", serde_json::to_vec_pretty(&full).expect("json")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Targets.

fn targets(scratch: &Path) -> Vec<Target> {
    let fmnist = fixtures().join("fashion-mnist-subset");
    let fixture = |p: &Path| std::fs::read(p).expect("fixture");
    let device = Device::flex();
    let mut all = Vec::new();

    // IDX, raw and gzip-compressed: `data::idx::read` with the dimension count of the seed.
    let raw = vec![
        seed("images 3×4×5", idx_file(3, &[3, 4, 5], &pixels(60, 1))),
        seed("images 2×28×28", idx_images(2, 28)),
        seed("labels 10", idx_labels(10)),
        seed("t10k-labels (fixture)", gunzip(&fixture(&fmnist.join("t10k-labels-idx1-ubyte.gz")))),
    ];
    let gzipped = raw
        .iter()
        .map(|s| seed(format!("{}.gz", s.name), gz(&s.bytes)))
        .chain([seed("train-labels.gz (fixture)", fixture(&fmnist.join("train-labels-idx1-ubyte.gz")))])
        .collect();
    for (name, seeds) in [("idx (raw)", raw), ("idx (gz)", gzipped)] {
        let ndims: Vec<usize> = seeds.iter().map(|s| if s.name.contains("labels") { 1 } else { 3 }).collect();
        all.push(Target {
            name,
            seeds,
            kind: Kind::Bytes,
            run: Box::new(move |i, input, dir| {
                let path = dir.join("file-idx-ubyte");
                std::fs::write(&path, input).expect("write");
                let mut errors = Vec::new();
                if let Some(file) = named(&mut errors, &path, idx::read(&path, ndims[i])) {
                    assert_eq!(file.data.len(), file.dims.iter().product::<usize>(), "data vs dims");
                }
                errors
            }),
        });
    }

    // `data::load`: a pair of splits, one of the four files mutated.
    let names = cnnzoo::data::FILES;
    let ds_seeds = vec![
        seed(format!("{}.gz", names[0]), gz(&idx_images(4, 6))),
        seed(names[1], idx_labels(4)),
        seed(names[2], idx_images(3, 6)),
        seed(format!("{}.gz", names[3]), gz(&idx_labels(3))),
    ];
    let ds_valid: Vec<(String, Vec<u8>)> =
        ds_seeds.iter().map(|s| (s.name.clone(), s.bytes.clone())).collect();
    all.push(Target {
        name: "data::load (IDX pair)",
        seeds: ds_seeds,
        kind: Kind::Bytes,
        run: Box::new(move |i, input, dir| {
            let root = dir.join("fashion");
            std::fs::create_dir_all(&root).expect("dir");
            for (k, (name, bytes)) in ds_valid.iter().enumerate() {
                std::fs::write(root.join(name), if k == i { input } else { bytes }).expect("write");
            }
            let mut errors = Vec::new();
            if let Some(ds) = named(&mut errors, &root, cnnzoo::data::load(DatasetKind::FashionMnist, &root))
            {
                for split in [&ds.train, &ds.test] {
                    assert_eq!(split.images.len(), split.len() * split.rows * split.cols);
                    assert!(split.labels.iter().all(|&l| l < 10));
                }
            }
            errors
        }),
    });

    // CIFAR-10/100 binary batches and their class-name files.
    let c10 = fixtures().join("datasets/cifar10").join(Cifar::Ten.archive_dir());
    let c100 = fixtures().join("datasets/cifar100").join(Cifar::Hundred.archive_dir());
    let mut cifar_files: Vec<(Cifar, Files)> = Vec::new();
    for (cifar, dir) in [(Cifar::Ten, &c10), (Cifar::Hundred, &c100)] {
        let files = cifar.files().into_iter().map(|f| (f.to_string(), fixture(&dir.join(f)))).collect();
        cifar_files.push((cifar, files));
    }
    let pick = [
        (0usize, Cifar::Ten.train_files()[0]),
        (0, Cifar::Ten.meta_file()),
        (1, "train.bin"),
        (1, Cifar::Hundred.meta_file()),
    ];
    let cifar_seeds = pick
        .iter()
        .map(|&(k, f)| {
            let bytes = cifar_files[k].1.iter().find(|(n, _)| n == f).expect("cifar file").1.clone();
            seed(format!("{}/{f}", cifar_files[k].0.dir_name()), bytes)
        })
        .collect();
    all.push(Target {
        name: "cifar (binary batches)",
        seeds: cifar_seeds,
        kind: Kind::Bytes,
        run: Box::new(move |i, input, dir| {
            let (k, file) = pick[i];
            let (cifar, files) = &cifar_files[k];
            let root = dir.join(cifar.dir_name());
            std::fs::create_dir_all(&root).expect("dir");
            for (name, bytes) in files {
                std::fs::write(root.join(name), if name == file { input } else { bytes }).expect("write");
            }
            let mut errors = Vec::new();
            if let Some(data) = named(&mut errors, &root, cifar::load(*cifar, &root)) {
                for split in [&data.train, &data.test] {
                    for j in 0..split.len() {
                        assert!(split.label(j) < cifar.num_classes());
                        let img = split.get(j).expect("an in-memory CIFAR image");
                        assert_eq!(img.data.len(), 32 * 32 * 3);
                        assert!(!split.name(j).is_empty());
                    }
                }
            }
            errors
        }),
    });

    // PNG and JPEG through the bounded decoder, from bytes (an upload) and from a file.
    for (name, seeds, kind, ext) in
        [("png (decode)", png_seeds(), Kind::Png, "png"), ("jpeg (decode)", jpeg_seeds(), Kind::Bytes, "jpg")]
    {
        all.push(Target {
            name,
            seeds,
            kind,
            run: Box::new(move |_, input, dir| {
                let mut errors = Vec::new();
                let checked = |img: cnnzoo::data::image::Image| {
                    assert!(img.width > 0 && img.height > 0);
                    assert_eq!(img.data.len(), img.width * img.height * img.channels);
                };
                if fnv_bytes(input).is_multiple_of(2) {
                    if let Some(img) = named(&mut errors, Path::new("upload"), decode_bytes(input, "upload"))
                    {
                        checked(img);
                    }
                } else {
                    let path = dir.join(format!("image.{ext}"));
                    std::fs::write(&path, input).expect("write");
                    if let Some(img) = named(&mut errors, &path, decode_file(&path)) {
                        checked(img);
                    }
                }
                errors
            }),
        });
    }

    // Image folders: one of three images mutated, and the layout varied by the input's hash.
    let folder_seeds = vec![
        seed("cat/a.png", encode(rgb(6, 4), image::ImageFormat::Png)),
        seed("cat/sub/b.jpg", encode(rgb(8, 8), image::ImageFormat::Jpeg)),
        seed("dog/c.png", encode(rgb(5, 5).grayscale(), image::ImageFormat::Png)),
    ];
    let folder_valid: Vec<(String, Vec<u8>)> =
        folder_seeds.iter().map(|s| (s.name.clone(), s.bytes.clone())).collect();
    all.push(Target {
        name: "image folder (scan + get)",
        seeds: folder_seeds,
        kind: Kind::Bytes,
        run: Box::new(move |i, input, dir| {
            let root = dir.join("folder");
            let _ = std::fs::remove_dir_all(&root);
            for (k, (name, bytes)) in folder_valid.iter().enumerate() {
                let path = root.join(name);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
                std::fs::write(path, if k == i { input } else { bytes }).expect("write");
            }
            // The layout varies only for mutated inputs: the seeds themselves must be accepted.
            let h = if input == folder_valid[i].1 { 4 } else { fnv_bytes(input) };
            match h % 8 {
                0 => std::fs::write(root.join("dog/notes.txt"), b"stray").expect("write"),
                1 => std::fs::write(root.join("cat/.DS_Store"), input).expect("write"),
                2 => std::fs::create_dir_all(root.join("empty")).expect("dir"),
                3 => std::fs::write(root.join("stray.png"), input).expect("write"),
                _ => {}
            }
            let mut errors = Vec::new();
            if let Some(folder) = named(&mut errors, &root, ImageFolder::scan(&root)) {
                let folder = folder.with_channels(if h & 16 == 0 { 3 } else { 1 });
                assert_eq!(folder.classes(), ["cat", "dog"]);
                for j in 0..folder.len() {
                    if let Some(img) = named(&mut errors, &root, folder.get(j)) {
                        assert_eq!(img.channels, if h & 16 == 0 { 3 } else { 1 });
                    }
                }
            }
            errors
        }),
    });

    // Checkpoints: safetensors, zip and legacy `.pth`, through `sniff`, `import` and
    // `finetune::init_from`.
    let parity = fixtures().join("parity");
    let ckpt_targets = [
        (
            "safetensors (import, init_from)",
            vec![
                seed("d2l_lenet.safetensors (export)", lenet_safetensors(scratch)),
                Seed { name: "tiny.safetensors".into(), bytes: tiny_safetensors(scratch), valid: false },
            ],
            "safetensors",
        ),
        (
            "pth zip (import, init_from)",
            vec![seed("d2l_lenet.pth (fixture)", fixture(&parity.join("d2l_lenet.pth")))],
            "pth",
        ),
        (
            "pth legacy (import, init_from)",
            vec![
                seed("d2l_lenet_legacy.pth (fixture)", fixture(&parity.join("d2l_lenet_legacy.pth"))),
                Seed {
                    name: "evil.pth (fixture)".into(),
                    bytes: fixture(&parity.join("evil.pth")),
                    valid: false,
                },
            ],
            "pth",
        ),
    ];
    for (name, seeds, ext) in ckpt_targets {
        let device = device.clone();
        let kind = match name {
            n if n.starts_with("safetensors") => Kind::Safetensors,
            n if n.starts_with("pth zip") => Kind::Zip,
            _ => Kind::Bytes,
        };
        all.push(Target {
            name,
            seeds,
            kind,
            run: Box::new(move |_, input, dir| {
                let (entry, config) = lenet();
                let path = dir.join(format!("weights.{ext}"));
                std::fs::write(&path, input).expect("write");
                let mut errors = Vec::new();
                named(&mut errors, &path, interop::sniff(&path));
                named(&mut errors, &path, interop::import(&path, entry.name, &config, &device));
                if fnv_bytes(input).is_multiple_of(4) {
                    named(&mut errors, &path, finetune::init_from(&path, entry.name, &config, &device));
                }
                errors
            }),
        });
    }

    // Run directories: config, checkpoint pointer, metrics and weights, one mutated.
    let run_valid: Vec<(String, Vec<u8>)> =
        run_seeds(scratch).into_iter().map(|s| (s.name, s.bytes)).collect();
    let run_seed_list = run_valid.iter().map(|(n, b)| seed(n.clone(), b.clone())).collect();
    all.push(Target {
        name: "run dir (config, pointer, metrics, load_run)",
        seeds: run_seed_list,
        kind: Kind::Mixed,
        run: Box::new(move |i, input, dir| {
            let run = dir.join("run");
            let _ = std::fs::remove_dir_all(&run);
            std::fs::create_dir_all(run.join("checkpoint-1-0")).expect("dir");
            // Seed 4 is a second config.json.
            let role = if i == 4 { 0 } else { i };
            let file = |k: usize| if k == role { input } else { &run_valid[k].1[..] };
            std::fs::write(run.join("config.json"), file(0)).expect("write");
            std::fs::write(run.join("metrics.csv"), file(2)).expect("write");
            if i == 1 {
                // The pointer is read when the final weights are missing.
                std::fs::write(run.join("checkpoint.json"), file(1)).expect("write");
                std::fs::write(run.join("checkpoint-1-0/model.bpk"), file(3)).expect("write");
            } else {
                std::fs::write(run.join("model.bpk"), file(3)).expect("write");
            }
            let device = Device::flex();
            let mut errors = Vec::new();
            named(&mut errors, &run, train::read_metrics(&run));
            if let Some(Some((ckpt, _))) = named(&mut errors, &run, train::latest_checkpoint(&run)) {
                let inside = ckpt.strip_prefix(&run).is_ok_and(|rest| {
                    rest.components().all(|c| matches!(c, std::path::Component::Normal(_)))
                });
                assert!(inside, "a checkpoint outside the run: {}", ckpt.display());
            }
            named(&mut errors, &run, train::read_config(&run));
            named(&mut errors, &run, train::load_run(&run, &device));
            errors
        }),
    });
    all
}

fn fnv_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[test]
fn every_parser_survives_mutations() {
    let _serial = serial();
    let cases = env_usize("CNNZOO_FUZZ_CASES", 300);
    let stream = env_usize("CNNZOO_FUZZ_SEED", 13) as u64;
    let filter: Vec<String> = std::env::var("CNNZOO_FUZZ_TARGETS")
        .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let scratch = tempfile::tempdir().expect("temp dir");
    let all = targets(scratch.path());
    let chosen: Vec<&Target> = all
        .iter()
        .filter(|t| filter.is_empty() || filter.iter().any(|f| t.name.contains(f.as_str())))
        .collect();
    assert!(!chosen.is_empty(), "CNNZOO_FUZZ_TARGETS matches no parser");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for target in chosen {
        let start = Instant::now();
        let s = fuzz(target, cases, stream);
        let took = start.elapsed();
        eprintln!("fuzz: {} done: {} cases in {took:.1?}", s.name, s.cases);
        // Every seed ran as it is before any mutation did.
        assert!(s.cases >= target.seeds.len() || !s.failures.is_empty(), "{}: too few cases", s.name);
        failures.extend(s.failures.iter().cloned());
        rows.push((s, took));
    }
    println!(
        "\ncases per parser: {cases} (stream {stream}); bounds: {TIME_BOUND:?} a case, {} MiB an allocation",
        alloc::BOUND >> 20
    );
    println!("| parser | cases | errors | ok | slowest case | largest allocation | total time |");
    println!("|---|--:|--:|--:|--:|--:|--:|");
    for (s, took) in &rows {
        println!(
            "| {} | {} | {} | {} | {:.1?} (case {}) | {:.1} MiB | {:.0?} |",
            s.name,
            s.cases,
            s.errors,
            s.ok,
            s.slowest,
            s.slowest_case,
            s.largest as f64 / (1 << 20) as f64,
            took
        );
    }
    assert!(failures.is_empty(), "{} fuzz failure(s):\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Lying headers: each refused, naming the file, with no allocation near the claimed size.

/// The largest allocation a refusal may make: far below every claim below, above the seeds.
const SMALL: usize = 16 << 20;

/// Runs `f` with the allocation counter armed; returns its result and the largest allocation.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize) {
    alloc::arm();
    let out = f();
    (out, alloc::disarm())
}

/// Asserts `f` is refused with an error naming `name`, allocating less than [`SMALL`] at once;
/// returns the message.
fn refused<T: std::fmt::Debug>(name: &Path, f: impl FnOnce() -> cnnzoo::Result<T>) -> String {
    let (result, largest) = measured(f);
    let message = result.expect_err("a lying header must be refused").to_string();
    assert!(
        message.contains(&name.display().to_string()),
        "the error does not name {}: {message}",
        name.display()
    );
    assert!(largest < SMALL, "allocated {largest} bytes at once before refusing: {message}");
    message
}

#[test]
fn idx_claiming_2_40_bytes_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-images-idx3-ubyte");
    std::fs::write(&path, idx_file(3, &[1 << 20, 1 << 10, 1 << 10], &[1, 2, 3])).unwrap();
    let err = refused(&path, || idx::read(&path, 3));
    assert!(err.contains("1048576×1024×1024") && err.contains("holds 3"), "{err}");
    // The same header gzipped, over 32 MiB of zeros that would inflate if read.
    let mut bomb = idx_file(3, &[1 << 20, 1 << 10, 1 << 10], &[]);
    bomb.resize(bomb.len() + (32 << 20), 0);
    std::fs::write(&path, gz(&bomb)).unwrap();
    let err = refused(&path, || idx::read(&path, 3));
    assert!(err.contains("1048576×1024×1024") && err.contains("refused before decompressing"), "{err}");
}

#[test]
fn idx_gz_longer_than_its_header_is_not_inflated() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-labels-idx1-ubyte.gz");
    let mut bomb = idx_labels(4);
    bomb.resize(bomb.len() + (64 << 20), 0);
    std::fs::write(&path, gz(&bomb)).unwrap();
    let err = refused(&path, || idx::read(&path, 1));
    assert!(err.contains("more than the 4 bytes"), "{err}");
    // An honest gzip file still reads, and a short one is still named as such.
    std::fs::write(&path, gz(&idx_labels(4))).unwrap();
    assert_eq!(idx::read(&path, 1).unwrap().data, [0, 1, 2, 3]);
    std::fs::write(&path, gz(&idx_file(1, &[5], &[1, 2]))).unwrap();
    let err = idx::read(&path, 1).unwrap_err().to_string();
    assert!(err.contains("5 bytes") && err.contains("holds 2"), "{err}");
}

#[test]
fn safetensors_header_length_near_2_64_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    // Minimized from the fuzzer: a length that overflowed `len + 8` (a panic in debug builds,
    // a wrapped check that passed in release).
    let mut bytes = (u64::MAX - 3).to_le_bytes().to_vec();
    bytes.extend(b"{}      ");
    std::fs::write(&path, &bytes).unwrap();
    let err = refused(&path, || interop::sniff(&path));
    assert!(err.contains("truncated safetensors"), "{err}");
    let (entry, config) = lenet();
    refused(&path, || interop::import(&path, entry.name, &config, &Device::flex()));
}

#[test]
fn safetensors_offsets_claiming_2_40_bytes_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let header = format!(
        r#"{{"conv.weight":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}}}}"#,
        1u64 << 38,
        1u64 << 40
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend([0u8; 16]);
    std::fs::write(&path, &bytes).unwrap();
    let (entry, config) = lenet();
    refused(&path, || interop::import(&path, entry.name, &config, &Device::flex()));
    refused(&path, || finetune::init_from(&path, entry.name, &config, &Device::flex()));
}

/// The LeNet legacy `.pth` with storage `numel` (its u64 count before the data) set to `value`.
fn legacy_with_storage_count(value: u64) -> Vec<u8> {
    let mut bytes = std::fs::read(fixtures().join("parity/d2l_lenet_legacy.pth")).unwrap();
    // The storages follow the last pickle (the list of storage keys, ending in STOP `.`), each
    // a little-endian u64 element count and the data; the first count is one of LeNet's sizes.
    let sizes = [6u64, 16, 84, 10, 120, 150, 840, 2400, 10080, 48000];
    let at = (1..bytes.len() - 8)
        .find(|&i| {
            bytes[i - 1] == b'.' && sizes.contains(&u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()))
        })
        .expect("the first storage's count in the legacy fixture");
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    bytes
}

#[test]
fn pth_storage_claiming_2_40_elements_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (entry, config) = lenet();
    let path = dir.path().join("legacy.pth");
    std::fs::write(&path, legacy_with_storage_count(1 << 40)).unwrap();
    refused(&path, || interop::import(&path, entry.name, &config, &Device::flex()));
    // A zip `.pth` whose entries all claim 2 GiB (central directory and local headers).
    let mut zip = std::fs::read(fixtures().join("parity/d2l_lenet.pth")).unwrap();
    for (sig, at) in [(b"PK\x01\x02", 20), (b"PK\x03\x04", 18)] {
        let hits: Vec<usize> = zip.windows(4).enumerate().filter(|(_, w)| w == sig).map(|(i, _)| i).collect();
        assert!(!hits.is_empty());
        for i in hits {
            zip[i + at..i + at + 8].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0x7F]);
        }
    }
    let path = dir.path().join("zip.pth");
    std::fs::write(&path, &zip).unwrap();
    refused(&path, || interop::import(&path, entry.name, &config, &Device::flex()));
}

/// `png` with its IHDR size set to `w × h` and the CRCs fixed.
fn png_claiming(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut v = png.to_vec();
    v[16..20].copy_from_slice(&w.to_be_bytes());
    v[20..24].copy_from_slice(&h.to_be_bytes());
    mutate::fix_png_crcs(&mut v);
    v
}

#[test]
fn images_claiming_more_pixels_than_their_bytes_hold_are_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    // 10,000×10,000 is within the size bounds (100 megapixels) but not in a 70-byte PNG.
    let png = png_claiming(&encode(rgb(1, 1), image::ImageFormat::Png), 10_000, 10_000);
    let err = refused(Path::new("upload.png"), || decode_bytes(&png, "upload.png"));
    assert!(err.contains("10000×10000") && err.contains("refused before decoding"), "{err}");
    let path = dir.path().join("big.png");
    std::fs::write(&path, &png).unwrap();
    refused(&path, || decode_file(&path));
    // A JPEG's frame header (SOF) claiming 9,000×9,000.
    let mut jpeg = encode(rgb(8, 8), image::ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline SOF");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x23, 0x28, 0x23, 0x28]);
    let err = refused(Path::new("upload.jpg"), || decode_bytes(&jpeg, "upload.jpg"));
    assert!(err.contains("9000×9000"), "{err}");
    // Real images that compress extremely well still decode: a black 2,000×2,000 PNG and JPEG.
    let black = image::DynamicImage::ImageLuma8(image::GrayImage::new(2000, 2000));
    for format in [image::ImageFormat::Png, image::ImageFormat::Jpeg] {
        let bytes = encode(black.clone(), format);
        let img = decode_bytes(&bytes, "black").unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!((img.width, img.height), (2000, 2000), "{format:?} of {} bytes", bytes.len());
    }
}

/// A LeNet run directory in `dir` with `edit` applied to its config.
fn run_with_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let seeds = run_seeds(dir);
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&seeds[0].bytes).unwrap();
    edit(&mut config);
    std::fs::write(run.join("config.json"), config.to_string()).unwrap();
    std::fs::write(run.join("model.bpk"), &seeds[3].bytes).unwrap();
    run
}

fn set_all(v: &mut serde_json::Value, key: &str, to: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Object(m) => m
            .iter_mut()
            .map(|(k, x)| {
                if k == key {
                    *x = to.clone();
                    1
                } else {
                    set_all(x, key, to)
                }
            })
            .sum(),
        serde_json::Value::Array(a) => a.iter_mut().map(|x| set_all(x, key, to)).sum(),
        _ => 0,
    }
}

#[test]
fn run_config_claiming_2_40_classes_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let run = run_with_config(dir.path(), |c| assert!(set_all(c, "num_classes", &(1u64 << 40).into()) > 0));
    let config = run.join("config.json");
    let err = refused(&config, || train::read_config(&run));
    assert!(err.contains("1099511627776 classes"), "{err}");
    refused(&config, || train::load_run(&run, &Device::flex()));
    let run = run_with_config(&dir.path().join("b"), |c| {
        assert!(set_all(c, "in_channels", &(1u64 << 20).into()) > 0)
    });
    let err = refused(&run.join("config.json"), || train::load_run(&run, &Device::flex()));
    assert!(err.contains("1048576 input channels"), "{err}");
    // An architecture no preset has: a VGG whose 512-channel stages have 2^20 channels.
    let vgg = dir.path().join("vgg");
    std::fs::create_dir_all(&vgg).unwrap();
    let mut config = serde_json::to_value(TrainConfig::for_model("d2l_vgg11", None).unwrap()).unwrap();
    assert!(replace_numbers(&mut config["model_config"], 512, 1 << 20) > 0);
    std::fs::write(vgg.join("config.json"), config.to_string()).unwrap();
    let err = refused(&vgg.join("config.json"), || train::read_config(&vgg));
    assert!(err.contains("no preset's architecture"), "{err}");
    // Every preset's config, as `train` and `import` write it, is still read back.
    for entry in registry::MODELS {
        for (classes, channels) in [(10, 1), (entry.num_classes, entry.input[0]), (2, 3)] {
            let mut config = TrainConfig::for_model(entry.name, None).unwrap();
            config.model_config = entry.config_with(classes, channels);
            config.input[0] = channels;
            config.classes.clear();
            std::fs::write(vgg.join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
            let read = train::read_config(&vgg).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
            assert_eq!(read, config);
        }
    }
}

fn replace_numbers(v: &mut serde_json::Value, from: u64, to: u64) -> usize {
    match v {
        serde_json::Value::Number(n) if n.as_u64() == Some(from) => {
            *v = to.into();
            1
        }
        serde_json::Value::Object(m) => m.values_mut().map(|x| replace_numbers(x, from, to)).sum(),
        serde_json::Value::Array(a) => a.iter_mut().map(|x| replace_numbers(x, from, to)).sum(),
        _ => 0,
    }
}

#[test]
fn checkpoint_pointer_outside_the_run_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let seeds = run_seeds(dir.path());
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.json"), &seeds[0].bytes).unwrap();
    let outside = dir.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("model.bpk"), &seeds[3].bytes).unwrap();
    let mut pointer: serde_json::Value = serde_json::from_slice(&seeds[1].bytes).unwrap();
    // `/` and `../../../../etc` are the fuzzer's own finds (before the fix, `load_run` looked for
    // `/model.bpk`).
    let targets = ["../elsewhere", "/", "../../../../etc", "checkpoint-1-0/../../elsewhere"];
    for target in targets.into_iter().map(String::from).chain([outside.display().to_string()]) {
        pointer["dir"] = target.clone().into();
        std::fs::write(run.join("checkpoint.json"), pointer.to_string()).unwrap();
        let err = refused(&run.join("checkpoint.json"), || train::latest_checkpoint(&run));
        assert!(err.contains("not a `checkpoint-E-B` folder"), "{target}: {err}");
        refused(&run, || train::load_run(&run, &Device::flex()));
    }
    // Progress that does not match the folder (epoch 2^64 − 1 would overflow on resume) is
    // refused, as is a history that is not the epochs completed.
    let valid: serde_json::Value = serde_json::from_slice(&seeds[1].bytes).unwrap();
    for (key, value) in
        [("epoch", serde_json::json!(u64::MAX)), ("batch", 7.into()), ("history", serde_json::json!([]))]
    {
        let mut pointer = valid.clone();
        pointer["state"][key] = value;
        std::fs::write(run.join("checkpoint.json"), pointer.to_string()).unwrap();
        let err = refused(&run.join("checkpoint.json"), || train::latest_checkpoint(&run));
        assert!(err.contains("is inconsistent"), "{key}: {err}");
    }
    // The pointer cnnzoo writes is followed.
    std::fs::write(run.join("checkpoint.json"), &seeds[1].bytes).unwrap();
    std::fs::create_dir_all(run.join("checkpoint-1-0")).unwrap();
    std::fs::write(run.join("checkpoint-1-0/model.bpk"), &seeds[3].bytes).unwrap();
    let loaded = train::load_run(&run, &Device::flex()).unwrap();
    assert!(loaded.from_checkpoint && loaded.weights.starts_with(&run));
}
