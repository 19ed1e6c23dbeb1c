//! Lighter versions of a trained one: quantized copies (`reviewloop quantize`) and
//! smaller students taught by it (`reviewloop distill`). Each is an ordinary version —
//! its own folder, rows in `model_versions`, promotable — evaluated on the source's
//! label snapshot (the same validation and test reviews), with the source's scores and
//! the difference written next to its own so the accuracy cost is in `metrics.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sqlx::PgPool;
use tokenizers::Tokenizer;

use super::data::{self, LabelledText};
use super::pipeline::{
    keyword_report, record, sentiment_report, sized_config, train_model, tune_thresholds, Base, ModelOutcome,
    Recorded,
};
use super::settings::{EncoderSize, TrainSettings};
use super::{Dataset, FitOptions, Progress, Targets};
use crate::analyze::LoadedModel;
use crate::model::inputs;
use crate::model::inputs::SentimentInput;
use crate::model::outputs::probabilities;
use crate::model::quantize::{self, Precision};
use crate::model::version::{Labels, ModelFiles, PendingVersion};
use crate::split::Split;
use crate::store::models::ModelVersion;
use crate::store::{self, taxonomies};
use crate::taxonomy::Taxonomy;

const BATCH: usize = 64;

/// The version a lighter one derives from, with the labels it was trained on.
struct Source {
    taxonomy: Taxonomy,
    name: String,
    /// Its folder on this host (fetched from storage when stored).
    dir: PathBuf,
    keyword: ModelVersion,
    sentiment: ModelVersion,
    snapshot_id: i64,
    items: Vec<LabelledText>,
}

impl Source {
    async fn load(pool: &PgPool, place: &Place<'_>, taxonomy: &str, name: &str) -> anyhow::Result<Source> {
        let taxonomy = taxonomies::load_by_name(pool, taxonomy).await?;
        let find = |kind: &'static str| store::models::by_name(pool, taxonomy.id, kind, name);
        let (keyword, sentiment) = (find("keyword").await?, find("sentiment").await?);
        let (Some(keyword), Some(sentiment)) = (keyword, sentiment) else {
            anyhow::bail!("no version `{name}` of `{}` (see `reviewloop model list`)", taxonomy.name)
        };
        let snapshot_id = store::models::snapshot_of(pool, keyword.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("version `{name}` records no label snapshot"))?;
        let cutoff = store::models::snapshot_cutoff(pool, taxonomy.id, snapshot_id).await?;
        let items = data::labelled(pool, &taxonomy, Some(cutoff)).await?;
        let storage = crate::storage::Storage::open(pool, place.storage.unwrap_or(&Default::default()))?;
        let dir = storage.version_dir(place.models_dir, &keyword).await?;
        Ok(Source { taxonomy, name: name.to_string(), dir, keyword, sentiment, snapshot_id, items })
    }

    fn split(&self, split: Split) -> Vec<&LabelledText> {
        self.items.iter().filter(|i| i.split == split).collect()
    }

    fn model(&self, kind: &str) -> &ModelVersion {
        if kind == "keyword" {
            &self.keyword
        } else {
            &self.sentiment
        }
    }

    fn levels(&self) -> Vec<String> {
        self.taxonomy.levels().map(|l| l.to_string()).collect()
    }
}

/// Where a lighter version is written (this host's data dir) and stored for every host
/// (none: this host only).
#[derive(Clone, Copy)]
pub struct Place<'a> {
    pub models_dir: &'a Path,
    pub storage: Option<&'a crate::config::StorageLocation>,
}

/// What `quantize` and `distill` made.
pub struct Lighter {
    pub name: String,
    pub dir: PathBuf,
    /// metrics.json of the keyword and the sentiment model.
    pub metrics: [Value; 2],
    pub version_ids: (i64, i64),
    pub stored: Option<crate::storage::Stored>,
}

