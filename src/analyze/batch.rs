//! Many reviews at once, for scoring the pool: keyword probabilities, the sentence
//! vector the keyword model pooled (for clustering), and a sentiment distribution for
//! each found keyword; and full analyses of many reviews, for the API.

use candle_core::Result;

use super::{Analysis, Analyzer, Ask, Highlights, BATCH};
use crate::model::classifier::Classifier;
use crate::model::inputs;
use crate::model::inputs::SentimentInput;
use crate::model::outputs::probabilities;
use crate::text;

#[derive(Debug, Clone)]
pub struct Scored {
    pub probabilities: Vec<f32>,
    /// Found keywords (index into the taxonomy's keywords) with their level distribution.
    pub sentiments: Vec<(usize, Vec<f32>)>,
    pub embedding: Vec<f32>,
}

/// What one batched pass over many reviews gives: probabilities, pooled vectors, and
/// the level distribution of each found keyword.
pub(super) struct Pass {
    pub texts: Vec<String>,
    /// Tokens of each review's keyword row.
    pub tokens: Vec<usize>,
    pub probabilities: Vec<Vec<f32>>,
    embeddings: Vec<Vec<f32>>,
    pub sentiments: Vec<Vec<(usize, Vec<f32>)>>,
    /// Per review, per token, per keyword: the token's share of the logits (when asked
    /// for and the pooling gives them).
    pub shares: Vec<Option<Vec<Vec<f32>>>>,
}

impl Analyzer {
    pub fn score_many(&self, texts: &[String]) -> anyhow::Result<Vec<Scored>> {
        let pass = self.pass(texts, false)?;
        Ok(pass
            .probabilities
            .into_iter()
            .zip(pass.embeddings)
            .zip(pass.sentiments)
            .map(|((probabilities, embedding), sentiments)| Scored { probabilities, sentiments, embedding })
            .collect())
    }

    /// Full analyses of many reviews, with highlights found as each review asks; every
    /// stage runs batched over all reviews together.
    pub fn analyze_many(&self, texts: &[String], highlights: &[Highlights]) -> anyhow::Result<Vec<Analysis>> {
        let asks: Vec<Ask> = (0..texts.len())
            .map(|i| Ask::Analysis(highlights.get(i).copied().unwrap_or(Highlights::None)))
            .collect();
        let mut staged = self.stage(texts, &asks)?;
        self.mask_all(&mut staged)?;
        Ok(staged.into_iter().map(|s| self.finish(s)).collect())
    }

    pub(super) fn pass(&self, texts: &[String], with_shares: bool) -> anyhow::Result<Pass> {
        let texts: Vec<String> = texts.iter().map(|t| text::normalize(t)).collect();
        let rows: Vec<Vec<u32>> =
            texts.iter().map(|t| inputs::encode_review(&self.keyword.tokenizer, t)).collect();
        let (probs, embeddings, shares) = keyword_pass(&self.keyword.classifier, &rows, with_shares)?;
        let pairs: Vec<(usize, usize)> = probs
            .iter()
            .enumerate()
            .flat_map(|(r, p)| self.found(p).into_iter().map(move |k| (r, k)))
            .collect();
        let input = self.sentiment.labels.sentiment_input.unwrap_or(SentimentInput::Pair);
        let pair_rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|&(r, k)| {
                inputs::encode_pair(
                    &self.sentiment.tokenizer,
                    input,
                    &texts[r],
                    &self.keyword.labels.keywords[k],
                )
            })
            .collect();
        let distributions = probabilities(&self.sentiment.classifier, &pair_rows, false, BATCH)?;
        let mut sentiments = vec![Vec::new(); texts.len()];
        for (&(r, k), d) in pairs.iter().zip(distributions) {
            sentiments[r].push((k, d));
        }
        let limit = self.keyword.max_tokens();
        let tokens = rows.iter().map(|r| r.len().min(limit)).collect();
        Ok(Pass { texts, tokens, probabilities: probs, embeddings, sentiments, shares })
    }
}

/// Per review: keyword probabilities, the pooled sentence vector, and the tokens'
/// shares of the logits (when asked for).
type KeywordPass = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Option<Vec<Vec<f32>>>>);

/// Probabilities and pooled vectors from one encoder pass per batch, shortest rows
/// together so batches pad little.
fn keyword_pass(model: &Classifier, rows: &[Vec<u32>], with_shares: bool) -> Result<KeywordPass> {
    let mut probs = vec![Vec::new(); rows.len()];
    let mut embeddings = vec![Vec::new(); rows.len()];
    let mut shares = vec![None; rows.len()];
    for chunk in crate::model::outputs::by_length(rows, BATCH) {
        let chunk = &chunk[..];
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| rows[i].clone()).collect();
        let (pooled, token_shares) = if with_shares {
            model.pooled_with_shares(&batch)?
        } else {
            (model.pooled(&batch, false)?, None)
        };
        let p = candle_nn::ops::sigmoid(&model.classify(&pooled, &batch)?)?;
        for ((&i, p), e) in chunk.iter().zip(p.to_vec2::<f32>()?).zip(pooled.to_vec2::<f32>()?) {
            probs[i] = p;
            embeddings[i] = e;
        }
        if let Some(token_shares) = token_shares {
            for (&i, mut row) in chunk.iter().zip(token_shares.to_vec3::<f32>()?) {
                row.truncate(rows[i].len());
                shares[i] = Some(row);
            }
        }
    }
    Ok((probs, embeddings, shares))
}
