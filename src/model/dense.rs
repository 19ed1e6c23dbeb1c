//! A linear layer that multiplies one 2-D matrix however many leading dimensions its
//! input has.
//!
//! candle's `Linear` broadcasts its weight over the batch for 3-D inputs, so training
//! computed one weight gradient per sequence and then summed them: a (batch, in, out)
//! tensor reduced on one thread, for every layer, every step. Folding the leading
//! dimensions into rows first gives the whole weight gradient from one matrix product.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

/// Weights `weight` (out, in) and `bias` (out) under `vb`, as Hugging Face names them.
pub fn dense(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Dense> {
    let linear: Linear = candle_nn::linear(inputs, outputs, vb)?;
    Ok(Dense { weight: linear.weight().clone(), bias: linear.bias().cloned() })
}

impl Module for Dense {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        let (leading, inputs) = dims.split_at(dims.len() - 1);
        let rows = xs.reshape((leading.iter().product::<usize>(), inputs[0]))?.matmul(&self.weight.t()?)?;
        let rows = match &self.bias {
            Some(bias) if super::fused::applies(&rows) => super::fused::add_bias(&rows, bias)?,
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