/// A copy of version `source` with lighter weights (see `model::quantize`).
pub async fn quantize(
    pool: &PgPool,
    place: Place<'_>,
    taxonomy: &str,
    source: &str,
    precision: Precision,
    name: Option<String>,
) -> anyhow::Result<Lighter> {
    let source = Source::load(pool, &place, taxonomy, source).await?;
    let name = name.unwrap_or_else(|| format!("{}-{}", source.name, precision.name()));
    let version = PendingVersion::start(place.models_dir, &source.taxonomy.name, &name)?;
    let mut metrics = Vec::new();
    for kind in ["keyword", "sentiment"] {
        let dir = version.model_dir(kind)?;
        quantize::write_copy(&source.dir.join(kind), &dir, precision)?;
        let model = LoadedModel::load(&dir)?;
        let outcome = evaluated(&model, &source)?;
        let how = format!("{} copy of version {}", precision.name(), source.name);
        let m = with_cost(serde_json::to_value(&outcome)?, &source, kind);
        version.write_report(kind, &m, &card(kind, &name, &how, &outcome))?;
        metrics.push(m);
    }
    let params = json!({"derived_from": source.name, "method": "quantize", "precision": precision.name()});
    let base = format!("{} ({})", source.keyword.base_encoder, precision.name());
    let finished = Finished { name: &name, base: &base, action: "model.quantize", storage: place.storage };
    finish(pool, &source, version, finished, params, metrics).await
}

/// How `distill` trains the student.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DistillSettings {
    pub taxonomy: String,
    pub teacher: String,
    pub name: Option<String>,
    pub size: EncoderSize,
    pub fit: FitOptions,
    /// Weight of the human label against the teacher's output for labelled reviews
    /// (0: the teacher only; 1: the labels only).
    pub label_weight: f32,
    /// At most this many unlabelled reviews taught by the teacher alone.
    pub unlabelled: usize,
    pub models_dir: PathBuf,
    /// Where the student is stored for every host (none: this host only).
    #[serde(skip)]
    pub storage: Option<crate::config::StorageLocation>,
    /// The student starts from this base (its encoder and tokenizer) instead of a fresh
    /// encoder of `size` reading the teacher's tokens.
    #[serde(default)]
    pub base: Option<crate::names::SafeName>,
}

/// A smaller model trained to reproduce version `teacher`: on its training reviews
/// (labels mixed with the teacher's outputs) and on unlabelled reviews (the teacher's
/// outputs alone). Validation and test reviews are never taught, so the student's
/// scores on them are comparable with the teacher's.
pub async fn distill(
    pool: &PgPool,
    settings: &DistillSettings,
    progress: &mut (dyn FnMut(&str, &Progress) + Send),
) -> anyhow::Result<Lighter> {
    let place = Place { models_dir: &settings.models_dir, storage: settings.storage.as_ref() };
    let source = Source::load(pool, &place, &settings.taxonomy, &settings.teacher).await?;
    let teacher = crate::analyze::Analyzer::load(&source.dir)?;
    let tokenizer_file = source.dir.join("keyword/tokenizer.json");
    let tokenizer = Tokenizer::from_file(&tokenizer_file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (layers, hidden) = (settings.size.layers, settings.size.hidden);
    let student = match &settings.base {
        Some(base) => format!("base {base}"),
        None => format!("{layers}×{hidden}"),
    };
    let name = settings.name.clone().unwrap_or_else(|| match &settings.base {
        Some(base) => format!("{}-student-{base}", source.name),
        None => format!("{}-student-{layers}x{hidden}", source.name),
    });
    let label = format!("distilled from {} into {student}", source.name);
    let mut train_settings =
        TrainSettings::starting_from(&settings.taxonomy, settings.models_dir.clone(), settings.base.clone());
    let base = match &settings.base {
        None => {
            let config = sized_config(teacher.keyword.classifier.encoder.config.vocab_size, settings.size);
            Base::fresh(config, tokenizer, label.clone())
        }
        Some(_) => super::pipeline::base(pool, &train_settings, &source.taxonomy, progress).await?,
    };
    train_settings.fit = settings.fit.clone();
    train_settings.pooling = teacher.keyword.labels.pooling;
    train_settings.lexical_buckets = Some(teacher.keyword.labels.lexical_buckets);
    let class = Class {
        source: &source,
        teacher: &teacher,
        base,
        settings: train_settings,
        taught: source.split(Split::Train),
        unlabelled: unlabelled_texts(pool, &source, settings.unlabelled).await?,
        label_weight: settings.label_weight,
    };
    let version = PendingVersion::start(&settings.models_dir, &source.taxonomy.name, &name)?;
    let students = [class.keyword_student(progress)?, class.sentiment_student(progress)?];
    let how = format!("student of version {} ({} unlabelled reviews)", source.name, class.unlabelled.len());
    let mut metrics = Vec::new();
    for (kind, student) in ["keyword", "sentiment"].into_iter().zip(&students) {
        let m = with_cost(serde_json::to_value(&student.outcome)?, &source, kind);
        version.write(&ModelFiles {
            subdir: kind,
            varmap: &student.vars,
            config: &class.base.config,
            tokenizer: &class.base.tokenizer,
            labels: &student.labels,
            metrics: &m,
            card: card(kind, &name, &how, &student.outcome),
        })?;
        metrics.push(m);
    }
    settings.fit.cancel.check()?;
    let params = json!({"derived_from": source.name, "method": "distill", "settings": settings});
    let finished = Finished { name: &name, base: &label, action: "model.distill", storage: place.storage };
    finish(pool, &source, version, finished, params, metrics).await
}

/// What the keyword and the sentiment student share: the teacher, the fresh encoder
/// they start from, and the reviews they are taught on.
struct Class<'a> {
    source: &'a Source,
    teacher: &'a crate::analyze::Analyzer,
    base: Base,
    settings: TrainSettings,
    /// Labelled training reviews (the teacher's training split).
    taught: Vec<&'a LabelledText>,
    unlabelled: Vec<String>,
    label_weight: f32,
}

