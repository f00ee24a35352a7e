//! End-to-end runs of the `dsrm` binary on tiny synthetic data, checked against an independent
//! re-derivation of every trajectory straight from the CSV files (no library code of ours in the check).

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dsrm(args: &[&str], cwd: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dsrm")).args(args).current_dir(cwd).output().expect("run dsrm");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn synth_tiny(root: &Path, seed: &str) -> PathBuf {
    let dir = root.join(format!("synth-{seed}"));
    let (ok, _, err) = dsrm(&["data", "synth", "--size", "tiny", "--seed", seed, "--out", dir.to_str().unwrap()], root);
    assert!(ok, "synth failed: {err}");
    dir
}

/// The ground truth and categories, read with nothing but string splitting.
struct Truth {
    reward: HashMap<(u64, u64), f64>,
    tags: HashMap<u64, Vec<i64>>,
}

fn read_truth(dir: &Path) -> Truth {
    let text = std::fs::read_to_string(dir.join("small_matrix.csv")).unwrap();
    let mut raw = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let w: f64 = f[7].parse().unwrap_or(f64::NAN);
        raw.push((f[0].parse().unwrap(), f[1].parse().unwrap(), if w > 5.0 { 5.0 } else { w }));
    }
    let finite: Vec<f64> = raw.iter().map(|r| r.2).filter(|w: &f64| !w.is_nan()).collect();
    let mean = finite.iter().sum::<f64>() / finite.len() as f64;
    let reward = raw.into_iter().map(|(u, v, w)| ((u, v), if w.is_nan() { mean } else { w })).collect();
    let text = std::fs::read_to_string(dir.join("item_categories.csv")).unwrap();
    let mut tags = HashMap::new();
    for line in text.lines().skip(1) {
        let (id, feat) = line.split_once(',').unwrap();
        let list = feat.trim_matches('"').trim_matches(|c| c == '[' || c == ']');
        tags.insert(id.parse().unwrap(), list.split(',').map(|t| t.trim().parse().unwrap()).collect());
    }
    Truth { reward, tags }
}

/// Python's `h[t-N:t]` on a list of length t.
fn python_window(h: &[u64], n: usize) -> &[u64] {
    let t = h.len() as i64;
    let start = t - n as i64;
    let start = if start < 0 { (t + start).max(0) } else { start };
    &h[start as usize..]
}

fn quits(truth: &Truth, h: &[u64], item: u64, n: usize, theta: usize) -> bool {
    if h.is_empty() {
        return false;
    }
    let window = python_window(h, n);
    truth.tags[&item].iter().any(|c| window.iter().filter(|b| truth.tags[b].contains(c)).count() > theta)
}

/// The paper's popularity-aware abandonment: the popular videos, N_p and θ_p.
struct Popularity {
    popular: HashSet<u64>,
    window: usize,
    threshold: usize,
}

/// Re-derives rewards, quit points, lengths and the `quit` cause of every episode in `episodes.jsonl`.
fn check_episodes(
    run: &Path,
    truth: &Truth,
    n: usize,
    theta: usize,
    max_turn: usize,
    pop: Option<&Popularity>,
) -> usize {
    let text = std::fs::read_to_string(run.join("episodes.jsonl")).unwrap();
    let mut checked = 0;
    for line in text.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        let mode = e["mode"].as_str().unwrap();
        let user = e["user"].as_u64().unwrap();
        let items: Vec<u64> = e["items"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let rewards: Vec<f64> = e["rewards"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(items.len(), rewards.len());
        for (a, r) in items.iter().zip(&rewards) {
            let expected = truth.reward.get(&(user, *a)).copied().unwrap_or(0.0);
            assert_eq!(*r, expected, "reward of user {user} item {a}");
        }
        if mode != "FB" {
            let mut seen = items.clone();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), items.len(), "{mode} repeated an item");
        }
        if mode == "NX_10" {
            assert_eq!(items.len(), 10);
            assert!(e["quit"].is_null(), "a forced length has no quit cause: {line}");
        } else {
            // The episode ends exactly at the first step whose done flag is set, for the reason it names.
            for t in 0..items.len() {
                let category = quits(truth, &items[..t], items[t], n, theta);
                let popularity = pop.is_some_and(|p| {
                    let last = &items[t.saturating_sub(p.window)..t];
                    t > 0
                        && p.popular.contains(&items[t])
                        && last.iter().filter(|b| p.popular.contains(b)).count() > p.threshold
                });
                let done = category || popularity || t + 1 >= max_turn;
                assert_eq!(done, t + 1 == items.len(), "{mode} user {user} items {items:?}: done at step {t}");
                if done {
                    let cause = if category {
                        "category"
                    } else if popularity {
                        "popularity"
                    } else {
                        "max_len"
                    };
                    assert_eq!(e["quit"].as_str(), Some(cause), "{mode} user {user} items {items:?}");
                }
            }
        }
        checked += 1;
    }
    checked
}

