//! `POST /api/v1/analyze`: the analysis that replaces the external API, for other
//! systems, behind API keys. Every error is JSON with a stable code; none of them
//! reaches the model thread. `GET /api/v1/openapi.json` describes it, generated from
//! these types.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use super::api_errors::{json_config, ApiError, ErrorBody, ErrorDetail};
use super::routing::{route, Access, Route};
use super::AppState;
use crate::analyze::{Analysis, Ask, Highlights, ReviewCost};
use crate::serve::rate::Admission;
use crate::serve::{ServeError, Served};
use crate::store::api_keys::{self, Caller};

/// Largest request body: 64 reviews of 5,000 Hangul characters (3 bytes each in UTF-8)
/// fit with room for JSON; beyond it the body is not read.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/api/v1/analyze",
        access: Access::ApiKey,
        // route table: the body limit and JSON errors of this resource alone.
        register: |resource| resource.app_data(json_config(BODY_LIMIT)).to(analyze),
    },
    route!(GET "/api/v1/openapi.json", public, openapi),
];

/// One review to analyse.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// Your identifier, echoed back in the result.
    pub id: Option<String>,
    pub text: String,
}

/// Either `text` (one review) or `reviews` (a batch), not both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// One review.
    pub text: Option<String>,
    /// Several reviews, answered in the same order.
    pub reviews: Option<Vec<ReviewInput>>,
    /// Highlighted words per found keyword (default true; they cost one model pass per word).
    #[serde(default = "yes")]
    pub highlights: bool,
    /// How highlights are found: `mask` masks every word (default, the seed's method);
    /// `fast` ranks words by their share of the keyword pass and masks only the best
    /// eight per found keyword.
    #[serde(default)]
    pub highlight_method: Highlights,
    /// The taxonomy whose serving models analyse (default: the server's).
    pub taxonomy: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeResponse {
    pub model: ModelInfo,
    /// What the request cost in token-passes (its bound, charged to the key's limit).
    pub cost: u64,
    pub results: Vec<ReviewResult>,
}

/// The version that answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub taxonomy: String,
    pub version: String,
    pub version_id: i64,
    /// Sentiment levels, lowest first: what each place of a `distribution` means.
    pub levels: Vec<i16>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewResult {
    pub id: Option<String>,
    /// Keywords whose probability reached their threshold.
    pub keywords: Vec<KeywordResult>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeywordResult {
    pub keyword: String,
    pub probability: f32,
    /// The most likely sentiment level.
    pub sentiment: i16,
    /// Probability of each level in `model.levels`.
    pub distribution: Vec<f32>,
    /// Words that drove the keyword, strongest first (empty without highlights).
    pub highlights: Vec<HighlightResult>,
}

/// A word as a span of characters (Unicode scalar values, not bytes) of the text sent,
/// counted in its NFC form (the form keyboards produce; decomposed Hangul is composed
/// before analysis).
#[derive(Debug, Serialize, ToSchema)]
pub struct HighlightResult {
    pub word: String,
    pub start: usize,
    pub end: usize,
    /// How much the keyword's probability falls when the word is masked.
    pub score: f32,
}

/// A caller with a valid key within its rate limit.
pub struct ApiCaller(pub Caller);

impl FromRequest for ApiCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();
            admit(&state, &req).await.map(ApiCaller)
        })
    }
}

/// A request body from a caller with a good key, checked in that order: a request
/// without a good key is refused before its body is read.
pub struct Keyed<T> {
    pub caller: Caller,
    pub input: T,
}

impl<T: FromRequest + 'static> FromRequest for Keyed<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let both = super::auth::guard_then::<ApiCaller, T>(req, payload);
        Box::pin(async move { both.await.map(|(ApiCaller(caller), input)| Keyed { caller, input }) })
    }
}

/// The key from `Authorization: Bearer …` (the scheme in any case, as HTTP has it) or
/// `X-Api-Key`.
fn presented_key(req: &HttpRequest) -> Option<&str> {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let bearer = header("authorization").and_then(|v| {
        let (scheme, key) = v.trim_start().split_once(char::is_whitespace)?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key)
    });
    bearer.or_else(|| header("x-api-key")).map(str::trim)
}

