//! The core of multi-head self-attention, softmax(q·kᵀ·s + mask) · v with dropout on
//! the probabilities, as one differentiable op on the CPU (s = 1/√head size).
//!
//! Composed from candle's operations it is a dozen graph nodes a layer: three copies
//! that move the heads in front of the tokens, two batched products, the scale, the
//! mask, softmax, dropout, and a copy back, each with its own zero-filled gradient
//! buffer in the backward pass. Here every (sequence, head) pair is one task on
//! candle's worker threads that reads its head's columns of q, k and v in place and
//! writes its block of the (batch, seq, hidden) output; the backward pass does the
//! same from the probabilities the forward pass kept.
//!
//! Gradients, per sequence and head, with P the probabilities, M the dropout factors
//! (0 or 1/(1−p)), P̃ = P ⊙ M and G the output's gradient:
//! dV = P̃ᵀ·G, dP = (G·Vᵀ) ⊙ M, dZ = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = s·dZ·K, dK = s·dZᵀ·Q.

use std::sync::OnceLock;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor};

use super::fused::{rows, Shared};
use super::product::{multiply, Strided, Target, Write};

/// Attention over `q`, `k`, `v` (batch, seq, hidden) split into `heads`, with
/// `mask_bias` (batch × seq values, added to every query's scores) and, when
/// training, dropout `p` on the probabilities. Returns (batch, seq, hidden).
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask_bias: &Tensor,
    heads: usize,
    p: f32,
    train: bool,
) -> Result<Tensor> {
    let (b, s, hidden) = q.dims3()?;
    if hidden % heads != 0 || k.dims() != q.dims() || v.dims() != q.dims() || mask_bias.elem_count() != b * s
    {
        bail!(
            "attention: q {:?}, k {:?}, v {:?}, mask {:?}, {heads} heads",
            q.dims(),
            k.dims(),
            v.dims(),
            mask_bias.dims()
        );
    }
    let dropout = (train && p > 0.0).then(|| super::random::dropout_mask(b * heads * s * s, p));
    let op = Attention {
        shape: Dims { batch: b, seq: s, hidden, heads },
        mask: mask_bias.flatten_all()?.to_vec1()?,
        dropout,
        kept: OnceLock::new(),
        keep: train,
    };
    q.contiguous()?.apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    seq: usize,
    hidden: usize,
    heads: usize,
}

impl Dims {
    fn head(&self) -> usize {
        self.hidden / self.heads
    }

    fn scale(&self) -> f32 {
        (self.head() as f32).sqrt().recip()
    }

    fn tasks(&self) -> usize {
        self.batch * self.heads
    }

    /// Sequence and the offset of task `t`'s head in a (batch, seq, hidden) buffer.
    fn task(&self, t: usize) -> (usize, usize) {
        let (sequence, head) = (t / self.heads, t % self.heads);
        (sequence, sequence * self.seq * self.hidden + head * self.head())
    }

    fn square(&self) -> usize {
        self.seq * self.seq
    }
}

struct Attention {
    shape: Dims,
    mask: Vec<f32>,
    /// Dropout factors, (batch, heads, seq, seq); none outside training.
    dropout: Option<Vec<f32>>,
    /// The probabilities before dropout, (batch, heads, seq, seq), kept for backward.
    kept: OnceLock<Vec<f32>>,
    keep: bool,
}

impl Attention {
    /// One task's probabilities into `probs` (seq × seq) and its output block.
    fn forward_task(&self, t: usize, (q, k, v): (&[f32], &[f32], &[f32]), probs: &mut [f32], out: Shared) {
        let Dims { seq: s, hidden, .. } = self.shape;
        let (sequence, base) = self.shape.task(t);
        let scores = Target::rows(&mut *probs, s);
        let (queries, keys) = (Strided::rows(q, base, hidden), Strided::transposed(k, base, hidden));
        // Safety: `probs` is seq × seq and this task's own.
        unsafe {
            multiply(scores, (s, s, self.shape.head()), queries, keys, Write::HERE.scaled(self.shape.scale()))
        };
        let mask = &self.mask[sequence * s..][..s];
        for row in probs.chunks_mut(s) {
            row.iter_mut().zip(mask).for_each(|(x, m)| *x += m);
            softmax_in_place(row);
        }
        let dropped: Vec<f32>;
        let weights = match &self.dropout {
            Some(factors) => {
                dropped = probs.iter().zip(&factors[t * s * s..]).map(|(p, m)| p * m).collect();
                &dropped[..]
            }
            None => &probs[..],
        };
        let target = Target::shared(out, base, hidden);
        // Safety: the task's head columns of its sequence are written by no other task.
        unsafe {
            multiply(
                target,
                (s, self.shape.head(), s),
                Strided::rows(weights, 0, s),
                Strided::rows(v, base, hidden),
                Write::HERE,
            )
        };
    }

