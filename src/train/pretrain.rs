//! Masked language modelling (RoBERTa's recipe: 15 % of tokens chosen; of those 80 %
//! become the mask token, 10 % a random token, 10 % stay): the encoder with the
//! language-model head of its family, and the in-memory epochs that pre-train the
//! offline encoder on all imported reviews before fine-tuning (`train
//! --pretrain-epochs`). `train::adapt` streams a corpus through the same model to
//! pre-train a base (`reviewloop pretrain`).
//!
//! The head is Hugging Face's: a dense layer, GELU, layer normalisation, then the word
//! embeddings transposed as the decoder (tied) plus a bias per piece; its weights are
//! named as in `BertForMaskedLM` (`cls.predictions.*`) or `RobertaForMaskedLM`
//! (`lm_head.*`), so a checkpoint that has one keeps it and a saved base loads in
//! transformers.

use std::collections::HashSet;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::{learning_rate, FitOptions, Progress};
use crate::model::dense::{dense, Dense};
use crate::model::encoder::{norm, Config, Encoder, Family, Norm};
use crate::model::random;

/// Names of a family's language-model head: (dense, layer norm, bias).
pub fn head_names(family: Family) -> (&'static str, &'static str, &'static str) {
    match family {
        Family::Roberta | Family::XlmRoberta => ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"),
        Family::Bert | Family::Electra => {
            ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias")
        }
    }
}

/// The encoder with a language-model head, on its own variables.
pub struct MaskedLm {
    pub encoder: Encoder,
    dense: Dense,
    norm: Norm,
    bias: Tensor,
}

impl MaskedLm {
    /// The encoder under its family's prefix and the head under its family's names.
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let family = config.family();
        let (h, e) = (config.hidden_size, config.embedding_size.unwrap_or(config.hidden_size));
        let (dense_name, norm_name, bias_name) = head_names(family);
        let bias = vb.get_with_hints(config.vocab_size, bias_name, candle_nn::Init::Const(0.0))?;
        Ok(MaskedLm {
            encoder: Encoder::load(vb.pp(family.prefix()), config)?,
            dense: dense(h, e, vb.pp(dense_name))?,
            norm: norm(e, config.layer_norm_eps, vb.pp(norm_name))?,
            bias,
        })
    }

    /// Reads pairs as `tokenizer` builds them (see `Encoder::with_tokenizer`).
    pub fn with_tokenizer(self, tokenizer: &tokenizers::Tokenizer) -> Self {
        MaskedLm { encoder: self.encoder.with_tokenizer(tokenizer), ..self }
    }

    /// (positions, vocabulary) logits at flat `positions` (row × width + column) of
    /// `rows`.
    pub fn logits(&self, rows: &[Vec<u32>], positions: &[u32], train: bool) -> Result<Tensor> {
        let hidden = self.encoder.forward(rows, train)?;
        let (b, s, h) = hidden.dims3()?;
        let picked =
            hidden.reshape((b * s, h))?.index_select(&Tensor::new(positions, hidden.device())?, 0)?;
        let transformed = self.norm.forward(&self.dense.forward(&picked)?.gelu_erf()?, train)?;
        transformed.matmul(&self.encoder.word_embeddings().t()?)?.broadcast_add(&self.bias)
    }

    /// Mean cross-entropy of the original tokens at the masked positions.
    pub fn loss(&self, batch: &Masked, train: bool) -> Result<Tensor> {
        let logits = self.logits(&batch.inputs, &batch.positions, train)?;
        candle_nn::loss::cross_entropy(&logits, &Tensor::new(batch.targets.as_slice(), logits.device())?)
    }
}

/// A masked batch: the corrupted rows, flat positions (row × width + column) of the
/// chosen tokens, and their original ids.
pub struct Masked {
    pub inputs: Vec<Vec<u32>>,
    pub positions: Vec<u32>,
    pub targets: Vec<u32>,
}

/// Which ids masking may choose and put in: every piece but the special ones.
pub struct Maskable {
    pub mask: u32,
    pub specials: HashSet<u32>,
    /// Pieces of the tokenizer (random replacements are drawn below this).
    pub pieces: u32,
}

impl Maskable {
    /// The mask token and special ids of `tokenizer`.
    pub fn of(tokenizer: &tokenizers::Tokenizer) -> Maskable {
        let specials = tokenizer.get_added_tokens_decoder().keys().copied().collect();
        let mask = super::pipeline::mask_token(tokenizer);
        Maskable { mask, specials, pieces: tokenizer.get_vocab_size(true) as u32 }
    }

    fn random_piece(&self) -> u32 {
        loop {
            let id = random::below(0, self.pieces.max(1));
            if !self.specials.contains(&id) || self.specials.len() as u32 >= self.pieces {
                return id;
            }
        }
    }
}

