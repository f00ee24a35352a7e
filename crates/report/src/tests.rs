//! End-to-end: fixture run directories written here (no training), the whole report built from them.

use super::*;
use dsrm_eval::summary::MethodInfo;
use dsrm_metrics::MeanCi;
use std::path::PathBuf;

fn ci(mean: f64, half_width: f64) -> MeanCi {
    MeanCi { mean, half_width, n: 3, std: half_width }
}

/// Methods: `hrl` swept over λ_f and denoiser steps, and `most-popular`. (R_tra, Gini) per method in NX_0:
/// hrl[λ=0,T=5] (20, 0.6), hrl[λ=1,T=5] (10, 0.2), hrl[λ=0,T=10] (18, 0.5), hrl[λ=1,T=10] (12, 0.3),
/// most-popular (15, 0.7). FB is the same shifted by +1 in R_tra.
fn summary() -> Summary {
    let rows = [
        ("hrl[lambda_f=0,steps=5]", 0.0, 5, 20.0, 0.6),
        ("hrl[lambda_f=1,steps=5]", 1.0, 5, 10.0, 0.2),
        ("hrl[lambda_f=0,steps=10]", 0.0, 10, 18.0, 0.5),
        ("hrl[lambda_f=1,steps=10]", 1.0, 10, 12.0, 0.3),
        ("most-popular", f64::NAN, 0, 15.0, 0.7),
    ];
    let mut s = Summary::default();
    for (method, lambda, steps, r, g) in rows {
        for (mode, shift) in [("NX_0", 0.0), ("FB", 1.0)] {
            let metrics = [
                ("R_tra", ci(r + shift, 1.0)),
                ("R_each", ci(r / 10.0, 0.1)),
                ("Gini", ci(g, 0.05)),
                ("Length", ci(10.0, 0.0)),
            ];
            s.rows
                .entry(method.into())
                .or_default()
                .insert(mode.into(), metrics.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        }
        if !lambda.is_nan() {
            let params = [
                ("train.algorithm.lambda_f".to_string(), serde_json::json!(lambda)),
                ("train.dsrm.denoiser.steps".to_string(), serde_json::json!(steps)),
            ];
            s.methods.insert(method.into(), MethodInfo { family: "hrl".into(), params: params.into() });
        }
    }
    s
}

fn fixture(with_loop: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("exp");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("results.json"), serde_json::to_string(&summary()).unwrap()).unwrap();
    std::fs::write(run.join("results_argmax.json"), serde_json::to_string(&summary()).unwrap()).unwrap();
    let provenance = serde_json::json!({
        "dataset": "kuairec", "synthetic": true, "seeds": [1, 2, 3], "selections": ["sampled", "argmax"], "preset": "dorl-paper"
    });
    std::fs::write(run.join("provenance.json"), provenance.to_string()).unwrap();
    if with_loop {
        for (m, base) in [("dsrm-hrl", 0.3), ("most-popular", 0.6)] {
            let path = rounds::rounds_path(&run, m);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut lines = Vec::new();
            for round in 0..4 {
                for seed in 1..=3u64 {
                    let gini = base + 0.05 * round as f64 + 0.01 * seed as f64;
                    let r = RoundRecord {
                        round,
                        seed,
                        gini,
                        long_tail_share: 1.0 - gini,
                        coverage: 0.5,
                        r_tra: 10.0,
                        ..Default::default()
                    };
                    lines.push(serde_json::to_string(&r).unwrap());
                }
            }
            std::fs::write(path, lines.join("\n") + "\n").unwrap();
        }
        let loop_provenance = serde_json::json!({ "dataset": "kuairec", "synthetic": true, "mode": "NX_10" });
        std::fs::write(run.join("loop/provenance.json"), loop_provenance.to_string()).unwrap();
    }
    (dir, run)
}

fn file<'a>(r: &'a Report, name: &str) -> &'a str {
    r.text(name).unwrap_or_else(|| panic!("no text file {name}"))
}

