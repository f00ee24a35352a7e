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

/// Draws a study's progress. On a terminal: one bar (or spinner) per open piece of work, innermost last, notes
/// above the bars. Elsewhere (a log file, CI), where bars draw nothing: [`LogLines`].
pub struct Bars(Mutex<Shown>);

enum Shown {
    Terminal(Vec<ProgressBar>),
    Log(LogLines),
}

impl Default for Bars {
    fn default() -> Self {
        use std::io::IsTerminal;
        Bars(Mutex::new(match std::io::stderr().is_terminal() {
            true => Shown::Terminal(Vec::new()),
            false => Shown::Log(LogLines::new(LOG_EVERY)),
        }))
    }
}

/// How often [`LogLines`] reports the open work off a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(30);

impl Bars {
    /// Shows one event.
    pub fn show(&self, event: Event) {
        let mut shown = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let bars = match &mut *shown {
            Shown::Terminal(bars) => bars,
            Shown::Log(lines) => {
                lines.on(event, std::time::Instant::now()).iter().for_each(|line| eprintln!("{line}"));
                return;
            }
        };
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

/// Progress as log lines, for a stderr that is not a terminal: notes as they come; a line when an outermost piece
/// of work starts and when it ends (with its wall time); and, at most every `every`, one line with every open piece
/// of work, outermost first (`label pos/len`, the innermost's status message last), so a job in the background
/// shows where it is.
pub struct LogLines {
    open: Vec<Open>,
    every: Duration,
    last: Option<std::time::Instant>,
}

/// One open piece of work.
struct Open {
    label: String,
    len: Option<u64>,
    pos: u64,
    message: Option<String>,
    started: std::time::Instant,
}

impl LogLines {
    /// Reports the open work at most every `every`.
    pub fn new(every: Duration) -> Self {
        Self { open: Vec::new(), every, last: None }
    }

    /// The lines to print for `event`, arriving at `now`.
    pub fn on(&mut self, event: Event, now: std::time::Instant) -> Vec<String> {
        let mut lines = Vec::new();
        match event {
            Event::Note(line) => return vec![line],
            Event::Begin { label, len } => {
                if self.open.is_empty() {
                    lines.push(format!("{label}: started"));
                    self.last = Some(now);
                }
                self.open.push(Open { label, len, pos: 0, message: None, started: now });
                return lines;
            }
            Event::End => {
                if let Some(done) = self.open.pop() {
                    if self.open.is_empty() {
                        lines.push(format!("{}: done in {}", done.label, clock(now - done.started)));
                    }
                }
                return lines;
            }
            Event::Message(m) => self.innermost(|o| o.message = Some(m)),
            Event::Advance(n) => self.innermost(|o| o.pos += n),
            Event::Position(n) => self.innermost(|o| o.pos = n),
            Event::Length(n) => self.innermost(|o| o.len = Some(n)),
        }
        let due = self.last.is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due && !self.open.is_empty() {
            self.last = Some(now);
            lines.push(self.status(now));
        }
        lines
    }

    fn innermost(&mut self, f: impl FnOnce(&mut Open)) {
        if let Some(open) = self.open.last_mut() {
            f(open);
        }
    }

    /// `[elapsed] outer 3/10 › inner 40/200 (message)`.
    fn status(&self, now: std::time::Instant) -> String {
        let levels: Vec<String> = self
            .open
            .iter()
            .map(|o| {
                let count = match o.len {
                    Some(len) => format!(" {}/{len}", o.pos),
                    None if o.pos > 0 => format!(" {}", o.pos),
                    None => String::new(),
                };
                let message = o.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default();
                format!("{}{count}{message}", o.label)
            })
            .collect();
        let elapsed = self.open.first().map(|o| now - o.started).unwrap_or_default();
        format!("[{}] {}", clock(elapsed), levels.join(" › "))
    }
}

/// `1h02m03s`, `4m05s`, `7s`.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn off_a_terminal_progress_is_a_line_at_start_end_and_at_most_every_interval() {
        let mut log = LogLines::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let begin = |label: &str, len| Event::Begin { label: label.into(), len };
        assert_eq!(log.on(begin("loop", Some(3)), at(0)), ["loop: started"]);
        assert!(log.on(Event::Advance(1), at(10)).is_empty(), "nothing before the interval");
        assert!(log.on(begin("world model", None), at(20)).is_empty(), "inner work starts silently");
        assert_eq!(log.on(Event::Note("a note".into()), at(21)), ["a note"], "notes pass through at once");
        assert_eq!(
            log.on(Event::Message("model 2 epoch 1".into()), at(31)),
            ["[31s] loop 1/3 › world model (model 2 epoch 1)"]
        );
        assert!(log.on(Event::Advance(4), at(45)).is_empty(), "one status line per interval");
        assert!(log.on(Event::End, at(50)).is_empty(), "inner work ends silently");
        assert_eq!(log.on(Event::Advance(1), at(61)), ["[1m01s] loop 2/3"]);
        assert_eq!(log.on(Event::End, at(3725)), ["loop: done in 1h02m05s"]);
        assert!(log.on(Event::Advance(1), at(4000)).is_empty(), "nothing open, nothing to say");
    }
}
