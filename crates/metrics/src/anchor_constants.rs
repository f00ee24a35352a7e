//! DORL's shipped dominant-category lists, for MCD parity (`docs/protocol.md` §6.1, "MCD dominant categories").
//!
//! DORL-codes (818c9bd) caches the category ranking in `environments/KuaiRec/env/feature_domination.pickle`
//! and `environments/KuaiRand_Pure/env/feature_domination.pickle`; every published MCD (`ifeat_feat`)
//! was computed from these files. Their pickled shares sum to 0.115 (KuaiRec) and 0.509 (KuaiRand), not
//! 1; the evaluator renormalises them and keeps the longest prefix with cumulative share ≤ 0.8, which
//! yields exactly the lists below. The pickles store +1-shifted ids (0 = padding); these constants are
//! the **raw** tag ids (shifted − 1), in rank order, so they compare directly with the raw tag lists of
//! the data crate. Recomputing the lists from data ([`crate::dominant_categories`]) is the alternative;
//! record which one a result used.

/// KuaiRec dominant raw tags (10), in rank order. Shifted ids: 29, 9, 12, 7, 10, 27, 8, 6, 18, 2.
pub const KUAIREC_DOMINANT_RAW_TAGS: [i32; 10] = [28, 8, 11, 6, 9, 26, 7, 5, 17, 1];

/// KuaiRand-Pure dominant raw tags (12), in rank order. Shifted ids: 40, 10, 4, 7, 13, 21, 18, 69, 29, 8, 44, 12.
pub const KUAIRAND_DOMINANT_RAW_TAGS: [i32; 12] = [39, 9, 3, 6, 12, 20, 17, 68, 28, 7, 43, 11];
