//! `reviewloop pretrain`: domain-adaptive pre-training of a base — masked language
//! modelling continued on the team's own unlabelled reviews (from the database) or a
//! corpus file (`../shared/data/nsmc/reviews.tsv.gz`) — written as a new base.
//!
//! The corpus is streamed: lines are read a batch at a time, never all at once. A few
//! lines (chosen by a hash of their text, so the same ones every run) are held out and
//! never trained on; the masked-token loss on them, with the same masks every time, is
//! measured before and after. Every `checkpoint_every` steps the weights, the
//! optimiser's moments and the position in the corpus are written (each file to a
//! temporary name, then renamed), so a run killed at any point resumes from its last
//! checkpoint and, the randomness of each step being seeded by its number, takes
//! exactly the steps it would have taken. A time budget and a step limit end the run;
//! the learning rate warms up, then decays linearly to the step limit, or stays flat
//! under a time budget alone.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use candle_core::{DType, Tensor};
use candle_nn::{Optimizer, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use super::pretrain::{mask_batch, Maskable, MaskedLm};
use crate::bases::{self, Origin, PendingBase, ORIGIN_FILE};
use crate::cancel::Cancel;
use crate::model::classifier::initialise;
use crate::model::folder::ModelFolder;
use crate::model::inputs;
use crate::model::random;
use crate::names::SafeName;
use crate::train::optim::FusedAdamW;

/// What to pre-train, on what, for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdaptSettings {
    pub base: SafeName,
    /// The new base.
    pub name: SafeName,
    /// What the corpus is, for the card (a file name or `taxonomy T`).
    pub corpus: String,
    pub max_steps: Option<usize>,
    /// Stop after this many hours of training (all runs of a resumed job together).
    pub hours: Option<f64>,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub warmup_steps: usize,
    /// Longer texts are cut to this many tokens.
    pub max_tokens: usize,
    /// Lines held out to measure the loss on (about one in `held_out_every`, at most
    /// `held_out`).
    pub held_out: usize,
    pub held_out_every: u64,
    pub checkpoint_every: usize,
    pub seed: u64,
    #[serde(skip)]
    pub cancel: Cancel,
}

impl AdaptSettings {
    /// The defaults `reviewloop pretrain` documents.
    pub fn new(base: SafeName, name: SafeName, corpus: String) -> Self {
        AdaptSettings {
            base,
            name,
            corpus,
            max_steps: None,
            hours: None,
            batch_size: 32,
            learning_rate: 5e-5,
            warmup_steps: 100,
            max_tokens: 128,
            held_out: 1000,
            held_out_every: 200,
            checkpoint_every: 200,
            seed: 42,
            cancel: Cancel::default(),
        }
    }
}

/// Review texts in a fixed order, read a batch at a time, and read again from the
/// start when they run out.
pub trait CorpusStream {
    /// The texts after the first `position`, at most `n`; empty at the end.
    fn read(
        &mut self,
        position: u64,
        n: usize,
    ) -> impl std::future::Future<Output = anyhow::Result<Vec<String>>>;
}

/// A corpus file (see `text::corpus`), reopened when asked to go back.
pub struct FileCorpus {
    path: PathBuf,
    lines: crate::text::corpus::Corpus,
    next: u64,
}

impl FileCorpus {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Ok(FileCorpus { path: path.to_path_buf(), lines: crate::text::corpus::open(path)?, next: 0 })
    }
}

impl CorpusStream for FileCorpus {
    async fn read(&mut self, position: u64, n: usize) -> anyhow::Result<Vec<String>> {
        if position < self.next {
            *self = FileCorpus::open(&self.path)?;
        }
        while self.next < position {
            if self.lines.next().transpose()?.is_none() {
                return Ok(Vec::new());
            }
            self.next += 1;
        }
        let mut texts = Vec::with_capacity(n);
        while texts.len() < n {
            let Some((_, text)) = self.lines.next().transpose()? else { break };
            texts.push(text);
            self.next += 1;
        }
        Ok(texts)
    }
}

/// A taxonomy's reviews in the database, by id, read a page at a time.
pub struct StoreCorpus {
    pool: sqlx::PgPool,
    taxonomy_id: i64,
    /// (position, id of the review just before it) of the next page.
    cursor: (u64, i64),
}

