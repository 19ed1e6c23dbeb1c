//! A linear layer that multiplies one 2-D matrix however many leading dimensions its
//! input has.
//!
//! candle's `Linear` broadcasts its weight over the batch for 3-D inputs, so training
//! computed one weight gradient per sequence and then summed them: a (batch, in, out)
//! tensor reduced on one thread, for every layer, every step. Folding the leading
//! dimensions into rows first gives the whole weight gradient from one matrix product.
//!
//! A quantized version stores some weights in 8 bits (see `int8`); those layers run the
//! integer kernel on CPUs with AVX-512 VNNI and the dequantized weight elsewhere.

use std::sync::Arc;

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::int8::Int8Matrix;

#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
    /// Set for int8 layers on a CPU with VNNI, whose `weight` is then empty. Elsewhere
    /// an int8 layer keeps its dequantized weight in `weight` and leaves this unset.
    int8: Option<Arc<Int8Matrix>>,
}

/// Weights `weight` (out, in) and `bias` (out) under `vb`, as Hugging Face names them;
/// or, in a quantized version, `weight_q` (out, in; u8 holding code + 128) and
/// `weight_scale` (out) instead of `weight`.
pub fn dense(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Dense> {
    if vb.contains_tensor(QUANTIZED) {
        return quantized(inputs, outputs, vb);
    }
    let linear: Linear = candle_nn::linear(inputs, outputs, vb)?;
    Ok(Dense { weight: linear.weight().clone(), bias: linear.bias().cloned(), int8: None })
}

/// Names of a quantized weight's tensors in a saved version.
pub const QUANTIZED: &str = "weight_q";
pub const SCALE: &str = "weight_scale";

fn quantized(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Dense> {
    let init = candle_nn::Init::Const(0.0);
    let offset = vb.get_with_hints_dtype((outputs, inputs), QUANTIZED, init, DType::U8)?;
    let codes: Vec<i8> =
        offset.flatten_all()?.to_vec1::<u8>()?.into_iter().map(|c| (c as i16 - 128) as i8).collect();
    let scales = vb.get_with_hints_dtype(outputs, SCALE, init, DType::F32)?.to_vec1::<f32>()?;
    let bias = vb.get_with_hints_dtype(outputs, "bias", init, DType::F32)?;
    let matrix = Int8Matrix::new(&codes, scales, inputs, Some(bias.to_vec1()?))?;
    let device = vb.device();
    // Without VNNI the integer kernel is the portable loop, twenty times slower than
    // the f32 product (9 against 187 sequences/s for the small model on an AVX2-only
    // EPYC, `bench infer --int8`): such CPUs run the dequantized weight instead.
    if device.is_cpu() && super::int8::accelerated() {
        return Dense::from_int8(matrix, device);
    }
    let weight = Tensor::from_vec(matrix.dequantized(), (outputs, inputs), device)?;
    Ok(Dense { weight, bias: Some(bias), int8: None })
}

impl Dense {
    /// The layer with its weight in 8 bits (inference on the CPU only).
    pub fn to_int8(&self) -> Result<Dense> {
        if self.int8.is_some() {
            return Ok(self.clone());
        }
        Dense::from_int8(Int8Matrix::quantize(&self.weight, self.bias.as_ref())?, self.weight.device())
    }

    /// A CPU layer run by the integer kernel (its f32 weight left empty).
    fn from_int8(matrix: Int8Matrix, device: &candle_core::Device) -> Result<Dense> {
        let empty = Tensor::zeros(0, DType::F32, device)?;
        Ok(Dense { weight: empty, bias: None, int8: Some(Arc::new(matrix)) })
    }

    /// How many values the layer outputs.
    pub fn outputs(&self) -> Result<usize> {
        match &self.int8 {
            Some(matrix) => Ok(matrix.outputs()),
            None => self.weight.dim(0),
        }
    }

    /// GELU of the layer's output, fused into the integer kernel for int8 layers.
    pub fn forward_gelu(&self, xs: &Tensor) -> Result<Tensor> {
        match &self.int8 {
            Some(matrix) => matrix.forward(xs, true),
            None => super::gelu::gelu(&self.forward(xs)?),
        }
    }
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if let Some(matrix) = &self.int8 {
            return matrix.forward(xs, false);
        }
        if let (Some(bias), true) = (&self.bias, super::fused::applies(xs)) {
            return super::affine::affine(xs, &self.weight, bias);
        }
        let dims = xs.dims().to_vec();
        let (leading, inputs) = dims.split_at(dims.len() - 1);
        let rows = xs.reshape((leading.iter().product::<usize>(), inputs[0]))?.matmul(&self.weight.t()?)?;
        let rows = match &self.bias {
            Some(bias) => rows.broadcast_add(bias)?,
            None => rows,
        };
        let mut shape = leading.to_vec();
        shape.push(self.weight.dim(0)?);
        rows.reshape(shape)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;

    #[test]
    fn dense_matches_candles_linear_on_3d_inputs() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let ours = dense(8, 5, vb.clone()).unwrap();
        let theirs = candle_nn::linear(8, 5, vb).unwrap();
        let xs = Tensor::arange(0f32, 96.0, &Device::Cpu).unwrap().reshape((2, 6, 8)).unwrap();
        let a = ours.forward(&(&xs / 50.0).unwrap()).unwrap();
        let b = theirs.forward(&(&xs / 50.0).unwrap()).unwrap();
        assert_eq!(a.dims(), &[2, 6, 5]);
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
