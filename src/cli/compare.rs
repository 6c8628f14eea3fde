//! `cnnzoo compare`: the seven d2l models side by side — size, compute, memory, speed and, with
//! `--epochs`, accuracy after training with each model's d2l recipe — next to the claims the
//! "Modern CNNs" chapter makes about them. Writes compare.md, compare.json, SVG/PNG charts and a
//! self-contained report.html into `--out`; resumable (finished models are not retrained,
//! interrupted ones continue from their checkpoint).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use cnnzoo::bench::{self, BenchResult, BenchSpec, Mode};
use cnnzoo::inspect::{SummaryOptions, bytes, si, summarize, thousands};
use cnnzoo::train::{self, EpochMetrics, Outcome, TrainConfig, TrainOptions, d2l_recipe};
use cnnzoo::{data, fsutil, plot, registry};
use serde::{Deserialize, Serialize};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Train each model this many epochs with its d2l recipe (0 = size and speed only).
    #[arg(long, default_value_t = 0)]
    epochs: usize,
    /// Train on the first N training images (the test set stays whole).
    #[arg(long)]
    subset: Option<usize>,
    /// Models (default: the seven of d2l's chapter), comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Directory with the IDX files (default: as for `train`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Output directory (reports, charts, one training run per model).
    #[arg(long, default_value = "runs/compare")]
    out: PathBuf,
    /// Timed steps per throughput measurement.
    #[arg(long, default_value_t = 2)]
    bench_steps: usize,
    /// No per-epoch progress bars.
    #[arg(long, short)]
    quiet: bool,
}

/// Everything measured about one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelRow {
    model: String,
    family: String,
    input: [usize; 3],
    params: usize,
    macs: u64,
    activation_bytes_per_image: u64,
    classifier_params: usize,
    classifier_share: f64,
    /// Output channels of each depth-2 stage (DenseNet's transitions show here).
    channels: Vec<(String, usize)>,
    train: Option<BenchResult>,
    infer: Option<BenchResult>,
    history: Vec<EpochMetrics>,
    wall_seconds: Option<f64>,
}

fn static_row(name: &str) -> anyhow::Result<ModelRow> {
    let entry = registry::find(name)?;
    let device = super::device();
    let model = entry.config().init(&device);
    let [c, h, w] = entry.input;
    let opts = SummaryOptions { depth: 2, shape_only: true };
    let s = summarize(entry.name, &model, [1, c, h, w], opts, &device)?;
    let top =
        summarize(entry.name, &model, [1, c, h, w], SummaryOptions { depth: 1, shape_only: true }, &device)?;
    // The classifier: torchvision's `classifier`/`fc`; NiN has none, its last block plays the part.
    let mut classifier_params: usize =
        top.rows.iter().filter(|r| r.name == "classifier" || r.name == "fc").map(|r| r.params).sum();
    if classifier_params == 0 {
        classifier_params = s.rows.iter().rev().find(|r| r.params > 0).map_or(0, |r| r.params);
    }
    let channels =
        s.rows.iter().filter(|r| r.output.len() == 4).map(|r| (r.name.clone(), r.output[1])).collect();
    Ok(ModelRow {
        model: entry.name.to_string(),
        family: entry.family.to_string(),
        input: entry.input,
        params: s.params,
        macs: s.macs,
        activation_bytes_per_image: s.activation_bytes,
        classifier_params,
        classifier_share: classifier_params as f64 / s.params.max(1) as f64,
        channels,
        train: None,
        infer: None,
        history: Vec::new(),
        wall_seconds: None,
    })
}

