//! The experiments that measure the registry's own models rather than train new ones: 1×1
//! convolutions (counted; NiN and AlexNet also trained briefly side by side, by
//! [`super::lessons::nin_against_alexnet`]), transition layers (one timed training step), and the
//! chapter's static claims.

use burn::tensor::{Distribution, Tensor};

use super::{Ctx, Finding, Status, Table, finding};
use crate::bench::{self, BenchSpec, Mode};
use crate::compare::measure::static_row;
use crate::error::Result;
use crate::inspect::{Row, Summary, SummaryOptions, bytes, si, summarize};
use crate::model::{Model, ModelConfig};
use crate::models::googlenet::INCEPTION;
use crate::registry;

/// The summary of `config` (named `name`) for one `input` image, rows cut at `depth`
/// (shape-only walk).
fn summary(ctx: &Ctx, config: &ModelConfig, name: &str, input: [usize; 3], depth: usize) -> Result<Summary> {
    let model = config.init(&ctx.device);
    let [c, h, w] = input;
    summarize(name, &model, [1, c, h, w], SummaryOptions { depth, shape_only: true }, &ctx.device)
}

/// Parameters (weights and biases) of one inception block with the 1×1 reductions, and
/// without them (the 3×3 and 5×5 convolutions applied to all input channels).
pub(crate) fn inception_params([c_in, c1, c2r, c2, c3r, c3, c4]: [usize; 7], k3: usize) -> (usize, usize) {
    let with = c_in * c1 + c_in * c2r + 9 * c2r * c2 + c_in * c3r + k3 * k3 * c3r * c3 + c_in * c4;
    let without = c_in * c1 + 9 * c_in * c2 + k3 * k3 * c_in * c3 + c_in * c4;
    (with + c1 + c2r + c2 + c3r + c3 + c4, without + c1 + c2 + c3 + c4)
}

