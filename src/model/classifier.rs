//! Sequence classifiers over the encoder: a pooled sentence vector → dropout → linear,
//! plus, optionally, a linear model over the character n-grams of the input's words
//! ([`Lexical`]). The
//! keyword model reads its logits through a sigmoid per keyword; the sentiment model
//! through a softmax over the taxonomy's levels.

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::dense::{dense, Dense};
use super::encoder::{mean_pool, Config, Encoder};
use super::lexical::Lexical;
use super::random;

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

/// What sits on the encoder.
#[derive(Debug, Clone, Copy)]
pub struct Head {
    /// Keywords or sentiment levels.
    pub outputs: usize,
    /// On the sentence vector, in training.
    pub dropout: f32,
    pub pooling: Pooling,
    /// Hashed features of the lexical part; 0 for none.
    pub lexical_buckets: usize,
}

pub struct Classifier {
    pub encoder: Encoder,
    head: Dense,
    lexical: Option<Lexical>,
    dropout: f32,
    pooling: Pooling,
}

impl Classifier {
    /// Weights under the family's prefix (encoder: `roberta.`, `bert.`, `electra.`),
    /// `classifier.` (head) and `lexical.`, the names a saved version uses. The lexical
    /// part reads words through `tokenizer`, and the encoder pairs the way it does.
    pub fn load(vb: VarBuilder, config: &Config, head: Head, tokenizer: Option<&Tokenizer>) -> Result<Self> {
        let lexical = match (head.lexical_buckets, tokenizer) {
            (0, _) => None,
            (buckets, Some(tokenizer)) => {
                Some(Lexical::load(vb.pp("lexical"), buckets, head.outputs, tokenizer)?)
            }
            (_, None) => candle_core::bail!("a lexical part needs the tokenizer's vocabulary"),
        };
        let encoder = Encoder::load(vb.pp(config.family().prefix()), config)?;
        Ok(Classifier {
            encoder: match tokenizer {
                Some(tokenizer) => encoder.with_tokenizer(tokenizer),
                None => encoder,
            },
            head: dense(config.hidden_size, head.outputs, vb.pp("classifier"))?,
            lexical,
            dropout: head.dropout,
            pooling: head.pooling,
        })
    }

    /// (batch, hidden) sentence vectors for token id rows.
    pub fn pooled(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let hidden = self.encoder.forward(rows, train)?;
        self.pool(&hidden, rows)
    }

    /// Sentence vectors and, under mean pooling, each token's direct share of the
    /// logits: (batch, seq, outputs), the head applied to every token's state plus the
    /// token's part of the lexical logits times the row's token count (a logit is the
    /// mean of its tokens' shares plus the bias, so a share says how much that token
    /// pushed the keyword up). None under first-token pooling, where tokens have no
    /// direct share.
    pub fn pooled_with_shares(&self, rows: &[Vec<u32>]) -> Result<(Tensor, Option<Tensor>)> {
        let hidden = self.encoder.forward(rows, false)?;
        let shares = match self.pooling {
            Pooling::Mean => Some(self.token_shares(&hidden, rows)?),
            Pooling::First => None,
        };
        Ok((self.pool(&hidden, rows)?, shares))
    }

    fn token_shares(&self, hidden: &Tensor, rows: &[Vec<u32>]) -> Result<Tensor> {
        let shares = self.head.forward(hidden)?;
        let Some(lexical) = &self.lexical else { return Ok(shares) };
        let pad = self.encoder.config.pad_token_id;
        let counts: Vec<f32> = rows.iter().map(|r| r.iter().filter(|&&t| t != pad).count() as f32).collect();
        shares + lexical.shares(rows, hidden.dim(1)?, &counts)?
    }

    fn pool(&self, hidden: &Tensor, rows: &[Vec<u32>]) -> Result<Tensor> {
        match self.pooling {
            Pooling::First => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => mean_pool(hidden, rows, self.encoder.config.pad_token_id),
        }
    }

