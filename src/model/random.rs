//! Seeded randomness for training. candle's CPU backend cannot be seeded, so weight
//! initialisation and dropout masks are drawn here, from a per-thread generator that
//! `seed` resets: the same seed gives the same model.

use std::cell::RefCell;

use candle_core::{Result, Tensor};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

// A fast non-cryptographic generator (xoshiro): dropout draws millions of numbers per
// training step.
thread_local! {
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::seed_from_u64(0));
}

pub fn seed(seed: u64) {
    RNG.with(|r| *r.borrow_mut() = SmallRng::seed_from_u64(seed));
}

/// Factors per block of a dropout mask. Each block has its own generator, seeded from
/// the thread's, so blocks are drawn in parallel and the same seed still gives the same
/// mask whatever the threads' timing.
const DROPOUT_BLOCK: usize = 1 << 14;

/// `n` factors of inverted dropout: 0 with probability `p`, else 1/(1−p).
pub fn dropout_mask(n: usize, p: f32) -> Vec<f32> {
    let keep = 1.0 - p;
    let base: u64 = RNG.with(|r| r.borrow_mut().gen());
    let mut factors = vec![0f32; n];
    super::fused::for_rows(&mut factors, DROPOUT_BLOCK, |block, out| {
        let mut rng = SmallRng::seed_from_u64(base ^ (block as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        out.iter_mut().for_each(|f| *f = if rng.gen::<f32>() < keep { 1.0 / keep } else { 0.0 });
    });
    factors
}

/// Normal(0, std) values, as Hugging Face initialises RoBERTa weights.
pub fn normal(shape: &[usize], std: f32, device: &candle_core::Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = RNG.with(|r| {
        let mut r = r.borrow_mut();
        (0..n)
            .map(|_| {
                // Box–Muller: two uniforms → one standard normal.
                let (u1, u2): (f32, f32) = (r.gen::<f32>().max(f32::MIN_POSITIVE), r.gen());
                std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
            })
            .collect()
    });
    Tensor::from_vec(values, shape, device)
}

pub fn shuffle<T>(items: &mut [T]) {
    use rand::seq::SliceRandom;
    RNG.with(|r| items.shuffle(&mut *r.borrow_mut()));
}

/// A uniform draw in [0, 1).
pub fn uniform() -> f32 {
    RNG.with(|r| r.borrow_mut().gen::<f32>())
}

/// A uniform integer in `low..high`.
pub fn below(low: u32, high: u32) -> u32 {
    RNG.with(|r| r.borrow_mut().gen_range(low..high))
}
