//! Engineer pages for retraining: launch a training (or scoring) job, follow a job's
//! progress and log live, cancel it.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::auth::{CsrfForm, EngineerArea, Nav, Permitted};
use super::engineer::{pick_taxonomy, taxonomy_id, Engineer, TaxonomyForm};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, render_with, see_other, AppState};
use crate::error::{AppError, AppResult};
use crate::evidence::MIN_TRAINING_LABELS;
use crate::jobs::{Job, NewJob};
use crate::store::jobs as queue;
use crate::store::taxonomies::TaxonomySummary;
use crate::train::settings::{TrainOverrides, TrainSettings};

pub const ROUTES: &[Route] = &[
    route!(GET "/engineer/training", EngineerArea, training_page),
    route!(POST "/engineer/training", EngineerArea, launch_training),
    route!(POST "/engineer/score", EngineerArea, launch_scoring),
    route!(GET "/engineer/jobs/{id}", EngineerArea, job_page),
    route!(GET "/engineer/jobs/{id}/status", EngineerArea, job_status),
    route!(POST "/engineer/jobs/{id}/cancel", EngineerArea, cancel_job),
];

#[derive(Template)]
#[template(path = "engineer_training.html")]
struct TrainingPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    taxonomy: TaxonomySummary,
    snapshots: Vec<crate::store::models::Snapshot>,
    defaults: TrainSettings,
    /// The bases on disk, to pick from (never a free path).
    bases: Vec<crate::bases::BaseInfo>,
    /// The base the defaults are those of (`none`: the encoder trained here).
    chosen_base: String,
    jobs: Vec<Job>,
    error: Option<String>,
}

async fn training_page(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<TrainingQuery>,
) -> AppResult<HttpResponse> {
    let page = training(&user, &state, query.taxonomy.as_deref(), query.base.as_deref(), None).await?;
    Ok(render(&page))
}

/// The training form for a taxonomy and base, with an error when a launch was refused.
async fn training(
    user: &Engineer,
    state: &AppState,
    taxonomy: Option<&str>,
    base: Option<&str>,
    error: Option<String>,
) -> AppResult<TrainingPage> {
    let (taxonomies, taxonomy) = pick_taxonomy(state, taxonomy).await?;
    let snapshots = crate::store::models::snapshots(&state.pool, taxonomy.id, 50).await?;
    let data_dir = &state.settings.data_dir;
    let bases = crate::bases::list(data_dir)?;
    let defaults = match base {
        None => TrainSettings::configured(&taxonomy.name, data_dir.clone())?,
        Some(chosen) => profile(data_dir, &taxonomy.name, chosen)?,
    };
    let chosen_base = defaults.base.as_ref().map_or("none".into(), |b| b.to_string());
    let jobs = queue::recent(&state.pool, 30).await?;
    Ok(TrainingPage {
        t: user.tr(),
        nav: user.nav(),
        taxonomies,
        taxonomy,
        snapshots,
        defaults,
        bases,
        chosen_base,
        jobs,
        error,
    })
}

#[derive(Deserialize)]
struct TrainingQuery {
    taxonomy: Option<String>,
    base: Option<String>,
}

/// The defaults of starting from `chosen`: `none` (the encoder trained here) or one of
/// the bases on disk; anything else is refused.
fn profile(data_dir: &std::path::Path, taxonomy: &str, chosen: &str) -> AppResult<TrainSettings> {
    if chosen == "none" || chosen.is_empty() {
        return Ok(TrainSettings::defaults(taxonomy, data_dir.to_path_buf()));
    }
    let known = crate::bases::list(data_dir)?.into_iter().any(|b| b.name == chosen);
    let name = crate::names::SafeName::parse(chosen).ok().filter(|_| known);
    let name =
        name.ok_or_else(|| AppError::BadRequest(format!("`{chosen}` is not one of the bases on disk")))?;
    Ok(TrainSettings::pretrained(taxonomy, data_dir.to_path_buf(), name))
}

#[derive(Deserialize)]
struct TrainForm {
    taxonomy: String,
    /// A snapshot id, or `new`.
    snapshot: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    base: String,
    /// Options left blank keep the chosen profile's value.
    #[serde(flatten)]
    overrides: TrainOverrides,
    device: String,
}

impl TrainForm {
    fn settings(&self, state: &AppState, snapshot: i64) -> AppResult<TrainSettings> {
        let mut s = profile(&state.settings.data_dir, &self.taxonomy, self.base.trim())?;
        let name = self.name.trim();
        if !name.is_empty() {
            let name =
                crate::names::SafeName::parse(name).map_err(|e| AppError::BadRequest(e.to_string()))?;
            s.name = Some(name.to_string());
        }
        self.overrides.apply(&mut s).map_err(|e| AppError::BadRequest(e.to_string()))?;
        s.snapshot = Some(snapshot);
        Ok(s)
    }

    fn device(&self) -> AppResult<&str> {
        match self.device.as_str() {
            d @ ("any" | "cpu" | "cuda") => Ok(d),
            _ => Err(AppError::BadRequest("device is any, cpu or cuda".into())),
        }
    }
}