/// 1×1 convolutions: GoogLeNet's reductions and NiN's per-pixel layers.
pub(super) fn one_by_one(ctx: &mut Ctx) -> Result<Option<Finding>> {
    let g = registry::find("d2l_googlenet")?;
    let googlenet = summary(ctx, &g.config(), g.name, g.input, 1)?;
    let mut f = finding(
        "1×1 convolutions cut parameters and compute: GoogLeNet's 1×1 reductions before its 3×3 and 5×5 convolutions, and NiN's 1×1 layers with global average pooling in place of AlexNet's dense layers.",
        "Szegedy et al. 2015 §4 (\"1×1 convolutions are used to compute reductions before the expensive 3×3 and 5×5 convolutions\"); Lin et al. 2013 (NiN). Here: d2l's GoogLeNet at 96×96 and d2l's NiN and AlexNet at 224×224, counted on the registry's models; the nets without reductions are computed from the same block shapes, not trained. NiN against AlexNet in training: d2l v0.17 printed 0.865 vs 0.879 test accuracy after 10 epochs (d2l-zh v2: 0.790 vs 0.883), and d2l v1.0's plots show NiN at 0.19, 0.45, 0.66 after epochs 1–3 against AlexNet's 0.10, 0.30, 0.59; here the small budgets train on a subset at batch 16.",
        "one shape-only pass of each registry model (cnnzoo summary); per inception block the parameters and MACs as built, against the same block with the 3×3 and 5×5 convolutions applied to all input channels; NiN's and AlexNet's training throughput at 1×224×224 (cnnzoo bench's measurement, a few steps after one warm-up)".to_string(),
    );
    let mut t = Table::new(&[
        "block",
        "map",
        "params with 1×1 reductions",
        "without",
        "MACs with",
        "without",
        "× saved",
    ]);
    let (mut with_sum, mut without_sum, mut macs_with, mut macs_without) = (0usize, 0usize, 0u64, 0u64);
    let mut formula_matches = true;
    let blocks: Vec<&Row> = googlenet.rows.iter().filter(|r| r.name.starts_with("inception")).collect();
    for (row, spec) in blocks.iter().zip(INCEPTION) {
        let (with, without) = inception_params(spec, 5);
        formula_matches &= with == row.params;
        let hw = (row.output[2] * row.output[3]) as u64;
        let bias = (spec[1] + spec[3] + spec[5] + spec[6]) as u64;
        // MACs: weights × positions (biases are additions, not multiply-adds).
        let mw = row.macs;
        let mwo = (without as u64 - bias) * hw;
        t.row(vec![
            row.name.clone(),
            format!("{}×{}", row.output[2], row.output[3]),
            si(row.params as u64),
            si(without as u64),
            si(mw),
            si(mwo),
            format!("{:.1}×", without as f64 / row.params as f64),
        ]);
        with_sum += row.params;
        without_sum += without;
        macs_with += mw;
        macs_without += mwo;
    }
    t.row(vec![
        "all nine".into(),
        String::new(),
        si(with_sum as u64),
        si(without_sum as u64),
        si(macs_with),
        si(macs_without),
        format!("{:.1}×", without_sum as f64 / with_sum.max(1) as f64),
    ]);
    f.tables.push(t);

    let n = registry::find("d2l_nin")?;
    let a = registry::find("d2l_alexnet")?;
    let nin = summary(ctx, &n.config(), n.name, n.input, usize::MAX)?;
    let (n_params, n_macs) = (nin.params, nin.macs);
    let alexnet = summary(ctx, &a.config(), a.name, a.input, 1)?;
    let (a_params, a_macs) = (alexnet.params, alexnet.macs);
    let ones: Vec<&Row> = nin.rows.iter().filter(|r| r.kind == "Conv1x1").collect();
    let (one_params, one_macs): (usize, u64) =
        (ones.iter().map(|r| r.params).sum(), ones.iter().map(|r| r.macs).sum());
    // Fewer parameters is not less work: training throughput of both at the d2l input.
    let (batch, steps) = ctx.budget.pick((2, 1), (16, 2), (128, 3));
    let mut speed = Vec::new();
    for entry in [n, a] {
        ctx.note(&format!("timing {}", entry.name));
        let spec = BenchSpec {
            model: entry.name.to_string(),
            config: entry.config(),
            input: entry.input,
            batch,
            steps,
            warmup: 1,
        };
        speed.push(bench::run(&spec, Mode::Train, &ctx.device)?.images_per_sec.median);
    }
    let mut t = Table::new(&[
        "model",
        "params",
        "MACs/img",
        "1×1 convs",
        "their params",
        "their MACs",
        "training img/s",
    ]);
    t.row(vec![
        "d2l_nin".into(),
        si(n_params as u64),
        si(n_macs),
        ones.len().to_string(),
        format!("{} ({:.0} %)", si(one_params as u64), 100.0 * one_params as f64 / n_params as f64),
        format!("{} ({:.0} %)", si(one_macs), 100.0 * one_macs as f64 / n_macs as f64),
        format!("{:.1}", speed[0]),
    ]);
    t.row(vec![
        "d2l_alexnet".into(),
        si(a_params as u64),
        si(a_macs),
        "0".into(),
        "–".into(),
        "–".into(),
        format!("{:.1}", speed[1]),
    ]);
    f.tables.push(t);
    let Some(convergence) = super::lessons::nin_against_alexnet(ctx, &mut f)? else { return Ok(None) };
    f.protocol.push_str(&format!("; {}", convergence.protocol));
    let chart = crate::plot::BarChart {
        log_scale: true,
        ..crate::plot::BarChart::new(
            "parameters: with and without 1×1 convolutions",
            vec!["GoogLeNet incep. (with)".into(), "(without)".into(), "NiN".into(), "AlexNet".into()],
            vec![with_sum as f64, without_sum as f64, n_params as f64, a_params as f64],
        )
    };
    f.charts.push(ctx.chart("params", "parameters of GoogLeNet's inception blocks with and without the 1×1 reductions, and of NiN against AlexNet (log scale)", chart.render()?)?);
    let cut = without_sum > with_sum && macs_without > macs_with && n_params < a_params;
    f.status = if cut && formula_matches { Status::Supported } else { Status::NotShown };
    f.verdict = format!(
        "the 1×1 reductions cut GoogLeNet's inception blocks from {} to {} parameters ({:.1}×) and from {} to {} MACs per image ({:.1}×; the whole net has {}); NiN, whose 1×1 layers hold {:.0} % of its parameters, has {} parameters against AlexNet's {} ({:.0}× fewer) at {} vs {} MACs, and trains at {:.1} vs {:.1} images/s (batch {batch}){}. {}",
        si(without_sum as u64),
        si(with_sum as u64),
        without_sum as f64 / with_sum.max(1) as f64,
        si(macs_without),
        si(macs_with),
        macs_without as f64 / macs_with.max(1) as f64,
        si(googlenet.params as u64),
        100.0 * one_params as f64 / n_params as f64,
        si(n_params as u64),
        si(a_params as u64),
        a_params as f64 / n_params as f64,
        si(n_macs),
        si(a_macs),
        speed[0],
        speed[1],
        if formula_matches { "" } else { " (the block formula did not reproduce the measured counts)" },
        convergence.verdict
    );
    Ok(Some(f))
}