/// A caller with a good key, charged one request's unit before anything else is done
/// for it: a request that is refused later (bad body, over budget, unknown taxonomy)
/// has still cost its key that much, so no key can loop rejected requests for free.
async fn admit(state: &AppState, req: &HttpRequest) -> Result<Caller, ApiError> {
    let key = presented_key(req).ok_or(ApiError::BadKey("send an API key: Authorization: Bearer rl_…"))?;
    // An address sending bad keys in a run is answered without a database query,
    // unless the key is one that authenticated lately.
    let address =
        super::client::throttle_key(super::client::address(req, &state.settings.web.trusted_proxies));
    let hash = crate::store::sessions::hash(key);
    if let Some(wait) = state.bad_keys.waiting(&address).filter(|_| !state.good_keys.contains(&hash)) {
        return Err(ApiError::RateLimited(wait.as_secs().max(1)));
    }
    let Some(caller) = api_keys::authenticate(&state.pool, key).await.map_err(ServeError::from)? else {
        state.bad_keys.failed(&address, super::throttle::BAD_KEYS);
        return Err(ApiError::BadKey("this API key is unknown or revoked"));
    };
    state.good_keys.remember(hash);
    let per_minute = caller.requests_per_minute as u32;
    charged(state, &caller, state.serving.rate.admit(&caller.id, per_minute))?;
    Ok(caller)
}

/// What a charge to the caller's rate limit came to.
fn charged(state: &AppState, caller: &Caller, admission: Admission) -> Result<(), ApiError> {
    match admission {
        Admission::Limited { retry_after } => Err(ApiError::RateLimited(retry_after.as_secs().max(1))),
        Admission::Allowed { record_use } => {
            if record_use {
                let (pool, id) = (state.pool.clone(), caller.id);
                actix_web::rt::spawn(async move { api_keys::touch(&pool, id).await });
            }
            Ok(())
        }
    }
}

/// The reviews of a request, checked against the limits.
fn reviews(
    request: AnalyzeRequest,
    max_reviews: usize,
    max_chars: usize,
) -> Result<Vec<ReviewInput>, ApiError> {
    let reviews = match (request.text, request.reviews) {
        (Some(text), None) => vec![ReviewInput { id: None, text }],
        (None, Some(reviews)) if !reviews.is_empty() => reviews,
        _ => return Err(ApiError::MissingText),
    };
    if reviews.len() > max_reviews {
        return Err(ApiError::BatchTooLarge { count: reviews.len(), limit: max_reviews });
    }
    for (index, review) in reviews.iter().enumerate() {
        let chars = review.text.chars().count();
        if chars > max_chars {
            return Err(ApiError::TextTooLong { index, chars, limit: max_chars });
        }
        if crate::text::normalize(&review.text).trim().is_empty() {
            return Err(ApiError::EmptyText(index));
        }
    }
    Ok(reviews)
}