#[test]
fn eval_trajectories_rederive_from_the_files_under_both_presets() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "11");
    let truth = read_truth(&data);
    for (preset, n, theta) in [("dorl-paper", 4, 0), ("easyrl4rec-paper", 9, 1)] {
        for policy in ["random", "category-cycling", "most-popular"] {
            let run = root.path().join(format!("run-{preset}-{policy}"));
            let (ok, stdout, err) = dsrm(
                &[
                    "eval",
                    "--data",
                    data.to_str().unwrap(),
                    "--dataset",
                    "kuairec",
                    "--preset",
                    preset,
                    "--policy",
                    policy,
                    "--episodes",
                    "30",
                    "--seed",
                    "1",
                    "--out",
                    run.to_str().unwrap(),
                ],
                root.path(),
            );
            assert!(ok, "eval failed: {err}");
            assert!(stdout.contains("SYNTHETIC"), "results on synthetic data must say so:\n{stdout}");
            assert_eq!(check_episodes(&run, &truth, n, theta, 30, None), 90);
            let metrics: Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
            for mode in ["FB", "NX_0", "NX_10"] {
                for key in
                    ["R_tra", "R_each", "Length", "CV", "CV_turn", "MCD", "Gini", "ExposureEntropy", "LongTailShare"]
                {
                    assert!(metrics[mode][key].is_number(), "metrics.json lacks {mode}.{key}");
                }
            }
            assert_eq!(metrics["NX_10"]["Length"].as_f64(), Some(10.0));
            let prov: Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("provenance.json")).unwrap()).unwrap();
            assert_eq!(prov["seeds"][0].as_u64(), Some(1));
            assert_eq!(prov["synthetic"].as_bool(), Some(true));
            let files = prov["data"]["files"].as_array().unwrap();
            assert!(files.iter().any(|f| f["path"].as_str().unwrap().ends_with("small_matrix.csv")
                && f["sha256"].as_str().unwrap().len() == 64));
        }
    }
}

