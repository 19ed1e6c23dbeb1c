//! Inverted dropout, as one differentiable op on the CPU.
//!
//! Composed as `xs * mask`, candle's backward pass also computes the gradient of the
//! mask, a constant: one more activation-sized product, zero-filled buffer and sum per
//! dropout, three dropouts a layer. Here the backward pass only scales the gradient by
//! the same factors.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::fused::{for_rows, rows};

/// Zeroes a share `p` of the values and scales the rest by 1/(1−p).
pub fn dropout(xs: &Tensor, p: f32) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(xs.clone());
    }
    let factors = super::random::dropout_mask(xs.elem_count(), p);
    if super::fused::applies(xs) {
        return xs.contiguous()?.apply_op1(Scale(Arc::new(factors)));
    }
    let mask = Tensor::from_vec(factors, xs.shape(), xs.device())?;
    xs * mask.to_dtype(xs.dtype())?
}

/// Values per parallel block.
const BLOCK: usize = 1 << 14;

/// Element-wise product with fixed factors; its gradient is the same product.
struct Scale(Arc<Vec<f32>>);

impl CustomOp1 for Scale {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (src, _) = rows(storage, layout)?;
        if src.len() != self.0.len() {
            candle_core::bail!("dropout: {} factors for {} values", self.0.len(), src.len());
        }
        let mut dst = vec![0f32; src.len()];
        for_rows(&mut dst, BLOCK, |block, out| {
            let start = block * BLOCK;
            for ((d, x), f) in out.iter_mut().zip(&src[start..]).zip(&self.0[start..]) {
                *d = x * f;
            }
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }

    fn bwd(&self, _: &Tensor, _: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Scale(self.0.clone()))?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::testing::flat;

    #[test]
    fn drops_about_p_scales_the_rest_and_passes_the_same_factors_back() {
        let n = 3 * BLOCK + 17;
        let xs = Var::from_vec((0..n).map(|i| 1.0 + (i % 7) as f32).collect(), n, &Device::Cpu).unwrap();
        let out = dropout(xs.as_tensor(), 0.25).unwrap();
        let grad = out.sum_all().unwrap().backward().unwrap();
        let (values, inputs, grads) =
            (flat(&out), flat(xs.as_tensor()), flat(grad.get(xs.as_tensor()).unwrap()));
        let dropped = values.iter().filter(|v| **v == 0.0).count() as f32 / n as f32;
        assert!((dropped - 0.25).abs() < 0.02, "dropped {dropped}");
        for ((v, x), g) in values.iter().zip(&inputs).zip(&grads) {
            assert!(
                *v == 0.0 && *g == 0.0 || (v / x - 1.0 / 0.75).abs() < 1e-6 && (g - 1.0 / 0.75).abs() < 1e-6
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_mask() {
        let xs = Tensor::ones((2 * BLOCK + 3,), candle_core::DType::F32, &Device::Cpu).unwrap();
        let draw = |seed| {
            super::super::random::seed(seed);
            flat(&dropout(&xs, 0.5).unwrap())
        };
        assert_eq!(draw(4), draw(4));
        assert_ne!(draw(4), draw(5));
    }
}
