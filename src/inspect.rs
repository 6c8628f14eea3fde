//! `cnnzoo summary`: d2l's shape walk (`for layer in net: X = layer(X); print(X.shape)`) done
//! properly — per stage its output shape, parameters, MACs and activation memory, taken from a
//! forward pass of the real module tree with a [`ShapeProbe`].

use burn::tensor::{Device, Tensor};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::instrument::{macs_counter, shape_only};
use crate::model::Model;
use crate::probe::ShapeProbe;

/// One row of a summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Dotted path, equal to the weight-key prefix.
    pub name: String,
    /// Module kind.
    pub kind: String,
    /// Output shape including the batch dimension.
    pub output: Vec<usize>,
    /// Parameters of the stage.
    pub params: usize,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Bytes of the stage's output for the whole batch (f32).
    pub activation_bytes: u64,
    /// The input region the unit at the centre of the output (a map) or the whole output (a
    /// vector) depends on.
    pub receptive_field: Option<ReceptiveField>,
}

/// The input region one unit depends on (its theoretical receptive field, clipped to the input).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ReceptiveField {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// First and last input row.
    pub rows: [usize; 2],
    /// First and last input column.
    pub cols: [usize; 2],
    /// Whether it spans the whole input (the field may be larger than the input).
    pub whole_input: bool,
}

impl std::fmt::Display for ReceptiveField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.height, self.width)?;
        if self.whole_input { write!(f, " (all)") } else { Ok(()) }
    }
}

/// Records, per stage, the four values at the centre of its output (see [`receptive_fields`]).
#[derive(Default)]
struct FieldProbe {
    stack: Vec<String>,
    centres: Vec<(String, Vec<f32>)>,
}

impl crate::probe::Probe for FieldProbe {
    fn active(&self) -> bool {
        true
    }

    fn enter(&mut self, name: String) {
        self.stack.push(crate::probe::join_path(self.stack.last().map(String::as_str), name));
    }

    fn leave<const D: usize>(&mut self, _kind: String, _params: usize, out: &Tensor<D>) {
        let Some(path) = self.stack.pop() else { return };
        let dims = out.dims();
        if D < 2 {
            return;
        }
        // The centre of a map, over all its channels (a concatenation's channels differ); every
        // feature of a vector (what it depends on as a whole: for a linear layer, each unit).
        let centre: Tensor<2> = if D == 4 {
            let (h, w) = (dims[2], dims[3]);
            let at = |t: Tensor<D>| t.narrow(2, h / 2, 1).narrow(3, w / 2, 1);
            at(out.clone()).flatten::<2>(1, D - 1).min_dim(1)
        } else {
            out.clone().flatten::<2>(1, D - 1).min_dim(1)
        };
        let values = centre.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        self.centres.push((path, values));
    }
}

/// The receptive field of every stage of `model` for a `[c, h, w]` input: which input rows and
/// columns the units at the centre of each stage's output map (any channel) depend on. Computed exactly for any
/// topology (branches, concatenations, residual sums) by one forward pass in receptive-field
/// mode ([`crate::instrument::receptive_field_mode`]) over a batch of four maps holding each
/// pixel's row, minus its row, its column and minus its column: the windowed minima that come
/// out are the first and last input row and column. Clipped to the input (a field larger than
/// the input is reported as the whole input).
pub fn receptive_fields(
    name: &str,
    model: &Model,
    [c, h, w]: [usize; 3],
    device: &Device,
) -> Result<Vec<(String, ReceptiveField)>> {
    let plane = |f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
        (0..c)
            .flat_map(|_| (0..h).flat_map(move |y| (0..w).map(move |x| (y, x))))
            .map(|(y, x)| f(y, x))
            .collect()
    };
    let values = [
        plane(&|y, _| y as f32),
        plane(&|y, _| -(y as f32)),
        plane(&|_, x| x as f32),
        plane(&|_, x| -(x as f32)),
    ]
    .concat();
    let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [4, c, h, w]), device);
    let mut probe = FieldProbe::default();
    crate::instrument::receptive_field_mode(|| model.try_forward_with(name, x, &mut probe))?;
    Ok(probe
        .centres
        .into_iter()
        .filter(|(_, v)| v.len() == 4 && v.iter().all(|x| x.is_finite()))
        .map(|(path, v)| {
            let span = |lo: f32, hi: f32| [lo.max(0.0) as usize, (-hi).max(0.0) as usize];
            let (r, k) = (span(v[0], v[1]), span(v[2], v[3]));
            let field = ReceptiveField {
                height: r[1].saturating_sub(r[0]) + 1,
                width: k[1].saturating_sub(k[0]) + 1,
                rows: r,
                cols: k,
                whole_input: r == [0, h - 1] && k == [0, w - 1],
            };
            (path, field)
        })
        .collect())
}

/// A model's layer table and totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Model name.
    pub model: String,
    /// `[b, c, h, w]` of the input.
    pub input: [usize; 4],
    /// Depth the rows were cut at.
    pub depth: usize,
    /// Rows in execution order.
    pub rows: Vec<Row>,
    /// Total trainable parameters (BN running statistics excluded, as PyTorch counts).
    pub params: usize,
    /// Total multiply-accumulates per image.
    pub macs: u64,
    /// Bytes of all stage outputs for the batch (the activations a backward pass keeps, roughly).
    pub activation_bytes: u64,
    /// Bytes of the parameters (f32).
    pub param_bytes: u64,
}

