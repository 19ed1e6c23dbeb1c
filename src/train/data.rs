//! Training sets from the label store: the current label of each review (as of a label
//! snapshot), turned into token ids for the keyword and the sentiment model.

use sqlx::PgPool;
use tokenizers::Tokenizer;

use super::{Dataset, Targets};
use crate::consensus;
use crate::model::inputs::{encode_pair, encode_review, SentimentInput};
use crate::split::Split;
use crate::store::reviews;
use crate::taxonomy::Taxonomy;

/// A review with the label that counts for it.
#[derive(Debug, Clone)]
pub struct LabelledText {
    pub text: String,
    pub split: Split,
    /// (index of the keyword in the taxonomy, level)
    pub labels: Vec<(usize, i16)>,
    /// Where the label lives in the store: (review id, annotation id); none for a file.
    pub stored: Option<(i64, i64)>,
}

/// Every labelled review of the taxonomy with its current label, using annotations up
/// to `up_to` only.
pub async fn labelled(
    pool: &PgPool,
    taxonomy: &Taxonomy,
    up_to: Option<i64>,
) -> sqlx::Result<Vec<LabelledText>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = reviews::page_with_annotations(pool, taxonomy.id, after, 2000, up_to).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.id;
        for (review, annotations) in page {
            let Some(current) = consensus::current(&annotations) else { continue };
            let labels = current
                .labels
                .labels
                .iter()
                .filter_map(|(id, level)| {
                    taxonomy.keywords.iter().position(|k| k.id == *id).map(|i| (i, *level))
                })
                .collect();
            let stored = Some((review.id, current.id));
            out.push(LabelledText { text: review.text, split: review.split, labels, stored });
        }
    }
    Ok(out)
}

/// All review texts of the taxonomy, labelled or not, for tokenizer and MLM training.
pub async fn all_texts(pool: &PgPool, taxonomy_id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT text FROM reviews WHERE taxonomy_id = $1 ORDER BY id")
        .bind(taxonomy_id)
        .fetch_all(pool)
        .await
}

/// Multi-hot keyword targets.
pub fn keyword_dataset(items: &[&LabelledText], tokenizer: &Tokenizer, keywords: usize) -> Dataset {
    let rows = items.iter().map(|i| encode_review(tokenizer, &i.text)).collect();
    let targets = items
        .iter()
        .map(|i| {
            let mut t = vec![0.0; keywords];
            for (k, _) in &i.labels {
                t[*k] = 1.0;
            }
            t
        })
        .collect();
    Dataset { rows, targets: Targets::MultiLabel(targets) }
}

/// One row per (review, labelled keyword), the class being `level − scale_min`.
pub fn sentiment_dataset(
    items: &[&LabelledText],
    tokenizer: &Tokenizer,
    taxonomy: &Taxonomy,
    input: SentimentInput,
) -> Dataset {
    let (mut rows, mut classes) = (Vec::new(), Vec::new());
    for item in items {
        for (k, level) in &item.labels {
            rows.push(encode_pair(tokenizer, input, &item.text, &taxonomy.keywords[*k].name));
            classes.push((level - taxonomy.scale_min) as u32);
        }
    }
    Dataset { rows, targets: Targets::SingleLabel(classes) }
}
