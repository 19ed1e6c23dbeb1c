//! Logging in safely: failed logins throttled per account and address without telling
//! which accounts exist, counted before the check so a burst cannot slip past, never
//! turned against the owner's own browser or another address; `next` only ever a path
//! of this site; a new session and token at each login; expired sessions purged;
//! password hashing off the async threads; API keys read as HTTP reads them and a run
//! of bad keys slowed.

use reviewloop::store::{api_keys, users::Role};

use crate::helpers::{client, location, Browser, TestApp, PASSWORD};

fn browser(app: &TestApp) -> Browser {
    Browser { client: client(), app: app.address.clone() }
}

#[tokio::test]
async fn an_account_is_locked_after_five_failures_whether_or_not_it_exists() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    let guesser = browser(&app);
    for _ in 0..5 {
        assert_eq!(guesser.login(&name, "wrong-password").await.status(), 401);
        assert_eq!(guesser.login("nobody-here", "wrong-password").await.status(), 401);
    }
    // Locked now: even the right password is not checked, and an unknown name looks the same.
    let locked = guesser.login(&name, PASSWORD).await;
    assert_eq!(locked.status(), 429);
    let page = locked.text().await.unwrap();
    assert!(page.contains("로그인 실패가 너무 많아"), "{page}");
    let unknown = guesser.login("nobody-here", "wrong-password").await;
    assert_eq!(unknown.status(), 429, "no telling which accounts exist");
    assert!(unknown.text().await.unwrap().contains("로그인 실패가 너무 많아"));
    // Another account from the same address is still let in (the address allows more).
    let other = app.user(Role::Annotator).await;
    assert_eq!(browser(&app).login(&other, PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn login_returns_to_the_page_asked_for_but_never_to_another_site() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Engineer).await;
    let anonymous = browser(&app);
    let sent = anonymous.get("/engineer/models?taxonomy=fashion").await;
    assert_eq!(location(&sent), "/login?next=%2Fengineer%2Fmodels%3Ftaxonomy%3Dfashion");
    let page = anonymous.get(&location(&sent)).await.text().await.unwrap();
    assert!(page.contains("name=\"next\" value=\"/engineer/models?taxonomy=fashion\""), "{page}");
    for (next, lands) in [
        ("/engineer/models?taxonomy=fashion", "/engineer/models?taxonomy=fashion"),
        ("//evil.example", "/engineer"),
        ("/\\evil.example", "/engineer"),
        ("/%2F%2Fevil.example", "/engineer"),
        ("%2F%2Fevil.example", "/engineer"),
        ("https://evil.example/", "/engineer"),
        ("/\t/evil.example", "/engineer"),
    ] {
        let b = browser(&app);
        let form_page = b.get("/login").await.text().await.unwrap();
        let csrf = crate::helpers::csrf_in(&form_page).unwrap();
        let form = [("username", name.as_str()), ("password", PASSWORD), ("csrf", &csrf), ("next", next)];
        let response = b.client.post(app.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 303, "{next:?}");
        assert_eq!(location(&response), lands, "{next:?}");
    }
    let switched = anonymous.client.get(app.url("/lang/en?next=/%5Cevil.example")).send().await.unwrap();
    assert_eq!(location(&switched), "/", "the language switch follows the same rule");
}

#[tokio::test]
async fn expired_sessions_are_purged() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
        .bind(&name)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at) VALUES ('\\x00', $1, 'x', now() - interval '1 day')",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(app.count("SELECT count(*) FROM sessions WHERE expires_at <= now()").await, 1);
    assert_eq!(browser(&app).login(&name, PASSWORD).await.status(), 303);
    assert_eq!(app.count("SELECT count(*) FROM sessions WHERE expires_at <= now()").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1, "the new one");
}

#[tokio::test(flavor = "current_thread")]
async fn password_hashing_leaves_the_async_thread_free() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let ticks = Arc::new(AtomicUsize::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    tokio::task::yield_now().await;
    let before = ticks.load(Ordering::Relaxed);
    reviewloop::store::users::hash_password("long-enough-password").await.unwrap();
    // On this runtime's only thread, the ticker ran while argon2 worked elsewhere.
    assert!(ticks.load(Ordering::Relaxed) > before + 10, "the async thread was blocked");
    ticker.abort();
}

#[tokio::test]
async fn the_bearer_scheme_is_read_in_any_case_and_a_run_of_bad_keys_is_slowed() {
    let app = TestApp::spawn().await;
    let (_, key) = api_keys::create(&app.pool, "client", 1000, None).await.unwrap();
    let url = app.url("/api/v1/analyze");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = client()
            .post(&url)
            .header("Authorization", format!("{scheme} {key}"))
            .json(&serde_json::json!({"text": "배송이 빨라요"}))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 401, "{scheme}: the key was accepted");
    }
    let bad = |n: usize| {
        client()
            .post(&url)
            .bearer_auth(format!("rl_guess-{n}"))
            .json(&serde_json::json!({"text": "x"}))
            .send()
    };
    for n in 0..10 {
        assert_eq!(bad(n).await.unwrap().status(), 401);
    }
    let slowed = bad(10).await.unwrap();
    assert_eq!(slowed.status(), 429);
    assert!(slowed.headers().contains_key("retry-after"));
    assert_eq!(slowed.json::<serde_json::Value>().await.unwrap()["error"]["code"], "rate_limited");
    // A key that worked before is still served from the locked address.
    let good =
        client().post(&url).bearer_auth(&key).json(&serde_json::json!({"text": "x"})).send().await.unwrap();
    assert!(![401, 429].contains(&good.status().as_u16()), "{}", good.status());
}