/// Records the snapshot (when asked for a new one) and queues the job in one
/// transaction: the job exists exactly when its snapshot does.
async fn launch_training(
    request: Permitted<EngineerArea, web::Form<TrainForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy =
        crate::store::taxonomies::find_id(&state.pool, &form.taxonomy).await?.ok_or(AppError::NotFound)?;
    // Refused here, saying what it needs, rather than as a job failing three times.
    let up_to = match form.snapshot.parse::<i64>() {
        Ok(id) => Some(crate::store::models::snapshot_cutoff(&state.pool, taxonomy, id).await?),
        Err(_) => None,
    };
    let labelled = crate::store::annotations::labelled_reviews(&state.pool, taxonomy, up_to).await?;
    if labelled < MIN_TRAINING_LABELS as i64 {
        let message = user
            .tr()
            .too_few_to_train
            .replace("{labels}", &labelled.to_string())
            .replace("{needed}", &MIN_TRAINING_LABELS.to_string());
        let page =
            training(&user, &state, Some(&form.taxonomy), Some(form.base.as_str()), Some(message)).await?;
        return Ok(render_with(&page, actix_web::http::StatusCode::UNPROCESSABLE_ENTITY));
    }
    let mut tx = state.pool.begin().await?;
    let snapshot = match form.snapshot.as_str() {
        "new" => crate::store::models::snapshot(&mut *tx, taxonomy, Some(user.user_id())).await?.0,
        id => id.parse::<i64>().map_err(|_| AppError::BadRequest("unknown snapshot".into()))?,
    };
    let settings = form.settings(&state, snapshot)?;
    let mut payload = serde_json::to_value(&settings).map_err(anyhow::Error::from)?;
    payload["device"] = json!(form.device()?);
    let mut job = NewJob::new("train", payload);
    job.created_by = Some(user.user_id());
    let id = queue::enqueue(&mut tx, &job).await?;
    crate::store::audit::record(
        &mut *tx,
        Some(user.user_id()),
        "job.train",
        &format!("job:{id}"),
        json!({"snapshot": snapshot}),
    )
    .await?;
    tx.commit().await?;
    Ok(see_other(&format!("/engineer/jobs/{id}")))
}

async fn launch_scoring(
    request: Permitted<EngineerArea, web::Form<TaxonomyForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    taxonomy_id(&state, &form.taxonomy).await?;
    let mut job = NewJob::new("score", json!({"taxonomy": form.taxonomy}));
    job.created_by = Some(user.user_id());
    job.dedup_key = Some(format!("score:{}", form.taxonomy));
    let mut conn = state.pool.acquire().await?;
    Ok(match queue::enqueue(&mut conn, &job).await {
        Ok(id) => see_other(&format!("/engineer/jobs/{id}")),
        // Already queued or running (a promotion queues it, say): that one's page.
        Err(queue::EnqueueError::Duplicate(id)) => see_other(&format!("/engineer/jobs/{id}?duplicate=1")),
        Err(e) => return Err(e.into()),
    })
}

#[derive(Template)]
#[template(path = "engineer_job.html")]
struct JobPage {
    t: &'static Tr,
    nav: Nav,
    job: Job,
    status: String,
    /// What the job did, as lines (never its raw result).
    lines: Vec<super::job_summary::Line>,
    /// An import's bad rows: line, severity, reason.
    problems: Vec<(u64, String, String)>,
    /// Still queued or running: the page follows it, and it may be cancelled.
    live: bool,
    stage: String,
    epoch: String,
    loss: String,
    eta: String,
    duplicate: bool,
}

#[derive(Deserialize)]
struct JobQuery {
    /// Sent here because the same job was asked for again.
    duplicate: Option<String>,
}

async fn job_page(
    user: Engineer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<JobQuery>,
) -> AppResult<HttpResponse> {
    let job = queue::get(&state.pool, path.into_inner()).await?.ok_or(AppError::NotFound)?;
    let duplicate = query.duplicate.is_some();
    let t = user.tr();
    let lines = super::job_summary::lines(t, &job);
    let problems = super::job_summary::import_problems(t, &job);
    let live = matches!(job.status.as_str(), "queued" | "running");
    let status = t.job_status(&job.status);
    let p = &job.progress;
    let stage = t.stage_name(p["stage"].as_str().unwrap_or_default());
    let epoch = p["epoch"].as_u64().map_or(String::new(), |e| e.to_string());
    let loss = p["loss"].as_f64().map_or(String::new(), |l| format!("{l:.4}"));
    let eta = p["eta_seconds"].as_f64().map_or(String::new(), |s| format!("{s:.0} s"));
    Ok(render(&JobPage {
        t,
        nav: user.nav(),
        status,
        lines,
        problems,
        live,
        stage,
        epoch,
        loss,
        eta,
        duplicate,
        job,
    }))
}

#[derive(Deserialize)]
struct StatusQuery {
    #[serde(default)]
    after: i64,
}

/// What the job page polls: the job row (its status and stage also in the user's
/// words) and the log lines after `after`.
async fn job_status(
    user: Engineer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<StatusQuery>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    let job = queue::get(&state.pool, id).await?.ok_or(AppError::NotFound)?;
    let logs = queue::logs(&state.pool, id, query.after).await?;
    let t = user.tr();
    let words = json!({
        "status": t.job_status(&job.status),
        "stage": t.stage_name(job.progress["stage"].as_str().unwrap_or_default()),
    });
    Ok(HttpResponse::Ok().json(json!({"job": job, "words": words, "logs": logs})))
}

async fn cancel_job(
    request: Permitted<EngineerArea, web::Form<CsrfForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, .. } = request;
    let id = path.into_inner();
    if queue::cancel(&state.pool, id).await? {
        crate::store::audit::record(
            &state.pool,
            Some(user.user_id()),
            "job.cancel",
            &format!("job:{id}"),
            json!({}),
        )
        .await?;
    }
    Ok(see_other(&format!("/engineer/jobs/{id}")))
}
