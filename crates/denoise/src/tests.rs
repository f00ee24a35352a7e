//! Crate-level tests: purification quality on toy data, determinism, the compiled chain against the literal
//! samplers, checkpoints, and errors for malformed inputs.

use crate::test_support::{lock, max_abs, mse, single_thread, toy, toy_ddpm, Normals, DIM, NOISE};
use crate::*;
use dsrm_nn::tch::{Device, Kind, Tensor};

fn no_progress() -> impl FnMut(&EpochLog) {
    |_| {}
}

/// An untrained (initialised only) DSRM: enough to compare two implementations of the same sampler. Takes the
/// libtorch lock, so callers must not hold it.
fn untrained(cfg: DdpmConfig, width: i64) -> Ddpm {
    let cfg = DdpmConfig { train: TrainConfig { max_epochs: 0, ..cfg.train.clone() }, ..cfg };
    let data = random_states(64, width, 3);
    let _torch = lock();
    Ddpm::fit(&data, &data, &cfg, &mut no_progress()).unwrap().0
}

/// `[n, width]` standard-normal states from a Rust stream (no libtorch generator, no lock).
fn random_states(n: i64, width: i64, seed: u64) -> Tensor {
    single_thread();
    let mut rng = Normals::new(seed);
    let v: Vec<f32> = (0..n * width).map(|_| rng.next() as f32).collect();
    Tensor::from_slice(&v).view([n, width])
}

#[test]
fn identity_returns_its_input() {
    let id = Identity::new(4);
    let x = random_states(5, 4, 1);
    let y = id.purify(&x);
    assert!(y.equal(&x));
    assert_ne!(y.data_ptr(), x.data_ptr(), "a copy, not an alias");
    assert_eq!((id.steps(), id.input_dim(), id.output_dim(), id.cond_dim()), (0, 4, 4, 0));
    assert!(id.purify(&x.to_kind(Kind::Double)).allclose(&x, 0.0, 0.0, false));
}

#[test]
fn trained_ddpm_moves_noisy_points_towards_the_clean_subspace() {
    let model = toy_ddpm();
    let report = model.report().unwrap();
    assert!(report.best_valid_loss < report.history[0].valid_loss * 0.1, "training reduced the loss: {report:?}");
    let test = toy(500, 3);
    let raw = mse(&test.noisy, &test.clean);
    assert!((raw - NOISE * NOISE).abs() < 2e-4, "raw MSE {raw}");
    let purified = model.purify(&test.noisy);
    let after = mse(&purified, &test.clean);
    // The Bayes-optimal posterior-mean chain keeps ~1 − 0.45 of the off-subspace noise (13 of 16 dims).
    println!("toy DSRM: MSE to clean {raw:.3e} -> {after:.3e} (best valid loss {:.3e})", report.best_valid_loss);
    assert!(after < 0.8 * raw, "DSRM purification: MSE to clean {raw:.6} -> {after:.6}");
    assert_eq!(model.steps(), 10);
}

#[test]
fn purification_is_deterministic_and_matches_the_reference_loop() {
    let model = toy_ddpm();
    let x = toy(64, 4).noisy;
    let (a, b) = (model.purify(&x), model.purify(&x));
    assert!(a.equal(&b), "two calls give identical outputs");
    let reference = model.purify_reference(&x).unwrap();
    assert!(max_abs(&a, &reference) < 1e-5, "compiled vs literal chain: {}", max_abs(&a, &reference));
    // Row-wise: a state's purification does not depend on its batch, up to float rounding (BLAS picks other
    // kernels for one row than for 64, and which ones depends on the CPU).
    let single = model.purify(&x.narrow(0, 7, 1));
    let gap = max_abs(&single, &a.narrow(0, 7, 1));
    assert!(gap < 1e-5, "one row alone vs in a batch of 64: {gap}");
}

#[test]
fn ddim_k2_is_close_to_ddpm_and_also_purifies() {
    let model = toy_ddpm();
    let ddim = Ddim::new(&model, 2).unwrap();
    assert_eq!((ddim.steps(), ddim.timesteps()), (2, [1usize, 10].as_slice()));
    let test = toy(500, 5);
    let (full, fast) = (model.purify(&test.noisy), ddim.purify(&test.noisy));
    // Both purify, and they differ by a fraction of what purification changes (DDIM is the deterministic ODE
    // sampler, the DDPM chain the posterior mean: not the same map, but close for a gentle schedule).
    let (raw, moved, gap) = (mse(&test.noisy, &test.clean), mse(&full, &test.noisy), mse(&fast, &full));
    println!(
        "DDIM k=2: gap to DDPM {gap:.3e}, DDPM moved {moved:.3e}, MSE to clean {raw:.3e} -> {:.3e}",
        mse(&fast, &test.clean)
    );
    assert!(gap < 0.25 * moved, "DDIM k=2 vs DDPM: gap {gap:.3e}, DDPM moved {moved:.3e}");
    assert!(mse(&fast, &test.clean) < 0.8 * raw, "DDIM k=2: MSE to clean {raw:.3e} -> {:.3e}", mse(&fast, &test.clean));
    let reference = ddim.purify_reference(&test.noisy).unwrap();
    assert!(max_abs(&fast, &reference) < 1e-5);
    // k = T' evaluates every level: the same levels as the DDPM chain (a different update, so not equal).
    let all = Ddim::new(&model, 10).unwrap();
    assert_eq!(all.timesteps(), (1..=10).collect::<Vec<_>>().as_slice());
    assert!(max_abs(&all.purify(&test.noisy), &all.purify_reference(&test.noisy).unwrap()) < 1e-5);
}

