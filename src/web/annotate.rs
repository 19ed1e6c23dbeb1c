//! The annotator's pages: my rounds, the next item, labelling with the keyboard,
//! skip, back and correct.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{AnnotateArea, Authorized, CsrfForm, Nav, Permitted};
use super::i18n::{level_name, Tr};
use super::routing::{route, Route};
use super::{render, render_with, see_other, AppState};
use crate::error::{AppError, AppResult};
use crate::store::assignments::{self, Assignment};
use crate::store::reviews::{self, Review};
use crate::store::rounds;
use crate::store::taxonomies;
use crate::taxonomy::{ResolvedLabels, Taxonomy};
use actix_web::http::StatusCode;

type Annotator = Authorized<AnnotateArea>;

pub const ROUTES: &[Route] = &[
    route!(GET "/annotate", AnnotateArea, index),
    route!(POST "/annotate/rounds/{id}/next", AnnotateArea, next),
    route!(GET "/annotate/rounds/{id}/back", AnnotateArea, back),
    route!(GET "/annotate/items/{id}", AnnotateArea, item),
    route!(POST "/annotate/items/{id}", AnnotateArea, submit),
    route!(POST "/annotate/items/{id}/skip", AnnotateArea, skip),
];

/// Keys for keyword toggles, in keyword order: 1–9, 0, then letters.
const KEYS: &str = "1234567890qwertyuiopasdfghjklzxcvbnm";

#[derive(Template)]
#[template(path = "annotate_index.html")]
struct IndexPage {
    t: &'static Tr,
    nav: Nav,
    rounds: Vec<rounds::OpenRound>,
    finished: Option<i64>,
}

#[derive(Deserialize)]
struct IndexQuery {
    finished: Option<i64>,
}

async fn index(
    user: Annotator,
    state: web::Data<AppState>,
    query: web::Query<IndexQuery>,
) -> AppResult<HttpResponse> {
    let rounds = rounds::open_for(&state.pool, user.user_id()).await?;
    Ok(render(&IndexPage { t: user.tr(), nav: user.nav(), rounds, finished: query.finished }))
}

/// Claims the next item (a POST: claiming changes what others get, so no link from
/// elsewhere can do it) and goes to it.
async fn next(
    request: Permitted<AnnotateArea, web::Form<CsrfForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let round_id = path.into_inner();
    match rounds::access(&state.pool, round_id, request.user.user_id()).await? {
        rounds::Access::NotOpen => return Err(AppError::RoundClosed),
        rounds::Access::NotMember => return Err(AppError::Forbidden),
        rounds::Access::Allowed => {}
    }
    go_to_next(&state, round_id, request.user.user_id()).await
}

/// The annotator's open item in the round (claiming one if needed), or their rounds
/// when the round has nothing left for them.
async fn go_to_next(state: &AppState, round_id: i64, user_id: i64) -> AppResult<HttpResponse> {
    if !matches!(rounds::access(&state.pool, round_id, user_id).await?, rounds::Access::Allowed) {
        return Ok(see_other("/annotate"));
    }
    Ok(match assignments::next(&state.pool, round_id, user_id).await? {
        Some(id) => see_other(&format!("/annotate/items/{id}")),
        None => see_other(&format!("/annotate?finished={round_id}")),
    })
}

#[derive(Deserialize)]
struct BackQuery {
    before: Option<i64>,
}

async fn back(
    user: Annotator,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<BackQuery>,
) -> AppResult<HttpResponse> {
    let round_id = path.into_inner();
    match assignments::previous(&state.pool, round_id, user.user_id(), query.before).await? {
        Some(id) => Ok(see_other(&format!("/annotate/items/{id}"))),
        // Nothing earlier: back to the item asked from, or to the rounds (a GET claims nothing).
        None => Ok(see_other(&query.before.map_or("/annotate".into(), |id| format!("/annotate/items/{id}")))),
    }
}

