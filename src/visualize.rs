//! What a network sees: Grad-CAM and Grad-CAM++ (Selvaraju et al. 2017; Chattopadhay et al.
//! 2018) over a convolutional stage, input-gradient saliency (Simonyan et al. 2014) and
//! SmoothGrad (Smilkov et al. 2017), first-layer filters and the feature maps of each stage.
//!
//! Gradients are taken from the eval-mode network (dropout off, batch norm on its running
//! statistics: [`instrument::eval_mode`]) on an autodiff device. For Grad-CAM the chosen stage's
//! output is swapped, during the real forward pass, for a fresh autodiff leaf
//! ([`Probe::output`]), whose gradient is then d(score)/d(activation).

use std::any::Any;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::instrument::{eval_mode, shape_only};
use crate::model::Model;
use crate::probe::{CaptureProbe, Probe, ShapeProbe};

/// A 2-D map (row-major).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Map {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height · width` values.
    pub values: Vec<f32>,
}

impl Map {
    /// This map resized to `[h, w]` with bilinear interpolation (`align_corners=False`) and
    /// stretched to [0, 1] (min-max; a constant map becomes 0), as CAM overlays are drawn.
    pub fn upsampled(&self, [h, w]: [usize; 2]) -> Map {
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(self.values.clone(), [1, 1, self.height, self.width]),
            &device,
        );
        let values = tensor_values(crate::data::resize(x, [h, w]));
        Map { height: h, width: w, values: stretch(values) }
    }
}

/// `values` min-max scaled to [0, 1] (all 0 when constant).
fn stretch(mut values: Vec<f32>) -> Vec<f32> {
    let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let span = hi - lo;
    values.iter_mut().for_each(|v| *v = if span > 0.0 { (*v - lo) / span } else { 0.0 });
    values
}

fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default()
}

/// Grad-CAM and Grad-CAM++ of one image for one class at one stage.
#[derive(Debug, Clone, Serialize)]
pub struct Cam {
    /// The class explained.
    pub class: usize,
    /// Its softmax probability.
    pub probability: f32,
    /// The stage (dotted path) whose activation is weighted.
    pub layer: String,
    /// That activation's `[channels, h, w]`.
    pub activation: [usize; 3],
    /// ReLU(Σ_k α_k A_k) with α_k the spatial mean of d(score)/dA_k, at the activation's size.
    pub gradcam: Map,
    /// The same with Grad-CAM++'s weights.
    pub gradcam_pp: Map,
}

/// Swaps the output of stage `target` for a fresh autodiff leaf and keeps it.
struct LeafProbe {
    target: String,
    stack: Vec<String>,
    leaf: Option<Box<dyn Any>>,
}

impl Probe for LeafProbe {
    fn active(&self) -> bool {
        true
    }

    fn enter(&mut self, name: String) {
        self.stack.push(crate::probe::join_path(self.stack.last().map(String::as_str), name));
    }

    fn output<const D: usize>(&mut self, out: Tensor<D>) -> Tensor<D> {
        if self.leaf.is_none() && self.stack.last() == Some(&self.target) {
            let leaf = out.detach().autodiff().require_grad();
            self.leaf = Some(Box::new(leaf.clone()));
            return leaf;
        }
        out
    }

    fn leave<const D: usize>(&mut self, _kind: String, _params: usize, _out: &Tensor<D>) {
        self.stack.pop();
    }
}

/// The stages of `model` (dotted paths, finishing order) with their output shapes for `input`.
pub fn stages(
    model: &Model,
    name: &str,
    input: [usize; 3],
    device: &Device,
) -> Result<Vec<(String, Vec<usize>)>> {
    let [c, h, w] = input;
    let mut probe = ShapeProbe::default();
    shape_only(|| model.try_forward_with(name, Tensor::<4>::zeros([1, c, h, w], device), &mut probe))?;
    Ok(probe.taps.into_iter().map(|t| (t.path, t.shape)).collect())
}

