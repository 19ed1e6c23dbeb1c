//! Linear layers with 8-bit integer weights, for inference on the CPU.
//!
//! Weights are quantized per output row (symmetric: `w ≈ scale_n · q`, q in −127…127);
//! each input row is quantized the same way when it arrives (`x ≈ s_m · p`). Then
//! `y[m][n] = s_m · scale_n · Σ_k p[m][k] · q[n][k] + bias[n]`, where the sum is exact
//! integer arithmetic. On CPUs with AVX-512 VNNI one `vpdpbusd` multiplies and adds 64
//! byte pairs, four times the products of an f32 FMA of the same width; elsewhere a
//! plain loop computes the same integers (slowly, but identically: tests compare them).
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so inputs are stored offset by 128
//! (`p + 128` as u8) and `128 · Σ_k q[n][k]` is subtracted afterwards.

use std::sync::Arc;

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Output columns one vector register holds (16 × i32).
const LANES: usize = 16;
/// Input rows one tile computes.
const TILE_ROWS: usize = 6;
/// Column blocks (of `LANES`) one tile computes: 6 × 4 accumulators fit the 32 registers.
const TILE_BLOCKS: usize = 4;

/// A weight matrix (outputs × inputs) in 8 bits, packed for the kernel.
#[derive(Debug)]
pub struct Int8Matrix {
    outputs: usize,
    inputs: usize,
    /// Inputs rounded up to a multiple of 4 (one `vpdpbusd` lane takes 4 bytes).
    quads: usize,
    /// `[block of 16 outputs][quad of inputs][16 outputs][4 inputs]`, zero-padded.
    packed: Vec<i8>,
    scales: Vec<f32>,
    /// Σ_k q[n][k], for undoing the +128 offset of the inputs.
    sums: Vec<i32>,
    bias: Option<Vec<f32>>,
}

/// Per-row symmetric quantization of a row-major matrix: the codes and each row's scale.
pub fn quantize_rows(values: &[f32], width: usize) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / width.max(1));
    for row in values.chunks(width.max(1)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        codes.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
        scales.push(scale);
    }
    (codes, scales)
}

impl Int8Matrix {
    /// From codes (outputs × inputs, row-major) and one scale per output.
    pub fn new(codes: &[i8], scales: Vec<f32>, inputs: usize, bias: Option<Vec<f32>>) -> Result<Self> {
        let outputs = scales.len();
        if codes.len() != outputs * inputs || bias.as_ref().is_some_and(|b| b.len() != outputs) {
            bail!("int8 weights: {} codes, {} scales and {inputs} inputs do not fit", codes.len(), outputs);
        }
        let quads = inputs.div_ceil(4);
        let blocks = outputs.div_ceil(LANES);
        let mut packed = vec![0i8; blocks * quads * LANES * 4];
        for (n, row) in codes.chunks(inputs.max(1)).enumerate() {
            let (block, lane) = (n / LANES, n % LANES);
            for (k, &q) in row.iter().enumerate() {
                packed[((block * quads + k / 4) * LANES + lane) * 4 + k % 4] = q;
            }
        }
        let sums = codes.chunks(inputs.max(1)).map(|r| r.iter().map(|&q| q as i32).sum()).collect();
        Ok(Int8Matrix { outputs, inputs, quads, packed, scales, sums, bias })
    }

    /// Quantizes an f32 weight (outputs × inputs).
    pub fn quantize(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let (_, inputs) = weight.dims2()?;
        let (codes, scales) = quantize_rows(&weight.flatten_all()?.to_vec1::<f32>()?, inputs);
        Self::new(&codes, scales, inputs, bias.map(|b| b.to_vec1::<f32>()).transpose()?)
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The weight as f32 again (outputs × inputs), for devices without the kernel.
    pub fn dequantized(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.outputs * self.inputs];
        for (n, row) in out.chunks_mut(self.inputs.max(1)).enumerate() {
            for (k, w) in row.iter_mut().enumerate() {
                *w = self.code(n, k) as f32 * self.scales[n];
            }
        }
        out
    }

