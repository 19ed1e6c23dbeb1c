//! Forms without the session's CSRF token change nothing.

use reviewloop::import::Format;
use reviewloop::store::users::Role;

use crate::helpers::{client, pairs, Browser, TestApp};

#[tokio::test]
async fn posts_with_a_missing_or_wrong_token_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(4, 1)).await;
    let admin = app.logged_in(Role::Admin).await;
    let round_form = |csrf: &str| {
        pairs(&[
            ("csrf", csrf),
            ("taxonomy", "fashion"),
            ("name", "r"),
            ("size", "2"),
            ("sampling", "random"),
            ("group_by", "mall"),
        ])
    };
    let user_form = |csrf: &str| {
        pairs(&[("csrf", csrf), ("username", "newbie"), ("password", "long-enough-1"), ("role", "annotator")])
    };
    for token in ["", "forged-token"] {
        assert_eq!(admin.post_form("/engineer/rounds", &round_form(token)).await.status(), 403);
        assert_eq!(admin.post_form("/admin/users", &user_form(token)).await.status(), 403);
        assert_eq!(admin.post_form("/logout", &pairs(&[("csrf", token)])).await.status(), 403);
    }
    assert_eq!(app.count("SELECT count(*) FROM rounds").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM users WHERE username = 'newbie'").await, 0);

    // The same forms with the real token work, so the refusals above were the token's doing.
    let csrf = admin.csrf().await;
    assert_eq!(admin.post_form("/engineer/rounds", &round_form(&csrf)).await.status(), 200);
    assert_eq!(admin.post_form("/admin/users", &user_form(&csrf)).await.status(), 200);
    assert_eq!(app.count("SELECT count(*) FROM rounds").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM users WHERE username = 'newbie'").await, 1);
}

#[tokio::test]
async fn another_sessions_token_does_not_work() {
    let app = TestApp::spawn().await;
    let first = app.logged_in(Role::Engineer).await;
    let second = app.logged_in(Role::Engineer).await;
    let foreign = first.csrf().await;
    let form = pairs(&[
        ("csrf", &foreign),
        ("taxonomy", "fashion"),
        ("name", "r"),
        ("size", "1"),
        ("sampling", "random"),
        ("group_by", "mall"),
    ]);
    assert_eq!(second.post_form("/engineer/rounds", &form).await.status(), 403);
}

#[tokio::test]
async fn the_login_form_needs_its_own_token() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    // A cross-site login post has no token cookie.
    let response = client()
        .post(app.url("/login"))
        .form(&[("username", name.as_str()), ("password", crate::helpers::PASSWORD), ("csrf", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let browser = Browser { client: client(), app: app.address.clone() };
    assert_eq!(browser.login(&name, crate::helpers::PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    let browser = Browser { client: client(), app: app.address.clone() };
    let response = browser.login(&name, crate::helpers::PASSWORD).await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("rl_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("rl_session=;"));
}

/// Every route of the table that changes something, as a logged-in admin (who may use
/// them all): refused without the session's token and with a wrong one.
#[tokio::test]
async fn every_route_that_changes_something_refuses_a_missing_or_wrong_token() {
    use reviewloop::web::routing::{self, Access};
    let app = TestApp::spawn().await;
    let admin = app.logged_in(Role::Admin).await;
    let mut checked = 0;
    for route in routing::table() {
        if route.method == "GET" || !matches!(route.access, Access::Roles(_)) {
            continue;
        }
        let url = app.url(&route.path.replace("{id}", "1").replace("{review}", "1"));
        for form in [pairs(&[("name", "x")]), pairs(&[("csrf", "forged-token"), ("name", "x")])] {
            let response = admin.client.post(&url).form(&form).send().await.unwrap();
            assert_eq!(response.status(), 403, "{route:?} with {form:?}");
        }
        checked += 1;
    }
    assert!(checked >= 20, "{checked}");
    assert!(admin.get("/annotate").await.status().is_success(), "the session still works");
}

#[tokio::test]
async fn the_token_comes_as_a_header_or_a_form_field_never_in_the_query() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(4, 1)).await;
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let form = pairs(&[
        ("taxonomy", "fashion"),
        ("name", "r"),
        ("size", "1"),
        ("sampling", "random"),
        ("group_by", "mall"),
    ]);
    let url = app.url("/engineer/rounds");
    let by_header =
        engineer.client.post(&url).header("X-CSRF-Token", &csrf).form(&form).send().await.unwrap();
    assert_eq!(by_header.status(), 200);
    let mut with_field = form.clone();
    with_field.push(("csrf".into(), csrf.clone()));
    assert_eq!(engineer.client.post(&url).form(&with_field).send().await.unwrap().status(), 200);
    // A token in the URL ends up in logs and Referer headers: refused.
    let by_query = engineer.client.post(format!("{url}?csrf={csrf}")).form(&form).send().await.unwrap();
    assert_eq!(by_query.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM rounds").await, 2);
}

#[tokio::test]
async fn an_upload_without_its_token_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn().await;
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    // 16 MB the server never reads: the answer comes from the form's first field.
    let body = "text\n".to_string() + &"리뷰 내용\n".repeat(1_200_000);
    let upload = |first: Option<(&str, String)>| {
        let mut form = reqwest::multipart::Form::new();
        if let Some((name, value)) = first {
            form = form.text(name.to_string(), value);
        }
        form.text("taxonomy", "fashion")
            .part("file", reqwest::multipart::Part::bytes(body.clone().into_bytes()).file_name("big.csv"))
    };
    let url = app.url("/engineer/import");
    for (first, how) in [
        (Some(("csrf", "forged".to_string())), "a wrong token"),
        (None, "no token"),
        (Some(("taxonomy", csrf.clone())), "the token under another name"),
    ] {
        let response = engineer.client.post(&url).multipart(upload(first)).send().await;
        // The server may answer and close before the client has sent it all.
        if let Ok(response) = response {
            assert_eq!(response.status(), 403, "{how}");
        }
    }
    // In the query it is refused too, and in the right field the upload goes through.
    let in_query = engineer.client.post(format!("{url}?csrf={csrf}")).multipart(upload(None)).send().await;
    if let Ok(response) = in_query {
        assert_eq!(response.status(), 403, "in the query");
    }
    assert_eq!(app.count("SELECT count(*) FROM jobs WHERE kind = 'import'").await, 0);
    let small = reqwest::multipart::Form::new().text("csrf", csrf.clone()).text("taxonomy", "fashion").part(
        "file",
        reqwest::multipart::Part::bytes(crate::helpers::fashion_csv(3, 1).into_bytes()).file_name("s.csv"),
    );
    let accepted = engineer.client.post(&url).multipart(small).send().await.unwrap();
    assert_eq!(accepted.status(), 303, "the right token as the first field");
    assert_eq!(app.count("SELECT count(*) FROM jobs WHERE kind = 'import'").await, 1);
}