/// Distinct (user, video) pairs per catalogue video in the training log (the big matrix), read with nothing but
/// string splitting.
fn training_pairs(dir: &Path) -> HashMap<u64, usize> {
    let catalogue: HashSet<u64> = std::fs::read_to_string(dir.join("small_matrix.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let mut pairs: HashSet<(u64, u64)> = HashSet::new();
    for line in std::fs::read_to_string(dir.join("big_matrix.csv")).unwrap().lines().skip(1) {
        let mut f = line.split(',');
        let (u, v): (u64, u64) = (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap());
        if catalogue.contains(&v) {
            pairs.insert((u, v));
        }
    }
    let mut counts: HashMap<u64, usize> = catalogue.iter().map(|&v| (v, 0)).collect();
    for (_, v) in pairs {
        *counts.get_mut(&v).unwrap() += 1;
    }
    counts
}

#[test]
fn eval_under_the_paper_preset_rederives_both_quit_rules_and_the_groups() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "12");
    let truth = read_truth(&data);
    let counts = training_pairs(&data);
    let mut causes: HashMap<String, usize> = HashMap::new();
    for (preset, max_turn) in [("dsrm-hrl-paper", 30), ("dsrm-hrl-paper-50", 50)] {
        for policy in ["random", "most-popular"] {
            let run = root.path().join(format!("run-{preset}-{policy}"));
            let (ok, _, err) = dsrm(
                &[
                    "eval",
                    "--data",
                    data.to_str().unwrap(),
                    "--dataset",
                    "kuairec",
                    "--preset",
                    preset,
                    "--policy",
                    policy,
                    "--episodes",
                    "40",
                    "--seed",
                    "2",
                    "--out",
                    run.to_str().unwrap(),
                ],
                root.path(),
            );
            assert!(ok, "eval failed: {err}");
            // item_groups.csv: every catalogue video once; the popular group is the top 20% by distinct training
            // pairs (every popular video has at least the pairs of every long-tail one).
            let groups = std::fs::read_to_string(run.join("item_groups.csv")).unwrap();
            let mut lines = groups.lines();
            assert_eq!(lines.next(), Some("video_id,group"));
            let rows: Vec<(u64, String)> = lines
                .map(|l| {
                    let (v, g) = l.split_once(',').unwrap();
                    (v.parse().unwrap(), g.to_string())
                })
                .collect();
            assert_eq!(rows.len(), counts.len());
            let popular: HashSet<u64> = rows.iter().filter(|(_, g)| g == "popular").map(|(v, _)| *v).collect();
            assert!(rows.iter().all(|(v, g)| counts.contains_key(v) && (g == "popular" || g == "long_tail")));
            assert_eq!(popular.len(), (counts.len() as f64 * 0.2).ceil() as usize);
            let min_popular = popular.iter().map(|v| counts[v]).min().unwrap();
            let max_tail = counts.iter().filter(|(v, _)| !popular.contains(v)).map(|(_, &c)| c).max().unwrap();
            assert!(min_popular >= max_tail, "popular {min_popular} pairs vs long tail {max_tail}");
            // provenance.json names the rule; every episode's end is re-derived under both rules.
            let prov: Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("provenance.json")).unwrap()).unwrap();
            let rule = &prov["env_settings"]["popularity_rule"];
            assert_eq!((rule["window"].as_u64(), rule["threshold"].as_u64()), (Some(4), Some(1)), "{prov}");
            assert_eq!(rule["popular_fraction"].as_f64(), Some(0.2));
            let pop = Popularity { popular, window: 4, threshold: 1 };
            assert_eq!(check_episodes(&run, &truth, 4, 0, max_turn, Some(&pop)), 120);
            for line in std::fs::read_to_string(run.join("episodes.jsonl")).unwrap().lines() {
                let e: Value = serde_json::from_str(line).unwrap();
                *causes.entry(e["quit"].as_str().unwrap_or("null").to_string()).or_default() += 1;
            }
            let metrics: Value =
                serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
            for mode in ["FB", "NX_0", "NX_10"] {
                for key in ["Length", "R_tra", "R_each", "AD_share", "AD_item", "Gini"] {
                    assert!(metrics[mode][key].is_number(), "metrics.json lacks {mode}.{key}");
                }
            }
        }
    }
    // Both rules, and the null of NX_10, actually occur.
    for cause in ["category", "popularity", "null"] {
        assert!(causes.get(cause).copied().unwrap_or(0) > 0, "no episode ended by {cause}: {causes:?}");
    }
}

#[test]
fn same_seed_same_metrics_different_seed_different_users() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "5");
    let run = |name: &str, seed: &str| {
        let out = root.path().join(name);
        let (ok, _, err) = dsrm(
            &[
                "eval",
                "--data",
                data.to_str().unwrap(),
                "--policy",
                "ucb",
                "--episodes",
                "20",
                "--seed",
                seed,
                "--out",
                out.to_str().unwrap(),
            ],
            root.path(),
        );
        assert!(ok, "{err}");
        (
            std::fs::read_to_string(out.join("metrics.json")).unwrap(),
            std::fs::read_to_string(out.join("episodes.jsonl")).unwrap(),
        )
    };
    let a = run("a", "3");
    let b = run("b", "3");
    let c = run("c", "4");
    assert_eq!(a, b);
    assert_ne!(a.1, c.1);
}

