//! Engineer page with the learning curves of `reviewloop simulate` runs.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Nav;
use super::engineer::Engineer;
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, AppState};
use crate::error::AppResult;
use crate::simulate::curves::{self, Metric, Point, StrategySummary};

pub const ROUTES: &[Route] = &[route!(GET "/engineer/simulations", EngineerArea, simulations_page)];

struct Simulation {
    id: i64,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Rendered here from our own numbers and fixed strategy names (escaped).
    charts: Vec<String>,
    summary: Vec<StrategySummary>,
    points: usize,
}

#[derive(Template)]
#[template(path = "engineer_simulations.html")]
struct SimulationsPage {
    t: &'static Tr,
    nav: Nav,
    simulations: Vec<Simulation>,
}

async fn simulations_page(user: Engineer, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let rows = crate::store::simulations::recent(&state.pool, 10).await?;
    let simulations = rows
        .into_iter()
        .map(|row| {
            let points: Vec<Point> = serde_json::from_value(row.points).unwrap_or_default();
            Simulation {
                id: row.id,
                name: row.name,
                created_at: row.created_at,
                charts: Metric::ALL.iter().map(|&m| curves::svg(&points, m)).collect(),
                summary: curves::summarise(&points),
                points: points.len(),
            }
        })
        .collect();
    Ok(render(&SimulationsPage { t: user.tr(), nav: user.nav(), simulations }))
}
