//! The app's route table. Every route is one [`Route`]: its method, path, who may use
//! it, and what its resource serves; the router is built from the table and nothing
//! else (a unit test below refuses a route registered any other way). Building it wraps
//! each route's resource in the CSRF rule of its access (`csrf`), and the role, CSRF and
//! security tests (`tests/api/roles.rs`, `csrf.rs`, `security.rs`) walk the same table,
//! so a route added without a rule fails them.

use actix_web::{guard, http::Method, web, Resource};

use crate::store::users::Role;

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (login, the language switch, health).
    Public,
    /// A logged-in user of one of these roles.
    Roles(&'static [Role]),
    /// A caller with an API key (`Authorization: Bearer …`).
    ApiKey,
}

#[derive(Clone, Copy)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The actix pattern; `{…}` segments are ids.
    pub path: &'static str,
    pub access: Access,
    /// What the route's resource serves (its handler, and any data of its own).
    pub register: fn(Resource) -> Resource,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

/// A route of the table: `route!(GET "/path", access, handler)`, where access is
/// `public`, `api_key` or an area type of `auth` (its roles).
macro_rules! route {
    (@access public) => { $crate::web::routing::Access::Public };
    (@access api_key) => { $crate::web::routing::Access::ApiKey };
    (@access $area:ident) => {
        $crate::web::routing::Access::Roles(<$crate::web::auth::$area as $crate::web::auth::Area>::ROLES)
    };
    ($method:ident $path:literal, $access:tt, $handler:expr) => {
        $crate::web::routing::Route {
            method: stringify!($method),
            path: $path,
            access: route!(@access $access),
            register: |resource| resource.to($handler),
        }
    };
}
pub(crate) use route;

/// The methods the table has for a path (as the router decoded it): a path with no
/// route of the request's method is answered 405 with these, not 404.
pub fn methods_of(path: &str) -> Vec<&'static str> {
    static PATTERNS: std::sync::OnceLock<Vec<(actix_web::dev::ResourceDef, &'static str)>> =
        std::sync::OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        table().into_iter().map(|r| (actix_web::dev::ResourceDef::new(r.path), r.method)).collect()
    });
    let mut methods: Vec<&'static str> =
        patterns.iter().filter(|(def, _)| def.is_match(path)).map(|(_, method)| *method).collect();
    methods.dedup();
    methods
}

/// Registers every route of the table: a resource per route, answering only its
/// method (another method falls through to the next route, or to `csrf::unmatched`),
/// wrapped in the CSRF rule of its access.
pub fn register(cfg: &mut web::ServiceConfig) {
    for route in table() {
        let method =
            Method::from_bytes(route.method.as_bytes()).expect("the table's methods are GET and POST");
        let resource = (route.register)(web::resource(route.path).guard(guard::Method(method)));
        cfg.service(super::csrf::wrap(super::csrf::Rule::of(route.access), resource));
    }
}

/// Every route of the app.
pub fn table() -> Vec<Route> {
    use super::*;
    [
        super::ROUTES,
        annotate::ROUTES,
        engineer::ROUTES,
        round_page::ROUTES,
        training::ROUTES,
        loop_page::ROUTES,
        versions::ROUTES,
        simulations::ROUTES,
        qa::ROUTES,
        admin::ROUTES,
        api_keys::ROUTES,
        try_it::ROUTES,
        api::ROUTES,
        analyze_api::ROUTES,
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_registered_only_through_the_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let source = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let lines: Vec<&str> = source.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let registers = line.contains(".route(")
                    || line.contains("web::resource(")
                    || line.contains(".service(")
                    || line.contains("register: |");
                // A registration of its own says why just before it.
                let explained = lines[n.saturating_sub(5)..n].iter().any(|l| l.contains("// route table:"));
                let allowed = name == "routing.rs" || explained;
                assert!(!registers || allowed, "{name}:{}: register routes with route!: {line}", n + 1);
            }
        }
    }

    #[test]
    fn each_method_and_path_is_in_the_table_once() {
        let mut seen = std::collections::HashSet::new();
        for route in table() {
            assert!(seen.insert((route.method, route.path)), "{route:?} twice");
            assert!(route.path.starts_with('/'));
            assert!(["GET", "POST"].contains(&route.method));
        }
        assert!(seen.len() > 40);
    }

    /// Public routes that change something are checked as login forms (`csrf::Rule::of`).
    #[test]
    fn the_login_form_is_the_only_public_route_that_changes_something() {
        let public_posts: Vec<&str> = table()
            .into_iter()
            .filter(|r| r.method != "GET" && r.access == Access::Public)
            .map(|r| r.path)
            .collect();
        assert_eq!(public_posts, ["/login"]);
    }
}
