//! Training objectives for skewed labels: BCE with positive weights for the keyword
//! model, class-weighted cross-entropy for the sentiment model.

use candle_core::{DType, Result, Tensor, D};

/// log(1 + e^x), stable for large |x|.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Mean binary cross-entropy over (batch, K) logits and 0/1 targets, with positive
/// examples of keyword k weighted by `pos_weight[k]`.
pub fn weighted_bce(logits: &Tensor, targets: &Tensor, pos_weight: &Tensor) -> Result<Tensor> {
    // −[w·y·log σ(x) + (1−y)·log(1−σ(x))] = w·y·softplus(−x) + (1−y)·softplus(x)
    let positive = targets.broadcast_mul(pos_weight)?.mul(&softplus(&logits.neg()?)?)?;
    let negative = ((1.0 - targets)?).mul(&softplus(logits)?)?;
    (positive + negative)?.mean_all()
}

/// Cross-entropy over (batch, N) logits for class indices, each example weighted by
/// its class's weight (normalised by the weights in the batch, as PyTorch does).
pub fn weighted_cross_entropy(logits: &Tensor, classes: &Tensor, class_weight: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs.gather(&classes.unsqueeze(1)?, 1)?.squeeze(1)?;
    let weights = class_weight.index_select(classes, 0)?;
    let total = weights.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    picked.mul(&weights)?.sum_all()?.neg()? / total
}

/// Cross-entropy against target distributions (batch, N), each class's term weighted by
/// its weight and normalised by the total weight of the targets: with one-hot targets
/// this is exactly [`weighted_cross_entropy`]. Distillation uses it with the teacher's
/// distributions, which carry what the teacher thinks of the other levels too.
pub fn soft_cross_entropy(logits: &Tensor, targets: &Tensor, class_weight: &Tensor) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let weighted = targets.broadcast_mul(class_weight)?;
    let total = weighted.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    weighted.mul(&log_probs)?.sum_all()?.neg()? / total.max(f64::MIN_POSITIVE)
}

/// neg/pos per keyword, clamped to [1, 10] so a keyword seen twice does not dominate.
pub fn positive_weights(targets: &[Vec<f32>], keywords: usize) -> Vec<f32> {
    (0..keywords)
        .map(|k| {
            let pos = targets.iter().filter(|t| t[k] > 0.5).count() as f32;
            let neg = targets.len() as f32 - pos;
            if pos == 0.0 {
                1.0
            } else {
                (neg / pos).clamp(1.0, 10.0)
            }
        })
        .collect()
}

/// Inverse class frequency, N / (C · n_c), clamped to [0.1, 10]; unseen classes get 1.
pub fn class_weights(classes: &[u32], n_classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; n_classes];
    for &c in classes {
        counts[c as usize] += 1;
    }
    let total = classes.len() as f32;
    counts
        .iter()
        .map(|&n| if n == 0 { 1.0 } else { (total / (n_classes as f32 * n as f32)).clamp(0.1, 10.0) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(values: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn bce_matches_the_formula_and_weights_positives() {
        let logits = t(&[2.0, -1.0], &[1, 2]);
        let targets = t(&[1.0, 0.0], &[1, 2]);
        let plain =
            weighted_bce(&logits, &targets, &t(&[1.0, 1.0], &[2])).unwrap().to_scalar::<f32>().unwrap();
        let sigmoid = |x: f32| 1.0 / (1.0 + (-x).exp());
        let expected = (-(sigmoid(2.0)).ln() - (1.0 - sigmoid(-1.0)).ln()) / 2.0;
        assert!((plain - expected).abs() < 1e-6, "{plain} vs {expected}");
        let weighted =
            weighted_bce(&logits, &targets, &t(&[3.0, 1.0], &[2])).unwrap().to_scalar::<f32>().unwrap();
        let expected = (-3.0 * (sigmoid(2.0)).ln() - (1.0 - sigmoid(-1.0)).ln()) / 2.0;
        assert!((weighted - expected).abs() < 1e-6);
        // Huge logits stay finite.
        let huge = weighted_bce(&t(&[80.0, -80.0], &[1, 2]), &t(&[0.0, 1.0], &[1, 2]), &t(&[1.0, 1.0], &[2]))
            .unwrap();
        assert!(huge.to_scalar::<f32>().unwrap().is_finite());
    }

    #[test]
    fn cross_entropy_weights_rare_classes_up() {
        let logits = t(&[2.0, 0.0, 0.0, 0.0, 2.0, 0.0], &[2, 3]);
        let classes = Tensor::new(&[0u32, 2], &Device::Cpu).unwrap();
        let even = weighted_cross_entropy(&logits, &classes, &t(&[1.0, 1.0, 1.0], &[3]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let p0 = 2f32.exp() / (2f32.exp() + 2.0);
        let p2 = 1.0 / (2f32.exp() + 2.0);
        assert!((even - (-(p0.ln()) - p2.ln()) / 2.0).abs() < 1e-5);
        let skewed = weighted_cross_entropy(&logits, &classes, &t(&[1.0, 1.0, 4.0], &[3]))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((skewed - (-(p0.ln()) - 4.0 * p2.ln()) / 5.0).abs() < 1e-5);
        // One-hot distributions give the same loss; a softer one lies between.
        let one_hot = t(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0], &[2, 3]);
        let soft = soft_cross_entropy(&logits, &one_hot, &t(&[1.0, 1.0, 4.0], &[3])).unwrap();
        assert!((soft.to_scalar::<f32>().unwrap() - skewed).abs() < 1e-5);
        let uniform = t(&[1.0 / 3.0; 6], &[2, 3]);
        let spread =
            soft_cross_entropy(&logits, &uniform, &t(&[1.0; 3], &[3])).unwrap().to_scalar::<f32>().unwrap();
        assert!((spread - (-(p0.ln()) - 2.0 * p2.ln()) / 3.0).abs() < 1e-5);
        assert_eq!(class_weights(&[2, 2, 2, 0], 3), vec![4.0 / 3.0, 1.0, 4.0 / 9.0]);
        assert_eq!(positive_weights(&[vec![1.0, 0.0], vec![0.0, 0.0], vec![0.0, 0.0]], 2), vec![2.0, 1.0]);
    }
}
