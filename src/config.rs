//! Settings from flags and environment, each default defined once here beside its
//! setting: clap, `Default` and the pages that show a limit all read the same constant.

use std::path::PathBuf;

use clap::Args;

pub const DEFAULT_DATABASE_URL: &str = "postgres://127.0.0.1:5432/reviewloop";
pub const DATA_DIR: &str = "models";
pub const MAX_TEXT_CHARS: usize = 5000;
pub const MAX_UPLOAD_MB: u64 = 512;
pub const PROMOTION_MARGIN: f64 = 0.05;
pub const STORAGE: &str = "postgres";

/// What every command reads (global flags), plus the web app's own limits, which only
/// `serve` takes as flags (the other commands keep their defaults).
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// PostgreSQL URL; the database is created if missing and migrated at start.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    /// Folder for model versions and other artefacts.
    #[arg(long, env = "REVIEWLOOP_DATA_DIR", default_value = DATA_DIR, global = true)]
    pub data_dir: PathBuf,

    /// Where model versions and bases are stored for every host: `postgres` (the
    /// database itself), or an object store URL (`s3://bucket/prefix`, with the usual
    /// AWS_* variables, or `file:///shared/folder`). The data dir is then each host's
    /// local cache.
    #[arg(long, env = "REVIEWLOOP_STORAGE", default_value = STORAGE, global = true)]
    pub storage: StorageLocation,

    /// Longest review text accepted, in characters.
    #[arg(long, env = "REVIEWLOOP_MAX_TEXT_CHARS", default_value_t = MAX_TEXT_CHARS, global = true)]
    pub max_text_chars: usize,

    /// The web app's settings: `serve`'s flags, set by its handler.
    #[arg(skip = WebSettings::default())]
    pub web: WebSettings,
}

/// The web app's settings and limits (flags of `serve`).
#[derive(Debug, Clone, Args)]
pub struct WebSettings {
    /// Promotion is refused when a keyword's F1 falls by more than this (unless a
    /// reason is given).
    #[arg(long, env = "REVIEWLOOP_PROMOTION_MARGIN", default_value_t = PROMOTION_MARGIN)]
    pub promotion_margin: f64,

    /// Largest file the import page accepts, in MB; a larger upload is refused (413)
    /// as it arrives and nothing of it is kept.
    #[arg(long, env = "REVIEWLOOP_MAX_UPLOAD_MB", default_value_t = MAX_UPLOAD_MB)]
    pub max_upload_mb: u64,

    /// The address users reach the app at (`https://reviews.example.com`). With
    /// `https://`, every cookie is marked Secure and browsers are told to keep to HTTPS
    /// (HSTS).
    #[arg(long, env = "REVIEWLOOP_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Mark cookies Secure and send HSTS even without an `https://` public URL (or
    /// `false` to never do so).
    #[arg(
        long,
        env = "REVIEWLOOP_SECURE_COOKIES",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub secure_cookies: Option<bool>,

    /// Reverse proxies whose `X-Forwarded-For` is believed, as addresses or CIDR blocks
    /// separated by commas (`127.0.0.1,10.0.0.0/8`). Login and API-key throttles count
    /// per client address: behind a proxy that is not listed here, every client shares
    /// the proxy's address. The header is never read from anyone else.
    #[arg(long, env = "REVIEWLOOP_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Password checks at once (argon2 takes a blocking thread and 19 MiB each); more
    /// logins at that moment are answered 429 at once. Default: two per core.
    #[arg(long, env = "REVIEWLOOP_LOGIN_CHECKS")]
    pub login_checks: Option<usize>,

    #[command(flatten)]
    pub serve: ServeLimits,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            promotion_margin: PROMOTION_MARGIN,
            max_upload_mb: MAX_UPLOAD_MB,
            public_url: None,
            secure_cookies: None,
            trusted_proxies: TrustedProxies::default(),
            login_checks: None,
            serve: ServeLimits::default(),
        }
    }
}

impl WebSettings {
    /// Whether cookies are marked Secure (and HSTS sent): as set, or else whenever the
    /// public URL is `https://`.
    pub fn secure(&self) -> bool {
        self.secure_cookies.unwrap_or_else(|| {
            self.public_url.as_deref().is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"))
        })
    }
}

/// Addresses and CIDR blocks of trusted reverse proxies (`--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: &std::net::IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let nets = s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{part}` is not an IP address or a CIDR block (10.0.0.0/8)"))
        });
        nets.collect::<Result<Vec<_>, _>>().map(TrustedProxies)
    }
}

impl Settings {
    pub fn for_database(database_url: &str) -> Self {
        Settings {
            database_url: database_url.to_string(),
            data_dir: PathBuf::from(DATA_DIR),
            storage: StorageLocation::default(),
            max_text_chars: MAX_TEXT_CHARS,
            web: WebSettings::default(),
        }
    }
}

/// Where the files every host reads are stored (`--storage`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StorageLocation {
    /// In PostgreSQL, beside everything else: nothing more to run.
    #[default]
    Postgres,
    /// An object store (`s3://…`, `file:///…`) through the `object_store` crate.
    Objects(String),
}