/// Options for [`summarize`].
#[derive(Debug, Clone, Copy)]
pub struct SummaryOptions {
    /// Nesting depth of the rows (1 = top-level stages).
    pub depth: usize,
    /// Skip the arithmetic (shapes, parameters and MACs are the same; much faster).
    pub shape_only: bool,
}

/// Runs `model` on a zero input of shape `input` (`[b, c, h, w]`) and tabulates its stages.
pub fn summarize(
    name: &str,
    model: &Model,
    input: [usize; 4],
    opts: SummaryOptions,
    device: &Device,
) -> Result<Summary> {
    if input.contains(&0) {
        return Err(Error::invalid("input", format!("every dimension must be at least 1, got {input:?}")));
    }
    if opts.depth == 0 {
        return Err(Error::invalid("--depth", "must be at least 1"));
    }
    let [b, c, h, w] = input;
    model.check_input(name, [c, h, w], device)?;
    let mut probe = ShapeProbe::default();
    let before = macs_counter();
    let mut run = || model.try_forward_with(name, Tensor::zeros(input, device), &mut probe);
    let _ = if opts.shape_only { shape_only(run)? } else { run()? };
    let total_macs = (macs_counter() - before) / b as u64;
    let bytes = |shape: &[usize]| shape.iter().product::<usize>() as u64 * 4;
    let leaf_bytes = {
        let rows = probe.rows(usize::MAX);
        rows.iter().map(|t| bytes(&t.shape)).sum()
    };
    let rows = probe
        .rows(opts.depth)
        .into_iter()
        .map(|t| Row {
            name: t.path.clone(),
            kind: t.kind.clone(),
            output: t.shape.clone(),
            params: t.params,
            macs: t.macs / b as u64,
            activation_bytes: bytes(&t.shape),
            receptive_field: None,
        })
        .collect::<Vec<_>>();
    let fields = receptive_fields(name, model, [c, h, w], device)?;
    let rows = rows
        .into_iter()
        .map(|r: Row| {
            let receptive_field = fields.iter().find(|(p, _)| *p == r.name).map(|(_, f)| *f);
            Row { receptive_field, ..r }
        })
        .collect();
    let params = crate::instrument::num_params(model);
    Ok(Summary {
        model: name.to_string(),
        input,
        depth: opts.depth,
        rows,
        params,
        macs: total_macs,
        activation_bytes: leaf_bytes,
        param_bytes: params as u64 * 4,
    })
}

/// `1234567` → `"1,234,567"`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `123456789` → `"123.5M"`.
pub fn si(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2}G", n / 1e9),
        n if n >= 1e6 => format!("{:.1}M", n / 1e6),
        n if n >= 1e3 => format!("{:.1}K", n / 1e3),
        n => format!("{n}"),
    }
}

/// Bytes as `KiB`/`MiB`/`GiB`.
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1024f64.powi(3) => format!("{:.2} GiB", n / 1024f64.powi(3)),
        n if n >= 1024f64.powi(2) => format!("{:.1} MiB", n / 1024f64.powi(2)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}

impl Summary {
    /// The table as text, one row per stage, totals at the bottom.
    pub fn to_table(&self) -> String {
        let shape =
            |s: &[usize]| format!("[{}]", s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "));
        let header = ["layer", "kind", "output", "params", "MACs/img", "act. mem", "recept. field"];
        let mut cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    r.kind.clone(),
                    shape(&r.output),
                    thousands(r.params as u64),
                    si(r.macs),
                    bytes(r.activation_bytes),
                    r.receptive_field.map_or("-".into(), |f| f.to_string()),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..7)
            .map(|i| cells.iter().map(|c| c[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |c: &[String; 7]| {
            let mut s = String::new();
            for (i, cell) in c.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i < 3 || i == 6 {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad + 2));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = String::new();
        out.push_str(&format!("{}  input {}\n", self.model, shape(&self.input)));
        let head: [String; 7] = header.map(String::from);
        out.push_str(&line(&head));
        out.push('\n');
        let rule = "-".repeat(widths.iter().sum::<usize>() + 12);
        out.push_str(&rule);
        out.push('\n');
        for c in cells.drain(..) {
            out.push_str(&line(&c));
            out.push('\n');
        }
        out.push_str(&rule);
        out.push('\n');
        out.push_str(&format!(
            "total params {} ({}), MACs/img {} ({}), activations {} for batch {}\n",
            thousands(self.params as u64),
            bytes(self.param_bytes),
            thousands(self.macs),
            si(self.macs),
            bytes(self.activation_bytes),
            self.input[0],
        ));
        out
    }
}

/// Parses `C,H,W` (also `CxHxW`).
pub fn parse_chw(s: &str) -> Result<[usize; 3], String> {
    let parts: Vec<&str> = s.split([',', 'x', '×']).map(str::trim).collect();
    let nums: Result<Vec<usize>, _> = parts.iter().map(|p| p.parse::<usize>()).collect();
    match nums.as_deref() {
        Ok([c, h, w]) if *c > 0 && *h > 0 && *w > 0 => Ok([*c, *h, *w]),
        _ => Err(format!("expected C,H,W with three positive integers (e.g. 3,224,224), got `{s}`")),
    }
}
