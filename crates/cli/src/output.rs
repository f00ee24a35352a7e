//! Writing results: atomic files, the run directory layout, terminal tables, progress bars.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, then rename, so a
/// killed run never leaves a truncated result that looks finished.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Pretty JSON, written atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

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

/// A spinner for work of unknown length.
pub fn spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A terminal table with the given header.
pub fn table(header: Vec<String>) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(header);
    t
}

/// Prints one mode of a seed summary as a terminal table (methods as rows, mean ± 95% CI per metric).
pub fn print_summary(summary: &dsrm_eval::summary::Summary, mode: &str, title: &str) {
    use dsrm_eval::summary::{format_ci, TABLE_METRICS};
    let mut header = vec!["method".to_string()];
    header.extend(TABLE_METRICS.iter().map(|m| m.to_string()));
    let mut t = table(header);
    for (method, modes) in &summary.rows {
        if let Some(metrics) = modes.get(mode) {
            let mut row = vec![method.clone()];
            row.extend(TABLE_METRICS.iter().map(|m| metrics.get(*m).map(format_ci).unwrap_or_default()));
            t.add_row(row);
        }
    }
    println!("{title} (mean ± 95% CI over seeds)\n{t}\n");
}