fn load_cached(path: &Path) -> Option<Vec<ModelRow>> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let names: Vec<String> = if args.models.is_empty() {
        registry::D2L_SEVEN.iter().map(|s| s.to_string()).collect()
    } else {
        args.models.iter().map(|m| registry::find(m).map(|e| e.name.to_string())).collect::<Result<_, _>>()?
    };
    std::fs::create_dir_all(&args.out).map_err(|e| cnnzoo::Error::io("create", &args.out, e))?;
    let cache_path = args.out.join("compare.json");
    let cached = load_cached(&cache_path).unwrap_or_default();
    let device = super::device();
    let started = Instant::now();

    // 1. Size, compute and speed (cheap; speed measurements are cached in compare.json).
    let mut rows = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut row = static_row(name)?;
        if let Some(old) = cached.iter().find(|r| r.model == *name) {
            row.train = old.train.clone().filter(|b| b.steps == args.bench_steps);
            row.infer = old.infer.clone().filter(|b| b.steps == args.bench_steps);
        }
        if row.train.is_none() || row.infer.is_none() {
            eprintln!("[{}/{}] measuring {} throughput …", i + 1, names.len(), name);
            let entry = registry::find(name)?;
            let spec = BenchSpec {
                model: name.clone(),
                config: entry.config(),
                input: entry.input,
                batch: d2l_recipe(name).1,
                steps: args.bench_steps,
                warmup: 1,
            };
            row.train = Some(bench::run(&spec, Mode::Train, &device)?);
            row.infer = Some(bench::run(&spec, Mode::Infer, &device)?);
        }
        rows.push(row);
        write_json(&cache_path, &rows)?;
    }

    // 2. Training with each model's d2l recipe.
    if args.epochs > 0 {
        let data_dir = data::locate(data::DatasetKind::FashionMnist, args.data.as_deref())?;
        let dataset = data::load(data::DatasetKind::FashionMnist, &data_dir)?;
        let images = args.subset.unwrap_or(dataset.train.len()).min(dataset.train.len());
        let interrupt = super::train::interrupt_flag();
        let estimate = |r: &ModelRow| {
            let ips = r.train.as_ref().map_or(1.0, |b| b.images_per_sec.median);
            (images * args.epochs) as f64 / ips.max(1e-9)
                + 10000.0 / r.infer.as_ref().map_or(1.0, |b| b.images_per_sec.median) * args.epochs as f64
        };
        for i in 0..rows.len() {
            let name = rows[i].model.clone();
            let dir = args.out.join(&name);
            let mut config = TrainConfig::for_model(&name, None)?;
            config.epochs = args.epochs;
            config.train_subset = args.subset;
            let done = dir.join(train::files::MODEL).is_file()
                && train::read_config(&dir).is_ok_and(|c| c == config)
                && train::read_metrics(&dir).is_ok_and(|m| m.len() == args.epochs);
            if done {
                rows[i].history = train::read_metrics(&dir)?;
                rows[i].wall_seconds = cached.iter().find(|r| r.model == name).and_then(|r| r.wall_seconds);
                eprintln!("[{}/{}] {name}: already trained in {}", i + 1, rows.len(), dir.display());
                continue;
            }
            let resume = dir.join(train::files::CONFIG).is_file();
            if resume && train::read_config(&dir).ok().as_ref() != Some(&config) {
                return Err(cnnzoo::Error::invalid(
                    "--out",
                    format!("{} holds a run with other settings; use another --out", dir.display()),
                )
                .into());
            }
            let remaining: f64 = rows[i..].iter().map(estimate).sum();
            eprintln!(
                "[{}/{}] training {name}: {} epochs on {images} images (estimated {:.0} min for this model, {:.0} min for the rest of the comparison)",
                i + 1,
                rows.len(),
                args.epochs,
                estimate(&rows[i]) / 60.0,
                remaining / 60.0
            );
            let t0 = Instant::now();
            let mut console = super::train::Console::new(args.quiet, false);
            let opts = TrainOptions {
                device: device.clone(),
                interrupt: interrupt.clone(),
                checkpoint_every: 50,
                reporter: &mut console,
            };
            match train::train(&config, &dataset, &dir, resume, opts)
                .with_context(|| format!("training {name}"))?
            {
                Outcome::Finished(history) => {
                    rows[i].history = history;
                    rows[i].wall_seconds = Some(t0.elapsed().as_secs_f64());
                }
                Outcome::Interrupted { .. } => {
                    write_reports(&args.out, &rows)?;
                    anyhow::bail!(
                        "interrupted while training {name}; run the same command again to continue from its checkpoint"
                    );
                }
            }
            write_json(&cache_path, &rows)?;
        }
    }
    write_json(&cache_path, &rows)?;
    write_reports(&args.out, &rows)?;
    eprintln!(
        "compare: {} models in {:.0} s; report in {}",
        rows.len(),
        started.elapsed().as_secs_f64(),
        args.out.join("report.html").display()
    );
    super::print(&markdown(&rows))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    fsutil::write_atomic(path, serde_json::to_string_pretty(v)?.as_bytes())?;
    Ok(())
}

fn ips(b: &Option<BenchResult>) -> f64 {
    b.as_ref().map_or(0.0, |b| b.images_per_sec.median)
}

fn row<'a>(rows: &'a [ModelRow], name: &str) -> Option<&'a ModelRow> {
    rows.iter().find(|r| r.model == name)
}