#[test]
fn a_full_run_gives_every_file_table_and_plot() {
    let (_dir, run) = fixture(true);
    let report = build(&run, &Options::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "report.html",
        "tables.md",
        "tables.tex",
        "pareto.json",
        "plots/pareto_sampled_NX_0_R_tra.svg",
        "plots/pareto_argmax_FB_R_each.svg",
        "plots/ablation_sampled_NX_0_Gini.svg",
        "plots/tsens_sampled_NX_0_train_dsrm_denoiser_steps_R_tra.svg",
        "plots/loop_Gini.svg",
        "plots/loop_Coverage.svg",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    assert!(report.notes.is_empty(), "{:?}", report.notes);

    // HTML: self-contained, with the tables, inline SVG and labels.
    let html = file(&report, "report.html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.matches("<svg").count() >= 20);
    assert!(html.contains("<td>hrl[lambda_f=0,steps=5]</td>") && html.contains("<td>20.000 ± 1.000</td>"));
    assert!(html.contains("kuairec — SYNTHETIC data · mode NX_0 · sampled actions · seeds 1–3 (n = 3)"));
    assert!(html.contains("hrl dominates most-popular"));

    // Every plot names data, mode (where there is one) and seeds.
    for (name, svg) in report.files.iter().filter(|(n, _)| n.ends_with(".svg")) {
        let svg = std::str::from_utf8(svg).unwrap();
        assert!(svg.contains("SYNTHETIC") && svg.contains("seeds 1–3"), "{name}");
        assert!(svg.contains("· mode "), "{name}");
    }

    // LaTeX: balanced environments, booktabs rules, escaped specials.
    let tex = file(&report, "tables.tex");
    for env in ["table", "tabular"] {
        let open = tex.matches(&format!("\\begin{{{env}}}")).count();
        assert!(open > 0 && open == tex.matches(&format!("\\end{{{env}}}")).count(), "{env}");
    }
    assert_eq!(tex.matches("\\toprule").count(), tex.matches("\\bottomrule").count());
    assert!(tex.contains("R\\_tra") && tex.contains("$\\pm$") && !tex.contains(" ± "));
    assert_eq!(tex.matches('{').count(), tex.matches('}').count());

    let md = file(&report, "tables.md");
    assert!(md.contains("| hrl[lambda_f=1,steps=10] | hrl | 12.000 ± 1.000 |"), "{md}");

    // Pareto numbers (sampled, NX_0, R_tra, reference (0,0)). hrl points (R_tra, 1 − Gini):
    // (20, .4), (10, .8), (18, .5), (12, .7) — all four non-dominated. Staircase from the right:
    // 20·.4 + 18·(.5−.4) + 12·(.7−.5) + 10·(.8−.7) = 8 + 1.8 + 2.4 + 1 = 13.2. most-popular (15, .3): 4.5,
    // dominated by (18, .5).
    let pareto: serde_json::Value = serde_json::from_str(file(&report, "pareto.json")).unwrap();
    let a = pareto["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["selection"] == "sampled" && a["mode"] == "NX_0" && a["utility"] == "R_tra")
        .unwrap();
    let hv = |fam: &str| {
        a["families"].as_array().unwrap().iter().find(|f| f["family"] == fam).unwrap()["hypervolume"].as_f64().unwrap()
    };
    assert!((hv("hrl") - 13.2).abs() < 1e-9, "{}", hv("hrl"));
    assert!((hv("most-popular") - 4.5).abs() < 1e-9);
    assert_eq!(a["families"][0]["front"].as_array().unwrap().len(), 4);
    assert_eq!(a["comparisons"][0]["verdict"], "hrl dominates most-popular");
    // (18, .5) ± (1, .05) lies entirely right of (15, .3) ± (1, .05): the intervals support the dominance.
    assert_eq!(a["comparisons"][0]["relation"], "a_dominates_b");
    assert_eq!(a["comparisons"][0]["relation_ci95"], "a_dominates_b");
    // Family sizes, the best single point (hrl's boxes 8, 8, 18·.5 = 9 and 12·.7 = 8.4) and the pooled
    // hypervolumes grouped by size.
    assert_eq!(a["families"][0]["points"], 4);
    assert_eq!(a["families"][0]["best_point"], "hrl[lambda_f=0,steps=10]");
    assert!((a["families"][0]["best_point_hypervolume"].as_f64().unwrap() - 9.0).abs() < 1e-9);
    assert!((a["families"][1]["best_point_hypervolume"].as_f64().unwrap() - 4.5).abs() < 1e-9);
    let groups: Vec<u64> =
        a["hypervolume_by_points"].as_array().unwrap().iter().map(|g| g["points"].as_u64().unwrap()).collect();
    assert_eq!(groups, [1, 4]);
    assert!(md.contains("| hrl | 4 | "), "{md}");
    assert_eq!(a["reference_point"], serde_json::json!([0.0, 0.0]));
    assert_eq!(a["reference"], "origin (0, 0)");

    // The loop table: first and last round of each method, mean over seeds 1..3 (+0.02).
    assert!(md.contains("| dsrm-hrl | 0 | 0.3200 ± "), "{md}");
    assert!(md.contains("| most-popular | 3 | 0.7700 ± "), "{md}");
    assert!(file(&report, "plots/loop_R_tra.svg").contains("kuairec — SYNTHETIC data · mode NX_10 · seeds 1–3"));
}

#[test]
fn missing_inputs_leave_notes_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let report = build(dir.path(), &Options::default()).unwrap();
    let html = file(&report, "report.html");
    assert!(html.contains("No results.json") && html.contains("feedback-loop curves omitted"));
    assert!(html.contains("Data set unknown"));
    assert_eq!(report.notes.len(), 2);

    // Results without a loop or a steps sweep: those two sections are notes.
    let (_d, run) = fixture(false);
    std::fs::write(
        run.join("results.json"),
        serde_json::to_string(&Summary { methods: Default::default(), ..summary() }).unwrap(),
    )
    .unwrap();
    std::fs::remove_file(run.join("results_argmax.json")).unwrap();
    let report = build(&run, &Options { reference: Reference::Nadir }).unwrap();
    assert_eq!(report.notes.len(), 2, "{:?}", report.notes);
    assert!(report.notes.iter().any(|n| n.contains("T-sensitivity omitted")));
    assert!(file(&report, "report.html").contains("Hypervolume reference: nadir"));
    assert!(!report.files.iter().any(|(n, _)| n.contains("argmax")));

    // A nonexistent run directory and a broken results file are errors that name the file.
    assert!(build(&dir.path().join("nope"), &Options::default()).unwrap_err().to_string().contains("not a directory"));
    std::fs::write(run.join("results.json"), "{\n  \"rows\": 3\n}").unwrap();
    let err = build(&run, &Options::default()).unwrap_err().to_string();
    assert!(err.contains("results.json:2:"), "{err}");
}

#[test]
fn experiment_toml_stands_in_for_provenance() {
    let (_d, run) = fixture(false);
    std::fs::remove_file(run.join("provenance.json")).unwrap();
    std::fs::remove_file(run.join("results_argmax.json")).unwrap();
    std::fs::write(
        run.join("experiment.toml"),
        "seeds = [4, 5]\n[data]\ndataset = \"coat\"\ndir = \"data/coat\"\n[eval]\nselections = [\"argmax\"]\n",
    )
    .unwrap();
    let info = inputs::run_info(&run).unwrap().unwrap();
    assert_eq!(info.data_label(), "coat");
    assert_eq!(info.seeds, vec![4, 5]);
    let report = build(&run, &Options::default()).unwrap();
    // results.json is the first selection named there.
    assert!(report.files.iter().any(|(n, _)| n == "plots/pareto_argmax_NX_0_R_tra.svg"));
    assert!(!file(&report, "report.html").contains("SYNTHETIC"));
}

#[test]
fn every_plot_is_written_as_svg_and_as_a_png_of_the_same_size() {
    let (_dir, run) = fixture(true);
    let report = build(&run, &Options::default()).unwrap();
    let svgs: Vec<&(String, Vec<u8>)> = report.files.iter().filter(|(n, _)| n.ends_with(".svg")).collect();
    let pngs = report.files.iter().filter(|(n, _)| n.ends_with(".png")).count();
    assert!(svgs.len() >= 20);
    assert_eq!(svgs.len(), pngs);
    for (name, svg) in svgs {
        let png_name = format!("{}.png", name.strip_suffix(".svg").unwrap());
        let png = &report.files.iter().find(|(n, _)| *n == png_name).unwrap_or_else(|| panic!("no {png_name}")).1;
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{png_name}");
        // IHDR, the first chunk: width and height big-endian at bytes 16..24.
        assert_eq!(&png[12..16], b"IHDR");
        let ihdr = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        let size = chart::svg_size(std::str::from_utf8(svg).unwrap());
        assert_eq!((ihdr(16), ihdr(20)), size, "{png_name}");
        let (w, h, _) = chart::decode_png(png);
        assert_eq!((w, h), size);
    }

    // Each chart names what it shows: title, subtitle (data set incl. SYNTHETIC, mode, selection, seeds) and
    // the legend's series.
    let pareto = file(&report, "plots/pareto_sampled_NX_0_R_tra.svg");
    for text in [
        ">\nPareto: R_tra vs 1 − Gini\n<",
        ">\nkuairec — SYNTHETIC data · mode NX_0 · sampled actions · seeds 1–3 (n = 3)\n<",
        ">\nhrl\n<",
        ">\nmost-popular\n<",
        ">\nR_tra (higher is better)\n<",
    ] {
        assert!(pareto.contains(text), "{text:?} not in the Pareto plot");
    }
    let curve = file(&report, "plots/loop_Gini.svg");
    for text in [
        ">\nGini per round (lower is fairer)\n<",
        ">\nkuairec — SYNTHETIC data · mode NX_10 · seeds 1–3 (n = 3)\n<",
        ">\ndsrm-hrl\n<",
        ">\nmost-popular\n<",
    ] {
        assert!(curve.contains(text), "{text:?} not in the loop plot");
    }
    let bars = file(&report, "plots/ablation_sampled_NX_0_Gini.svg");
    assert!(bars.contains(">\nhrl[lambda_f=1,steps=10]\n<") && bars.contains(">\nmost-popular\n<"));

    // The page inlines the SVG and names both files; Markdown links the PNG.
    assert!(file(&report, "report.html").contains("plots/loop_Gini.svg, plots/loop_Gini.png"));
    assert!(file(&report, "tables.md").contains("![loop_Gini](plots/loop_Gini.png)"));
}

#[test]
fn pooled_hypervolumes_are_ranked_only_among_families_of_the_same_size() {
    // 1-point families a (10 × 0.5 = 5), b (8 × 0.8 = 6.4), c (4 × 0.5 = 2); a 2-point sweep (9, 0.5) and
    // (5, 0.9), pooled 9 × 0.5 + 5 × 0.4 = 6.5, the largest of all, but alone in its group.
    let mut s = Summary::default();
    for (method, r, g) in
        [("a", 10.0, 0.5), ("b", 8.0, 0.2), ("c", 4.0, 0.5), ("s[x=1]", 9.0, 0.5), ("s[x=2]", 5.0, 0.1)]
    {
        let metrics: BTreeMap<String, MeanCi> =
            [("R_tra".to_string(), ci(r, 0.5)), ("Gini".to_string(), ci(g, 0.01))].into();
        s.rows.entry(method.into()).or_default().insert("NX_0".into(), metrics);
        let family = method.split('[').next().unwrap().to_string();
        s.methods.insert(method.into(), MethodInfo { family, params: BTreeMap::new() });
    }
    let a = frontier::analyse(&s, "NX_0", "R_tra", frontier::Reference::Origin).unwrap();
    let groups = hypervolume_groups(&a);
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0]["points"], 1);
    let ranked: Vec<&str> =
        groups[0]["ranking"].as_array().unwrap().iter().map(|f| f["family"].as_str().unwrap()).collect();
    assert_eq!(ranked, ["b", "a", "c"]);
    assert_eq!(groups[1]["points"], 2);
    assert_eq!(groups[1]["ranking"][0]["family"], "s");
    assert!((groups[1]["ranking"][0]["hypervolume"].as_f64().unwrap() - 6.5).abs() < 1e-9);
    // Per point, the sweep's best (9 × 0.5 = 4.5) is below b's 6.4 and a's 5.
    let sweep = a.families.iter().find(|f| f.family == "s").unwrap();
    assert!((sweep.best_point_hypervolume - 4.5).abs() < 1e-9);
}