    /// One task's blocks of dq, dk, dv from the output's gradient `g`.
    fn backward_task(
        &self,
        t: usize,
        (q, k, v, g): (&[f32], &[f32], &[f32], &[f32]),
        probs: &[f32],
        grads: [Shared; 3],
    ) {
        let Dims { seq: s, hidden, .. } = self.shape;
        let d = self.shape.head();
        let (_, base) = self.shape.task(t);
        let factors = self.dropout.as_ref().map(|f| &f[t * s * s..][..s * s]);
        let dropped: Vec<f32> = match factors {
            Some(m) => probs.iter().zip(m).map(|(p, m)| p * m).collect(),
            None => probs.to_vec(),
        };
        let head_target = |grad: Shared| Target::shared(grad, base, hidden);
        let mut dz = vec![0f32; s * s];
        let dz_target = Target::rows(&mut dz, s);
        let g_rows = Strided::rows(g, base, hidden);
        // Safety: `dz` is seq × seq and local; each task writes only its own head columns.
        unsafe {
            multiply(
                head_target(grads[2]),
                (s, d, s),
                Strided::transposed(&dropped, 0, s),
                g_rows,
                Write::HERE,
            );
            multiply(dz_target, (s, s, d), g_rows, Strided::transposed(v, base, hidden), Write::HERE);
        }
        if let Some(m) = factors {
            dz.iter_mut().zip(m).for_each(|(x, m)| *x *= m);
        }
        for (dz_row, p_row) in dz.chunks_mut(s).zip(probs.chunks(s)) {
            let dot: f32 = dz_row.iter().zip(p_row).map(|(g, p)| g * p).sum();
            dz_row.iter_mut().zip(p_row).for_each(|(g, p)| *g = p * (*g - dot));
        }
        let scale = self.shape.scale();
        let (k_rows, q_rows) = (Strided::rows(k, base, hidden), Strided::rows(q, base, hidden));
        // dQ = s·dZ·K and dK = s·dZᵀ·Q.
        for (grad, dz_side, other) in
            [(grads[0], Strided::rows(&dz, 0, s), k_rows), (grads[1], Strided::transposed(&dz, 0, s), q_rows)]
        {
            // Safety: as above.
            unsafe { multiply(head_target(grad), (s, d, s), dz_side, other, Write::HERE.scaled(scale)) };
        }
    }
}

/// Softmax of one row in place (masked entries hold about f32::MIN and become 0).
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inverse = sum.recip();
    row.iter_mut().for_each(|x| *x *= inverse);
}

