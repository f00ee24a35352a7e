//! The JSON bodies of the API and their parser. Every request type refuses unknown fields, and
//! [`parse`] turns any byte string into a typed request or an [`ApiError`] naming the field at fault, never
//! a panic (fuzzed in `tests/parser_fuzz.rs`).

use crate::error::ApiError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `POST /v1/recommend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendRequest {
    /// The caller's session key (1..=128 bytes). A new key opens a session.
    pub session_id: String,
    /// The data set's `user_id` (not a dense index). An id the run never saw gets the cold-start state.
    pub user_id: u64,
    /// How many items (1..=`max_k`, default 10).
    #[serde(default = "default_k")]
    pub k: u64,
}

fn default_k() -> u64 {
    10
}

/// `POST /v1/feedback`: the session consumed `video_id` and gave `reward`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub session_id: String,
    /// The data set's `video_id` (KuaiRec / KuaiRand) or item index (Coat).
    pub video_id: u64,
    /// The reward the user gave it, in the data set's reward range.
    pub reward: f64,
}

/// `PUT /v1/admin/fairness`: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FairnessRequest {
    /// A fixed target long-tail ratio ρ* ∈ [0, 1] for the high level.
    #[serde(default)]
    pub target_ratio: Option<f64>,
    /// Switch to the high level trained with this λ_f (the run's own or one loaded with `--retuned`); it also
    /// lifts a fixed ρ*.
    #[serde(default)]
    pub lambda_f: Option<f64>,
}

/// The answer to a recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecommendResponse {
    /// The data set's video ids, best first.
    pub items: Vec<u64>,
    /// The policy's score of each (its log-probability for an HRL or actor-critic policy, a Q-value for a
    /// Q-learner).
    pub scores: Vec<f64>,
    /// The policy's name (`hrl`, `a2c`, ...).
    pub policy: String,
    /// The fairness operating point that produced them.
    pub fairness: Fairness,
    /// True when the user is unknown to the run and got the cold-start state.
    pub cold_start: bool,
}

/// A fairness operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// True for a hierarchical policy (the only kind whose fairness can change live).
    pub hierarchical: bool,
    /// λ_f of the high level in use (`None`: flat policy).
    pub lambda_f: Option<f64>,
    /// The fixed ρ* in use (`None`: the learned high level decides).
    pub target_ratio: Option<f64>,
    /// The session's current goal vector (hierarchical policies; absent in `/v1/admin/fairness` answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<[f32; 2]>,
}

/// Parses a request body: JSON of type `T`, unknown fields refused. The error names the field at fault:
/// the path serde stopped at (`k`), the unknown or missing field, or `body` for what is not JSON at all.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let field = named_field(&message).unwrap_or_else(|| {
            if path == "." || path.is_empty() || path.contains('?') {
                "body".to_string()
            } else {
                path
            }
        });
        ApiError::bad_request(&field, message)
    })?;
    de.end().map_err(|e| ApiError::bad_request("body", format!("trailing characters after the JSON value: {e}")))?;
    Ok(value)
}

/// The field a serde message names (`unknown field `x``, `missing field `k``), if any.
fn named_field(message: &str) -> Option<String> {
    let rest = ["unknown field `", "missing field `", "duplicate field `"].iter().find_map(|p| {
        let at = message.find(p)?;
        Some(&message[at + p.len()..])
    })?;
    let end = rest.find('`')?;
    // A field with an empty name is still a field, but naming it "" names nothing: the body stands for it.
    (end > 0).then(|| rest[..end].to_string())
}

/// Checks a session id: 1..=128 bytes, no control characters.
pub fn check_session_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::bad_request("session_id", format!("must be 1 to 128 bytes long, got {}", id.len())));
    }
    if id.chars().any(char::is_control) {
        return Err(ApiError::bad_request("session_id", "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_at_fault() {
        let field = |text: &str| parse::<RecommendRequest>(text.as_bytes()).unwrap_err().field.unwrap();
        assert_eq!(field("{\"session_id\":\"a\",\"user_id\":1,\"kk\":3}"), "kk");
        assert_eq!(field("{\"session_id\":\"a\",\"k\":3}"), "user_id");
        assert_eq!(field("{\"session_id\":\"a\",\"user_id\":1,\"k\":\"ten\"}"), "k");
        assert_eq!(field("{\"session_id\":\"a\",\"user_id\":-1}"), "user_id");
        assert_eq!(field("not json"), "body");
        assert_eq!(field("{\"session_id\":\"a\",\"user_id\":1} x"), "body");
        assert_eq!(field(""), "body");
        assert_eq!(field("{\"\":null}"), "body");
        let ok: RecommendRequest = parse(b"{\"session_id\":\"a\",\"user_id\":7}").unwrap();
        assert_eq!((ok.user_id, ok.k), (7, 10));
        let f: FairnessRequest = parse(b"{\"lambda_f\":0.5}").unwrap();
        assert_eq!(f, FairnessRequest { target_ratio: None, lambda_f: Some(0.5) });
        assert_eq!(
            parse::<FeedbackRequest>(b"{\"session_id\":\"a\",\"video_id\":1,\"reward\":\"x\"}")
                .unwrap_err()
                .field
                .unwrap(),
            "reward"
        );
    }
}