    /// (batch, outputs) logits for token id rows.
    pub fn logits(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        match self.logit_parts(rows, train)? {
            (encoder, Some(lexical)) => encoder + lexical,
            (encoder, None) => Ok(encoder),
        }
    }

    /// The encoder head's and the lexical part's logits, apart: a training stage that
    /// updates one part detaches the other, so no gradient is computed for what stays.
    pub fn logit_parts(&self, rows: &[Vec<u32>], train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let pooled = self.pooled(rows, train)?;
        let pooled = if train { super::dropout::dropout(&pooled, self.dropout)? } else { pooled };
        let lexical = self.lexical.as_ref().map(|l| l.forward(rows)).transpose()?;
        Ok((self.head.forward(&pooled)?, lexical))
    }

    /// Keywords or levels the head scores.
    pub fn outputs(&self) -> Result<usize> {
        self.head.outputs()
    }

    /// (batch, outputs) logits for sentence vectors from [`Classifier::pooled`] of the
    /// same `rows`.
    pub fn classify(&self, pooled: &Tensor, rows: &[Vec<u32>]) -> Result<Tensor> {
        let logits = self.head.forward(pooled)?;
        match &self.lexical {
            Some(lexical) => logits + lexical.forward(rows)?,
            None => Ok(logits),
        }
    }

    /// The lexical part, when there is one.
    pub fn lexical(&self) -> Option<&Lexical> {
        self.lexical.as_ref()
    }

    /// Hashed features of the lexical part (0: none).
    pub fn lexical_buckets(&self) -> usize {
        self.lexical.as_ref().map_or(0, Lexical::buckets)
    }
}

/// Re-initialises every variable from the seeded generator, the way Hugging Face
/// initialises RoBERTa: normal(0, 0.02) weights and embeddings, zero biases, unit
/// LayerNorm scales; the lexical part starts at zero. Names are sorted so the draw order
/// does not depend on a hash map.
pub fn initialise(varmap: &VarMap, seed: u64) -> Result<()> {
    random::seed(seed);
    let data = varmap.data().lock().expect("varmap lock");
    let mut vars: Vec<(&String, &Var)> = data.iter().collect();
    vars.sort_by(|a, b| a.0.cmp(b.0));
    for (name, var) in vars {
        let shape = var.dims().to_vec();
        // The lexical part starts silent: the classifier begins as the encoder alone.
        // Inverse document frequencies start neutral, each feature weighed alike, until
        // training counts its reviews (`train::stages`).
        let value = if name.ends_with("LayerNorm.weight") || name == "lexical.idf" {
            Tensor::ones(shape.as_slice(), var.dtype(), var.device())?
        } else if name.ends_with(".bias") || name.starts_with("lexical.") {
            Tensor::zeros(shape.as_slice(), var.dtype(), var.device())?
        } else {
            random::normal(&shape, 0.02, var.device())?
        };
        var.set(&value)?;
    }
    Ok(())
}

/// Copies the encoder weights of a pretrained checkpoint into a fresh classifier's
/// variables (those under `prefix`, the family's), leaving the head as initialised.
/// The checkpoint may keep its encoder at the root or under any family's prefix.
/// Returns how many tensors were copied.
pub fn load_encoder_weights(varmap: &VarMap, path: &std::path::Path, prefix: &str) -> Result<usize> {
    let tensors = candle_core::safetensors::load(path, &candle_core::Device::Cpu)?;
    let names: Vec<String> = tensors.keys().cloned().collect();
    let source = super::folder::encoder_prefix(&names);
    let data = varmap.data().lock().expect("varmap lock");
    let mut copied = 0;
    for (name, var) in data.iter() {
        let Some(stem) = name.strip_prefix(prefix).and_then(|n| n.strip_prefix('.')) else { continue };
        let key = if source.is_empty() { stem.to_string() } else { format!("{source}.{stem}") };
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
