//! The experiments' reports in `--out`: `experiments.md`, `experiments.json` (every
//! [`Finding`]) and one self-contained `report.html` (claim → charts → numbers → verdict, the
//! SVG charts inline).

use std::path::Path;

use super::{Finding, status_word};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::plot::escape_html;

fn md_table(t: &super::Table) -> String {
    let cell = |c: &str| c.replace('|', "\\|");
    let mut s = format!(
        "| {} |\n|{}\n",
        t.headers.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(t.headers.len())
    );
    for r in &t.rows {
        s.push_str(&format!("| {} |\n", r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")));
    }
    s
}

/// The findings as markdown.
pub fn markdown(findings: &[Finding]) -> String {
    let mut s = String::from(
        "# The chapter's lessons, measured (`cnnzoo experiment`)\n\n| experiment | verdict | time |\n|---|---|---|\n",
    );
    for f in findings {
        s.push_str(&format!("| {} | {} | {:.0} s |\n", f.name, status_word(f.status), f.seconds));
    }
    for f in findings {
        s.push_str(&format!(
            "\n## {}\n\n**Claim.** {}\n\n**Echoes.** {}\n\n**Protocol** ({:?} budget). {}\n\n",
            f.name, f.claim, f.echoes, f.budget, f.protocol
        ));
        for t in &f.tables {
            s.push_str(&md_table(t));
            s.push('\n');
        }
        for c in &f.charts {
            s.push_str(&format!("![{}]({}/{}.png)\n\n", c.caption, f.name, c.file));
        }
        s.push_str(&format!("**Verdict: {}.** {}\n", status_word(f.status), f.verdict));
    }
    s
}

/// The findings as one HTML page with the charts (read from `out/<name>/<file>.svg`) inline.
pub fn html(out: &Path, findings: &[Finding]) -> Result<String> {
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>cnnzoo experiment</title><style>\
         body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}table{border-collapse:collapse;margin:.8em 0}\
         td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}th{background:#f4f4f4}\
         .supported{color:#1a7f37}.not_shown{color:#b35900}.verdict{border-left:4px solid #888;padding:.3em .8em;background:#fafafa}\
         figure{margin:1em 0}figcaption{color:#555;font-size:90%}svg{max-width:100%;height:auto}\
         </style></head><body><h1>The chapter's lessons, measured</h1><table><tr><th>experiment</th><th>verdict</th><th>time</th></tr>",
    );
    let class = |f: &Finding| {
        serde_json::to_value(f.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
    };
    for f in findings {
        h.push_str(&format!(
            "<tr><td><a href=\"#{0}\">{0}</a></td><td class=\"{1}\">{2}</td><td>{3:.0} s</td></tr>",
            escape_html(&f.name),
            class(f),
            status_word(f.status),
            f.seconds
        ));
    }
    h.push_str("</table>");
    for f in findings {
        h.push_str(&format!(
            "<section id=\"{0}\"><h2>{0}</h2><p><b>Claim.</b> {1}</p><p><b>Echoes.</b> {2}</p><p><b>Protocol</b> ({3:?} budget). {4}</p>",
            escape_html(&f.name),
            escape_html(&f.claim),
            escape_html(&f.echoes),
            f.budget,
            escape_html(&f.protocol)
        ));
        for c in &f.charts {
            let path = out.join(&f.name).join(format!("{}.svg", c.file));
            let svg = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
            h.push_str(&format!(
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                escape_html(&c.caption)
            ));
        }
        for t in &f.tables {
            h.push_str("<table><tr>");
            for c in &t.headers {
                h.push_str(&format!("<th>{}</th>", escape_html(c)));
            }
            h.push_str("</tr>");
            for r in &t.rows {
                h.push_str("<tr>");
                for c in r {
                    h.push_str(&format!("<td>{}</td>", escape_html(c)));
                }
                h.push_str("</tr>");
            }
            h.push_str("</table>");
        }
        h.push_str(&format!(
            "<p class=\"verdict\"><b class=\"{}\">Verdict: {}.</b> {}</p></section>",
            class(f),
            status_word(f.status),
            escape_html(&f.verdict)
        ));
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Writes `experiments.md`, `experiments.json` and `report.html` into `out`; returns the markdown.
pub fn write(out: &Path, findings: &[Finding]) -> Result<String> {
    let md = markdown(findings);
    fsutil::write_atomic(&out.join("experiments.md"), md.as_bytes())?;
    let json = serde_json::to_string_pretty(findings).map_err(|e| Error::invalid("json", e.to_string()))?;
    fsutil::write_atomic(&out.join("experiments.json"), json.as_bytes())?;
    fsutil::write_atomic(&out.join("report.html"), html(out, findings)?.as_bytes())?;
    Ok(md)
}