/// The chapter's claims, each with the measured numbers that bear on it.
fn claims(rows: &[ModelRow]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(a) = row(rows, "d2l_alexnet") {
        out.push((
            "AlexNet's two 4096-wide fully connected layers hold most of its parameters.".to_string(),
            format!(
                "classifier: {} of {} parameters ({:.1} %)",
                thousands(a.classifier_params as u64),
                thousands(a.params as u64),
                100.0 * a.classifier_share
            ),
        ));
    }
    if let (Some(a), Some(n)) = (row(rows, "d2l_alexnet"), row(rows, "d2l_nin")) {
        out.push((
            "NiN has far fewer parameters than AlexNet (no big dense layers) but is not cheaper to train."
                .to_string(),
            format!(
                "parameters {} vs {} ({:.0}× fewer); MACs {} vs {}; training {:.1} vs {:.1} img/s",
                si(n.params as u64),
                si(a.params as u64),
                a.params as f64 / n.params.max(1) as f64,
                si(n.macs),
                si(a.macs),
                ips(&n.train),
                ips(&a.train)
            ),
        ));
    }
    if let (Some(v), Some(a)) = (row(rows, "d2l_vgg11_r4"), row(rows, "d2l_alexnet")) {
        out.push((
            "VGG-11 is far heavier than AlexNet, which is why d2l trains it with 4× fewer channels.".to_string(),
            format!(
                "full-width VGG-11 needs 7.55G MACs per image (cnnzoo list); the ratio-4 net trained here {} vs AlexNet's {}; training {:.1} vs {:.1} img/s",
                si(v.macs),
                si(a.macs),
                ips(&v.train),
                ips(&a.train)
            ),
        ));
    }
    if let (Some(g), Some(a)) = (row(rows, "d2l_googlenet"), row(rows, "d2l_alexnet")) {
        out.push((
            "GoogLeNet is cheaper than AlexNet and VGG in parameters while as deep or deeper.".to_string(),
            format!(
                "parameters {} vs AlexNet {}; MACs {} (at 96×96) vs {} (at 224×224)",
                si(g.params as u64),
                si(a.params as u64),
                si(g.macs),
                si(a.macs)
            ),
        ));
    }
    if let Some(d) = row(rows, "d2l_densenet") {
        let ch: Vec<String> = d
            .channels
            .iter()
            .filter(|(n, _)| n.contains("denseblock") || n.contains("transition") || n.ends_with("pool0"))
            .map(|(_, c)| c.to_string())
            .collect();
        out.push((
            "DenseNet's transition layers keep the channel count in check.".to_string(),
            format!(
                "channels along the network: {} (each block adds 4×32, each transition halves)",
                ch.join(" → ")
            ),
        ));
    }
    let acc = |name: &str| row(rows, name).and_then(|r| r.history.last()).map(|m| m.test_acc);
    let first = |name: &str| row(rows, name).and_then(|r| r.history.first()).map(|m| m.test_acc);
    if let (Some(p1), Some(b1)) = (first("d2l_lenet"), first("d2l_lenet_bn")) {
        out.push((
            "Batch normalization makes LeNet train much faster (d2l 8.5).".to_string(),
            format!(
                "test accuracy after epoch 1: {b1:.3} with BN vs {p1:.3} without; after the last epoch {:.3} vs {:.3}",
                acc("d2l_lenet_bn").unwrap_or(0.0),
                acc("d2l_lenet").unwrap_or(0.0)
            ),
        ));
    }
    let modern = ["d2l_vgg11_r4", "d2l_googlenet", "d2l_resnet18", "d2l_densenet"];
    let early = ["d2l_lenet", "d2l_alexnet", "d2l_nin"];
    let best = |names: &[&'static str]| -> Option<(f64, &'static str)> {
        names.iter().filter_map(|n| acc(n).map(|a| (a, *n))).max_by(|a, b| a.0.total_cmp(&b.0))
    };
    if let (Some((m, mn)), Some((e, en))) = (best(&modern), best(&early)) {
        let accs: Vec<String> = rows
            .iter()
            .filter_map(|r| {
                r.history.last().map(|m| format!("{} {:.3}", r.model.trim_start_matches("d2l_"), m.test_acc))
            })
            .collect();
        out.push((
            "The later architectures (VGG, GoogLeNet, ResNet, DenseNet) end up more accurate than LeNet, AlexNet and NiN.".to_string(),
            format!("test accuracy: {}; best later {mn} {m:.3} vs best earlier {en} {e:.3}", accs.join(", ")),
        ));
    }
    out
}

