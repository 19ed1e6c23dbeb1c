//! Confident learning (Northcutt et al.): which given labels the model, trained without
//! them (out-of-sample probabilities from k-fold cross-validation), confidently
//! contradicts. Each class gets its own threshold, the average probability the model
//! gives that class on the items labelled with it, so a class the model is generally
//! unsure of is not drowned by confident ones.
//!
//! Suspects are ranked the same way: by how far the suggested class's probability goes
//! past its threshold, as a share of the room above it. Ranked by the raw margin, a
//! keyword's missing labels (its "present" threshold 0.52 to 0.65 on NIKL) lost to its
//! wrong ones (the "absent" threshold 0.78 to 0.82): chosen on planted errors of seed 8
//! (`bench audit`), it found 0.7 to 1.3 points more of them, and removed labels most
//! (docs/benchmarks.md#label-error-detection).

#[derive(Debug, Clone, PartialEq)]
pub struct Suspect {
    /// Position in the input.
    pub index: usize,
    pub given: usize,
    /// The class the model believes in instead.
    pub suggested: usize,
    /// Probability of the suggested class minus that of the given one.
    pub margin: f32,
    /// How far the suggested class's probability passes its threshold, as a share of
    /// the room above it (0 at the threshold, 1 at certainty): the rank.
    pub excess: f32,
}

/// Per-class thresholds: the mean probability of class `c` over items labelled `c`
/// (`None` for a class nobody was given).
pub fn thresholds(probabilities: &[Vec<f32>], given: &[usize], classes: usize) -> Vec<Option<f32>> {
    let mut sums = vec![(0.0f64, 0usize); classes];
    for (p, &g) in probabilities.iter().zip(given) {
        if g < classes {
            sums[g].0 += p[g] as f64;
            sums[g].1 += 1;
        }
    }
    sums.into_iter().map(|(s, n)| (n > 0).then(|| (s / n as f64) as f32)).collect()
}

/// Items whose probability for another class reaches that class's threshold, most
/// confident contradiction first. Binary keywords are two classes: [absent, present].
pub fn suspects(probabilities: &[Vec<f32>], given: &[usize]) -> Vec<Suspect> {
    let classes = probabilities.first().map_or(0, Vec::len);
    let limits = thresholds(probabilities, given, classes);
    let mut found: Vec<Suspect> = probabilities
        .iter()
        .zip(given)
        .enumerate()
        .filter_map(|(index, (p, &given))| {
            let suggested = (0..classes)
                .filter(|&c| c != given && limits[c].is_some_and(|t| p[c] >= t))
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))?;
            let margin = p[suggested] - p.get(given).copied().unwrap_or(0.0);
            let limit = limits[suggested].unwrap_or(0.0);
            let excess = (p[suggested] - limit) / (1.0 - limit).max(f32::EPSILON);
            (margin > 0.0).then_some(Suspect { index, given, suggested, margin, excess })
        })
        .collect();
    found.sort_by(|a, b| b.excess.total_cmp(&a.excess).then(a.index.cmp(&b.index)));
    found
}

/// A keyword's suspects from the probability that it is present and whether it was
/// labelled: suggested 1 = keyword missing, 0 = keyword wrongly present.
pub fn keyword_suspects(present: &[f32], labelled: &[bool]) -> Vec<Suspect> {
    let probabilities: Vec<Vec<f32>> = present.iter().map(|&p| vec![1.0 - p, p]).collect();
    let given: Vec<usize> = labelled.iter().map(|&l| l as usize).collect();
    suspects(&probabilities, &given)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_labels_are_found_and_ranked_first() {
        // 20 clean items each way, one keyword missing (p 0.95) and one wrongly given (p 0.08).
        let mut present = Vec::new();
        let mut labelled = Vec::new();
        for i in 0..20 {
            present.push(0.85 + (i % 5) as f32 * 0.02);
            labelled.push(true);
            present.push(0.05 + (i % 5) as f32 * 0.02);
            labelled.push(false);
        }
        present.push(0.95);
        labelled.push(false); // index 40: missing
        present.push(0.08);
        labelled.push(true); // index 41: wrongly present
        let found = keyword_suspects(&present, &labelled);
        let top: Vec<(usize, usize)> = found.iter().take(2).map(|s| (s.index, s.suggested)).collect();
        assert_eq!(top, vec![(40, 1), (41, 0)]);
        assert!(found.len() <= 6, "few clean items are suspected: {found:?}");
    }

    #[test]
    fn each_class_is_judged_against_its_own_confidence() {
        // Class 2 is hard: the model gives it only ~0.4 on its own items. An item labelled
        // 0 with 0.45 for class 2 is therefore a suspect, though 0.45 is no majority.
        let mut probabilities = vec![vec![0.9, 0.05, 0.05]; 10];
        let mut given = vec![0; 10];
        probabilities.extend(vec![vec![0.3, 0.3, 0.4]; 10]);
        given.extend(vec![2; 10]);
        probabilities.push(vec![0.35, 0.2, 0.45]);
        given.push(0);
        let limits = thresholds(&probabilities, &given, 3);
        assert!((limits[2].unwrap() - 0.4).abs() < 1e-6);
        assert_eq!(limits[1], None, "nobody was given class 1");
        let found = suspects(&probabilities, &given);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].index, found[0].given, found[0].suggested), (20, 0, 2));
        assert!((found[0].margin - 0.10).abs() < 1e-6);
    }

    #[test]
    fn a_contradiction_counts_against_the_suggested_class_own_confidence() {
        // Presence is hard (about 0.56 on labelled items), absence easy (about 0.84). An
        // unlabelled item at 0.8 goes more than half-way from presence's threshold to
        // certainty; a labelled one at 0.12 (absence 0.88) a quarter of the way from
        // absence's. The raw margins (0.6, 0.76) would rank them the other way round.
        let mut present = vec![0.6; 10];
        let mut labelled = vec![true; 10];
        present.extend(vec![0.1; 10]);
        labelled.extend(vec![false; 10]);
        present.extend([0.8, 0.12]);
        labelled.extend([false, true]);
        let found = keyword_suspects(&present, &labelled);
        let order: Vec<(usize, usize)> = found.iter().map(|s| (s.index, s.suggested)).collect();
        assert_eq!(&order[..2], &[(20, 1), (21, 0)], "{found:?}");
        assert!(found[0].margin < found[1].margin && found[0].excess > found[1].excess);
    }

    #[test]
    fn agreeing_models_raise_nothing() {
        assert!(keyword_suspects(&[0.9, 0.1, 0.8, 0.2], &[true, false, true, false]).is_empty());
        assert!(keyword_suspects(&[], &[]).is_empty());
    }
}