/// The stage Grad-CAM looks at by default: the last convolutional stage — the shallowest stages
/// whose output is still a map (4-D, more than one position, not a pool), and the last of those
/// (`layer4` for ResNets, `features` for LeNet/AlexNet/VGG/DenseNet, `inception5b` for
/// GoogLeNet, NiN's last block).
pub fn default_layer(model: &Model, name: &str, input: [usize; 3], device: &Device) -> Result<String> {
    let [c, h, w] = input;
    let mut probe = ShapeProbe::default();
    shape_only(|| model.try_forward_with(name, Tensor::<4>::zeros([1, c, h, w], device), &mut probe))?;
    // Pools only resample the last convolutional stage (torchvision's adaptive `avgpool`).
    let maps: Vec<(String, Vec<usize>)> = probe
        .taps
        .into_iter()
        .filter(|t| t.shape.len() == 4 && t.shape[2] * t.shape[3] > 1 && !t.kind.contains("Pool"))
        .map(|t| (t.path, t.shape))
        .collect();
    let depth = maps.iter().map(|(p, _)| p.split('.').count()).min();
    maps.into_iter()
        .rev()
        .find(|(p, _)| Some(p.split('.').count()) == depth)
        .map(|(p, _)| p)
        .ok_or_else(|| Error::invalid("--layer", format!("`{name}` has no stage with a spatial output")))
}

/// Grad-CAM and Grad-CAM++ of `image` (`[1, c, h, w]`) for `class` (default: the predicted
/// one) at stage `layer`, with gradients from the eval-mode network on `device` (an autodiff
/// device is made from it).
pub fn grad_cam(
    model: &Model,
    name: &str,
    image: Tensor<4>,
    layer: &str,
    class: Option<usize>,
    device: &Device,
) -> Result<Cam> {
    let ad = device.clone().autodiff();
    let model = model.clone().train();
    let image = image.autodiff();
    let [_, c, h, w] = image.dims();
    eval_mode(|| {
        let mut probe = LeafProbe { target: layer.to_string(), stack: Vec::new(), leaf: None };
        let logits = model.try_forward_with(name, image, &mut probe)?;
        let Some(leaf) = probe.leaf else {
            let names: Vec<String> =
                stages(&model, name, [c, h, w], &ad)?.into_iter().map(|(p, _)| p).collect();
            return Err(Error::invalid(
                "--layer",
                format!("`{layer}` is not a stage of `{name}`; its stages are {}", names.join(", ")),
            ));
        };
        let leaf = leaf.downcast::<Tensor<4>>().map_err(|_| {
            Error::invalid("--layer", format!("`{layer}`'s output is not a [batch, channels, h, w] map"))
        })?;
        let (class, probability) = pick_class(&logits, class)?;
        let score = logits.narrow(1, class, 1).sum();
        let grads = score.backward();
        let grad = leaf.grad(&grads).ok_or_else(|| {
            Error::invalid("--layer", format!("no gradient reaches `{layer}` from the output"))
        })?;
        let [_, k, ah, aw] = leaf.dims();
        let a = tensor_values(leaf.detach());
        let g = tensor_values(grad);
        let (gradcam, gradcam_pp) = cam_maps(&a, &g, k, ah * aw);
        Ok(Cam {
            class,
            probability,
            layer: layer.to_string(),
            activation: [k, ah, aw],
            gradcam: Map { height: ah, width: aw, values: gradcam },
            gradcam_pp: Map { height: ah, width: aw, values: gradcam_pp },
        })
    })
}