fn markdown(rows: &[ModelRow]) -> String {
    let mut s = String::from(
        "| model | input | params | MACs/img | act. mem/img | classifier share | train img/s | infer img/s | epochs | train loss | train acc | test acc | train time |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let last = r.history.last();
        let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
        s.push_str(&format!(
            "| {} | {}×{} | {} | {} | {} | {:.1} % | {:.1} | {:.1} | {} | {} | {} | {} | {} |\n",
            r.model,
            r.input[1],
            r.input[2],
            si(r.params as u64),
            si(r.macs),
            bytes(r.activation_bytes_per_image),
            100.0 * r.classifier_share,
            ips(&r.train),
            ips(&r.infer),
            r.history.len(),
            f(last.map(|m| m.train_loss)),
            f(last.map(|m| m.train_acc)),
            f(last.map(|m| m.test_acc)),
            // d2l's timer: training steps only (evaluation and data preparation excluded).
            if r.history.is_empty() {
                "–".to_string()
            } else {
                format!("{:.0} s", r.history.iter().map(|m| m.train_seconds).sum::<f64>())
            },
        ));
    }
    s.push_str("\nThe chapter's claims, measured:\n\n");
    for (claim, evidence) in claims(rows) {
        s.push_str(&format!("- {claim} — {evidence}\n"));
    }
    s
}

fn write_reports(out: &Path, rows: &[ModelRow]) -> anyhow::Result<()> {
    let labels: Vec<String> = rows.iter().map(|r| r.model.trim_start_matches("d2l_").to_string()).collect();
    let mut charts: Vec<(&str, String)> = Vec::new();
    // Values over more than two orders of magnitude (parameters, MACs) get a log scale.
    let mut bar = |file: &'static str, title: &str, values: Vec<f64>| -> anyhow::Result<()> {
        let (svg, png) = plot::BarChart::new(title, labels.clone(), values).render()?;
        fsutil::write_atomic(&out.join(format!("{file}.svg")), svg.as_bytes())?;
        fsutil::write_atomic(&out.join(format!("{file}.png")), &png)?;
        charts.push((file, svg));
        Ok(())
    };
    bar("params", "parameters", rows.iter().map(|r| r.params as f64).collect())?;
    bar("macs", "MACs per image (at the d2l input size)", rows.iter().map(|r| r.macs as f64).collect())?;
    bar("train_speed", "training images/s", rows.iter().map(|r| ips(&r.train)).collect())?;
    bar("infer_speed", "inference images/s", rows.iter().map(|r| ips(&r.infer)).collect())?;
    let trained: Vec<&ModelRow> = rows.iter().filter(|r| !r.history.is_empty()).collect();
    if !trained.is_empty() {
        bar(
            "accuracy",
            "test accuracy",
            rows.iter().map(|r| r.history.last().map_or(0.0, |m| m.test_acc)).collect(),
        )?;
        let series = trained
            .iter()
            .map(|r| {
                let points = r.history.iter().map(|m| (m.epoch as f64, m.test_acc)).collect();
                plot::Series::new(r.model.trim_start_matches("d2l_"), points)
            })
            .collect();
        let chart = plot::LineChart {
            title: "test accuracy by epoch".into(),
            x_label: "epoch".into(),
            series,
            ..Default::default()
        };
        let (svg, png) = chart.render()?;
        fsutil::write_atomic(&out.join("curves.svg"), svg.as_bytes())?;
        fsutil::write_atomic(&out.join("curves.png"), &png)?;
        charts.push(("curves", svg));
    }
    let md = markdown(rows);
    fsutil::write_atomic(&out.join("compare.md"), md.as_bytes())?;
    // A self-contained HTML page: the table, the claims and the SVG charts inline.
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cnnzoo compare</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}\
         </style></head><body><h1>The d2l “Modern CNNs” models, measured by cnnzoo</h1>",
    );
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                html.push_str("<table>");
                in_table = true;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            html.push_str("<tr>");
            for c in cells {
                html.push_str(&format!("<td>{}</td>", escape(c)));
            }
            html.push_str("</tr>");
        } else {
            if in_table {
                html.push_str("</table>");
                in_table = false;
            }
            if let Some(item) = line.strip_prefix("- ") {
                html.push_str(&format!("<li>{}</li>", escape(item)));
            } else if !line.is_empty() {
                html.push_str(&format!("<h2>{}</h2>", escape(line)));
            }
        }
    }
    if in_table {
        html.push_str("</table>");
    }
    for (_, svg) in &charts {
        html.push_str("<div>");
        html.push_str(svg);
        html.push_str("</div>");
    }
    html.push_str("</body></html>\n");
    fsutil::write_atomic(&out.join("report.html"), html.as_bytes())?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
