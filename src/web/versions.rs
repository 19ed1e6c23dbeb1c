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
use crate::error::AppResult;
use crate::promotion::{self, Gate, PromoteError, Switched};
use crate::store::models::{self, ModelVersion};
use crate::store::taxonomies::TaxonomySummary;
use crate::train::compare::{deltas, judged_report, regressions, LabelDelta};
use crate::train::metrics::Report;

pub const ROUTES: &[Route] = &[
    route!(GET "/engineer/models", EngineerArea, models_page),
    route!(POST "/engineer/models/promote", EngineerArea, promote),
    route!(POST "/engineer/models/rollback", EngineerArea, rollback),
];

/// One version's row in the list.
struct VersionRow {
    version: ModelVersion,
    report: Report,
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
    rows: Vec<LabelDelta>,
    /// Labels beyond the margin, shown in red.
    fallen: Vec<String>,
    margin: f64,
    error: Option<String>,
}

impl ModelsPage {
    fn is_fallen(&self, label: &str) -> bool {
        self.fallen.iter().any(|f| f == label)
    }
}

#[derive(Deserialize)]
struct ModelsQuery {
    taxonomy: Option<String>,
    compare: Option<String>,
}

async fn models_page(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<ModelsQuery>,
) -> AppResult<HttpResponse> {
    let query = query.into_inner();
    page(&user, &state, query.taxonomy.as_deref(), query.compare, None).await
}

async fn page(
    user: &Engineer,
    state: &AppState,
    taxonomy: Option<&str>,
    compare: Option<String>,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let (taxonomies, taxonomy) = super::engineer::pick_taxonomy(state, taxonomy).await?;
    let listed = models::list(&state.pool, taxonomy.id, "keyword").await?;
    let active = listed.iter().find(|v| v.status == "active");
    let active_report = active.and_then(|a| judged_report(&a.metrics));
    // By default, compare the newest version that is not serving.
    let candidate = compare.or_else(|| listed.iter().find(|v| v.status == "ready").map(|v| v.name.clone()));
    let candidate_report = candidate
        .as_ref()
        .and_then(|c| listed.iter().find(|v| &v.name == c))
        .and_then(|v| judged_report(&v.metrics));
    let rows = candidate_report.map(|r| deltas(&r, active_report.as_ref())).unwrap_or_default();
    let margin = state.settings.web.promotion_margin;
    let fallen = regressions(&rows, margin).iter().map(|d| d.label.clone()).collect();
    let page = ModelsPage {
        t: user.tr(),
        nav: user.nav(),
        active: active.map(|a| a.name.clone()),
        versions: listed
            .into_iter()
            .map(|v| VersionRow { report: judged_report(&v.metrics).unwrap_or_default(), version: v })
            .collect(),
        taxonomies,
        taxonomy,
        candidate,
        rows,
        fallen,
        margin,
        error,
    };
    let status = if page.error.is_some() { StatusCode::CONFLICT } else { StatusCode::OK };
    Ok(render_with(&page, status))
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
        Err(e) => page(user, state, Some(taxonomy), compare, Some(e.to_string())).await,
    }
}