#[test]
fn distilled_student_is_close_to_its_teacher() {
    let teacher = toy_ddpm();
    let (train, valid, test) = (toy(2000, 1), toy(400, 2), toy(500, 6));
    let cfg = StudentConfig {
        train: TrainConfig { lr: 1e-3, batch_size: 100, max_epochs: 40, patience: 5, seed: 3, max_grad_norm: None },
        ..Default::default()
    };
    let (student, report) = {
        let _torch = lock();
        Distilled::fit(&teacher, &train.noisy, &valid.noisy, &cfg, &mut no_progress()).unwrap()
    };
    assert_eq!(student.steps(), 1);
    let (target, out) = (teacher.purify(&test.noisy), student.purify(&test.noisy));
    let moved = mse(&target, &test.noisy);
    let gap = mse(&out, &target);
    println!(
        "distilled: gap to teacher {gap:.3e} (warm start {:.3e}), teacher moved {moved:.3e}, MSE to clean {:.3e}",
        report.history[0].valid_loss,
        mse(&out, &test.clean)
    );
    assert!(gap < 0.1 * moved, "student vs teacher: gap {gap:.3e}, teacher moved {moved:.3e}; {report:?}");
    assert!(report.best_valid_loss <= report.history[0].valid_loss, "never worse than the warm start");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("student.ckpt");
    student.save(&path).unwrap();
    let loaded = load(&path).unwrap();
    assert!(loaded.purify(&test.noisy).equal(&out));
    assert_eq!(loaded.name(), student.name());
}

#[test]
fn save_then_load_gives_identical_purification() {
    let model = toy_ddpm();
    let x = toy(100, 7).noisy;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsrm.ckpt");
    model.save(&path).unwrap();
    let (a, b) = (load(&path).unwrap(), Ddpm::load(&path).unwrap());
    let expected = model.purify(&x);
    assert!(a.purify(&x).equal(&expected) && b.purify(&x).equal(&expected), "two loaded copies");
    assert_eq!(b.config(), model.config());
    assert_eq!(b.report(), model.report(), "the training report travels with the weights");
    assert_eq!(a.name(), model.name());

    let ddim = Ddim::new(&model, 2).unwrap();
    let path = dir.path().join("ddim.ckpt");
    ddim.save(&path).unwrap();
    assert!(load(&path).unwrap().purify(&x).equal(&ddim.purify(&x)));

    let path = dir.path().join("identity.ckpt");
    Identity::new(DIM).save(&path).unwrap();
    assert!(load(&path).unwrap().purify(&x).equal(&x));

    // A damaged file is refused; a foreign checkpoint is an error naming the file.
    let foreign = dir.path().join("foreign.ckpt");
    dsrm_nn::checkpoint::save(&foreign, &[], &serde_json::json!({"epoch": 1})).unwrap();
    let err = load(&foreign).unwrap_err().to_string();
    assert!(err.contains("foreign.ckpt"), "{err}");
}

#[test]
fn fit_is_deterministic_for_a_seed() {
    let data = toy(300, 8).noisy;
    let cfg = DdpmConfig {
        hidden: vec![32],
        train: TrainConfig { lr: 1e-3, batch_size: 64, max_epochs: 3, patience: 3, seed: 42, max_grad_norm: Some(1.0) },
        ..Default::default()
    };
    let fit = |cfg: &DdpmConfig| {
        let _torch = lock();
        Ddpm::fit(&data, &data.narrow(0, 0, 50), cfg, &mut no_progress()).unwrap()
    };
    let ((a, ra), (b, rb)) = (fit(&cfg), fit(&cfg));
    assert_eq!(ra, rb);
    assert!(a.purify(&data).equal(&b.purify(&data)));
    let other = DdpmConfig { train: TrainConfig { seed: 43, ..cfg.train.clone() }, ..cfg };
    assert!(!fit(&other).0.purify(&data).equal(&a.purify(&data)), "another seed trains another model");
}

