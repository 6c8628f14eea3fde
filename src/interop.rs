//! PyTorch/torchvision interop: import a `state_dict` (`.pth`, zip or legacy pickle, or
//! `.safetensors`) into a preset, export a model as a safetensors `state_dict` that
//! `torchvision.models.NAME().load_state_dict(..., strict=True)` accepts, and the deterministic
//! synthetic weights the parity fixtures are built from.
//!
//! Module fields carry torchvision's names, so the only remaps are DenseNet's: torchvision calls
//! the layers of a dense block `denselayer1, denselayer2, …` where our `Vec` has `layers.0, …`,
//! and checkpoints from before torchvision 0.3 spell `norm1` as `norm.1` (torchvision's own
//! `_load_state_dict` fixes the same pattern). Pickles are parsed by burn-store without executing
//! any code.

use std::collections::BTreeMap;
use std::path::Path;

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::{DType, Device};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::{Model, ModelConfig};

/// Weight-file formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    PthZip,
    /// `torch.save` legacy pickle stream.
    PthLegacy,
    /// Hugging Face safetensors.
    Safetensors,
}

/// Recognises a weight file by its first bytes.
pub fn sniff(path: &Path) -> Result<Format> {
    use std::io::Read;
    let mut head = [0u8; 9];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let n = f.read(&mut head).map_err(|e| Error::io("read", path, e))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        return Ok(Format::PthZip);
    }
    if head.first() == Some(&0x80) && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        return Ok(Format::PthLegacy);
    }
    if n == 9 && head[8] == b'{' {
        let len = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let size = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?.len();
        // `len` is the file's own claim: checked without overflow (a claim near 2^64 wraps).
        if len.checked_add(8).is_none_or(|end| end > size) {
            return Err(Error::bad_file(
                path,
                "is a truncated safetensors file (its header runs past the end)",
            ));
        }
        return Ok(Format::Safetensors);
    }
    Err(Error::bad_file(
        path,
        "is not a checkpoint: expected a PyTorch .pth (zip archive or pickle) or a .safetensors file",
    ))
}

/// Key remaps from PyTorch names to ours, applied in order.
fn remaps() -> Vec<(String, String)> {
    let mut r = vec![
        // Pre-0.3 torchvision DenseNet checkpoints: `denselayer1.norm.1.weight` → `norm1.weight`.
        (r"(denselayer\d+\.(?:norm|conv))\.([12])\.".to_string(), "$1$2.".to_string()),
    ];
    // DenseNet-201 has the longest block: 48 layers.
    for i in 1..=64 {
        r.push((format!(r"\.denselayer{i}\."), format!(".layers.{}.", i - 1)));
    }
    r
}

/// Our parameter path → PyTorch's key (`denseblock1.layers.0.` → `denseblock1.denselayer1.`).
pub fn pytorch_key(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    let mut i = 0;
    while i < parts.len() {
        let in_block = i > 0 && parts[i - 1].starts_with("denseblock") && parts[i] == "layers";
        match (in_block, parts.get(i + 1).and_then(|n| n.parse::<usize>().ok())) {
            (true, Some(n)) => {
                out.push(format!("denselayer{}", n + 1));
                i += 2;
            }
            _ => {
                out.push(parts[i].to_string());
                i += 1;
            }
        }
    }
    out.join(".")
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    /// Tensors loaded into the model.
    pub applied: usize,
    /// Keys in the file that are expected not to load (`num_batches_tracked`, GoogLeNet's aux
    /// heads when the model has none).
    pub expected_unused: Vec<String>,
}

/// Reads all tensors of a checkpoint, with PyTorch keys remapped to ours.
pub(crate) fn read_tensors(path: &Path) -> Result<Vec<PackTensor>> {
    let format = sniff(path)?;
    let bad = |e: String| Error::bad_file(path, format!("cannot be read as a checkpoint: {e}"));
    let remaps = remaps();
    let pth = |top_level: Option<&str>| {
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        if let Some(key) = top_level {
            store = store.with_top_level_key(key);
        }
        remaps.iter().fold(store, |store, (from, to)| store.with_key_remapping(from, to))
    };
    let tensors: BTreeMap<String, PackTensor> = match format {
        Format::PthZip | Format::PthLegacy => {
            let all = pth(None).get_all_tensors().map_err(|e| bad(e.to_string()))?.clone();
            if all.is_empty() {
                // Maybe a training checkpoint `{"state_dict": …, "epoch": …}`.
                pth(Some("state_dict")).get_all_tensors().cloned().unwrap_or_default()
            } else {
                all
            }
        }
        Format::Safetensors => {
            let store = SafetensorsStore::from_file(path).map_indices_contiguous(false);
            let mut store = remaps.iter().fold(store, |store, (from, to)| store.with_key_remapping(from, to));
            store.get_all_tensors().map_err(|e| bad(e.to_string()))?.clone()
        }
    };
    if tensors.is_empty() {
        return Err(Error::bad_file(
            path,
            "holds no tensors: a checkpoint must be a state_dict of tensors (other pickled objects \
             are refused, never executed)",
        ));
    }
    Ok(tensors.into_values().collect())
}

