//! JSON endpoints for scripts and the pages' own fetches. Same sessions and role
//! checks as the pages; errors are JSON with a stable code.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::auth::{AnnotateArea, Authorized, EngineerArea};
use super::engineer::{pick_taxonomy, TaxonomyQuery};
use super::AppState;
use crate::error::AppResult;
use crate::store::{annotations, rounds};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/me", web::get().to(me))
        .route("/api/v1/overview", web::get().to(overview))
        .route("/api/v1/rounds", web::get().to(list_rounds));
}

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
