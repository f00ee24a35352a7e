//! `dsrm abtest` end to end: two tiny runs trained with the binary, an A/B test between them over loopback
//! (the harness starts both `dsrm serve` children), its outputs checked against the sessions it logged, a rerun
//! with the same seed giving the same numbers, the report's A/B section, and bad input refused with clear errors.

use serde_json::Value;
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

/// A tiny synthetic KuaiRec and two runs on it (an HRL and an A2C policy, a few hundred steps each).
fn tiny_runs(root: &Path) -> (PathBuf, PathBuf) {
    let data = root.join("tiny");
    let (ok, _, err) = dsrm(&["data", "synth", "--size", "tiny", "--seed", "0", "--out", "tiny"], root);
    assert!(ok, "synth: {err}");
    let mut runs = Vec::new();
    for kind in ["hrl", "a2c"] {
        let config = format!(
            "[data]\ndataset = \"kuairec\"\ndir = {data:?}\n[eval]\nepisodes = 5\n[world_model]\nreward = \"mf\"\n\
             [train]\nepochs = 1\nsteps_per_epoch = 200\nparallel_envs = 10\nthreads = 1\ntorch_threads = 1\n\
             seed = 3\n[train.algorithm]\nkind = \"{kind}\"\nbatch_size = 64\nhidden = [16]\n"
        );
        std::fs::write(root.join(format!("{kind}.toml")), config).unwrap();
        let out = format!("runs/{kind}");
        let (ok, _, err) = dsrm(&["train", "--config", &format!("{kind}.toml"), "--out", &out], root);
        assert!(ok, "train {kind}: {err}");
        runs.push(root.join(out));
    }
    (runs[0].clone(), runs[1].clone())
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Σ_i Σ_j |e_i − e_j| / (2 n Σe): the Gini's pairwise definition, independent of the metrics crate.
fn gini_pairwise(e: &[u64]) -> f64 {
    let total: u64 = e.iter().sum();
    let s: u64 = e.iter().flat_map(|a| e.iter().map(move |b| a.abs_diff(*b))).sum();
    s as f64 / (2.0 * e.len() as f64 * total as f64)
}

fn outcome<'v>(report: &'v Value, metric: &str) -> &'v Value {
    report["outcomes"].as_array().unwrap().iter().find(|o| o["metric"] == metric).unwrap()
}