/// A trained student model, ready to write.
struct Student {
    vars: candle_nn::VarMap,
    outcome: ModelOutcome,
    labels: Labels,
}

impl Class<'_> {
    /// What the student reads: its base's tokens (the teacher's, without a base), cut
    /// to its positions.
    fn student_tokenizer(&self) -> Tokenizer {
        inputs::truncating(&self.base.tokenizer, self.base.config.max_tokens())
    }

    fn keyword_student(&self, progress: &mut (dyn FnMut(&str, &Progress) + Send)) -> anyhow::Result<Student> {
        let teacher = &self.teacher.keyword;
        let k = self.source.taxonomy.keywords.len();
        let student = self.student_tokenizer();
        let held_out = |split| data::keyword_dataset(&self.source.split(split), &student, k);
        let lessons = keyword_lessons(teacher, &student, &self.taught, &self.unlabelled, self.label_weight)?;
        let sets = [lessons, held_out(Split::Validation), held_out(Split::Test)];
        let (model, vars, fit) = train_model(&self.base, &self.settings, k, &sets, "keyword", progress)?;
        let thresholds = tune_thresholds(&model, &sets[1], k, BATCH)?;
        let report = |d: &Dataset| keyword_report(&model, d, &thresholds, &teacher.labels.keywords, BATCH);
        let outcome = ModelOutcome { validation: report(&sets[1])?, test: report(&sets[2])?, fit };
        let labels = Labels { thresholds, ..teacher.labels.clone() };
        Ok(Student { vars, outcome, labels })
    }

    fn sentiment_student(
        &self,
        progress: &mut (dyn FnMut(&str, &Progress) + Send),
    ) -> anyhow::Result<Student> {
        let (source, teacher) = (self.source, &self.teacher.sentiment);
        let input = teacher.labels.sentiment_input.unwrap_or(SentimentInput::Pair);
        let student = self.student_tokenizer();
        let held_out =
            |split| data::sentiment_dataset(&source.split(split), &student, &source.taxonomy, input);
        let lessons = sentiment_lessons(
            self.teacher,
            &student,
            &source.taxonomy,
            &self.taught,
            &self.unlabelled,
            self.label_weight,
        )?;
        let sets = [lessons, held_out(Split::Validation), held_out(Split::Test)];
        let n = (source.taxonomy.scale_max - source.taxonomy.scale_min + 1) as usize;
        let (model, vars, fit) = train_model(&self.base, &self.settings, n, &sets, "sentiment", progress)?;
        let levels = source.levels();
        let report = |d: &Dataset| sentiment_report(&model, d, &levels, BATCH);
        let outcome = ModelOutcome { validation: report(&sets[1])?, test: report(&sets[2])?, fit };
        Ok(Student { vars, outcome, labels: teacher.labels.clone() })
    }
}

