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
use super::{render, see_other, AppState};
use crate::error::{AppError, AppResult};
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
}

async fn training_page(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<TrainingQuery>,
) -> AppResult<HttpResponse> {
    let (taxonomies, taxonomy) = pick_taxonomy(&state, query.taxonomy.as_deref()).await?;
    let snapshots = crate::store::models::snapshots(&state.pool, taxonomy.id, 50).await?;
    let data_dir = &state.settings.data_dir;
    let bases = crate::bases::list(data_dir)?;
    let defaults = match query.base.as_deref() {
        None => TrainSettings::configured(&taxonomy.name, data_dir.clone())?,
        Some(chosen) => profile(data_dir, &taxonomy.name, chosen)?,
    };
    let chosen_base = defaults.base.as_ref().map_or("none".into(), |b| b.to_string());
    let jobs = queue::recent(&state.pool, 30).await?;
    Ok(render(&TrainingPage {
        t: user.tr(),
        nav: user.nav(),
        taxonomies,
        taxonomy,
        snapshots,
        defaults,
        bases,
        chosen_base,
        jobs,
    }))
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
    let id = queue::enqueue(&mut conn, &job).await?;
    Ok(see_other(&format!("/engineer/jobs/{id}")))
}

#[derive(Template)]
#[template(path = "engineer_job.html")]
struct JobPage {
    t: &'static Tr,
    nav: Nav,
    job: Job,
    payload: String,
}

async fn job_page(
    user: Engineer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let job = queue::get(&state.pool, path.into_inner()).await?.ok_or(AppError::NotFound)?;
    let payload = serde_json::to_string_pretty(&job.payload).unwrap_or_default();
    Ok(render(&JobPage { t: user.tr(), nav: user.nav(), job, payload }))
}

#[derive(Deserialize)]
struct StatusQuery {
    #[serde(default)]
    after: i64,
}

/// What the job page polls: the job row and the log lines after `after`.
async fn job_status(
    _user: Engineer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<StatusQuery>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    let job = queue::get(&state.pool, id).await?.ok_or(AppError::NotFound)?;
    let logs = queue::logs(&state.pool, id, query.after).await?;
    Ok(HttpResponse::Ok().json(json!({"job": job, "logs": logs})))
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