/// One DenseNet measured with and without its transitions.
struct Dense {
    channels: Vec<usize>,
    params: usize,
    macs: u64,
    activations: u64,
    step: f64,
}

/// DenseNet with and without its transition layers: d2l's small net and torchvision's
/// DenseNet-121.
pub(super) fn transition(ctx: &mut Ctx) -> Result<Option<Finding>> {
    let (side, batch, steps) = ctx.budget.pick((32, 4, 1), (96, 32, 3), (96, 256, 5));
    let (side121, batch121) = ctx.budget.pick((32, 2), (224, 4), (224, 16));
    let nets = [("d2l_densenet", side, batch, steps), ("densenet121", side121, batch121, 1)];
    let mut f = finding(
        "DenseNet's transition layers keep it affordable: without them the channels keep growing through every block, and with them memory and time per step.",
        "Huang et al. 2017 §3 (transition layers with compression θ = 0.5 between dense blocks); d2l §8.7.4. Here: d2l's DenseNet (4 blocks of 4 layers, growth 32) and torchvision's DenseNet-121 (6/12/24/16 bottleneck layers, growth 32), one grey input channel; the variant keeps each transition's 2×2 average pool (so the maps shrink alike) and drops its BN, ReLU and channel-halving 1×1 conv.",
        format!(
            "one shape-only pass of each (cnnzoo summary) and timed training steps after one warm-up (cnnzoo bench's measurement): d2l_densenet {steps} of batch {batch} at 1×{side}×{side}, densenet121 1 of batch {batch121} at 1×{side121}×{side121}; supported when, for both nets, the variant without transitions ends with more channels and needs more MACs, activation memory and time per step"
        ),
    );
    let mut t = Table::new(&[
        "net",
        "variant",
        "channels after each block",
        "params",
        "MACs/img",
        "activation memory/img",
        "training step",
    ]);
    let mut all = true;
    let mut words = Vec::new();
    let mut ratios: Vec<(String, f64)> = Vec::new();
    for (name, side, batch, steps) in nets {
        let entry = registry::find(name)?;
        let mut measured = Vec::new();
        for transitions in [true, false] {
            let mut config = entry.config_with(10, 1);
            if let ModelConfig::DenseNet(c) = &mut config {
                c.transitions = transitions;
            }
            let s = summary(ctx, &config, entry.name, [1, side, side], 2)?;
            let (params, macs, activations) = (s.params, s.macs, s.activation_bytes);
            let channels: Vec<usize> =
                s.rows.iter().filter(|r| r.name.contains("denseblock")).map(|r| r.output[1]).collect();
            let spec = BenchSpec {
                model: entry.name.to_string(),
                config,
                input: [1, side, side],
                batch,
                steps,
                warmup: 1,
            };
            ctx.note(&format!("timing {name} {} transitions", if transitions { "with" } else { "without" }));
            let step = bench::run(&spec, Mode::Train, &ctx.device)?.step_seconds.median;
            t.row(vec![
                name.into(),
                if transitions { "with transitions".into() } else { "without".into() },
                channels.iter().map(usize::to_string).collect::<Vec<_>>().join(" → "),
                si(params as u64),
                si(macs),
                bytes(activations),
                format!("{:.0} ms (batch {batch})", 1000.0 * step),
            ]);
            measured.push(Dense { channels, params, macs, activations, step });
        }
        let (w, wo) = (&measured[0], &measured[1]);
        let last = |d: &Dense| *d.channels.last().unwrap_or(&0) as f64;
        let short = name.trim_start_matches("d2l_");
        for (what, r) in [
            ("channels", last(wo) / last(w).max(1.0)),
            ("MACs", wo.macs as f64 / w.macs as f64),
            ("activations", wo.activations as f64 / w.activations as f64),
            ("step time", wo.step / w.step),
        ] {
            ratios.push((format!("{short} {what}"), r));
        }
        all &= last(wo) > last(w) && wo.macs > w.macs && wo.activations > w.activations && wo.step > w.step;
        words.push(format!(
            "{name}: the last block ends at {} channels instead of {}, with {:.2}× the MACs ({} vs {}), {:.2}× the activation memory ({} vs {} per image), {:.2}× the time per training step ({:.0} vs {:.0} ms) and {} vs {} parameters",
            last(wo),
            last(w),
            wo.macs as f64 / w.macs as f64,
            si(wo.macs),
            si(w.macs),
            wo.activations as f64 / w.activations as f64,
            bytes(wo.activations),
            bytes(w.activations),
            wo.step / w.step,
            1000.0 * wo.step,
            1000.0 * w.step,
            si(wo.params as u64),
            si(w.params as u64),
        ));
    }
    f.tables.push(t);
    let (labels, values): (Vec<String>, Vec<f64>) = ratios.into_iter().unzip();
    let chart = crate::plot::BarChart::new("without transitions, relative to with", labels, values);
    f.charts.push(ctx.chart(
        "ratios",
        "DenseNets without transition layers, each measure relative to the same net with them",
        chart.render()?,
    )?);
    f.status = if all { Status::Supported } else { Status::NotShown };
    f.verdict = format!("without transitions — {}", words.join("; "));
    Ok(Some(f))
}