/// An `abtest.json` as `dsrm abtest` writes it (the fields the section reads), alone in its directory.
#[test]
fn an_abtest_directory_gets_its_section_and_no_experiment_notes() {
    let dir = tempfile::tempdir().unwrap();
    let iv = |m: f64| serde_json::json!({"mean": m, "lo": m - 0.5, "hi": m + 0.5});
    let arm = |name: &str, m: f64| serde_json::json!({"arm": name, "n": 20, "mean": m, "lo": m - 0.5, "hi": m + 0.5});
    let record = serde_json::json!({
        "kind": "abtest", "dataset": "kuairec", "synthetic": true, "preset": "dorl-paper", "users": 40, "seed": 7,
        "k": 1,
        "arms": [
            {"name": "A", "run": "runs/a", "policy": "hrl", "selection": "sampled", "traffic_percent": 50.0, "sessions": 20},
            {"name": "B", "run": "runs/b", "policy": "a2c", "selection": "sampled", "traffic_percent": 50.0, "sessions": 20}
        ],
        "outcomes": [
            {"metric": "session_length", "label": "session length (items)", "better": "higher", "interval": "t",
             "arms": [arm("A", 3.0), arm("B", 4.25)], "difference": iv(1.25)}
        ],
        "sequential": [
            {"metric": "session_length", "primary": true, "p": 0.01, "alpha": 0.05, "decided_after": 31,
             "direction": "b_greater", "trace": [[10, 1.0], [20, 0.2], [40, 0.01]]}
        ],
        "decision": "B > A on session length (always-valid p = 0.0100 <= 0.05, first reached after 31 of 40 sessions)",
        "return_rate": null, "return_rate_note": "not measured: no returning users",
        "model_notes": ["one session per user"]
    });
    std::fs::write(dir.path().join("abtest.json"), record.to_string()).unwrap();
    let r = build(dir.path(), &Options::default()).unwrap();
    let md = file(&r, "tables.md");
    assert!(md.contains("A/B test"), "{md}");
    assert!(md.contains("4.2500 [3.7500, 4.7500]") && md.contains("1.2500 [0.7500, 1.7500]"), "{md}");
    assert!(md.contains("B > A on session length"), "{md}");
    assert!(md.contains("kuairec — SYNTHETIC data"), "{md}");
    assert!(r.notes.is_empty(), "no experiment notes for an A/B directory: {:?}", r.notes);
    assert!(r.files.iter().any(|(n, _)| n == "plots/abtest_p_value.svg"));
    // A malformed file is an error naming it, not a panic.
    std::fs::write(dir.path().join("abtest.json"), "{\"arms\": []}").unwrap();
    let e = build(dir.path(), &Options::default()).unwrap_err().to_string();
    assert!(e.contains("abtest.json"), "{e}");
}
