//! The study's pieces on made-up summaries (the whole study on tiny data is `tests/paper.rs`).

use super::*;
use dsrm_eval::summary::MethodInfo;
use dsrm_metrics::mean_ci95;

fn summary(rows: &[(&str, [f64; 3], [f64; 3])]) -> Summary {
    let mut s = Summary::default();
    for (name, len, ad) in rows {
        let m = s.rows.entry(name.to_string()).or_default().entry(MODE.into()).or_default();
        m.insert("Length".into(), mean_ci95(len));
        m.insert("R_tra".into(), mean_ci95(len));
        m.insert("AD_share".into(), mean_ci95(ad));
        m.insert("Gini".into(), mean_ci95(ad));
    }
    s
}

fn setting(file: &PaperFile) -> tables::Setting {
    tables::Setting {
        dataset: Dataset::KuaiRec,
        synthetic: true,
        label: "SYNTHETIC test".into(),
        seeds: vec![1, 2, 3],
        jobs: 1,
        file: file.clone(),
        headline_steps: Some(10),
    }
}

#[test]
fn the_shipped_study_parses_and_bad_files_name_line_and_column() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    assert_eq!(file.max_len, [30, 50]);
    assert_eq!(file.seeds.len(), 5);
    // Rows restricted to Max Len 30 are absent at 50.
    let at50: Vec<String> = file.methods_at(50, None).unwrap().into_iter().map(|m| m.name).collect();
    assert!(!at50.iter().any(|n| n == "dsrm-hrl-T") && at50.iter().any(|n| n == "dsrm-hrl"));
    assert!(!at50.iter().any(|n| n == "dsrm-hrl-sasrec"));
    // The paper's own variant: its DSRM over a SASRec encoder pretrained before it is frozen.
    let at30 = file.methods_at(30, None).unwrap();
    let sasrec = at30.iter().find(|m| m.name == "dsrm-hrl-sasrec").expect("the paper's variant row");
    let train = sasrec.train.as_ref().unwrap();
    assert!(matches!(train.tracker, dsrm_state::TrackerConfig::Sasrec(_)));
    let dsrm = train.dsrm.as_ref().unwrap();
    assert!(dsrm.tracker_pretrain.enabled() && dsrm.condition_window() == 0);
    let dsrm_denoise::DenoiserConfig::Ddpm(ddpm) = &dsrm.denoiser else { panic!("the paper's DDPM") };
    assert!(ddpm.mean_type == dsrm_denoise::MeanType::Eps && ddpm.clip_x0, "ε chain from noise, x̂_0 clipped");
    assert_eq!(env_at(50).resolve().max_turn, 50);
    assert_eq!(env_at(40).resolve().max_turn, 40);
    let err =
        format!("{:#}", PaperFile::parse(&PAPER_CONFIG.replace("headline = ", "headlines = "), "x.toml").unwrap_err());
    assert!(err.contains("x.toml") && err.contains("line"), "{err}");
    let err = format!("{:#}", PaperFile::parse(&PAPER_CONFIG.replace("\"hrl-bod\"]", "\"nope\"]"), "x").unwrap_err());
    assert!(err.contains("\"nope\" is named in the tables"), "{err}");
}

