//! The security rules, generated from the router's table: for every route, every
//! identity (anonymous and each role), no token or a forged one, and the spellings of
//! its path a router may or may not take for it (percent-encoded letters, case, extra
//! slashes, dot segments), the answer the rules demand. A route added to the table is
//! in these tests without anyone writing them. Requests go out byte for byte as
//! written (`raw`): an HTTP client would tidy some of these paths first.

use reviewloop::store::users::Role;
use reviewloop::web::routing::{self, Access, Route};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{csrf_in, pairs, TestApp, PASSWORD};
use crate::roles::{app_with_round, concrete};

/// One answer, as far as these tests read it.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn sets_cookie(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{name}=")))
    }
}

/// Sends a request with exactly this method, path and headers (and a urlencoded body).
async fn raw(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer { status, headers }
}

/// Ways of writing a route's path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spelling {
    Plain,
    /// The first letter percent-encoded (`/%6Cogin`): the same route to the router.
    FirstLetterEncoded,
    /// Every letter of the first segment encoded, in lower-case hex.
    SegmentEncoded,
    /// `/login/`, `//login`, `/LOGIN`, `/x/../login`, `/engineer%2Frounds`: no route.
    TrailingSlash,
    DoubleSlash,
    UpperCase,
    DotSegment,
    EncodedSlash,
}

const SPELLINGS: [Spelling; 8] = [
    Spelling::Plain,
    Spelling::FirstLetterEncoded,
    Spelling::SegmentEncoded,
    Spelling::TrailingSlash,
    Spelling::DoubleSlash,
    Spelling::UpperCase,
    Spelling::DotSegment,
    Spelling::EncodedSlash,
];

impl Spelling {
    /// The path written this way, or `None` when the path has nothing to write so.
    fn apply(self, path: &str) -> Option<String> {
        let encode_letter =
            |c: char| if c.is_ascii_alphabetic() { format!("%{:02x}", c as u8) } else { c.to_string() };
        let first_segment_end = path[1..].find('/').map_or(path.len(), |i| i + 1);
        match self {
            Spelling::Plain => Some(path.to_string()),
            Spelling::FirstLetterEncoded => {
                let c = path[1..].chars().next().filter(char::is_ascii_alphabetic)?;
                Some(format!("/%{:02X}{}", c as u8, &path[2..]))
            }
            Spelling::SegmentEncoded => {
                let segment: String = path[1..first_segment_end].chars().map(encode_letter).collect();
                Some(format!("/{segment}{}", &path[first_segment_end..]))
            }
            Spelling::TrailingSlash => Some(format!("{path}/")).filter(|_| path != "/"),
            Spelling::DoubleSlash => Some(format!("/{path}")),
            Spelling::UpperCase => Some(path.to_ascii_uppercase()).filter(|p| p != path),
            Spelling::DotSegment => Some(format!("/x/..{path}")),
            Spelling::EncodedSlash => {
                let rest = &path[first_segment_end..];
                rest.starts_with('/').then(|| format!("{}%2F{}", &path[..first_segment_end], &rest[1..]))
            }
        }
    }

    /// Whether the router takes this spelling for the route (it decodes letters, and
    /// nothing else here).
    fn matches(self) -> bool {
        matches!(self, Spelling::Plain | Spelling::FirstLetterEncoded | Spelling::SegmentEncoded)
    }
}

/// Who asks: nobody, or a logged-in user of a role (its session cookie and token).
struct Identity {
    role: Option<Role>,
    cookie: Option<String>,
    csrf: Option<String>,
}

async fn identities(app: &TestApp) -> Vec<Identity> {
    let mut out = vec![Identity { role: None, cookie: None, csrf: None }];
    for role in [Role::Annotator, Role::Reviewer, Role::Engineer, Role::Admin] {
        let name = app.user(role).await;
        let browser = app.browser();
        let response = browser.login(&name, PASSWORD).await;
        let cookie = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("rl_session="))
            .map(|c| c.split(';').next().unwrap().to_string());
        let csrf = browser.csrf().await;
        out.push(Identity { role: Some(role), cookie, csrf: Some(csrf) });
    }
    out
}

/// What a request that changes something must get without its token: refused before
/// anything runs, whatever the spelling. Routes with API keys take no CSRF token: they
/// answer for the key where the router takes the spelling.
fn expected_unsafe(route: &Route, spelling: Spelling) -> u16 {
    match route.access {
        Access::ApiKey if spelling.matches() => 401,
        _ => 403,
    }
}