/// The assignment, if it is this user's: someone else's is forbidden.
async fn own_assignment(state: &AppState, user: &Annotator, id: i64) -> AppResult<Assignment> {
    match assignments::get(&state.pool, id).await? {
        Some(a) if a.annotator_id == user.user_id() => Ok(a),
        Some(_) => Err(AppError::Forbidden),
        None => Err(AppError::NotFound),
    }
}

struct KeywordView {
    id: i64,
    name: String,
    key: String,
    guideline: String,
    selected: bool,
    level: i16,
    /// The level the model suggests, when it suggests this keyword.
    suggested: Option<i16>,
}

/// A suggestion's keywords: name, probability, level, highlighted spans (characters).
type Suggested = Vec<(String, f32, i16, Vec<(usize, usize)>)>;

fn suggested(assignment: &Assignment) -> Suggested {
    let Some(suggestion) = assignment.shown_suggestion() else { return Vec::new() };
    let keywords = suggestion["keywords"].as_array().cloned().unwrap_or_default();
    keywords
        .iter()
        .filter_map(|k| {
            let spans = (k["highlights"].as_array().into_iter().flatten())
                .filter_map(|h| Some((h["start"].as_u64()? as usize, h["end"].as_u64()? as usize)))
                .collect();
            let probability = k["probability"].as_f64()? as f32;
            Some((k["keyword"].as_str()?.to_string(), probability, k["sentiment"].as_i64()? as i16, spans))
        })
        .collect()
}

/// `text` cut at the suggestions' highlighted words (character spans).
fn pieces(text: &str, suggested: &Suggested) -> Vec<TextPiece> {
    let chars: Vec<char> = text.chars().collect();
    let mut owners: Vec<Vec<usize>> = vec![Vec::new(); chars.len()];
    for (k, (_, _, _, spans)) in suggested.iter().enumerate() {
        for &(start, end) in spans {
            for owner in owners.iter_mut().take(end.min(chars.len())).skip(start) {
                owner.push(k);
            }
        }
    }
    let mut pieces: Vec<TextPiece> = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let mut end = at + 1;
        while end < chars.len() && owners[end] == owners[at] {
            end += 1;
        }
        let names: Vec<&str> = owners[at].iter().map(|&k| suggested[k].0.as_str()).collect();
        pieces.push(TextPiece {
            text: chars[at..end].iter().collect(),
            colour: owners[at].first().map(|k| k % COLOURS),
            keywords: names.join(", "),
        });
        at = end;
    }
    pieces
}

struct LevelView {
    value: i16,
    label: String,
}

/// A keyword the model suggests, as the page shows it.
struct SuggestionView {
    name: String,
    probability: f32,
    level_label: String,
    /// 0–5: the colour and underline pattern of its highlighted words.
    colour: usize,
}

/// A piece of the review text: plain, or a word the model weighed for some keywords.
struct TextPiece {
    text: String,
    /// The colour of the first keyword it drove, and all their names.
    colour: Option<usize>,
    keywords: String,
}

/// Colours (with patterns, for colour-blind readers) that highlighted words cycle through.
const COLOURS: usize = 6;

#[derive(Template)]
#[template(path = "annotate_item.html")]
struct ItemPage {
    t: &'static Tr,
    nav: Nav,
    assignment_id: i64,
    round_id: i64,
    review: Review,
    keywords: Vec<KeywordView>,
    levels: Vec<LevelView>,
    /// The model's suggestions (empty when the round or item has none).
    suggestions: Vec<SuggestionView>,
    /// The review text cut at the suggestions' highlighted words.
    pieces: Vec<TextPiece>,
    /// `shown` or `prefilled` when there are suggestions.
    assist: String,
    no_keyword: bool,
    token: String,
    correcting: bool,
    /// Whether the round still takes answers (the form is disabled when not).
    round_open: bool,
    error: Option<&'static str>,
    done: i64,
    required: i64,
    last_hour: i64,
    default_level: i16,
    /// The strategy that picked the review, in the user's language, with its score.
    picked_by: String,
}