/// The class to explain (given, or the arg-max) and its softmax probability.
fn pick_class(logits: &Tensor<2>, class: Option<usize>) -> Result<(usize, f32)> {
    let probs = tensor_values(burn::tensor::activation::softmax(logits.clone().detach(), 1));
    let best = (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
    let class = class.unwrap_or(best);
    match probs.get(class) {
        Some(&p) => Ok((class, p)),
        None => Err(Error::invalid(
            "--class",
            format!("{class} is out of range: the model has {} classes", probs.len()),
        )),
    }
}

/// Grad-CAM and Grad-CAM++ from activations `a` and gradients `g` (`k` channels of `n` positions).
fn cam_maps(a: &[f32], g: &[f32], k: usize, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cam = vec![0f32; n];
    let mut campp = vec![0f32; n];
    for ch in 0..k {
        let (ac, gc) = (&a[ch * n..(ch + 1) * n], &g[ch * n..(ch + 1) * n]);
        let alpha = gc.iter().sum::<f32>() / n as f32;
        // Grad-CAM++ (as the widely used pytorch-grad-cam computes it): per-position weights
        // g² / (2g² + Σ A · g³), on the positive gradients.
        let sum_a: f32 = ac.iter().sum();
        let weight: f32 = gc
            .iter()
            .map(|&gv| {
                let (g2, g3) = (gv * gv, gv * gv * gv);
                let aij = if gv != 0.0 { g2 / (2.0 * g2 + sum_a * g3 + 1e-7) } else { 0.0 };
                gv.max(0.0) * aij
            })
            .sum();
        for i in 0..n {
            cam[i] += alpha * ac[i];
            campp[i] += weight * ac[i];
        }
    }
    let relu = |v: Vec<f32>| v.into_iter().map(|x| x.max(0.0)).collect();
    (relu(cam), relu(campp))
}

/// |d(score)/d(input)|, the largest over channels: `[h, w]` (Simonyan et al.'s saliency map),
/// for `class` (default: the predicted one).
pub fn saliency(
    model: &Model,
    name: &str,
    image: Tensor<4>,
    class: Option<usize>,
    device: &Device,
) -> Result<(usize, Map)> {
    smoothgrad(model, name, image, class, 1, 0.0, 0, device)
}

/// SmoothGrad: the input gradient averaged over `samples` copies of `image` with Gaussian noise
/// of standard deviation `sigma` × (max − min of the image), then |·| and the largest over
/// channels. `sigma = 0` (or one sample without noise) is the plain saliency map.
#[allow(clippy::too_many_arguments)]
pub fn smoothgrad(
    model: &Model,
    name: &str,
    image: Tensor<4>,
    class: Option<usize>,
    samples: usize,
    sigma: f32,
    seed: u64,
    device: &Device,
) -> Result<(usize, Map)> {
    let ad = device.clone().autodiff();
    let model = model.clone().train();
    let [_, c, h, w] = image.dims();
    let base = tensor_values(image);
    let (lo, hi) = base.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, u), &v| (l.min(v), u.max(v)));
    let std = sigma * (hi - lo);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = vec![0f32; base.len()];
    let mut chosen = class;
    eval_mode(|| -> Result<()> {
        for _ in 0..samples.max(1) {
            let noisy: Vec<f32> =
                base.iter().map(|&v| if std > 0.0 { v + std * gaussian(&mut rng) } else { v }).collect();
            let x = Tensor::<4>::from_data(TensorData::new(noisy, [1, c, h, w]), &ad).require_grad();
            let logits = model.try_forward(name, x.clone())?;
            let (class, _) = pick_class(&logits, chosen)?;
            chosen = Some(class);
            let grads = logits.narrow(1, class, 1).sum().backward();
            let g = x.grad(&grads).map(tensor_values).unwrap_or_default();
            total.iter_mut().zip(&g).for_each(|(t, v)| *t += v);
        }
        Ok(())
    })?;
    let px = h * w;
    let values = (0..px)
        .map(|i| (0..c).map(|ch| total[ch * px + i].abs()).fold(0f32, f32::max) / samples.max(1) as f32)
        .collect();
    Ok((chosen.unwrap_or(0), Map { height: h, width: w, values }))
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// A convolution's weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// Its PyTorch key (`conv1.weight`).
    pub key: String,
    /// `[out, in, kh, kw]`.
    pub shape: [usize; 4],
    /// The weights in that order.
    pub values: Vec<f32>,
}

/// The first convolution's filters.
pub fn first_filters(model: &Model) -> Result<Option<Filters>> {
    Ok(crate::interop::state_dict(model)?.into_iter().find_map(|t| match (t.shape.as_slice(), t.values) {
        (&[o, i, kh, kw], Some(values)) if t.key.ends_with("weight") => {
            Some(Filters { key: t.key, shape: [o, i, kh, kw], values })
        }
        _ => None,
    }))
}

