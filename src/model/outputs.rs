//! Reading the classifiers' outputs: probabilities per row (sigmoid per keyword or
//! softmax over levels), computed in batches of like length, and the argmax.

use candle_core::{Result, Tensor};

use super::classifier::Classifier;

/// Probabilities per row, in the rows' order: sigmoid per keyword, or softmax over
/// levels. Rows are run in batches of like length (`by_length`) so each pads little.
pub fn probabilities(
    model: &Classifier,
    rows: &[Vec<u32>],
    multi_label: bool,
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = vec![Vec::new(); rows.len()];
    for chunk in by_length(rows, batch) {
        let chunk = &chunk[..];
        let batch_rows: Vec<Vec<u32>> = chunk.iter().map(|&i| rows[i].clone()).collect();
        let probs = activate(&model.logits(&batch_rows, false)?, multi_label)?;
        for (&i, p) in chunk.iter().zip(probs.to_vec2::<f32>()?) {
            out[i] = p;
        }
    }
    Ok(out)
}

/// Row indices in batches of at most `batch`, shortest rows first, a batch ending
/// before a row more than twice as long as its first (plus a little): a batch pads to
/// its longest row, so a few long rows among many short ones would multiply the work.
pub fn by_length(rows: &[Vec<u32>], batch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].len());
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for i in order {
        match batches.last_mut() {
            Some(last) if last.len() < batch.max(1) && rows[i].len() <= 2 * rows[last[0]].len() + 8 => {
                last.push(i)
            }
            _ => batches.push(vec![i]),
        }
    }
    batches
}

/// Sigmoid per keyword, or softmax over levels.
pub fn activate(logits: &Tensor, multi_label: bool) -> Result<Tensor> {
    if multi_label {
        candle_nn::ops::sigmoid(logits)
    } else {
        candle_nn::ops::softmax_last_dim(logits)
    }
}

pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0)
}
