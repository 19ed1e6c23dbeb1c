//! One round for the engineer: its mode and progress, and, when it shows the model's
//! suggestions, what annotators did with them per keyword and their pace with and
//! without them.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Nav;
use super::engineer::Engineer;
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, AppState};
use crate::error::{AppError, AppResult};
use crate::store::assist_stats::{self, KeywordUse, Pace};
use crate::store::rounds::{self, RoundProgress};

pub const ROUTES: &[Route] = &[route!(GET "/engineer/rounds/{id}", EngineerArea, round_page)];

#[derive(Template)]
#[template(path = "engineer_round.html")]
struct RoundPage {
    t: &'static Tr,
    nav: Nav,
    round: RoundProgress,
    keywords: Vec<KeywordUse>,
    pace: Pace,
}

async fn round_page(
    user: Engineer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let id = path.into_inner();
    let round = rounds::get(&state.pool, id).await?.ok_or(AppError::NotFound)?;
    let keywords = assist_stats::per_keyword(&state.pool, id).await?;
    let pace = assist_stats::pace(&state.pool, id).await?;
    Ok(render(&RoundPage { t: user.tr(), nav: user.nav(), round, keywords, pace }))
}

/// A share as a percentage, or a dash.
fn percent(share: Option<f64>) -> String {
    share.map(|s| format!("{:.0}%", s * 100.0)).unwrap_or_else(|| "–".into())
}

/// Labels per hour, or a dash.
fn per_hour(rate: &Option<f64>) -> String {
    rate.map(|r| format!("{r:.0}")).unwrap_or_else(|| "–".into())
}
