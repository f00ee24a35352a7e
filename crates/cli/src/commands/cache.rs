//! `dsrm cache list` and `dsrm cache prune [--unused-days N] [--dry-run]`: what the cache folder
//! (`DSRM_CACHE` or `./.cache/dsrm`) holds per kind, and removing what no run has used for N days
//! (`dsrm_study::cache_usage`).

use crate::output;
use anyhow::Result;
use clap::Subcommand;
use dsrm_study::cache_usage::{self, Entry, Kind};
use std::time::{Duration, SystemTime};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Entries, size and last use per kind (parsed data, world models, DSRM stages, generated sets).
    List,
    /// Remove the entries no run has used for N days; each is computed again, to the same bytes, when next needed.
    Prune {
        /// Remove what was last used more than this many days ago (0: everything but the folder's other files).
        #[arg(long, default_value_t = 14)]
        unused_days: u64,
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(command: CacheCommand) -> Result<()> {
    let root = dsrm_study::loading::cache_dir();
    let now = SystemTime::now();
    match command {
        CacheCommand::List => {
            let entries = cache_usage::inventory(&root)?;
            println!("{}", summary(&entries, now));
            eprintln!("cache folder: {} ({} in all)", root.display(), bytes(entries.iter().map(|e| e.bytes).sum()));
        }
        CacheCommand::Prune { unused_days, dry_run } => {
            let unused_for = Duration::from_secs(unused_days * 86_400);
            let stale = cache_usage::prune(&root, unused_for, now, dry_run)?;
            for entry in &stale {
                let paths: Vec<String> = entry.paths.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "{} {} ({}, last used {})",
                    verb(dry_run),
                    paths.join(" + "),
                    bytes(entry.bytes),
                    age(entry, now)
                );
            }
            let freed = bytes(stale.iter().map(|e| e.bytes).sum());
            let what = if dry_run { "would free" } else { "freed" };
            println!(
                "{} entries unused for more than {unused_days} days in {}: {what} {freed}",
                stale.len(),
                root.display()
            );
        }
    }
    Ok(())
}

fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would remove"
    } else {
        "removed"
    }
}

/// One row per kind present: entries, bytes, most and least recent use.
fn summary(entries: &[Entry], now: SystemTime) -> comfy_table::Table {
    let mut t = output::table(&["kind", "entries", "size", "last used (newest)", "last used (oldest)"]);
    let mut kinds: Vec<Kind> = entries.iter().map(|e| e.kind).collect();
    kinds.dedup();
    for kind in kinds {
        let of: Vec<&Entry> = entries.iter().filter(|e| e.kind == kind).collect();
        let newest = of.iter().max_by_key(|e| e.last_used).map_or(String::new(), |e| age(e, now));
        let oldest = of.iter().min_by_key(|e| e.last_used).map_or(String::new(), |e| age(e, now));
        t.add_row(vec![
            kind.name().to_string(),
            of.len().to_string(),
            bytes(of.iter().map(|e| e.bytes).sum()),
            newest,
            oldest,
        ]);
    }
    t
}

fn age(entry: &Entry, now: SystemTime) -> String {
    let s = now.duration_since(entry.last_used).unwrap_or_default().as_secs();
    match s {
        0..=3_599 => format!("{} min ago", s / 60),
        3_600..=172_799 => format!("{} h ago", s / 3_600),
        _ => format!("{} days ago", s / 86_400),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0..=1_048_575 => format!("{:.1} KB", n as f64 / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MB", n as f64 / 1_048_576.0),
        _ => format!("{:.2} GB", n as f64 / 1_073_741_824.0),
    }
}