/// One stage's output for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMaps {
    /// The stage's dotted path.
    pub stage: String,
    /// `[channels, h, w]`.
    pub shape: [usize; 3],
    /// The values in that order.
    pub values: Vec<f32>,
}

/// The outputs of the top-level stages for `image` that are still maps (4-D, more than one
/// position).
pub fn feature_maps(model: &Model, name: &str, image: Tensor<4>) -> Result<Vec<FeatureMaps>> {
    let mut probe = CaptureProbe::new(1);
    eval_mode(|| model.try_forward_with(name, image, &mut probe))?;
    Ok(probe
        .outputs
        .into_iter()
        .filter_map(|(stage, shape, values)| match shape.as_slice() {
            &[_, c, h, w] if h * w > 1 => {
                Some(FeatureMaps { stage, shape: [c, h, w], values: values[..c * h * w].to_vec() })
            }
            _ => None,
        })
        .collect())
}

/// Everything `cnnzoo visualize` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The image explained.
    pub image: PathBuf,
    /// The class explained and its name.
    pub class: usize,
    /// The class's name.
    pub class_name: String,
    /// Its probability.
    pub probability: f32,
    /// The Grad-CAM stage.
    pub layer: String,
    /// Files written (PNGs, `index.html`, `report.json`).
    pub files: Vec<PathBuf>,
}

/// Options of [`visualize_run`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Grad-CAM stage (default: [`default_layer`]).
    pub layer: Option<String>,
    /// Class to explain, by index or name (default: the predicted one).
    pub class: Option<String>,
    /// SmoothGrad samples.
    pub samples: usize,
    /// SmoothGrad noise (fraction of the image's range).
    pub sigma: f32,
}

impl Default for Options {
    fn default() -> Self {
        Self { layer: None, class: None, samples: 25, sigma: 0.15 }
    }
}