#[test]
fn unknown_config_keys_and_bad_inputs_are_clear_errors() {
    let root = tempfile::tempdir().unwrap();
    let cfg = root.path().join("bad.toml");
    std::fs::write(&cfg, "[env]\npreset = \"dorl-paper\"\nmax_turns = 30\n").unwrap();
    let (ok, _, err) = dsrm(&["eval", "--config", cfg.to_str().unwrap(), "--out", "x"], root.path());
    assert!(!ok);
    assert!(err.contains("max_turns") && err.contains("bad.toml"), "{err}");

    let data = synth_tiny(root.path(), "2");
    let small = data.join("small_matrix.csv");
    let mut text = std::fs::read_to_string(&small).unwrap();
    text = text.replacen("\n", "\n1,2,x,4,2020-07-05 00:00:00.000,20200705,1593878400.000,0.5\n", 1);
    std::fs::write(&small, text).unwrap();
    let (ok, stdout, err) =
        dsrm(&["data", "validate", "--dataset", "kuairec", "--dir", data.to_str().unwrap()], root.path());
    assert!(!ok);
    let all = format!("{stdout}{err}");
    assert!(all.contains("small_matrix.csv") && all.contains(":2") && all.contains("play_duration"), "{all}");
}

#[test]
fn demo_runs_every_baseline_over_seeds_and_resumes() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "9");
    let out = root.path().join("demo");
    let args =
        ["demo", "--data", data.to_str().unwrap(), "--seeds", "2", "--episodes", "10", "--out", out.to_str().unwrap()];
    let (ok, stdout, err) = dsrm(&args, root.path());
    assert!(ok, "{err}");
    for policy in ["random", "most-popular", "category-cycling", "epsilon-greedy", "ucb", "mf-greedy"] {
        assert!(stdout.contains(policy), "{policy} missing from the table:\n{stdout}");
        assert!(out.join(policy).join("seed-2").join("metrics.json").exists());
    }
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6 * 3);
    // A second run finds every job finished and rewrites the same summary.
    let (ok, _, err) = dsrm(&args, root.path());
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(out.join("summary.csv")).unwrap(), csv);
}

