//! GELU (the erf form RoBERTa uses) on the CPU, vectorised, with its backward pass.
//!
//! candle computes `erf` one element at a time through libm, on one thread, forward and
//! again backward: a tenth of the encoder's inference time went there.
//! Backward: d/dx x·Φ(x) = Φ(x) + x·φ(x), with φ(x) = e^(−x²/2) / √(2π). Here erf is Abramowitz & Stegun 7.1.26 (absolute error
//! ≤ 1.5e-7) over an `exp` built from range reduction and Cephes' polynomial, written
//! so the compiler turns whole rows into AVX2 instructions where the CPU has them.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// `x · Φ(x)` elementwise, differentiable.
pub fn gelu(xs: &Tensor) -> Result<Tensor> {
    xs.contiguous()?.apply_op1(Gelu)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-vectorised"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        super::fused::map_rows(storage, layout, gelu_row)
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// (x, g) → g · GELU'(x).
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "gelu-vectorised-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        super::fused::map_row_pairs((s1, l1), (s2, l2), gelu_grad_row)
    }
}

fn gelu_grad_row(x: &[f32], g: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // Safety: the features were just detected.
        return unsafe { gelu_grad_row_avx2(x, g, out) };
    }
    gelu_grad_row_plain(x, g, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_grad_row_avx2(x: &[f32], g: &[f32], out: &mut [f32]) {
    gelu_grad_row_plain(x, g, out)
}

#[inline(always)]
fn gelu_grad_row_plain(x: &[f32], g: &[f32], out: &mut [f32]) {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(g) {
        let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        *o = g * (cdf + v * INV_SQRT_2PI * exp(-0.5 * v * v));
    }
}

fn gelu_row(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // Safety: the features were just detected.
        return unsafe { gelu_row_avx2(x, out) };
    }
    gelu_row_plain(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_row_avx2(x: &[f32], out: &mut [f32]) {
    gelu_row_plain(x, out)
}

#[inline(always)]
fn gelu_row_plain(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = gelu_one(v);
    }
}

/// GELU of one value; inlined into loops that vectorise (here and in `int8`).
#[inline(always)]
pub(crate) fn gelu_one(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_6 + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let magnitude = 1.0 - poly * exp(-z * z);
    magnitude.copysign(x)
}

/// e^x for x ≤ 0 (what erf needs), relative error about 1e-7.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round x·log2(e) to the nearest integer by adding and removing 1.5 · 2^23.
    const MAGIC: f32 = 12_582_912.0;
    let n = (x * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r2 + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn matches_candles_erf_gelu() {
        let values: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 400.0).chain([-80.0, 80.0, 0.0]).collect();
        let xs = Tensor::from_vec(values.clone(), values.len(), &Device::Cpu).unwrap();
        let ours = gelu(&xs).unwrap().to_vec1::<f32>().unwrap();
        let theirs = xs.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for ((a, b), x) in ours.iter().zip(&theirs).zip(&values) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "gelu({x}) = {a}, candle {b}");
        }
    }

    #[test]
    fn the_gradient_matches_candles() {
        let values: Vec<f32> = (-300..=300).map(|i| i as f32 / 50.0).collect();
        let x = candle_core::Var::from_vec(values.clone(), values.len(), &Device::Cpu).unwrap();
        let upstream = Tensor::from_vec(
            values.iter().map(|v| 1.0 + v / 7.0).collect::<Vec<f32>>(),
            values.len(),
            &Device::Cpu,
        )
        .unwrap();
        let grad_of = |y: Tensor| {
            let grads = (y * &upstream).unwrap().sum_all().unwrap().backward().unwrap();
            grads.get(&x).unwrap().to_vec1::<f32>().unwrap()
        };
        let ours = grad_of(gelu(&x).unwrap());
        let theirs = grad_of(x.gelu_erf().unwrap());
        for ((a, b), v) in ours.iter().zip(&theirs).zip(&values) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "gelu'({v}) = {a}, candle {b}");
        }
    }

    #[test]
    fn exp_is_accurate_over_the_range_erf_uses() {
        // Down to the clamp at −87, below which erf's term no longer matters.
        for i in 0..=1740 {
            let x = -(i as f32) / 20.0;
            let (ours, exact) = (exp(x) as f64, (x as f64).exp());
            assert!((ours - exact).abs() <= 3e-7 * exact, "exp({x}) = {ours}, exact {exact}");
        }
    }
}