/// The contiguous f32 values of a CPU tensor.
fn values<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match storage {
        Storage::Cpu(cpu) => Ok(rows(cpu, layout)?.0),
        _ => bail!("attention runs on the CPU"),
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
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
        let inputs = (rows(s1, l1)?.0, rows(s2, l2)?.0, rows(s3, l3)?.0);
        let square = self.shape.square();
        let mut out = vec![0f32; l1.shape().elem_count()];
        let out_shared = Shared::new(&mut out);
        let mut kept = vec![0f32; if self.keep { self.shape.tasks() * square } else { 0 }];
        let kept_shared = Shared::new(&mut kept);
        candle_core::utils::barrier_pool().execute_chunked(self.shape.tasks(), |range| {
            let mut scratch = vec![0f32; if self.keep { 0 } else { square }];
            for t in range {
                // Safety: task t alone owns its square of `kept`.
                let probs = if self.keep {
                    unsafe { kept_shared.part(t * square, square) }
                } else {
                    &mut scratch[..]
                };
                self.forward_task(t, inputs, probs, out_shared);
            }
        });
        if self.keep {
            let _ = self.kept.set(kept);
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(probs) = self.kept.get() else {
            bail!("attention: no training forward pass to go back through")
        };
        let grad = grad.contiguous()?;
        let guards = [q, k, v, &grad].map(|t| t.storage_and_layout());
        let [q_data, k_data, v_data, g_data] = [0, 1, 2, 3].map(|i| values(&guards[i].0, guards[i].1));
        let inputs = (q_data?, k_data?, v_data?, g_data?);
        let n = q.elem_count();
        let mut buffers = [vec![0f32; n], vec![0f32; n], vec![0f32; n]];
        let [dq, dk, dv] = &mut buffers;
        let shared = [Shared::new(dq), Shared::new(dk), Shared::new(dv)];
        let square = self.shape.square();
        candle_core::utils::barrier_pool().execute_chunked(self.shape.tasks(), |range| {
            for t in range {
                self.backward_task(t, inputs, &probs[t * square..][..square], shared);
            }
        });
        drop(guards);
        let [dq, dk, dv] = buffers.map(|b| Tensor::from_vec(b, q.shape(), q.device()));
        Ok((Some(dq?), Some(dk?), Some(dv?)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var, D};

    use super::*;
    use crate::model::testing::{close, flat};

    /// The composed operations `roberta` used before (and still uses off the CPU).
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, s, h) = q.dims3()?;
        let split = |x: &Tensor| x.reshape((b, s, heads, h / heads))?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / ((h / heads) as f64).sqrt()))?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
    }

    fn ramp(n: usize, scale: f32, step: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * step % 29) as f32 - 14.0) * scale).collect()
    }

    #[test]
    fn matches_the_composed_attention_in_value_and_gradients_with_padding() {
        let device = Device::Cpu;
        let (b, s, h, heads) = (2, 5, 8, 2);
        let var = |step| Var::from_vec(ramp(b * s * h, 0.07, step), (b, s, h), &device).unwrap();
        let (q, k, v) = (var(3), var(5), var(7));
        // The second sequence has two padding tokens at its end.
        let mask: Vec<f32> = (0..b * s).map(|i| if i >= 2 * s - 2 { f32::MIN } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (b, 1, 1, s), &device).unwrap();
        let weights = Tensor::from_vec(ramp(b * s * h, 0.3, 11), (b, s, h), &device).unwrap();
        let run = |f: &dyn Fn() -> Result<Tensor>| {
            let out = f().unwrap();
            let grads = (&out * &weights).unwrap().sum_all().unwrap().backward().unwrap();
            let mut all = vec![flat(&out)];
            all.extend([&q, &k, &v].map(|x| flat(grads.get(x.as_tensor()).unwrap())));
            all
        };
        let ours = run(&|| attend(&q, &k, &v, &mask, heads, 0.0, true));
        let theirs = run(&|| composed(&q, &k, &v, &mask, heads));
        for (a, b) in ours.iter().zip(&theirs) {
            close(a, b);
        }
        let inference = attend(&q, &k, &v, &mask, heads, 0.5, false).unwrap();
        close(&flat(&inference), &theirs[0]);
    }

    #[test]
    fn dropout_scales_the_kept_probabilities_and_the_same_seed_repeats_it() {
        let device = Device::Cpu;
        let q = Tensor::from_vec(ramp(3 * 4 * 4, 0.1, 5), (3, 4, 4), &device).unwrap();
        let mask = Tensor::zeros((3, 1, 1, 4), candle_core::DType::F32, &device).unwrap();
        let run = || {
            super::super::random::seed(9);
            flat(&attend(&q, &q, &q, &mask, 1, 0.5, true).unwrap())
        };
        let (first, second) = (run(), run());
        assert_eq!(first, second);
        assert_ne!(first, flat(&attend(&q, &q, &q, &mask, 1, 0.0, true).unwrap()));
    }

    #[test]
    fn shapes_that_do_not_fit_are_an_error() {
        let device = Device::Cpu;
        let q = Tensor::zeros((2, 3, 6), candle_core::DType::F32, &device).unwrap();
        let mask = Tensor::zeros((2, 1, 1, 3), candle_core::DType::F32, &device).unwrap();
        assert!(attend(&q, &q, &q, &mask, 4, 0.0, false).is_err());
        let short = Tensor::zeros((2, 1, 1, 2), candle_core::DType::F32, &device).unwrap();
        assert!(attend(&q, &q, &q, &short, 2, 0.0, false).is_err());
    }
}
