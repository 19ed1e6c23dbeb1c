//! Training: AdamW with warm-up and linear decay, weighted losses for skewed labels,
//! early stopping on the validation score with the best weights restored, fixed seeds,
//! batches of similar length.

pub mod adapt;
pub mod compare;
pub mod data;
pub mod evaluate;
pub mod folds;
pub mod lighter;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod pipeline;
pub mod pretrain;
pub mod settings;
mod stages;

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{ParamsAdamW, VarMap};
use serde::{Deserialize, Serialize};

use crate::model::classifier::Classifier;
use crate::model::outputs::{activate, argmax};
use crate::model::random;

/// What a model learns to predict for each row.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Keyword model: one 0/1 per keyword.
    MultiLabel(Vec<Vec<f32>>),
    /// Sentiment model: a class index (level − scale minimum).
    SingleLabel(Vec<u32>),
    /// Keyword model learning from a teacher: its probability per keyword.
    Taught(Vec<Vec<f32>>),
    /// Sentiment model learning from a teacher: its distribution over the classes.
    Distribution(Vec<Vec<f32>>),
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub rows: Vec<Vec<u32>>,
    pub targets: Targets,
}

impl Dataset {
    /// No rows: an absent validation or test split.
    pub fn empty(multi_label: bool) -> Dataset {
        let targets =
            if multi_label { Targets::MultiLabel(Vec::new()) } else { Targets::SingleLabel(Vec::new()) };
        Dataset { rows: Vec::new(), targets }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Multi-label targets as booleans (empty for single-label data).
    pub fn truth_sets(&self) -> Vec<Vec<bool>> {
        match &self.targets {
            Targets::MultiLabel(t) | Targets::Taught(t) => {
                t.iter().map(|r| r.iter().map(|&x| x > 0.5).collect()).collect()
            }
            Targets::SingleLabel(_) | Targets::Distribution(_) => Vec::new(),
        }
    }

    /// Class indices of single-label data (the most likely class of a distribution).
    pub fn classes(&self) -> Vec<u32> {
        match &self.targets {
            Targets::MultiLabel(_) | Targets::Taught(_) => Vec::new(),
            Targets::SingleLabel(c) => c.clone(),
            Targets::Distribution(d) => d.iter().map(|p| argmax(p) as u32).collect(),
        }
    }

    /// What early stopping watches, higher is better: keyword micro F1 at thresholds
    /// tuned on these rows (the way the model will be used), or sentiment macro F1.
    /// Validation loss is a poor guide here: weighted losses keep rising on rare
    /// classes while the decisions are still getting better.
    fn score(&self, probs: &[Vec<f32>]) -> f64 {
        match &self.targets {
            Targets::MultiLabel(t) | Targets::Taught(t) => {
                let k = t.first().map(Vec::len).unwrap_or(0);
                let truth = self.truth_sets();
                let thresholds = metrics::best_thresholds(probs, &truth, k);
                metrics::multi_label(&vec![String::new(); k], &truth, &metrics::decide(probs, &thresholds))
                    .micro
                    .f1
            }
            Targets::SingleLabel(_) | Targets::Distribution(_) => {
                let n = probs.first().map(Vec::len).unwrap_or(0);
                let truth: Vec<usize> = self.classes().iter().map(|&x| x as usize).collect();
                let predicted: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
                metrics::single_label(&vec![String::new(); n], &truth, &predicted).macro_avg.f1
            }
        }
    }

    fn target_tensor(&self, indices: &[usize], device: &candle_core::Device) -> Result<Tensor> {
        match &self.targets {
            Targets::MultiLabel(t) | Targets::Taught(t) | Targets::Distribution(t) => {
                let k = t.first().map(Vec::len).unwrap_or(0);
                let values: Vec<f32> = indices.iter().flat_map(|&i| t[i].iter().copied()).collect();
                Tensor::from_vec(values, (indices.len(), k), device)
            }
            Targets::SingleLabel(c) => {
                Tensor::from_vec(indices.iter().map(|&i| c[i]).collect::<Vec<_>>(), indices.len(), device)
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Share of all steps spent warming the learning rate up from 0.
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    /// Epochs without a better validation score before stopping.
    pub patience: usize,
    pub seed: u64,
    /// Share of ordinary tokens replaced by the mask token in each training batch: noise
    /// that keeps a small model from memorising a few thousand reviews.
    #[serde(default)]
    pub token_dropout: f32,
    /// The mask token's id (klue's layout puts `[MASK]` at 4).
    #[serde(default = "default_mask_token")]
    pub mask_token: u32,
    /// Step size of the lexical part's plain gradient steps at the peak learning rate
    /// (see [`optim::ClassifierOptimiser`]).
    #[serde(default = "default_lexical_rate")]
    pub lexical_rate: f64,
    /// Epochs of the lexical stage (see `stages::train_model`): cheap, as it runs
    /// no encoder.
    #[serde(default = "default_lexical_epochs")]
    pub lexical_epochs: usize,
    /// The head's learning rate as a multiple of `learning_rate`.
    #[serde(default = "one")]
    pub head_rate: f64,
    /// What of the encoder stays fixed (a pretrained base's embeddings, lower layers).
    #[serde(default)]
    pub frozen: crate::model::encoder::Frozen,
    /// Fewest validation reviews whose score may discard the encoder's stage in favour
    /// of the lexical stage before it (`stages::train_model`); with fewer, the encoder
    /// stage keeps its lowest-training-loss epoch. 0: validation always decides.
    #[serde(default)]
    pub validation_floor: usize,
    #[serde(skip)]
    pub parts: optim::Parts,
    /// Checked after every step: training stops with an error once it is set.
    #[serde(skip)]
    pub cancel: crate::cancel::Cancel,
}

pub(super) fn default_mask_token() -> u32 {
    4
}

/// Measured on NIKL with 2^16 buckets, the lexical part trained alone: 8 and 16 reach
/// their best validation scores within ten epochs.
pub(super) fn default_lexical_rate() -> f64 {
    16.0
}

pub(super) fn default_lexical_epochs() -> usize {
    40
}

fn one() -> f64 {
    1.0
}

use crate::model::vocab::FIRST_ORDINARY_TOKEN;

/// Replaces each ordinary token with `mask` with probability `share`.
fn drop_tokens(mut rows: Vec<Vec<u32>>, share: f32, mask: u32) -> Vec<Vec<u32>> {
    if share > 0.0 {
        for token in rows.iter_mut().flatten() {
            if *token >= FIRST_ORDINARY_TOKEN && random::uniform() < share {
                *token = mask;
            }
        }
    }
    rows
}

/// Learning rate at `step` of `total`: linear warm-up, then linear decay to zero.
pub fn learning_rate(base: f64, step: usize, total: usize, warmup: usize) -> f64 {
    if step < warmup {
        base * (step + 1) as f64 / warmup as f64
    } else {
        base * (total.saturating_sub(step)) as f64 / (total - warmup).max(1) as f64
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: Option<f64>,
    /// Keyword micro F1 or sentiment macro F1 on validation (see `Dataset::score`).
    #[serde(default)]
    pub valid_score: Option<f64>,
    /// Wall time of the epoch: its training steps and its validation pass.
    #[serde(default)]
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FitReport {
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Epochs of a first stage (the lexical part's) before this log's last stage.
    #[serde(default)]
    pub first_stage_epochs: usize,
}

impl FitReport {
    /// One log of two runs in a row: `later`'s epochs numbered on from this one's. The
    /// later run's epoch 0 is the weights it started from: this run's best.
    pub fn then(mut self, later: FitReport) -> FitReport {
        let offset = self.epochs.len();
        let best_epoch = if later.best_epoch == 0 { self.best_epoch } else { later.best_epoch + offset };
        self.epochs.extend(later.epochs.into_iter().map(|e| EpochLog { epoch: e.epoch + offset, ..e }));
        FitReport { epochs: self.epochs, best_epoch, first_stage_epochs: offset }
    }

    /// Whether the weights kept are the last stage's: false when no epoch of it beat
    /// what the first stage left on validation (with a lexical part, the encoder then
    /// adds nothing to the model kept).
    pub fn last_stage_kept(&self) -> bool {
        self.best_epoch > self.first_stage_epochs
    }
}

/// What a progress bar needs after each step.
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
    /// The last finished epoch's validation score, once there is one.
    pub valid_score: Option<f64>,
}

/// The loss of one batch, with weights computed once from the training targets. A
/// teacher's outputs already carry the weighting it was trained with, so a student
/// learns them unweighted (weighting them again would push rare keywords and levels up
/// twice).
enum Objective {
    MultiLabel { pos_weight: Tensor },
    SingleLabel { class_weight: Tensor },
    Distribution { class_weight: Tensor },
}

impl Objective {
    fn for_targets(targets: &Targets, outputs: usize, device: &candle_core::Device) -> Result<Self> {
        Ok(match targets {
            Targets::MultiLabel(t) => {
                Objective::MultiLabel { pos_weight: Tensor::new(loss::positive_weights(t, outputs), device)? }
            }
            Targets::SingleLabel(c) => {
                Objective::SingleLabel { class_weight: Tensor::new(loss::class_weights(c, outputs), device)? }
            }
            Targets::Taught(_) => {
                Objective::MultiLabel { pos_weight: Tensor::ones(outputs, DType::F32, device)? }
            }
            Targets::Distribution(_) => {
                Objective::Distribution { class_weight: Tensor::ones(outputs, DType::F32, device)? }
            }
        })
    }

    /// The binary cross-entropy is averaged over the outputs as well as the batch, so
    /// its gradients are `outputs` times smaller than the softmax's: the lexical steps
    /// are scaled back up to make one rate fit both.
    fn lexical_rate(&self, options: &FitOptions) -> f64 {
        match self {
            Objective::MultiLabel { pos_weight } => options.lexical_rate * pos_weight.elem_count() as f64,
            _ => options.lexical_rate,
        }
    }

    fn probabilities(&self, logits: &Tensor) -> Result<Tensor> {
        activate(logits, matches!(self, Objective::MultiLabel { .. }))
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        match self {
            Objective::MultiLabel { pos_weight } => loss::weighted_bce(logits, targets, pos_weight),
            Objective::SingleLabel { class_weight } => {
                loss::weighted_cross_entropy(logits, targets, class_weight)
            }
            // Held-out data keeps its human labels: class indices, not distributions.
            Objective::Distribution { class_weight } if targets.rank() == 1 => {
                loss::weighted_cross_entropy(logits, targets, class_weight)
            }
            Objective::Distribution { class_weight } => {
                loss::soft_cross_entropy(logits, targets, class_weight)
            }
        }
    }
}

/// Trains `model` (whose variables live in `varmap`) and keeps the weights of the epoch
/// with the best validation score (the lowest training loss when there is no
/// validation set).
pub fn fit(
    model: &Classifier,
    varmap: &VarMap,
    outputs: usize,
    train: &Dataset,
    valid: Option<&Dataset>,
    options: &FitOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<FitReport> {
    random::seed(options.seed);
    let device = model.encoder.device().clone();
    let objective = Objective::for_targets(&train.targets, outputs, &device)?;
    let params =
        ParamsAdamW { lr: options.learning_rate, weight_decay: options.weight_decay, ..Default::default() };
    let rates = optim::Rates {
        params,
        lexical: objective.lexical_rate(options),
        head: options.head_rate,
        frozen: options.frozen,
        prefix: model.encoder.config.family().prefix(),
    };
    let mut optimizer = optim::ClassifierOptimiser::new(varmap, rates)?;
    let batch = options.batch_size.max(1);
    let total = train.len().div_ceil(batch) * options.epochs;
    let warmup = ((total as f64) * options.warmup_ratio).round() as usize;
    let valid = valid.filter(|v| !v.is_empty());
    let (mut logs, mut step) = (Vec::new(), 0usize);
    let mut best = (f64::NEG_INFINITY, 0usize, None);
    if let (Some(v), optim::Parts::Encoder) = (valid, options.parts) {
        // A second stage keeps the first's weights unless it improves on them.
        best = (evaluate(model, &objective, v, batch, options.parts)?.1, 0, Some(snapshot(varmap)?));
    }
    for epoch in 1..=options.epochs {
        let (mut sum, started) = (0.0, std::time::Instant::now());
        for chunk in length_batches(&train.rows, batch) {
            optimizer.set_learning_rate(learning_rate(options.learning_rate, step, total, warmup));
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| train.rows[i].clone()).collect();
            let rows = drop_tokens(rows, options.token_dropout, options.mask_token);
            let logits = stage_logits(model, &rows, options.parts, true)?;
            let loss = objective.loss(&logits, &train.target_tensor(&chunk, &device)?)?;
            optimizer.backward_step(&loss, options.parts)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sum += value * chunk.len() as f64;
            step += 1;
            let valid_score = logs.last().and_then(|l: &EpochLog| l.valid_score);
            progress(&Progress { epoch, step, total_steps: total, loss: value, valid_score });
            options.cancel.check().map_err(candle_core::Error::wrap)?;
        }
        let train_loss = sum / train.len().max(1) as f64;
        let checked = valid.map(|v| evaluate(model, &objective, v, batch, options.parts)).transpose()?;
        let (valid_loss, valid_score) = (checked.map(|c| c.0), checked.map(|c| c.1));
        let seconds = started.elapsed().as_secs_f64();
        logs.push(EpochLog { epoch, train_loss, valid_loss, valid_score, seconds });
        let watched = valid_score.unwrap_or(-train_loss);
        if watched > best.0 {
            best = (watched, epoch, Some(snapshot(varmap)?));
        } else if checked.is_some() && epoch - best.1 >= options.patience {
            break;
        }
    }
    if let Some(weights) = &best.2 {
        restore(weights)?;
    }
    Ok(FitReport { epochs: logs, best_epoch: best.1, first_stage_epochs: 0 })
}

/// Logits of a training stage, with the part it keeps fixed detached (so that no
/// backward pass runs through what stays). The lexical stage runs no encoder at all.
fn stage_logits(model: &Classifier, rows: &[Vec<u32>], parts: optim::Parts, train: bool) -> Result<Tensor> {
    use optim::Parts;
    if let (Some(lexical), Parts::Lexical) = (model.lexical(), parts) {
        // The head is zero through this stage (`stages::train_model`), so the
        // lexical part's logits are the classifier's.
        return lexical.forward(rows);
    }
    match (model.logit_parts(rows, train)?, parts) {
        ((encoder, Some(lexical)), Parts::Encoder) => encoder + lexical.detach(),
        ((encoder, Some(lexical)), _) => encoder + lexical,
        ((encoder, None), _) => Ok(encoder),
    }
}

/// One epoch's batches: rows shuffled, then sorted by length within windows of 50
/// batches and cut, so that a batch pads to little more than its rows' own length;
/// the batches are shuffled again so lengths do not arrive in order.
fn length_batches(rows: &[Vec<u32>], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    random::shuffle(&mut order);
    let mut batches = Vec::with_capacity(rows.len().div_ceil(batch));
    for window in order.chunks_mut(batch * 50) {
        window.sort_by_key(|&i| rows[i].len());
        batches.extend(window.chunks(batch).map(<[usize]>::to_vec));
    }
    random::shuffle(&mut batches);
    batches
}

/// Mean loss and score on `data`, from one pass.
fn evaluate(
    model: &Classifier,
    objective: &Objective,
    data: &Dataset,
    batch: usize,
    parts: optim::Parts,
) -> Result<(f64, f64)> {
    let device = model.encoder.device().clone();
    let (mut sum, mut probs) = (0.0, Vec::with_capacity(data.len()));
    for chunk in (0..data.len()).collect::<Vec<_>>().chunks(batch) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| data.rows[i].clone()).collect();
        let logits = stage_logits(model, &rows, parts, false)?;
        let loss = objective.loss(&logits, &data.target_tensor(chunk, &device)?)?;
        sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
        probs.extend(objective.probabilities(&logits)?.to_vec2::<f32>()?);
    }
    Ok((sum / data.len() as f64, data.score(&probs)))
}

fn snapshot(varmap: &VarMap) -> Result<Vec<(Var, Tensor)>> {
    let data = varmap.data().lock().expect("varmap lock");
    data.values().map(|v| Ok((v.clone(), v.as_tensor().copy()?))).collect()
}

fn restore(weights: &[(Var, Tensor)]) -> Result<()> {
    for (var, value) in weights {
        var.set(value)?;
    }
    Ok(())
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