/// `cnnzoo visualize`: filters, feature maps, Grad-CAM, Grad-CAM++, saliency and SmoothGrad
/// of `image` under the run loaded in `run`, as PNGs plus `index.html` and `report.json` in `out`.
pub fn visualize_run(
    run: &crate::train::LoadedRun,
    image: &Path,
    out: &Path,
    opts: &Options,
    device: &Device,
) -> Result<Report> {
    let config = &run.config;
    let classes = config.class_names();
    let class = match &opts.class {
        None => None,
        Some(c) => Some(match c.parse::<usize>() {
            Ok(i) => i,
            Err(_) => classes.iter().position(|n| n == c).ok_or_else(|| {
                Error::invalid(
                    "--class",
                    format!("`{c}` is neither a class index nor one of {}", classes.join(", ")),
                )
            })?,
        }),
    };
    let decoded = crate::data::image::Image::from_dynamic(&crate::predict::read_image(image)?);
    let eval = config.transforms()?.eval;
    let (values, [c, h, w]) = eval.apply(decoded.clone(), &mut StdRng::seed_from_u64(0))?;
    let x = Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), device);
    let name = config.model.as_str();
    let layer = match &opts.layer {
        Some(l) => l.clone(),
        None => default_layer(&run.model, name, [c, h, w], device)?,
    };
    let cam = grad_cam(&run.model, name, x.clone(), &layer, class, device)?;
    let (_, plain) = saliency(&run.model, name, x.clone(), Some(cam.class), device)?;
    let (_, smooth) =
        smoothgrad(&run.model, name, x.clone(), Some(cam.class), opts.samples, opts.sigma, 0, device)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
    let mut files = Vec::new();
    // The picture under the overlays: the image at the model's input size, in colour.
    let shown = crate::data::transforms::functional::resize(
        &crate::data::transforms::functional::to_rgb(&decoded),
        [h, w],
    );
    let mut write_png = |file: &str, png: Vec<u8>| -> Result<()> {
        let path = out.join(file);
        crate::fsutil::write_atomic(&path, &png)?;
        files.push(path);
        Ok(())
    };
    let cam_up = cam.gradcam.upsampled([h, w]);
    let campp_up = cam.gradcam_pp.upsampled([h, w]);
    let sal = Map { values: stretch(plain.values.clone()), ..plain.clone() };
    let sg = Map { values: stretch(smooth.values.clone()), ..smooth.clone() };
    let gradcam_rgb = blend(&shown, &cam_up);
    let gradcam_pp_rgb = blend(&shown, &campp_up);
    // One picture with all four next to the image.
    let planar = |rgb: &[u8]| -> Vec<f32> {
        let px = h * w;
        let mut out = vec![0f32; 3 * px];
        for (i, p) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * px + i] = f32::from(p[c]);
            }
        }
        out
    };
    let mut overview = crate::plot::ImageGrid::new(
        format!("{} {:.3} · Grad-CAM at {layer}", class_label(&classes, cam.class), cam.probability),
        vec![
            crate::plot::GridImage::rgb("image", w, h, planar(&shown.data)),
            crate::plot::GridImage::rgb("Grad-CAM", w, h, planar(&gradcam_rgb)),
            crate::plot::GridImage::rgb("Grad-CAM++", w, h, planar(&gradcam_pp_rgb)),
            crate::plot::GridImage::grey("saliency", w, h, sal.values.clone()),
            crate::plot::GridImage::grey("SmoothGrad", w, h, sg.values.clone()),
        ],
        5,
    );
    overview.cell = 160;
    write_png("overview.png", overview.render()?.1)?;
    write_png("gradcam.png", rgb_png(&shown, gradcam_rgb)?)?;
    write_png("gradcam-pp.png", rgb_png(&shown, gradcam_pp_rgb)?)?;
    write_png("saliency.png", grey_png(&sal)?)?;
    write_png("smoothgrad.png", grey_png(&sg)?)?;
    let mut sections = Vec::new();
    if let Some(Filters { key, shape: [o, i, kh, kw], values: v }) = first_filters(&run.model)? {
        let per = i * kh * kw;
        let images = (0..o)
            .map(|f| {
                let filter = &v[f * per..(f + 1) * per];
                if i == 3 {
                    crate::plot::GridImage::rgb(format!("{f}"), kw, kh, filter.to_vec())
                } else {
                    crate::plot::GridImage::grey(format!("{f}"), kw, kh, filter[..kh * kw].to_vec())
                }
            })
            .collect();
        let grid = crate::plot::ImageGrid::new(format!("{key}: {o} filters of {i}×{kh}×{kw}"), images, 8);
        let (_, png) = grid.render()?;
        write_png("filters.png", png)?;
        sections.push(("filters.png".to_string(), format!("first-layer filters ({key})")));
    }
    for FeatureMaps { stage, shape: [ch, fh, fw], values } in feature_maps(&run.model, name, x.clone())? {
        let shown_maps = ch.min(16);
        let images = (0..shown_maps)
            .map(|k| {
                crate::plot::GridImage::grey(
                    format!("{k}"),
                    fw,
                    fh,
                    values[k * fh * fw..(k + 1) * fh * fw].to_vec(),
                )
            })
            .collect();
        let grid =
            crate::plot::ImageGrid::new(format!("{stage}: {shown_maps} of {ch} maps, {fh}×{fw}"), images, 8);
        let (_, png) = grid.render()?;
        let file = format!("features-{}.png", stage.replace('.', "-"));
        write_png(&file, png)?;
        sections.push((file, format!("feature maps of `{stage}`")));
    }
    let class_name = class_label(&classes, cam.class);
    let html = page(image, &class_name, &cam, &sections);
    let html_path = out.join("index.html");
    crate::fsutil::write_atomic(&html_path, html.as_bytes())?;
    files.push(html_path);
    let report = Report {
        image: image.to_path_buf(),
        class: cam.class,
        class_name,
        probability: cam.probability,
        layer: cam.layer.clone(),
        files: files.clone(),
    };
    let json_path = out.join("report.json");
    let json = serde_json::to_string_pretty(
        &serde_json::json!({ "report": report, "gradcam": cam, "saliency": plain, "smoothgrad": smooth }),
    )
    .map_err(|e| Error::invalid("json", e.to_string()))?;
    crate::fsutil::write_atomic(&json_path, json.as_bytes())?;
    let mut report = report;
    report.files.push(json_path);
    Ok(report)
}

