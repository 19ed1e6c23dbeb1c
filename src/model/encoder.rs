//! The transformer encoder of the BERT family, compatible with Hugging Face checkpoints
//! of four `model_type`s: `bert` (multilingual-e5, kcbert), `roberta` (klue/roberta-base
//! and the models trained here), `xlm-roberta` and `electra` (KoELECTRA discriminators).
//!
//! Upstream: transformers `models/bert/modeling_bert.py`, `models/roberta/
//! modeling_roberta.py`, `models/electra/modeling_electra.py` (architecture and weight
//! names); candle `candle-transformers/src/models/bert.rs` (layout of this file).
//! The families share every layer and differ in three places, all in [`Family`]:
//! positions (BERT and ELECTRA count from 0; RoBERTa and XLM-R from `pad_token_id + 1`,
//! skipping padding), the task checkpoints' weight prefix, and ELECTRA's embeddings
//! narrower than the hidden size with a projection after them. Token types: a pair
//! input's second segment gets type 1 where the checkpoint has two types and its
//! tokenizer marks pairs so (BERT, ELECTRA); GELU with erf.

use candle_core::{Device, Module, Result, Tensor, D};
use candle_nn::{embedding, Embedding, VarBuilder};

use super::dense::{dense, Dense};
use serde::{Deserialize, Serialize};

/// Mirrors the fields of `config.json` that the encoder uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f32,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f32,
    pub max_position_embeddings: usize,
    #[serde(default = "one")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "one_u32")]
    pub pad_token_id: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub bos_token_id: u32,
    #[serde(default = "two", deserialize_with = "null_as_default")]
    pub eos_token_id: u32,
    #[serde(default = "roberta")]
    pub model_type: String,
    /// ELECTRA: width of the embeddings when it differs from `hidden_size` (a linear
    /// `embeddings_project` then maps them up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
}

/// The checkpoint families this encoder reads, from `config.json`'s `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Bert,
    Roberta,
    XlmRoberta,
    Electra,
}

impl Family {
    pub fn parse(model_type: &str) -> std::result::Result<Family, String> {
        match model_type {
            "bert" => Ok(Family::Bert),
            "roberta" => Ok(Family::Roberta),
            "xlm-roberta" => Ok(Family::XlmRoberta),
            "electra" => Ok(Family::Electra),
            other => Err(format!(
                "unknown model_type `{other}`: reviewloop reads bert, roberta, xlm-roberta and electra checkpoints"
            )),
        }
    }

    /// Where Hugging Face's task models (`…ForMaskedLM`, `…ForSequenceClassification`)
    /// keep the encoder; saved versions use the same.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
            Family::Electra => "electra",
        }
    }

    /// RoBERTa's positions start after the padding index and skip padding.
    fn offsets_positions(self) -> bool {
        matches!(self, Family::Roberta | Family::XlmRoberta)
    }
}

/// Every prefix a checkpoint may keep its encoder under.
pub const PREFIXES: [&str; 3] = ["bert", "roberta", "electra"];

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f32 {
    0.1
}
fn default_eps() -> f64 {
    1e-5
}
fn one() -> usize {
    1
}
fn one_u32() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn roberta() -> String {
    "roberta".into()
}

/// transformers writes `null` for ids a family does not use (BERT's `eos_token_id`).
fn null_as_default<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.unwrap_or_default())
}

impl Config {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The family named by `model_type` (checked by [`Config::validate`]).
    pub fn family(&self) -> Family {
        Family::parse(&self.model_type).unwrap_or(Family::Roberta)
    }

    fn embedding_width(&self) -> usize {
        self.embedding_size.unwrap_or(self.hidden_size)
    }