/// Loads the checkpoint at `path` into a fresh `config` model on `device`. Missing tensors,
/// shape mismatches and unexpected extra tensors are errors naming the keys (PyTorch's
/// `strict=True`); `num_batches_tracked` and absent GoogLeNet aux heads are reported only.
pub fn import(
    path: &Path,
    model_name: &str,
    config: &ModelConfig,
    device: &Device,
) -> Result<(Model, ImportReport)> {
    let tensors = read_tensors(path)?;
    apply_checked(config.init(device), tensors, path, model_name)
}

/// Applies PyTorch-layout tensors (already remapped to our names) with `strict=True` semantics.
pub fn apply_checked(
    mut model: Model,
    tensors: Vec<PackTensor>,
    path: &Path,
    model_name: &str,
) -> Result<(Model, ImportReport)> {
    let result = model.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    let mismatch = |message: String| Error::WeightMismatch {
        path: path.to_path_buf(),
        model: model_name.to_string(),
        message,
    };
    if let Some(e) = result.errors.first() {
        let message = match e {
            ApplyError::ShapeMismatch { path: key, expected, found } => format!(
                "`{}` has shape {:?} in the file but {:?} in the model{}",
                pytorch_key(key),
                torch_layout(found.as_slice()),
                torch_layout(expected.as_slice()),
                more(result.errors.len())
            ),
            other => format!("{other}{}", more(result.errors.len())),
        };
        return Err(mismatch(message));
    }
    if !result.missing.is_empty() {
        let keys: Vec<String> = result.missing.iter().map(|(k, _)| pytorch_key(k)).collect();
        return Err(mismatch(format!("{} tensors missing from the file: {}", keys.len(), list(&keys))));
    }
    let (expected, unexpected): (Vec<String>, Vec<String>) =
        result.unused.iter().map(|k| pytorch_key(k)).partition(|k| {
            k.ends_with("num_batches_tracked") || k.starts_with("aux1.") || k.starts_with("aux2.")
        });
    if !unexpected.is_empty() {
        return Err(mismatch(format!(
            "{} tensors in the file have no place in the model: {}",
            unexpected.len(),
            list(&unexpected)
        )));
    }
    let report = ImportReport { applied: result.applied.len(), expected_unused: expected };
    Ok((model, report))
}

/// Shapes as PyTorch shows them: our only 2-D parameters are linear weights, stored `[in, out]`.
pub(crate) fn torch_layout(shape: &[usize]) -> Vec<usize> {
    match shape {
        [i, o] => vec![*o, *i],
        other => other.to_vec(),
    }
}

fn more(n: usize) -> String {
    if n > 1 { format!(" (and {} more mismatches)", n - 1) } else { String::new() }
}

fn list(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().take(5).map(|k| format!("`{k}`")).collect();
    let rest = if keys.len() > 5 { format!(", … ({} more)", keys.len() - 5) } else { String::new() };
    format!("{}{rest}", shown.join(", "))
}

/// One tensor of a PyTorch `state_dict`.
#[derive(Debug, Clone)]
pub struct StateTensor {
    /// PyTorch key.
    pub key: String,
    /// Our parameter path (what [`apply_checked`] expects); empty for `num_batches_tracked`.
    pub path: String,
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// Values (f32), or `None` for `num_batches_tracked` (an int64 scalar).
    pub values: Option<Vec<f32>>,
}

/// The model as a PyTorch `state_dict`: keys, PyTorch layouts (linear weights `[out, in]`),
/// BN running statistics and a `num_batches_tracked` per BN, as torchvision has them.
pub fn state_dict(model: &Model) -> Result<Vec<StateTensor>> {
    let tensors = model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true);
    let mut out = Vec::new();
    for t in tensors {
        let key = pytorch_key(&t.name);
        let bytes = t.to_bytes().map_err(|e| Error::invalid("export", format!("reading `{key}`: {e}")))?;
        if t.dtype != DType::F32 {
            return Err(Error::invalid("export", format!("`{key}` is {:?}, only f32 is exported", t.dtype)));
        }
        let values: Vec<f32> =
            bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        let shape = t.shape.as_slice().to_vec();
        let bn_key = key.strip_suffix(".running_var").map(|p| format!("{p}.num_batches_tracked"));
        out.push(StateTensor { key, path: t.name.clone(), shape, values: Some(values) });
        if let Some(key) = bn_key {
            out.push(StateTensor { key, path: String::new(), shape: vec![], values: None });
        }
    }
    Ok(out)
}