#[test]
fn verdicts_hold_reverse_or_stay_unshown_and_holm_counts_the_whole_table() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    let part = |len| Part { dir: PathBuf::from(format!("max-len-{len}")), max_len: len, threshold: None };
    let mut s = summary(&[
        ("dsrm-hrl", [20.0, 21.0, 22.0], [0.10, 0.11, 0.12]),
        ("flat-ppo", [10.0, 11.0, 12.0], [0.10, 0.12, 0.11]),
        ("random", [25.0, 26.0, 27.0], [0.30, 0.31, 0.32]),
        ("dsrm-ppo", [20.0, 23.0, 19.0], [0.1, 0.2, 0.3]),
        ("dsrm-hrl-T[steps=500]", [5.0, 6.0, 5.5], [0.1, 0.1, 0.1]),
        ("dnair", [10.0, 11.0, 12.0], [0.40, 0.41, 0.42]),
        ("dsrm-dnair", [12.0, 13.0, 14.0], [0.10, 0.11, 0.12]),
    ]);
    s.methods.insert(
        "dsrm-hrl-T[steps=500]".into(),
        MethodInfo {
            family: "dsrm-hrl-T".into(),
            params: [("train.dsrm.denoiser.schedule.steps".to_string(), serde_json::json!(500))].into(),
        },
    );
    let v = verdicts::judge(&setting(&file), &[(part(30), s)]);
    let find = |table: &str, metric: &str, worse: &str| {
        v.iter().find(|x| x.table == table && x.metric == metric && x.worse == worse).unwrap().verdict
    };
    assert_eq!(find("table2", "Length", "flat-ppo"), "holds");
    assert_eq!(find("table2", "Length", "random"), "reversed");
    assert_eq!(find("table2", "AD_share", "flat-ppo"), "not shown");
    assert_eq!(find("table2", "AD_share", "random"), "holds");
    assert_eq!(find("table3", "Length", "dsrm-ppo"), "not shown");
    assert_eq!(find("steps", "Length", "dsrm-hrl-T[steps=500]"), "holds");
    // DSRM on a baseline: its own family; the row with the stage is not one of Table 2's baselines.
    assert_eq!(find("dsrm-on", "AD_share", "dnair"), "holds");
    assert_eq!(find("dsrm-on", "Length", "dnair"), "not shown");
    assert!(!v.iter().any(|x| x.table == "table2" && x.worse == "dsrm-dnair"));
    // Holm: every adjusted p is at least its raw p, and a table's family is all its claims.
    assert!(v.iter().all(|x| x.p_holm >= x.p));
    assert_eq!(v.iter().filter(|x| x.table == "table2").count(), 3 * 3);
    // The same gap on one seed each is untestable, not "holds".
    let one = summary(&[("dsrm-hrl", [20.0; 3], [0.1; 3]), ("flat-ppo", [10.0; 3], [0.1; 3])]);
    let mut one = one;
    for m in one.rows.values_mut() {
        for c in m.get_mut(MODE).unwrap().values_mut() {
            c.n = 1;
        }
    }
    let v = verdicts::judge(&setting(&file), &[(part(30), one)]);
    assert!(v.iter().all(|x| x.verdict == "untestable"));
}

