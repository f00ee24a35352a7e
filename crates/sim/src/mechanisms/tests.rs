use super::*;

/// A 6 x 8 dense truth of rank 2 plus a constant, values in [0.5, 2.5].
fn dense() -> RewardTable {
    let (nu, ni) = (6, 8);
    let values = (0..nu)
        .flat_map(|u| {
            (0..ni).map(move |i| {
                let a = if u % 2 == 0 { 1.0 } else { -1.0 };
                let b = if i < 4 { 1.0 } else { -1.0 };
                1.5 + 0.5 * a * b + 0.1 * ((u + i) % 3) as f64
            })
        })
        .collect();
    RewardTable::Dense { n_users: nu, n_items: ni, values }
}

fn tags() -> Vec<Vec<i32>> {
    // items 0..4 in category 7, items 4..8 in category 9, item 7 also in 11.
    (0..8)
        .map(|i| {
            if i < 4 {
                vec![7]
            } else if i < 7 {
                vec![9]
            } else {
                vec![9, 11]
            }
        })
        .collect()
}

fn rows(t: &RewardTable) -> Vec<Vec<f64>> {
    (0..t.n_users() as u32)
        .map(|u| {
            let mut r = vec![0.0; t.n_items()];
            t.row_into(u, &mut r);
            r
        })
        .collect()
}

#[test]
fn with_every_mechanism_off_nothing_changes() {
    let truth = dense();
    let mut p = Population::new(&truth, &tags(), &Mechanisms::off(), 0).unwrap();
    p.consume([(0, &[0u32, 1, 2][..]), (3, &[5u32][..])]);
    assert_eq!(p.truth(), &truth);
    let z = conformity::standardised_log_exposure(&[5, 1, 0, 9]);
    assert_eq!(conformity::logged(&[0, 3], &[1.0, 2.0], &z, 0.0), vec![1.0, 2.0]);
}

#[test]
fn conformity_inflates_the_logged_reward_of_logged_items_only() {
    let z = conformity::standardised_log_exposure(&[0, 0, 10, 1000]);
    let mean: f64 = z.iter().sum::<f64>() / 4.0;
    let sd = (z.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
    assert!(mean.abs() < 1e-12 && (sd - 1.0).abs() < 1e-12);
    assert!(z[3] > z[2] && z[2] > z[0] && z[0] == z[1]);
    let logged = conformity::logged(&[3, 0], &[1.0, 1.0], &z, 0.5);
    assert!((logged[0] - (1.0 + 0.5 * z[3])).abs() < 1e-12 && logged[1] < 1.0);
    assert_eq!(conformity::standardised_log_exposure(&[4, 4, 4]), vec![0.0; 3]);
    assert_eq!(conformity::log_counts(&[0, 2, 2, 9], 3), vec![1, 0, 2]);
}

#[test]
fn drift_moves_a_consumers_truth_towards_what_it_consumed_and_leaves_others() {
    let truth = dense();
    let m = Mechanisms { drift: 0.5, drift_rank: 2, ..Mechanisms::off() };
    let mut p = Population::new(&truth, &tags(), &m, 0).unwrap();
    let before = rows(p.truth());
    // User 1 (who prefers items 4..8) consumes items 0..4 three rounds running.
    for _ in 0..3 {
        p.consume([(1, &[0u32, 1, 2, 3][..])]);
    }
    let after = rows(p.truth());
    let mean = |r: &[f64], items: std::ops::Range<usize>| r[items.clone()].iter().sum::<f64>() / items.len() as f64;
    let gap_before = mean(&before[1], 0..4) - mean(&before[1], 4..8);
    let gap_after = mean(&after[1], 0..4) - mean(&after[1], 4..8);
    assert!(gap_after > gap_before + 0.3, "user 1 now likes 0..4 relatively more: {gap_before} -> {gap_after}");
    for u in [0, 2, 3, 4, 5] {
        assert_eq!(after[u], before[u], "user {u} consumed nothing");
    }
    let (lo, hi) = truth.range();
    assert!(after[1].iter().all(|v| (lo..=hi).contains(v)), "clamped to round 0's range");
}

#[test]
fn drift_on_a_low_rank_truth_moves_its_own_factors() {
    let low = crate::ground_truth::LowRank {
        n_users: 2,
        n_items: 2,
        dim: 1,
        global: 0.0,
        user_bias: vec![0.0; 2],
        item_bias: vec![0.0; 2],
        user_factors: vec![1.0, -1.0],
        item_factors: vec![1.0, -1.0],
        sigmoid: false,
    };
    let truth = RewardTable::LowRank(low);
    let m = Mechanisms { drift: 0.5, ..Mechanisms::off() };
    let mut p = Population::new(&truth, &[vec![], vec![]], &m, 0).unwrap();
    p.consume([(0, &[1u32][..])]);
    // p_0 = 0.5 · 1 + 0.5 · (−1) = 0: user 0 is now indifferent; user 1 unchanged.
    assert_eq!(p.truth().reward(0, 0), 0.0);
    assert_eq!(p.truth().reward(1, 1), 1.0);
    // Satiation needs a dense truth; the error names the setting.
    let err = Population::new(&truth, &[vec![], vec![]], &Mechanisms { satiation: 0.5, ..Mechanisms::off() }, 0);
    assert!(err.unwrap_err().to_string().contains("mechanisms.satiation"));
}

#[test]
fn satiation_lowers_a_repeated_category_and_wears_off() {
    let truth = dense();
    let m = Mechanisms { satiation: 0.6, satiation_decay: 0.5, ..Mechanisms::off() };
    let mut p = Population::new(&truth, &tags(), &m, 0).unwrap();
    let base = rows(&truth);
    p.consume([(2, &[0u32, 1][..])]); // only category 7: S_2,7 = 0.5
    let sated = rows(p.truth());
    for i in 0..4 {
        assert!((sated[2][i] - base[2][i] * (1.0 - 0.6 * 0.5)).abs() < 1e-12);
    }
    assert_eq!(sated[2][4..], base[2][4..]);
    assert_eq!(sated[0], base[0]);
    p.consume(std::iter::empty()); // a round without serving: S_2,7 = 0.25
    let rested = rows(p.truth());
    assert!((rested[2][0] - base[2][0] * (1.0 - 0.6 * 0.25)).abs() < 1e-12);
}

#[test]
fn strengths_out_of_range_are_errors_naming_the_setting() {
    for (m, name) in [
        (Mechanisms { conformity: -1.0, ..Mechanisms::off() }, "mechanisms.conformity"),
        (Mechanisms { drift: 1.5, ..Mechanisms::off() }, "mechanisms.drift"),
        (Mechanisms { drift: 0.1, drift_rank: 0, ..Mechanisms::off() }, "mechanisms.drift_rank"),
        (Mechanisms { satiation: f64::NAN, ..Mechanisms::off() }, "mechanisms.satiation"),
        (Mechanisms { satiation_decay: 1.0, ..Mechanisms::off() }, "mechanisms.satiation_decay"),
    ] {
        assert!(m.validate().unwrap_err().to_string().contains(name), "{name}");
    }
    assert!(Mechanisms::off().is_off() && Mechanisms::off().validate().is_ok());
}
