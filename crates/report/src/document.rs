//! The report as data (sections of tables, plots and text) and its three renderings: a self-contained
//! HTML page (inline SVG and CSS, nothing fetched), Markdown tables and LaTeX booktabs tables.

use crate::chart::Rendered;
use std::fmt::Write;

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A table; cells are plain text (`±` and `−` allowed, escaped per format).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub caption: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One piece of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Heading(String),
    Text(String),
    Table(Table),
    /// A chart: inlined as SVG in the HTML, written as `plots/<name>.svg` and `plots/<name>.png`.
    Plot {
        name: String,
        chart: Rendered,
    },
}

/// A top-level section; `notes` say what was left out and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Section {
    pub title: String,
    pub notes: Vec<String>,
    pub blocks: Vec<Block>,
}

/// The whole page.
pub fn html(title: &str, intro: &[String], sections: &[Section]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title),
        CSS,
        escape(title)
    );
    for line in intro {
        let _ = writeln!(out, "<p>{}</p>", escape(line));
    }
    out.push_str("<nav><ul>\n");
    for (i, s) in sections.iter().enumerate() {
        let _ = writeln!(out, "<li><a href=\"#s{i}\">{}</a></li>", escape(&s.title));
    }
    out.push_str("</ul></nav>\n");
    for (i, s) in sections.iter().enumerate() {
        let _ = writeln!(out, "<section id=\"s{i}\">\n<h2>{}</h2>", escape(&s.title));
        for n in &s.notes {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(n));
        }
        let mut in_plots = false;
        for b in &s.blocks {
            let is_plot = matches!(b, Block::Plot { .. });
            if is_plot != in_plots {
                out.push_str(if is_plot { "<div class=\"plots\">\n" } else { "</div>\n" });
                in_plots = is_plot;
            }
            match b {
                Block::Heading(h) => {
                    let _ = writeln!(out, "<h3>{}</h3>", escape(h));
                }
                Block::Text(t) => {
                    let _ = writeln!(out, "<p>{}</p>", escape(t));
                }
                Block::Table(t) => out.push_str(&html_table(t)),
                Block::Plot { name, chart } => {
                    let _ = writeln!(
                        out,
                        "<figure>{}<figcaption>plots/{1}.svg, plots/{1}.png</figcaption></figure>",
                        chart.svg.trim_end(),
                        escape(name)
                    );
                }
            }
        }
        if in_plots {
            out.push_str("</div>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "body{font-family:sans-serif;max-width:1500px;margin:1em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:13px}caption{text-align:left;font-weight:bold;padding:.3em 0}\
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}th:first-child,td:first-child{text-align:left}\
thead th{border-bottom:2px solid #444}.note{color:#8a4b00;background:#fff6e5;padding:.4em .6em}\
.plots{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:11px;color:#777}\
section{overflow-x:auto}";

fn html_table(t: &Table) -> String {
    let mut out = format!("<table>\n<caption>{}</caption>\n<thead><tr>", escape(&t.caption));
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// Every table (and note) of every section as Markdown.
pub fn markdown(title: &str, intro: &[String], sections: &[Section]) -> String {
    let mut out = format!("# {title}\n\n");
    for line in intro {
        let _ = writeln!(out, "{line}\n");
    }
    for s in sections {
        let _ = writeln!(out, "## {}\n", s.title);
        for n in &s.notes {
            let _ = writeln!(out, "> {n}\n");
        }
        for b in &s.blocks {
            match b {
                Block::Heading(h) => {
                    let _ = writeln!(out, "### {h}\n");
                }
                Block::Text(t) => {
                    let _ = writeln!(out, "{t}\n");
                }
                Block::Table(t) => {
                    let cell = |c: &String| c.replace('|', "\\|");
                    let _ = writeln!(out, "**{}**\n", t.caption);
                    let _ = writeln!(out, "| {} |", t.header.iter().map(cell).collect::<Vec<_>>().join(" | "));
                    let _ = writeln!(out, "|{}", "---|".repeat(t.header.len()));
                    for r in &t.rows {
                        let _ = writeln!(out, "| {} |", r.iter().map(cell).collect::<Vec<_>>().join(" | "));
                    }
                    out.push('\n');
                }
                Block::Plot { name, .. } => {
                    let _ = writeln!(out, "![{name}](plots/{name}.png)\n");
                }
            }
        }
    }
    out
}

/// Every table as a LaTeX `table` with booktabs rules (`\usepackage{booktabs}`).
pub fn latex(title: &str, sections: &[Section]) -> String {
    let mut out = format!("% {}\n% Generated by `dsrm report`; needs \\usepackage{{booktabs}}.\n\n", tex_escape(title));
    for s in sections {
        let _ = writeln!(out, "% --- {} ---\n", tex_escape(&s.title));
        for b in &s.blocks {
            let Block::Table(t) = b else { continue };
            let cols = format!("l{}", "r".repeat(t.header.len().saturating_sub(1)));
            let _ = writeln!(
                out,
                "\\begin{{table}}[t]\n\\centering\n\\scriptsize\n\\begin{{tabular}}{{{cols}}}\n\\toprule"
            );
            let _ = writeln!(
                out,
                "{} \\\\\n\\midrule",
                t.header.iter().map(|h| tex_escape(h)).collect::<Vec<_>>().join(" & ")
            );
            for r in &t.rows {
                let _ = writeln!(out, "{} \\\\", r.iter().map(|c| tex_escape(c)).collect::<Vec<_>>().join(" & "));
            }
            let _ = writeln!(
                out,
                "\\bottomrule\n\\end{{tabular}}\n\\caption{{{}}}\n\\end{{table}}\n",
                tex_escape(&t.caption)
            );
        }
    }
    out
}

/// Escapes LaTeX specials and writes `±`, `−`, `–`, `×`, `λ` in math mode.
pub fn tex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '−' => out.push_str("$-$"),
            '–' => out.push_str("--"),
            '—' => out.push_str("---"),
            '×' => out.push_str("$\\times$"),
            'λ' => out.push_str("$\\lambda$"),
            '≥' => out.push_str("$\\geq$"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tex_specials_are_escaped() {
        assert_eq!(tex_escape("R_tra 1.0 ± 0.1 & 50%"), "R\\_tra 1.0 $\\pm$ 0.1 \\& 50\\%");
        assert_eq!(tex_escape("1 − Gini"), "1 $-$ Gini");
    }
}