/// The Grad-CAM `map` over `image` at the model's input size `[h, w]` — the image resized in
/// colour, the map upsampled bilinearly and drawn half and half in the viridis colours — as a
/// PNG (what `cnnzoo visualize` writes as `gradcam.png`).
pub fn overlay_png(image: &crate::data::image::Image, map: &Map, [h, w]: [usize; 2]) -> Result<Vec<u8>> {
    use crate::data::transforms::functional::{resize, to_rgb};
    let shown = resize(&to_rgb(image), [h, w]);
    rgb_png(&shown, blend(&shown, &map.upsampled([h, w])))
}

/// `img` (RGB) with `heat` (same size, [0, 1]) over it in the viridis colours, half and half:
/// interleaved RGB bytes.
fn blend(img: &crate::data::image::Image, heat: &Map) -> Vec<u8> {
    img.data
        .chunks_exact(3)
        .zip(&heat.values)
        .flat_map(|(base, &v)| {
            let color = crate::plot::viridis_rgb(f64::from(v));
            [0, 1, 2].map(|c| ((u16::from(base[c]) + u16::from(color[c])) / 2) as u8)
        })
        .collect()
}

/// Interleaved RGB bytes the size of `like` as a PNG.
fn rgb_png(like: &crate::data::image::Image, data: Vec<u8>) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(like.width as u32, like.height as u32, data)
        .ok_or_else(|| Error::invalid("map", "size does not match its values"))?;
    encode(image::DynamicImage::ImageRgb8(img))
}

fn class_label(classes: &[String], class: usize) -> String {
    classes.get(class).cloned().unwrap_or_else(|| format!("class {class}"))
}

/// A [0, 1] map as a grey PNG.
fn grey_png(map: &Map) -> Result<Vec<u8>> {
    let data = map.values.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    let img = image::GrayImage::from_raw(map.width as u32, map.height as u32, data)
        .ok_or_else(|| Error::invalid("map", "size does not match its values"))?;
    encode(image::DynamicImage::ImageLuma8(img))
}

fn encode(img: image::DynamicImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::invalid("png", e.to_string()))?;
    Ok(png)
}

/// The HTML page: the explained class, then every picture with a caption.
fn page(image: &Path, class_name: &str, cam: &Cam, sections: &[(String, String)]) -> String {
    let esc = crate::plot::escape_html;
    let [k, ah, aw] = cam.activation;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cnnzoo visualize</title><style>\
         body{{font-family:sans-serif;margin:2em;max-width:60em}} figure{{display:inline-block;margin:0 1em 1em 0}}\
         img.map{{width:224px;image-rendering:pixelated}} img{{max-width:100%}}</style></head><body>\
         <h1>{}</h1><p>Explaining class <b>{}</b> (index {}, probability {:.3}) at stage <code>{}</code> \
         ({k} channels of {ah}×{aw}).</p><img src=\"overview.png\">",
        esc(&image.display().to_string()),
        esc(class_name),
        cam.class,
        cam.probability,
        esc(&cam.layer)
    );
    for (file, caption) in [
        ("gradcam.png", "Grad-CAM"),
        ("gradcam-pp.png", "Grad-CAM++"),
        ("saliency.png", "saliency |∂score/∂input|"),
        ("smoothgrad.png", "SmoothGrad"),
    ] {
        html.push_str(&format!(
            "<figure><img class=\"map\" src=\"{file}\"><figcaption>{caption}</figcaption></figure>"
        ));
    }
    for (file, caption) in sections {
        html.push_str(&format!("<h2>{}</h2><img src=\"{}\">", esc(caption), esc(file)));
    }
    html.push_str("</body></html>\n");
    html
}
