//! Tiny models for unit tests: the committed parity checkpoint as a base, and training
//! options that make toy tasks learnable in a few seconds.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::classifier::{initialise, Classifier, Head, Pooling};
use super::folder::ModelFolder;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn tiny_folder() -> ModelFolder {
    ModelFolder::open(&fixture("tiny-roberta")).unwrap()
}

/// A classifier of the tiny checkpoint's shape, freshly initialised from `seed`.
pub fn tiny_classifier(outputs: usize, seed: u64, dropout: f32) -> (Classifier, VarMap) {
    tiny_pooled_classifier(outputs, seed, dropout, Pooling::First)
}

pub fn tiny_pooled_classifier(
    outputs: usize,
    seed: u64,
    dropout: f32,
    pooling: Pooling,
) -> (Classifier, VarMap) {
    tiny_headed_classifier(Head { outputs, dropout, pooling, lexical_buckets: 0 }, seed)
}

pub fn tiny_headed_classifier(head: Head, seed: u64) -> (Classifier, VarMap) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let folder = tiny_folder();
    let model = Classifier::load(vb, &folder.config, head, Some(&folder.tokenizer)).unwrap();
    initialise(&varmap, seed).unwrap();
    (model, varmap)
}
/// All values of a tensor, flattened.
pub fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Asserts that two results agree within 1e-4, relative to values above 1.
pub fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f32::max);
    assert!(worst < 1e-4, "largest relative difference {worst}");
}
