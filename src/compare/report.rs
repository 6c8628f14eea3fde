//! The comparison's reports: `compare.md` (the table and the claims), the charts (SVG and PNG)
//! and one self-contained `report.html` with the charts inline.

use std::path::Path;

use super::claims::claims;
use super::measure::{ModelRow, ips};
use crate::error::Result;
use crate::inspect::{bytes, si};
use crate::{fsutil, plot};

/// The table of all rows and the claims, as markdown.
pub fn markdown(rows: &[ModelRow]) -> String {
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

/// Writes `compare.md`, the charts and `report.html` into `out`; returns the markdown.
pub fn write_reports(out: &Path, rows: &[ModelRow]) -> Result<String> {
    let labels: Vec<String> = rows.iter().map(|r| r.model.trim_start_matches("d2l_").to_string()).collect();
    let mut charts: Vec<(&str, String)> = Vec::new();
    // Values over more than two orders of magnitude (parameters, MACs) get a log scale.
    let mut bar = |file: &'static str, title: &str, values: Vec<f64>| -> Result<()> {
        let rendered = plot::BarChart::new(title, labels.clone(), values).render()?;
        fsutil::write_chart(out, file, &rendered)?;
        charts.push((file, rendered.0));
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
        let rendered = chart.render()?;
        fsutil::write_chart(out, "curves", &rendered)?;
        charts.push(("curves", rendered.0));
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
                html.push_str(&format!("<td>{}</td>", plot::escape_html(c)));
            }
            html.push_str("</tr>");
        } else {
            if in_table {
                html.push_str("</table>");
                in_table = false;
            }
            if let Some(item) = line.strip_prefix("- ") {
                html.push_str(&format!("<li>{}</li>", plot::escape_html(item)));
            } else if !line.is_empty() {
                html.push_str(&format!("<h2>{}</h2>", plot::escape_html(line)));
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
    Ok(md)
}
