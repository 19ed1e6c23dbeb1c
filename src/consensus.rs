//! Which label counts for a review when several exist. Annotations are append-only,
//! so "current" is derived: the latest answer of each labeller, and among labellers
//! the most authoritative source.

use std::collections::HashMap;

use crate::taxonomy::ResolvedLabels;

/// Where a label came from, in rising authority: a machine (silver), an annotator, a
/// QA fix (review), adjudication (gold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "label_source", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum LabelSource {
    Human,
    Silver,
    Gold,
    Review,
}

impl LabelSource {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "human" => Some(Self::Human),
            "silver" => Some(Self::Silver),
            "gold" => Some(Self::Gold),
            "review" => Some(Self::Review),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Silver => "silver",
            Self::Gold => "gold",
            Self::Review => "review",
        }
    }
}

/// One stored annotation with its keywords.
#[derive(Debug, Clone)]
pub struct StoredAnnotation {
    pub id: i64,
    pub review_id: i64,
    pub annotator_id: Option<i64>,
    pub source: LabelSource,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub labels: ResolvedLabels,
}

/// Who gave a label: a person, or an import of a given source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Labeller {
    User(i64),
    Import(LabelSource),
}

impl Labeller {
    pub fn of(a: &StoredAnnotation) -> Labeller {
        match a.annotator_id {
            Some(id) => Labeller::User(id),
            None => Labeller::Import(a.source),
        }
    }
}

/// Adjudicated beats a QA fix beats an annotator beats an imported machine label.
fn authority(source: LabelSource) -> u8 {
    match source {
        LabelSource::Gold => 3,
        LabelSource::Review => 2,
        LabelSource::Human => 1,
        LabelSource::Silver => 0,
    }
}

/// The latest annotation of each labeller of one review, oldest labeller first.
pub fn latest_per_labeller(annotations: &[StoredAnnotation]) -> Vec<&StoredAnnotation> {
    let mut latest: HashMap<Labeller, &StoredAnnotation> = HashMap::new();
    for a in annotations {
        let entry = latest.entry(Labeller::of(a)).or_insert(a);
        if a.id > entry.id {
            *entry = a;
        }
    }
    let mut out: Vec<_> = latest.into_values().collect();
    out.sort_by_key(|a| a.id);
    out
}

/// The label that counts: among each labeller's latest answer, the most authoritative
/// source wins, and within a source the most recent answer.
pub fn current(annotations: &[StoredAnnotation]) -> Option<&StoredAnnotation> {
    latest_per_labeller(annotations).into_iter().max_by_key(|a| (authority(a.source), a.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(id: i64, annotator: Option<i64>, source: LabelSource, keyword: i64) -> StoredAnnotation {
        StoredAnnotation {
            id,
            review_id: 1,
            annotator_id: annotator,
            source,
            created_at: chrono::Utc::now(),
            labels: ResolvedLabels { no_keyword: false, labels: vec![(keyword, 1)] },
        }
    }

    #[test]
    fn a_correction_replaces_the_same_annotators_earlier_answer() {
        let all = [
            ann(1, Some(7), LabelSource::Human, 1),
            ann(2, Some(8), LabelSource::Human, 2),
            ann(3, Some(7), LabelSource::Human, 3),
        ];
        let latest: Vec<i64> = latest_per_labeller(&all).iter().map(|a| a.id).collect();
        assert_eq!(latest, vec![2, 3]);
        assert_eq!(current(&all).unwrap().id, 3);
    }

    #[test]
    fn gold_wins_over_newer_human_and_silver_labels() {
        let all = [
            ann(1, None, LabelSource::Silver, 1),
            ann(2, Some(9), LabelSource::Gold, 2),
            ann(3, Some(7), LabelSource::Human, 3),
        ];
        assert_eq!(current(&all).unwrap().id, 2);
        assert_eq!(current(&all[..1]).unwrap().id, 1);
        assert!(current(&[]).is_none());
    }
}
