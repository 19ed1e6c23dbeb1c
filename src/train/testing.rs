//! Training options that make toy tasks learnable in a few seconds, for unit tests.

use super::FitOptions;

pub fn toy_options(epochs: usize, seed: u64) -> FitOptions {
    FitOptions {
        epochs,
        batch_size: 8,
        learning_rate: 3e-3,
        warmup_ratio: 0.1,
        weight_decay: 0.0,
        patience: 100,
        seed,
        token_dropout: 0.0,
        mask_token: 4,
        lexical_rate: 1.0,
        lexical_epochs: 2,
        head_rate: 1.0,
        frozen: Default::default(),
        validation_floor: 0,
        parts: Default::default(),
        cancel: Default::default(),
    }
}
