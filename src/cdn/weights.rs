//! Weighted round robin over CDN base URLs (the seed article's fused multi-CDN): each base gets
//! a share of clients in proportion to its weight, spread evenly rather than in bursts.

use std::sync::Mutex;

use crate::config::CdnBase;

/// Smooth weighted round robin (as nginx does): every pick adds each weight to its running
/// score, takes the highest, and subtracts the total from the winner.
#[derive(Debug, Default)]
pub struct WeightedBases {
    bases: Vec<CdnBase>,
    scores: Mutex<Vec<i64>>,
}

impl WeightedBases {
    /// Bases with weight 0 are never picked (kept listed, e.g. drained for maintenance).
    pub fn new(bases: Vec<CdnBase>) -> WeightedBases {
        let n = bases.len();
        WeightedBases {
            bases,
            scores: Mutex::new(vec![0; n]),
        }
    }

    pub fn all(&self) -> &[CdnBase] {
        &self.bases
    }

    /// The next base URL, or None when every weight is 0 or there are none.
    pub fn pick(&self) -> Option<&str> {
        let total: i64 = self.bases.iter().map(|b| b.weight as i64).sum();
        if total == 0 {
            return None;
        }
        let mut scores = crate::sync::lock(&self.scores);
        let mut best = 0;
        for (i, base) in self.bases.iter().enumerate() {
            scores[i] += base.weight as i64;
            if scores[i] > scores[best] {
                best = i;
            }
        }
        scores[best] -= total;
        Some(&self.bases[best].url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_follow_weights_and_interleave() {
        let w = WeightedBases::new(vec![
            CdnBase {
                url: "a".into(),
                weight: 3,
            },
            CdnBase {
                url: "b".into(),
                weight: 1,
            },
            CdnBase {
                url: "c".into(),
                weight: 0,
            },
        ]);
        let picks: Vec<&str> = (0..8).map(|_| w.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|p| **p == "a").count(), 6);
        assert_eq!(picks.iter().filter(|p| **p == "b").count(), 2);
        assert!(!picks.contains(&"c"));
        assert_ne!(&picks[..4], &["a", "a", "a", "b"][..]);
        assert!(WeightedBases::new(vec![]).pick().is_none());
    }
}