#[test]
fn options_train_and_compiled_chain_matches_reference() {
    // ε prediction, a condition, importance sampling, reweighting, dropout, two hidden layers, diffrec_compat,
    // stochastic purification: a short fit must run, and the compiled chain must equal the literal loop.
    let cond_dim = 3;
    let base = DdpmConfig {
        hidden: vec![24, 16],
        cond_dim,
        mean_type: MeanType::Eps,
        timestep_sampling: TimestepSampling::Importance,
        reweight: true,
        dropout: 0.1,
        schedule: ScheduleConfig { steps: 5, noise_scale: 1.0, ..Default::default() },
        train: TrainConfig { lr: 1e-3, batch_size: 16, max_epochs: 4, patience: 4, seed: 1, max_grad_norm: None },
        ..Default::default()
    };
    let data = random_states(200, DIM + cond_dim, 9);
    let (mut model, report) = {
        let _torch = lock();
        Ddpm::fit(&data, &data.narrow(0, 0, 40), &base, &mut no_progress()).unwrap()
    };
    assert_eq!(report.epochs, 4);
    assert_eq!((model.input_dim(), model.output_dim(), model.cond_dim()), (DIM + cond_dim, DIM, cond_dim));
    let x = random_states(32, DIM + cond_dim, 10);
    let check = |m: &Ddpm, what: &str| {
        let (fast, slow) = (m.purify(&x), m.purify_reference(&x).unwrap());
        assert_eq!(fast.size(), [32, DIM]);
        let err = max_abs(&fast, &slow);
        assert!(err < 2e-5, "{what}: compiled vs literal {err}");
    };
    check(&model, "eps, conditioned");
    for t_prime in [0, 1, 3] {
        model.set_t_prime(t_prime).unwrap();
        check(&model, &format!("T' = {t_prime}"));
        assert_eq!(model.steps(), t_prime);
        let ddim = Ddim::new(&model, 2).unwrap();
        assert!(max_abs(&ddim.purify(&x), &ddim.purify_reference(&x).unwrap()) < 2e-5, "ddim T' = {t_prime}");
    }
    model.set_t_prime(0).unwrap();
    assert!(model.purify(&x).equal(&x.narrow(1, 0, DIM)), "T' = 0 is the identity on the state");

    model.set_t_prime(5).unwrap();
    model.set_purify_noise(0.5, 11).unwrap();
    check(&model, "stochastic");
    let noisy = model.purify(&x);
    assert!(noisy.equal(&model.purify(&x)), "stochastic purification is reproducible for a seed");
    assert!(max_abs(&noisy.narrow(0, 3, 1), &model.purify(&x.narrow(0, 3, 1))) < 1e-6, "noise is keyed per state");
    model.set_purify_noise(0.5, 12).unwrap();
    assert!(!noisy.equal(&model.purify(&x)), "another seed, other noise");

    // DiffRec's inference: a random forward sample at T', then all T reverse steps.
    let mut compat = untrained(DdpmConfig { diffrec_compat: true, t_prime: Some(2), ..base.clone() }, DIM + cond_dim);
    assert_eq!((compat.levels(), compat.steps(), compat.noise_scale()), ((2, 5), 5, 1.0));
    check(&compat, "diffrec_compat");
    compat.set_t_prime(0).unwrap();
    assert_eq!((compat.steps(), compat.noise_scale()), (5, 0.0), "T' = 0: the clean input, still T steps");
    check(&compat, "diffrec_compat T' = 0");

    // x̂_0 models with several hidden layers and each activation.
    for activation in [Activation::Tanh, Activation::Relu, Activation::Silu] {
        let m = untrained(
            DdpmConfig {
                mean_type: MeanType::X0,
                activation,
                timestep_sampling: TimestepSampling::Uniform,
                ..base.clone()
            },
            DIM + cond_dim,
        );
        check(&m, &format!("x0 {activation:?}"));
    }
}

