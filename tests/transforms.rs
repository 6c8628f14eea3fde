//! The image transforms against torchvision (fixtures from
//! `tests/fixtures/make_transform_fixtures.py`: torchvision's functional transforms on PIL
//! images), and the random transforms, the spec syntax and the presets on their own.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use cnnzoo::data::image::Image;
use cnnzoo::data::transforms::{
    IMAGENET_MEAN, IMAGENET_STD, Pipeline, Preprocess, Size, Transform, Transforms, functional as f,
    random_resized_crop_params,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;

struct Fixtures {
    index: Value,
    blob: Vec<u8>,
}

fn fixtures() -> Fixtures {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transforms");
    let index = serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    Fixtures { index, blob: std::fs::read(dir.join("data.bin")).unwrap() }
}

fn usize_of(v: &Value) -> usize {
    v.as_u64().unwrap() as usize
}

fn pair(v: &Value) -> [usize; 2] {
    match v.as_array() {
        Some(a) => [usize_of(&a[0]), usize_of(&a[1])],
        None => [usize_of(v), usize_of(v)],
    }
}

impl Fixtures {
    fn image_at(&self, e: &Value) -> Image {
        let (w, h, c) = (usize_of(&e["width"]), usize_of(&e["height"]), usize_of(&e["channels"]));
        let off = usize_of(&e["offset"]);
        Image::new(w, h, c, self.blob[off..off + w * h * c].to_vec()).unwrap()
    }

    fn floats_at(&self, e: &Value) -> (Vec<f32>, Vec<usize>) {
        let shape: Vec<usize> = e["shape"].as_array().unwrap().iter().map(usize_of).collect();
        let n: usize = shape.iter().product();
        let off = usize_of(&e["offset"]);
        let v = self.blob[off..off + 4 * n]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (v, shape)
    }

    /// The cases of `op`: (input, params, expected output entry).
    fn cases(&self, op: &str) -> Vec<(Image, &Value, &Value)> {
        let cases: Vec<_> = self.index["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["op"] == op)
            .map(|c| {
                let img = self.image_at(&self.index["images"][c["image"].as_str().unwrap()]);
                (img, &c["params"], &c["output"])
            })
            .collect();
        assert!(!cases.is_empty(), "no fixture cases for {op}");
        cases
    }
}

/// Checks `got` against the expected 8-bit image and returns the largest level difference.
fn max_level_diff(got: &Image, want: &Image, what: &str) -> u8 {
    assert_eq!(
        (got.width, got.height, got.channels),
        (want.width, want.height, want.channels),
        "{what}: shape"
    );
    got.data.iter().zip(&want.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0)
}

/// Runs `op` over its fixture cases; every output must equal torchvision's exactly.
fn check_u8(op: &str, run: impl Fn(&Image, &Value) -> Image) {
    let fx = fixtures();
    let mut worst = 0;
    for (img, params, out) in fx.cases(op) {
        let want = fx.image_at(out);
        let what = format!("{op} {params} on {}x{}x{}", img.width, img.height, img.channels);
        let diff = max_level_diff(&run(&img, params), &want, &what);
        assert_eq!(diff, 0, "{what}: differs from torchvision by up to {diff} levels");
        worst = worst.max(diff);
    }
    println!("{op}: max difference from torchvision {worst} levels");
}

#[test]
fn resize_matches_pillow() {
    check_u8("resize", |img, p| {
        let size = &p["size"];
        let hw = if size.is_array() {
            pair(size)
        } else {
            f::shorter_side_size([img.height, img.width], usize_of(size))
        };
        f::resize(img, hw)
    });
}

#[test]
fn crops_match_torchvision() {
    check_u8("center_crop", |img, p| f::center_crop(img, pair(&p["size"])));
    check_u8("resized_crop", |img, p| {
        let g = |k: &str| p[k].as_i64().unwrap();
        f::resized_crop(img, g("top"), g("left"), g("height") as usize, g("width") as usize, pair(&p["size"]))
    });
    check_u8("pad_crop", |img, p| {
        let g = |k: &str| p[k].as_i64().unwrap();
        let padded = f::pad(img, [g("padding") as usize; 4]);
        f::crop(&padded, g("top"), g("left"), g("height") as usize, g("width") as usize)
    });
    check_u8("hflip", |img, _| f::hflip(img));
}

#[test]
fn colour_adjustments_match_pil() {
    let factor = |p: &Value| p["factor"].as_f64().unwrap();
    check_u8("adjust_brightness", |img, p| f::adjust_brightness(img, factor(p)));
    check_u8("adjust_contrast", |img, p| f::adjust_contrast(img, factor(p)));
    check_u8("adjust_saturation", |img, p| f::adjust_saturation(img, factor(p)));
    check_u8("adjust_hue", |img, p| f::adjust_hue(img, factor(p)).unwrap());
    check_u8("grayscale", |img, p| {
        let g = f::grayscale(img);
        if p["num_output_channels"] == 3 { f::to_rgb(&g) } else { g }
    });
    assert!(f::adjust_hue(&Image::new(1, 1, 3, vec![1, 2, 3]).unwrap(), 0.6).is_err());
}

#[test]
fn imagenet_eval_matches_torchvision_within_1e4() {
    let fx = fixtures();
    let mut worst = 0f32;
    for (img, p, out) in fx.cases("imagenet_eval") {
        let side = usize_of(&p["side"]);
        assert_eq!(cnnzoo::data::transforms::resize_side(side), usize_of(&p["resize"]));
        let (want, shape) = fx.floats_at(out);
        // Through the preset's eval pipeline ...
        let t = Transforms::preset("imagenet", [3, side, side]).unwrap();
        let (got, got_shape) = t.eval.apply(img.clone(), &mut StdRng::seed_from_u64(0)).unwrap();
        assert_eq!(got_shape.to_vec(), shape);
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "imagenet eval {p} on {}x{}: {diff}", img.width, img.height);
        worst = worst.max(diff);
        // ... and through `Preprocess::Imagenet` (predict), from a decoded image.
        let dynamic = image::DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone()).unwrap(),
        );
        let x = Preprocess::Imagenet.apply(&dynamic, [3, side, side], &Device::flex());
        let v: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v, got, "Preprocess::Imagenet and the imagenet preset differ");
    }
    println!("imagenet eval: max difference from torchvision {worst:e}");
}