/// Reviews of the taxonomy that are neither labelled nor held out, at most `limit`.
async fn unlabelled_texts(pool: &PgPool, source: &Source, limit: usize) -> anyhow::Result<Vec<String>> {
    let labelled: HashSet<&str> = source.items.iter().map(|i| i.text.as_str()).collect();
    let mut seen = HashSet::new();
    let texts = data::all_texts(pool, source.taxonomy.id).await?;
    Ok(texts
        .into_iter()
        .filter(|t| !labelled.contains(t.as_str()) && !t.trim().is_empty() && seen.insert(t.clone()))
        .take(limit)
        .collect())
}

/// Keyword targets: for labelled reviews `w · label + (1 − w) · teacher`, for the rest
/// the teacher's probabilities.
fn keyword_lessons(
    teacher: &LoadedModel,
    student: &Tokenizer,
    labelled: &[&LabelledText],
    unlabelled: &[String],
    w: f32,
) -> anyhow::Result<Dataset> {
    let k = teacher.labels.keywords.len();
    let hard = data::keyword_dataset(labelled, &teacher.tokenizer, k);
    let Targets::MultiLabel(labels) = &hard.targets else { unreachable!() };
    let mut rows = hard.rows.clone();
    rows.extend(unlabelled.iter().map(|t| inputs::encode_review(&teacher.tokenizer, t)));
    let soft = probabilities(&teacher.classifier, &rows, true, BATCH)?;
    // The student reads the same texts, in the same order, in its own tokens.
    let texts = labelled.iter().map(|i| i.text.as_str()).chain(unlabelled.iter().map(String::as_str));
    let rows = texts.map(|t| inputs::encode_review(student, t)).collect();
    let targets = soft
        .into_iter()
        .enumerate()
        .map(|(i, p)| match labels.get(i) {
            Some(label) => mixed(label, &p, w),
            None => p,
        })
        .collect();
    Ok(Dataset { rows, targets: Targets::Taught(targets) })
}

/// Sentiment targets: labelled reviews with their labelled keywords (label mixed with the
/// teacher's distribution), unlabelled ones with the keywords the teacher finds.
fn sentiment_lessons(
    teacher: &crate::analyze::Analyzer,
    student: &Tokenizer,
    taxonomy: &Taxonomy,
    labelled: &[&LabelledText],
    unlabelled: &[String],
    w: f32,
) -> anyhow::Result<Dataset> {
    let input = teacher.sentiment.labels.sentiment_input.unwrap_or(SentimentInput::Pair);
    let hard = data::sentiment_dataset(labelled, &teacher.sentiment.tokenizer, taxonomy, input);
    let classes = hard.classes();
    let mut rows = hard.rows.clone();
    let mut student_rows = data::sentiment_dataset(labelled, student, taxonomy, input).rows;
    let review_rows: Vec<Vec<u32>> =
        unlabelled.iter().map(|t| inputs::encode_review(&teacher.keyword.tokenizer, t)).collect();
    let found = probabilities(&teacher.keyword.classifier, &review_rows, true, BATCH)?;
    for (text, probs) in unlabelled.iter().zip(&found) {
        for (k, _) in
            probs.iter().zip(&teacher.keyword.labels.thresholds).enumerate().filter(|(_, (p, t))| p >= t)
        {
            let keyword = &taxonomy.keywords[k].name;
            rows.push(inputs::encode_pair(&teacher.sentiment.tokenizer, input, text, keyword));
            student_rows.push(inputs::encode_pair(student, input, text, keyword));
        }
    }
    let soft = probabilities(&teacher.sentiment.classifier, &rows, false, BATCH)?;
    let targets = soft
        .into_iter()
        .enumerate()
        .map(|(i, p)| match classes.get(i) {
            Some(&c) => {
                mixed(&(0..p.len()).map(|j| (j == c as usize) as u8 as f32).collect::<Vec<_>>(), &p, w)
            }
            None => p,
        })
        .collect();
    Ok(Dataset { rows: student_rows, targets: Targets::Distribution(targets) })
}

