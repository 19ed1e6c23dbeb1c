//! Out-of-sample probabilities by k-fold cross-validation, for confident learning:
//! every labelled review is scored by keyword and sentiment models that never saw its
//! label. Folds are fixed by the text, so a rerun on the same labels gives the same.

use sqlx::PgPool;

use super::data::{self, LabelledText};
use super::pipeline::{base, train_model};
use super::settings::TrainSettings;
use super::stages::base_vectors;
use super::{Dataset, Progress};
use crate::model::inputs;
use crate::model::outputs::probabilities;
use crate::taxonomy::Taxonomy;

/// Per labelled review (in the given order): every keyword's probability, a level
/// distribution for each keyword it is labelled with, and, when the models start from a
/// pretrained base, the base's sentence vector (for the neighbours' vote).
#[derive(Debug, Clone, Default)]
pub struct OutOfSample {
    pub keyword: Vec<Vec<f32>>,
    pub sentiment: Vec<Vec<(usize, Vec<f32>)>>,
    /// Empty without a pretrained base: a fresh encoder's vectors say nothing.
    pub vectors: Vec<Vec<f32>>,
}

impl OutOfSample {
    /// Every review's probability of keyword `k` (0 for a review left unscored).
    pub fn keyword_column(&self, k: usize) -> Vec<f32> {
        self.keyword.iter().map(|p| p.get(k).copied().unwrap_or(0.0)).collect()
    }
}

/// The fold of a review: a hash of its text (FNV-1a), so folds do not follow import order.
pub fn fold_of(text: &str, folds: usize) -> usize {
    let hash =
        text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    (hash % folds.max(1) as u64) as usize
}

/// How the out-of-sample probabilities are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub folds: usize,
    /// Keyword models trained per fold, each with its own seed (`fit.seed + r`), their
    /// probabilities averaged: one model's probabilities scatter with its seed, and a
    /// suspect should not be one seed's accident.
    pub repeats: usize,
    /// Whether the sentiment models are trained too (a keyword-only measurement skips them).
    pub sentiment: bool,
}

impl Plan {
    /// The audit's: one keyword and one sentiment model per fold.
    pub fn audit(folds: usize) -> Self {
        Plan { folds, repeats: 1, sentiment: true }
    }
}

/// Trains, for each of `plan.folds` folds, `plan.repeats` keyword models and (with
/// `plan.sentiment`) a sentiment model without that fold, with a fixed number of epochs
/// (no validation split: every label is needed), and scores the held-out fold with them.
pub async fn cross_validate(
    pool: &PgPool,
    settings: &TrainSettings,
    taxonomy: &Taxonomy,
    items: &[LabelledText],
    plan: &Plan,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<OutOfSample> {
    let folds = plan.folds;
    anyhow::ensure!(folds >= 2, "cross-validation needs at least 2 folds");
    let base = base(pool, settings, taxonomy, progress).await?;
    let tokenizer = inputs::truncating(&base.tokenizer, base.config.max_tokens());
    let fold: Vec<usize> = items.iter().map(|i| fold_of(&i.text, folds)).collect();
    let (k, levels) = (taxonomy.keywords.len(), (taxonomy.scale_max - taxonomy.scale_min + 1) as usize);
    let mut out = OutOfSample {
        keyword: vec![Vec::new(); items.len()],
        sentiment: vec![Vec::new(); items.len()],
        vectors: Vec::new(),
    };
    for f in 0..folds {
        settings.fit.cancel.check()?;
        let (held, kept): (Vec<usize>, Vec<usize>) = (0..items.len()).partition(|&i| fold[i] == f);
        if held.is_empty() || kept.is_empty() {
            continue;
        }
        let kept_items: Vec<&LabelledText> = kept.iter().map(|&i| &items[i]).collect();
        let held_items: Vec<&LabelledText> = held.iter().map(|&i| &items[i]).collect();
        let stage = format!("fold {}/{folds}", f + 1);

        let sets =
            [data::keyword_dataset(&kept_items, &tokenizer, k), Dataset::empty(true), Dataset::empty(true)];
        let held_rows = data::keyword_dataset(&held_items, &tokenizer, k).rows;
        let repeats = plan.repeats.max(1);
        for r in 0..repeats {
            let mut seeded = settings.clone();
            seeded.fit.seed = settings.fit.seed.wrapping_add(r as u64);
            let name =
                if repeats == 1 { format!("{stage} keyword") } else { format!("{stage} keyword {}", r + 1) };
            let (model, _, _) = train_model(&base, &seeded, k, &sets, &name, progress)?;
            let scored = probabilities(&model, &held_rows, true, settings.fit.batch_size)?;
            for (&i, p) in held.iter().zip(scored) {
                add_share(&mut out.keyword[i], &p, repeats);
            }
        }
        if !plan.sentiment {
            continue;
        }

        let input = settings.sentiment_input;
        let train = data::sentiment_dataset(&kept_items, &tokenizer, taxonomy, input);
        if train.is_empty() {
            continue;
        }
        let sets = [train, Dataset::empty(false), Dataset::empty(false)];
        let (model, _, _) =
            train_model(&base, settings, levels, &sets, &format!("{stage} sentiment"), progress)?;
        let pairs: Vec<(usize, usize)> =
            held.iter().flat_map(|&i| items[i].labels.iter().map(move |(kw, _)| (i, *kw))).collect();
        let rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|&(i, kw)| {
                inputs::encode_pair(&tokenizer, input, &items[i].text, &taxonomy.keywords[kw].name)
            })
            .collect();
        for (&(i, kw), d) in pairs.iter().zip(probabilities(&model, &rows, false, settings.fit.batch_size)?) {
            out.sentiment[i].push((kw, d));
        }
    }
    if settings.base.is_some() {
        let rows: Vec<Vec<u32>> = items.iter().map(|i| inputs::encode_review(&tokenizer, &i.text)).collect();
        out.vectors = base_vectors(&base, settings, &rows)?;
    }
    Ok(out)
}

/// Adds `p / repeats` into `sum` (empty at first).
fn add_share(sum: &mut Vec<f32>, p: &[f32], repeats: usize) {
    sum.resize(p.len(), 0.0);
    for (s, x) in sum.iter_mut().zip(p) {
        *s += x / repeats as f32;
    }
}