fn noise(w: usize, h: usize, c: usize, seed: u64) -> Image {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let data = (0..w * h * c)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 56) as u8
        })
        .collect();
    Image::new(w, h, c, data).unwrap()
}

#[test]
fn d2l_preset_equals_the_batch_resize() {
    let img = noise(28, 28, 1, 1);
    for size in [[28, 28], [32, 32], [96, 96], [224, 224], [20, 13]] {
        let t = Transforms::preset("d2l", [1, size[0], size[1]]).unwrap();
        assert_eq!(t.train, t.eval);
        let (got, shape) = t.train.apply(img.clone(), &mut StdRng::seed_from_u64(3)).unwrap();
        assert_eq!(shape, [1, size[0], size[1]]);
        let x =
            Tensor::<4>::from_data(TensorData::new(img.to_tensor_data(), [1, 1, 28, 28]), &Device::flex());
        let want: Vec<f32> = cnnzoo::data::resize(x, size).into_data().try_to_vec::<f32>().unwrap();
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= 1e-6, "{size:?}: {diff}");
        println!("d2l {size:?}: max difference from data::resize {diff:e}");
    }
    // An RGB model gets the grey levels three times.
    let t = Transforms::preset("d2l", [3, 32, 32]).unwrap();
    let (x, shape) = t.eval.apply(img, &mut StdRng::seed_from_u64(0)).unwrap();
    assert_eq!(shape, [3, 32, 32]);
    assert_eq!(x[..1024], x[1024..2048]);
}

fn run(p: &Pipeline, img: &Image, seed: u64) -> (Vec<f32>, [usize; 3]) {
    p.apply(img.clone(), &mut StdRng::seed_from_u64(seed)).unwrap()
}