/// `w · label + (1 − w) · teacher`, element by element.
fn mixed(label: &[f32], teacher: &[f32], w: f32) -> Vec<f32> {
    label.iter().zip(teacher).map(|(l, p)| w * l + (1.0 - w) * p).collect()
}

/// A loaded model's reports on the source's validation and test reviews.
fn evaluated(model: &LoadedModel, source: &Source) -> anyhow::Result<ModelOutcome> {
    let report = |split| -> anyhow::Result<_> {
        let items = source.split(split);
        if model.labels.kind == "keyword" {
            let set = data::keyword_dataset(&items, &model.tokenizer, model.labels.keywords.len());
            keyword_report(&model.classifier, &set, &model.labels.thresholds, &model.labels.keywords, BATCH)
        } else {
            let input = model.labels.sentiment_input.unwrap_or(SentimentInput::Pair);
            let set = data::sentiment_dataset(&items, &model.tokenizer, &source.taxonomy, input);
            sentiment_report(&model.classifier, &set, &source.levels(), BATCH)
        }
    };
    Ok(ModelOutcome {
        fit: Default::default(),
        validation: report(Split::Validation)?,
        test: report(Split::Test)?,
    })
}

/// `metrics` with the source's scores and the change in micro and macro F1 per split.
fn with_cost(mut metrics: Value, source: &Source, kind: &str) -> Value {
    let theirs = &source.model(kind).metrics;
    let mut cost = json!({});
    for split in ["validation", "test"] {
        for average in ["micro", "macro_avg"] {
            let f1 = |m: &Value| m[split][average]["f1"].as_f64();
            if let (Some(new), Some(old)) = (f1(&metrics), f1(theirs)) {
                cost[format!("{split}_{average}_f1")] = json!(new - old);
            }
        }
    }
    metrics["source"] =
        json!({"name": source.name, "validation": theirs["validation"], "test": theirs["test"]});
    metrics["cost"] = cost;
    metrics
}

fn card(kind: &str, name: &str, how: &str, outcome: &ModelOutcome) -> String {
    let table = |r: &Option<super::metrics::Report>| {
        r.as_ref().map(super::metrics::table).unwrap_or_else(|| "(none)\n".into())
    };
    format!(
        "# {kind} model {name}\n\nA {how}; scored on the same label snapshot's reviews. `metrics.json` \
         holds the source's scores and the change (`cost`).\n\n## Validation\n```\n{}```\n\n## Test\n```\n{}```\n",
        table(&outcome.validation),
        table(&outcome.test),
    )
}

#[allow(clippy::too_many_arguments)]
/// What a finished lighter version is recorded as.
struct Finished<'a> {
    name: &'a str,
    base: &'a str,
    action: &'a str,
    storage: Option<&'a crate::config::StorageLocation>,
}

async fn finish(
    pool: &PgPool,
    source: &Source,
    version: PendingVersion,
    finished: Finished<'_>,
    params: Value,
    metrics: Vec<Value>,
) -> anyhow::Result<Lighter> {
    let Finished { name, base, action, storage } = finished;
    let dir = version.commit()?;
    let recorded = Recorded { name, dir: &dir, base, snapshot_id: source.snapshot_id, action, storage };
    let (ids, stored) = record(pool, &source.taxonomy, &recorded, params, [&metrics[0], &metrics[1]])
        .await
        .inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&dir);
    })?;
    let [kw, st]: [Value; 2] = metrics.try_into().expect("two models");
    Ok(Lighter { name: name.to_string(), dir, metrics: [kw, st], version_ids: ids, stored })
}
