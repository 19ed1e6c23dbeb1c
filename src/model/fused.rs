//! Layer normalisation for training on the CPU, one pass forward and one pass backward
//! (softmax lives inside `attention`, linear layers in `affine`).
//!
//! candle's fused layer norm has no backward pass, so training used to build it from
//! eight or so tensor operations, each a full pass over the activations with its own
//! allocation, and as many again backward. These ops compute the same values with the
//! textbook gradients:
//! - normalise: x̂ = (x − μ) / σ, dx = (g − mean(g) − x̂ · mean(g · x̂)) / σ
//! - scale and shift over rows: y = x · w + b, dw = Σ_rows g · x, db = Σ_rows g
//!
//! The last matters because candle sums a broadcast operand's gradient with a strided
//! reduction on one thread; here the column sums run over row blocks in parallel.
//!
//! They run on contiguous f32 CPU tensors; other devices and dtypes use the composed
//! operations (see `encoder::Norm`).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Whether `xs` can take the fused path.
pub fn applies(xs: &Tensor) -> bool {
    xs.device().is_cpu() && xs.dtype() == candle_core::DType::F32
}

/// (x − mean) / sqrt(var + eps) over the last dimension, differentiable.
pub fn normalise(xs: &Tensor, eps: f64) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(Normalise { eps: eps as f32 })
}

/// `xs · scale + shift` over the last dimension, differentiable in all three.
pub fn scale_shift(xs: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op3(&scale.contiguous()?, &shift.contiguous()?, ScaleShift)
}

/// Σ over all rows, as a tensor of the last dimension's size (not differentiable).
pub(crate) fn column_sum(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1_no_bwd(&ColumnSum)
}

/// A buffer handed to worker threads that each write their own disjoint part of it.
#[derive(Clone, Copy)]
pub(crate) struct Shared(*mut f32, usize);
// Safety: users only take disjoint parts (see `part`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    pub(crate) fn new(buffer: &mut [f32]) -> Self {
        Shared(buffer.as_mut_ptr(), buffer.len())
    }

    /// A pointer to element `offset`.
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        assert!(offset < self.1, "offset {offset} past a buffer of {}", self.1);
        // Safety: within the buffer (checked above).
        unsafe { self.0.add(offset) }
    }

    pub(crate) fn len(self) -> usize {
        self.1
    }

    /// Elements `start..start + len` (cut at the end of the buffer).
    ///
    /// Safety: no two threads may hold overlapping parts, and the buffer must outlive them.
    pub(crate) unsafe fn part<'a>(self, start: usize, len: usize) -> &'a mut [f32] {
        debug_assert!(start <= self.1, "part from {start} of a buffer of {}", self.1);
        std::slice::from_raw_parts_mut(self.0.add(start), len.min(self.1 - start))
    }
}

/// Calls `f(row, &mut dst_row)` for every row of `width` elements of `dst` (the last
/// may be shorter), spread over candle's own worker threads (the ones its matrix
/// products use), so no second thread pool competes for the cores.
pub(crate) fn for_rows(dst: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let (shared, width) = (Shared::new(dst), width.max(1));
    candle_core::utils::barrier_pool().execute_chunked(dst.len().div_ceil(width), |range| {
        for r in range {
            // Safety: rows in distinct ranges do not overlap and `dst` outlives the call.
            f(r, unsafe { shared.part(r * width, width) });
        }
    });
}

/// The rows of a contiguous f32 tensor and their length.
pub(crate) fn rows<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<(&'a [f32], usize)> {
    let CpuStorage::F32(data) = storage else { bail!("our CPU ops take f32 tensors") };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("our CPU ops take contiguous tensors")
    };
    Ok((&data[start..end], layout.dims().last().copied().unwrap_or(1).max(1)))
}

fn output(values: Vec<f32>, layout: &Layout) -> (CpuStorage, Shape) {
    (CpuStorage::F32(values), layout.shape().clone())
}

/// A new tensor of `layout`'s shape whose rows are `f(source row, new row)`.
pub(crate) fn map_rows(
    storage: &CpuStorage,
    layout: &Layout,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let (src, width) = rows(storage, layout)?;
    let mut dst = vec![0f32; src.len()];
    for_rows(&mut dst, width, |r, d| f(&src[r * width..][..width], d));
    Ok(output(dst, layout))
}

