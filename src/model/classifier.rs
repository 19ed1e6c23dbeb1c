//! Sequence classifiers over the encoder, as in the seed: the first token's hidden
//! state → dropout → linear. The keyword model reads its logits through a sigmoid per
//! keyword; the sentiment model through a softmax over the taxonomy's levels.

use candle_core::{Module, Result, Tensor, Var};
use candle_nn::{linear, Linear, VarBuilder, VarMap};

use super::random;
use super::roberta::{Config, Roberta};

pub struct Classifier {
    pub encoder: Roberta,
    head: Linear,
    dropout: f32,
}

impl Classifier {
    /// Weights under `roberta.` (encoder) and `classifier.` (head), the names a saved
    /// version uses.
    pub fn load(vb: VarBuilder, config: &Config, outputs: usize, dropout: f32) -> Result<Self> {
        Ok(Classifier {
            encoder: Roberta::load(vb.pp("roberta"), config)?,
            head: linear(config.hidden_size, outputs, vb.pp("classifier"))?,
            dropout,
        })
    }

    /// (batch, outputs) logits for token id rows.
    pub fn logits(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let first = self.encoder.first_token(rows, train)?;
        let first = if train { random::dropout(&first, self.dropout)? } else { first };
        self.head.forward(&first)
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