/// The largest difference between a residual block's output and its input, for `name`'s block
/// `index` of stage `stage` built with and without `zero_init_residual`, on a non-negative
/// input of `channels` channels (as a block receives after a ReLU), in training mode.
pub(crate) fn residual_passthrough(
    name: &str,
    stage: usize,
    index: usize,
    channels: usize,
    device: &burn::tensor::Device,
) -> Result<(f64, f64)> {
    let entry = registry::find(name)?;
    let ad = device.clone().autodiff();
    ad.seed(5);
    let x = Tensor::<4>::random([2, channels, 8, 8], Distribution::Normal(0.0, 1.0), &ad).clamp_min(0.0);
    let mut out = Vec::new();
    for zero in [true, false] {
        let mut config = entry.config();
        if let ModelConfig::ResNet(c) = &mut config {
            c.zero_init_residual = zero;
        }
        let Model::ResNet(net) = config.init(&ad) else {
            return Err(crate::error::Error::invalid("model", format!("{name} is not a ResNet")));
        };
        let block = &net.stage(stage)[index];
        if !block.has_identity_shortcut() {
            return Err(crate::error::Error::invalid(
                "block",
                format!("{name} layer{stage}.{index} has a projection shortcut"),
            ));
        }
        let y = block.forward(x.clone());
        out.push(f64::from((y - x.clone()).abs().max().into_scalar::<f32>()));
    }
    Ok((out[0], out[1]))
}

