//! Domain pre-training of the offline encoder with masked language modelling over all
//! imported reviews, labelled or not (RoBERTa's recipe: 15 % of tokens chosen; of those
//! 80 % become [MASK], 10 % a random token, 10 % stay), before fine-tuning.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::model::dense::{dense, Dense};

use super::{learning_rate, FitOptions, Progress};
use crate::model::encoder::{Config, Encoder};
use crate::model::random;

/// The encoder with a language-model head, on its own variables.
pub struct MaskedLm {
    pub encoder: Encoder,
    dense: Dense,
    decoder: Dense,
}

impl MaskedLm {
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let h = config.hidden_size;
        Ok(MaskedLm {
            encoder: Encoder::load(vb.pp(config.family().prefix()), config)?,
            dense: dense(h, h, vb.pp("lm_head").pp("dense"))?,
            decoder: dense(h, config.vocab_size, vb.pp("lm_head").pp("decoder"))?,
        })
    }

    /// Cross-entropy of the original tokens at the masked positions.
    fn loss(&self, inputs: &[Vec<u32>], positions: &[u32], targets: &[u32]) -> Result<Tensor> {
        let hidden = self.encoder.forward(inputs, true)?;
        let (b, s, h) = hidden.dims3()?;
        let device = hidden.device();
        let picked = hidden.reshape((b * s, h))?.index_select(&Tensor::new(positions, device)?, 0)?;
        let logits = self.decoder.forward(&self.dense.forward(&picked)?.gelu_erf()?)?;
        candle_nn::loss::cross_entropy(&logits, &Tensor::new(targets, device)?)
    }
}

/// Masks a batch: the corrupted rows, flat positions (row × width + column) of the
/// chosen tokens, and their original ids. Special tokens (ids below `first_normal`)
/// are never chosen.
pub fn mask_batch(
    rows: &[Vec<u32>],
    mask_id: u32,
    first_normal: u32,
    vocab: u32,
) -> (Vec<Vec<u32>>, Vec<u32>, Vec<u32>) {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (mut inputs, mut positions, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        let mut input = row.clone();
        for (c, token) in input.iter_mut().enumerate() {
            if *token < first_normal || random::uniform() >= 0.15 {
                continue;
            }
            positions.push((r * width + c) as u32);
            targets.push(*token);
            let roll = random::uniform();
            if roll < 0.8 {
                *token = mask_id;
            } else if roll < 0.9 {
                *token = random::below(first_normal, vocab);
            }
        }
        inputs.push(input);
    }
    (inputs, positions, targets)
}

/// Pre-trains `model` on token rows and returns the mean loss of each epoch.
pub fn pretrain(
    model: &MaskedLm,
    varmap: &VarMap,
    rows: &[Vec<u32>],
    mask_id: u32,
    options: &FitOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<f64>> {
    random::seed(options.seed);
    let vocab = model.encoder.config.vocab_size as u32;
    let params =
        ParamsAdamW { lr: options.learning_rate, weight_decay: options.weight_decay, ..Default::default() };
    let mut optimizer = super::optim::FusedAdamW::new(varmap.all_vars(), params)?;
    let batch = options.batch_size.max(1);
    let total = rows.len().div_ceil(batch) * options.epochs;
    let warmup = (total as f64 * options.warmup_ratio).round() as usize;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let (mut losses, mut step) = (Vec::new(), 0);
    for epoch in 1..=options.epochs {
        random::shuffle(&mut order);
        let (mut sum, mut counted) = (0.0, 0);
        for chunk in order.chunks(batch) {
            let picked: Vec<Vec<u32>> = chunk.iter().map(|&i| rows[i].clone()).collect();
            let (inputs, positions, targets) =
                mask_batch(&picked, mask_id, crate::model::vocab::FIRST_ORDINARY_TOKEN, vocab);
            step += 1;
            if targets.is_empty() {
                continue;
            }
            optimizer.set_learning_rate(learning_rate(options.learning_rate, step - 1, total, warmup));
            let loss = model.loss(&inputs, &positions, &targets)?;
            optimizer.backward_step(&loss)?;
            let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sum += value;
            counted += 1;
            progress(&Progress { epoch, step, total_steps: total, loss: value, valid_score: None });
            options.cancel.check().map_err(candle_core::Error::wrap)?;
        }
        losses.push(sum / counted.max(1) as f64);
    }
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::classifier::initialise;
    use crate::model::testing::{tiny_folder, toy_options};
    use candle_core::Device;

    #[test]
    fn masking_spares_special_tokens_and_records_the_originals() {
        random::seed(1);
        let rows = vec![vec![0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 2], vec![0, 20, 21, 2]];
        let mut chosen = 0;
        for _ in 0..50 {
            let (inputs, positions, targets) = mask_batch(&rows, 4, 5, 400);
            for (&p, &t) in positions.iter().zip(&targets) {
                let (r, c) = (p as usize / 11, p as usize % 11);
                assert_eq!(rows[r][c], t);
                assert!(t >= 5, "special tokens are never masked");
                assert_eq!(inputs[r].len(), rows[r].len());
            }
            chosen += targets.len();
        }
        let candidates = 50 * 11;
        assert!((40..130).contains(&chosen), "about 15 % of {candidates} tokens, got {chosen}");
    }

    #[test]
    fn pretraining_lowers_the_masked_token_loss() {
        let folder = tiny_folder();
        let varmap = VarMap::new();
        let model =
            MaskedLm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &folder.config)
                .unwrap();
        initialise(&varmap, 2).unwrap();
        let texts = ["배송이 빨라요 정말", "색감이 예뻐요 너무", "사이즈가 커요 조금"];
        let rows: Vec<Vec<u32>> = texts
            .iter()
            .cycle()
            .take(48)
            .map(|t| folder.tokenizer.encode(*t, true).unwrap().get_ids().to_vec())
            .collect();
        let losses = pretrain(&model, &varmap, &rows, 4, &toy_options(12, 5), &mut |_| {}).unwrap();
        assert!(losses.last().unwrap() < &(losses[0] * 0.7), "{losses:?}");
    }
}
