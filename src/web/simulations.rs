//! Engineer page with the learning curves of `reviewloop simulate` runs.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::auth::Nav;
use super::engineer::Engineer;
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, AppState};
use crate::error::AppResult;
use crate::simulate::curves::{self, Best, Metric, Point, StrategySummary};

pub const ROUTES: &[Route] = &[route!(GET "/engineer/simulations", EngineerArea, simulations_page)];

struct Simulation {
    id: i64,
    name: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// Rendered here from our own numbers and fixed strategy names (escaped).
    charts: Vec<String>,
    /// The run in one sentence: per metric, which strategy saved how many labels.
    headline: String,
    seeds_note: String,
    tables: Vec<MetricTable>,
    points: usize,
}

/// One metric: each strategy's final score and the labels it needed to reach random's.
struct MetricTable {
    title: &'static str,
    rows: Vec<MetricRow>,
}

struct MetricRow {
    strategy: String,
    labels: String,
    final_score: String,
    to_random: String,
    share: String,
    per_seed: String,
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
            let summary = curves::summarise(&points);
            Simulation {
                id: row.id,
                name: row.name,
                created_at: row.created_at,
                charts: Metric::ALL.iter().map(|&m| curves::svg(&points, m)).collect(),
                headline: headline(user.tr(), &curves::best_against_random(&summary)),
                seeds_note: user
                    .tr()
                    .seeds_note
                    .replace("{n}", &summary.iter().map(|s| s.seeds).max().unwrap_or(0).to_string()),
                tables: tables(&summary),
                points: points.len(),
            }
        })
        .collect();
    Ok(render(&SimulationsPage { t: user.tr(), nav: user.nav(), simulations }))
}

/// The run in one sentence, in the page's language (the command line prints it in
/// English).
pub fn headline(t: &Tr, best: &[Best]) -> String {
    let parts: Vec<String> = best
        .iter()
        .map(|b| match &b.winner {
            Some((strategy, labels, share)) => t
                .sim_winner
                .replace("{metric}", b.metric.title())
                .replace("{strategy}", strategy)
                .replace("{target}", &format!("{:.3}", b.target))
                .replace("{labels}", &format!("{labels:.0}"))
                .replace("{share}", &format!("{:.0}", share * 100.0))
                .replace("{random}", &format!("{:.0}", b.random_labels)),
            None => t
                .sim_no_winner
                .replace("{metric}", b.metric.title())
                .replace("{target}", &format!("{:.3}", b.target)),
        })
        .collect();
    parts.join("; ")
}

fn tables(summary: &[StrategySummary]) -> Vec<MetricTable> {
    Metric::ALL
        .iter()
        .enumerate()
        .map(|(m, metric)| MetricTable {
            title: metric.title(),
            rows: summary
                .iter()
                .filter_map(|s| {
                    let x = s.metrics.get(m)?;
                    // Random is the reference its own final score is read from.
                    let reference = s.strategy == "random";
                    Some(MetricRow {
                        strategy: s.strategy.clone(),
                        labels: format!("{:.0}", s.final_labels),
                        final_score: x.final_score.show(3),
                        to_random: x
                            .labels_to_match_random
                            .filter(|_| !reference)
                            .map_or("–".into(), |l| format!("{l:.0}")),
                        share: x
                            .share_of_random_labels
                            .filter(|_| !reference)
                            .map_or("–".into(), |r| format!("{:.0} %", r * 100.0)),
                        per_seed: if reference {
                            "–".into()
                        } else if x.per_seed.n == 0 {
                            format!("– (0 / {})", s.seeds)
                        } else {
                            format!("{} ({} / {})", x.per_seed.show(0), x.per_seed.n, s.seeds)
                        },
                    })
                })
                .collect(),
        })
        .collect()
}
