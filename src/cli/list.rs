//! `cnnzoo list`.

use burn::tensor::Device;
use cnnzoo::inspect::{SummaryOptions, si, summarize, thousands};
use cnnzoo::registry::MODELS;
use serde::Serialize;

use super::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    family: &'static str,
    flavour: &'static str,
    input: [usize; 3],
    num_classes: usize,
    params: usize,
    macs: u64,
    about: &'static str,
    /// One of the seven models of d2l's comparison (what `bench` and `compare` run by default).
    d2l_seven: bool,
    recipe: cnnzoo::recipe::Recipe,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let device = Device::flex();
    let mut rows = Vec::new();
    for e in MODELS {
        let model = e.config().init(&device);
        let [c, h, w] = e.input;
        let opts = SummaryOptions { depth: 1, shape_only: true };
        let summary = summarize(e.name, &model, [1, c, h, w], opts, &device)?;
        rows.push(Row {
            name: e.name,
            family: e.family,
            flavour: e.flavour.as_str(),
            input: e.input,
            num_classes: e.num_classes,
            params: cnnzoo::instrument::num_params(&model),
            macs: summary.macs,
            about: e.about,
            d2l_seven: e.in_d2l_seven(),
            recipe: e.recipe,
        });
    }
    match args.format {
        Format::Json => super::print_json(&rows),
        Format::Table => {
            let mut out = format!(
                "{:<14} {:<10} {:<12} {:>11} {:>7} {:>13} {:>9}  {}\n",
                "name", "family", "flavour", "input", "classes", "params", "MACs", "description"
            );
            for r in &rows {
                let [c, h, w] = r.input;
                out.push_str(&format!(
                    "{:<14} {:<10} {:<12} {:>11} {:>7} {:>13} {:>9}  {}\n",
                    r.name,
                    r.family,
                    r.flavour,
                    format!("{c}x{h}x{w}"),
                    r.num_classes,
                    thousands(r.params as u64),
                    si(r.macs),
                    r.about
                ));
            }
            super::print(&out)
        }
    }
}