#[test]
fn bad_shapes_and_settings_are_errors_not_panics() {
    let model = untrained(DdpmConfig { hidden: vec![8], ..Default::default() }, DIM);
    let ddim = Ddim::new(&model, 2).unwrap();
    let id = Identity::new(DIM);
    let bad_inputs = [
        Tensor::zeros([4, DIM + 1], (Kind::Float, Device::Cpu)),
        Tensor::zeros([DIM], (Kind::Float, Device::Cpu)),
        Tensor::zeros([2, 4, DIM], (Kind::Float, Device::Cpu)),
        Tensor::zeros([4, DIM], (Kind::Int64, Device::Cpu)),
        Tensor::new(),
    ];
    let denoisers: [&dyn Denoiser; 3] = [&model, &ddim, &id];
    for d in denoisers {
        for x in &bad_inputs {
            assert!(matches!(d.try_purify(x), Err(DenoiseError::Shape(_))), "{}: {x:?}", d.name());
        }
        assert_eq!(d.try_purify(&Tensor::zeros([0, DIM], (Kind::Float, Device::Cpu))).unwrap().size(), [0, DIM]);
    }
    assert!(model.purify_reference(&bad_inputs[0]).is_err());

    let data = random_states(10, DIM, 1);
    let fit =
        |train: &Tensor, valid: &Tensor, cfg: &DdpmConfig| Ddpm::fit(train, valid, cfg, &mut no_progress()).map(|_| ());
    let ok = DdpmConfig { train: TrainConfig { max_epochs: 0, ..Default::default() }, ..Default::default() };
    assert!(matches!(fit(&data, &random_states(5, DIM + 1, 2), &ok), Err(DenoiseError::Data(_))));
    assert!(matches!(fit(&data, &data.narrow(0, 0, 0), &ok), Err(DenoiseError::Data(_))));
    assert!(matches!(fit(&data.to_kind(Kind::Int64), &data, &ok), Err(DenoiseError::Data(_))));
    assert!(matches!(fit(&Tensor::new(), &data, &ok), Err(DenoiseError::Data(_))));
    assert!(matches!(fit(&data, &Tensor::new(), &ok), Err(DenoiseError::Data(_))));
    assert!(matches!(fit(&data.view([-1]), &data, &ok), Err(DenoiseError::Data(_))));
    let nan = data.copy();
    let _ = nan.get(0).get(0).fill_(f64::NAN);
    assert!(matches!(fit(&nan, &data, &ok), Err(DenoiseError::Data(_))));
    for cfg in [
        DdpmConfig { t_prime: Some(11), ..ok.clone() },
        DdpmConfig { hidden: vec![], ..ok.clone() },
        DdpmConfig { cond_dim: DIM, ..ok.clone() },
        DdpmConfig { dropout: 1.0, ..ok.clone() },
        DdpmConfig { train: TrainConfig { batch_size: 0, ..ok.train.clone() }, ..ok.clone() },
    ] {
        assert!(fit(&data, &data, &cfg).is_err(), "{cfg:?}");
    }
    assert!(Ddim::new(&model, 0).is_err());
    let mut m = model;
    assert!(m.set_t_prime(11).is_err() && m.set_purify_noise(-1.0, 0).is_err());
    assert!(matches!(Identity::new(DIM).try_purify(&bad_inputs[0]), Err(DenoiseError::Shape(_))));
}

#[test]
fn vae_reconstructs_and_round_trips() {
    let (train, valid, test) = (toy(2000, 1), toy(400, 2), toy(500, 11));
    let cfg = VaeConfig {
        hidden: vec![64],
        train: TrainConfig { lr: 2e-3, batch_size: 200, max_epochs: 40, patience: 8, seed: 5, max_grad_norm: None },
        ..Default::default()
    };
    let (vae, report) = {
        let _torch = lock();
        Vae::fit(&train.noisy, &valid.noisy, &cfg, &mut no_progress()).unwrap()
    };
    let out = vae.purify(&test.noisy);
    let variance = test.clean.var(true).double_value(&[]);
    let to_clean = mse(&out, &test.clean);
    println!(
        "VAE: MSE to clean {to_clean:.3e}, noisy input {:.3e}, data variance {variance:.3e}",
        mse(&test.noisy, &test.clean)
    );
    assert!(
        to_clean < 0.02 * variance,
        "VAE reconstruction MSE {to_clean:.4} vs data variance {variance:.4}; {report:?}"
    );
    assert!(to_clean < mse(&test.noisy, &test.clean), "the VAE also moves noisy points towards the clean ones");
    assert!(out.equal(&vae.purify(&test.noisy)), "deterministic");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vae.ckpt");
    vae.save(&path).unwrap();
    assert!(load(&path).unwrap().purify(&test.noisy).equal(&out));
    assert!(matches!(
        vae.try_purify(&Tensor::zeros([1, DIM + 2], (Kind::Float, Device::Cpu))),
        Err(DenoiseError::Shape(_))
    ));
}

#[test]
fn build_trains_what_the_config_names() {
    let data = toy(200, 12).noisy;
    let quick = TrainConfig { lr: 1e-3, batch_size: 100, max_epochs: 1, patience: 1, seed: 0, max_grad_norm: None };
    let ddpm = DdpmConfig { hidden: vec![16], train: quick.clone(), ..Default::default() };
    let cases = [
        (DenoiserConfig::Identity(IdentityConfig {}), 0, 0),
        (DenoiserConfig::Ddpm(ddpm.clone()), 1, 10),
        (DenoiserConfig::Ddim(DdimConfig { ddpm: ddpm.clone(), k: 3 }), 1, 3),
        (
            DenoiserConfig::Distilled(DistilledConfig {
                teacher: ddpm.clone(),
                student: StudentConfig { train: quick.clone(), ..Default::default() },
            }),
            2,
            1,
        ),
        (DenoiserConfig::Vae(VaeConfig { hidden: vec![16], train: quick.clone(), ..Default::default() }), 1, 2),
    ];
    for (cfg, reports, steps) in cases {
        let mut epochs = 0;
        let built = {
            let _torch = lock();
            build(&cfg, &data, &data, &mut |_| epochs += 1).unwrap()
        };
        assert_eq!((built.reports.len(), built.denoiser.steps()), (reports, steps), "{}", cfg.kind());
        assert_eq!(epochs, 2 * reports, "epoch 0 and epoch 1 of each model");
        assert_eq!(built.denoiser.purify(&data).size(), [200, DIM]);
    }
}

