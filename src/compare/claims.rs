//! The claims d2l's "Modern CNNs" chapter makes about the seven models, each next to the
//! measured numbers that bear on it.

use burn::tensor::Device;

use super::measure::{ModelRow, ips};
use crate::inspect::{SummaryOptions, si, summarize, thousands};
use crate::registry;

fn row<'a>(rows: &'a [ModelRow], name: &str) -> Option<&'a ModelRow> {
    rows.iter().find(|r| r.model == name)
}

/// MACs per image of full-width VGG-11 at its input (the preset d2l describes but does not train).
fn full_vgg11_macs() -> Option<u64> {
    let entry = registry::find("d2l_vgg11").ok()?;
    let device = Device::flex();
    let model = entry.config().init(&device);
    let [c, h, w] = entry.input;
    let opts = SummaryOptions { depth: 1, shape_only: true };
    summarize(entry.name, &model, [1, c, h, w], opts, &device).ok().map(|s| s.macs)
}

/// `"; training X vs Y img/s"` when both speeds were measured, else nothing.
fn training_speeds(a: &ModelRow, b: &ModelRow) -> String {
    if a.train.is_none() || b.train.is_none() {
        return String::new();
    }
    format!("; training {:.1} vs {:.1} img/s", ips(&a.train), ips(&b.train))
}

/// The chapter's claims, each with the measured numbers that bear on it.
pub fn claims(rows: &[ModelRow]) -> Vec<(String, String)> {
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
                "parameters {} vs {} ({:.0}× fewer); MACs {} vs {}{}",
                si(n.params as u64),
                si(a.params as u64),
                a.params as f64 / n.params.max(1) as f64,
                si(n.macs),
                si(a.macs),
                training_speeds(n, a)
            ),
        ));
    }
    if let (Some(v), Some(a)) = (row(rows, "d2l_vgg11_r4"), row(rows, "d2l_alexnet")) {
        out.push((
            "VGG-11 is far heavier than AlexNet, which is why d2l trains it with 4× fewer channels.".to_string(),
            format!(
                "full-width VGG-11 needs {} MACs per image (cnnzoo list); the ratio-4 net trained here {} vs AlexNet's {}{}",
                full_vgg11_macs().map_or("?".to_string(), si),
                si(v.macs),
                si(a.macs),
                training_speeds(v, a)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::measure::static_row;

    #[test]
    fn vgg_claim_quotes_the_measured_full_width_macs() {
        let device = Device::flex();
        let rows: Vec<ModelRow> =
            ["d2l_alexnet", "d2l_vgg11_r4"].iter().map(|n| static_row(n, &device).unwrap()).collect();
        let full = full_vgg11_macs().unwrap();
        // 7.6 GMACs: d2l's VGG-11 (reference.md), far above the ratio-4 net's.
        assert!((7_400_000_000..7_700_000_000).contains(&full), "{full}");
        let (_, evidence) = claims(&rows).into_iter().find(|(c, _)| c.starts_with("VGG-11")).unwrap();
        assert!(evidence.contains(&format!("needs {} MACs", si(full))), "{evidence}");
        assert!(evidence.contains(&si(rows[1].macs)), "{evidence}");
    }
}
