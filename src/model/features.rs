//! What a frozen lower encoder makes of each input, computed once and kept: the fast
//! mode of simulations and audits. A 12-layer base fine-tuned for every simulated round
//! does not fit two cores (about half an hour a training on NIKL); with its embeddings
//! and lower `L` layers frozen, their output for a token row never changes, so it is
//! computed the first time the row is seen — in training, scoring or evaluation — and
//! each later pass runs only the layers above `L` and the heads.
//!
//! A cache is keyed by a fingerprint of the frozen weights themselves (SHA-256 over
//! their names and bytes), not by a base's name: a saved version whose frozen part is
//! its base's, loaded again, finds the rows its training computed, and weights that
//! differ in one number never share one. Caches shared between models live in a
//! process-wide registry that only simulations and audits switch on
//! ([`share_across_models`]); a training on its own gets a private cache, dropped with
//! it. Memory is bounded: past the limit rows are computed and not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::{DType, Result, Tensor};
use sha2::{Digest, Sha256};

use super::encoder::Frozen;

/// The frozen part's fingerprint.
pub type Fingerprint = [u8; 32];

/// Bytes of hidden states all caches together keep unless told otherwise: NIKL's
/// 3,000 labelled reviews and their (review, keyword) pairs under a 12 × 384 base take
/// well under 1 GiB.
pub const DEFAULT_LIMIT: usize = 4 << 30;

/// Hidden states after the first `layers` layers, per token row.
pub struct FeatureCache {
    layers: usize,
    rows: Mutex<HashMap<Vec<u32>, Tensor>>,
    budget: Arc<Budget>,
}

/// Bytes left to all caches that share it.
struct Budget {
    left: AtomicUsize,
}

impl Budget {
    fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget { left: AtomicUsize::new(limit) })
    }

    /// Takes `bytes` if that many are left.
    fn take(&self, bytes: usize) -> bool {
        self.left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(bytes)).is_ok()
    }
}

impl FeatureCache {
    /// A cache of its own (a single training), at most `limit` bytes.
    pub fn private(layers: usize, limit: usize) -> Arc<FeatureCache> {
        Arc::new(FeatureCache { layers, rows: Mutex::default(), budget: Budget::new(limit) })
    }

