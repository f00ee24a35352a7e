//! The per-item facts that turn trajectories into metrics, derived once per world.

use dsrm_metrics::{anchor_constants, dominant_categories, dominant_items, ItemContext, ItemSimilarity, TagJaccard};
use dsrm_sim::{QuitRule, World};
use serde::{Deserialize, Serialize};

/// Where the MCD dominant categories come from (`docs/protocol.md` §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DominantSource {
    /// The anchors' shipped lists for real KuaiRec / KuaiRand-Pure; recomputed for synthetic data and Coat.
    #[default]
    Auto,
    /// DORL's shipped `feature_domination.pickle` lists (parity with the published logs).
    Anchor,
    /// Recomputed from the positive rows of this world's training log (top_rate 0.8).
    Recompute,
}

/// Metric inputs owned in one place; [`MetricInputs::context`] lends them to `dsrm_metrics::compute`.
pub struct MetricInputs {
    pub n_items: usize,
    /// The popular set P (`World::popular`) and the share of the catalogue it holds.
    pub popular: Vec<bool>,
    pub popular_fraction: f64,
    pub dominant: Vec<bool>,
    /// The dominant raw tags and where they came from, recorded with results.
    pub dominant_tags: Vec<i32>,
    pub dominant_source: String,
    pub popularity: Vec<f64>,
    pub item_tags: Vec<Vec<i32>>,
    pub similarity: Box<dyn ItemSimilarity + Send + Sync>,
    pub similarity_name: String,
}

/// 1 / (1 + distance) from a dense distance matrix (Coat: ground-truth column distances).
struct InverseDistance {
    n_items: usize,
    distance: Vec<f32>,
}

impl ItemSimilarity for InverseDistance {
    fn similarity(&self, a: u32, b: u32) -> f64 {
        1.0 / (1.0 + f64::from(self.distance[a as usize * self.n_items + b as usize]))
    }
}

/// MCD keeps the categories covering up to 80% of positive training feedback (§6.1).
pub const MCD_TOP_RATE: f64 = 0.8;

impl MetricInputs {
    /// Derives the metric inputs of a world.
    pub fn new(world: &World, source: DominantSource) -> Self {
        let n_items = world.spec.n_items();
        let anchor: Option<&[i32]> = match world.dataset.as_str() {
            "kuairec" => Some(&anchor_constants::KUAIREC_DOMINANT_RAW_TAGS),
            "kuairand-pure" => Some(&anchor_constants::KUAIRAND_DOMINANT_RAW_TAGS),
            _ => None,
        };
        let use_anchor = match source {
            DominantSource::Anchor => anchor.is_some(),
            DominantSource::Recompute => false,
            DominantSource::Auto => anchor.is_some() && !world.is_synthetic(),
        };
        let (dominant_tags, dominant_source) = match (use_anchor, anchor) {
            (true, Some(list)) => {
                (list.to_vec(), format!("anchor: DORL feature_domination list for {}", world.dataset))
            }
            _ => (
                dominant_categories(&world.positive_tag_counts, MCD_TOP_RATE),
                format!("recomputed from positive training rows, top_rate {MCD_TOP_RATE}"),
            ),
        };
        let dominant = dominant_items(&world.item_tags, &dominant_tags);
        let (similarity, similarity_name): (Box<dyn ItemSimilarity + Send + Sync>, String) = match &world.spec.quit {
            QuitRule::Distance { distance, .. } => (
                Box::new(InverseDistance { n_items, distance: distance.clone() }),
                "1 / (1 + ground-truth column distance)".into(),
            ),
            QuitRule::Category { .. } => {
                (Box::new(TagJaccard::new(&world.item_tags)), "Jaccard of raw tag sets".into())
            }
        };
        Self {
            n_items,
            popular: world.popular(),
            popular_fraction: world.popular_fraction(),
            dominant,
            dominant_tags,
            dominant_source,
            popularity: world.popularity.clone(),
            item_tags: world.item_tags.clone(),
            similarity,
            similarity_name,
        }
    }

    /// Borrowed view for `dsrm_metrics::compute`.
    pub fn context(&self) -> ItemContext<'_> {
        ItemContext {
            n_items: self.n_items,
            dominant: &self.dominant,
            popular: &self.popular,
            popularity: &self.popularity,
            similarity: self.similarity.as_ref(),
            item_tags: Some(&self.item_tags),
        }
    }
}
