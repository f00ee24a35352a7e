//! Every shipped config parses with the reader of the command its folder is for, no config points at data
//! outside the repository, and the fidelity file's variants change exactly what they name.

use dsrm_denoise::stage::{CleanTarget, DEFAULT_CONDITION_WINDOW};
use dsrm_denoise::DenoiserConfig;
use dsrm_study::config::RunConfig;
use dsrm_study::experiment::ExperimentFile;
use dsrm_study::feedback_loop::LoopFile;
use dsrm_study::fidelity::FidelityFile;
use dsrm_study::train::TrainFile;
use std::path::{Path, PathBuf};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

fn files(folder: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(configs().join(folder))
        .unwrap_or_else(|e| panic!("configs/{folder}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "configs/{folder} is empty");
    out
}

#[test]
fn every_config_parses_with_its_command_reader_and_none_lies_loose() {
    let top: Vec<_> =
        std::fs::read_dir(configs()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    assert!(top.is_empty(), "configs live in folders by purpose, not at the top: {top:?}");
    for p in files("baselines") {
        RunConfig::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
    for p in files("train") {
        TrainFile::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
    for p in files("experiments") {
        ExperimentFile::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
    for p in files("loop") {
        LoopFile::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
    for p in files("fidelity") {
        FidelityFile::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    }
}

#[test]
fn no_config_reads_data_from_outside_the_repository() {
    for folder in ["baselines", "train", "experiments", "loop", "fidelity"] {
        for p in files(folder) {
            let text = std::fs::read_to_string(&p).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split('#').next().unwrap_or("");
                assert!(!code.contains("../"), "{}:{}: a path outside the repository: {line}", p.display(), i + 1);
            }
        }
    }
}

#[test]
fn fidelity_variants_change_exactly_what_they_name() {
    let path = configs().join("fidelity/default.toml");
    let base = FidelityFile::load(&path).unwrap();
    let names: Vec<String> = base.variants.iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        names,
        [
            "unconditional",
            "observed",
            "paper",
            "debiased",
            "condition",
            "condition-debiased",
            "flow",
            "paper-sasrec",
            "sasrec"
        ]
    );
    let noise = |f: &FidelityFile| match &f.dsrm.denoiser {
        DenoiserConfig::Ddpm(c) => c.schedule.noise_scale,
        other => panic!("a ddpm stage, not {}", other.kind()),
    };
    let cases = [
        ("unconditional", 0, CleanTarget::Clean, 1.0),
        ("observed", 0, CleanTarget::Observed, 1.0),
        ("paper", 50, CleanTarget::Clean, 1.0),
        ("debiased", 0, CleanTarget::Debiased, 1.0),
        ("condition", 20, CleanTarget::Observed, 1.0),
        ("condition-debiased", 20, CleanTarget::Debiased, 1.0),
    ];
    assert_eq!((base.dsrm.condition_window(), base.dsrm.target(), noise(&base)), (50, CleanTarget::Clean, 1.0));
    assert!(base.dsrm.holdout_fraction > 0.0, "the report scores on held-out users");
    let DenoiserConfig::Ddpm(paper) = FidelityFile::load_variant(&path, Some("paper")).unwrap().dsrm.denoiser else {
        panic!("a ddpm stage")
    };
    assert_eq!((paper.mean_type, paper.start), (dsrm_denoise::MeanType::Eps, dsrm_denoise::ddpm::Start::Noise));
    assert_eq!(paper.schedule.kind, dsrm_denoise::ScheduleKind::Cosine, "a start from noise needs pure noise at T");
    assert!(paper.clip_x0, "the paper's ε chain clips x̂_0 (the sampler of Ho et al.)");
    for (name, window, target, s) in cases {
        let v = FidelityFile::load_variant(&path, Some(name)).unwrap();
        assert_eq!((v.dsrm.condition_window(), v.dsrm.target(), noise(&v)), (window, target, s), "{name}");
        assert_eq!(
            (v.noise_levels.clone(), v.synth_seed, v.ridge),
            (base.noise_levels.clone(), base.synth_seed, base.ridge)
        );
    }
    // A variant of another denoiser kind replaces the file's denoiser table instead of merging into it (the
    // DDPM's `schedule` is no key of the flow); the stage around it is the file's.
    let flow = FidelityFile::load_variant(&path, Some("flow")).unwrap();
    let DenoiserConfig::Flow(f) = &flow.dsrm.denoiser else {
        panic!("a flow stage, not {}", flow.dsrm.denoiser.kind())
    };
    assert_eq!((f.ode_steps, f.start), (4, dsrm_denoise::FlowStart::Observed));
    assert_eq!((flow.dsrm.condition_window(), flow.dsrm.target()), (50, CleanTarget::Clean));
    assert_eq!((flow.dsrm.holdout_fraction, flow.dsrm.max_states), (base.dsrm.holdout_fraction, base.dsrm.max_states));
    // The paper's variant over its Transformer encoder: a SASRec tracker, pretrained before it is frozen.
    let sasrec = FidelityFile::load_variant(&path, Some("paper-sasrec")).unwrap();
    assert!(matches!(sasrec.tracker, dsrm_state::TrackerConfig::Sasrec(_)), "{:?}", sasrec.tracker);
    assert!(sasrec.dsrm.tracker_pretrain.enabled() && sasrec.dsrm.condition_window() == 0);
    let err = FidelityFile::load_variant(&path, Some("nope")).unwrap_err();
    assert!(format!("{err:#}").contains("condition-debiased"), "{err:#}");
}

#[test]
fn the_selection_file_is_the_reports_stage_scored_on_validation_users_one_setting_at_a_time() {
    let report = FidelityFile::load(&configs().join("fidelity/default.toml")).unwrap();
    let path = configs().join("fidelity/select.toml");
    let base = FidelityFile::load(&path).unwrap();
    assert_eq!(base.score_on, dsrm_study::fidelity::ScoreOn::Validation);
    assert_eq!(report.score_on, dsrm_study::fidelity::ScoreOn::HeldOut);
    // The same data and split as the report's (so its validation users are the report's), at level 1; the
    // report's stage is the one the selection chose (W_c = 50, s = 1: the defaults since).
    assert_eq!((&base.synth, &base.tracker, base.synth_seed), (&report.synth, &report.tracker, report.synth_seed));
    let chosen = FidelityFile::load_variant(&path, Some("w50-s1")).unwrap();
    assert_eq!(chosen.dsrm, report.dsrm);
    assert_eq!(base.noise_levels, [1.0]);
    let noise = |f: &FidelityFile| match &f.dsrm.denoiser {
        DenoiserConfig::Ddpm(c) => c.schedule.noise_scale,
        other => panic!("a ddpm stage, not {}", other.kind()),
    };
    for (name, window, s) in [
        ("default", 20, 0.1),
        ("w0", 0, 0.1),
        ("w5", 5, 0.1),
        ("w50", 50, 0.1),
        ("s0.5", 20, 0.5),
        ("s1", 20, 1.0),
        ("w50-s1", 50, 1.0),
    ] {
        let v = FidelityFile::load_variant(&path, Some(name)).unwrap();
        assert_eq!((v.dsrm.condition_window(), noise(&v), v.score_on), (window, s, base.score_on), "{name}");
    }
    let default = dsrm_denoise::ScheduleConfig::default().noise_scale;
    assert_eq!((report.dsrm.condition_window(), noise(&report)), (DEFAULT_CONDITION_WINDOW, default));
}