/// What a GET must get: where the router takes the spelling, the route's own answer for
/// the identity (login for nobody, 403 for a role it does not serve); else 404.
fn check_get(route: &Route, who: &Identity, spelling: Spelling, answer: &Answer) -> Result<(), String> {
    let status = answer.status;
    let ok = if !spelling.matches() {
        status == 404
    } else {
        match (route.access, who.role) {
            (Access::Roles(_), None) if route.path.starts_with("/api/") => status == 401,
            (Access::Roles(_), None) => {
                status == 303 && answer.header("location").is_some_and(|l| l.starts_with("/login"))
            }
            (Access::Roles(roles), Some(role)) if !roles.contains(&role) => status == 403,
            _ => ![401, 403].contains(&status) && status < 500,
        }
    };
    ok.then_some(()).ok_or_else(|| format!("{status}"))
}

#[tokio::test]
async fn every_route_every_identity_and_every_spelling_gets_the_answer_the_rules_demand() {
    let (app, round) = app_with_round().await;
    let who = identities(&app).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in routing::table() {
        // Logging out would end the sessions the rest of the table needs.
        if route.path == "/logout" {
            continue;
        }
        let path = concrete(route.path, round);
        for spelling in SPELLINGS {
            let Some(written) = spelling.apply(&path) else { continue };
            for identity in &who {
                let mut headers = Vec::new();
                if let Some(cookie) = &identity.cookie {
                    headers.push(("Cookie", cookie.as_str()));
                }
                if route.method == "GET" {
                    let answer = raw(&app, "GET", &written, &headers, "").await;
                    if let Err(got) = check_get(&route, identity, spelling, &answer) {
                        failures.push(format!("GET {written} as {:?}: {got}", identity.role));
                    }
                    checked += 1;
                    continue;
                }
                for body in ["name=x", "csrf=forged-token&name=x"] {
                    let answer = raw(&app, route.method, &written, &headers, body).await;
                    let want = expected_unsafe(&route, spelling);
                    if answer.status != want || answer.sets_cookie("rl_session") {
                        failures.push(format!(
                            "{} {written} as {:?} with {body}: {} (want {want})",
                            route.method, identity.role, answer.status
                        ));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked}:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 2000, "{checked}");
    // Methods the table does not have are refused the same way.
    let admin = who.last().unwrap();
    let cookie = [("Cookie", admin.cookie.as_deref().unwrap())];
    for method in ["PUT", "DELETE", "PATCH"] {
        assert_eq!(raw(&app, method, "/admin/users", &cookie, "name=x").await.status, 403, "{method}");
    }
    // With the token, the method is what is wrong.
    let with_token = format!("csrf={}", admin.csrf.as_deref().unwrap());
    let answer = raw(&app, "DELETE", "/admin/users", &cookie, &with_token).await;
    assert_eq!((answer.status, answer.header("allow")), (405, Some("GET, POST")));
    assert_eq!(raw(&app, "GET", "/logout", &cookie, "").await.status, 405, "a POST-only route");
    assert_eq!(raw(&app, "DELETE", "/no-such-page", &cookie, &with_token).await.status, 404);
}

/// The attack of the issue: the login form's check skipped by spelling its path
/// differently. Each spelling without the form's own token is refused, and no session
/// is handed out; with the token the router's spelling logs in, so it is the same route.
#[tokio::test]
async fn the_login_form_is_checked_however_its_path_is_spelt() {
    let app = TestApp::spawn().await;
    let name = app.user(Role::Annotator).await;
    let form = format!("username={name}&password={}", urlencode(PASSWORD));
    for path in [
        "/login",
        "/%6Cogin",
        "/%6cogin",
        "/%6C%6F%67%69%6E",
        "/login/",
        "//login",
        "/LOGIN",
        "/./login",
        "/x/../login",
        "/login;x",
        "/login%00",
    ] {
        let answer = raw(&app, "POST", path, &[], &form).await;
        assert_eq!(answer.status, 403, "{path}");
        assert!(!answer.sets_cookie("rl_session"), "{path}: a session was set");
    }
    // A page of the login form gives a cookie and its token; with both, the encoded
    // spelling is the login route itself.
    let page = reqwest::get(app.url("/login")).await.unwrap();
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("rl_login_csrf="))
        .map(|c| c.split(';').next().unwrap().to_string())
        .unwrap();
    let token = csrf_in(&page.text().await.unwrap()).unwrap();
    let answer = raw(&app, "POST", "/%6Cogin", &[("Cookie", &cookie)], &format!("{form}&csrf={token}")).await;
    assert_eq!(answer.status, 303);
    assert!(answer.sets_cookie("rl_session"));
}

fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).unwrap()[2..].to_string()
}

