//! The server on an ephemeral loopback port: each endpoint, each error class, the admin token, session
//! eviction, and a restart with the same run and seed giving the same recommendations.

mod support;

use dsrm_serve::EngineSettings;
use serde_json::json;
use std::num::NonZeroUsize;
use std::time::Duration;
use support::{http, post, runs, start, TOKEN};

fn user(server: &dsrm_serve::Server) -> u64 {
    http(server, "GET", "/healthz", b"", None).json["sample_user_ids"][0].as_u64().unwrap()
}

fn metric(server: &dsrm_serve::Server, line_start: &str) -> f64 {
    let text = http(server, "GET", "/metrics", b"", None).text;
    let line =
        text.lines().find(|l| l.starts_with(line_start)).unwrap_or_else(|| panic!("{line_start} missing:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn every_endpoint_answers_and_bad_requests_get_a_4xx_naming_the_field() {
    let log = tempfile::tempdir().unwrap();
    let server = start(&runs().hrl, EngineSettings::default(), Some(log.path()));
    let health = http(&server, "GET", "/healthz", b"", None);
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!((health.json["policy"].as_str(), health.json["dataset"].as_str()), (Some("hrl"), Some("kuairec")));
    let n_items = health.json["n_items"].as_u64().unwrap();
    let u = user(&server);

    // Recommend, consume the first item, recommend again: the consumed item is masked.
    let first = post(&server, "/v1/recommend", json!({"session_id": "s1", "user_id": u, "k": 5}));
    assert_eq!(first.status, 200, "{}", first.text);
    let items: Vec<u64> = serde_json::from_value(first.json["items"].clone()).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(first.json["scores"].as_array().unwrap().len(), 5);
    assert_eq!(first.json["policy"], "hrl");
    assert_eq!(first.json["fairness"]["hierarchical"], true);
    assert_eq!(first.json["cold_start"], false);
    let fb = post(&server, "/v1/feedback", json!({"session_id": "s1", "video_id": items[0], "reward": 0.5}));
    assert_eq!((fb.status, fb.text.as_str()), (204, ""));
    for _ in 0..5 {
        let again = post(&server, "/v1/recommend", json!({"session_id": "s1", "user_id": u, "k": 100}));
        assert_eq!(again.status, 200, "{}", again.text);
        let again: Vec<u64> = serde_json::from_value(again.json["items"].clone()).unwrap();
        assert_eq!(again.len() as u64, 100.min(n_items - 1));
        let distinct: std::collections::BTreeSet<_> = again.iter().collect();
        assert_eq!(distinct.len(), again.len(), "items repeat within one answer");
        assert!(!again.contains(&items[0]), "a consumed item was recommended again");
    }
    // A consumed item cannot be consumed twice in a session.
    let twice = post(&server, "/v1/feedback", json!({"session_id": "s1", "video_id": items[0], "reward": 0.5}));
    assert_eq!((twice.status, twice.field()), (409, "video_id"));

    // Cold start: an unknown user is served and counted.
    let cold = post(&server, "/v1/recommend", json!({"session_id": "cold", "user_id": 987_654_321u64, "k": 3}));
    assert_eq!((cold.status, cold.json["cold_start"].as_bool()), (200, Some(true)), "{}", cold.text);
    assert_eq!(metric(&server, "dsrm_serve_cold_starts_total"), 1.0);

    // Error classes: each a 4xx JSON error naming the field.
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/recommend", b"{not json".to_vec(), 400, "body"),
        ("/v1/recommend", b"".to_vec(), 400, "body"),
        (
            "/v1/recommend",
            json!({"session_id": "s", "user_id": u, "colour": 1}).to_string().into_bytes(),
            400,
            "colour",
        ),
        ("/v1/recommend", json!({"session_id": "s", "k": 2}).to_string().into_bytes(), 400, "user_id"),
        ("/v1/recommend", json!({"session_id": "s", "user_id": "me"}).to_string().into_bytes(), 400, "user_id"),
        ("/v1/recommend", json!({"session_id": "s", "user_id": u, "k": 0}).to_string().into_bytes(), 400, "k"),
        ("/v1/recommend", json!({"session_id": "s", "user_id": u, "k": 101}).to_string().into_bytes(), 400, "k"),
        ("/v1/recommend", json!({"session_id": "", "user_id": u}).to_string().into_bytes(), 400, "session_id"),
        (
            "/v1/recommend",
            json!({"session_id": "s1", "user_id": u + 1, "k": 2}).to_string().into_bytes(),
            409,
            "user_id",
        ),
        ("/v1/recommend", vec![b' '; 2000], 413, "body"),
        (
            "/v1/feedback",
            json!({"session_id": "s1", "video_id": 99_999_999u64, "reward": 0.5}).to_string().into_bytes(),
            404,
            "video_id",
        ),
        (
            "/v1/feedback",
            json!({"session_id": "nobody", "video_id": items[1], "reward": 0.5}).to_string().into_bytes(),
            404,
            "session_id",
        ),
        (
            "/v1/feedback",
            json!({"session_id": "s1", "video_id": items[1], "reward": 1e9}).to_string().into_bytes(),
            400,
            "reward",
        ),
        ("/v1/feedback", json!({"session_id": "s1", "video_id": items[1]}).to_string().into_bytes(), 400, "reward"),
        ("/nowhere", b"{}".to_vec(), 404, "path"),
    ];
    for (path, body, status, field) in cases {
        let a = http(&server, "POST", path, &body, None);
        assert_eq!(
            (a.status, a.field()),
            (status, field),
            "{path} {}: {}",
            String::from_utf8_lossy(&body[..body.len().min(80)]),
            a.text
        );
        assert!(a.json["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", a.text);
    }
    assert_eq!(http(&server, "GET", "/v1/recommend", b"", None).status, 405);

    // The admin call: 401 without a valid token; a ratio in [0, 1]; λ_f only of a loaded high level.
    let ratio = json!({"target_ratio": 0.8}).to_string();
    assert_eq!(http(&server, "PUT", "/v1/admin/fairness", ratio.as_bytes(), None).status, 401);
    assert_eq!(http(&server, "PUT", "/v1/admin/fairness", ratio.as_bytes(), Some("wrong")).status, 401);
    let ok = http(&server, "PUT", "/v1/admin/fairness", ratio.as_bytes(), Some(TOKEN));
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json["target_ratio"], 0.8);
    assert_eq!(metric(&server, "dsrm_serve_fairness_target_ratio"), 0.8);
    let after = post(&server, "/v1/recommend", json!({"session_id": "fair", "user_id": u, "k": 2}));
    assert_eq!(after.json["fairness"]["target_ratio"], 0.8, "{}", after.text);
    let admin =
        |body: serde_json::Value| http(&server, "PUT", "/v1/admin/fairness", body.to_string().as_bytes(), Some(TOKEN));
    let bad = admin(json!({"target_ratio": 1.5}));
    assert_eq!((bad.status, bad.field()), (400, "target_ratio"), "{}", bad.text);
    let missing = admin(json!({"lambda_f": 123.0}));
    assert_eq!((missing.status, missing.field()), (422, "lambda_f"), "{}", missing.text);
    assert!(missing.json["error"].as_str().unwrap().contains("--retuned"), "{}", missing.text);
    assert_eq!(admin(json!({"lambda_f": 0.1, "target_ratio": 0.2})).status, 400);
    let own = health.json["lambdas"][0].as_f64().unwrap();
    let back = admin(json!({"lambda_f": own}));
    assert_eq!((back.status, back.json["target_ratio"].clone()), (200, serde_json::Value::Null), "{}", back.text);

    // Metrics: requests, errors, latency, sessions, exposure by group.
    let text = http(&server, "GET", "/metrics", b"", None).text;
    for name in [
        "dsrm_serve_requests_total{endpoint=\"recommend\",status=\"200\"}",
        "dsrm_serve_errors_total{endpoint=\"recommend\",status=\"400\"}",
        "dsrm_serve_request_seconds_bucket{endpoint=\"recommend\"",
        "dsrm_serve_sessions ",
        "dsrm_serve_exposure_total{group=\"popular\"}",
        "dsrm_serve_exposure_total{group=\"long_tail\"}",
        "dsrm_serve_fairness_lambda_f",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert!(metric(&server, "dsrm_serve_sessions") >= 3.0);

    // --log-dir: served and consumed rows in the data set's layout.
    server.stop().unwrap();
    let consumed = std::fs::read_to_string(log.path().join("consumed.csv")).unwrap();
    assert_eq!(consumed.lines().next().unwrap(), dsrm_data::kuairec::LOG_HEADER.join(","));
    assert!(consumed.lines().nth(1).unwrap().starts_with(&format!("{u},{},", items[0])));
    assert!(std::fs::read_to_string(log.path().join("served.csv")).unwrap().lines().count() > 5);
}

#[test]
fn sessions_are_bounded_by_capacity_and_idle_time() {
    let settings = EngineSettings { session_capacity: NonZeroUsize::new(2).unwrap(), ..EngineSettings::default() };
    let server = start(&runs().hrl, settings, None);
    let u = user(&server);
    let open = |id: &str| post(&server, "/v1/recommend", json!({"session_id": id, "user_id": u, "k": 1}));
    let item = open("a").json["items"][0].as_u64().unwrap();
    open("b");
    open("c"); // pushes out "a", the least recently used
    let gone = post(&server, "/v1/feedback", json!({"session_id": "a", "video_id": item, "reward": 0.5}));
    assert_eq!((gone.status, gone.field()), (404, "session_id"), "{}", gone.text);
    assert_eq!(metric(&server, "dsrm_serve_sessions_evicted_total{reason=\"capacity\"}"), 1.0);
    assert_eq!(metric(&server, "dsrm_serve_sessions "), 2.0);
    server.stop().unwrap();

    let settings = EngineSettings { session_idle: Duration::from_millis(50), ..EngineSettings::default() };
    let server = start(&runs().hrl, settings, None);
    let item = post(&server, "/v1/recommend", json!({"session_id": "idle", "user_id": u, "k": 1})).json["items"][0]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    let gone = post(&server, "/v1/feedback", json!({"session_id": "idle", "video_id": item, "reward": 0.5}));
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert_eq!(metric(&server, "dsrm_serve_sessions_evicted_total{reason=\"idle\"}"), 1.0);
}

/// Two sessions played in an interleaved order: the items and scores of every recommendation.
fn play(server: &dsrm_serve::Server) -> Vec<serde_json::Value> {
    let u = user(server);
    let mut out = Vec::new();
    for step in 0..6 {
        for id in ["x", "y"] {
            let r = post(server, "/v1/recommend", json!({"session_id": id, "user_id": u, "k": 4}));
            assert_eq!(r.status, 200, "{}", r.text);
            let first = r.json["items"][0].as_u64().unwrap();
            out.push(json!([r.json["items"], r.json["scores"], r.json["fairness"]["goal"]]));
            let reward = if step % 2 == 0 { 0.2 } else { 1.0 };
            assert_eq!(
                post(server, "/v1/feedback", json!({"session_id": id, "video_id": first, "reward": reward})).status,
                204
            );
        }
    }
    out
}

#[test]
fn a_restart_with_the_same_run_and_seed_recommends_the_same() {
    let seeded = |seed| EngineSettings { seed, ..EngineSettings::default() };
    let a = start(&runs().hrl, seeded(7), None);
    let first = play(&a);
    a.stop().unwrap();
    let b = start(&runs().hrl, seeded(7), None);
    assert_eq!(play(&b), first);
    b.stop().unwrap();
    let c = start(&runs().hrl, seeded(8), None);
    assert_ne!(play(&c), first, "another seed samples other items");
}

#[test]
fn a_flat_policy_refuses_fairness_changes_by_name() {
    let server = start(&runs().a2c, EngineSettings::default(), None);
    let u = user(&server);
    let r = post(&server, "/v1/recommend", json!({"session_id": "f", "user_id": u, "k": 3}));
    assert_eq!(
        (r.status, r.json["policy"].as_str(), r.json["fairness"]["hierarchical"].as_bool()),
        (200, Some("a2c"), Some(false))
    );
    let refused = http(&server, "PUT", "/v1/admin/fairness", br#"{"target_ratio":0.5}"#, Some(TOKEN));
    assert_eq!((refused.status, refused.field()), (422, "target_ratio"), "{}", refused.text);
    assert!(refused.json["error"].as_str().unwrap().contains("not hierarchical"));
}

#[test]
fn an_unknown_run_format_is_refused_and_an_unmarked_run_is_format_1() {
    let dir = tempfile::tempdir().unwrap();
    assert!(dsrm_serve::loaded::check_run_format(dir.path()).is_ok(), "no marker: format 1");
    std::fs::write(dir.path().join(dsrm_train::RUN_FORMAT_FILE), "2\n").unwrap();
    let err = format!("{:#}", dsrm_serve::loaded::check_run_format(dir.path()).unwrap_err());
    assert!(err.contains("run format 2") && err.contains("reads run format 1"), "{err}");
    std::fs::write(dir.path().join(dsrm_train::RUN_FORMAT_FILE), "two\n").unwrap();
    assert!(dsrm_serve::loaded::check_run_format(dir.path()).is_err());
    assert_eq!(
        std::fs::read_to_string(runs().hrl.join(dsrm_train::RUN_FORMAT_FILE)).unwrap(),
        "1\n",
        "dsrm train writes the marker"
    );
}

#[test]
fn the_load_generator_measures_a_server_with_no_errors() {
    let server = start(&runs().hrl, EngineSettings::default(), None);
    let cfg = dsrm_serve::bench::BenchConfig {
        url: format!("http://{}", server.addr),
        rps: 200.0,
        duration: Duration::from_secs(1),
        concurrency: 8,
        session_length: 5,
        seed: 0,
    };
    let r = dsrm_serve::bench::run(&cfg).unwrap();
    assert_eq!((r.requests, r.errors), (200, 0), "{r:?}");
    assert!(r.p50_us > 0 && r.p50_us <= r.p99_us && r.p99_us <= r.p999_us && r.p999_us <= r.max_us, "{r:?}");
    assert!(metric(&server, "dsrm_serve_requests_total{endpoint=\"feedback\",status=\"204\"}") >= 90.0);
}

#[test]
fn the_in_process_decision_path_is_timed() {
    let run = &runs().hrl; // trained before the lock below is taken (training takes it too)
    let loaded = {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_serve::loaded::load(run, &[], None, &dsrm_study::progress::quiet).unwrap()
    };
    let metrics = std::sync::Arc::new(dsrm_serve::metrics::Metrics::new().unwrap());
    let mut engine = dsrm_serve::Engine::new(loaded, EngineSettings::default(), metrics, None).unwrap();
    let r = dsrm_serve::bench::in_process(&mut engine, 60, 7, 0).unwrap();
    assert_eq!((r.requests, r.errors), (60, 0));
    assert!(r.p50_us > 0 && r.p99_us >= r.p50_us, "{r:?}");
    assert_eq!(engine.n_sessions(), 9, "60 recommendations of 7 per session");
}

#[test]
fn the_frozen_decision_path_recommends_what_the_libtorch_one_does() {
    // The default engine scores with the policy's batch-one copies; `libtorch_heads` keeps libtorch. Under
    // argmax both rank the same items with the same scores (to rounding) through a whole session.
    use dsrm_serve::request::{FeedbackRequest, RecommendRequest};
    let run = &runs().hrl; // trained before the lock below is taken (training takes it too)
    let engine = |libtorch_heads| {
        let loaded = {
            let _torch = dsrm_nn::runtime::exclusive();
            let argmax = Some(dsrm_policy::Selection::Argmax);
            dsrm_serve::loaded::load(run, &[], argmax, &dsrm_study::progress::quiet).unwrap()
        };
        let metrics = std::sync::Arc::new(dsrm_serve::metrics::Metrics::new().unwrap());
        let settings = EngineSettings { libtorch_heads, ..EngineSettings::default() };
        dsrm_serve::Engine::new(loaded, settings, metrics, None).unwrap()
    };
    let (mut torch, mut frozen) = (engine(true), engine(false));
    let user_id = torch.info().sample_user_ids[0];
    for step in 0..12 {
        let req = RecommendRequest { session_id: "s".into(), user_id, k: 5 };
        let (a, b) = (torch.recommend(&req).unwrap(), frozen.recommend(&req).unwrap());
        assert_eq!(a.items, b.items, "step {step}");
        assert!(a.scores.iter().zip(&b.scores).all(|(x, y)| (x - y).abs() < 1e-3 * (1.0 + x.abs())), "step {step}");
        let feedback = FeedbackRequest { session_id: "s".into(), video_id: a.items[step % 5], reward: 0.5 };
        torch.feedback(&feedback).unwrap();
        frozen.feedback(&feedback).unwrap();
    }
}

#[test]
fn a_heuristic_serves_its_top_k_and_one_without_a_score_vector_is_refused() {
    use dsrm_policy::heuristics::HeuristicKind;
    use dsrm_serve::request::{FeedbackRequest, RecommendRequest};
    let data = dsrm_study::config::DataConfig { dir: Some(runs().data.clone()), ..Default::default() };
    let env = dsrm_sim::EnvConfig::default();
    let load = |kind, selection| {
        let _torch = dsrm_nn::runtime::exclusive();
        dsrm_serve::loaded::load_heuristic(kind, &data, &env, 3, selection, &dsrm_study::progress::quiet)
    };
    let argmax = dsrm_policy::Selection::Argmax;
    let loaded = load(HeuristicKind::MostPopular, argmax).unwrap();
    // The training log's row counts, for the expected order (ties: the smallest dense id).
    let world =
        dsrm_study::loading::load_world_from(&data, &env, &Default::default(), &dsrm_study::progress::quiet).unwrap();
    let n = world.spec.n_items();
    let mut count = vec![0usize; n];
    world.train.item.iter().filter(|&&i| (i as usize) < n).for_each(|&i| count[i as usize] += 1);
    let mut order: Vec<usize> = (0..count.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(count[i]), i));
    let id = |i: usize| u64::from(world.item_ids[i]);
    let metrics = std::sync::Arc::new(dsrm_serve::metrics::Metrics::new().unwrap());
    let mut engine = dsrm_serve::Engine::new(loaded, EngineSettings::default(), metrics, None).unwrap();
    assert_eq!(engine.info().policy, "most-popular");
    let user_id = engine.info().sample_user_ids[0];
    let req = RecommendRequest { session_id: "h".into(), user_id, k: 4 };
    let first = engine.recommend(&req).unwrap();
    assert_eq!(first.items, order[..4].iter().map(|&i| id(i)).collect::<Vec<_>>());
    assert!(!first.fairness.hierarchical);
    // Consuming the most popular item masks it: the next top 4 starts one further down.
    engine.feedback(&FeedbackRequest { session_id: "h".into(), video_id: id(order[0]), reward: 0.5 }).unwrap();
    assert_eq!(engine.recommend(&req).unwrap().items, order[1..5].iter().map(|&i| id(i)).collect::<Vec<_>>());
    // Random and mf-greedy serve too (sampled: k distinct items); the bandits and the cycle are refused.
    for kind in [HeuristicKind::Random, HeuristicKind::MfGreedy] {
        let loaded = load(kind, dsrm_policy::Selection::Sampled).unwrap();
        let metrics = std::sync::Arc::new(dsrm_serve::metrics::Metrics::new().unwrap());
        let mut engine = dsrm_serve::Engine::new(loaded, EngineSettings::default(), metrics, None).unwrap();
        let got = engine.recommend(&RecommendRequest { session_id: "r".into(), user_id, k: 6 }).unwrap().items;
        assert_eq!(got.iter().collect::<std::collections::BTreeSet<_>>().len(), 6, "{kind}");
    }
    for kind in [HeuristicKind::CategoryCycling, HeuristicKind::EpsilonGreedy, HeuristicKind::Ucb] {
        let err = format!("{:#}", load(kind, argmax).err().unwrap());
        assert!(err.contains("cannot rank a top k"), "{kind}: {err}");
    }
}

#[test]
fn stopping_answers_the_requests_in_flight_and_never_a_5xx() {
    use http_body_util::Full;
    let server = start(&runs().hrl, EngineSettings::default(), None);
    let (addr, u) = (server.addr, user(&server));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // 40 requests in flight at once, then the stop: each answered 200, or refused / closed at the transport
    // level when it arrived after the listener closed; none answered 5xx or left hanging.
    let handles: Vec<_> = (0..40)
        .map(|i| {
            rt.spawn(async move {
                let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Full<bytes::Bytes>>();
                let body = json!({"session_id": format!("drain-{i}"), "user_id": u, "k": 5}).to_string();
                let req =
                    hyper::Request::post(format!("http://{addr}/v1/recommend")).body(Full::new(body.into())).unwrap();
                client.request(req).await.map(|r| r.status().as_u16()).ok()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    server.stop().unwrap();
    let statuses: Vec<Option<u16>> = rt.block_on(async {
        let mut out = Vec::new();
        for h in handles {
            out.push(tokio::time::timeout(Duration::from_secs(30), h).await.expect("a request hung").unwrap());
        }
        out
    });
    assert!(statuses.iter().flatten().all(|&s| s == 200), "{statuses:?}");
    assert!(statuses.iter().flatten().count() > 0, "no request was answered before the stop: {statuses:?}");
}