    /// Checks what a bad `config.json` would otherwise turn into a shape error deep
    /// inside a forward pass.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let family = Family::parse(&self.model_type)?;
        if self.embedding_size.is_some_and(|e| e != self.hidden_size) && family != Family::Electra {
            return Err("embedding_size differs from hidden_size, which only electra checkpoints do".into());
        }
        if self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Err(format!("unsupported hidden_act `{}`", self.hidden_act));
        }
        if self.max_tokens() < 3 {
            return Err("max_position_embeddings leaves no room for an input".into());
        }
        Ok(())
    }

    /// Longest input in tokens: RoBERTa's positions start after the padding index.
    pub fn max_tokens(&self) -> usize {
        match self.family().offsets_positions() {
            true => self.max_position_embeddings.saturating_sub(self.pad_token_id as usize + 1),
            false => self.max_position_embeddings,
        }
    }
}

/// Layer normalisation with three paths: candle's fused kernel for inference, which
/// has no backward pass; our fused, differentiable one for training on the CPU; and
/// plain tensor operations that gradients flow through on other devices.
pub(crate) struct Norm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

pub(crate) fn norm(size: usize, eps: f64, vb: VarBuilder) -> Result<Norm> {
    let ones = candle_nn::Init::Const(1.0);
    Ok(Norm {
        weight: vb.get_with_hints(size, "weight", ones)?,
        bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
        eps,
    })
}

