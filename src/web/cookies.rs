//! Every cookie the app sets, built in one place so that each is `Secure` when the app
//! is served over HTTPS (`WebSettings::secure`) and none is forgotten. None is read by
//! scripts, so all are `HttpOnly`.

use actix_web::cookie::{time::Duration, Cookie, SameSite};

/// Who may read a cookie and where it goes.
pub struct CookieSpec {
    pub name: &'static str,
    pub path: &'static str,
    pub same_site: SameSite,
    /// `None`: for the browser session only.
    pub max_age: Option<Duration>,
}

impl CookieSpec {
    pub fn build(&self, value: String, secure: bool) -> Cookie<'static> {
        let mut cookie = Cookie::build(self.name, value)
            .path(self.path)
            .http_only(true)
            .same_site(self.same_site)
            .secure(secure)
            .finish();
        if let Some(age) = self.max_age {
            cookie.set_max_age(age);
        }
        cookie
    }

    /// The cookie's removal (same name, path and flags, expired).
    pub fn removal(&self, secure: bool) -> Cookie<'static> {
        let mut cookie = self.build(String::new(), secure);
        cookie.make_removal();
        cookie
    }
}

pub const SESSION: CookieSpec = CookieSpec {
    name: super::auth::SESSION_COOKIE,
    path: "/",
    same_site: SameSite::Lax,
    max_age: Some(Duration::days(crate::store::sessions::SESSION_DAYS)),
};

/// The login form's double-submit token.
pub const LOGIN_CSRF: CookieSpec = CookieSpec {
    name: super::login::LOGIN_CSRF_COOKIE,
    path: "/login",
    same_site: SameSite::Strict,
    max_age: None,
};

/// A device that logged in before: read only by the login form.
pub const DEVICE: CookieSpec = CookieSpec {
    name: "rl_device",
    path: "/login",
    same_site: SameSite::Strict,
    max_age: Some(Duration::days(crate::store::devices::DEVICE_DAYS)),
};

pub const LANG: CookieSpec = CookieSpec {
    name: super::i18n::LANG_COOKIE,
    path: "/",
    same_site: SameSite::Lax,
    max_age: Some(Duration::days(365)),
};
