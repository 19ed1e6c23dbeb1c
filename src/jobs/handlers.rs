//! What each kind of job does. Payloads are JSON; each handler returns a JSON result
//! for the job page.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::context::{publish, with_eta, JobContext, Stages};
use crate::train::pipeline;
use crate::train::settings::TrainSettings;

pub async fn run(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    match cx.job.kind.as_str() {
        "train" => train(cx).await,
        "score" => super::score_jobs::coordinate(cx).await,
        "score-chunk" => super::score_jobs::chunk(cx).await,
        "eval" => eval(cx).await,
        "audit" => audit(cx).await,
        "import" => super::import_job::run(cx).await,
        "suggest" => super::suggest_job::run(cx).await,
        "compare" => crate::cycles::compare(cx.pool, cx.storage, &cx.config.models_dir, cycle_of(cx)?).await,
        "compose" => crate::cycles::compose(cx.pool, cycle_of(cx)?).await,
        other => anyhow::bail!("unknown job kind `{other}`"),
    }
}

/// A report's averages and the labels behind them (pages show too few as such).
fn scores(report: &crate::train::metrics::Report) -> Value {
    json!({"micro_f1": report.micro.f1, "macro_f1": report.macro_avg.f1, "labels": report.micro.support})
}

/// The loop cycle a step's job belongs to.
fn cycle_of(cx: &JobContext<'_>) -> anyhow::Result<i64> {
    cx.job
        .payload
        .get("cycle")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow::anyhow!("no cycle in the payload"))
}

/// A training job: [`TrainSettings`] with the version folder root set by the worker.
/// A named version that an earlier attempt finished (its success not recorded: the
/// worker died) is reported, not trained again.
async fn train(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let (pool, config, job, cancel, state) = (cx.pool, cx.config, cx.job, cx.cancel, cx.state);
    let mut settings: TrainSettings = serde_json::from_value(job.payload.clone())?;
    if let Some(done) = finished_before(pool, &settings).await? {
        return Ok(done);
    }
    settings.models_dir = config.models_dir.clone();
    settings.storage = Some(config.storage.clone());
    settings.fit.cancel = cancel.clone();
    let started = Instant::now();
    let mut stage_started = (String::new(), Instant::now(), 0usize);
    let outcome = pipeline::run(pool, &settings, &mut |stage, p| {
        let log = (stage_started.0 != stage || stage_started.2 != p.epoch).then(|| {
            let valid = p.valid_score.map(|s| format!(", validation score {s:.3}")).unwrap_or_default();
            format!(
                "{stage}: epoch {} (step {}/{}), loss {:.4}{valid}",
                p.epoch, p.step, p.total_steps, p.loss
            )
        });
        if stage_started.0 != stage {
            stage_started = (stage.to_string(), Instant::now(), p.epoch);
        }
        stage_started.2 = p.epoch;
        let progress = json!({
            "stage": stage, "epoch": p.epoch, "step": p.step, "total_steps": p.total_steps,
            "loss": p.loss, "valid_score": p.valid_score, "elapsed_seconds": started.elapsed().as_secs(),
        });
        let progress = with_eta(progress, p.step as f64, p.total_steps as f64, stage_started.1.elapsed());
        publish(state, progress, log);
    })
    .await?;
    Ok(json!({
        "version": outcome.name,
        "dir": outcome.dir,
        "keyword_version_id": outcome.version_ids.0,
        "sentiment_version_id": outcome.version_ids.1,
        "keyword": outcome.keyword.validation.as_ref().map(scores),
        "sentiment": outcome.sentiment.validation.as_ref().map(scores),
    }))
}

async fn finished_before(pool: &sqlx::PgPool, settings: &TrainSettings) -> anyhow::Result<Option<Value>> {
    let Some(name) = &settings.name else { return Ok(None) };
    let Some(taxonomy) = crate::store::taxonomies::find_id(pool, &settings.taxonomy).await? else {
        return Ok(None);
    };
    let version = crate::store::models::by_name(pool, taxonomy, "keyword", name).await?;
    Ok(version
        .filter(|v| matches!(v.status.as_str(), "ready" | "active" | "retired"))
        .map(|v| json!({"version": v.name, "keyword_version_id": v.id, "finished_before": true})))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalJob {
    /// A keyword model version id; its version folder is evaluated on the test split.
    pub version_id: i64,
}

async fn eval(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    use crate::train::{data, evaluate};
    let pool = cx.pool;
    let request: EvalJob = serde_json::from_value(cx.job.payload.clone())?;
    let version = crate::store::models::get(pool, request.version_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no model version {}", request.version_id))?;
    let analyzer =
        crate::analyze::Analyzer::load(&cx.storage.version_dir(&cx.config.models_dir, &version).await?)?;
    let taxonomy = crate::store::taxonomies::load(pool, version.taxonomy_id).await?;
    let test: Vec<_> = data::labelled(pool, &taxonomy, None)
        .await?
        .into_iter()
        .filter(|i| i.split == crate::split::Split::Test)
        .collect();
    Ok(serde_json::to_value(evaluate::evaluate(&analyzer, &test, 0)?)?)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditJob {
    pub taxonomy: String,
    #[serde(default = "default_folds")]
    pub folds: usize,
    #[serde(default = "default_audit_epochs")]
    pub epochs: usize,
    /// A base under the data dir for the fold models; the offline encoder when absent.
    #[serde(default)]
    pub base: Option<crate::names::SafeName>,
    /// With a base: the fast mode, the encoder frozen but for this many top layers
    /// (minutes on two cores where fine-tuning five fold models takes an hour).
    #[serde(default)]
    pub fast: Option<usize>,
}

fn default_folds() -> usize {
    5
}

fn default_audit_epochs() -> usize {
    10
}

/// The label-error finder: k-fold models, confident learning, label issues.
async fn audit(cx: &JobContext<'_>) -> anyhow::Result<Value> {
    let request: AuditJob = serde_json::from_value(cx.job.payload.clone())?;
    let mut settings =
        TrainSettings::starting_from(&request.taxonomy, cx.config.models_dir.clone(), request.base);
    settings.fit.epochs = request.epochs;
    settings.fit.cancel = cx.cancel.clone();
    if let Some(trained) = request.fast {
        settings.make_fast(trained)?;
    }
    let started = Instant::now();
    // Each fold trains four stages (keyword and sentiment, each a lexical part then the
    // encoder), each counting its own steps: the estimate is over all of them.
    let mut stages = Stages::new(request.folds * 4);
    let summary = crate::audit::finder::run(cx.pool, &settings, request.folds, &mut |stage, p| {
        let overall = stages.overall(stage, p.step, p.total_steps);
        let progress = json!({"stage": stage, "step": p.step, "total_steps": p.total_steps, "loss": p.loss,
                              "overall": overall});
        let log = (p.step == 1).then(|| format!("{stage}: {} steps", p.total_steps));
        publish(cx.state, with_eta(progress, overall, 1.0, started.elapsed()), log);
    })
    .await?;
    Ok(serde_json::to_value(summary)?)
}
