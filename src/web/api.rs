//! JSON endpoints for scripts and the pages' own fetches. Same sessions and role
//! checks as the pages; errors are JSON with a stable code.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::{AnnotateArea, Authorized, EngineerArea};
use super::engineer::{pick_taxonomy, TaxonomyQuery};
use super::routing::{route, Route};
use super::AppState;
use crate::error::AppResult;
use crate::store::{annotations, rounds};

pub const ROUTES: &[Route] = &[
    route!(GET "/api/v1/me", AnnotateArea, me),
    route!(GET "/api/v1/overview", EngineerArea, overview),
    route!(GET "/api/v1/rounds", EngineerArea, list_rounds),
];

async fn me(user: Authorized<AnnotateArea>) -> HttpResponse {
    HttpResponse::Ok().json(&user.session.user)
}

async fn overview(
    _: Authorized<EngineerArea>,
    state: web::Data<AppState>,
    query: web::Query<TaxonomyQuery>,
) -> AppResult<HttpResponse> {
    let (_, taxonomy) = pick_taxonomy(&state, query.taxonomy.as_deref()).await?;
    let stats = annotations::label_stats(&state.pool, taxonomy.id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "taxonomy": taxonomy.name,
        "reviews": taxonomy.reviews,
        "labelled": stats.labelled,
        "no_keyword": stats.no_keyword,
        "per_keyword": stats.per_keyword.iter().map(|(k, n)| json!({"keyword": k, "count": n})).collect::<Vec<_>>(),
    })))
}

async fn list_rounds(_: Authorized<EngineerArea>, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(rounds::list(&state.pool).await?))
}