#[test]
fn abtest_between_two_tiny_runs_over_loopback() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    tiny_runs(root);
    let args = |out: &str| {
        ["abtest", "--arms", "A=runs/hrl,B=runs/a2c", "--users", "40", "--seed", "7", "--out", out].map(String::from)
    };
    let run = |out: &str| {
        let a = args(out);
        let (ok, stdout, err) = dsrm(&a.iter().map(String::as_str).collect::<Vec<_>>(), root);
        assert!(ok, "abtest: {err}");
        (stdout, err)
    };
    let (stdout, err) = run("ab1");
    assert!(stdout.contains("decision: "), "{stdout}");
    assert!(stdout.contains("Gini of exposure") && stdout.contains("B − A"), "{stdout}");
    assert!(err.contains("sessions 40/40"), "progress lines: {err}");
    let report = read_json(&root.join("ab1/abtest.json"));
    let sessions: Vec<Value> = std::fs::read_to_string(root.join("ab1/sessions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sessions.len(), 40);
    assert!(root.join("ab1/abtest.csv").exists() && root.join("ab1/provenance.json").exists());
    assert!(report["provenance"]["code_version"].is_string());

    // Arms by the seeded hash of the user id, with the traffic shares; distinct users, in arrival order.
    let traffic = dsrm_serve::abtest::assign::Traffic::new(&[50.0, 50.0], 2).unwrap();
    let mut users = std::collections::HashSet::new();
    for (i, s) in sessions.iter().enumerate() {
        let user = s["user_id"].as_u64().unwrap();
        assert!(users.insert(user), "user {user} twice");
        assert_eq!(s["index"].as_u64().unwrap() as usize, i);
        assert_eq!(s["arm"], ["A", "B"][traffic.arm(7, user)], "session {i}");
        let rewards: f64 = s["rewards"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).sum();
        assert!((rewards - s["reward"].as_f64().unwrap()).abs() < 1e-9);
        assert_eq!(s["items"].as_array().unwrap().len() as u64, s["length"].as_u64().unwrap());
    }
    let (with_seed_8, with_seed_7): (Vec<usize>, Vec<usize>) =
        users.iter().map(|&u| (traffic.arm(8, u), traffic.arm(7, u))).unzip();
    assert_ne!(with_seed_8, with_seed_7, "another seed reshuffles the arms");

    // Every outcome recomputed from sessions.jsonl.
    let n_items = report["n_items"].as_u64().unwrap() as usize;
    for (side, arm) in ["A", "B"].iter().enumerate() {
        let mine: Vec<&Value> = sessions.iter().filter(|s| s["arm"] == *arm).collect();
        assert_eq!(report["arms"][side]["sessions"].as_u64().unwrap() as usize, mine.len());
        let mean = |key: &str| mine.iter().map(|s| s[key].as_f64().unwrap()).sum::<f64>() / mine.len() as f64;
        let reported = |metric: &str| outcome(&report, metric)["arms"][side]["mean"].as_f64().unwrap();
        assert!((reported("session_length") - mean("length")).abs() < 1e-9);
        assert!((reported("cumulative_reward") - mean("reward")).abs() < 1e-9);
        let mut counts = std::collections::HashMap::<u64, u64>::new();
        for s in &mine {
            for v in s["items"].as_array().unwrap() {
                *counts.entry(v.as_u64().unwrap()).or_default() += 1;
            }
        }
        let mut exposure: Vec<u64> = counts.values().copied().collect();
        exposure.resize(n_items, 0);
        assert!((reported("gini") - gini_pairwise(&exposure)).abs() < 1e-9, "{arm} Gini");
        assert!((reported("coverage") - counts.len() as f64 / n_items as f64).abs() < 1e-9, "{arm} coverage");
        let steps: f64 = mine.iter().map(|s| s["length"].as_f64().unwrap()).sum();
        let popular: f64 = mine.iter().map(|s| s["popular_items"].as_f64().unwrap()).sum();
        assert!((reported("long_tail_share") - (1.0 - popular / steps)).abs() < 1e-9, "{arm} long-tail share");
        for o in report["outcomes"].as_array().unwrap() {
            let v = &o["arms"][side];
            assert!(v["lo"].as_f64() <= v["mean"].as_f64() && v["mean"].as_f64() <= v["hi"].as_f64(), "{o}");
        }
    }
    let diff = outcome(&report, "session_length");
    let d = diff["arms"][1]["mean"].as_f64().unwrap() - diff["arms"][0]["mean"].as_f64().unwrap();
    assert!((diff["difference"]["mean"].as_f64().unwrap() - d).abs() < 1e-9);
    assert!(report["return_rate"].is_null());

    // The same seed gives the same numbers.
    run("ab2");
    let again = read_json(&root.join("ab2/abtest.json"));
    for key in ["outcomes", "sequential", "decision"] {
        assert_eq!(report[key], again[key], "{key}");
    }

    // k items per recommendation (the user consumes the first), unequal traffic, the reward as primary outcome.
    let (ok, stdout, err) = dsrm(
        &["abtest", "--arms", "A=runs/hrl,B=runs/a2c", "--users", "12", "--k", "5", "--traffic", "30,70"]
            .into_iter()
            .chain(["--primary", "reward", "--seed", "3", "--out", "ab-k5"])
            .collect::<Vec<_>>(),
        root,
    );
    assert!(ok, "abtest --k 5: {err}");
    assert!(stdout.contains("cumulative_reward (primary)"), "{stdout}");
    let k5 = read_json(&root.join("ab-k5/abtest.json"));
    assert_eq!(k5["k"], 5);
    assert_eq!(k5["arms"][1]["traffic_percent"], 70.0);
    let split = dsrm_serve::abtest::assign::Traffic::new(&[30.0, 70.0], 2).unwrap();
    for line in std::fs::read_to_string(root.join("ab-k5/sessions.jsonl")).unwrap().lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        assert_eq!(s["arm"], ["A", "B"][split.arm(3, s["user_id"].as_u64().unwrap())]);
        let items: Vec<u64> = s["items"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        let distinct: std::collections::HashSet<u64> = items.iter().copied().collect();
        assert_eq!(distinct.len(), items.len(), "a session consumed an item twice");
    }

    // Its report joins `dsrm report`.
    let (ok, _, err) = dsrm(&["report", "ab1"], root);
    assert!(ok, "report: {err}");
    let md = std::fs::read_to_string(root.join("ab1/report/tables.md")).unwrap();
    assert!(md.contains("## A/B test") && md.contains("Decision: "), "{md}");

    // Bad input: clear errors naming the flag, never a panic.
    for (args, expected) in [
        (vec!["--arms", "A:runs/hrl,B=runs/a2c", "--users", "4"], "--arms"),
        (vec!["--arms", "A=runs/hrl", "--users", "4"], "exactly two arms"),
        (vec!["--arms", "A=runs/hrl,A=runs/a2c", "--users", "4"], "named twice"),
        (vec!["--arms", "A=runs/hrl,B=runs/a2c", "--users", "4", "--traffic", "50,40"], "sum to 100"),
        (vec!["--arms", "A=runs/hrl,B=runs/nope", "--users", "4"], "runs/nope: no such run directory"),
        (vec!["--arms", "A=runs/hrl,B=tiny", "--users", "4"], "not a finished dsrm train run"),
        (vec!["--arms", "A=runs/hrl,B=runs/a2c", "--users", "100000"], "--users 100000"),
        (vec!["--arms", "A=runs/hrl,B=runs/a2c", "--users", "4", "--url", "C=http://127.0.0.1:1"], "no arm named C"),
        (vec!["--arms", "A=runs/hrl,B=runs/a2c", "--users", "4", "--url", "B=ftp://x"], "--url B=ftp://x"),
    ] {
        let mut full = vec!["abtest"];
        full.extend(args);
        let (ok, _, err) = dsrm(&full, root);
        assert!(!ok && err.contains(expected), "{full:?}: {err}");
        assert!(!err.contains("panicked"), "{full:?}: {err}");
    }
}