impl std::str::FromStr for StorageLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.split_once("://") {
            None if s == STORAGE => Ok(StorageLocation::Postgres),
            Some(("s3" | "file" | "gs" | "az" | "memory", rest)) if !rest.is_empty() => {
                Ok(StorageLocation::Objects(s.trim_end_matches('/').to_string()))
            }
            _ => Err(format!("`{s}`: give `postgres`, `s3://bucket/prefix` or `file:///absolute/folder`")),
        }
    }
}

impl std::fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageLocation::Postgres => f.write_str(STORAGE),
            StorageLocation::Objects(url) => f.write_str(url),
        }
    }
}

/// The limits of the analysis API, documented in the OpenAPI description. Work is
/// counted in token-passes (one token through one forward pass; see
/// `analyze::ReviewCost`). Flags of `serve`, prefixed `api-`; each default is the constant beside it,
/// read by clap, by `Default` and so by the OpenAPI document.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimits {
    /// Most reviews in one /api/v1/analyze request.
    #[arg(long = "api-max-reviews", env = "REVIEWLOOP_API_MAX_REVIEWS", default_value_t = MAX_REVIEWS)]
    pub max_reviews: usize,
    /// Most token-passes one request may cost; a costlier one is refused (over_budget).
    #[arg(long = "api-max-cost", env = "REVIEWLOOP_API_MAX_COST", default_value_t = MAX_COST)]
    pub max_cost: u64,
    /// Token-passes of one model step: the model thread's unit of work, shared
    /// round-robin among the waiting requests.
    #[arg(long = "api-step-cost", env = "REVIEWLOOP_API_STEP_COST", default_value_t = STEP_COST)]
    pub step_cost: u64,
    /// How long the idle model thread waits for company before its first step.
    #[arg(
        long = "api-batch-wait-ms",
        env = "REVIEWLOOP_API_BATCH_WAIT_MS",
        default_value_t = BATCH_WAIT_MS,
    )]
    pub batch_wait_ms: u64,
    /// Token-passes waiting or running at once; beyond it requests are answered "overloaded".
    #[arg(long = "api-queue-cost", env = "REVIEWLOOP_API_QUEUE_COST", default_value_t = QUEUE_COST)]
    pub queue_cost: u64,
    /// Requests per minute (of rate::REQUEST_UNIT token-passes each) a user of the
    /// try-it page may send.
    #[arg(long = "try-per-minute", env = "REVIEWLOOP_TRY_PER_MINUTE", default_value_t = TRY_PER_MINUTE)]
    pub try_per_minute: u32,
    /// Taxonomy analysed when a request names none.
    #[arg(long = "api-taxonomy", env = "REVIEWLOOP_API_TAXONOMY", default_value = DEFAULT_TAXONOMY)]
    pub default_taxonomy: String,
    /// How often the serving version is checked for a promotion.
    #[arg(long = "api-refresh-ms", env = "REVIEWLOOP_API_REFRESH_MS", default_value_t = REFRESH_MS)]
    pub refresh_ms: u64,
}

pub const MAX_REVIEWS: usize = 64;
/// About 15 s of the default-size model alone on two cores (some 16,000 token-passes
/// a second): 64 one-sentence reviews with highlights cost about 100,000; one review
/// of 5,000 characters with every word inside its 256 tokens masked about 42,000.
pub const MAX_COST: u64 = 250_000;
/// About a fifth of a second of the default-size model on two cores.
pub const STEP_COST: u64 = 3_072;
pub const BATCH_WAIT_MS: u64 = 2;
pub const QUEUE_COST: u64 = 8 * MAX_COST;
pub const TRY_PER_MINUTE: u32 = 30;
pub const DEFAULT_TAXONOMY: &str = "fashion";
pub const REFRESH_MS: u64 = 2000;

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_reviews: MAX_REVIEWS,
            max_cost: MAX_COST,
            step_cost: STEP_COST,
            batch_wait_ms: BATCH_WAIT_MS,
            queue_cost: QUEUE_COST,
            try_per_minute: TRY_PER_MINUTE,
            default_taxonomy: DEFAULT_TAXONOMY.into(),
            refresh_ms: REFRESH_MS,
        }
    }
}

/// `host:pid`: who a worker is on job pages, and who is writing a version folder.
pub fn this_process() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = if host.trim().is_empty() { "localhost" } else { host.trim() };
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_addresses_or_blocks_and_nothing_else() {
        let trusted: TrustedProxies = "127.0.0.1, 10.0.0.0/8,::1".parse().unwrap();
        for ip in ["127.0.0.1", "10.20.30.40", "::1"] {
            assert!(trusted.contains(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.2", "11.0.0.1", "::2"] {
            assert!(!trusted.contains(&ip.parse().unwrap()), "{ip}");
        }
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn cookies_are_secure_behind_an_https_public_url_unless_told_otherwise() {
        let mut web = WebSettings::default();
        assert!(!web.secure());
        web.public_url = Some("HTTPS://reviews.example.com".into());
        assert!(web.secure());
        web.secure_cookies = Some(false);
        assert!(!web.secure());
        web.public_url = Some("http://10.0.0.5:8080".into());
        web.secure_cookies = None;
        assert!(!web.secure());
        web.secure_cookies = Some(true);
        assert!(web.secure());
    }
}