/// Purification latency in release mode on one libtorch thread (run with
/// `cargo test --release -p dsrm-denoise -- --ignored latency --nocapture`).
#[test]
#[ignore]
fn latency() {
    let _torch = lock();
    dsrm_nn::runtime::init(1, 0);
    let d = 42; // KuaiRec's `avg` state.
    let data = random_states(2000, d, 1);
    let quick = TrainConfig { max_epochs: 1, ..Default::default() };
    let cfg = |steps: usize| DdpmConfig {
        schedule: ScheduleConfig { steps, ..Default::default() },
        train: quick.clone(),
        ..Default::default()
    };
    let calls = 2000;
    println!("{:<62} batch  median_us  p99_us  mean_us  min_us", "denoiser");
    let report = |den: &dyn Denoiser| {
        for batch in [1, 256] {
            let n = if batch == 1 { calls } else { calls / 10 };
            let s = measure_latency(den, d, batch, n, n / 10).unwrap();
            println!(
                "{:<62} {:>5} {:>10.1} {:>7.1} {:>8.1} {:>7.1}",
                den.name(),
                batch,
                s.median_us,
                s.p99_us,
                s.mean_us,
                s.min_us
            );
        }
    };
    report(&Identity::new(d));
    let mut t10 = None;
    for steps in [1, 5, 10, 20, 50] {
        let (model, _) = Ddpm::fit(&data, &data, &cfg(steps), &mut no_progress()).unwrap();
        report(&model);
        if steps == 10 {
            t10 = Some(model);
        }
    }
    let t10 = t10.unwrap();
    report(&Ddim::new(&t10, 2).unwrap());
    let student = StudentConfig { train: quick.clone(), ..Default::default() };
    let (distilled, _) = Distilled::fit(&t10, &data, &data, &student, &mut no_progress()).unwrap();
    report(&distilled);
    let (vae, _) =
        Vae::fit(&data, &data, &VaeConfig { train: quick, ..Default::default() }, &mut no_progress()).unwrap();
    report(&vae);
    // The literal loop, for comparison with the compiled chain.
    let x = random_states(1, d, 2);
    let start = std::time::Instant::now();
    for _ in 0..calls {
        let _ = std::hint::black_box(t10.purify_reference(&x).unwrap());
    }
    println!(
        "ddpm T=10 literal loop (purify_reference), batch 1: mean {:.1} us",
        start.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
}

#[test]
fn joint_ddpm_starts_at_the_pretrained_model_and_learns_from_both_losses() {
    let model = toy_ddpm();
    let x = toy(64, 5).noisy;
    let joint = JointDdpm::new(&model, 0.5, 11).unwrap();
    // Same weights: the differentiable chain is the compiled one.
    let purified = joint.purify_differentiable(&x).unwrap();
    assert!(purified.requires_grad(), "a graph reaches the denoiser's weights");
    assert!(max_abs(&purified.detach(), &model.purify(&x)) < 1e-5);
    // The DSRM loss is λ_D times the pretraining objective, and its draws are keyed on the rows.
    let (l1, l2) = (joint.loss(&x).unwrap(), joint.loss(&x).unwrap());
    assert!(l1.double_value(&[]) > 0.0 && l1.double_value(&[]).is_finite());
    assert_eq!(l1.double_value(&[]), l2.double_value(&[]), "same rows, same (t, ε)");
    let half = JointDdpm::new(&model, 0.25, 11).unwrap().loss(&x).unwrap().double_value(&[]);
    assert!((l1.double_value(&[]) - 2.0 * half).abs() < 1e-6, "the loss scales with λ_D");
    // An RL-like loss (pull every purified state to 0) plus the DSRM loss moves the weights and the output.
    let mut adam = dsrm_nn::optim::Adam::new(joint.var_store(), Default::default());
    for _ in 0..20 {
        let loss = joint.purify_differentiable(&x).unwrap().square().mean(Kind::Float) + joint.loss(&x).unwrap();
        adam.backward_step(&loss).unwrap();
    }
    let after = joint.purify_differentiable(&x).unwrap().detach();
    assert!(after.square().mean(Kind::Float).double_value(&[]) < purified.square().mean(Kind::Float).double_value(&[]));
    // The fine-tuned weights become a frozen DSRM again, with the fast chain, and survive a checkpoint.
    let frozen = joint.frozen().unwrap();
    assert!(max_abs(&frozen.purify(&x), &after) < 1e-5);
    let (tensors, meta) = joint.checkpoint();
    let reloaded = from_checkpoint(&tensors, &meta).unwrap();
    assert!(max_abs(&reloaded.purify(&x), &after) < 1e-5);
    // Restoring weights through the var store (what a resumed run does) gives the same purification.
    let mut fresh = JointDdpm::new(&model, 0.5, 11).unwrap();
    fresh.var_store_mut().copy(joint.var_store()).unwrap();
    assert!(max_abs(&fresh.purify(&x), &after) < 1e-6);
}

#[test]
fn joint_ddpm_refuses_other_kinds_and_bad_lambdas() {
    let model = toy_ddpm();
    assert!(JointDdpm::new(&model, -1.0, 0).is_err());
    assert!(JointDdpm::new(&model, f64::NAN, 0).is_err());
    let (tensors, meta) = Identity::new(DIM).checkpoint();
    let err = JointDdpm::from_checkpoint(&tensors, &meta, 1.0, 0).err().expect("identity cannot be fine-tuned");
    assert!(err.to_string().contains("needs a `ddpm`"), "{err}");
    let (tensors, meta) = model.checkpoint();
    assert!(JointDdpm::from_checkpoint(&tensors, &meta, 1.0, 0).is_ok());
}

#[test]
fn a_ddpm_fit_towards_other_targets_purifies_towards_them() {
    // Target: the clean point itself (what a debiased target stands for), input: its noisy observation.
    let (train, valid, test) = (toy(2000, 21), toy(400, 22), toy(500, 23));
    let cfg = crate::test_support::toy_config();
    let model = {
        let _torch = crate::test_support::lock();
        Ddpm::fit_towards(&train.noisy, Some(&train.clean), &valid.noisy, Some(&valid.clean), &cfg, &mut |_| {})
            .unwrap()
            .0
    };
    let raw = mse(&test.noisy, &test.clean);
    let after = mse(&model.purify(&test.noisy), &test.clean);
    assert!(after < 0.5 * raw, "towards the clean targets: MSE {raw:.3e} -> {after:.3e}");
    // Mismatched rows and ε prediction are refused.
    let eps = DdpmConfig { mean_type: MeanType::Eps, ..cfg.clone() };
    assert!(Ddpm::fit_towards(&train.noisy, Some(&train.clean), &valid.noisy, None, &eps, &mut |_| {}).is_err());
    let short = train.clean.narrow(0, 0, 10);
    assert!(Ddpm::fit_towards(&train.noisy, Some(&short), &valid.noisy, None, &cfg, &mut |_| {}).is_err());
    let vae = DenoiserConfig::Vae(Default::default());
    assert!(build_towards(&vae, &train.noisy, &train.clean, &valid.noisy, &valid.clean, &mut |_| {}).is_err());
}

/// A DSRM fit for a few epochs towards random targets, its network reading the caller's whole row (o_t ⊕ h) as
/// its condition: the (target, condition) contract of the stage's clean target.
fn towards_random_targets(cfg: DdpmConfig, width: i64) -> Ddpm {
    let cfg = DdpmConfig { train: TrainConfig { max_epochs: 2, batch_size: 16, ..cfg.train.clone() }, ..cfg };
    let (data, targets) = (random_states(64, width, 3), random_states(64, DIM, 4));
    let _torch = lock();
    Ddpm::fit_towards(&data, Some(&targets), &data, Some(&targets), &cfg, &mut no_progress()).unwrap().0
}

#[test]
fn the_reverse_chain_undoes_the_forward_process_of_training_under_a_perfect_predictor() {
    // Forward/reverse consistency: noise s^(0) to level k with the forward process training uses, then run the
    // reverse chain purification runs, with an oracle that knows s^(0): it must return s^(0), for ε and x_0
    // models, from every level, on both schedule shapes.
    let (s0, eps) = (random_states(32, DIM, 5), random_states(32, DIM, 6));
    for kind in [ScheduleKind::LinearVar, ScheduleKind::Cosine] {
        for mean_type in [MeanType::Eps, MeanType::X0] {
            let schedule = ScheduleConfig { kind, steps: 10, noise_scale: 1.0, ..Default::default() };
            let model = untrained(DdpmConfig { mean_type, schedule, ..Default::default() }, DIM);
            let _torch = lock();
            for k in [1, 4, 10] {
                let x_k = model.noised(&s0, k, &eps).unwrap();
                assert!(max_abs(&x_k, &s0) > 1e-3, "level {k} noises");
                let sched = model.schedule();
                let mut oracle = |x: &Tensor, t: usize| -> crate::Result<Tensor> {
                    Ok(match mean_type {
                        MeanType::X0 => s0.shallow_clone(),
                        MeanType::Eps => (x - &s0 * sched.alpha_bar(t).sqrt()) / sched.one_minus_alpha_bar(t).sqrt(),
                    })
                };
                let back = model.reverse_from(x_k, k, &mut oracle).unwrap();
                let gap = max_abs(&back, &s0);
                assert!(gap < 1e-4, "{kind:?} {mean_type:?} from level {k}: |reverse(forward(s0)) - s0| = {gap}");
            }
            // An oracle of another process (the observed state noised, the target predicted) does not recover it.
            let wrong = random_states(32, DIM, 7);
            let x = model.noised(&wrong, 10, &eps).unwrap();
            let sched = model.schedule();
            let mut mismatched = |x: &Tensor, t: usize| -> crate::Result<Tensor> {
                Ok(match mean_type {
                    MeanType::X0 => s0.shallow_clone(),
                    MeanType::Eps => (x - &wrong * sched.alpha_bar(t).sqrt()) / sched.one_minus_alpha_bar(t).sqrt(),
                })
            };
            let back = model.reverse_from(x, 10, &mut mismatched).unwrap();
            let landed_on = if mean_type == MeanType::Eps { &wrong } else { &s0 };
            assert!(max_abs(&back, landed_on) < 1e-4, "the chain follows what the predictor was trained on");
            assert!(model.reverse_from(random_states(2, DIM, 8), 11, &mut mismatched).is_err());
        }
    }
}

#[test]
fn a_model_conditioned_on_the_observed_state_compiles_to_its_reference_chain_from_both_starts() {
    use crate::ddpm::Start;
    let cond_dim = 3;
    let cosine = ScheduleConfig { kind: ScheduleKind::Cosine, steps: 6, ..Default::default() };
    let cases = [
        (MeanType::X0, Start::Observed, 0, ScheduleConfig { steps: 6, noise_scale: 1.0, ..Default::default() }),
        (MeanType::Eps, Start::Observed, cond_dim, ScheduleConfig { steps: 6, noise_scale: 1.0, ..Default::default() }),
        (MeanType::Eps, Start::Noise, 0, cosine.clone()),
        (MeanType::X0, Start::Noise, cond_dim, cosine.clone()),
    ];
    for (mean_type, start, cond, schedule) in cases {
        let cfg = DdpmConfig {
            hidden: vec![24],
            mean_type,
            start,
            cond_dim: cond,
            observed_condition: true,
            schedule,
            ..Default::default()
        };
        let model = towards_random_targets(cfg, DIM + cond);
        assert_eq!((model.input_dim(), model.output_dim()), (DIM + cond, DIM));
        let x = random_states(16, DIM + cond, 10);
        let _torch = lock();
        let (fast, slow) = (model.purify(&x), model.purify_reference(&x).unwrap());
        // Float rounding: an ε model's x̂_0 divides by √ᾱ_k, which a chain from pure noise starts near 0 with.
        let tol = 1e-5 / model.schedule().alpha_bar(6).sqrt().min(1.0);
        let gap = max_abs(&fast, &slow);
        assert!(gap < tol.max(1e-5), "{mean_type:?} {start:?} cond {cond}: {gap} (tolerance {tol:.1e})");
        // The network reads o_t: two rows that differ only in o_t purify differently, even from pure noise.
        let other = x.copy();
        let _ = other.narrow(1, 0, DIM).fill_(0.5);
        assert!(max_abs(&model.purify(&other), &fast) > 1e-6, "{start:?}: the condition matters");
        assert!(model.name().contains("cond=o"));
        drop(_torch);
        let ddim = Ddim::new(&model, 3).unwrap();
        let _torch = lock();
        let gap = max_abs(&ddim.purify(&x), &ddim.purify_reference(&x).unwrap());
        assert!(gap < tol.max(1e-5), "DDIM {mean_type:?} {start:?} cond {cond}: {gap} (tolerance {tol:.1e})");
    }
    // Refused: a noise start on a schedule that does not end in pure noise, or without any condition; a
    // network reading o_t trained towards o_t itself (the identity).
    let linear = DdpmConfig { start: Start::Noise, observed_condition: true, ..Default::default() };
    assert!(linear.validate().unwrap_err().to_string().contains("pure noise"));
    let blind = DdpmConfig { start: Start::Noise, schedule: cosine, ..Default::default() };
    assert!(blind.validate().is_err());
    let identity = DdpmConfig { observed_condition: true, ..Default::default() };
    let data = random_states(32, DIM, 11);
    let _torch = lock();
    let err = Ddpm::fit(&data, &data, &identity, &mut no_progress()).unwrap_err();
    assert!(err.to_string().contains("identity"), "{err}");
}

#[test]
fn the_papers_variant_generates_the_clean_state_from_noise_given_the_observed_one() {
    // Trained towards the clean point, conditioned on its noisy observation, sampled from pure noise (x_T = 0):
    // with x_0 prediction it must beat the observation; with ε prediction (the paper's) it must at least read the
    // condition (far better than the prior mean 0). Both figures are printed.
    use crate::ddpm::Start;
    let (train, valid, test) = (toy(2000, 31), toy(400, 32), toy(500, 33));
    let raw = mse(&test.noisy, &test.clean);
    let prior = mse(&test.clean.zeros_like(), &test.clean);
    for mean_type in [MeanType::X0, MeanType::Eps] {
        let cfg = DdpmConfig {
            mean_type,
            start: Start::Noise,
            observed_condition: true,
            schedule: ScheduleConfig { kind: ScheduleKind::Cosine, steps: 10, ..Default::default() },
            ..crate::test_support::toy_config()
        };
        let model = {
            let _torch = lock();
            Ddpm::fit_towards(
                &train.noisy,
                Some(&train.clean),
                &valid.noisy,
                Some(&valid.clean),
                &cfg,
                &mut no_progress(),
            )
            .unwrap()
            .0
        };
        let after = mse(&model.purify(&test.noisy), &test.clean);
        println!("from noise, cond = o_t, {mean_type:?}: MSE to clean {raw:.3e} (observed) -> {after:.3e} (prior mean {prior:.3e})");
        match mean_type {
            MeanType::X0 => assert!(after < 0.8 * raw, "x0 from noise: MSE {raw:.3e} -> {after:.3e}"),
            MeanType::Eps => assert!(after < 0.1 * prior, "eps from noise reads o_t: {after:.3e} vs prior {prior:.3e}"),
        }
    }
}

#[test]
fn clipping_x0_keeps_an_eps_chain_from_noise_inside_the_targets_range() {
    // The paper's form after little training (2 epochs): ε-prediction, the chain from pure noise over a T = 10
    // cosine schedule, whose last level has ᾱ_T ≈ 2e-5, so x̂_0 multiplies the network's error by ~200. Clipped,
    // every purified state lies in the training targets' range and is closer to the clean state than unclipped
    // (the same network: clipping changes no draw of training); the range travels with the checkpoint.
    use crate::ddpm::Start;
    let (train, valid, test) = (toy(2000, 31), toy(400, 32), toy(500, 33));
    let cfg = DdpmConfig {
        mean_type: MeanType::Eps,
        start: Start::Noise,
        observed_condition: true,
        schedule: ScheduleConfig { kind: ScheduleKind::Cosine, steps: 10, ..Default::default() },
        train: TrainConfig { max_epochs: 2, ..crate::test_support::toy_config().train },
        ..crate::test_support::toy_config()
    };
    let fit = |cfg: &DdpmConfig| {
        let _torch = lock();
        Ddpm::fit_towards(&train.noisy, Some(&train.clean), &valid.noisy, Some(&valid.clean), cfg, &mut no_progress())
            .unwrap()
            .0
    };
    let plain = fit(&cfg);
    let clipped = fit(&DdpmConfig { clip_x0: true, ..cfg.clone() });
    assert!(clipped.clips_x0() && !plain.clips_x0());
    assert!(plain.checkpoint().0.iter().zip(clipped.checkpoint().0.iter()).all(|(a, b)| a.1.equal(&b.1)));

    let (lo, hi) = (train.clean.amin([0i64].as_slice(), false), train.clean.amax([0i64].as_slice(), false));
    let out = clipped.purify(&test.noisy);
    let outside = |x: &Tensor| {
        let below = (x - &lo).clamp_max(0.0).abs().max().double_value(&[]);
        let above = (x - &hi).clamp_min(0.0).max().double_value(&[]);
        below.max(above)
    };
    assert!(outside(&out) < 1e-5, "clipped chain leaves the range by {}", outside(&out));
    let (before, after) = (mse(&plain.purify(&test.noisy), &test.clean), mse(&out, &test.clean));
    println!("eps from noise, 2 epochs: MSE to clean {before:.3e} unclipped -> {after:.3e} clipped");
    assert!(outside(&plain.purify(&test.noisy)) > 0.0, "the unclipped chain stays inside: nothing to test");
    assert!(after < before, "clipping must bring the state closer: {before:.3e} -> {after:.3e}");
    assert!(out.equal(&clipped.purify_reference(&test.noisy).unwrap()), "purify is the literal chain");
    assert!(clipped.batch_one().unwrap().is_none(), "no libtorch-free copy of a clipped chain");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clipped.ckpt");
    clipped.save(&path).unwrap();
    assert!(Ddpm::load(&path).unwrap().purify(&test.noisy).equal(&out), "the range travels with the weights");

    let err = Ddim::new(&clipped, 2).unwrap_err().to_string();
    assert!(err.contains("clip_x0"), "{err}");
    let x0 = DdpmConfig { clip_x0: true, mean_type: MeanType::X0, ..cfg };
    let err = x0.validate().unwrap_err().to_string();
    assert!(err.contains("clip_x0") && err.contains("eps"), "{err}");
}
