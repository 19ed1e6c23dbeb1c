//! Lighter copies of a model folder: encoder linear layers in 8 bits, or every float
//! weight in 16 bits.
//!
//! int8 keeps the Hugging Face names but stores each encoder linear weight as
//! `weight_q` (u8 = code + 128, codes −127…127) and `weight_scale` (one f32 per output
//! row) in place of `weight`; `dense()` reads either form. Embeddings, layer norms,
//! biases and the classifier head stay f32: they are a small share of the compute and
//! the head is where thresholds were tuned. f16 / bf16 halve the file; on this CPU
//! they compute no faster than f32 (measured: docs/models.md), so they are read back as f32.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::dense::{QUANTIZED, SCALE};
use super::int8::quantize_rows;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Encoder linear layers in 8 bits, run by the integer kernel.
    Int8,
    /// Every float tensor stored as IEEE half precision.
    F16,
    /// Every float tensor stored as bfloat16.
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Whether a tensor is the weight of an encoder linear layer (attention projections and
/// the feed-forward pair), the layers int8 applies to.
fn is_encoder_linear(name: &str, tensor: &Tensor) -> bool {
    let linear =
        ["dense.weight", "query.weight", "key.weight", "value.weight"].iter().any(|s| name.ends_with(s));
    name.contains(".encoder.layer.") && linear && tensor.rank() == 2
}

/// The tensors of a lighter copy.
pub fn convert(
    tensors: HashMap<String, Tensor>,
    precision: Precision,
) -> anyhow::Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for (name, tensor) in tensors {
        match precision {
            Precision::Int8 if is_encoder_linear(&name, &tensor) => {
                let (_, inputs) = tensor.dims2()?;
                let values = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                let (codes, scales) = quantize_rows(&values, inputs);
                let offset: Vec<u8> = codes.iter().map(|&c| (c as i16 + 128) as u8).collect();
                let stem = name.trim_end_matches("weight");
                out.insert(
                    format!("{stem}{QUANTIZED}"),
                    Tensor::from_vec(offset, tensor.dims(), &Device::Cpu)?,
                );
                out.insert(format!("{stem}{SCALE}"), Tensor::from_vec(scales, tensor.dim(0)?, &Device::Cpu)?);
            }
            Precision::Int8 => {
                out.insert(name, tensor);
            }
            Precision::F16 | Precision::Bf16 if tensor.dtype().is_float() => {
                let dtype = if precision == Precision::F16 { DType::F16 } else { DType::BF16 };
                out.insert(name, tensor.to_dtype(dtype)?);
            }
            Precision::F16 | Precision::Bf16 => {
                out.insert(name, tensor);
            }
        }
    }
    Ok(out)
}

/// Writes a lighter copy of the model folder `source` into `target` (which exists):
/// the converted weights, the same tokenizer and labels, and `config.json` saying what
/// was done.
pub fn write_copy(source: &Path, target: &Path, precision: Precision) -> anyhow::Result<()> {
    let weights = source.join("model.safetensors");
    let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
        .with_context(|| format!("cannot read {}", weights.display()))?;
    candle_core::safetensors::save(&convert(tensors, precision)?, target.join("model.safetensors"))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("config.json"))?)?;
    config["quantization"] = serde_json::json!({
        "precision": precision.name(),
        "scheme": match precision {
            Precision::Int8 => "encoder linear layers: per-output-row symmetric int8, weight_q = code + 128, weight ≈ (weight_q − 128) · weight_scale",
            _ => "all float tensors stored in this precision, computed in f32",
        },
    });
    std::fs::write(target.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    for file in ["tokenizer.json", "labels.json"] {
        std::fs::copy(source.join(file), target.join(file)).with_context(|| format!("copying {file}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> HashMap<String, Tensor> {
        let w = |n: usize, k: usize| {
            Tensor::from_vec(
                (0..n * k).map(|i| (i as f32 - 7.0) / 13.0).collect::<Vec<_>>(),
                (n, k),
                &Device::Cpu,
            )
            .unwrap()
        };
        HashMap::from([
            ("roberta.encoder.layer.0.attention.self.query.weight".to_string(), w(8, 8)),
            ("roberta.encoder.layer.0.intermediate.dense.weight".to_string(), w(16, 8)),
            ("roberta.encoder.layer.0.intermediate.dense.bias".to_string(), w(1, 16).flatten_all().unwrap()),
            ("roberta.embeddings.word_embeddings.weight".to_string(), w(10, 8)),
            ("classifier.weight".to_string(), w(3, 8)),
        ])
    }

    #[test]
    fn int8_replaces_only_encoder_linear_weights() {
        let out = convert(tensors(), Precision::Int8).unwrap();
        let mut names: Vec<&str> = out.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "classifier.weight",
                "roberta.embeddings.word_embeddings.weight",
                "roberta.encoder.layer.0.attention.self.query.weight_q",
                "roberta.encoder.layer.0.attention.self.query.weight_scale",
                "roberta.encoder.layer.0.intermediate.dense.bias",
                "roberta.encoder.layer.0.intermediate.dense.weight_q",
                "roberta.encoder.layer.0.intermediate.dense.weight_scale",
            ]
        );
        let q = &out["roberta.encoder.layer.0.intermediate.dense.weight_q"];
        assert_eq!((q.dtype(), q.dims()), (DType::U8, &[16usize, 8][..]));
    }

    #[test]
    fn half_precisions_convert_every_float_tensor() {
        for (precision, dtype) in [(Precision::F16, DType::F16), (Precision::Bf16, DType::BF16)] {
            let out = convert(tensors(), precision).unwrap();
            assert!(out.values().all(|t| t.dtype() == dtype));
        }
    }
}