#[test]
fn experiment_runs_heuristics_and_rl_over_seeds_and_resumes() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "4");
    let cfg = root.path().join("experiment.toml");
    std::fs::write(
        &cfg,
        format!(
            "seeds = [1, 2]\n[data]\ndataset = \"kuairec\"\ndir = {:?}\n[eval]\nepisodes = 5\n[world_model]\nreward = \"mf\"\n\
             [[methods]]\nname = \"random\"\nheuristic = \"random\"\n\
             [[methods]]\nname = \"a2c\"\n[methods.train]\nepochs = 1\nsteps_per_epoch = 300\nparallel_envs = 10\nthreads = 1\n\
             [methods.train.algorithm]\nkind = \"a2c\"\nbatch_size = 64\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = root.path().join("exp");
    let args = ["experiment", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"];
    // A subset first: only its rows (nothing else has run); an unknown name is refused.
    let subset = [&args[..], &["--methods", "a2c"]].concat();
    let (ok, _, err) = dsrm(&subset, root.path());
    assert!(ok, "{err}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.lines().skip(1).all(|l| l.starts_with("a2c,")), "{csv}");
    let (ok, _, err) = dsrm(&[&args[..], &["--methods", "a2c,nope"]].concat(), root.path());
    assert!(!ok && err.contains("\"nope\""), "{err}");
    let (ok, stdout, err) = dsrm(&args, root.path());
    assert!(ok, "{err}");
    assert!(stdout.contains("a2c") && stdout.contains("random"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",2")), "every row aggregates 2 seeds:\n{csv}");
    assert!(out.join("a2c").join("seed-2").join("checkpoint.bin").exists());
    // Rerunning reads the finished runs without restarting them and reproduces the same table.
    let log = out.join("a2c").join("seed-1").join("train.log");
    let logged = std::fs::read_to_string(&log).unwrap();
    let (ok, _, err) = dsrm(&args, root.path());
    assert!(ok, "{err}");
    assert!(err.contains("2 of 2 runs already finished"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), logged, "a finished run was restarted");
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap(), csv);
    // A subset trains only its methods but keeps the other rows that ran: the same table, not its a2c rows alone.
    let (ok, _, err) = dsrm(&[&args[..], &["--methods", "random"]].concat(), root.path());
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap(), csv);
    // A changed budget is not finished: the runs resume and train the extra epoch.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("epochs = 1", "epochs = 2");
    std::fs::write(&cfg, text).unwrap();
    let (ok, _, err) = dsrm(&[&args[..], &["--methods", "a2c"]].concat(), root.path());
    assert!(ok, "{err}");
    assert!(!err.contains("already finished"), "{err}");
    let summary = std::fs::read_to_string(out.join("a2c").join("seed-2").join("summary.json")).unwrap();
    assert!(summary.contains("\"epochs\": 2"), "{summary}");
    // Changed settings are named up front, before any child starts, and nothing is overwritten.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("batch_size = 64", "batch_size = 32");
    std::fs::write(&cfg, text).unwrap();
    let (ok, _, err) = dsrm(&[&args[..], &["--methods", "a2c"]].concat(), root.path());
    assert!(!ok && err.contains("2 run folder(s)") && err.contains("seed-1"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("a2c").join("seed-2").join("summary.json")).unwrap(), summary);
    // A finished run made by other code is neither read nor resumed: named up front, like a changed config.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("batch_size = 32", "batch_size = 64");
    std::fs::write(&cfg, text).unwrap();
    let version = out.join("a2c").join("seed-1").join("code_version");
    std::fs::write(&version, "0123456789abcdef\n").unwrap();
    let (ok, _, err) = dsrm(&[&args[..], &["--methods", "a2c"]].concat(), root.path());
    assert!(
        !ok && err.contains("1 run folder(s)") && err.contains("other code") && err.contains("0123456789abcdef"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(out.join("a2c").join("seed-2").join("summary.json")).unwrap(), summary);
}

#[test]
fn a_trained_world_model_is_reused_from_the_cache_by_later_runs() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "6");
    let cfg = root.path().join("train.toml");
    let write = |reward: &str, seed: u64| {
        let text = format!(
            "[data]\ndataset = \"kuairec\"\ndir = {:?}\n[eval]\nepisodes = 5\n\
             [world_model]\nreward = \"{reward}\"\nseed = {seed}\n[world_model.ensemble]\nn_models = 2\n\
             [world_model.ensemble.model]\nepochs = 1\n\
             [train]\nepochs = 1\nsteps_per_epoch = 200\nparallel_envs = 10\nthreads = 1\n[train.algorithm]\nkind = \"a2c\"\n",
            data.to_str().unwrap()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    let train = |out: &str| dsrm(&["train", "--config", cfg.to_str().unwrap(), "--out", out], root.path());
    write("mbpo", 0);
    let (ok, _, first) = train("a");
    assert!(ok && !first.contains("reusing"), "{first}");
    // Another penalty on the same ensemble settings and seed: reused, byte-identical.
    write("dorl", 0);
    let (ok, _, second) = train("b");
    assert!(ok && second.contains("reusing the user-model ensemble"), "{second}");
    let bytes = |run: &str| std::fs::read(root.path().join(run).join("world_model.bin")).unwrap();
    assert_eq!(bytes("a"), bytes("b"));
    assert_eq!(std::fs::read_dir(root.path().join(".cache/dsrm/world-models")).unwrap().count(), 1);
    // Another seed is another ensemble.
    write("mbpo", 1);
    let (ok, _, third) = train("c");
    assert!(ok && !third.contains("reusing"), "{third}");
    assert_ne!(bytes("a"), bytes("c"));
}

/// `root/train.toml`: a one-epoch A2C run on `data` with the MF world model (the caches' tests).
fn short_mf_a2c_config(root: &Path, data: &Path) -> PathBuf {
    let cfg = root.join("train.toml");
    let text = format!(
        "[data]\ndataset = \"kuairec\"\ndir = {:?}\n[eval]\nepisodes = 5\n[world_model]\nreward = \"mf\"\n\
         [train]\nepochs = 1\nsteps_per_epoch = 200\nparallel_envs = 10\nthreads = 1\n[train.algorithm]\nkind = \"a2c\"\n",
        data.to_str().unwrap()
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn the_mf_world_model_is_fitted_once_and_later_runs_load_it_with_the_same_results() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "8");
    let cfg = short_mf_a2c_config(root.path(), &data);
    let train = |out: &str| dsrm(&["train", "--config", cfg.to_str().unwrap(), "--out", out], root.path());
    let (ok, _, first) = train("a");
    assert!(ok && !first.contains("reusing"), "{first}");
    let (ok, _, second) = train("b");
    assert!(ok && second.contains("reusing the MF world model"), "{second}");
    let metrics = |run: &str| std::fs::read(root.path().join(run).join("metrics.json")).unwrap();
    assert_eq!(metrics("a"), metrics("b"));
    let cached: Vec<_> = std::fs::read_dir(root.path().join(".cache/dsrm/world-models")).unwrap().collect();
    assert_eq!(cached.len(), 1);
}

#[test]
fn cache_prune_removes_what_no_run_used_lately_and_a_later_run_recomputes_it_to_the_same_results() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "10");
    let cfg = short_mf_a2c_config(root.path(), &data);
    let train = |out: &str| dsrm(&["train", "--config", cfg.to_str().unwrap(), "--out", out], root.path());
    let cache = root.path().join(".cache/dsrm");
    let entries = || -> Vec<PathBuf> {
        ["data", "world-models"]
            .iter()
            .flat_map(|d| std::fs::read_dir(cache.join(d)).unwrap().map(|e| e.unwrap().path()))
            .collect()
    };
    let age_all = || {
        for path in entries() {
            let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
            std::fs::File::open(&path).unwrap().set_modified(month_ago).unwrap();
        }
    };
    let (ok, _, err) = train("a");
    assert!(ok, "{err}");
    assert_eq!(entries().len(), 2, "the parsed data and the MF world model: {:?}", entries());
    // A run that reads both marks them used: nothing is stale.
    age_all();
    let (ok, _, second) = train("b");
    assert!(ok && second.contains("reusing the MF world model"), "{second}");
    let (ok, out, err) = dsrm(&["cache", "prune", "--unused-days", "7"], root.path());
    assert!(ok && out.starts_with("0 entries"), "{out}{err}");
    assert_eq!(entries().len(), 2);
    // Unused for a month: listed, then removed.
    age_all();
    let (ok, out, _) = dsrm(&["cache", "list"], root.path());
    assert!(ok && out.contains("parsed data") && out.contains("world models") && out.contains("30 days ago"), "{out}");
    let (ok, out, _) = dsrm(&["cache", "prune", "--unused-days", "7", "--dry-run"], root.path());
    assert!(ok && out.starts_with("2 entries") && out.contains("would free"), "{out}");
    assert_eq!(entries().len(), 2, "a dry run removes nothing");
    let (ok, out, err) = dsrm(&["cache", "prune", "--unused-days", "7"], root.path());
    assert!(ok && out.starts_with("2 entries") && err.matches("removed").count() == 2, "{out}{err}");
    assert!(entries().is_empty());
    // The next run computes both again, to the same results.
    let (ok, _, third) = train("c");
    assert!(ok && !third.contains("reusing"), "{third}");
    let metrics = |run: &str| std::fs::read(root.path().join(run).join("metrics.json")).unwrap();
    assert_eq!(metrics("a"), metrics("c"));
}

