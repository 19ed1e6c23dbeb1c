//! Sequence classifiers over the encoder: a pooled sentence vector → dropout → linear.
//! The keyword model reads its logits through a sigmoid per keyword; the sentiment
//! model through a softmax over the taxonomy's levels.

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::dense::{dense, Dense};
use super::random;
use super::roberta::{mean_pool, Config, Roberta};

/// How the hidden states become one sentence vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token (`<s>`/`[CLS]`), as the seed and Hugging Face's heads do; right
    /// for a pretrained encoder whose first token was trained to summarise.
    #[default]
    First,
    /// The mean over real tokens. An encoder trained from scratch on a few thousand
    /// reviews learns far faster this way: every token's state gets a gradient from
    /// the head, instead of the one token that must first learn to gather the others.
    Mean,
}

pub struct Classifier {
    pub encoder: Roberta,
    head: Dense,
    dropout: f32,
    pooling: Pooling,
}

impl Classifier {
    /// Weights under `roberta.` (encoder) and `classifier.` (head), the names a saved
    /// version uses.
    pub fn load(
        vb: VarBuilder,
        config: &Config,
        outputs: usize,
        dropout: f32,
        pooling: Pooling,
    ) -> Result<Self> {
        Ok(Classifier {
            encoder: Roberta::load(vb.pp("roberta"), config)?,
            head: dense(config.hidden_size, outputs, vb.pp("classifier"))?,
            dropout,
            pooling,
        })
    }

    /// (batch, hidden) sentence vectors for token id rows.
    pub fn pooled(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let hidden = self.encoder.forward(rows, train)?;
        self.pool(&hidden, rows)
    }

    /// Sentence vectors and, under mean pooling, each token's direct share of the
    /// logits: (batch, seq, outputs), the head applied to every token's state (a logit
    /// is the mean of its tokens' shares plus the bias, so a share says how much that
    /// token pushed the keyword up). None under first-token pooling, where tokens have
    /// no direct share.
    pub fn pooled_with_shares(&self, rows: &[Vec<u32>]) -> Result<(Tensor, Option<Tensor>)> {
        let hidden = self.encoder.forward(rows, false)?;
        let shares = match self.pooling {
            Pooling::Mean => Some(self.head.forward(&hidden)?),
            Pooling::First => None,
        };
        Ok((self.pool(&hidden, rows)?, shares))
    }

    fn pool(&self, hidden: &Tensor, rows: &[Vec<u32>]) -> Result<Tensor> {
        match self.pooling {
            Pooling::First => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => mean_pool(hidden, rows, self.encoder.config.pad_token_id),
        }
    }

    /// (batch, outputs) logits for token id rows.
    pub fn logits(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let pooled = self.pooled(rows, train)?;
        let pooled = if train { random::dropout(&pooled, self.dropout)? } else { pooled };
        self.classify(&pooled)
    }

    /// Keywords or levels the head scores.
    pub fn outputs(&self) -> Result<usize> {
        self.head.outputs()
    }

    /// (batch, outputs) logits for sentence vectors from [`Classifier::pooled`].
    pub fn classify(&self, pooled: &Tensor) -> Result<Tensor> {
        self.head.forward(pooled)
    }
}

/// Re-initialises every variable from the seeded generator, the way Hugging Face
/// initialises RoBERTa: normal(0, 0.02) weights and embeddings, zero biases, unit
/// LayerNorm scales. Names are sorted so the draw order does not depend on a hash map.
pub fn initialise(varmap: &VarMap, seed: u64) -> Result<()> {
    random::seed(seed);
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<(&String, &Var)> = data.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(b.0));
    for (name, var) in vars {
        let shape = var.dims().to_vec();
        let value = if name.ends_with("LayerNorm.weight") {
            Tensor::ones(shape.as_slice(), var.dtype(), var.device())?
        } else if name.ends_with(".bias") {
            Tensor::zeros(shape.as_slice(), var.dtype(), var.device())?
        } else {
            random::normal(&shape, 0.02, var.device())?
        };
        var.set(&value)?;
    }
    Ok(())
}

/// Copies the encoder weights of a pretrained checkpoint into a fresh classifier's
/// variables (`roberta.*`), leaving the head as initialised. Returns how many tensors
/// were copied.
pub fn load_encoder_weights(varmap: &VarMap, path: &std::path::Path) -> Result<usize> {
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
    let has_prefix = tensors.keys().any(|k| k.starts_with("roberta."));
    let data = varmap.data().lock().expect("varmap lock");
    let mut copied = 0;
    for (name, var) in data.iter() {
        let Some(stem) = name.strip_prefix("roberta.") else { continue };
        let key = if has_prefix { name.clone() } else { stem.to_string() };
        let tensor = tensors
            .get(&key)
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: no tensor `{key}`", path.display())))?;
        if tensor.dims() != var.dims() {
            candle_core::bail!(
                "{}: `{key}` has shape {:?}, the model needs {:?}",
                path.display(),
                tensor.dims(),
                var.dims()
            );
        }
        var.set(&tensor.to_device(var.device())?.to_dtype(var.dtype())?)?;
        copied += 1;
    }
    Ok(copied)
}