#[test]
fn presets_give_the_model_input_for_grey_and_rgb_images() {
    for name in ["d2l", "alexnet", "imagenet", "cifar"] {
        for input in [[3, 224, 224], [1, 32, 32], [3, 32, 32], [3, 64, 48]] {
            let t = Transforms::preset(name, input).unwrap();
            t.check(input).unwrap();
            assert!(!t.eval.is_random(), "{name}: eval must be deterministic");
            for img in [noise(300, 200, 3, 1), noise(40, 90, 1, 2), noise(32, 32, 3, 3)] {
                for (p, seed) in [(&t.train, 1), (&t.train, 2), (&t.eval, 1)] {
                    let (x, shape) = run(p, &img, seed);
                    assert_eq!(shape, input, "{name} `{p}` on {}x{}", img.width, img.height);
                    assert_eq!(x.len(), input.iter().product::<usize>());
                    assert!(x.iter().all(|v| v.is_finite()));
                }
                // Eval gives the same result whatever the generator.
                assert_eq!(run(&t.eval, &img, 1), run(&t.eval, &img, 99));
            }
        }
    }
    let e = Transforms::preset("resnet", [3, 224, 224]).unwrap_err().to_string();
    assert!(e.contains("--transforms") && e.contains("d2l, alexnet, imagenet, cifar"), "{e}");
    assert!(Transforms::preset("cifar", [2, 32, 32]).is_err());
    // The presets' pipelines in the spec syntax.
    let t = Transforms::preset("imagenet", [3, 224, 224]).unwrap();
    assert_eq!(t.eval.to_string(), "rgb,resize=256,center-crop=224,to-tensor,normalize=imagenet");
    assert_eq!(t.train.to_string(), "rgb,random-resized-crop=224,hflip=0.5,to-tensor,normalize=imagenet");
    let t = Transforms::preset("cifar", [3, 32, 32]).unwrap();
    assert_eq!(t.train.to_string(), "rgb,resize=32x32,random-crop=32:4,hflip=0.5,to-tensor,normalize=cifar");
    let t = Transforms::preset("alexnet", [1, 224, 224]).unwrap();
    assert_eq!(
        t.train.to_string(),
        "grayscale,resize=256,random-crop=224,hflip=0.5,color-jitter=0.4:0.4:0.4:0,to-tensor"
    );
}