/// As `map_rows`, over the rows of two tensors of one shape.
pub(crate) fn map_row_pairs(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    f: impl Fn(&[f32], &[f32], &mut [f32]) + Sync,
) -> Result<(CpuStorage, Shape)> {
    let ((a, width), (b, _)) = (rows(s1, l1)?, rows(s2, l2)?);
    if a.len() != b.len() {
        bail!("fused ops take two tensors of one shape");
    }
    let mut dst = vec![0f32; a.len()];
    for_rows(&mut dst, width, |r, d| f(&a[r * width..][..width], &b[r * width..][..width], d));
    Ok(output(dst, l1))
}

/// Mean and 1 / σ of one row.
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, (variance + eps).sqrt().recip())
}

struct Normalise {
    eps: f32,
}

impl CustomOp1 for Normalise {
    fn name(&self) -> &'static str {
        "normalise"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        map_rows(storage, layout, |x, d| {
            let (mean, inv_std) = moments(x, self.eps);
            for (d, x) in d.iter_mut().zip(x) {
                *d = (x - mean) * inv_std;
            }
        })
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &NormaliseGrad { eps: self.eps })?))
    }
}

/// (x, g) → dx for `Normalise`; recomputes the moments instead of storing them.
struct NormaliseGrad {
    eps: f32,
}

impl CustomOp2 for NormaliseGrad {
    fn name(&self) -> &'static str {
        "normalise-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        map_row_pairs((s1, l1), (s2, l2), |x, g, d| {
            let (mean, inv_std) = moments(x, self.eps);
            let n = x.len() as f32;
            let g_mean = g.iter().sum::<f32>() / n;
            let gx_mean = x.iter().zip(g).map(|(x, g)| (x - mean) * inv_std * g).sum::<f32>() / n;
            for ((d, x), g) in d.iter_mut().zip(x).zip(g) {
                *d = (g - g_mean - (x - mean) * inv_std * gx_mean) * inv_std;
            }
        })
    }
}

/// Rows per parallel block when summing columns.
const BLOCK_ROWS: usize = 256;

/// Σ over rows of `a` (times `b` element-wise when given), rows of `width`: one
/// partial sum per fixed block of rows on the worker threads, then the partials added
/// in block order, so the result does not depend on thread timing (the same seed must
/// train the same model).
fn column_sums(a: &[f32], b: Option<&[f32]>, width: usize) -> Vec<f32> {
    let block = BLOCK_ROWS * width;
    let mut partials = vec![0f32; a.len().div_ceil(block) * width];
    for_rows(&mut partials, width, |i, sums| {
        let end = ((i + 1) * block).min(a.len());
        for start in (i * block..end).step_by(width) {
            let row = &a[start..start + width];
            match b {
                Some(b) => {
                    let other = &b[start..start + width];
                    sums.iter_mut().zip(row.iter().zip(other)).for_each(|(s, (x, y))| *s += x * y);
                }
                None => sums.iter_mut().zip(row).for_each(|(s, x)| *s += x),
            }
        }
    });
    let mut total = vec![0f32; width];
    for partial in partials.chunks(width) {
        total.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
    }
    total
}

fn vector(values: Vec<f32>) -> (CpuStorage, Shape) {
    let n = values.len();
    (CpuStorage::F32(values), Shape::from(n))
}

/// Σ over rows, as a tensor of the last dimension's size.
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (src, width) = rows(storage, layout)?;
        Ok(vector(column_sums(src, None, width)))
    }
}

/// Σ over rows of a ⊙ b.
struct ColumnDot;

impl CustomOp2 for ColumnDot {
    fn name(&self) -> &'static str {
        "column-dot"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((a, width), (b, _)) = (rows(s1, l1)?, rows(s2, l2)?);
        Ok(vector(column_sums(a, Some(b), width)))
    }
}

struct ScaleShift;