/// Masks a batch; special tokens are never chosen.
pub fn mask_batch(rows: &[Vec<u32>], maskable: &Maskable) -> Masked {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let (mut inputs, mut positions, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (r, row) in rows.iter().enumerate() {
        let mut input = row.clone();
        for (c, token) in input.iter_mut().enumerate() {
            if maskable.specials.contains(token) || random::uniform() >= 0.15 {
                continue;
            }
            positions.push((r * width + c) as u32);
            targets.push(*token);
            let roll = random::uniform();
            if roll < 0.8 {
                *token = maskable.mask;
            } else if roll < 0.9 {
                *token = maskable.random_piece();
            }
        }
        inputs.push(input);
    }
    Masked { inputs, positions, targets }
}

/// Pre-trains `model` on token rows held in memory and returns each epoch's mean loss.
pub fn pretrain(
    model: &MaskedLm,
    varmap: &VarMap,
    rows: &[Vec<u32>],
    maskable: &Maskable,
    options: &FitOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<f64>> {
    random::seed(options.seed);
    let params = candle_nn::ParamsAdamW {
        lr: options.learning_rate,
        weight_decay: options.weight_decay,
        ..Default::default()
    };
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
            let masked = mask_batch(&picked, maskable);
            step += 1;
            if masked.targets.is_empty() {
                continue;
            }
            candle_nn::Optimizer::set_learning_rate(
                &mut optimizer,
                learning_rate(options.learning_rate, step - 1, total, warmup),
            );
            let loss = model.loss(&masked, true)?;
            candle_nn::Optimizer::backward_step(&mut optimizer, &loss)?;
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

/// Copies every tensor of the checkpoint at `path` that a variable of a masked
/// language model has a place for: the encoder (at the root or under any family's
/// prefix; `prefix` is the model's) and a language-model head of the same names.
pub fn load_checkpoint(varmap: &VarMap, path: &std::path::Path, prefix: &str) -> Result<()> {
    crate::model::classifier::load_encoder_weights(varmap, path, prefix)?;
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
    let data = varmap.data().lock().expect("varmap lock");
    for (name, var) in data.iter().filter(|(n, _)| !n.starts_with(prefix)) {
        if let Some(tensor) = tensors.get(name).filter(|t| t.dims() == var.dims()) {
            var.set(&tensor.to_device(var.device())?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::classifier::initialise;
    use crate::model::testing::tiny_folder;
    use crate::train::testing::toy_options;
    use candle_core::Device;

    fn maskable() -> Maskable {
        Maskable { mask: 4, specials: [0, 1, 2, 3, 4].into_iter().collect(), pieces: 400 }
    }

    #[test]
    fn masking_spares_special_tokens_and_records_the_originals() {
        random::seed(1);
        let rows = vec![vec![0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 2], vec![0, 20, 21, 2]];
        let mut chosen = 0;
        for _ in 0..50 {
            let masked = mask_batch(&rows, &maskable());
            for (&p, &t) in masked.positions.iter().zip(&masked.targets) {
                let (r, c) = (p as usize / 11, p as usize % 11);
                assert_eq!(rows[r][c], t);
                assert!(t >= 5, "special tokens are never masked");
                assert_eq!(masked.inputs[r].len(), rows[r].len());
            }
            chosen += masked.targets.len();
        }
        let candidates = 50 * 11;
        assert!((40..130).contains(&chosen), "about 15 % of {candidates} tokens, got {chosen}");
    }

    /// The head and its tied decoder give transformers' `BertForMaskedLM` logits on
    /// the same checkpoint (scripts/make_parity_fixture.py), within 1e-4.
    #[test]
    fn the_language_model_head_matches_transformers() {
        let folder =
            crate::model::folder::ModelFolder::open(&crate::model::testing::fixture("tiny-bert")).unwrap();
        let parity: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(crate::model::testing::fixture("tiny-bert-parity.json")).unwrap(),
        )
        .unwrap();
        let varmap = VarMap::new();
        let model =
            MaskedLm::load(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu), &folder.config)
                .unwrap();
        initialise(&varmap, 1).unwrap();
        load_checkpoint(&varmap, &folder.weights_path(), "bert").unwrap();
        let ids: Vec<u32> = serde_json::from_value(parity["ids"][0].clone()).unwrap();
        let positions: Vec<u32> = (0..ids.len() as u32).collect();
        let got: Vec<Vec<f32>> = model.logits(&[ids], &positions, false).unwrap().to_vec2().unwrap();
        let expected: Vec<Vec<f32>> = serde_json::from_value(parity["mlm_logits"].clone()).unwrap();
        let worst = got
            .iter()
            .flatten()
            .zip(expected.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-4, "largest difference {worst}");
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
        let losses = pretrain(&model, &varmap, &rows, &maskable(), &toy_options(12, 5), &mut |_| {}).unwrap();
        assert!(losses.last().unwrap() < &(losses[0] * 0.8), "{losses:?}");
    }
}
