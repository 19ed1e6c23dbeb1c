//! The try-it page (any logged-in role): paste a review, see what the serving models
//! make of it — keywords, sentiment per keyword, highlighted words — through the same
//! model thread as the API.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{AnnotateArea, Authorized, Nav, Permitted};
use super::i18n::{level_name, Tr};
use super::qa::{segments, Segments};
use super::routing::{route, Route};
use super::{render, AppState};
use crate::analyze::{Ask, Highlights, ReviewCost};
use crate::error::{AppError, AppResult};
use crate::serve::rate::Admission;
use crate::serve::ServeError;

pub const ROUTES: &[Route] =
    &[route!(GET "/try", AnnotateArea, try_page), route!(POST "/try", AnnotateArea, try_analyze)];

/// One found keyword as the page shows it.
struct Finding {
    keyword: String,
    probability: f32,
    level_word: String,
    /// (level, probability) from the lowest.
    distribution: Vec<(i16, f32)>,
    segments: Segments,
}

#[derive(Template)]
#[template(path = "try.html")]
struct TryPage {
    t: &'static Tr,
    nav: Nav,
    text: String,
    taxonomy: String,
    taxonomies: Vec<String>,
    version: Option<String>,
    findings: Option<Vec<Finding>>,
    error: Option<String>,
}

async fn page(
    user: &Authorized<AnnotateArea>,
    state: &AppState,
    text: String,
    taxonomy: String,
) -> AppResult<TryPage> {
    let taxonomies = crate::store::taxonomies::list(&state.pool).await?.into_iter().map(|t| t.name).collect();
    Ok(TryPage {
        t: user.tr(),
        nav: user.nav(),
        text,
        taxonomy,
        taxonomies,
        version: None,
        findings: None,
        error: None,
    })
}

async fn try_page(user: Authorized<AnnotateArea>, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let taxonomy = state.serving.limits.default_taxonomy.clone();
    Ok(render(&page(&user, &state, String::new(), taxonomy).await?))
}

#[derive(Deserialize)]
struct TryForm {
    text: String,
    taxonomy: String,
}

async fn try_analyze(
    request: Permitted<AnnotateArea, web::Form<TryForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let form = form.into_inner();
    let mut shown = page(&user, &state, form.text.clone(), form.taxonomy.clone()).await?;
    if crate::text::normalize(&form.text).is_empty() {
        return Ok(render(&shown));
    }
    let t = user.tr();
    if form.text.chars().count() > state.settings.max_text_chars {
        shown.error = Some(t.try_too_long.replace("{chars}", &state.settings.max_text_chars.to_string()));
        return Ok(super::render_with(&shown, actix_web::http::StatusCode::BAD_REQUEST));
    }
    match analyse(&state, user.user_id(), &form.text, &form.taxonomy, user.lang).await {
        Ok((version, findings)) => {
            shown.version = Some(version);
            shown.findings = Some(findings);
        }
        Err(ServeError::NoModel(taxonomy)) => {
            shown.error = Some(t.try_no_model.replace("{taxonomy}", &taxonomy))
        }
        Err(ServeError::UnknownTaxonomy(taxonomy)) => {
            shown.error = Some(t.try_unknown_taxonomy.replace("{taxonomy}", &taxonomy))
        }
        Err(ServeError::Overloaded) => shown.error = Some(t.try_overloaded.to_string()),
        Err(ServeError::OverBudget { .. }) => shown.error = Some(t.try_over_budget.to_string()),
        Err(ServeError::RateLimited(seconds)) => {
            shown.error = Some(t.try_rate_limited.replace("{seconds}", &seconds.to_string()))
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    }
    Ok(render(&shown))
}

/// The analysis of one text through the API's model thread, budget and (per user) rate limit.
async fn analyse(
    state: &AppState,
    user_id: i64,
    text: &str,
    taxonomy: &str,
    lang: super::i18n::Lang,
) -> Result<(String, Vec<Finding>), ServeError> {
    let serving = &state.serving;
    let per_minute = serving.limits.try_per_minute;
    // One unit before any work, the rest once the cost is known (`serve::rate`).
    if let Admission::Limited { retry_after } = serving.try_rate.admit(&user_id, per_minute) {
        return Err(ServeError::RateLimited(retry_after.as_secs().max(1)));
    }
    let model = serving.registry.get(taxonomy).await?;
    let texts = vec![text.to_string()];
    let costs = serving.cost(&model, &texts, Ask::Analysis(Highlights::Mask)).await?;
    let cost = costs.iter().map(ReviewCost::total).sum();
    if let Admission::Limited { retry_after } = serving.try_rate.charge_rest(&user_id, per_minute, cost) {
        return Err(ServeError::RateLimited(retry_after.as_secs().max(1)));
    }
    let mut analyses = serving.batcher.analyze(model.clone(), texts, Highlights::Mask, costs).await?;
    let analysis = analyses
        .pop()
        .unwrap_or_else(|| crate::analyze::Analysis { keywords: vec![], probabilities: vec![] });
    let shown_text = crate::text::normalize(text);
    let levels = model.levels();
    let findings = analysis
        .keywords
        .into_iter()
        .map(|k| Finding {
            level_word: level_name(lang, levels[0], levels[levels.len() - 1], k.sentiment),
            segments: segments(&shown_text, &k.highlights),
            distribution: levels.iter().copied().zip(k.distribution.iter().copied()).collect(),
            keyword: k.keyword,
            probability: k.probability,
        })
        .collect();
    Ok((model.version.clone(), findings))
}