impl CustomOp3 for ScaleShift {
    fn name(&self) -> &'static str {
        "scale-shift"
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
        let ((scale, _), (shift, _)) = (rows(s2, l2)?, rows(s3, l3)?);
        map_rows(s1, l1, |x, d| {
            for (((d, x), w), b) in d.iter_mut().zip(x).zip(scale).zip(shift) {
                *d = x * w + b;
            }
        })
    }

    fn bwd(
        &self,
        xs: &Tensor,
        scale: &Tensor,
        _: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        Ok((
            Some(grad.broadcast_mul(scale)?),
            Some(grad.apply_op2_no_bwd(xs, &ColumnDot)?),
            Some(grad.apply_op1_no_bwd(&ColumnSum)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::*;
    use crate::model::testing::close;

    fn composed_normalise(xs: &Tensor, eps: f64) -> Result<Tensor> {
        let centred = xs.broadcast_sub(&xs.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred.broadcast_div(&(variance + eps)?.sqrt()?)
    }

    /// Value and input gradient of `sum(f(x) · w)`, for fixed x and w with rows of
    /// very different scales.
    fn value_and_grad(f: impl Fn(&Tensor) -> Result<Tensor>) -> (Vec<f32>, Vec<f32>) {
        let data =
            |k: f32| -> Vec<f32> { (0..240).map(|i| (i as f32 * k).sin() * (1 + i / 16) as f32).collect() };
        let x = Var::from_vec(data(0.37), (3, 5, 16), &Device::Cpu).unwrap();
        let w = Tensor::from_vec(data(1.91), (3, 5, 16), &Device::Cpu).unwrap();
        let y = f(x.as_tensor()).unwrap();
        let grads = (&y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (flat(&y), flat(grads.get(x.as_tensor()).unwrap()))
    }

    /// Gradients of `sum(f(x))` for the given parameters, concatenated; x has 300 rows so
    /// that column sums cross the parallel blocks.
    fn parameter_grads(params: &[&Var], f: impl Fn(&Tensor) -> Result<Tensor>) -> Vec<f32> {
        let x =
            Tensor::from_vec((0..4800).map(|i| (i as f32 * 0.13).cos()).collect(), (300, 16), &Device::Cpu)
                .unwrap();
        let grads = f(&x).unwrap().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        params.iter().flat_map(|p| grads.get(p.as_tensor()).unwrap().to_vec1::<f32>().unwrap()).collect()
    }

    #[test]
    fn column_sums_do_not_depend_on_thread_timing() {
        let a: Vec<f32> = (0..64 * 5000).map(|i| (i as f32 * 0.7).sin() * 1e3).collect();
        let first = column_sums(&a, None, 64);
        assert!((0..30).all(|_| column_sums(&a, None, 64) == first));
        let plain: Vec<f32> = (0..64).map(|j| a.iter().skip(j).step_by(64).sum::<f32>()).collect();
        assert!(first.iter().zip(&plain).all(|(x, y)| (x - y).abs() <= 1e-3 * y.abs().max(1.0)));
    }

    #[test]
    fn fused_ops_match_the_composed_ones_in_value_and_gradient() {
        let fused = value_and_grad(|x| normalise(x, 1e-5));
        let composed = value_and_grad(|x| composed_normalise(x, 1e-5));
        close(&fused.0, &composed.0);
        close(&fused.1, &composed.1);

        let bias = Var::from_vec((0..16).map(|i| i as f32 / 7.0).collect(), 16, &Device::Cpu).unwrap();
        let scale = Var::from_vec((0..16).map(|i| 1.0 - i as f32 / 9.0).collect(), 16, &Device::Cpu).unwrap();
        let ours = value_and_grad(|x| scale_shift(x, &scale, &bias));
        let g_ours = parameter_grads(&[&bias, &scale], |x| scale_shift(x, &scale, &bias));
        let theirs = value_and_grad(|x| x.broadcast_mul(&scale)?.broadcast_add(&bias));
        let g_theirs = parameter_grads(&[&bias, &scale], |x| x.broadcast_mul(&scale)?.broadcast_add(&bias));
        close(&ours.0, &theirs.0);
        close(&ours.1, &theirs.1);
        close(&g_ours, &g_theirs);
    }
}