/// Writes a `state_dict` as safetensors (f32 tensors, int64 `num_batches_tracked`), atomically.
pub fn write_safetensors(path: &Path, tensors: &[StateTensor]) -> Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    let mut data: Vec<u8> = Vec::new();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), "pt".into());
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    for t in tensors {
        let (dtype, bytes): (&str, Vec<u8>) = match &t.values {
            Some(v) => ("F32", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            None => ("I64", 0i64.to_le_bytes().to_vec()),
        };
        let end = offset + bytes.len();
        header.insert(
            t.key.clone(),
            serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [offset, end]}),
        );
        data.extend_from_slice(&bytes);
        offset = end;
    }
    let mut head = serde_json::to_vec(&serde_json::Value::Object(header))
        .map_err(|e| Error::invalid("export", e.to_string()))?;
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    let mut file = Vec::with_capacity(8 + head.len() + data.len());
    file.extend_from_slice(&(head.len() as u64).to_le_bytes());
    file.extend_from_slice(&head);
    file.extend_from_slice(&data);
    fsutil::write_atomic(path, &file)
}

/// Exports `model` to `path` as a safetensors `state_dict` in PyTorch layout.
pub fn export_safetensors(model: &Model, path: &Path) -> Result<usize> {
    let sd = state_dict(model)?;
    write_safetensors(path, &sd)?;
    Ok(sd.len())
}

/// The deterministic pseudo-random values the parity fixtures use, shared bit for bit with
/// `tests/fixtures/make_fixtures.py`: uniform `u ∈ [−1, 1)` from splitmix64 seeded with the
/// FNV-1a hash of `key`, scaled by the tensor's role (He-uniform for conv/linear weights,
/// small offsets for biases, γ ≈ 1, running variance in [0.75, 1.25)).
pub fn synthetic(key: &str, shape: &[usize]) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let n: usize = shape.iter().product();
    let uniform = (0..n as u64).map(|i| {
        let mut z = h.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / 8_388_608.0 - 1.0
    });
    let last = key.rsplit('.').next().unwrap_or(key);
    match (last, shape.len()) {
        ("weight", d) if d >= 2 => {
            let fan_in = n / shape[0].max(1);
            let scale = (6.0 / fan_in.max(1) as f64).sqrt() as f32;
            uniform.map(|u| u * scale).collect()
        }
        ("weight", _) => uniform.map(|u| 1.0 + 0.1 * u).collect(),
        ("running_var", _) => uniform.map(|u| 1.0 + 0.25 * u).collect(),
        ("running_mean", _) | ("bias", _) => uniform.map(|u| 0.1 * u).collect(),
        _ => uniform.collect(),
    }
}

/// [`synthetic`] values for every tensor of `model`, ready for [`apply_checked`].
pub fn synthetic_tensors(model: &Model) -> Result<Vec<PackTensor>> {
    Ok(state_dict(model)?
        .into_iter()
        .filter(|t| t.values.is_some())
        .map(|t| {
            let values = synthetic(&t.key, &t.shape);
            PackTensor::new(t.path, DType::F32, t.shape, None, burn::tensor::Bytes::from_elems(values))
        })
        .collect())
}

/// A `state_dict` for `model` filled with [`synthetic`] values.
pub fn synthetic_state_dict(model: &Model) -> Result<Vec<StateTensor>> {
    Ok(state_dict(model)?
        .into_iter()
        .map(|t| {
            let values = t.values.as_ref().map(|_| synthetic(&t.key, &t.shape));
            StateTensor { values, ..t }
        })
        .collect())
}

/// How an ONNX export came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OnnxExport {
    /// The batch axis is symbolic (`batch`); otherwise the graph is fixed at batch 1.
    pub dynamic_batch: bool,
}

/// Exports `model` as ONNX (opset 18) through burn-onnx's experimental tracing exporter, with
/// a symbolic batch axis when the trace allows it and a fixed batch of 1 otherwise. Operations the
/// exporter cannot lower are an error naming the operation.
pub fn export_onnx(model: &Model, input: [usize; 3], path: &Path) -> Result<OnnxExport> {
    use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
    let [c, h, w] = input;
    let device = Device::flex();
    let sample = burn::tensor::Tensor::<4>::zeros([1, c, h, w], &device);
    let validation = burn::tensor::Tensor::<4>::zeros([2, c, h, w], &device);
    let specs =
        [InputSpec::new([AxisSpec::dynamic("batch"), AxisSpec::Static, AxisSpec::Static, AxisSpec::Static])];
    let exporter = OnnxExporter::new();
    let (onnx, dynamic_batch) =
        match exporter.export_dynamic(model, sample.clone(), validation, &specs, Model::forward) {
            Ok(onnx) => (onnx, true),
            Err(_) => {
                let onnx = exporter.export(model, sample, Model::forward).map_err(|e| {
                    Error::invalid("onnx export", format!("the exporter cannot lower this model: {e}"))
                })?;
                (onnx, false)
            }
        };
    fsutil::write_atomic(path, onnx.as_bytes())?;
    Ok(OnnxExport { dynamic_batch })
}