#[test]
fn a_dsrm_stage_is_trained_once_and_runs_on_the_same_inputs_load_it_with_the_same_results() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "9");
    let cfg = root.path().join("train.toml");
    let write = |algorithm: &str, stage_seed: u64| {
        let text = format!(
            "[data]\ndataset = \"kuairec\"\ndir = {:?}\n[eval]\nepisodes = 5\n[world_model]\nreward = \"mf\"\n\
             [train]\nepochs = 1\nsteps_per_epoch = 200\nparallel_envs = 10\nthreads = 1\n\
             [train.algorithm]\nkind = \"{algorithm}\"\nbatch_size = 64\n\
             [train.dsrm]\nmax_states = 500\nseed = {stage_seed}\n[train.dsrm.denoiser]\nkind = \"ddpm\"\n\
             [train.dsrm.denoiser.train]\nmax_epochs = 2\n",
            data.to_str().unwrap()
        );
        std::fs::write(&cfg, text).unwrap();
    };
    let train = |out: &str| dsrm(&["train", "--config", cfg.to_str().unwrap(), "--out", out], root.path());
    let file = |run: &str, name: &str| std::fs::read(root.path().join(run).join(name)).unwrap();
    write("a2c", 0);
    let (ok, _, first) = train("a");
    assert!(ok && !first.contains("reusing the DSRM stage"), "{first}");
    // The same inputs: the stage is loaded, and the run is the one that trains its own, byte for byte.
    let (ok, _, second) = train("b");
    assert!(ok && second.contains("reusing the DSRM stage"), "{second}");
    assert_eq!(file("a", "dsrm.bin"), file("b", "dsrm.bin"));
    assert_eq!(file("a", "metrics.json"), file("b", "metrics.json"));
    let timing = |run: &str| serde_json::from_slice::<serde_json::Value>(&file(run, "dsrm_timing.json")).unwrap();
    let (a, b) = (timing("a"), timing("b"));
    assert!(a.get("reused_from").is_none() && b["reused_from"].is_string(), "{b}");
    assert_eq!((&a["seconds"], &a["grad_updates"]), (&b["seconds"], &b["grad_updates"]));
    // Another learner on the same stage reuses it; another stage seed is another stage.
    write("ppo", 0);
    let (ok, _, third) = train("c");
    assert!(ok && third.contains("reusing the DSRM stage"), "{third}");
    write("a2c", 1);
    let (ok, _, fourth) = train("d");
    assert!(ok && !fourth.contains("reusing the DSRM stage"), "{fourth}");
    assert_ne!(file("a", "dsrm.bin"), file("d", "dsrm.bin"));
    let cached = std::fs::read_dir(root.path().join(".cache/dsrm/dsrm-stages")).unwrap().count();
    assert_eq!(cached, 4, "two stages, each with its training record");
}

