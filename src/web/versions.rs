//! Engineer page for model versions: each version's scores, a candidate compared with
//! the serving version keyword by keyword (deltas highlighted), promotion behind the F1
//! gate, and rollback.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{EngineerArea, Nav, Permitted};
use super::engineer::{taxonomy_id, Engineer, TaxonomyForm};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render_with, see_other, AppState};
use crate::error::{AppError, AppResult};
use crate::evidence::{Evidence, MIN_KEYWORD_SUPPORT, MIN_REPORT_SUPPORT};
use crate::promotion::{self, Gate, PromoteError, Switched};
use crate::retention;
use crate::store::models::{self, ModelVersion};
use crate::store::taxonomies::TaxonomySummary;
use crate::train::compare::{deltas, judged_report, regressions, LabelDelta};
use crate::train::metrics::{Report, Scores};

pub const ROUTES: &[Route] = &[
    route!(GET "/engineer/models", EngineerArea, models_page),
    route!(POST "/engineer/models/promote", EngineerArea, promote),
    route!(POST "/engineer/models/rollback", EngineerArea, rollback),
    route!(POST "/engineer/models/prune", EngineerArea, prune),
    route!(POST "/engineer/models/pin", EngineerArea, pin),
];

/// One version's row in the list: its averages, or "too few labels" (evidence).
struct VersionRow {
    version: ModelVersion,
    micro: String,
    macro_avg: String,
}

/// A keyword's line of the comparison; F1s below their evidence say so, and a delta
/// is given only when both F1s count.
struct CompareRow {
    label: String,
    active: String,
    candidate: String,
    delta: Option<f64>,
    support: Option<usize>,
}

#[derive(Template)]
#[template(path = "engineer_models.html")]
struct ModelsPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    taxonomy: TaxonomySummary,
    versions: Vec<VersionRow>,
    active: Option<String>,
    /// The version compared with the serving one, and the rows.
    candidate: Option<String>,
    rows: Vec<CompareRow>,
    /// Labels beyond the margin, shown in red.
    fallen: Vec<String>,
    margin: f64,
    error: Option<String>,
    /// What the retention rule would prune now, and the stored megabytes it holds.
    prunable: Vec<String>,
    prunable_mb: String,
    pinned: Vec<String>,
    keep_last: usize,
    /// What the last pruning freed.
    notice: Option<String>,
}

impl ModelsPage {
    fn is_pinned(&self, name: &str) -> bool {
        self.pinned.iter().any(|p| p == name)
    }

    fn is_fallen(&self, label: &str) -> bool {
        self.fallen.iter().any(|f| f == label)
    }
}

#[derive(Deserialize)]
struct ModelsQuery {
    taxonomy: Option<String>,
    compare: Option<String>,
    /// Versions just pruned and the stored megabytes freed (after a pruning).
    pruned: Option<usize>,
    freed_mb: Option<f64>,
}

async fn models_page(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<ModelsQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    let notice = query.pruned.map(|n| {
        let t = user.tr();
        let mb = format!("{:.1}", query.freed_mb.unwrap_or(0.0));
        t.pruned_notice.replace("{n}", &n.to_string()).replace("{mb}", &mb)
    });
    page(&user, &state, query.taxonomy.as_deref(), query.compare, None, notice).await
}

async fn page(
    user: &Engineer,
    state: &AppState,
    taxonomy: Option<&str>,
    compare: Option<String>,
    error: Option<String>,
    notice: Option<String>,
) -> AppResult<HttpResponse> {
    let (taxonomies, taxonomy) = super::engineer::pick_taxonomy(state, taxonomy).await?;
    let prunable = retention::plan(&state.pool, taxonomy.id, retention::KEEP_LAST).await?;
    let prunable_mb = format!("{:.1}", prunable.iter().map(|p| p.bytes).sum::<i64>() as f64 / 1e6);
    let pinned = retention::pinned(&state.pool, taxonomy.id).await?;
    let listed = models::list(&state.pool, taxonomy.id, "keyword").await?;
    let active = listed.iter().find(|v| v.status == "active");
    let active_report = active.and_then(|a| judged_report(&a.metrics));
    // By default, compare the newest version that is not serving.
    let candidate = compare.or_else(|| listed.iter().find(|v| v.status == "ready").map(|v| v.name.clone()));
    let candidate_report = candidate
        .as_ref()
        .and_then(|c| listed.iter().find(|v| &v.name == c))
        .and_then(|v| judged_report(&v.metrics));
    let deltas = candidate_report.map(|r| deltas(&r, active_report.as_ref())).unwrap_or_default();
    let margin = state.settings.web.promotion_margin;
    let fallen = regressions(&deltas, margin).iter().map(|d| d.label.clone()).collect();
    let t = user.tr();
    let rows = deltas.iter().map(|d| compare_row(t, d)).collect();
    let page = ModelsPage {
        t: user.tr(),
        nav: user.nav(),
        active: active.map(|a| a.name.clone()),
        versions: listed.into_iter().map(|v| version_row(t, v)).collect(),
        taxonomies,
        taxonomy,
        candidate,
        rows,
        fallen,
        margin,
        error,
        prunable: prunable.into_iter().map(|p| p.name).collect(),
        prunable_mb,
        pinned,
        keep_last: retention::KEEP_LAST,
        notice,
    };
    let status = if page.error.is_some() { StatusCode::CONFLICT } else { StatusCode::OK };
    Ok(render_with(&page, status))
}

