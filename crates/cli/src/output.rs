//! What the CLI shows: progress bars for the study's [`Event`]s, terminal tables, summaries.

use dsrm_study::experiment::ResultTable;
use dsrm_study::Event;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Mutex;
use std::time::Duration;

/// A progress bar that draws only on a terminal (CI logs stay clean).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({elapsed_precise}, eta {eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Draws a study's progress: one bar (or spinner) per open piece of work, innermost last; notes go to stderr
/// above the bars.
#[derive(Default)]
pub struct Bars(Mutex<Vec<ProgressBar>>);

impl Bars {
    /// Shows one event.
    pub fn show(&self, event: Event) {
        let mut bars = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Begin { label, len: Some(len) } => bars.push(bar(len, &label)),
            Event::Begin { label, len: None } => {
                let pb = ProgressBar::new_spinner();
                pb.set_message(label);
                pb.enable_steady_tick(Duration::from_millis(120));
                bars.push(pb);
            }
            Event::End => bars.pop().iter().for_each(ProgressBar::finish_and_clear),
            Event::Note(line) => match bars.last() {
                Some(pb) => pb.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            },
            other => {
                let Some(pb) = bars.last() else { return };
                match other {
                    Event::Message(m) => pb.set_message(m),
                    Event::Advance(n) => pb.inc(n),
                    Event::Position(n) => pb.set_position(n),
                    Event::Length(n) => pb.set_length(n),
                    _ => unreachable!("handled above"),
                }
            }
        }
    }
}

/// A progress callback for the study that draws bars on stderr.
pub fn progress() -> impl Fn(Event) + Sync {
    let bars = Bars::default();
    move |event| bars.show(event)
}

/// A terminal table with the given header.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

/// Prints one mode of a seed summary as a terminal table (methods as rows, mean ± 95% CI per metric).
pub fn print_summary(table: &ResultTable) {
    use dsrm_eval::summary::{format_ci, TABLE_METRICS};
    let mut header = vec!["method"];
    header.extend(TABLE_METRICS.iter());
    let mut t = self::table(&header);
    for (method, modes) in &table.summary.rows {
        if let Some(metrics) = modes.get(&table.mode) {
            let mut row = vec![method.clone()];
            row.extend(TABLE_METRICS.iter().map(|m| metrics.get(*m).map(format_ci).unwrap_or_default()));
            t.add_row(row);
        }
    }
    println!("{} (mean ± 95% CI over seeds)\n{t}\n", table.title);
}

/// The cells of `header` read from a metric set's JSON fields, four decimals.
pub fn metric_cells(metrics: &impl serde::Serialize, header: &[&str]) -> Vec<String> {
    let m = serde_json::to_value(metrics).unwrap_or_default();
    header.iter().map(|k| m.get(*k).and_then(|v| v.as_f64()).map(|v| format!("{v:.4}")).unwrap_or_default()).collect()
}

/// One of `dsrm study paper`'s tables in the terminal.
pub fn print_paper_table(table: &dsrm_study::paper::tables::Table) {
    use dsrm_study::paper::tables::Cell;
    let header: Vec<&str> = table.header.iter().map(String::as_str).collect();
    let mut t = self::table(&header);
    for row in &table.rows {
        t.add_row(
            row.iter()
                .map(|c| match c {
                    Cell::Text(s) => s.clone(),
                    Cell::Ci(v) => format!("{v:.3}"),
                    Cell::Num(x) if x.fract() == 0.0 => format!("{x:.0}"),
                    Cell::Num(x) => format!("{x:.3}"),
                    Cell::Missing => "—".into(),
                })
                .collect::<Vec<_>>(),
        );
    }
    println!("{}\n{t}\n", table.title);
}
