//! Training: AdamW with warm-up and linear decay, weighted losses for skewed labels,
//! early stopping on validation loss with the best weights restored, fixed seeds.

pub mod data;
pub mod evaluate;
pub mod loss;
pub mod metrics;
pub mod pipeline;
pub mod pretrain;

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use serde::{Deserialize, Serialize};

use crate::model::classifier::Classifier;
use crate::model::random;

/// What a model learns to predict for each row.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Keyword model: one 0/1 per keyword.
    MultiLabel(Vec<Vec<f32>>),
    /// Sentiment model: a class index (level − scale minimum).
    SingleLabel(Vec<u32>),
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub rows: Vec<Vec<u32>>,
    pub targets: Targets,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn target_tensor(&self, indices: &[usize], device: &candle_core::Device) -> Result<Tensor> {
        match &self.targets {
            Targets::MultiLabel(t) => {
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
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 10,
            batch_size: 32,
            learning_rate: 5e-5,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            patience: 3,
            seed: 42,
        }
    }
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitReport {
    pub epochs: Vec<EpochLog>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// What a progress bar needs after each step.
pub struct Progress {
    pub epoch: usize,
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
}

/// The loss of one batch, with weights computed once from the training targets.
enum Objective {
    MultiLabel { pos_weight: Tensor },
    SingleLabel { class_weight: Tensor },
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
        })
    }

    fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        match self {
            Objective::MultiLabel { pos_weight } => loss::weighted_bce(logits, targets, pos_weight),
            Objective::SingleLabel { class_weight } => {
                loss::weighted_cross_entropy(logits, targets, class_weight)
            }
        }
    }
}

/// Trains `model` (whose variables live in `varmap`) and keeps the weights of the epoch
/// with the lowest validation loss (the last epoch when there is no validation set).
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
    let mut optimizer = AdamW::new(varmap.all_vars(), params)?;
    let batches_per_epoch = train.len().div_ceil(options.batch_size.max(1));
    let total = batches_per_epoch * options.epochs;
    let warmup = ((total as f64) * options.warmup_ratio).round() as usize;
    let mut order: Vec<usize> = (0..train.len()).collect();
    let (mut logs, mut best, mut step) = (Vec::new(), (f64::INFINITY, 0usize, None), 0usize);
    for epoch in 1..=options.epochs {
        random::shuffle(&mut order);
        let mut sum = 0.0;
        for chunk in order.chunks(options.batch_size.max(1)) {
            optimizer.set_learning_rate(learning_rate(options.learning_rate, step, total, warmup));
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| train.rows[i].clone()).collect();
            let logits = model.logits(&rows, true)?;
            let loss = objective.loss(&logits, &train.target_tensor(chunk, &device)?)?;
            optimizer.backward_step(&loss)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sum += value * chunk.len() as f64;
            step += 1;
            progress(&Progress { epoch, step, total_steps: total, loss: value });
        }
        let train_loss = sum / train.len().max(1) as f64;
        let valid_loss = match valid {
            Some(v) if !v.is_empty() => Some(evaluate_loss(model, &objective, v, options.batch_size)?),
            _ => None,
        };
        logs.push(EpochLog { epoch, train_loss, valid_loss });
        let watched = valid_loss.unwrap_or(train_loss);
        if watched < best.0 {
            best = (watched, epoch, Some(snapshot(varmap)?));
        } else if valid_loss.is_some() && epoch - best.1 >= options.patience {
            break;
        }
    }
    if let Some(weights) = &best.2 {
        restore(weights)?;
    }
    Ok(FitReport { epochs: logs, best_epoch: best.1 })
}

fn evaluate_loss(model: &Classifier, objective: &Objective, data: &Dataset, batch: usize) -> Result<f64> {
    let device = model.encoder.device().clone();
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut sum = 0.0;
    for chunk in indices.chunks(batch.max(1)) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| data.rows[i].clone()).collect();
        let logits = model.logits(&rows, false)?;
        let loss = objective.loss(&logits, &data.target_tensor(chunk, &device)?)?;
        sum += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
    }
    Ok(sum / data.len() as f64)
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

/// Probabilities per row: sigmoid per keyword, or softmax over levels.
pub fn probabilities(
    model: &Classifier,
    rows: &[Vec<u32>],
    multi_label: bool,
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch.max(1)) {
        let logits = model.logits(chunk, false)?;
        let probs = if multi_label {
            candle_nn::ops::sigmoid(&logits)?
        } else {
            candle_nn::ops::softmax_last_dim(&logits)?
        };
        out.extend(probs.to_vec2::<f32>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
