//! `reviewloop bench serve --adversary`: can one caller take the analysis API down?
//! One client sends the largest request the server accepts — as many reviews of
//! 4,990 characters as it takes, highlights on — in a loop, beside N clients that send
//! one short review each. Reported: the short reviews' p50/p99 latency (a request that
//! times out counts at the timeout, so p99 is a lower bound then) and the big client's
//! throughput.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::serve::quantile;

/// Characters of each review of the big request: just under the default limit of 5,000.
const LONG_REVIEW: usize = 4990;
/// A short client gives up after this long (the figure is then "at least" this).
const SHORT_TIMEOUT: Duration = Duration::from_secs(30);
/// Review counts tried for the big request, largest first.
const SIZES: [usize; 12] = [64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1];

#[derive(Debug, Clone, serde::Serialize)]
pub struct AdversaryFigures {
    /// Reviews of `LONG_REVIEW` characters in the big request the server accepted.
    pub big_reviews: usize,
    pub big_requests_answered: usize,
    pub big_requests_failed: usize,
    pub big_reviews_per_second: f64,
    pub short_clients: usize,
    pub short_requests: usize,
    pub short_timeouts: usize,
    pub short_errors: usize,
    pub short_p50_ms: f64,
    pub short_p99_ms: f64,
    pub seconds: f64,
}

pub async fn run(
    endpoint: &str,
    key: &str,
    texts: &[String],
    clients: usize,
    seconds: f64,
) -> anyhow::Result<AdversaryFigures> {
    let long = Arc::new(long_review(texts));
    let short: Arc<Vec<String>> = Arc::new(short_reviews(texts));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let big = Arc::new(BigFigures::default());
    {
        let (endpoint, key, long, stop, big) =
            (endpoint.to_string(), key.to_string(), long.clone(), stop.clone(), big.clone());
        actix_web::rt::spawn(async move { big_loop(&endpoint, &key, &long, &stop, &big).await });
    }
    let small: Vec<_> = (0..clients)
        .map(|c| {
            let (endpoint, key, short, stop) =
                (endpoint.to_string(), key.to_string(), short.clone(), stop.clone());
            actix_web::rt::spawn(async move { short_loop(c, &endpoint, &key, &short, &stop).await })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut short_figures = ShortFigures::default();
    for task in small {
        if let Ok(f) = task.await {
            short_figures.add(f);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The big client may be inside a request that never ends: what it finished counts.
    let (size, answered) = (big.size.load(Ordering::Relaxed), big.answered.load(Ordering::Relaxed));
    short_figures.times.sort_by(f64::total_cmp);
    let figures = AdversaryFigures {
        big_reviews: size,
        big_requests_answered: answered,
        big_requests_failed: big.failed.load(Ordering::Relaxed),
        big_reviews_per_second: (answered * size) as f64 / elapsed,
        short_clients: clients,
        short_requests: short_figures.times.len(),
        short_timeouts: short_figures.timeouts,
        short_errors: short_figures.errors,
        short_p50_ms: quantile(&short_figures.times, 0.5),
        short_p99_ms: quantile(&short_figures.times, 0.99),
        seconds: elapsed,
    };
    eprintln!("{figures:?}");
    Ok(figures)
}

/// Reviews of the data joined into one text of `LONG_REVIEW` characters.
fn long_review(texts: &[String]) -> String {
    let mut long = String::new();
    for text in texts.iter().cycle().take(10_000) {
        long.push_str(text);
        long.push(' ');
        if long.chars().count() >= LONG_REVIEW {
            break;
        }
    }
    long.chars().take(LONG_REVIEW).collect::<String>().trim_end().to_string()
}

fn big_body(long: &str, reviews: usize) -> serde_json::Value {
    let reviews: Vec<_> =
        (0..reviews).map(|i| serde_json::json!({"id": format!("big{i}"), "text": long})).collect();
    serde_json::json!({"reviews": reviews, "highlights": true})
}

/// The data's reviews of one sentence (short ones), or all when none are short.
fn short_reviews(texts: &[String]) -> Vec<String> {
    let short: Vec<String> = texts.iter().filter(|t| t.chars().count() <= 80).cloned().collect();
    if short.is_empty() {
        texts.to_vec()
    } else {
        short
    }
}

/// What the big client did, read while it may still be inside a request.
#[derive(Default)]
struct BigFigures {
    /// Reviews in the request last sent: the one the server did not refuse.
    size: AtomicUsize,
    answered: AtomicUsize,
    failed: AtomicUsize,
}

/// Sends the largest request the server accepts until stopped. A refusal (4xx, such
/// as over_budget or batch_too_large) comes at once: the sizes are tried largest first
/// and the first not refused is sent from then on.
async fn big_loop(endpoint: &str, key: &str, long: &str, stop: &AtomicBool, figures: &BigFigures) {
    let http = reqwest::Client::new();
    let mut sizes = SIZES.iter().copied().peekable();
    let mut accepted = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(&size) = sizes.peek() else { break };
        figures.size.store(size, Ordering::Relaxed);
        let sent = http.post(endpoint).bearer_auth(key).json(&big_body(long, size)).send().await;
        match sent {
            Ok(r) if r.status().is_client_error() && !accepted => {
                let answer = r.text().await.unwrap_or_default();
                eprintln!("{size} long reviews refused: {}", answer.chars().take(200).collect::<String>());
                sizes.next();
            }
            Ok(r) => {
                if !accepted {
                    accepted = true;
                    eprintln!("the big request: {size} reviews of {LONG_REVIEW} characters, highlights on");
                }
                let counter = if answered_fully(r).await { &figures.answered } else { &figures.failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                figures.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Default)]
struct ShortFigures {
    times: Vec<f64>,
    timeouts: usize,
    errors: usize,
}

impl ShortFigures {
    fn add(&mut self, other: ShortFigures) {
        self.times.extend(other.times);
        self.timeouts += other.timeouts;
        self.errors += other.errors;
    }
}

/// One short client: one review per request, in turn, until stopped.
async fn short_loop(
    client: usize,
    endpoint: &str,
    key: &str,
    texts: &[String],
    stop: &AtomicBool,
) -> ShortFigures {
    let http = reqwest::Client::new();
    let mut figures = ShortFigures::default();
    let mut i = client * 7919;
    while !stop.load(Ordering::Relaxed) {
        let body = serde_json::json!({"text": texts[i % texts.len()], "highlights": true});
        i += 1;
        let started = Instant::now();
        let sent = http.post(endpoint).bearer_auth(key).json(&body).timeout(SHORT_TIMEOUT).send().await;
        match sent {
            Ok(r) => match answered_fully(r).await {
                true => figures.times.push(started.elapsed().as_secs_f64() * 1000.0),
                false => figures.errors += 1,
            },
            Err(e) if e.is_timeout() => {
                figures.timeouts += 1;
                figures.times.push(SHORT_TIMEOUT.as_secs_f64() * 1000.0);
            }
            Err(_) => figures.errors += 1,
        }
    }
    figures
}

/// A success whose whole body arrived.
async fn answered_fully(response: reqwest::Response) -> bool {
    response.status().is_success() && response.bytes().await.is_ok()
}