fn version_row(t: &Tr, version: ModelVersion) -> VersionRow {
    let report: Report = judged_report(&version.metrics).unwrap_or_default();
    let labels = report.micro.support;
    let average = |f1: f64| t.evidence(Evidence::of(f1, labels, MIN_REPORT_SUPPORT));
    VersionRow { micro: average(report.micro.f1), macro_avg: average(report.macro_avg.f1), version }
}

fn compare_row(t: &Tr, d: &LabelDelta) -> CompareRow {
    let f1 = |s: &Option<Scores>| s.as_ref().map(|s| Evidence::of(s.f1, s.support, MIN_KEYWORD_SUPPORT));
    let (active, candidate) = (f1(&d.active), f1(&d.candidate));
    let counted = active.and_then(|a| a.value()).is_some() && candidate.and_then(|c| c.value()).is_some();
    let shown = |e: Option<Evidence>| e.map(|e| t.evidence(e)).unwrap_or_default();
    CompareRow {
        label: d.label.clone(),
        active: shown(active),
        candidate: shown(candidate),
        delta: d.delta_f1.filter(|_| counted),
        support: d.candidate.as_ref().map(|c| c.support),
    }
}

/// Why a switch was refused, in the user's language.
fn refusal(t: &Tr, e: &PromoteError) -> String {
    match e {
        PromoteError::NotFound(name) => t.gate_not_found.replace("{name}", name),
        PromoteError::AlreadyActive(name) => t.gate_already_serving.replace("{name}", name),
        PromoteError::Regressions { margin, labels } => {
            t.gate_regressions.replace("{labels}", labels).replace("{margin}", &margin.to_string())
        }
        PromoteError::TooFewLabels { labels, needed } => {
            t.gate_too_few.replace("{labels}", &labels.to_string()).replace("{needed}", &needed.to_string())
        }
        PromoteError::NothingToRollBack => t.gate_nothing_to_roll_back.to_string(),
        PromoteError::Database(_) => t.err_internal.to_string(),
    }
}

#[derive(Deserialize)]
struct PromoteForm {
    taxonomy: String,
    name: String,
    #[serde(default)]
    reason: String,
}

async fn promote(
    request: Permitted<EngineerArea, web::Form<PromoteForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = taxonomy_id(&state, &form.taxonomy).await?;
    let gate =
        Gate { margin: state.settings.web.promotion_margin, override_reason: Some(form.reason.as_str()) };
    let switched = promotion::promote(&state.pool, taxonomy, &form.name, Some(user.user_id()), &gate).await;
    answer(&user, &state, &form.taxonomy, Some(form.name.clone()), switched).await
}

async fn rollback(
    request: Permitted<EngineerArea, web::Form<TaxonomyForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = taxonomy_id(&state, &form.taxonomy).await?;
    let switched = promotion::rollback(&state.pool, taxonomy, Some(user.user_id())).await;
    answer(&user, &state, &form.taxonomy, None, switched).await
}

/// Prunes by the rule (keeping the last `retention::KEEP_LAST`), then back to the
/// list saying what was freed.
async fn prune(
    request: Permitted<EngineerArea, web::Form<TaxonomyForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = taxonomy_id(&state, &form.taxonomy).await?;
    let storage = crate::storage::Storage::open(&state.pool, &state.settings.storage)?;
    let data_dir = &state.settings.data_dir;
    let done = retention::prune(&storage, data_dir, &form.taxonomy, taxonomy, retention::KEEP_LAST).await?;
    let details = serde_json::to_value(&done).unwrap_or_default();
    crate::store::audit::record(&state.pool, Some(user.user_id()), "model.prune", &form.taxonomy, details)
        .await?;
    Ok(see_other(&format!(
        "/engineer/models?taxonomy={}&pruned={}&freed_mb={:.1}",
        super::query_value(&form.taxonomy),
        done.versions.len(),
        done.stored_bytes as f64 / 1e6
    )))
}

#[derive(Deserialize)]
struct PinForm {
    taxonomy: String,
    name: String,
    #[serde(default, deserialize_with = "super::form_fields::checkbox")]
    pinned: bool,
}

async fn pin(
    request: Permitted<EngineerArea, web::Form<PinForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = taxonomy_id(&state, &form.taxonomy).await?;
    if !retention::pin(&state.pool, taxonomy, &form.name, form.pinned).await? {
        return Err(AppError::NotFound);
    }
    let details = serde_json::json!({"name": form.name, "pinned": form.pinned});
    crate::store::audit::record(&state.pool, Some(user.user_id()), "model.pin", &form.taxonomy, details)
        .await?;
    Ok(see_other(&format!("/engineer/models?taxonomy={}", super::query_value(&form.taxonomy))))
}

/// Back to the list after a switch; the page again with the reason when refused.
async fn answer(
    user: &Engineer,
    state: &AppState,
    taxonomy: &str,
    compare: Option<String>,
    switched: Result<Switched, PromoteError>,
) -> AppResult<HttpResponse> {
    match switched {
        Ok(_) => Ok(see_other(&format!("/engineer/models?taxonomy={}", super::query_value(taxonomy)))),
        Err(PromoteError::Database(e)) => Err(e.into()),
        Err(e) => page(user, state, Some(taxonomy), compare, Some(refusal(user.tr(), &e)), None).await,
    }
}