impl StoreCorpus {
    pub fn new(pool: sqlx::PgPool, taxonomy_id: i64) -> Self {
        StoreCorpus { pool, taxonomy_id, cursor: (0, 0) }
    }
}

impl CorpusStream for StoreCorpus {
    async fn read(&mut self, position: u64, n: usize) -> anyhow::Result<Vec<String>> {
        if position != self.cursor.0 {
            // Elsewhere than where the last page ended (a resumed run): find the id.
            let before: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM reviews WHERE taxonomy_id = $1 ORDER BY id OFFSET $2 LIMIT 1",
            )
            .bind(self.taxonomy_id)
            .bind(position as i64 - 1)
            .fetch_optional(&self.pool)
            .await?;
            self.cursor = (position, if position == 0 { 0 } else { before.unwrap_or(i64::MAX) });
        }
        let page: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, text FROM reviews WHERE taxonomy_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(self.taxonomy_id)
        .bind(self.cursor.1)
        .bind(n as i64)
        .fetch_all(&self.pool)
        .await?;
        if let Some((last, _)) = page.last() {
            self.cursor = (position + page.len() as u64, *last);
        }
        Ok(page.into_iter().map(|(_, text)| text).filter(|t| !t.trim().is_empty()).collect())
    }
}

/// Where a run stands, saved as `state.json` beside the checkpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub step: usize,
    /// Where the current window of batches begins: (pass over the corpus, texts read
    /// before it in that pass, held-out ones included).
    pub window: (u64, u64),
    /// Batches of that window already trained on.
    pub window_done: usize,
    /// Texts read for training in all passes.
    pub read: u64,
    pub seconds: f64,
    pub held_out_loss_before: Option<f64>,
    /// (step, mean training loss since the last record)
    pub losses: Vec<(usize, f64)>,
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptReport {
    pub dir: PathBuf,
    pub steps: usize,
    pub hours: f64,
    pub texts_seen: u64,
    pub held_out: usize,
    pub held_out_loss_before: f64,
    pub held_out_loss_after: f64,
    pub resumed_from: Option<usize>,
}

/// What a progress display needs after each step.
pub struct AdaptProgress {
    pub step: usize,
    /// The step limit, or the steps the time budget allows at the speed so far.
    pub expected_steps: Option<usize>,
    pub loss: f64,
    pub seconds: f64,
}

fn held_out(text: &str, every: u64) -> bool {
    let hash =
        text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    hash % every.max(1) == 0
}

/// The run's checkpoint folder (beside the bases, hidden from `base list`).
pub fn checkpoint_dir(data_dir: &Path, name: &SafeName) -> PathBuf {
    bases::root(data_dir).join(format!(".pretrain-{name}"))
}