#[test]
fn tables_carry_compute_and_the_papers_figures_and_csv_splits_intervals() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let part = Part { dir: dir.path().join("max-len-30"), max_len: 30, threshold: None };
    let s = summary(&[
        ("dsrm-hrl", [20.0, 21.0, 22.0], [0.1, 0.2, 0.3]),
        ("random", [5.0, 6.0, 7.0], [0.1; 3]),
        ("hrl-tce", [5.0, 6.0, 7.0], [0.1; 3]),
        ("hrl-rce", [5.0, 6.0, 7.0], [0.1; 3]),
    ]);
    let mut compute = accounting::Compute::new();
    // What the history filters dropped from their states: T-CE nothing, R-CE one interaction in eight.
    for (row, dropped) in [("hrl-tce", 0.0), ("hrl-rce", 125.0)] {
        let mean = accounting::RunCompute { filter_read: 1000.0, filter_dropped: dropped, ..Default::default() };
        compute.insert(("max-len-30".into(), row.into()), accounting::RowCompute { mean, runs: 3, cpu_runs: 0 });
    }
    let mean = accounting::RunCompute {
        env_steps: 600_000.0,
        grad_updates: 4800.0,
        train_episodes: 1e5,
        train_s: 50.0,
        ..Default::default()
    };
    compute.insert(("max-len-30".into(), "dsrm-hrl".into()), accounting::RowCompute { mean, runs: 3, cpu_runs: 0 });
    let tables = tables::write_all(dir.path(), &setting(&file), &[(part, s)], &compute).unwrap();
    let t2 = &tables[0];
    let md = t2.markdown();
    assert!(md.contains("| 30 | dsrm-hrl | equal | 21.000 ± 2.484 |"), "{md}");
    assert!(md.contains("| 600000 | 4800 | 26.600 |"), "the paper's Len beside: {md}");
    assert!(md.contains("SYNTHETIC") && md.contains("SAC4IR"), "missing paper rows are listed: {md}");
    let csv = std::fs::read_to_string(dir.path().join("tables/table2.csv")).unwrap();
    assert!(csv.starts_with("Max Len,method,schedule,Len_mean,Len_ci95,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("30,random,—,6,2.48")), "{csv}");
    // Table 4 extrapolates to the paper's 20,000 episodes: 50 s / 100,000 episodes x 20,000 = 10 s.
    let t4 = tables.iter().find(|t| t.name == "table4").unwrap();
    assert!(
        t4.markdown().contains("| 30 | dsrm-hrl | equal | 100000 | 50 | 12000 | 10 | 0 | 15909 |"),
        "{}",
        t4.markdown()
    );
    // The study's cost: 3 runs x 50 s of training; the filters' runs carry no seconds.
    let cost = tables.iter().find(|t| t.name == "cost").unwrap().markdown();
    assert!(cost.contains("| max-len-30 | 30 | 9 | 0.040 | 0 | 0 | 0.040 |"), "{cost}");
    let t3 = tables[1].markdown();
    assert!(t3.contains("hrl-tce 0.00% (Max Len 30); hrl-rce 12.50% (Max Len 30)."), "{t3}");
    for name in ["table2", "table3", "steps", "table4", "cost"] {
        assert!(dir.path().join(format!("tables/{name}.md")).is_file(), "{name}");
    }
}

#[test]
fn a_row_with_an_encoder_of_its_own_is_labelled_in_the_tables() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let part = Part { dir: dir.path().join("max-len-30"), max_len: 30, threshold: None };
    let s = summary(&[("sac4ir", [20.0, 21.0, 22.0], [0.1, 0.2, 0.3]), ("dnair", [5.0, 6.0, 7.0], [0.1; 3])]);
    let tables = tables::write_all(dir.path(), &setting(&file), &[(part, s)], &accounting::Compute::new()).unwrap();
    let md = tables[0].markdown();
    assert!(md.contains("| 30 | sac4ir | equal; own attention encoder | 21.000"), "{md}");
    assert!(md.contains("| 30 | dnair | equal | 6.000"), "{md}");
}

#[test]
fn the_study_cost_sums_every_finished_run_of_every_part() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let part = |len: usize| Part { dir: dir.path().join(format!("max-len-{len}")), max_len: len, threshold: None };
    let s = || summary(&[("dsrm-hrl", [20.0, 21.0, 22.0], [0.1; 3]), ("flat-ppo", [20.0, 21.0, 22.0], [0.1; 3])]);
    let mut compute = accounting::Compute::new();
    // Per run: 1,800 s training + 600 s evaluation (+ a DSRM stage of 2,400 s for dsrm-hrl, trained by half
    // its runs and reused by the others from the cache: 1,200 s spent per run), 5 runs each.
    // CPU: 3,600 s per run where recorded — every Max Len 30 run, 2 of the 5 Max Len 50 runs.
    for (len, row, dsrm_s, cpu_runs) in
        [(30, "dsrm-hrl", 2400.0, 5), (30, "flat-ppo", 0.0, 5), (50, "flat-ppo", 0.0, 2)]
    {
        let (train_s, wall_s, cpu_s, dsrm_spent_s) = (1800.0, 2400.0, 3600.0, dsrm_s / 2.0);
        let mean = accounting::RunCompute { train_s, wall_s, dsrm_s, dsrm_spent_s, cpu_s, ..Default::default() };
        compute.insert((format!("max-len-{len}"), row.into()), accounting::RowCompute { mean, runs: 5, cpu_runs });
    }
    let tables = tables::write_all(dir.path(), &setting(&file), &[(part(30), s()), (part(50), s())], &compute).unwrap();
    let cost = tables.iter().find(|t| t.name == "cost").unwrap().markdown();
    // Max Len 30: 10 runs x (0.5 h + 1/6 h) + 5 x 1/3 h = 5 + 1.67 + 1.67 = 8.33 job-hours.
    assert!(cost.contains("| max-len-30 | 30 | 10 | 5 | 1.670 | 1.670 | 8.330 | 10 | 10 |"), "{cost}");
    assert!(cost.contains("| max-len-50 | 50 | 5 | 2.500 | 0.830 | 0 | 3.330 | 2 | 2 |"), "{cost}");
    assert!(cost.contains("| all | — | 15 | 7.500 | 2.500 | 1.670 | 11.670 | 12 | 12 |"), "{cost}");
    assert!(
        cost.contains("At 1 job at a time on as many cores, the finished runs alone take at least 11.67 h"),
        "{cost}"
    );
    assert!(cost.contains("12 of the 15 runs recorded them"), "{cost}");
    assert!(cost.contains("the timed runs need at least 12.00 h of elapsed time"), "{cost}");
}

