//! `bench infer` and `bench train`: encoder throughput at a fixed batch shape, candle
//! against PyTorch on the same machine in the same invocation; for inference also with
//! 8-bit linear layers, and on a trained version's own weights.

use std::path::PathBuf;
use std::time::Instant;

use crate::model::classifier::{Classifier, Head};

/// Which encoder sizes `bench infer|train` measure.
pub fn model_configs() -> Vec<(&'static str, crate::model::encoder::Config)> {
    let small = crate::train::pipeline::small_config(8000);
    let base = crate::model::encoder::Config {
        hidden_size: 768,
        num_hidden_layers: 12,
        num_attention_heads: 12,
        intermediate_size: 3072,
        max_position_embeddings: 514,
        vocab_size: 32000,
        ..small.clone()
    };
    vec![("small", small), ("base", base)]
}

/// What `bench infer` and `bench train` measure.
pub struct ModelBench {
    pub batch: usize,
    pub seq: usize,
    /// Seconds to measure each configuration.
    pub seconds: f64,
    /// A Python with torch and transformers, for the reference figures.
    pub python: Option<String>,
    /// Only this configuration; all when absent.
    pub config: Option<String>,
    /// Also measure the encoder with 8-bit linear layers (inference only).
    pub int8: bool,
    /// A trained model folder (`…/<version>/keyword`) to measure instead of random
    /// weights; PyTorch then loads the same folder.
    pub version: Option<PathBuf>,
    /// A base folder (a pretrained encoder): the fine-tuning step on its weights, and
    /// PyTorch's on the same folder.
    pub base: Option<PathBuf>,
    /// With `base`: what of the encoder stays fixed, in both.
    pub frozen: crate::model::encoder::Frozen,
}

/// What one line of the benchmark measures: a model, and how PyTorch gets the same one.
struct Subject {
    name: String,
    model: Classifier,
    /// Variables to train (random-weight models only).
    varmap: Option<candle_nn::VarMap>,
    /// `config.json` fields for a random PyTorch model, or a folder it loads.
    reference: String,
    frozen: crate::model::encoder::Frozen,
}

/// Sequences per second of the encoder + keyword head, inference or training steps, on
/// random weights (or a version's) and tokens; and the same with PyTorch when `python`
/// is given.
pub fn models(mode: &str, spec: &ModelBench) -> anyhow::Result<()> {
    for subject in subjects(mode, spec)? {
        measure(mode, spec, subject)?;
    }
    Ok(())
}

fn subjects(mode: &str, spec: &ModelBench) -> anyhow::Result<Vec<Subject>> {
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};
    if let Some(dir) = &spec.version {
        anyhow::ensure!(mode == "infer", "--version measures inference only");
        let loaded = crate::analyze::LoadedModel::load(dir)?;
        let reference = std::fs::canonicalize(dir)?.display().to_string();
        return Ok(vec![Subject {
            name: "version".into(),
            model: loaded.classifier,
            varmap: None,
            reference,
            frozen: Default::default(),
        }]);
    }
    if let Some(dir) = &spec.base {
        return Ok(vec![base_subject(dir, spec.frozen)?]);
    }
    let configs = model_configs();
    if let Some(wanted) = &spec.config {
        anyhow::ensure!(configs.iter().any(|c| c.0 == wanted), "no configuration `{wanted}` (small, base)");
    }
    let wanted = configs.into_iter().filter(|c| spec.config.as_ref().is_none_or(|w| w == c.0));
    wanted
        .map(|(name, config)| {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &crate::model::device());
            // The encoder alone is what PyTorch is compared on: no lexical part.
            let head = Head { outputs: 15, dropout: 0.1, pooling: Default::default(), lexical_buckets: 0 };
            let model = Classifier::load(vb, &config, head, None)?;
            crate::model::classifier::initialise(&varmap, 1)?;
            let reference = torch_config(&config).to_string();
            Ok(Subject {
                name: name.into(),
                model,
                varmap: Some(varmap),
                reference,
                frozen: Default::default(),
            })
        })
        .collect()
}

/// A classifier on a base's pretrained weights, frozen as asked.
fn base_subject(dir: &std::path::Path, frozen: crate::model::encoder::Frozen) -> anyhow::Result<Subject> {
    use candle_core::DType;
    use candle_nn::{VarBuilder, VarMap};
    let folder = crate::model::folder::ModelFolder::open(dir)?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &crate::model::device());
    let head = Head { outputs: 15, dropout: 0.1, pooling: Default::default(), lexical_buckets: 0 };
    let mut model = Classifier::load(vb, &folder.config, head, Some(&folder.tokenizer))?;
    crate::model::classifier::initialise(&varmap, 1)?;
    crate::model::classifier::load_encoder_weights(
        &varmap,
        &folder.weights_path(),
        folder.config.family().prefix(),
    )?;
    model.encoder.freeze(frozen);
    let reference = std::fs::canonicalize(dir)?.display().to_string();
    Ok(Subject { name: "base".into(), model, varmap: Some(varmap), reference, frozen })
}

