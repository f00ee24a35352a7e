//! The request parser on random bytes and random JSON: it answers Ok or a 400 naming a field, never panics.
//! The short version runs here; `PROPTEST_CASES=1000000 cargo test -p dsrm-serve --release --test parser_fuzz`
//! is the long one (docs/serving.md).

use dsrm_serve::request::{parse, FairnessRequest, FeedbackRequest, RecommendRequest};
use proptest::prelude::*;

fn check(bytes: &[u8]) {
    for result in [
        parse::<RecommendRequest>(bytes).map(|_| ()),
        parse::<FeedbackRequest>(bytes).map(|_| ()),
        parse::<FairnessRequest>(bytes).map(|_| ()),
    ] {
        if let Err(e) = result {
            assert_eq!(e.status.as_u16(), 400);
            assert!(e.field.as_deref().is_some_and(|f| !f.is_empty()), "{e}");
        }
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("session_id".to_string()),
                    Just("user_id".to_string()),
                    Just("k".to_string()),
                    Just("video_id".to_string()),
                    Just("reward".to_string()),
                    Just("target_ratio".to_string()),
                    Just("lambda_f".to_string()),
                    ".{0,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check(&bytes);
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        check(value.to_string().as_bytes());
    }
}