    fn code(&self, n: usize, k: usize) -> i8 {
        self.packed[(((n / LANES) * self.quads + k / 4) * LANES + n % LANES) * 4 + k % 4]
    }

    /// `x · Wᵀ + bias` for a contiguous f32 tensor of any rank whose last dimension is
    /// the input width.
    pub fn forward(self: &Arc<Self>, xs: &Tensor) -> Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(&Int8Linear(self.clone()))
    }

    /// The product of quantized rows into `out` (rows × outputs).
    fn rows_into(&self, inputs: &QuantizedRows, out: &mut [f32], vnni: bool) {
        let rows = inputs.rows;
        let mut acc = [0i32; TILE_ROWS * TILE_BLOCKS * LANES];
        let blocks = self.outputs.div_ceil(LANES);
        for tile_start in (0..rows).step_by(TILE_ROWS) {
            let tile_rows = TILE_ROWS.min(rows - tile_start);
            for first_block in (0..blocks).step_by(TILE_BLOCKS) {
                let nb = TILE_BLOCKS.min(blocks - first_block);
                let w = &self.packed[first_block * self.quads * LANES * 4..];
                let x = &inputs.codes[tile_start * inputs.stride..];
                if vnni {
                    // Safety: `vnni` is true only where the CPU has the features.
                    unsafe { vnni::tile(x, inputs.stride, w, self.quads, nb, &mut acc) }
                } else {
                    portable_tile(x, inputs.stride, w, self.quads, nb, &mut acc)
                }
                let local = &mut out[tile_start * self.outputs..];
                self.finish_tile(&acc, &inputs.scales[tile_start..][..tile_rows], first_block * LANES, local);
            }
        }
    }

    /// Integer sums of one tile → f32 outputs: undo the offset, scale, add the bias.
    fn finish_tile(&self, acc: &[i32], row_scales: &[f32], first: usize, out: &mut [f32]) {
        let last = (first + TILE_BLOCKS * LANES).min(self.outputs);
        for (r, &s) in row_scales.iter().enumerate() {
            let dst = &mut out[r * self.outputs..][first..last];
            let acc = &acc[r * TILE_BLOCKS * LANES..];
            for (j, d) in dst.iter_mut().enumerate() {
                let n = first + j;
                let exact = acc[j] - 128 * self.sums[n];
                *d = exact as f32 * s * self.scales[n] + self.bias.as_ref().map_or(0.0, |b| b[n]);
            }
        }
    }
}

/// Input rows quantized for the kernel: `p + 128` per element, rows padded to `stride`
/// bytes and to a whole number of tiles.
struct QuantizedRows {
    rows: usize,
    codes: Vec<u8>,
    scales: Vec<f32>,
    stride: usize,
}

fn quantize_inputs(x: &[f32], width: usize, quads: usize) -> QuantizedRows {
    let rows = x.len() / width.max(1);
    let stride = quads * 4;
    let padded_rows = rows.div_ceil(TILE_ROWS) * TILE_ROWS;
    let mut codes = vec![128u8; padded_rows * stride];
    let mut scales = vec![0f32; padded_rows];
    for (r, row) in x.chunks(width.max(1)).enumerate() {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let inverse = 1.0 / scale;
        for (c, v) in codes[r * stride..][..width].iter_mut().zip(row) {
            // In [1, 255] before rounding, so truncating `t + 0.5` rounds to nearest.
            *c = (v * inverse + 128.5) as u8;
        }
        scales[r] = scale;
    }
    QuantizedRows { rows, codes, scales, stride }
}