impl Norm {
    pub(crate) fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return candle_nn::ops::layer_norm(&xs.contiguous()?, &self.weight, &self.bias, self.eps as f32);
        }
        if super::fused::applies(xs) {
            let normed = super::fused::normalise(xs, self.eps)?;
            return super::fused::scale_shift(&normed, &self.weight, &self.bias);
        }
        let mean = xs.mean_keepdim(D::Minus1)?;
        let centred = xs.broadcast_sub(&mean)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(variance + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Softmax over the last dimension: candle's fused kernel for inference (it has no
/// backward pass), composed operations for training.
fn softmax(xs: &Tensor, train: bool) -> Result<Tensor> {
    match train {
        false => candle_nn::ops::softmax_last_dim(xs),
        true => candle_nn::ops::softmax(xs, D::Minus1),
    }
}

fn dropout(xs: &Tensor, p: f32, train: bool) -> Result<Tensor> {
    if train && p > 0.0 {
        super::dropout::dropout(xs, p)
    } else {
        Ok(xs.clone())
    }
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: Norm,
    /// ELECTRA's map from narrower embeddings up to the hidden size.
    project: Option<Dense>,
    dropout: f32,
}

impl Embeddings {
    /// `vb` is the encoder's root: the embeddings live under `embeddings`, ELECTRA's
    /// projection beside them.
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let (e, own) = (cfg.embedding_width(), vb.pp("embeddings"));
        let project = match e != cfg.hidden_size {
            true => Some(dense(e, cfg.hidden_size, vb.pp("embeddings_project"))?),
            false => None,
        };
        Ok(Embeddings {
            words: embedding(cfg.vocab_size, e, own.pp("word_embeddings"))?,
            positions: embedding(cfg.max_position_embeddings, e, own.pp("position_embeddings"))?,
            token_types: embedding(cfg.type_vocab_size, e, own.pp("token_type_embeddings"))?,
            norm: norm(e, cfg.layer_norm_eps, own.pp("LayerNorm"))?,
            project,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, inputs: &Inputs, train: bool) -> Result<Tensor> {
        let words = self.words.forward(&inputs.ids)?;
        let types = self.token_types.forward(&inputs.types)?;
        let xs = (words + self.positions.forward(&inputs.positions)? + types)?;
        let xs = dropout(&self.norm.forward(&xs, train)?, self.dropout, train)?;
        match &self.project {
            Some(project) => project.forward(&xs),
            None => Ok(xs),
        }
    }
}

/// One batch's tensors: token ids, positions, token types, and the additive attention
/// bias that hides padding.
struct Inputs {
    ids: Tensor,
    positions: Tensor,
    types: Tensor,
    mask_bias: Tensor,
}

struct SelfAttention {
    query: Dense,
    key: Dense,
    value: Dense,
    output: Dense,
    norm: Norm,
    heads: usize,
    head_dim: usize,
    attention_dropout: f32,
    dropout: f32,
}

impl SelfAttention {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        let own = vb.pp("self");
        Ok(SelfAttention {
            query: dense(h, h, own.pp("query"))?,
            key: dense(h, h, own.pp("key"))?,
            value: dense(h, h, own.pp("value"))?,
            output: dense(h, h, vb.pp("output").pp("dense"))?,
            norm: norm(h, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
            attention_dropout: cfg.attention_probs_dropout_prob,
            dropout: cfg.hidden_dropout_prob,
        })
    }

    /// (batch, seq, hidden) → (batch, heads, seq, head_dim)
    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, s, _) = xs.dims3()?;
        xs.reshape((b, s, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
    }

    fn forward(&self, xs: &Tensor, mask_bias: &Tensor, train: bool) -> Result<Tensor> {
        let (q, k, v) = (self.query.forward(xs)?, self.key.forward(xs)?, self.value.forward(xs)?);
        let context = if super::fused::applies(xs) {
            super::attention::attend(&q, &k, &v, mask_bias, self.heads, self.attention_dropout, train)?
        } else {
            self.composed(&q, &k, &v, mask_bias, train)?
        };
        let out = dropout(&self.output.forward(&context)?, self.dropout, train)?;
        self.norm.forward(&(out + xs)?, train)
    }

    /// Attention from candle's operations, for devices other than the CPU.
    fn composed(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask_bias: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (b, s, h) = q.dims3()?;
        let (q, k, v) = (self.split_heads(q)?, self.split_heads(k)?, self.split_heads(v)?);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask_bias)?;
        let probs = dropout(&softmax(&scores, train)?, self.attention_dropout, train)?;
        probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
    }
}

struct Layer {
    attention: SelfAttention,
    intermediate: Dense,
    output: Dense,
    norm: Norm,
    act: String,
    dropout: f32,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        Ok(Layer {
            attention: SelfAttention::load(vb.pp("attention"), cfg)?,
            intermediate: dense(cfg.hidden_size, cfg.intermediate_size, vb.pp("intermediate").pp("dense"))?,
            output: dense(cfg.intermediate_size, cfg.hidden_size, vb.pp("output").pp("dense"))?,
            norm: norm(cfg.hidden_size, cfg.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            act: cfg.hidden_act.clone(),
            dropout: cfg.hidden_dropout_prob,
        })
    }

    fn forward(&self, xs: &Tensor, mask_bias: &Tensor, train: bool) -> Result<Tensor> {
        let attended = self.attention.forward(xs, mask_bias, train)?;
        let hidden = match self.act.as_str() {
            "relu" => self.intermediate.forward(&attended)?.relu()?,
            "gelu_new" => self.intermediate.forward(&attended)?.gelu()?,
            // The CPU takes the vectorised erf (same values within 1e-6), inside the
            // integer kernel for int8 layers.
            _ if super::fused::applies(&attended) => self.intermediate.forward_gelu(&attended)?,
            _ => self.intermediate.forward(&attended)?.gelu_erf()?,
        };
        let out = dropout(&self.output.forward(&hidden)?, self.dropout, train)?;
        self.norm.forward(&(out + attended)?, train)
    }
}

/// What of the encoder stays as it is while the rest trains: the embeddings, and the
/// lower layers over them. Frozen parts run as in inference (no dropout, the fused
/// kernels) and their output is detached, so no gradient is computed through them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub embeddings: bool,
    /// The first this many layers (which implies the embeddings).
    pub layers: usize,
}

impl Frozen {
    /// The same freeze for an encoder of `layers` layers (at most all of them).
    pub fn within(self, layers: usize) -> Frozen {
        Frozen { layers: self.layers.min(layers), ..self }
    }