/// The chapter's static claims, and `compare`'s, against the registry's models.
pub(super) fn static_claims(ctx: &mut Ctx) -> Result<Option<Finding>> {
    let mut f = finding(
        "The chapter's claims that need no training hold for the models as built.",
        "d2l §8.1 (AlexNet's dense layers), §7.6 and §8.2 (shape walks), §8.6 (a residual block whose last layer is zero passes its input: torchvision's zero_init_residual, Goyal et al. 2017); and the claims `cnnzoo compare` checks.",
        "shape-only passes of the registry's models; parameter bytes in fp32; one forward of single residual blocks in training mode on a non-negative 2×C×8×8 input".to_string(),
    );
    let mut t = Table::new(&["claim", "measured", "holds"]);
    let mut all = true;
    let mut holds = |t: &mut Table, claim: &str, measured: String, ok: bool| {
        all &= ok;
        t.row(vec![claim.to_string(), measured, if ok { "yes".into() } else { "no".into() }]);
    };

    // AlexNet's two 4096-wide layers.
    let mib = |n: usize| n as f64 * 4.0 / 1e9;
    let mut best = 0.0f64;
    let mut parts = Vec::new();
    for name in ["d2l_alexnet", "alexnet"] {
        let entry = registry::find(name)?;
        let r = summary(ctx, &entry.config(), entry.name, entry.input, usize::MAX)?.rows;
        let dense: usize =
            r.iter().filter(|r| r.kind == "Linear" && r.output.last() == Some(&4096)).map(|r| r.params).sum();
        let adam = mib(dense) * 4.0;
        best = best.max(adam);
        parts.push(format!(
            "{name}: {} parameters — weights {:.2} GB, + gradients {:.2} GB, + SGD momentum {:.2} GB, + Adam's two moments {:.2} GB",
            si(dense as u64),
            mib(dense),
            2.0 * mib(dense),
            3.0 * mib(dense),
            adam
        ));
    }
    holds(
        &mut t,
        "AlexNet's two 4096-wide dense layers carry \"nearly 1 GB\" (taken as ≥ 0.8 GB in fp32, counting what training keeps)",
        format!("{}; the weights alone are far from it", parts.join("; ")),
        best >= 0.8,
    );

    // Shape walks.
    let lenet = registry::find("d2l_lenet")?;
    let r = summary(ctx, &lenet.config(), lenet.name, lenet.input, 2)?.rows;
    let maps: Vec<(usize, usize)> = r
        .iter()
        .filter(|r| r.kind.starts_with("Conv") || r.kind.contains("Pool"))
        .map(|r| (r.output[1], r.output[2]))
        .collect();
    let narrows = maps.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 <= w[0].1)
        && maps.first().map(|m| m.0) < maps.last().map(|m| m.0);
    let walk =
        |m: &[(usize, usize)]| m.iter().map(|(c, s)| format!("{c}×{s}²")).collect::<Vec<_>>().join(" → ");
    holds(&mut t, "LeNet narrows in height and width while its channels grow", walk(&maps), narrows);
    let vgg = registry::find("d2l_vgg11")?;
    let r = summary(ctx, &vgg.config(), vgg.name, vgg.input, 2)?.rows;
    let pools: Vec<(usize, usize)> =
        r.iter().filter(|r| r.kind.starts_with("MaxPool")).map(|r| (r.output[1], r.output[2])).collect();
    let doubles = pools.windows(2).all(|w| w[1].1 * 2 == w[0].1 && (w[1].0 == 2 * w[0].0 || w[1].0 == 512));
    holds(
        &mut t,
        "VGG doubles its channels each time it halves the resolution (up to 512)",
        format!("after each block: {}", walk(&pools)),
        doubles && pools.len() == 5,
    );

    // zero_init_residual.
    for (name, stage, index, channels) in
        [("d2l_resnet18", 1, 1, 64), ("resnet18", 1, 1, 64), ("resnet50", 1, 1, 256)]
    {
        let (zero, normal) = residual_passthrough(name, stage, index, channels, &ctx.device)?;
        holds(
            &mut t,
            &format!(
                "{name} layer{stage}.{index} with its last BN's γ = 0 passes its input through: a[l+2] = g(a[l])"
            ),
            format!("max |block(x) − x| = {zero:.1e} (with the default γ = 1: {normal:.2})"),
            zero <= 1e-6 && normal > 1e-3,
        );
    }

    // compare's claims that need no training.
    let names = crate::bench::default_models();
    let rows: Vec<_> = names.iter().map(|n| static_row(n, &ctx.device)).collect::<Result<_>>()?;
    let mut c = Table::new(&["compare's claim", "measured"]);
    for (claim, evidence) in crate::compare::claims::claims(&rows) {
        c.row(vec![claim, evidence]);
    }
    f.tables.push(t);
    f.tables.push(c);
    f.status = if all { Status::Supported } else { Status::NotShown };
    f.verdict = if all {
        "every checked claim holds (the table gives each measurement)".into()
    } else {
        "not every claim holds as stated: see the rows marked no".into()
    };
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_init_residual_blocks_pass_their_input() {
        let device = burn::tensor::Device::flex();
        let (zero, normal) = residual_passthrough("resnet18", 1, 1, 64, &device).unwrap();
        assert!(zero <= 1e-6, "{zero}");
        assert!(normal > 1e-3, "{normal}");
        assert!(residual_passthrough("resnet18", 2, 0, 128, &device).is_err(), "projection block");
    }

    #[test]
    fn the_inception_formula_matches_googlenets_blocks() {
        let device = burn::tensor::Device::flex();
        let g = registry::find("d2l_googlenet").unwrap();
        let s = summarize(
            g.name,
            &g.config().init(&device),
            [1, 1, 96, 96],
            SummaryOptions { depth: 1, shape_only: true },
            &device,
        )
        .unwrap();
        let blocks: Vec<&Row> = s.rows.iter().filter(|r| r.name.starts_with("inception")).collect();
        assert_eq!(blocks.len(), 9);
        for (row, spec) in blocks.iter().zip(INCEPTION) {
            let (with, without) = inception_params(spec, 5);
            assert_eq!(with, row.params, "{}", row.name);
            assert!(without > 2 * with, "{}", row.name);
        }
    }
}