/// The same integer sums as `vnni::tile`, one product at a time.
fn portable_tile(x: &[u8], stride: usize, w: &[i8], quads: usize, nb: usize, acc: &mut [i32]) {
    for r in 0..TILE_ROWS {
        for b in 0..nb {
            for lane in 0..LANES {
                let mut sum = 0i32;
                for q in 0..quads {
                    for t in 0..4 {
                        let xv = x[r * stride + q * 4 + t] as i32;
                        sum += xv * w[((b * quads + q) * LANES + lane) * 4 + t] as i32;
                    }
                }
                acc[(r * TILE_BLOCKS + b) * LANES + lane] = sum;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{LANES, TILE_BLOCKS, TILE_ROWS};

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }

    /// Sums of `TILE_ROWS` input rows against `nb` blocks of 16 outputs into `acc`
    /// (`[row][block][lane]`).
    ///
    /// Safety: the CPU must have AVX-512F and VNNI; `x` must hold `TILE_ROWS` rows of
    /// `stride` ≥ 4 · `quads` bytes, `w` `nb` blocks of `quads` × 64 bytes.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn tile(x: &[u8], stride: usize, w: &[i8], quads: usize, nb: usize, acc: &mut [i32]) {
        assert!(x.len() >= (TILE_ROWS - 1) * stride + quads * 4 && w.len() >= nb * quads * 64);
        match nb {
            4 => blocks::<4>(x.as_ptr(), stride, w.as_ptr(), quads, acc),
            3 => blocks::<3>(x.as_ptr(), stride, w.as_ptr(), quads, acc),
            2 => blocks::<2>(x.as_ptr(), stride, w.as_ptr(), quads, acc),
            _ => blocks::<1>(x.as_ptr(), stride, w.as_ptr(), quads, acc),
        }
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn blocks<const NB: usize>(
        x: *const u8,
        stride: usize,
        w: *const i8,
        quads: usize,
        acc: &mut [i32],
    ) {
        let mut sums = [[_mm512_setzero_si512(); NB]; TILE_ROWS];
        let block_stride = quads * 64;
        for q in 0..quads {
            let mut weights = [_mm512_setzero_si512(); NB];
            for (b, v) in weights.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(w.add(b * block_stride + q * 64) as *const _);
            }
            for (r, row) in sums.iter_mut().enumerate() {
                let four = (x.add(r * stride + q * 4) as *const i32).read_unaligned();
                let inputs = _mm512_set1_epi32(four);
                for (s, v) in row.iter_mut().zip(&weights) {
                    *s = _mm512_dpbusd_epi32(*s, inputs, *v);
                }
            }
        }
        for (r, row) in sums.iter().enumerate() {
            for (b, s) in row.iter().enumerate() {
                _mm512_storeu_si512(acc.as_mut_ptr().add((r * TILE_BLOCKS + b) * LANES) as *mut _, *s);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod vnni {
    pub fn available() -> bool {
        false
    }
    pub unsafe fn tile(_: &[u8], _: usize, _: &[i8], _: usize, _: usize, _: &mut [i32]) {
        unreachable!()
    }
}

/// Whether this CPU runs the fast kernel (tests and benchmarks report it).
pub fn accelerated() -> bool {
    vnni::available()
}

struct Int8Linear(Arc<Int8Matrix>);

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { bail!("int8 linear layers take f32 inputs") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("int8 linear: input not contiguous")
        };
        let matrix = &self.0;
        let dims = layout.dims();
        if dims.last() != Some(&matrix.inputs) {
            bail!("int8 linear: input {dims:?} does not end in {} features", matrix.inputs);
        }
        let out = matrix.apply(&data[start..end], false);
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = matrix.outputs;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

impl Int8Matrix {
    /// The product for row-major inputs, tiles of rows spread over candle's threads;
    /// each thread quantizes its own rows.
    fn apply(&self, x: &[f32], portable: bool) -> Vec<f32> {
        let rows = x.len() / self.inputs.max(1);
        let vnni = !portable && vnni::available();
        let mut out = vec![0f32; rows * self.outputs];
        let shared = super::fused::Shared::new(&mut out);
        candle_core::utils::barrier_pool().execute_chunked(rows.div_ceil(TILE_ROWS), |range| {
            let first = range.start * TILE_ROWS;
            let last = (range.end * TILE_ROWS).min(rows);
            if first < last {
                let inputs =
                    quantize_inputs(&x[first * self.inputs..last * self.inputs], self.inputs, self.quads);
                // Safety: tile ranges are disjoint, so their rows of `out` are too.
                let part = unsafe { shared.part(first * self.outputs, (last - first) * self.outputs) };
                self.rows_into(&inputs, part, vnni);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    fn matrix(outputs: usize, inputs: usize) -> (Tensor, Tensor) {
        let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 37 % 101) as f32 - 50.0) / 400.0).collect();
        let b: Vec<f32> = (0..outputs).map(|i| i as f32 / 10.0).collect();
        (
            Tensor::from_vec(w, (outputs, inputs), &Device::Cpu).unwrap(),
            Tensor::from_vec(b, outputs, &Device::Cpu).unwrap(),
        )
    }

    fn inputs(rows: usize, width: usize) -> Tensor {
        let x: Vec<f32> = (0..rows * width).map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0).collect();
        Tensor::from_vec(x, (rows, width), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    #[test]
    fn the_product_is_close_to_f32_for_odd_shapes() {
        // 37 outputs: a partial block; 30 inputs: a partial quad; 13 rows: a partial tile.
        for (outputs, inputs_, rows) in [(37, 30, 13), (64, 256, 6), (200, 64, 1), (16, 4, 7)] {
            let (w, b) = matrix(outputs, inputs_);
            let x = inputs(rows, inputs_);
            let exact = x.matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
            let q = Arc::new(Int8Matrix::quantize(&w, Some(&b)).unwrap());
            let y = q.forward(&x).unwrap();
            assert_eq!(y.dims(), &[rows, outputs]);
            let scale = exact.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(
                max_diff(&y, &exact) < 0.02 * scale,
                "{outputs}×{inputs_}×{rows}: {}",
                max_diff(&y, &exact)
            );
        }
    }

    #[test]
    fn the_fast_and_portable_kernels_give_identical_numbers() {
        let (w, b) = matrix(100, 72);
        let x = inputs(20, 72);
        let q = Arc::new(Int8Matrix::quantize(&w, Some(&b)).unwrap());
        let fast = q.apply(&x.flatten_all().unwrap().to_vec1().unwrap(), false);
        let portable = q.apply(&x.flatten_all().unwrap().to_vec1().unwrap(), true);
        assert_eq!(fast, portable, "VNNI on this CPU: {}", accelerated());
    }

    #[test]
    fn leading_dimensions_are_kept_and_zero_rows_stay_zero_plus_bias() {
        let (w, b) = matrix(20, 8);
        let q = Arc::new(Int8Matrix::quantize(&w, Some(&b)).unwrap());
        let x = Tensor::zeros((2, 3, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = q.forward(&x).unwrap();
        assert_eq!(y.dims(), &[2, 3, 20]);
        assert_eq!(
            y.flatten_to(1).unwrap().get(1).unwrap().to_vec1::<f32>().unwrap(),
            b.to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn dequantized_weights_are_within_half_a_step() {
        let (w, _) = matrix(9, 11);
        let q = Int8Matrix::quantize(&w, None).unwrap();
        let back = Tensor::from_vec(q.dequantized(), (9, 11), &Device::Cpu).unwrap();
        let step = w.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() / 127.0;
        assert!(max_diff(&back, &w) <= step / 2.0 + 1e-6);
    }

    #[test]
    fn a_wrong_input_width_is_an_error() {
        let (w, _) = matrix(4, 8);
        let q = Arc::new(Int8Matrix::quantize(&w, None).unwrap());
        assert!(q.forward(&inputs(2, 7)).is_err());
    }
}
