//! One module per sub-command.

pub mod abtest;
pub mod bench;
pub mod cache;
pub mod data;
pub mod demo;
pub mod dsrm;
pub mod eval;
pub mod experiment;
pub mod feedback_loop;
pub mod report;
pub mod retune;
pub mod serve;
pub mod study;
pub mod train;

use crate::output;
use dsrm_sim::Preset;

/// `dsrm presets`.
pub fn presets() -> anyhow::Result<()> {
    let mut t = output::table(&[
        "preset",
        "N (num_leave_compute)",
        "θ (leave_threshold)",
        "max_turn",
        "legacy window",
        "random initial item",
        "popularity abandonment (N_p, θ_p, popular)",
    ]);
    for p in Preset::ALL {
        let s = p.settings();
        t.add_row(vec![
            p.name().to_string(),
            s.num_leave_compute.to_string(),
            s.leave_threshold.to_string(),
            s.max_turn.to_string(),
            s.legacy_window.to_string(),
            s.random_initial_item.to_string(),
            s.popularity_rule.map_or("off".into(), |r| {
                format!("{}, {}, top {}%", r.window, r.threshold, (r.popular_fraction * 100.0).round())
            }),
        ]);
    }
    println!("{t}");
    Ok(())
}