#[test]
fn random_transforms_are_reproducible_and_vary_with_the_seed() {
    let img = noise(120, 90, 3, 7);
    for spec in [
        "random-resized-crop=32",
        "random-crop=64:4",
        "hflip",
        "color-jitter=0.4:0.4:0.4:0.1",
        "random-crop=100x150:0:pad-if-needed",
    ] {
        let p = Pipeline::parse(spec).unwrap();
        assert!(p.is_random());
        let a = run(&p, &img, 5);
        assert_eq!(a, run(&p, &img, 5), "{spec}: same seed, same output");
        assert!((6..16).any(|s| run(&p, &img, s) != a), "{spec}: the seed changes nothing");
    }
    let (_, shape) = run(&Pipeline::parse("random-crop=100x150:0:pad-if-needed").unwrap(), &img, 0);
    assert_eq!(shape, [3, 100, 150]);
    let e =
        Pipeline::parse("random-crop=100").unwrap().apply(img, &mut StdRng::seed_from_u64(0)).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[test]
fn hflip_happens_with_probability_p() {
    let img = noise(9, 4, 3, 1);
    let flipped = f::hflip(&img).to_tensor_data();
    assert_ne!(flipped, img.to_tensor_data());
    let mut rng = StdRng::seed_from_u64(11);
    for p in [0.0, 0.3, 1.0] {
        let pipe = Pipeline::new(vec![Transform::HorizontalFlip { p }]).unwrap();
        let n = 2000;
        let flips = (0..n).filter(|_| pipe.apply(img.clone(), &mut rng).unwrap().0 == flipped).count();
        let rate = flips as f64 / n as f64;
        assert!((rate - p).abs() < 0.04, "p {p}: flipped {rate}");
    }
}

#[test]
fn random_resized_crop_stays_within_its_bounds() {
    let mut rng = StdRng::seed_from_u64(2);
    let (scale, ratio) = ([0.08, 1.0], [3.0 / 4.0, 4.0 / 3.0]);
    let mut areas = Vec::new();
    for (h, w) in [(300, 400), (224, 224), (50, 500), (17, 9)] {
        for _ in 0..500 {
            let (top, left, ch, cw) = random_resized_crop_params(h, w, scale, ratio, &mut rng);
            assert!(ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w, "{h}x{w}: {top} {left} {ch} {cw}");
            let area = (ch * cw) as f64 / (h * w) as f64;
            let r = cw as f64 / ch as f64;
            if (h, w) == (300, 400) {
                // Rounding to whole pixels moves area and ratio a little.
                assert!((0.07..=1.0).contains(&area), "area {area}");
                assert!((0.73..=1.37).contains(&r), "ratio {r}");
                areas.push(area);
            }
        }
    }
    let mean = areas.iter().sum::<f64>() / areas.len() as f64;
    // torchvision draws 0.435 on average here (sizes that do not fit are drawn again).
    assert!((0.40..0.47).contains(&mean), "mean area {mean}");
    // A very wide image falls back to the center crop at the largest ratio.
    let mut rng = StdRng::seed_from_u64(0);
    let (top, left, h, w) = random_resized_crop_params(10, 1000, [0.9, 1.0], ratio, &mut rng);
    assert_eq!((top, left, h, w), (0, (1000 - 13) / 2, 10, 13));
    // Extreme ratios on a one-pixel image still give a pixel.
    assert_eq!(random_resized_crop_params(1, 1, [0.5, 1.0], [0.1, 0.2], &mut rng), (0, 0, 1, 1));
}

#[test]
fn spec_round_trips_and_bad_specs_say_what_is_wrong() {
    for spec in [
        "resize=256,center-crop=224,to-tensor,normalize=imagenet",
        "random-resized-crop=224,hflip=0.5,color-jitter=0.4:0.4:0.4:0.1,to-tensor,normalize=0.5:0.5:0.5/0.5:0.5:0.5",
        "grayscale=3,resize=30x40,random-crop=32x24:4:pad-if-needed,to-tensor,normalize=cifar",
        "rgb,random-resized-crop=64x32:0.25:0.75:0.5:2,hflip=0.3,to-tensor,tensor-resize=10x12",
        "grayscale,to-tensor,normalize=0.1307/0.3081",
    ] {
        let p = Pipeline::parse(spec).unwrap();
        assert_eq!(p.to_string(), spec);
        assert_eq!(Pipeline::parse(&p.to_string()).unwrap(), p);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Pipeline>(&json).unwrap(), p, "{json}");
    }
    let p = Pipeline::parse("resize=256,center-crop=224").unwrap();
    assert_eq!(p.steps[0], Transform::Resize { size: Size::Shorter(256) });
    assert_eq!(
        serde_json::to_string(&p).unwrap(),
        r#"[{"step":"resize","size":256},{"step":"center-crop","size":[224,224]}]"#
    );
    for (spec, needle) in [
        ("resize=abc", "step 1 `resize=abc`: expected resize=S"),
        ("to-tensor,blur=3", "step 2 `blur=3`: unknown step `blur`; expected one of"),
        ("hflip=2", "probability must lie in [0, 1]"),
        ("color-jitter=0.4:0.4", "expected color-jitter=BRIGHTNESS:CONTRAST:SATURATION[:HUE]"),
        ("color-jitter=0.4:0.4:0.4:0.7", "hue must lie in [0, 0.5]"),
        ("normalize=imagenet", "put it after `to-tensor`"),
        ("to-tensor,hflip", "put it before `to-tensor`"),
        ("to-tensor,to-tensor", "appears twice"),
        ("resize=0", "at least 1"),
        ("center-crop", "needs arguments"),
        ("rgb=3", "takes no arguments"),
        ("grayscale=2", "1 or 3"),
        ("to-tensor,normalize=1:2/3", "1 or 3 means"),
        ("random-resized-crop=32:0.5:0.1:1:1", "scale must be a range"),
        ("resize=32,,to-tensor", "step 2 of"),
    ] {
        let e = Pipeline::parse(spec).unwrap_err().to_string();
        assert!(e.contains(needle), "`{spec}`: {e}");
    }
    let p = Pipeline::parse("resize=32,to-tensor,normalize=imagenet").unwrap();
    let e = p.check([3, 32, 32]).unwrap_err().to_string();
    assert!(e.contains("depends on the image") || e.contains("channels"), "{e}");
    let e =
        Pipeline::parse("rgb,resize=32x32,to-tensor").unwrap().check([3, 28, 28]).unwrap_err().to_string();
    assert!(e.contains("32x32") && e.contains("28x28"), "{e}");
    let t = Transforms {
        train: Pipeline::parse("rgb,center-crop=8").unwrap(),
        eval: Pipeline::parse("rgb").unwrap(),
    };
    t.train.check([3, 8, 8]).unwrap();
    let e = t.check([3, 8, 8]).unwrap_err().to_string();
    assert!(e.starts_with("invalid eval transforms: `rgb` gives images of a size that depends"), "{e}");
    let e = Pipeline::parse("grayscale,center-crop=8,to-tensor,normalize=imagenet").unwrap();
    assert!(e.check([1, 8, 8]).unwrap_err().to_string().contains("3 means for 1 channels"));
    assert_eq!(
        Pipeline::parse("resize=20,center-crop=16x12").unwrap().output_shape([1, 50, 40]).unwrap(),
        [1, 16, 12]
    );
    assert_eq!(Pipeline::parse("resize=20").unwrap().output_shape([3, 50, 40]).unwrap(), [3, 25, 20]);
}