#[test]
fn a_run_over_some_max_lens_keeps_the_others_in_the_study_file_unless_the_settings_changed() {
    let file = PaperFile::parse(PAPER_CONFIG, "built in").unwrap();
    let at = |lens: &[usize]| PaperFile { max_len: lens.to_vec(), ..file.clone() };
    // First run: the requested file as it is.
    assert_eq!(merge_saved(None, &at(&[30])), (at(&[30]), None));
    // `--max-len 50` on a folder run at [30, 50] or [30]: every length stays listed, in the saved order.
    assert_eq!(merge_saved(Some(at(&[30, 50])), &at(&[50])), (at(&[30, 50]), None));
    assert_eq!(merge_saved(Some(at(&[30])), &at(&[50])), (at(&[30, 50]), None));
    // Other settings: the new file replaces the saved one and says which lengths the tables no longer read.
    let other = PaperFile { seeds: vec![1], ..at(&[50]) };
    let (kept, note) = merge_saved(Some(at(&[30, 50])), &other);
    assert_eq!(kept, other);
    assert!(note.unwrap().contains("no longer read Max Len 30"));
    assert_eq!(merge_saved(Some(PaperFile { seeds: vec![1], ..at(&[30]) }), &at(&[30])).1, None, "nothing dropped");
}

#[test]
fn parts_can_be_chosen_by_name_among_those_of_the_lengths_run() {
    let part = |name: &str, max_len: usize| {
        (Part { dir: PathBuf::from("run").join(name), max_len, threshold: None }, None::<Vec<String>>)
    };
    let parts = [part("max-len-30", 30), part("max-len-50", 50), part("theta-p-0", 30), part("theta-p-2", 30)];
    let dirs = |names: &[&str]| names.iter().map(|n| PathBuf::from("run").join(n)).collect::<Vec<_>>();
    let chosen = |names: Option<&[&str]>, lens: &[usize]| {
        let names: Option<Vec<String>> = names.map(|n| n.iter().map(|s| s.to_string()).collect());
        chosen_parts(names.as_deref(), &parts, lens)
    };
    // Without --parts: every part of the lengths run.
    assert_eq!(chosen(None, &[30]).unwrap(), dirs(&["max-len-30", "theta-p-0", "theta-p-2"]));
    assert_eq!(chosen(None, &[30, 50]).unwrap().len(), 4);
    // The sensitivity alone, before its Max Len 30 part.
    assert_eq!(chosen(Some(&["theta-p-2", "theta-p-0"]), &[30, 50]).unwrap(), dirs(&["theta-p-2", "theta-p-0"]));
    // A name outside the run lists the parts it has.
    let err = format!("{:#}", chosen(Some(&["max-len-50"]), &[30]).unwrap_err());
    assert!(err.contains("\"max-len-50\" is not a part") && err.contains("max-len-30, theta-p-0, theta-p-2"), "{err}");
}