#[test]
fn study_paper_writes_its_tables_with_the_compute_of_every_row_and_resumes() {
    let root = tempfile::tempdir().unwrap();
    let data = synth_tiny(root.path(), "6");
    let cfg = root.path().join("paper.toml");
    let learned = "[methods.train]\nparallel_envs = 10\nthreads = 1\n[methods.train.algorithm]\nhidden = [16]\n";
    std::fs::write(
        &cfg,
        format!(
            "seeds = [1, 2]\nmax_len = [30]\nheadline = \"hrl\"\nablation = [\"hrl\", \"flat-ppo\"]\nsteps_family = \"hrl\"\n\
             [data]\ndataset = \"kuairec\"\ndir = {:?}\n[eval]\nepisodes = 5\nselections = [\"sampled\"]\n\
             [budget]\nenv_steps = 600\nepochs = 1\nupdates_per_1k_steps = 20.0\nbatch_size = 64\npaper_episodes = 20000\n\
             [sensitivity]\nthresholds = [0]\nmethods = [\"random\"]\n[world_model]\nreward = \"mf\"\n\
             [[methods]]\nname = \"random\"\nheuristic = \"random\"\n\
             [[methods]]\nname = \"flat-ppo\"\n{}kind = \"ppo\"\n\
             [[methods]]\nname = \"hrl\"\n{}kind = \"hrl\"\n",
            data.to_str().unwrap(),
            learned,
            learned
        ),
    )
    .unwrap();
    let out = root.path().join("paper");
    let args = ["study", "paper", "--config", cfg.to_str().unwrap(), "--out", out.to_str().unwrap(), "--jobs", "2"];
    let (ok, stdout, err) = dsrm(&args, root.path());
    assert!(ok, "{err}");
    assert!(stdout.contains("Table 2") && stdout.contains("claims tested"), "{stdout}");
    for f in ["tables/table2.csv", "tables/table3.md", "tables/table4.csv", "tables/sensitivity.md", "verdicts.csv"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert!(
        out.join("plots/max-len-30-len-vs-ad.png").is_file() && out.join("max-len-30/report/report.html").is_file()
    );
    // Table 2: every row, with env steps and updates for the learned ones, equal within one collection.
    let csv = std::fs::read_to_string(out.join("tables/table2.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: HashMap<String, Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<String> = l.split(',').map(String::from).collect();
            (cells[1].clone(), cells)
        })
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows["random"][col("env steps")].is_empty(), "heuristics train nothing: {csv}");
    let num = |row: &str, c: &str| rows[row][col(c)].parse::<f64>().unwrap();
    for row in ["flat-ppo", "hrl"] {
        let steps = num(row, "env steps");
        assert!((600.0..800.0).contains(&steps), "{row}: {steps} steps");
        // 20 updates per 1,000 steps (HRL: 10 at each level), paced whatever the session lengths.
        assert!((num(row, "updates") - steps * 0.02).abs() <= 2.0, "{row}: {csv}");
        assert!(rows[row][col("schedule")] == "equal");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("SYNTHETIC") && report.contains("Verdicts"), "{report}");
    // A rerun reads every finished run; --tables-only rebuilds the same tables without training.
    let (ok, _, err) = dsrm(&args, root.path());
    assert!(ok && err.contains("4 of 4 runs already finished"), "{err}");
    std::fs::remove_dir_all(out.join("tables")).unwrap();
    let (ok, _, err) = dsrm(&["study", "paper", "--tables-only", "--out", out.to_str().unwrap()], root.path());
    assert!(ok, "{err}");
    assert_eq!(std::fs::read_to_string(out.join("tables/table2.csv")).unwrap(), csv);
    // --parts trains only the parts it names (here the θ_p part, already finished) and still tables them all.
    let (ok, _, err) = dsrm(&[&args[..], &["--parts", "theta-p-0"]].concat(), root.path());
    assert!(ok && err.contains("study paper: theta-p-0") && !err.contains("study paper: max-len-30"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("tables/table2.csv")).unwrap(), csv);
    let (ok, _, err) = dsrm(&[&args[..], &["--parts", "max-len-40"]].concat(), root.path());
    assert!(!ok && err.contains("its parts: max-len-30, theta-p-0"), "{err}");
    // A part still training (HRL's seed 2 not finished): --tables-only reads the finished runs and says so in
    // the tables' report, the verdicts and on the terminal, whether or not a `dsrm experiment --methods` run
    // over some of its methods left a results.json there.
    std::fs::remove_file(out.join("max-len-30/hrl/seed-2/summary.json")).unwrap();
    for results_json in [true, false] {
        if !results_json {
            std::fs::remove_file(out.join("max-len-30/results.json")).unwrap();
        }
        let (ok, _, err) = dsrm(&["study", "paper", "--tables-only", "--out", out.to_str().unwrap()], root.path());
        assert!(ok, "{err}");
        assert!(err.contains("PARTIAL: part max-len-30") && err.contains("the 5 of 6 runs"), "{results_json}: {err}");
    }
    for file in ["report.md", "verdicts.md"] {
        assert!(std::fs::read_to_string(out.join(file)).unwrap().contains("PARTIAL"), "{file}");
    }
    let partial = std::fs::read_to_string(out.join("tables/table2.csv")).unwrap();
    let hrl = partial.lines().find(|l| l.split(',').nth(1) == Some("hrl")).expect("the hrl row, from seed 1");
    assert_ne!(partial, csv, "hrl's row now has one seed: {hrl}");
    // A bad study file names itself and the line.
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("headline", "head_line")).unwrap();
    let (ok, _, err) = dsrm(&args, root.path());
    assert!(!ok && err.contains("paper.toml") && err.contains("line"), "{err}");
}