    /// Layers whose output this cache holds; the encoder runs the rest.
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.rows.lock().expect("feature cache lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (batch, `len`, hidden) states after the frozen layers for `rows` (each at most
    /// `len` tokens), computing the rows not held yet in one call of `compute`, which
    /// returns (missing, longest missing row, hidden). Positions past a row's end are
    /// zero: the layers above mask them out of attention, and pooling skips them.
    pub fn hidden(
        &self,
        rows: &[&[u32]],
        len: usize,
        compute: impl FnOnce(&[&[u32]]) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let mut found: Vec<Option<Tensor>> = {
            let held = self.rows.lock().expect("feature cache lock");
            rows.iter().map(|r| held.get(*r).cloned()).collect()
        };
        let missing: Vec<usize> = (0..rows.len()).filter(|&i| found[i].is_none()).collect();
        if !missing.is_empty() {
            let wanted: Vec<&[u32]> = missing.iter().map(|&i| rows[i]).collect();
            let computed = compute(&wanted)?;
            let mut held = self.rows.lock().expect("feature cache lock");
            for (j, &i) in missing.iter().enumerate() {
                let row = computed.get(j)?.narrow(0, 0, rows[i].len())?.contiguous()?;
                if self.budget.take(row.elem_count() * row.dtype().size_in_bytes()) {
                    held.insert(rows[i].to_vec(), row.clone());
                }
                found[i] = Some(row);
            }
        }
        let padded = found
            .into_iter()
            .map(|row| {
                let row = row.expect("every row found or computed");
                let (n, hidden) = row.dims2()?;
                match n < len {
                    true => {
                        Tensor::cat(&[&row, &Tensor::zeros((len - n, hidden), row.dtype(), row.device())?], 0)
                    }
                    false => Ok(row),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::stack(&padded, 0)
    }
}

/// The registry of caches shared between models, once switched on.
struct Registry {
    budget: Arc<Budget>,
    caches: HashMap<(Fingerprint, usize), Arc<FeatureCache>>,
}

fn registry() -> &'static Mutex<Option<Registry>> {
    static REGISTRY: OnceLock<Mutex<Option<Registry>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(None))
}

/// From now on, models of this process whose frozen weights agree share one cache, up
/// to `limit` bytes in all: a simulation's rounds, seeds and strategies, and its test
/// set, each computed once. The serving app never switches it on.
pub fn share_across_models(limit: usize) {
    let mut registry = registry().lock().expect("feature registry lock");
    if registry.is_none() {
        *registry = Some(Registry { budget: Budget::new(limit), caches: HashMap::new() });
    }
}

/// The shared cache for these frozen weights, when sharing is on.
pub fn shared(fingerprint: Fingerprint, layers: usize) -> Option<Arc<FeatureCache>> {
    let mut registry = registry().lock().expect("feature registry lock");
    let registry = registry.as_mut()?;
    let budget = registry.budget.clone();
    let cache = registry
        .caches
        .entry((fingerprint, layers))
        .or_insert_with(|| Arc::new(FeatureCache { layers, rows: Mutex::default(), budget }));
    Some(cache.clone())
}

/// Bytes a training's private cache keeps: a few thousand reviews and their pairs fit
/// many times over.
pub const PRIVATE_LIMIT: usize = 1 << 30;

/// The cache a training's encoder reads its frozen states from: the shared one for
/// these weights when sharing is on, else a cache of its own.
pub fn for_training(varmap: &candle_nn::VarMap, frozen: Frozen, prefix: &str) -> Result<Arc<FeatureCache>> {
    let shared = shared_for(varmap, frozen, prefix)?;
    Ok(shared.unwrap_or_else(|| FeatureCache::private(frozen.layers, PRIVATE_LIMIT)))
}

/// The shared cache for the frozen part of these variables, when sharing is on.
pub fn shared_for(
    varmap: &candle_nn::VarMap,
    frozen: Frozen,
    prefix: &str,
) -> Result<Option<Arc<FeatureCache>>> {
    if !sharing() {
        return Ok(None);
    }
    let key = {
        let data = varmap.data().lock().expect("varmap lock");
        fingerprint(data.iter().map(|(n, v)| (n.as_str(), v.as_tensor().clone())), frozen, prefix)?
    };
    Ok(shared(key, frozen.layers))
}

/// The shared cache of a saved model whose first `layers` layers were frozen in
/// training, when sharing is on (the serving app keeps no states: None).
pub fn for_saved(
    weights: &std::path::Path,
    layers: usize,
    prefix: &str,
) -> Result<Option<Arc<FeatureCache>>> {
    if layers == 0 || !sharing() {
        return Ok(None);
    }
    // Safety: version folders are immutable once renamed into place.
    let file = unsafe { candle_core::safetensors::MmapedSafetensors::new(weights)? };
    let frozen = Frozen { embeddings: true, layers };
    let tensors = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| frozen.holds(prefix, name))
        .map(|(name, _)| Ok((name.clone(), file.load(&name, &candle_core::Device::Cpu)?)))
        .collect::<Result<Vec<_>>>()?;
    let key = fingerprint(tensors.iter().map(|(n, t)| (n.as_str(), t.clone())), frozen, prefix)?;
    Ok(shared(key, layers))
}

fn sharing() -> bool {
    registry().lock().expect("feature registry lock").is_some()
}

/// SHA-256 over the names and f32 bytes of the variables `frozen` holds (of an encoder
/// under `prefix`), in name order: the same for a training's variables and for the
/// version file they were saved to.
pub fn fingerprint<'a>(
    tensors: impl Iterator<Item = (&'a str, Tensor)>,
    frozen: Frozen,
    prefix: &str,
) -> Result<Fingerprint> {
    let mut held: Vec<(&str, Tensor)> = tensors.filter(|(name, _)| frozen.holds(prefix, name)).collect();
    held.sort_by(|a, b| a.0.cmp(b.0));
    let mut hash = Sha256::new();
    for (name, tensor) in held {
        hash.update(name.as_bytes());
        let values = tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        hash.update(&bytes);
    }
    Ok(hash.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn states(rows: &[&[u32]]) -> Result<Tensor> {
        // Each token's state is its id, repeated over two hidden units.
        let len = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let values: Vec<f32> = rows
            .iter()
            .flat_map(|r| (0..len).flat_map(move |i| [r.get(i).map_or(-1.0, |&t| t as f32); 2]))
            .collect();
        Tensor::from_vec(values, (rows.len(), len, 2), &Device::Cpu)
    }

    #[test]
    fn rows_are_computed_once_and_padded_with_zeros() {
        let cache = FeatureCache::private(3, DEFAULT_LIMIT);
        let mut computed = Vec::new();
        let mut run = |rows: &[&[u32]]| {
            let out = cache.hidden(rows, 3, |missing| {
                computed.push(missing.len());
                states(missing)
            });
            out.unwrap().to_vec3::<f32>().unwrap()
        };
        let first = run(&[&[5, 6], &[7, 8, 9]]);
        assert_eq!(first[0], [[5.0, 5.0], [6.0, 6.0], [0.0, 0.0]]);
        assert_eq!(first[1][2], [9.0, 9.0]);
        let again = run(&[&[7, 8, 9], &[1]]);
        assert_eq!(again[0], first[1]);
        assert_eq!(again[1], [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]);
        assert_eq!(computed, [2, 1], "the second call computed only the row it had not seen");
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn past_its_limit_a_cache_computes_without_keeping() {
        let cache = FeatureCache::private(1, 2 * 2 * 4);
        cache.hidden(&[&[1, 2]], 2, states).unwrap();
        cache.hidden(&[&[3, 4]], 2, states).unwrap();
        assert_eq!(cache.len(), 1, "the second row did not fit the 16 bytes");
        let out = cache.hidden(&[&[3, 4]], 2, states).unwrap();
        assert_eq!(out.to_vec3::<f32>().unwrap()[0], [[3.0, 3.0], [4.0, 4.0]]);
    }

    #[test]
    fn the_fingerprint_covers_only_the_frozen_weights() {
        let t = |v: f32| Tensor::new(&[v, 1.0], &Device::Cpu).unwrap();
        let frozen = Frozen { embeddings: true, layers: 1 };
        let print = |lower: f32, upper: f32| {
            let named = [
                ("bert.embeddings.word_embeddings.weight", t(0.5)),
                ("bert.encoder.layer.0.output.dense.weight", t(lower)),
                ("bert.encoder.layer.1.output.dense.weight", t(upper)),
                ("classifier.weight", t(upper)),
            ];
            fingerprint(named.into_iter(), frozen, "bert").unwrap()
        };
        assert_eq!(print(1.0, 2.0), print(1.0, 3.0), "layer 1 and the head are trained, not frozen");
        assert_ne!(print(1.0, 2.0), print(1.5, 2.0));
    }

    #[test]
    fn an_encoder_reading_cached_states_gives_what_it_computes_itself() {
        use crate::model::testing::{close, flat, tiny_classifier};
        let rows = vec![vec![0, 31, 42, 57, 2], vec![0, 12, 2], vec![0, 99, 98, 97, 96, 95, 2]];
        for layers in [1, 2] {
            let (mut model, vars) = tiny_classifier(3, 5, 0.0);
            let plain = flat(&model.encoder.forward(&rows, false).unwrap());
            let frozen = Frozen { embeddings: true, layers };
            model.encoder.freeze(frozen);
            let cache = for_training(&vars, frozen, "roberta").unwrap();
            model.encoder.cache_features(cache.clone());
            let first = model.encoder.forward(&rows, false).unwrap();
            let (_, len, _) = first.dims3().unwrap();
            // Padding is zero in the cached form: compare the real tokens only.
            let real = |t: &[f32]| -> Vec<f32> {
                let hidden = t.len() / (rows.len() * len);
                (0..rows.len())
                    .flat_map(|r| (0..rows[r].len()).flat_map(move |i| (0..hidden).map(move |h| (r, i, h))))
                    .map(|(r, i, h)| t[(r * len + i) * hidden + h])
                    .collect()
            };
            close(&real(&flat(&first)), &real(&plain));
            assert_eq!(cache.len(), 3);
            // A smaller batch, read from the cache: the same states up to rounding in
            // the layers above.
            let again = model.encoder.forward(&rows[1..], false).unwrap();
            let row = |t: &Tensor, i: usize| flat(&t.get(i).unwrap().narrow(0, 0, 3).unwrap());
            close(&row(&again, 0), &row(&first, 1));
            assert_eq!(cache.len(), 3, "nothing new was computed");
        }
    }

    #[test]
    fn a_saved_model_finds_the_cache_its_training_filled() {
        use crate::model::testing::tiny_classifier;
        share_across_models(DEFAULT_LIMIT);
        let (_, vars) = tiny_classifier(3, 11, 0.0);
        let frozen = Frozen { embeddings: true, layers: 2 };
        let trained = for_training(&vars, frozen, "roberta").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        vars.save(&path).unwrap();
        let saved = for_saved(&path, 2, "roberta").unwrap().expect("sharing is on");
        assert!(Arc::ptr_eq(&trained, &saved));
        assert!(for_saved(&path, 0, "roberta").unwrap().is_none(), "a model trained whole keeps nothing");
        let (_, other) = tiny_classifier(3, 12, 0.0);
        assert!(!Arc::ptr_eq(&trained, &for_training(&other, frozen, "roberta").unwrap()));
    }
}