async fn item(user: Annotator, state: web::Data<AppState>, path: web::Path<i64>) -> AppResult<HttpResponse> {
    let assignment = own_assignment(&state, &user, path.into_inner()).await?;
    let answer = assignments::current_answer(&state.pool, assignment.id).await?;
    item_page(&state, &user, &assignment, answer.as_ref(), None).await.map(|page| render(&page))
}

async fn item_page(
    state: &AppState,
    user: &Annotator,
    assignment: &Assignment,
    answer: Option<&ResolvedLabels>,
    error: Option<&'static str>,
) -> AppResult<ItemPage> {
    let taxonomy = taxonomies::load(&state.pool, assignment.taxonomy_id).await?;
    let review = reviews::get(&state.pool, assignment.review_id).await?;
    let progress = assignments::progress(&state.pool, assignment.round_id, user.user_id()).await?;
    let default_level = default_level(&taxonomy);
    let suggested = suggested(assignment);
    // Prefilled: the suggestions are the starting answer until one is submitted.
    let prefill = answer.is_none() && assignment.assist == "prefilled";
    let keywords = taxonomy
        .keywords
        .iter()
        .zip(KEYS.chars().map(Some).chain(std::iter::repeat(None)))
        .map(|(k, key)| {
            let chosen = answer.and_then(|a| a.labels.iter().find(|(id, _)| *id == k.id)).map(|c| c.1);
            let suggestion = suggested.iter().find(|s| s.0 == k.name).map(|s| s.2);
            let chosen = chosen.or(suggestion.filter(|_| prefill));
            KeywordView {
                id: k.id,
                name: k.name.clone(),
                key: key.map(String::from).unwrap_or_default(),
                guideline: k.guideline.clone(),
                selected: chosen.is_some(),
                level: chosen.unwrap_or(default_level),
                suggested: suggestion,
            }
        })
        .collect();
    let text = if suggested.is_empty() { review.text.clone() } else { crate::text::normalize(&review.text) };
    let pieces = pieces(&text, &suggested);
    let suggestions = suggested
        .iter()
        .enumerate()
        .map(|(i, (name, probability, level, _))| SuggestionView {
            name: name.clone(),
            probability: *probability,
            level_label: level_name(user.lang, taxonomy.scale_min, taxonomy.scale_max, *level),
            colour: i % COLOURS,
        })
        .collect();
    let levels = taxonomy
        .levels()
        .map(|value| LevelView {
            value,
            label: level_name(user.lang, taxonomy.scale_min, taxonomy.scale_max, value),
        })
        .collect();
    Ok(ItemPage {
        t: user.tr(),
        nav: user.nav(),
        assignment_id: assignment.id,
        round_id: assignment.round_id,
        review,
        keywords,
        levels,
        assist: if suggested.is_empty() { String::new() } else { assignment.assist.clone() },
        suggestions,
        pieces,
        no_keyword: answer.map(|a| a.no_keyword).unwrap_or(false),
        token: uuid::Uuid::new_v4().to_string(),
        correcting: assignment.status == "done",
        round_open: assignment.round_open,
        error: error.or((!assignment.round_open).then_some(user.tr().err_round_closed)),
        done: progress.done,
        required: progress.required,
        last_hour: progress.last_hour,
        default_level,
        picked_by: picked_by(user.tr(), &assignment.strategy, assignment.score),
    })
}

fn picked_by(t: &Tr, strategy: &str, score: Option<f32>) -> String {
    let name = match crate::select::Strategy::parse(strategy) {
        Some(known) => t.strategy(known),
        None if strategy == "proportional" => t.sampling_proportional,
        None => t.strategy_random,
    };
    match score {
        Some(score) if strategy != "random" => format!("{name} ({score:.2})"),
        _ => name.to_string(),
    }
}

