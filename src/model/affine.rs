//! `x · Wᵀ + b` over the last dimension as one differentiable op on the CPU.
//!
//! Composed from candle's operations, a linear layer is five graph nodes (fold the
//! leading dimensions, transpose the weight, multiply, add the bias, unfold), and
//! candle's backward pass gives each node's gradient its own zero-filled buffer and
//! adds into it: four activation-sized allocations, fills and additions per layer and
//! step, one of them over the transposed weight with strided (unvectorised) indexing.
//! Here the bias is written into the output first and the product is added onto it
//! by one `gemm` call, and the backward pass is three products/sums straight into the
//! shapes the inputs have.
//!
//! Gradients: dx = g · W, dW = gᵀ · x, db = Σ_rows g.

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::fused::rows;
use super::product::{multiply, product, Strided, Target, Write};

/// `xs · weightᵀ + bias` for `xs` (…, in), `weight` (out, in), `bias` (out).
pub fn affine(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, Affine)
}

/// (rows, width) of a tensor seen as a matrix over its last dimension.
fn matrix(layout: &Layout) -> (usize, usize) {
    let width = layout.dims().last().copied().unwrap_or(1);
    (layout.shape().elem_count() / width.max(1), width)
}

struct Affine;

impl CustomOp3 for Affine {
    fn name(&self) -> &'static str {
        "affine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xs, weight, bias) = (rows(s1, l1)?.0, rows(s2, l2)?.0, rows(s3, l3)?.0);
        let ((rows, inputs), (outputs, weight_inputs)) = (matrix(l1), matrix(l2));
        if inputs != weight_inputs || bias.len() != outputs || l2.dims().len() != 2 {
            bail!("affine: input {:?}, weight {:?}, bias {:?} do not fit", l1.dims(), l2.dims(), l3.dims());
        }
        // Filled on the worker threads: on one, this copy took a twentieth of inference.
        let mut dst = vec![0f32; rows * outputs];
        super::fused::for_rows(&mut dst, outputs, |_, row| row.copy_from_slice(bias));
        let (lhs, rhs) = (Strided::rows(xs, 0, inputs), Strided::transposed(weight, 0, inputs));
        let target = Target::rows(&mut dst, outputs);
        // Safety: `dst` is rows × outputs and owned here.
        unsafe { multiply(target, (rows, outputs, inputs), lhs, rhs, Write::HERE.adding().on_all_threads()) };
        let mut shape = l1.dims().to_vec();
        *shape.last_mut().expect("a matrix has dimensions") = outputs;
        Ok((CpuStorage::F32(dst), Shape::from(shape)))
    }

    fn bwd(
        &self,
        xs: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        Ok((
            Some(grad.apply_op2_no_bwd(weight, &Gradient::Input)?),
            Some(grad.apply_op2_no_bwd(xs, &Gradient::Weight)?),
            Some(super::fused::column_sum(&grad)?),
        ))
    }
}

/// The gradient of the input, g · W in the input's shape, or of the weight, gᵀ · x as
/// (out, in); the second operand is the weight or the input respectively.
#[derive(Clone, Copy)]
enum Gradient {
    Input,
    Weight,
}

impl CustomOp2 for Gradient {
    fn name(&self) -> &'static str {
        match self {
            Gradient::Input => "affine-grad-input",
            Gradient::Weight => "affine-grad-weight",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (grad, other) = (rows(s1, l1)?.0, rows(s2, l2)?.0);
        let ((count, outputs), (_, inputs)) = (matrix(l1), matrix(l2));
        Ok(match self {
            Gradient::Input => {
                let (lhs, rhs) = (Strided::rows(grad, 0, outputs), Strided::rows(other, 0, inputs));
                let mut shape = l1.dims().to_vec();
                *shape.last_mut().expect("a matrix has dimensions") = inputs;
                (CpuStorage::F32(product((count, inputs, outputs), lhs, rhs)), Shape::from(shape))
            }
            Gradient::Weight => {
                let (lhs, rhs) = (Strided::transposed(grad, 0, outputs), Strided::rows(other, 0, inputs));
                let dst = product((outputs, inputs, count), lhs, rhs);
                (CpuStorage::F32(dst), Shape::from((outputs, inputs)))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::*;
    use crate::model::testing::{close, flat};

    fn composed(xs: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        xs.broadcast_matmul(&weight.t()?)?.broadcast_add(bias)
    }

    #[test]
    fn matches_the_composed_layer_in_value_and_every_gradient() {
        let device = Device::Cpu;
        let ramp = |n: usize, scale: f32| (0..n).map(move |i| ((i * 37 % 23) as f32 - 11.0) * scale);
        let xs = Var::from_vec(ramp(2 * 5 * 7, 0.1).collect(), (2, 5, 7), &device).unwrap();
        let weight = Var::from_vec(ramp(3 * 7, 0.05).collect(), (3, 7), &device).unwrap();
        let bias = Var::from_vec(vec![0.5f32, -1.0, 2.0], 3, &device).unwrap();
        // A loss that weighs every output differently, so swapped gradients would show.
        let weights = Tensor::from_vec(ramp(2 * 5 * 3, 0.3).collect(), (2, 5, 3), &device).unwrap();
        let run = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>| {
            let out = f(xs.as_tensor(), weight.as_tensor(), bias.as_tensor()).unwrap();
            let grads = (&out * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let mut all = vec![flat(&out)];
            all.extend(
                [xs.as_tensor(), weight.as_tensor(), bias.as_tensor()].map(|v| flat(grads.get(v).unwrap())),
            );
            all
        };
        let (ours, theirs) = (run(&affine), run(&composed));
        assert_eq!(affine(xs.as_tensor(), weight.as_tensor(), bias.as_tensor()).unwrap().dims(), &[2, 5, 3]);
        for (a, b) in ours.iter().zip(&theirs) {
            close(a, b);
        }
    }

    #[test]
    fn a_weight_that_does_not_fit_is_an_error() {
        let device = Device::Cpu;
        let xs = Tensor::zeros((4, 6), candle_core::DType::F32, &device).unwrap();
        let weight = Tensor::zeros((3, 5), candle_core::DType::F32, &device).unwrap();
        let bias = Tensor::zeros(3, candle_core::DType::F32, &device).unwrap();
        let err = affine(&xs, &weight, &bias).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
    }
}