/// An app that believes X-Forwarded-For from this machine, as behind a local proxy.
async fn behind_a_proxy() -> TestApp {
    TestApp::spawn_with(|s| s.web.trusted_proxies = "127.0.0.1".parse().unwrap()).await
}

#[tokio::test]
async fn fifty_wrong_passwords_at_once_get_no_more_checks_than_the_policy_allows() {
    use reviewloop::web::throttle::ACCOUNT_FROM_CLIENT;
    // Check slots for all of them, so that only the count holds them back.
    let app = TestApp::spawn_with(|s| s.web.login_checks = Some(64)).await;
    let name = app.user(Role::Annotator).await;
    // Each guess from its own browser with its own login token, all sent together.
    let mut prepared = Vec::new();
    for _ in 0..50 {
        let guesser = app.browser();
        let page = guesser.get("/login").await.text().await.unwrap();
        prepared.push((guesser, crate::helpers::csrf_in(&page).unwrap()));
    }
    let url = app.url("/login");
    let answers = futures_util::future::join_all(prepared.iter().map(|(guesser, csrf)| {
        let form = [("username", name.as_str()), ("password", "wrong-password"), ("csrf", csrf.as_str())];
        guesser.client.post(&url).form(&form).send()
    }))
    .await;
    let statuses: Vec<u16> = answers.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= ACCOUNT_FROM_CLIENT.free as usize, "{checked} passwords checked: {statuses:?}");
    assert!(checked >= 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [401, 429].contains(s)), "{statuses:?}");
}

#[tokio::test]
async fn the_owner_logs_in_from_another_address_right_after_a_guessers_burst() {
    let app = behind_a_proxy().await;
    let name = app.user(Role::Engineer).await;
    for _ in 0..30 {
        let status = app.browser().login_from("203.0.113.7", &name, "wrong-password").await.status();
        assert!([401, 429].contains(&status.as_u16()));
    }
    let guesser = app.browser().login_from("203.0.113.7", &name, PASSWORD).await;
    assert_eq!(guesser.status(), 429, "the guesser's address waits, even with the right password");
    let owner = app.browser().login_from("198.51.100.2", &name, PASSWORD).await;
    assert_eq!(owner.status(), 303, "another address does not");
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // Nothing trusted: a guesser writing a new address into each request is still one address.
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    for n in 0..5 {
        let answer = app.browser().login_from(&format!("192.0.2.{n}"), &name, "wrong-password").await;
        assert_eq!(answer.status(), 401);
    }
    let sixth = app.browser().login_from("192.0.2.99", &name, "wrong-password").await;
    assert_eq!(sixth.status(), 429, "the header was ignored");
    // A proxy list that does not hold the peer: ignored as well.
    let app = TestApp::spawn_with(|s| s.web.trusted_proxies = "10.0.0.0/8".parse().unwrap()).await;
    let name = app.user(Role::Annotator).await;
    for n in 0..5 {
        app.browser().login_from(&format!("192.0.2.{n}"), &name, "wrong-password").await;
    }
    assert_eq!(app.browser().login_from("192.0.2.99", &name, "wrong-password").await.status(), 429);
    // From a trusted proxy, each client is its own.
    let app = behind_a_proxy().await;
    let name = app.user(Role::Annotator).await;
    for n in 0..6 {
        let answer = app.browser().login_from(&format!("192.0.2.{n}"), &name, "wrong-password").await;
        assert_eq!(answer.status(), 401, "client {n}");
    }
}

#[tokio::test]
async fn a_guesser_on_many_addresses_slows_new_clients_but_never_the_owners_browser() {
    use reviewloop::web::throttle::ACCOUNT_TOTAL;
    let app = behind_a_proxy().await;
    let name = app.user(Role::Admin).await;
    // The owner has logged in from this browser before.
    let owner = app.browser();
    assert_eq!(owner.login_from("198.51.100.2", &name, PASSWORD).await.status(), 303);
    for n in 0..ACCOUNT_TOTAL.free {
        let answer =
            app.browser().login_from(&format!("203.0.{}.{}", n / 250, n % 250 + 1), &name, "x").await;
        assert_eq!(answer.status(), 401, "guess {n}");
    }
    let stranger = app.browser().login_from("192.0.2.50", &name, PASSWORD).await;
    assert_eq!(stranger.status(), 429, "a browser the account has not seen waits");
    assert_eq!(stranger.headers()["retry-after"], "1", "briefly");
    assert!(stranger.text().await.unwrap().contains("1초"));
    let again = owner.login_from("192.0.2.51", &name, PASSWORD).await;
    assert_eq!(again.status(), 303, "the owner's browser passes, from anywhere");
}

#[tokio::test]
async fn each_login_starts_a_new_session_with_a_new_token_and_ends_the_old_one() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    let browser = app.login(&name).await;
    let first = browser.csrf().await;
    assert_eq!(browser.login(&name, PASSWORD).await.status(), 303);
    let second = browser.csrf().await;
    assert_ne!(first, second);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1, "the first session ended");
}