#[test]
fn normalize_and_to_tensor_follow_torchvision() {
    let img = Image::new(2, 1, 3, vec![0, 128, 255, 10, 20, 30]).unwrap();
    let p = Pipeline::parse("to-tensor,normalize=imagenet").unwrap();
    let (x, shape) = run(&p, &img, 0);
    assert_eq!(shape, [3, 1, 2]);
    let want = |v: u8, c: usize| (f32::from(v) / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    assert_eq!(x, vec![want(0, 0), want(10, 0), want(128, 1), want(20, 1), want(255, 2), want(30, 2)]);
    // A pipeline without `to-tensor` ends with one; a bad image is refused, not a panic.
    assert_eq!(run(&Pipeline::parse("hflip=1").unwrap(), &img, 0).1, [3, 1, 2]);
    let bad = Image { width: 3, height: 3, channels: 3, data: vec![0; 5] };
    assert!(p.apply(bad, &mut StdRng::seed_from_u64(0)).is_err());
    let empty = Image { width: 0, height: 4, channels: 1, data: vec![] };
    assert!(p.apply(empty, &mut StdRng::seed_from_u64(0)).is_err());
}

/// Throughput of the presets (run by hand: `cargo test --release --test transforms -- --ignored`).
#[test]
#[ignore]
fn preset_speed() {
    for (name, input, (w, h)) in [("imagenet", [3, 224, 224], (500, 375)), ("cifar", [3, 32, 32], (32, 32))] {
        let t = Transforms::preset(name, input).unwrap();
        let img = noise(w, h, 3, 1);
        for (which, p) in [("train", &t.train), ("eval", &t.eval)] {
            let n = if w > 100 { 50 } else { 5000 };
            let start = std::time::Instant::now();
            let mut rng = StdRng::seed_from_u64(0);
            for _ in 0..n {
                std::hint::black_box(p.apply(img.clone(), &mut rng).unwrap());
            }
            let us = start.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!("{name} {which} on {w}x{h}: {us:.0} µs per image");
        }
    }
}
