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
//! (`p + 128` as u8) and each output's sum starts from `−128 · Σ_k q[n][k]`.

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
    /// −128 · Σ_k q[n][k]: where each output's sum starts, undoing the +128 offset of
    /// the inputs.
    offsets: Vec<i32>,
    bias: Vec<f32>,
}

/// Per-row symmetric quantization of a row-major matrix: the codes and each row's scale.
pub fn quantize_rows(values: &[f32], width: usize) -> (Vec<i8>, Vec<f32>) {
    let mut codes = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(values.len() / width.max(1));
    for row in values.chunks(width.max(1)) {
        let scale = row_scale(row);
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
        let mut offsets: Vec<i32> =
            codes.chunks(inputs.max(1)).map(|r| -128 * r.iter().map(|&q| q as i32).sum::<i32>()).collect();
        offsets.resize(blocks * LANES, 0);
        let bias = bias.unwrap_or_else(|| vec![0.0; outputs]);
        Ok(Int8Matrix { outputs, inputs, quads, packed, scales, offsets, bias })
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
    /// the input width; with `gelu`, GELU of that, applied while the result is still in
    /// registers.
    pub fn forward(self: &Arc<Self>, xs: &Tensor, gelu: bool) -> Result<Tensor> {
        xs.contiguous()?.apply_op1_no_bwd(&Int8Linear { matrix: self.clone(), gelu })
    }

    /// Quantizes rows of `x` and writes their product into `out` (rows × outputs).
    /// Inlined into [`Int8Matrix::rows_avx512`] and [`Int8Matrix::rows_portable`] so the
    /// element loops compile for each one's instructions.
    #[inline(always)]
    fn rows_into(&self, x: &[f32], out: &mut [f32], gelu: bool, tile: TileFn) {
        let inputs = quantize_inputs(x, self.inputs, self.quads);
        let mut acc = [0i32; TILE_ROWS * TILE_BLOCKS * LANES];
        let blocks = self.outputs.div_ceil(LANES);
        for tile_start in (0..inputs.rows).step_by(TILE_ROWS) {
            let tile_rows = TILE_ROWS.min(inputs.rows - tile_start);
            for first_block in (0..blocks).step_by(TILE_BLOCKS) {
                let nb = TILE_BLOCKS.min(blocks - first_block);
                let w = &self.packed[first_block * self.quads * LANES * 4..];
                let x = &inputs.codes[tile_start * inputs.stride..];
                let start = &self.offsets[first_block * LANES..];
                tile(Tile { x, stride: inputs.stride, w, quads: self.quads, nb, start }, &mut acc);
                let local = &mut out[tile_start * self.outputs..];
                self.finish_tile(
                    &acc,
                    &inputs.scales[tile_start..][..tile_rows],
                    first_block * LANES,
                    local,
                    gelu,
                );
            }
        }
    }

    /// Integer sums of one tile → f32 outputs: scale, add the bias, maybe GELU.
    #[inline(always)]
    fn finish_tile(&self, acc: &[i32], row_scales: &[f32], first: usize, out: &mut [f32], gelu: bool) {
        let last = (first + TILE_BLOCKS * LANES).min(self.outputs);
        let (scales, bias) = (&self.scales[first..last], &self.bias[first..last]);
        for (r, &s) in row_scales.iter().enumerate() {
            let dst = &mut out[r * self.outputs..][first..last];
            let acc = &acc[r * TILE_BLOCKS * LANES..][..last - first];
            for (((d, &a), &w), &b) in dst.iter_mut().zip(acc).zip(scales).zip(bias) {
                let y = a as f32 * (s * w) + b;
                *d = if gelu { super::gelu::gelu_one(y) } else { y };
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    unsafe fn rows_avx512(&self, x: &[f32], out: &mut [f32], gelu: bool) {
        self.rows_into(x, out, gelu, |t, acc| unsafe { vnni::tile(t, acc) })
    }

    fn rows_portable(&self, x: &[f32], out: &mut [f32], gelu: bool) {
        self.rows_into(x, out, gelu, portable_tile)
    }
}

/// One tile's operands: `TILE_ROWS` rows of input codes (`stride` bytes apart), `nb`
/// packed blocks of 16 outputs, and the values each output's sum starts from.
struct Tile<'a> {
    x: &'a [u8],
    stride: usize,
    w: &'a [i8],
    quads: usize,
    nb: usize,
    start: &'a [i32],
}

/// Computes a tile's sums into `acc` (`[row][block][lane]`).
type TileFn = fn(Tile, &mut [i32]);

/// Input rows quantized for the kernel: `p + 128` per element, rows padded to `stride`
/// bytes and to a whole number of tiles.
struct QuantizedRows {
    rows: usize,
    codes: Vec<u8>,
    scales: Vec<f32>,
    stride: usize,
}

#[inline(always)]
fn quantize_inputs(x: &[f32], width: usize, quads: usize) -> QuantizedRows {
    let rows = x.len() / width.max(1);
    let stride = quads * 4;
    let padded_rows = rows.div_ceil(TILE_ROWS) * TILE_ROWS;
    let mut codes = vec![128u8; padded_rows * stride];
    let mut scales = vec![0f32; padded_rows];
    for (r, row) in x.chunks(width.max(1)).enumerate() {
        let scale = row_scale(row);
        let inverse = 1.0 / scale;
        for (c, v) in codes[r * stride..][..width].iter_mut().zip(row) {
            // In [1.5, 255.5] (NaN clamped to 0), so truncating rounds `v · inverse` to
            // the nearest code; the unchecked conversion vectorises where `as` would not.
            // Not `clamp`: it passes NaN through, and NaN must not reach the conversion.
            #[allow(clippy::manual_clamp)]
            let t = (v * inverse + 128.5).max(0.0).min(255.0);
            // Safety: `t` is finite and within u8's range.
            *c = unsafe { t.to_int_unchecked::<u8>() };
        }
        scales[r] = scale;
    }
    QuantizedRows { rows, codes, scales, stride }
}

/// The scale that maps a row's largest |v| to code 127 (1 for an all-zero row).
#[inline(always)]
fn row_scale(row: &[f32]) -> f32 {
    let max = max_abs(row);
    if max > 0.0 {
        max / 127.0
    } else {
        1.0
    }
}

/// Largest |v| of a row, in 16 independent lanes so the loop vectorises (a single
/// running maximum is a dependency chain the compiler must keep in order).
#[inline(always)]
fn max_abs(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(0f32, |m, v| m.max(v.abs()));
    for chunk in chunks {
        for (m, v) in lanes.iter_mut().zip(chunk) {
            *m = m.max(v.abs());
        }
    }
    lanes.iter().fold(rest, |m, &v| m.max(v))
}

/// The same integer sums as `vnni::tile`, one product at a time.
fn portable_tile(t: Tile, acc: &mut [i32]) {
    for r in 0..TILE_ROWS {
        for b in 0..t.nb {
            for lane in 0..LANES {
                let mut sum = t.start[b * LANES + lane];
                for q in 0..t.quads {
                    for i in 0..4 {
                        let xv = t.x[r * t.stride + q * 4 + i] as i32;
                        sum += xv * t.w[((b * t.quads + q) * LANES + lane) * 4 + i] as i32;
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

    use super::{Tile, LANES, TILE_BLOCKS, TILE_ROWS};

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }

    /// A tile's sums (see [`super::Tile`]) into `acc` (`[row][block][lane]`).
    ///
    /// Safety: the CPU must have AVX-512F and VNNI.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn tile(t: Tile, acc: &mut [i32]) {
        assert!(t.x.len() >= (TILE_ROWS - 1) * t.stride + t.quads * 4 && t.w.len() >= t.nb * t.quads * 64);
        assert!(t.start.len() >= t.nb * LANES && acc.len() >= TILE_ROWS * TILE_BLOCKS * LANES);
        match t.nb {
            4 => blocks::<4>(&t, acc),
            3 => blocks::<3>(&t, acc),
            2 => blocks::<2>(&t, acc),
            _ => blocks::<1>(&t, acc),
        }
    }

    #[target_feature(enable = "avx512f,avx512vnni")]
    #[inline]
    unsafe fn blocks<const NB: usize>(t: &Tile, acc: &mut [i32]) {
        let (x, w) = (t.x.as_ptr(), t.w.as_ptr());
        let mut start = [_mm512_setzero_si512(); NB];
        for (b, v) in start.iter_mut().enumerate() {
            *v = _mm512_loadu_si512(t.start.as_ptr().add(b * LANES) as *const _);
        }
        let mut sums = [start; TILE_ROWS];
        let block_stride = t.quads * 64;
        for q in 0..t.quads {
            let mut weights = [_mm512_setzero_si512(); NB];
            for (b, v) in weights.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(w.add(b * block_stride + q * 64) as *const _);
            }
            for (r, row) in sums.iter_mut().enumerate() {
                let four = (x.add(r * t.stride + q * 4) as *const i32).read_unaligned();
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
    pub unsafe fn tile(_: super::Tile, _: &mut [i32]) {
        unreachable!()
    }
}

/// Whether this CPU runs the fast kernel (tests and benchmarks report it).
pub fn accelerated() -> bool {
    vnni::available()
}

struct Int8Linear {
    matrix: Arc<Int8Matrix>,
    gelu: bool,
}

impl CustomOp1 for Int8Linear {
    fn name(&self) -> &'static str {
        "int8-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else { bail!("int8 linear layers take f32 inputs") };
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("int8 linear: input not contiguous")
        };
        let matrix = &self.matrix;
        let dims = layout.dims();
        if dims.last() != Some(&matrix.inputs) {
            bail!("int8 linear: input {dims:?} does not end in {} features", matrix.inputs);
        }
        let out = matrix.apply(&data[start..end], self.gelu, false);
        let mut shape = dims.to_vec();
        *shape.last_mut().expect("checked above") = matrix.outputs;
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

impl Int8Matrix {
    /// The product for row-major inputs, tiles of rows spread over candle's threads;
    /// each thread quantizes its own rows.
    fn apply(&self, x: &[f32], gelu: bool, portable: bool) -> Vec<f32> {
        let rows = x.len() / self.inputs.max(1);
        let vnni = !portable && vnni::available();
        let mut out = vec![0f32; rows * self.outputs];
        let shared = super::fused::Shared::new(&mut out);
        candle_core::utils::barrier_pool().execute_chunked(rows.div_ceil(TILE_ROWS), |range| {
            let first = range.start * TILE_ROWS;
            let last = (range.end * TILE_ROWS).min(rows);
            if first >= last {
                return;
            }
            let x = &x[first * self.inputs..last * self.inputs];
            // Safety: tile ranges are disjoint, so their rows of `out` are too.
            let part = unsafe { shared.part(first * self.outputs, (last - first) * self.outputs) };
            #[cfg(target_arch = "x86_64")]
            if vnni {
                // Safety: `vnni` is true only where the CPU has the features.
                return unsafe { self.rows_avx512(x, part, gelu) };
            }
            self.rows_portable(x, part, gelu)
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
            let y = q.forward(&x, false).unwrap();
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
        let values: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
        for gelu in [false, true] {
            let (fast, portable) = (q.apply(&values, gelu, false), q.apply(&values, gelu, true));
            assert_eq!(fast, portable, "VNNI on this CPU: {}", accelerated());
        }
    }

    #[test]
    fn leading_dimensions_are_kept_and_zero_rows_stay_zero_plus_bias() {
        let (w, b) = matrix(20, 8);
        let q = Arc::new(Int8Matrix::quantize(&w, Some(&b)).unwrap());
        let x = Tensor::zeros((2, 3, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        let y = q.forward(&x, false).unwrap();
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
    fn the_fused_gelu_is_gelu_of_the_product() {
        let (w, b) = matrix(40, 24);
        let q = Arc::new(Int8Matrix::quantize(&w, Some(&b)).unwrap());
        let x = inputs(9, 24);
        let separate = q.forward(&x, false).unwrap().gelu_erf().unwrap();
        assert!(max_diff(&q.forward(&x, true).unwrap(), &separate) < 1e-5);
    }

    #[test]
    fn a_wrong_input_width_is_an_error() {
        let (w, _) = matrix(4, 8);
        let q = Arc::new(Int8Matrix::quantize(&w, None).unwrap());
        assert!(q.forward(&inputs(2, 7), false).is_err());
    }
}
