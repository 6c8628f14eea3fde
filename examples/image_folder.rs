//! Writes Fashion-MNIST as an ImageNet-style image folder — `OUT/train/CLASS/*.png` and
//! `OUT/val/CLASS/*.png` — to try `cnnzoo train --dataset folder:OUT` on real images without
//! downloading any:
//!
//! ```text
//! cargo run --release --example image_folder -- OUT [--classes sandal,sneaker,ankle-boot] [--per-class N]
//! ```
//!
//! The files are found as `cnnzoo train` finds them (`$CNNZOO_DATA`, `~/.cache/cnnzoo`, Debian's
//! `dataset-fashion-mnist`). Validation images come from the test split.

use std::path::PathBuf;

use cnnzoo::data::{self, DatasetKind, Split};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut out: Option<PathBuf> = None;
    let mut classes: Option<Vec<String>> = None;
    let mut per_class = 500usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--classes" => {
                let list = args.next().ok_or_else(|| anyhow::anyhow!("--classes needs a list"))?;
                classes = Some(list.split(',').map(str::to_string).collect());
            }
            "--per-class" => {
                let n = args.next().ok_or_else(|| anyhow::anyhow!("--per-class needs a number"))?;
                per_class = n.parse().map_err(|_| anyhow::anyhow!("--per-class: `{n}` is not a number"))?;
            }
            _ if out.is_none() && !arg.starts_with('-') => out = Some(PathBuf::from(arg)),
            other => {
                anyhow::bail!("unexpected argument `{other}`; usage: OUT [--classes a,b] [--per-class N]")
            }
        }
    }
    let out =
        out.ok_or_else(|| anyhow::anyhow!("usage: image_folder OUT [--classes a,b] [--per-class N]"))?;
    let kind = DatasetKind::FashionMnist;
    // Folder names: the class names with spaces as dashes (`ankle-boot`).
    let names: Vec<String> = kind.classes().iter().map(|s| s.replace(' ', "-")).collect();
    let wanted = classes.unwrap_or_else(|| names.clone());
    for c in &wanted {
        if !names.contains(c) {
            anyhow::bail!("unknown class `{c}`; Fashion-MNIST has {}", names.join(", "));
        }
    }
    let dir = data::locate(kind, None)?;
    let dataset = data::load(kind, &dir)?;
    for (split, images, cap) in [("train", &dataset.train, per_class), ("val", &dataset.test, per_class / 5)]
    {
        let written = write(&out.join(split), images, &names, &wanted, cap.max(1))?;
        println!("{written} images in {}", out.join(split).display());
    }
    Ok(())
}

/// Up to `cap` images of each wanted class of `split` as `dir/CLASS/NNNNN.png`.
fn write(
    dir: &std::path::Path,
    split: &Split,
    names: &[String],
    wanted: &[String],
    cap: usize,
) -> anyhow::Result<usize> {
    let mut counts = vec![0usize; names.len()];
    let px = split.rows * split.cols;
    let mut written = 0;
    for i in 0..split.len() {
        let label = usize::from(split.labels[i]);
        let name = &names[label];
        if !wanted.contains(name) || counts[label] >= cap {
            continue;
        }
        counts[label] += 1;
        let class_dir = dir.join(name);
        std::fs::create_dir_all(&class_dir)?;
        let pixels = split.images[i * px..(i + 1) * px].to_vec();
        let img = image::GrayImage::from_raw(split.cols as u32, split.rows as u32, pixels)
            .ok_or_else(|| anyhow::anyhow!("image {i} has the wrong size"))?;
        img.save(class_dir.join(format!("{i:05}.png")))?;
        written += 1;
    }
    Ok(written)
}