#[utoipa::path(
    post,
    path = "/api/v1/analyze",
    request_body = AnalyzeRequest,
    responses(
        (status = 200, description = "One result per review, in order", body = AnalyzeResponse),
        (status = 400, description = "invalid_json, unknown_field, missing_text, empty_text, text_too_long, batch_too_large, over_budget", body = ErrorBody),
        (status = 401, description = "bad_key: missing, unknown or revoked key", body = ErrorBody),
        (status = 404, description = "unknown_taxonomy", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody),
        (status = 503, description = "no_model (nothing trained yet) or overloaded (see Retry-After)", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn analyze(
    request: Keyed<web::Json<AnalyzeRequest>>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let Keyed { caller, input } = request;
    let request = input.into_inner();
    let limits = &state.serving.limits;
    let highlights = if request.highlights { request.highlight_method } else { Highlights::None };
    let taxonomy = request.taxonomy.clone().unwrap_or_else(|| limits.default_taxonomy.clone());
    let reviews = reviews(request, limits.max_reviews, state.settings.max_text_chars)?;
    let model = state.serving.registry.get(&taxonomy).await?;
    let texts: Vec<String> = reviews.iter().map(|r| r.text.clone()).collect();
    let costs = state.serving.cost(&model, &texts, Ask::Analysis(highlights)).await?;
    let cost: u64 = costs.iter().map(ReviewCost::total).sum();
    let per_minute = caller.requests_per_minute as u32;
    charged(&state, &caller, state.serving.rate.charge_rest(&caller.id, per_minute, cost))?;
    let analyses = state.serving.batcher.analyze(model.clone(), texts, highlights, costs).await?;
    let ids = reviews.into_iter().map(|r| (leading_space(&r.text), r.id));
    Ok(HttpResponse::Ok().json(respond(&model, cost, ids, analyses)))
}

/// Characters of white space before the text: the analysis sees it trimmed, and its
/// spans are shifted back by this to index the text as sent (in NFC).
fn leading_space(text: &str) -> usize {
    text.chars().take_while(|c| c.is_whitespace()).count()
}

pub fn respond(
    model: &Served,
    cost: u64,
    ids: impl Iterator<Item = (usize, Option<String>)>,
    analyses: Vec<Analysis>,
) -> AnalyzeResponse {
    let results = ids
        .zip(analyses)
        .map(|((offset, id), analysis)| ReviewResult {
            id,
            keywords: analysis
                .keywords
                .into_iter()
                .map(|k| KeywordResult {
                    keyword: k.keyword,
                    probability: k.probability,
                    sentiment: k.sentiment,
                    distribution: k.distribution,
                    highlights: k
                        .highlights
                        .into_iter()
                        .map(|h| HighlightResult {
                            word: h.word,
                            start: h.start + offset,
                            end: h.end + offset,
                            score: h.drop,
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let model = ModelInfo {
        taxonomy: model.taxonomy.clone(),
        version: model.version.clone(),
        version_id: model.version_id,
        levels: model.levels(),
    };
    AnalyzeResponse { model, cost, results }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "reviewloop analysis API", description = "Keywords, sentiment per keyword and highlighted words of Korean product reviews, from the promoted models."),
    paths(analyze),
    components(schemas(AnalyzeRequest, Highlights, ReviewInput, AnalyzeResponse, ModelInfo, ReviewResult, KeywordResult, HighlightResult, ErrorBody, ErrorDetail)),
    modifiers(&KeyScheme)
)]
struct ApiDoc;

struct KeyScheme;

impl utoipa::Modify for KeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key from an admin (rl_…)"))
            .build();
        components.add_security_scheme("api_key", SecurityScheme::Http(bearer));
    }
}

/// The OpenAPI document, with this server's limits written into it.
async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = ApiDoc::openapi();
    let limits = &state.serving.limits;
    let described = format!(
        "{} Limits of this server: at most {} reviews per request, {} characters per review, and {} token-passes per request (over_budget beyond). \
         A review costs T × (1 + M) + K × min(T + 16, L) token-passes, where T is the tokens the model reads of it (at most L = its token limit), \
         M the words masked for highlights (the words inside those tokens; at most 8 per keyword with highlight_method fast; none without highlights) \
         and K the taxonomy's keywords (a sentiment pass for each it could find); `cost` in the answer says what a request cost. \
         Each key has a limit of requests per minute, each request charged its cost, at least {} token-passes.",
        doc.info.description.unwrap_or_default(),
        limits.max_reviews,
        state.settings.max_text_chars,
        limits.max_cost,
        crate::serve::rate::REQUEST_UNIT,
    );
    doc.info.description = Some(described);
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    constrain(&mut doc, limits.max_reviews, state.settings.max_text_chars);
    HttpResponse::Ok().json(doc)
}

/// What the request checks of its shape, in the schema, so a client (or a fuzzer)
/// can tell a valid request from the document alone: exactly one of `text` and
/// `reviews`, texts with something besides white space and within the length limit,
/// between one review and the most a request may carry.
fn constrain(doc: &mut serde_json::Value, max_reviews: usize, max_chars: usize) {
    let text =
        serde_json::json!({"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": "\\S"});
    let schemas = &mut doc["components"]["schemas"];
    schemas["ReviewInput"]["properties"]["text"] = text.clone();
    let request = &mut schemas["AnalyzeRequest"];
    request["properties"]["reviews"]["minItems"] = serde_json::json!(1);
    request["properties"]["reviews"]["maxItems"] = serde_json::json!(max_reviews);
    request["oneOf"] = serde_json::json!([
        {"required": ["text"], "properties": {"text": text, "reviews": {"type": "null"}}},
        {"required": ["reviews"], "properties": {"reviews": {"type": "array"}, "text": {"type": "null"}}},
    ]);
}
