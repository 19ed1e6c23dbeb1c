//! Every route, every role: who gets in and who gets 403.

use reviewloop::import::Format;
use reviewloop::rounds::RoundSpec;
use reviewloop::store::{self, users::Role};

use crate::helpers::{client, location, round_spec, TestApp};

use Role::*;

const EVERYONE: &[Role] = &[Annotator, Reviewer, Engineer, Admin];
const ENGINEERS: &[Role] = &[Engineer, Admin];
const ADMINS: &[Role] = &[Admin];
const REVIEWERS: &[Role] = &[Reviewer, Engineer, Admin];

/// The app's routes (see `web::routes`) with the roles allowed on each. `{round}` is
/// an open round, `{item}` an assignment id that does not exist.
const ROUTES: &[(&str, &str, &[Role])] = &[
    ("GET", "/", EVERYONE),
    ("POST", "/logout", EVERYONE),
    ("GET", "/annotate", EVERYONE),
    ("GET", "/annotate/rounds/{round}/next", EVERYONE),
    ("GET", "/annotate/rounds/{round}/back", EVERYONE),
    ("GET", "/annotate/items/{item}", EVERYONE),
    ("POST", "/annotate/items/{item}", EVERYONE),
    ("POST", "/annotate/items/{item}/skip", EVERYONE),
    ("GET", "/engineer", ENGINEERS),
    ("GET", "/engineer/rounds", ENGINEERS),
    ("POST", "/engineer/rounds", ENGINEERS),
    ("POST", "/engineer/rounds/{round}/close", ENGINEERS),
    ("GET", "/engineer/import", ENGINEERS),
    ("POST", "/engineer/import", ENGINEERS),
    ("GET", "/engineer/training", ENGINEERS),
    ("POST", "/engineer/training", ENGINEERS),
    ("POST", "/engineer/score", ENGINEERS),
    ("GET", "/engineer/jobs/{item}", ENGINEERS),
    ("GET", "/engineer/jobs/{item}/status", ENGINEERS),
    ("POST", "/engineer/jobs/{item}/cancel", ENGINEERS),
    ("GET", "/engineer/models", ENGINEERS),
    ("POST", "/engineer/models/promote", ENGINEERS),
    ("POST", "/engineer/models/rollback", ENGINEERS),
    ("GET", "/engineer/simulations", ENGINEERS),
    ("GET", "/qa/audit", REVIEWERS),
    ("POST", "/qa/audit", REVIEWERS),
    ("GET", "/qa/keywords/{item}", REVIEWERS),
    ("POST", "/qa/keywords/{item}/decide", REVIEWERS),
    ("POST", "/qa/keywords/{item}/guideline", REVIEWERS),
    ("POST", "/qa/issues/{item}/fix", REVIEWERS),
    ("GET", "/qa/adjudicate", REVIEWERS),
    ("POST", "/qa/adjudicate/{item}", REVIEWERS),
    ("GET", "/admin/users", ADMINS),
    ("POST", "/admin/users", ADMINS),
    ("GET", "/admin/api-keys", ADMINS),
    ("POST", "/admin/api-keys", ADMINS),
    ("POST", "/admin/api-keys/{item}/revoke", ADMINS),
    ("GET", "/try", EVERYONE),
    ("POST", "/try", EVERYONE),
    ("GET", "/api/v1/me", EVERYONE),
    ("GET", "/api/v1/overview", ENGINEERS),
    ("GET", "/api/v1/rounds", ENGINEERS),
];

async fn app_with_round() -> (TestApp, i64) {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(5, 1)).await;
    let round = app.create_round(&round_spec(5)).await.unwrap();
    (app, round.id)
}

fn concrete(path: &str, round: i64) -> String {
    path.replace("{round}", &round.to_string()).replace("{item}", "999999")
}

#[tokio::test]
async fn every_route_refuses_the_roles_it_does_not_serve() {
    let (app, round) = app_with_round().await;
    for role in EVERYONE {
        let browser = app.logged_in(*role).await;
        let csrf = browser.csrf().await;
        for (method, path, allowed) in ROUTES {
            // `/logout` would end the session the rest of the loop needs.
            if *path == "/logout" {
                continue;
            }
            let url = app.url(&concrete(path, round));
            let response = match *method {
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
        assert_eq!(location(&browser.get("/annotate").await), "/login");
    }
}

#[tokio::test]
async fn anonymous_visitors_are_sent_to_login_and_api_calls_get_401() {
    let (app, round) = app_with_round().await;
    let anonymous = client();
    for (method, path, _) in ROUTES {
        let url = app.url(&concrete(path, round));
        let response = match *method {
            "GET" => anonymous.get(&url).send().await.unwrap(),
            _ => anonymous.post(&url).form(&[("csrf", "x")]).send().await.unwrap(),
        };
        if path.starts_with("/api/") {
            assert_eq!(response.status(), 401, "{method} {path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthenticated");
        } else {
            assert_eq!(response.status(), 303, "{method} {path}");
            assert_eq!(location(&response), "/login", "{method} {path}");
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
    assert_eq!(location(&browser.get("/annotate").await), "/login");
}

#[tokio::test]
async fn a_members_only_round_is_closed_to_other_annotators() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(3, 1)).await;
    let member = app.user(Annotator).await;
    let spec = RoundSpec { name: "private".into(), members: vec![member.clone()], ..round_spec(3) };
    let round = app.create_round(&spec).await.unwrap();
    let outsider = app.logged_in(Annotator).await;
    assert_eq!(outsider.get(&format!("/annotate/rounds/{}/next", round.id)).await.status(), 403);
    let insider = app.login(&member).await;
    let response = insider.get(&format!("/annotate/rounds/{}/next", round.id)).await;
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
