//! The admin's pages: user accounts and roles.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::auth::{AdminArea, Authorized, Nav, Permitted};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render_with, AppState};
use crate::error::AppResult;
use crate::store::users::{self, Role, User, UserError};
use actix_web::http::StatusCode;

type Admin = Authorized<AdminArea>;

pub const ROUTES: &[Route] =
    &[route!(GET "/admin/users", AdminArea, users_page), route!(POST "/admin/users", AdminArea, add_user)];

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    t: &'static Tr,
    nav: Nav,
    users: Vec<User>,
    roles: Vec<&'static str>,
    error: Option<String>,
}

async fn users_page(user: Admin, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    respond(&user, &state, None).await
}

async fn respond(user: &Admin, state: &AppState, error: Option<String>) -> AppResult<HttpResponse> {
    let users = users::list(&state.pool).await?;
    let roles = Role::ALL.iter().map(|r| r.as_str()).collect();
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    Ok(render_with(&UsersPage { t: user.tr(), nav: user.nav(), users, roles, error }, status))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    role: String,
}

async fn add_user(
    request: Permitted<AdminArea, web::Form<NewUser>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let Some(role) = Role::parse(&form.role) else {
        return respond(&user, &state, Some(format!("unknown role {}", form.role))).await;
    };
    match users::create(&state.pool, &form.username, &form.password, role).await {
        Ok(created) => {
            let details = json!({"role": role.as_str()});
            crate::store::audit::record(
                &state.pool,
                Some(user.user_id()),
                "user.create",
                &format!("user:{}", created.id),
                details,
            )
            .await?;
            respond(&user, &state, None).await
        }
        Err(UserError::Database(e)) => Err(e.into()),
        Err(e) => respond(&user, &state, Some(e.to_string())).await,
    }
}
