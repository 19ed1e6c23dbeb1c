//! Keyword anchors: what the serving model makes of each keyword's own words, for the
//! keyword-anchors strategy. After a random first round most rare keywords have no
//! label or a couple, and neither the model's probability nor the look-alikes of those
//! few labels find their reviews well: in NIKL the labelled sentences mostly speak of a
//! frequent aspect beside the rare one, so their nearest reviews share the frequent one.
//! The keyword's name and guideline need no label and speak of that aspect alone;
//! measured on the first rounds of a NIKL simulation, the reviews nearest to the name
//! hold a keyword with at most five labels several times as often as the model's or the
//! labels' picks, and adding the guideline lifts the first round after the random one
//! further (docs/benchmarks.md#simulation).
//!
//! Anchors are stored per version by the first scorer that loads it (workers of a
//! sharded pass compute the same ones; the first insert wins), and the clustering pass
//! ranks each keyword's unlabelled reviews by their cosine to its anchor.

use sqlx::PgPool;

use crate::analyze::Analyzer;
use crate::select::similar::Labelled;
use crate::store::predictions;
use crate::taxonomy::{Keyword, Taxonomy};

/// The words of a keyword the model embeds as its anchor: the name with its separators
/// as spaces (`패키지/구성품#디자인` → `패키지 구성품 디자인`), then its current
/// guideline, which says in review words what the name only names (인지도: 유명함,
/// 인기, 입소문), so a better guideline also finds the keyword's reviews better.
pub fn anchor_text(keyword: &Keyword) -> String {
    let name = keyword.name.split(['#', '/', '_']).map(str::trim).filter(|w| !w.is_empty());
    name.chain([keyword.guideline.trim()].into_iter().filter(|g| !g.is_empty())).collect::<Vec<_>>().join(" ")
}

/// Stores the version's anchors unless some scorer already has.
pub async fn ensure(
    pool: &PgPool,
    analyzer: &Analyzer,
    taxonomy: &Taxonomy,
    version_id: i64,
) -> anyhow::Result<()> {
    if predictions::has_anchors(pool, version_id).await? {
        return Ok(());
    }
    let outputs = &analyzer.keyword.labels.keywords;
    // Taxonomy index of each keyword the model scores.
    let keywords: Vec<usize> =
        (0..taxonomy.keywords.len()).filter(|&k| outputs.contains(&taxonomy.keywords[k].name)).collect();
    let texts: Vec<String> = keywords.iter().map(|&k| anchor_text(&taxonomy.keywords[k])).collect();
    let scored = analyzer.score_many(&texts)?;
    let anchors: Vec<(i32, Vec<f32>)> =
        keywords.iter().zip(scored).map(|(&k, s)| (k as i32, s.embedding)).collect();
    predictions::insert_anchors(pool, version_id, &anchors).await?;
    Ok(())
}

/// The anchors as references to rank by ([`Labelled::nearest`]): one vector per keyword
/// that has an anchor, and the labelled reviews of `labelled` left out of the ranking.
pub fn as_references(anchors: Vec<(i32, Vec<f32>)>, labelled: &Labelled) -> Labelled {
    let keywords = anchors.iter().map(|(k, _)| vec![*k as usize]).collect();
    let vectors = anchors.into_iter().map(|(_, v)| v).collect();
    Labelled { ids: labelled.ids.clone(), vectors, keywords, count: labelled.count }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyword(name: &str, guideline: &str) -> Keyword {
        Keyword { id: 1, name: name.into(), position: 0, guideline: guideline.into() }
    }

    #[test]
    fn the_anchor_is_the_keywords_name_in_words_then_its_guideline() {
        assert_eq!(anchor_text(&keyword("패키지/구성품#디자인", "")), "패키지 구성품 디자인");
        assert_eq!(anchor_text(&keyword("제품 전체#일반", "  ")), "제품 전체 일반");
        assert_eq!(anchor_text(&keyword("배송", " 배송 속도, 포장 상태. ")), "배송 배송 속도, 포장 상태.");
    }

    #[test]
    fn anchors_rank_the_unlabelled_reviews_only() {
        let labelled = Labelled { ids: [7].into(), vectors: vec![], keywords: vec![], count: 3 };
        let references = as_references(vec![(0, vec![1.0, 0.0]), (2, vec![0.0, 1.0])], &labelled);
        let near = references.nearest(&[7, 8], &[vec![1.0, 0.0], vec![0.6, 0.8]]).unwrap();
        assert!(near[0].iter().all(|s| s.is_nan()), "review 7 is labelled: {near:?}");
        assert!((near[1][0] - 0.6).abs() < 1e-5 && (near[1][2] - 0.8).abs() < 1e-5, "{near:?}");
        assert!(near[1][1].is_nan(), "keyword 1 has no anchor");
    }
}
