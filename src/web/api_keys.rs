//! The admin's page for analysis-API keys: create (the key is shown once), list, revoke.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{AdminArea, Authorized, CsrfForm, Nav, Permitted};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render_with, see_other, AppState};
use crate::error::{AppError, AppResult};
use crate::store::api_keys::{self, ApiKey};

type Admin = Authorized<AdminArea>;

pub const ROUTES: &[Route] = &[
    route!(GET "/admin/api-keys", AdminArea, keys_page),
    route!(POST "/admin/api-keys", AdminArea, create_key),
    route!(POST "/admin/api-keys/{id}/revoke", AdminArea, revoke_key),
];

#[derive(Template)]
#[template(path = "admin_api_keys.html")]
struct KeysPage {
    t: &'static Tr,
    nav: Nav,
    keys: Vec<ApiKey>,
    /// The key just created: shown this once.
    created: Option<String>,
    error: Option<String>,
}

async fn keys_page(user: Admin, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    respond(&user, &state, None, None).await
}

async fn respond(
    user: &Admin,
    state: &AppState,
    created: Option<String>,
    error: Option<String>,
) -> AppResult<HttpResponse> {
    let keys = api_keys::list(&state.pool).await?;
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(render_with(&KeysPage { t: user.tr(), nav: user.nav(), keys, created, error }, status))
}

#[derive(Deserialize)]
struct NewKey {
    name: String,
    requests_per_minute: i32,
}

async fn create_key(
    request: Permitted<AdminArea, web::Form<NewKey>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    match api_keys::create(&state.pool, &form.name, form.requests_per_minute, Some(user.user_id())).await {
        Ok((_, secret)) => respond(&user, &state, Some(secret), None).await,
        Err(e) if e.downcast_ref::<sqlx::Error>().is_some() => Err(AppError::Internal(e)),
        Err(e) => respond(&user, &state, None, Some(e.to_string())).await,
    }
}

async fn revoke_key(
    request: Permitted<AdminArea, web::Form<CsrfForm>>,
    path: web::Path<i64>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, .. } = request;
    if !api_keys::revoke(&state.pool, path.into_inner(), Some(user.user_id())).await? {
        return Err(AppError::NotFound);
    }
    Ok(see_other("/admin/api-keys"))
}