/// Neutral where the scale has it, else its lowest level.
fn default_level(taxonomy: &Taxonomy) -> i16 {
    if taxonomy.levels().any(|l| l == 0) {
        0
    } else {
        taxonomy.scale_min
    }
}

/// The form as submitted: `k{id}=on` for each ticked keyword, `s{id}=level`,
/// `no_keyword`, `token` (and `csrf`, checked before parsing).
struct Answer {
    token: Option<uuid::Uuid>,
    no_keyword: bool,
    labels: Vec<(i64, i16)>,
}

impl Answer {
    fn parse(fields: &[(String, String)], taxonomy: &Taxonomy) -> Result<Answer, String> {
        let value = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let mut labels = Vec::new();
        for (name, _) in fields.iter().filter(|(k, _)| k.starts_with('k')) {
            let id: i64 = name[1..].parse().map_err(|_| format!("bad field {name}"))?;
            let keyword = taxonomy.keyword_by_id(id).ok_or_else(|| format!("unknown keyword {id}"))?;
            let level: i16 = value(&format!("s{id}"))
                .ok_or_else(|| format!("no sentiment for {}", keyword.name))?
                .parse()
                .map_err(|_| format!("bad sentiment for {}", keyword.name))?;
            taxonomy.check_level(&keyword.name, level).map_err(|e| e.to_string())?;
            labels.push((id, level));
        }
        labels.sort();
        Ok(Answer {
            token: value("token").and_then(|t| uuid::Uuid::parse_str(t).ok()),
            no_keyword: value("no_keyword").is_some(),
            labels,
        })
    }
}

async fn submit(
    request: Permitted<AnnotateArea, web::Form<Vec<(String, String)>>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let assignment = own_assignment(&state, &user, path.into_inner()).await?;
    // Said first, whatever the form holds (and checked again where the answer is stored).
    if !assignment.round_open {
        return Err(AppError::RoundClosed);
    }
    let taxonomy = taxonomies::load(&state.pool, assignment.taxonomy_id).await?;
    let answer = Answer::parse(&form, &taxonomy).map_err(AppError::BadRequest)?;
    let token = answer.token.ok_or_else(|| AppError::BadRequest("missing submit token".into()))?;
    if assignment.status == "skipped" {
        return Err(AppError::Conflict("this item was skipped and has gone to someone else".into()));
    }
    let problem = match (answer.no_keyword, answer.labels.is_empty()) {
        (true, false) => Some(user.tr().both_chosen),
        (false, true) => Some(user.tr().choose_something),
        _ => None,
    };
    let labels = ResolvedLabels { no_keyword: answer.no_keyword, labels: answer.labels };
    if let Some(message) = problem {
        let page = item_page(&state, &user, &assignment, Some(&labels), Some(message)).await?;
        return Ok(render_with(&page, StatusCode::UNPROCESSABLE_ENTITY));
    }
    // What was done with the suggestions, worked out here from what was shown.
    let assist = assignment.shown_suggestion().map(|suggestion| {
        let chosen: Vec<(String, i16)> = (labels.labels.iter())
            .filter_map(|(id, level)| Some((taxonomy.keyword_by_id(*id)?.name.clone(), *level)))
            .collect();
        crate::rounds::assist::record(
            &assignment.assist,
            assignment.suggestion_version_id,
            suggestion,
            &chosen,
        )
    });
    let revision = taxonomy.guideline_revision;
    let submitted =
        assignments::submit(&state.pool, &assignment, &labels, revision, token, assist.as_ref()).await?;
    if matches!(submitted, assignments::Submitted::RoundClosed) {
        return Err(AppError::RoundClosed);
    }
    go_to_next(&state, assignment.round_id, user.user_id()).await
}

async fn skip(
    request: Permitted<AnnotateArea, web::Form<CsrfForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, .. } = request;
    let assignment = own_assignment(&state, &user, path.into_inner()).await?;
    assignments::skip(&state.pool, &assignment).await?;
    go_to_next(&state, assignment.round_id, user.user_id()).await
}