fn measure(mode: &str, spec: &ModelBench, mut subject: Subject) -> anyhow::Result<()> {
    use candle_core::{DType, Tensor};
    let ModelBench { batch, seq, seconds, .. } = *spec;
    let vocab = subject.model.encoder.config.vocab_size.max(6) as u32;
    let rows: Vec<Vec<u32>> =
        (0..batch).map(|b| (0..seq).map(|i| 5 + ((b * 31 + i * 7) as u32 % (vocab - 5))).collect()).collect();
    let device = subject.model.encoder.device().clone();
    let outputs = subject.model.outputs()?;
    let targets: Vec<f32> = (0..batch * outputs).map(|i| (i % 5 == 0) as u8 as f32).collect();
    let targets = Tensor::from_vec(targets, (batch, outputs), &device)?;
    let pos_weight = Tensor::ones(outputs, DType::F32, &device)?;
    let mut optimizer = match &subject.varmap {
        Some(vars) if mode == "train" => {
            let params = candle_nn::ParamsAdamW { lr: 1e-4, ..Default::default() };
            let prefix = subject.model.encoder.config.family().prefix();
            let data = vars.data().lock().expect("varmap lock");
            let trained =
                data.iter().filter(|(n, _)| !subject.frozen.holds(prefix, n)).map(|(_, v)| v.clone());
            Some(crate::train::optim::FusedAdamW::new(trained.collect(), params)?)
        }
        _ => None,
    };
    let mut step = |model: &Classifier| -> anyhow::Result<()> {
        match optimizer.as_mut() {
            None => {
                crate::model::outputs::probabilities(model, &rows, true, batch)?;
            }
            Some(optimizer) => {
                use candle_nn::Optimizer;
                let logits = model.logits(&rows, true)?;
                optimizer.backward_step(&crate::train::loss::weighted_bce(
                    &logits,
                    &targets,
                    &pos_weight,
                )?)?;
            }
        }
        Ok(())
    };
    let candle = throughput(|| step(&subject.model), batch, seconds)?;
    let name = &subject.name;
    let mut line = format!("{mode} {name:<7} batch {batch} × {seq} tokens: candle {candle:7.2} seq/s");
    let torch = match &spec.python {
        Some(python) => Some(torch_reference(python, &subject, mode, (batch, seq), seconds)?),
        None => None,
    };
    if let Some(torch) = torch {
        line.push_str(&format!("   PyTorch {torch:7.2} seq/s   ratio candle/PyTorch {:.2}", candle / torch));
    }
    if spec.int8 && mode == "infer" {
        subject.model.encoder.to_int8()?;
        let int8 = throughput(|| step(&subject.model), batch, seconds)?;
        let vnni = crate::model::int8::accelerated();
        line.push_str(&format!(
            "\n  int8 (VNNI: {vnni}) {int8:7.2} seq/s   ×{:.2} candle f32",
            int8 / candle
        ));
        if let (Some(torch), Some(python)) = (torch, &spec.python) {
            let torch_int8 = torch_reference(python, &subject, "infer-int8", (batch, seq), seconds)?;
            line.push_str(&format!(
                "   ratio int8/PyTorch f32 {:.2}   (PyTorch dynamic int8 {torch_int8:.2} seq/s, ratio {:.2})",
                int8 / torch,
                int8 / torch_int8
            ));
        }
    }
    println!("{line}");
    Ok(())
}

fn torch_config(config: &crate::model::encoder::Config) -> serde_json::Value {
    serde_json::json!({
        "vocab_size": config.vocab_size, "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers, "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size, "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": config.layer_norm_eps,
    })
}

/// Items per second of `step` (one batch of `batch` items) over `seconds`, after one
/// warm-up call.
fn throughput(
    mut step: impl FnMut() -> anyhow::Result<()>,
    batch: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    step()?;
    let (mut done, started) = (0usize, Instant::now());
    while started.elapsed().as_secs_f64() < seconds || done < 2 {
        step()?;
        done += 1;
    }
    Ok((done * batch) as f64 / started.elapsed().as_secs_f64())
}

fn torch_reference(
    python: &str,
    subject: &Subject,
    mode: &str,
    (batch, seq): (usize, usize),
    seconds: f64,
) -> anyhow::Result<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench_torch.py");
    let frozen = subject.frozen;
    let layers =
        if frozen.embeddings || frozen.layers > 0 { (frozen.layers as i64).to_string() } else { "-1".into() };
    let output = std::process::Command::new(python)
        .args([
            script,
            &subject.reference,
            mode,
            &batch.to_string(),
            &seq.to_string(),
            &seconds.to_string(),
            &layers,
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "PyTorch reference failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(output.stdout.trim_ascii())?;
    line["seq_per_s"].as_f64().ok_or_else(|| anyhow::anyhow!("PyTorch reference printed no figure"))
}