#[tokio::test]
async fn behind_https_every_cookie_is_secure_and_browsers_are_told_to_keep_to_https() {
    let app = TestApp::spawn_with(|s| s.web.public_url = Some("https://reviews.example.com".into())).await;
    let name = app.user(Role::Annotator).await;
    let login_page = raw(&app, "GET", "/login", &[], "").await;
    let lang = raw(&app, "GET", "/lang/en", &[], "").await;
    let browser = app.browser();
    let logged_in = browser.login(&name, PASSWORD).await;
    let mut cookies: Vec<String> = [&login_page, &lang]
        .iter()
        .flat_map(|a| {
            a.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone())
        })
        .collect();
    cookies.extend(logged_in.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()));
    for name in ["rl_login_csrf=", "rl_lang=", "rl_session=", "rl_device="] {
        assert!(cookies.iter().any(|c| c.starts_with(name)), "{name} set: {cookies:?}");
    }
    for cookie in &cookies {
        assert!(cookie.contains("Secure"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }
    assert!(login_page.header("strict-transport-security").is_some_and(|h| h.contains("max-age=")));
    // Served over plain HTTP (the default): neither.
    let plain = TestApp::spawn().await;
    let page = raw(&plain, "GET", "/login", &[], "").await;
    assert!(page.header("strict-transport-security").is_none());
    let set = page.header("set-cookie").unwrap();
    assert!(!set.contains("Secure"), "{set}");
}

#[tokio::test]
async fn pages_are_never_stored_but_the_static_files_are() {
    let app = TestApp::spawn().await;
    let admin = app.logged_in(Role::Admin).await;
    let csrf = admin.csrf().await;
    let created = admin
        .post_form(
            "/admin/api-keys",
            &pairs(&[("csrf", &csrf), ("name", "shop"), ("requests_per_minute", "60")]),
        )
        .await;
    assert_eq!(created.status(), 200);
    assert_eq!(created.headers()["cache-control"], "no-store", "the page that shows a new key once");
    for path in ["/annotate", "/login", "/qa/audit", "/no-such-page"] {
        let answer = admin.get(path).await;
        assert_eq!(answer.headers()["cache-control"], "no-store", "{path}");
    }
    let css = admin.get("/static/app.css").await;
    assert!(css.headers()["cache-control"].to_str().unwrap().starts_with("public"));
}

/// A database failure while queueing a job is logged, and the page says only that
/// something failed on the server.
#[tokio::test]
async fn a_database_error_while_queueing_a_job_is_not_shown() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", reviewloop::import::Format::Csv, &crate::helpers::fashion_csv(3, 1)).await;
    // The fault: every new job is refused by the database, with a detail no user should see.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_jobs() RETURNS trigger AS $$ BEGIN
             RAISE EXCEPTION 'secret detail of table jobs_internal_42'; END; $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_jobs();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let answer =
        engineer.post_form("/engineer/score", &pairs(&[("csrf", &csrf), ("taxonomy", "fashion")])).await;
    assert_eq!(answer.status(), 500);
    let page = answer.text().await.unwrap();
    assert!(!page.contains("secret detail") && !page.contains("jobs_internal"), "{page}");
    assert!(page.contains("서버 오류"), "{page}");
}

/// A query string or a form that does not parse gets a page in the user's language,
/// never the parser's words.
#[tokio::test]
async fn a_malformed_query_or_form_is_answered_in_the_users_language() {
    let (app, _) = app_with_round().await;
    let engineer = app.logged_in(Role::Engineer).await;
    let csrf = engineer.csrf().await;
    let query = engineer.get("/qa/keywords/1?after_confidence=abc").await;
    let form = engineer
        .post_form("/engineer/rounds", &pairs(&[("csrf", &csrf), ("taxonomy", "fashion"), ("size", "열 개")]))
        .await;
    for answer in [query, form] {
        assert_eq!(answer.status(), 400);
        let page = answer.text().await.unwrap();
        assert!(page.contains("올바르지 않은 것이 있습니다"), "{page}");
        assert!(!page.contains("deserialize") && !page.contains("Parse error"), "{page}");
    }
}