    /// Whether the variable `name` (of an encoder under `prefix`) is frozen.
    pub fn holds(&self, prefix: &str, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(prefix).and_then(|n| n.strip_prefix('.')) else { return false };
        if rest.starts_with("embeddings") {
            return self.embeddings || self.layers > 0;
        }
        let layer =
            rest.strip_prefix("encoder.layer.").and_then(|r| r.split('.').next()?.parse::<usize>().ok());
        layer.is_some_and(|l| l < self.layers)
    }
}

/// The encoder: token ids in, one hidden vector per token out.
pub struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pub config: Config,
    frozen: Frozen,
    /// What the frozen lower layers made of rows seen before (fast mode).
    features: Option<std::sync::Arc<super::features::FeatureCache>>,
    /// Tokens after the first of these are the second segment (token type 1); none
    /// when the checkpoint or its tokenizer has one type only.
    pair_separator: Option<u32>,
    device: Device,
}

impl Encoder {
    /// Loads from a `VarBuilder` rooted where `embeddings` and `encoder` live (for
    /// Hugging Face task checkpoints that is the family's prefix, e.g. `roberta`).
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let device = vb.device().clone();
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            embeddings: Embeddings::load(vb.clone(), config)?,
            layers,
            config: config.clone(),
            frozen: Frozen::default(),
            features: None,
            pair_separator: None,
            device,
        })
    }

    /// Keeps the embeddings and lower layers fixed in training (see [`Frozen`]).
    pub fn freeze(&mut self, frozen: Frozen) {
        self.frozen = frozen;
    }

    /// Takes the states after the cache's layers from `cache`, computing and keeping
    /// those of rows it lacks; only the layers above run on every pass. The caller
    /// vouches that those lower layers are the ones the cache was made for (their
    /// fingerprint, `features::fingerprint`) and stay fixed.
    pub fn cache_features(&mut self, cache: std::sync::Arc<super::features::FeatureCache>) {
        debug_assert!(cache.layers() <= self.layers.len());
        self.features = Some(cache);
    }

    /// Reads pairs the way `tokenizer` builds them: where its pair template gives the
    /// second segment type 1 (BERT's `[CLS] A [SEP] B [SEP]`), so does the encoder.
    pub fn with_tokenizer(mut self, tokenizer: &tokenizers::Tokenizer) -> Self {
        self.pair_separator = match self.config.type_vocab_size > 1 {
            true => pair_separator(tokenizer),
            false => None,
        };
        self
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The word embedding table (vocabulary × embedding width), which a masked
    /// language model's decoder shares.
    pub fn word_embeddings(&self) -> &Tensor {
        self.embeddings.words.embeddings()
    }

    /// Puts every linear layer of the encoder in 8 bits (embeddings and layer norms stay
    /// f32): the in-memory form of `reviewloop quantize --precision int8`.
    pub fn to_int8(&mut self) -> Result<()> {
        // States cached from the f32 layers would no longer be this encoder's.
        self.features = None;
        for layer in &mut self.layers {
            let a = &mut layer.attention;
            for dense in [&mut a.query, &mut a.key, &mut a.value, &mut a.output] {
                *dense = dense.to_int8()?;
            }
            layer.intermediate = layer.intermediate.to_int8()?;
            layer.output = layer.output.to_int8()?;
        }
        Ok(())
    }

    /// Hidden states (batch, seq, hidden) for rows of equal length, padded with
    /// `pad_token_id`; padding is masked out of attention.
    pub fn forward(&self, rows: &[Vec<u32>], train: bool) -> Result<Tensor> {
        let rows = self.truncated(rows);
        let inputs = self.inputs(&rows)?;
        let (mut xs, start) = match &self.features {
            Some(cache) => {
                let rows: Vec<&[u32]> = rows.iter().map(AsRef::as_ref).collect();
                let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
                (cache.hidden(&rows, len, |missing| self.lower(missing, cache.layers()))?, cache.layers())
            }
            None => (self.embedded(&inputs, train)?, 0),
        };
        for (i, layer) in self.layers.iter().enumerate().skip(start) {
            let frozen = i < self.frozen.layers;
            xs = layer.forward(&xs, &inputs.mask_bias, train && !frozen)?;
            if train && frozen {
                xs = xs.detach();
            }
        }
        Ok(xs)
    }

    fn embedded(&self, inputs: &Inputs, train: bool) -> Result<Tensor> {
        let frozen = self.frozen.embeddings || self.frozen.layers > 0;
        let xs = self.embeddings.forward(inputs, train && !frozen)?;
        Ok(if train && frozen { xs.detach() } else { xs })
    }

    /// The states after the first `layers` layers, as in inference.
    fn lower(&self, rows: &[&[u32]], layers: usize) -> Result<Tensor> {
        let inputs = self.inputs(rows)?;
        let mut xs = self.embeddings.forward(&inputs, false)?;
        for layer in &self.layers[..layers] {
            xs = layer.forward(&xs, &inputs.mask_bias, false)?;
        }
        Ok(xs)
    }

    /// Rows longer than the positions allow keep their head and their last token (the
    /// closing `[SEP]`), so an over-long input degrades instead of failing.
    fn truncated<'r>(&self, rows: &'r [Vec<u32>]) -> Vec<std::borrow::Cow<'r, [u32]>> {
        let limit = self.config.max_tokens();
        rows.iter()
            .map(|r| match r.len() > limit {
                true => std::borrow::Cow::Owned([&r[..limit - 1], &r[r.len() - 1..]].concat()),
                false => std::borrow::Cow::Borrowed(r.as_slice()),
            })
            .collect()
    }

    /// Ids, positions, token types and an additive attention bias, all built on the
    /// host in one pass. RoBERTa's positions count from pad + 1 over real tokens only,
    /// BERT's from 0.
    fn inputs<R: AsRef<[u32]>>(&self, rows: &[R]) -> Result<Inputs> {
        let pad = self.config.pad_token_id;
        let offset = self.config.family().offsets_positions();
        let len = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
        let (mut ids, mut positions, mut types, mut bias) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in rows.iter().map(AsRef::as_ref) {
            let mut next = if offset { pad + 1 } else { 0 };
            let mut segment = 0u32;
            for i in 0..len {
                let id = row.get(i).copied().unwrap_or(pad);
                ids.push(id);
                types.push(segment);
                if Some(id) == self.pair_separator {
                    segment = 1;
                }
                if id == pad {
                    positions.push(if offset { pad } else { i as u32 });
                    bias.push(f32::MIN);
                } else {
                    positions.push(if offset { next } else { i as u32 });
                    next += 1;
                    bias.push(0.0);
                }
            }
        }
        let b = rows.len();
        Ok(Inputs {
            ids: Tensor::from_vec(ids, (b, len), &self.device)?,
            positions: Tensor::from_vec(positions, (b, len), &self.device)?,
            types: Tensor::from_vec(types, (b, len), &self.device)?,
            mask_bias: Tensor::from_vec(bias, (b, 1, 1, len), &self.device)?,
        })
    }
}

/// The token after which `tokenizer`'s pair template starts type 1, if it has one.
fn pair_separator(tokenizer: &tokenizers::Tokenizer) -> Option<u32> {
    let encoding = tokenizer.encode(("a", "b"), true).ok()?;
    let second = encoding.get_type_ids().iter().position(|&t| t == 1)?;
    second.checked_sub(1).map(|i| encoding.get_ids()[i])
}

/// Mean of the hidden states over real tokens: the embedding used for clustering.
pub fn mean_pool(hidden: &Tensor, rows: &[Vec<u32>], pad: u32) -> Result<Tensor> {
    let (b, s, _) = hidden.dims3()?;
    let mask: Vec<f32> = rows
        .iter()
        .flat_map(|r| (0..s).map(move |i| if r.get(i).is_some_and(|&t| t != pad) { 1.0 } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (b, s, 1), hidden.device())?.to_dtype(hidden.dtype())?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1.0, f64::MAX)?;
    summed.broadcast_div(&counts)
}