/// Pre-trains, resuming from the checkpoint of an earlier run of the same settings.
pub async fn run(
    data_dir: &Path,
    settings: &AdaptSettings,
    corpus: &mut impl CorpusStream,
    progress: &mut (dyn FnMut(&AdaptProgress) + Send),
) -> anyhow::Result<AdaptReport> {
    anyhow::ensure!(
        settings.max_steps.is_some() || settings.hours.is_some(),
        "give --max-steps, --hours or both: pre-training has no natural end"
    );
    let source = bases::resolve(data_dir, &settings.base)?;
    let folder = ModelFolder::open(&source)?;
    let tokenizer =
        inputs::truncating(&folder.tokenizer, settings.max_tokens.min(folder.config.max_tokens()));
    let maskable = Maskable::of(&folder.tokenizer);
    let checkpoints = checkpoint_dir(data_dir, &settings.name);
    let mut model = Model::new(&folder, &source)?;
    let held = held_out_rows(corpus, settings, &tokenizer).await?;
    let mut state = match model.resume(&checkpoints, settings)? {
        Some(state) => state,
        None => {
            std::fs::create_dir_all(&checkpoints)?;
            std::fs::write(checkpoints.join("settings.json"), serde_json::to_string_pretty(settings)?)?;
            State {
                held_out_loss_before: Some(model.held_out_loss(&held, &maskable, settings.seed)?),
                ..State::default()
            }
        }
    };
    let resumed_from = (state.step > 0).then_some(state.step);
    let started = Instant::now();
    let seconds_before = state.seconds;
    let mut since_record = (0.0, 0usize);
    // A resumed run reads its window again from where it began.
    let mut window: Option<Window> = None;
    loop {
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        if settings.max_steps.is_some_and(|m| state.step >= m)
            || settings.hours.is_some_and(|h| seconds >= h * 3600.0)
        {
            break;
        }
        settings.cancel.check()?;
        if let Some(done) = window.as_ref().filter(|w| state.window_done >= w.batches.len()) {
            state.window = done.end;
            state.window_done = 0;
            window = None;
        }
        let current = match window.as_mut() {
            Some(current) => current,
            None => {
                let read = read_window(corpus, state.window, settings, &tokenizer).await?;
                if state.window_done == 0 {
                    state.read += read.texts;
                }
                window.insert(read)
            }
        };
        let rows = std::mem::take(&mut current.batches[state.window_done]);
        state.window_done += 1;
        random::seed(settings.seed ^ (state.step as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let masked = mask_batch(&rows, &maskable);
        state.step += 1;
        if masked.targets.is_empty() {
            continue;
        }
        model.optimizer.set_learning_rate(schedule(settings, state.step - 1));
        let loss = model.mlm.loss(&masked, true)?;
        model.optimizer.backward_step(&loss)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        since_record = (since_record.0 + value, since_record.1 + 1);
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        progress(&AdaptProgress {
            step: state.step,
            expected_steps: expected_steps(settings, &state),
            loss: value,
            seconds: state.seconds,
        });
        if state.step % settings.checkpoint_every.max(1) == 0 {
            state.losses.push((state.step, since_record.0 / since_record.1.max(1) as f64));
            since_record = (0.0, 0);
            model.save_checkpoint(&checkpoints, &state)?;
        }
    }
    let after = model.held_out_loss(&held, &maskable, settings.seed)?;
    let before = state.held_out_loss_before.unwrap_or(after);
    let dir = model.write_base(data_dir, settings, &folder, &state, (before, after))?;
    std::fs::remove_dir_all(&checkpoints).ok();
    Ok(AdaptReport {
        dir,
        steps: state.step,
        hours: state.seconds / 3600.0,
        texts_seen: state.read,
        held_out: held.len(),
        held_out_loss_before: before,
        held_out_loss_after: after,
        resumed_from,
    })
}

/// Linear warm-up, then linear decay to the step limit (flat without one).
fn schedule(settings: &AdaptSettings, step: usize) -> f64 {
    let warmup = settings.warmup_steps.max(1);
    match settings.max_steps {
        _ if step < warmup => settings.learning_rate * (step + 1) as f64 / warmup as f64,
        Some(total) => super::learning_rate(settings.learning_rate, step, total, warmup),
        None => settings.learning_rate,
    }
}

fn expected_steps(settings: &AdaptSettings, state: &State) -> Option<usize> {
    let by_time = settings.hours.map(|h| (state.step as f64 / state.seconds.max(1e-9) * h * 3600.0) as usize);
    match (settings.max_steps, by_time) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The held-out lines, tokenized: a pass over the corpus that keeps about one line in
/// `held_out_every`, at most `held_out`.
async fn held_out_rows(
    corpus: &mut impl CorpusStream,
    settings: &AdaptSettings,
    tokenizer: &Tokenizer,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut rows = Vec::new();
    let mut position = 0;
    while rows.len() < settings.held_out {
        let texts = corpus.read(position, 10_000).await?;
        if texts.is_empty() {
            break;
        }
        position += texts.len() as u64;
        let kept = texts.into_iter().filter(|t| held_out(t, settings.held_out_every));
        rows.extend(kept.map(|t| inputs::encode_review(tokenizer, &t)));
    }
    rows.truncate(settings.held_out);
    Ok(rows)
}

/// Batches of one window of the corpus: about `WINDOW` batches of texts from where the
/// window begins (held-out lines skipped, a new pass begun at the end of the corpus),
/// sorted by length so that a batch pads to little more than its own texts, then cut
/// and put in an order drawn from where the window ends (fixed by where it begins). Reading the same window again
/// gives the same batches: a resumed run goes on where it stopped.
async fn read_window(
    corpus: &mut impl CorpusStream,
    (mut pass, mut position): (u64, u64),
    settings: &AdaptSettings,
    tokenizer: &Tokenizer,
) -> anyhow::Result<Window> {
    let wanted = settings.batch_size * WINDOW;
    let (mut rows, mut texts, mut empty) = (Vec::with_capacity(wanted), 0, false);
    while rows.len() < wanted {
        let read = corpus.read(position, (wanted - rows.len()).min(10_000)).await?;
        if read.is_empty() {
            anyhow::ensure!(!(empty && rows.is_empty()), "the corpus has no texts to train on");
            if !rows.is_empty() && rows.len() >= settings.batch_size {
                // End of a pass: this window ends here, the next begins a new pass.
                (pass, position) = (pass + 1, 0);
                break;
            }
            (pass, position, empty) = (pass + 1, 0, true);
            continue;
        }
        position += read.len() as u64;
        texts += read.len() as u64;
        let kept = read.into_iter().filter(|t| !held_out(t, settings.held_out_every));
        rows.extend(kept.map(|t| inputs::encode_review(tokenizer, &t)));
    }
    rows.sort_by_key(Vec::len);
    let mut batches: Vec<Vec<Vec<u32>>> = rows.chunks(settings.batch_size).map(<[_]>::to_vec).collect();
    random::seed(settings.seed ^ pass.wrapping_mul(0x9E37_79B9) ^ position);
    random::shuffle(&mut batches);
    Ok(Window { batches, end: (pass, position), texts })
}

/// Batches per window of length-sorted texts.
const WINDOW: usize = 64;

/// A window's batches and where the next window begins.
struct Window {
    batches: Vec<Vec<Vec<u32>>>,
    end: (u64, u64),
    /// Texts read for it.
    texts: u64,
}

/// The model being pre-trained, its variables (sorted by name, so the optimiser's
/// moments line up with a checkpoint's) and its optimiser.
struct Model {
    mlm: MaskedLm,
    varmap: VarMap,
    names: Vec<String>,
    optimizer: FusedAdamW,
}

impl Model {
    /// The base's encoder, and its language-model head when it has one (else a fresh
    /// head, seeded).
    fn new(folder: &ModelFolder, dir: &Path) -> anyhow::Result<Self> {
        let varmap = VarMap::new();
        let device = crate::model::device();
        let mlm = MaskedLm::load(VarBuilder::from_varmap(&varmap, DType::F32, &device), &folder.config)?;
        initialise(&varmap, 7)?;
        super::pretrain::load_checkpoint(
            &varmap,
            &dir.join("model.safetensors"),
            folder.config.family().prefix(),
        )?;
        let mlm = mlm.with_tokenizer(&folder.tokenizer);
        let (names, vars) = sorted_vars(&varmap);
        let params = candle_nn::ParamsAdamW { lr: 0.0, weight_decay: 0.01, ..Default::default() };
        Ok(Model { mlm, varmap, names, optimizer: FusedAdamW::new(vars, params)? })
    }

    /// Mean masked-token loss on the held-out rows, with the same masks every time.
    fn held_out_loss(&self, rows: &[Vec<u32>], maskable: &Maskable, seed: u64) -> anyhow::Result<f64> {
        random::seed(seed ^ 0x5EED);
        let (mut sum, mut count) = (0.0, 0usize);
        for chunk in rows.chunks(32) {
            let masked = mask_batch(chunk, maskable);
            if masked.targets.is_empty() {
                continue;
            }
            let loss = self.mlm.loss(&masked, false)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            sum += loss * masked.targets.len() as f64;
            count += masked.targets.len();
        }
        Ok(sum / count.max(1) as f64)
    }

    fn save_checkpoint(&self, dir: &Path, state: &State) -> anyhow::Result<()> {
        let temp = |name: &str| dir.join(format!(".{name}.tmp"));
        self.varmap.save(temp("weights.safetensors"))?;
        if let Some((step, moments)) = self.optimizer.moments() {
            let mut tensors = std::collections::HashMap::new();
            let device = candle_core::Device::Cpu;
            for (name, (first, second)) in self.names.iter().zip(moments) {
                let n = first.len();
                tensors.insert(format!("m.{name}"), Tensor::from_vec(first, n, &device)?);
                tensors.insert(format!("v.{name}"), Tensor::from_vec(second, n, &device)?);
            }
            tensors.insert("step".into(), Tensor::new(&[step as i64], &device)?);
            candle_core::safetensors::save(&tensors, temp("optimizer.safetensors"))?;
        }
        std::fs::write(temp("state.json"), serde_json::to_string_pretty(state)?)?;
        // The state goes last: a checkpoint is whole once state.json names its step.
        for name in ["weights.safetensors", "optimizer.safetensors", "state.json"] {
            if temp(name).exists() {
                std::fs::rename(temp(name), dir.join(name))?;
            }
        }
        Ok(())
    }

    /// Loads the checkpoint of an earlier run with the same settings, if there is one.
    fn resume(&mut self, dir: &Path, settings: &AdaptSettings) -> anyhow::Result<Option<State>> {
        let Ok(text) = std::fs::read_to_string(dir.join("state.json")) else { return Ok(None) };
        let earlier: AdaptSettings =
            serde_json::from_str(&std::fs::read_to_string(dir.join("settings.json"))?)?;
        let same = |a: &AdaptSettings| (a.base.clone(), a.corpus.clone(), a.batch_size, a.seed, a.max_tokens);
        anyhow::ensure!(
            same(&earlier) == same(settings),
            "{} holds a run with other settings (base, corpus, batch, seed or length): remove it or pick another --name",
            dir.display()
        );
        let state: State = serde_json::from_str(&text)?;
        self.varmap.load(dir.join("weights.safetensors"))?;
        let optimizer = dir.join("optimizer.safetensors");
        if optimizer.exists() {
            let tensors = candle_core::safetensors::load(&optimizer, &candle_core::Device::Cpu)?;
            let get = |key: String| -> anyhow::Result<Vec<f32>> {
                Ok(tensors.get(&key).with_context(|| format!("checkpoint lacks {key}"))?.to_vec1()?)
            };
            let moments = self
                .names
                .iter()
                .map(|n| Ok((get(format!("m.{n}"))?, get(format!("v.{n}"))?)))
                .collect::<anyhow::Result<_>>()?;
            let step = tensors.get("step").context("checkpoint lacks its step")?.to_vec1::<i64>()?[0];
            self.optimizer.restore(step as i32, moments)?;
        }
        Ok(Some(state))
    }

    /// The new base: the base's files with the trained weights (encoder and head, as
    /// `…ForMaskedLM` names them), `base.json` with this run as its last step.
    fn write_base(
        &self,
        data_dir: &Path,
        settings: &AdaptSettings,
        folder: &ModelFolder,
        state: &State,
        (before, after): (f64, f64),
    ) -> anyhow::Result<PathBuf> {
        let pending = PendingBase::start(data_dir, &settings.name)?;
        self.varmap.save(pending.dir().join("model.safetensors"))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.dir.join("config.json"))?)?;
        let architecture = match folder.config.family() {
            crate::model::encoder::Family::Bert => "BertForMaskedLM",
            crate::model::encoder::Family::Electra => "ElectraForMaskedLM",
            _ => "RobertaForMaskedLM",
        };
        config["architectures"] = serde_json::json!([architecture]);
        std::fs::write(pending.dir().join("config.json"), serde_json::to_string_pretty(&config)?)?;
        folder
            .tokenizer
            .save(pending.dir().join("tokenizer.json"), false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut origin: Origin = std::fs::read_to_string(folder.dir.join(ORIGIN_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        origin.steps.push(format!(
            "masked-language pre-training of base `{}` on {}: {} steps of {} texts ({:.2} h), \
             held-out masked-token loss {before:.3} → {after:.3}",
            settings.base,
            settings.corpus,
            state.step,
            settings.batch_size,
            state.seconds / 3600.0
        ));
        let card = format!(
            "# {}\n\n{}\n\nSteps:\n{}",
            settings.name,
            origin.source,
            origin.steps.iter().map(|s| format!("- {s}\n")).collect::<String>()
        );
        pending.commit(&origin, &card)
    }
}

fn sorted_vars(varmap: &VarMap) -> (Vec<String>, Vec<candle_core::Var>) {
    let data = varmap.data().lock().expect("varmap lock");
    let mut pairs: Vec<(String, candle_core::Var)> =
        data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.into_iter().unzip()
}

#[cfg(test)]
mod tests;
