//! Every route, every role: who gets in and who gets 403.

use reviewloop::import::Format;
use reviewloop::rounds::RoundSpec;
use reviewloop::store::{self, users::Role};
use reviewloop::web::routing::{self, Access, Route};

use crate::helpers::{client, location, round_spec, TestApp};

use Role::*;

const EVERYONE: &[Role] = &[Annotator, Reviewer, Engineer, Admin];

/// The app's route table: the router is built from it, so every route is here.
fn routes() -> Vec<Route> {
    routing::table()
}

/// The roles a route serves, or None for a public or API-key route.
fn allowed(route: &Route) -> Option<&'static [Role]> {
    match route.access {
        Access::Roles(roles) => Some(roles),
        Access::Public | Access::ApiKey => None,
    }
}

pub(crate) async fn app_with_round() -> (TestApp, i64) {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(5, 1)).await;
    let round = app.create_round(&round_spec(5)).await.unwrap();
    (app, round.id)
}

/// The path with its ids filled in: an open round for round paths, else an id that
/// does not exist (a role that may use the route then gets 404, not 403).
pub(crate) fn concrete(path: &str, round: i64) -> String {
    let round_path = path.starts_with("/annotate/rounds/") || path.starts_with("/engineer/rounds/");
    let id = if round_path { round.to_string() } else { "999999".to_string() };
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        out.push_str(&rest[..open]);
        out.push_str(if rest[open..].starts_with("{code}") { "ko" } else { &id });
        rest = &rest[close + 1..];
    }
    out + rest
}

#[tokio::test]
async fn every_route_refuses_the_roles_it_does_not_serve() {
    let (app, round) = app_with_round().await;
    for role in EVERYONE {
        let browser = app.logged_in(*role).await;
        let csrf = browser.csrf().await;
        for route in routes() {
            let (method, path) = (route.method, route.path);
            // `/logout` would end the session the rest of the loop needs.
            let Some(allowed) = allowed(&route) else { continue };
            if path == "/logout" {
                continue;
            }
            let url = app.url(&concrete(path, round));
            let response = match method {
                "GET" => browser.client.get(&url).send().await.unwrap(),
                _ => browser.client.post(&url).form(&[("csrf", csrf.as_str())]).send().await.unwrap(),
            };
            let status = response.status().as_u16();
            if allowed.contains(role) {
                assert!(![401, 403].contains(&status), "{role:?} should reach {method} {path}, got {status}");
                assert_ne!(location(&response), "/login", "{role:?} was sent to login by {path}");
            } else {
                assert_eq!(status, 403, "{role:?} must not reach {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn logout_ends_the_session_for_every_role() {
    let app = TestApp::spawn().await;
    for role in EVERYONE {
        let browser = app.logged_in(*role).await;
        let csrf = browser.csrf().await;
        let response = browser.post_form("/logout", &[("csrf".into(), csrf)]).await;
        assert_eq!(location(&response), "/login");
        assert!(location(&browser.get("/annotate").await).starts_with("/login"));
    }
}

/// A page asked for without a session leads to login; a form sent without one has no
/// token it could be entitled to, so it is refused like a forged one.
#[tokio::test]
async fn anonymous_visitors_are_sent_to_login_and_their_forms_refused() {
    let (app, round) = app_with_round().await;
    let anonymous = client();
    for route in routes() {
        let (method, path) = (route.method, route.path);
        if allowed(&route).is_none() {
            continue;
        }
        let url = app.url(&concrete(path, round));
        let response = match method {
            "GET" => anonymous.get(&url).send().await.unwrap(),
            _ => anonymous.post(&url).form(&[("csrf", "x")]).send().await.unwrap(),
        };
        if method != "GET" {
            assert_eq!(response.status(), 403, "{method} {path}");
        } else if path.starts_with("/api/") {
            assert_eq!(response.status(), 401, "{method} {path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated");
        } else {
            assert_eq!(response.status(), 303, "{method} {path}");
            assert!(location(&response).starts_with("/login"), "{method} {path}");
        }
    }
}

#[tokio::test]
async fn a_wrong_password_does_not_log_in() {
    let app = TestApp::spawn().await;
    let name = app.user(Annotator).await;
    let browser = crate::helpers::Browser { client: client(), app: app.address.clone() };
    let response = browser.login(&name, "wrong-password").await;
    assert_eq!(response.status(), 401);
    let response = browser.login("nobody-here", "wrong-password").await;
    assert_eq!(response.status(), 401);
    assert!(location(&browser.get("/annotate").await).starts_with("/login"));
}

#[tokio::test]
async fn a_members_only_round_is_closed_to_other_annotators() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(3, 1)).await;
    let member = app.user(Annotator).await;
    let spec = RoundSpec { name: "private".into(), members: vec![member.clone()], ..round_spec(3) };
    let round = app.create_round(&spec).await.unwrap();
    let outsider = app.logged_in(Annotator).await;
    assert_eq!(outsider.claim_next(round.id).await.status(), 403);
    let insider = app.login(&member).await;
    let response = insider.claim_next(round.id).await;
    assert!(location(&response).starts_with("/annotate/items/"));
    // Someone else's item is not theirs to see.
    assert_eq!(outsider.get(&location(&response)).await.status(), 403);
}

#[tokio::test]
async fn a_refused_page_explains_itself_in_the_users_language() {
    let app = TestApp::spawn().await;
    let annotator = app.logged_in(Annotator).await;
    let response = annotator.get("/engineer").await;
    assert_eq!(response.status(), 403);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(response.text().await.unwrap().contains("이 페이지를 사용할 권한이 없습니다"));
    let back_to = annotator
        .client
        .get(app.url("/lang/en"))
        .header("referer", app.url("/engineer"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&back_to), "/engineer", "the switch returns to the page it was clicked on");
    assert!(annotator
        .get("/engineer")
        .await
        .text()
        .await
        .unwrap()
        .contains("Your role may not use this page"));
    // JSON callers get JSON with a stable code.
    let api = annotator.get("/api/v1/rounds").await;
    assert_eq!(api.status(), 403);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn a_fresh_install_gets_one_admin_to_log_in_with() {
    let app = TestApp::spawn().await;
    let password = store::users::create_first_admin(&app.pool).await.unwrap().expect("no users yet");
    let browser = crate::helpers::Browser { client: client(), app: app.address.clone() };
    let response = browser.login("admin", &password).await;
    assert_eq!(location(&response), "/engineer");
    assert!(store::users::create_first_admin(&app.pool).await.unwrap().is_none(), "only once");
}

#[tokio::test]
async fn two_processes_starting_at_once_create_one_first_admin() {
    let app = TestApp::spawn().await;
    let (a, b, c) = tokio::join!(
        store::users::create_first_admin(&app.pool),
        store::users::create_first_admin(&app.pool),
        store::users::create_first_admin(&app.pool),
    );
    let created = [a, b, c].into_iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert_eq!(created, 1);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}
