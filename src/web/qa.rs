//! QA reviewers' pages: the per-keyword audit table, a keyword's open suspects with
//! decisions (dismiss, confirm, apply the suggestion; one or in bulk), and its versioned
//! definition.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{Authorized, CsrfForm, Nav, Permitted, ReviewArea};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, see_other, AppState};
use crate::audit::summary::{self, Shown};
use crate::error::{AppError, AppResult};
use crate::store::guidelines::{self, GuidelineVersion};
use crate::store::label_issues::{self, Decision, OpenIssue, SuspectCursor};
use crate::store::taxonomies::TaxonomyChoice;
use crate::store::{adjudication, models};
use crate::taxonomy::{ResolvedLabels, Taxonomy};
use crate::train::compare::judged_report;
use crate::train::metrics::Scores;

type Reviewer = Authorized<ReviewArea>;

pub const ROUTES: &[Route] = &[
    route!(GET "/qa/audit", ReviewArea, audit_page),
    route!(POST "/qa/audit", ReviewArea, launch_audit),
    route!(GET "/qa/keywords/{id}", ReviewArea, keyword_page),
    route!(POST "/qa/keywords/{id}/decide", ReviewArea, decide),
    route!(POST "/qa/keywords/{id}/guideline", ReviewArea, edit_guideline),
    route!(POST "/qa/issues/{id}/fix", ReviewArea, fix),
    route!(GET "/qa/adjudicate", ReviewArea, adjudicate_page),
    route!(POST "/qa/adjudicate/{review}", ReviewArea, adjudicate),
];

/// One keyword's line in the audit table.
struct KeywordRow {
    id: i64,
    name: String,
    labelled: Option<i64>,
    predicted: Option<i64>,
    scores: Option<Scores>,
    kappa: Option<f64>,
    suspects: i64,
}

#[derive(Template)]
#[template(path = "qa_audit.html")]
struct AuditPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomyChoice>,
    taxonomy: TaxonomyChoice,
    rows: Vec<KeywordRow>,
    figures: FiguresState,
    queued: bool,
    /// The latest label-error search for this taxonomy, as reviewers may see it (they
    /// cannot open job pages): its status and, when done, what it found.
    last_audit: Option<String>,
}

/// How current the counted figures are, as the page says it.
struct FiguresState {
    computed_at: Option<String>,
    refreshing: bool,
}

impl FiguresState {
    fn of(shown: &Shown) -> Self {
        let at = shown
            .computed_at
            .map(|at| at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string());
        FiguresState { computed_at: at, refreshing: shown.refreshing }
    }
}

#[derive(Deserialize)]
struct AuditQuery {
    taxonomy: Option<String>,
    sort: Option<String>,
    queued: Option<String>,
}

/// The audit table: counted figures from the taxonomy's summary (`audit::summary`:
/// stored, recounted off the page when labels change), open suspects counted live.
async fn audit_page(
    user: Reviewer,
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> AppResult<HttpResponse> {
    let (taxonomies, summary) = pick_taxonomy(&state, query.taxonomy.as_deref()).await?;
    let taxonomy = crate::store::taxonomies::load(&state.pool, summary.id).await?;
    let shown = figures(&state, &taxonomy).await?;
    let mut rows = keyword_rows(&state, &taxonomy, shown.figures.as_ref()).await?;
    sort_rows(&mut rows, query.sort.as_deref().unwrap_or("suspects"));
    let last_audit = last_audit(&state, user.tr(), &summary.name).await?;
    Ok(render(&AuditPage {
        t: user.tr(),
        nav: user.nav(),
        taxonomies,
        taxonomy: summary,
        rows,
        figures: FiguresState::of(&shown),
        queued: query.queued.is_some(),
        last_audit,
    }))
}

/// The taxonomies to pick from and the one asked for, or else the first with reviews;
/// without counting any (the QA pages stay fast on large taxonomies).
async fn pick_taxonomy(
    state: &AppState,
    name: Option<&str>,
) -> AppResult<(Vec<TaxonomyChoice>, TaxonomyChoice)> {
    let all = crate::store::taxonomies::choices(&state.pool).await?;
    let chosen = match name {
        Some(n) => all.iter().find(|t| t.name == n).ok_or(AppError::NotFound)?,
        None => all.iter().find(|t| t.has_reviews).or(all.first()).ok_or(AppError::NotFound)?,
    };
    let chosen = chosen.clone();
    Ok((all, chosen))
}

/// "Running (40 %)", "Done 12:03: 12 new suspects", "Failed: …" for the latest audit job.
async fn last_audit(state: &AppState, t: &'static Tr, taxonomy: &str) -> AppResult<Option<String>> {
    let Some(job) = crate::store::jobs::latest_for(&state.pool, "audit", taxonomy).await? else {
        return Ok(None);
    };
    let status = t.job_status(&job.status);
    let when = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map(|at| at.with_timezone(&chrono::Local).format("%m-%d %H:%M").to_string()).unwrap_or_default()
    };
    let text = match job.status.as_str() {
        "running" => {
            // The whole audit's share done (a stage's own steps restart at each stage).
            match job.progress["overall"].as_f64() {
                Some(done) => format!("{status} ({:.0} %)", 100.0 * done),
                None => status,
            }
        }
        "succeeded" => {
            let lines = super::job_summary::lines(t, &job);
            let found: Vec<String> =
                lines.iter().skip(1).map(|l| format!("{} {}", l.label, l.value)).collect();
            format!("{status} {} · {}", when(job.finished_at), found.join(" · "))
        }
        "failed" => format!("{status}: {}", job.last_error.unwrap_or_default()),
        _ => status,
    };
    Ok(Some(text))
}

/// The taxonomy's counted figures, as current as `audit::summary` keeps them.
async fn figures(state: &AppState, taxonomy: &Taxonomy) -> AppResult<Shown> {
    let serving = models::current_keyword(&state.pool, taxonomy.id).await?;
    let version_id = serving.as_ref().map(|v| v.id);
    // Asked for only when the figures are counted again.
    let thresholds = async {
        let version = serving.as_ref()?;
        Some(summary::Serving {
            version_id: version.id,
            thresholds: serving_thresholds(state, taxonomy, version).await,
        })
    };
    Ok(state.summaries.shown(&state.pool, taxonomy, version_id, thresholds).await?)
}

async fn keyword_rows(
    state: &AppState,
    taxonomy: &Taxonomy,
    figures: Option<&summary::Figures>,
) -> AppResult<Vec<KeywordRow>> {
    let pool = &state.pool;
    let suspects: HashMap<i64, i64> =
        label_issues::open_counts(pool, taxonomy.id).await?.into_iter().collect();
    let serving = models::current_keyword(pool, taxonomy.id).await?;
    let report = serving.as_ref().and_then(|v| judged_report(&v.metrics));
    let counted = |id: i64| figures.and_then(|f| f.keywords.iter().find(|k| k.keyword_id == id));
    Ok(taxonomy
        .keywords
        .iter()
        .map(|k| KeywordRow {
            id: k.id,
            name: k.name.clone(),
            labelled: counted(k.id).map(|c| c.labelled),
            predicted: counted(k.id).and_then(|c| c.predicted),
            scores: report
                .as_ref()
                .and_then(|r| r.labels.iter().find(|(l, _)| *l == k.name).map(|(_, s)| s.clone())),
            kappa: counted(k.id).and_then(|c| c.kappa),
            suspects: suspects.get(&k.id).copied().unwrap_or(0),
        })
        .collect())
}

/// The serving version's decision thresholds, from the model the API serves (none
/// when it cannot be loaded: predicted counts are then not shown).
async fn serving_thresholds(
    state: &AppState,
    taxonomy: &Taxonomy,
    version: &models::ModelVersion,
) -> Vec<f32> {
    match state.serving.registry.get(&taxonomy.name).await {
        Ok(model) if model.version_id == version.id => model.analyzer.keyword.labels.thresholds.clone(),
        _ => Vec::new(),
    }
}

fn sort_rows(rows: &mut [KeywordRow], by: &str) {
    let f1 = |r: &KeywordRow| r.scores.as_ref().map_or(-1.0, |s| s.f1);
    let labelled = |r: &KeywordRow| r.labelled.unwrap_or(0);
    match by {
        "name" => rows.sort_by(|a, b| a.name.cmp(&b.name)),
        "labelled" => rows.sort_by_key(|r| std::cmp::Reverse(labelled(r))),
        "predicted" => rows.sort_by_key(|r| std::cmp::Reverse(r.predicted.unwrap_or(0) - labelled(r))),
        "f1" => rows.sort_by(|a, b| f1(a).total_cmp(&f1(b))),
        _ => rows.sort_by_key(|r| std::cmp::Reverse(r.suspects)),
    }
}

/// Queues the label-error finder for a worker (one at a time per taxonomy).
async fn launch_audit(
    request: Permitted<ReviewArea, web::Form<super::engineer::TaxonomyForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    super::engineer::taxonomy_id(&state, &form.taxonomy).await?;
    // The fold models in the fast mode on the default base, as the loop trains: minutes.
    let base = crate::bases::default_name(&state.settings.data_dir).ok().flatten();
    let fast = base.as_ref().map(|_| 0);
    let payload = serde_json::json!({"taxonomy": form.taxonomy, "base": base, "fast": fast});
    let mut job = crate::jobs::NewJob::new("audit", payload);
    job.dedup_key = Some(format!("audit:{}", form.taxonomy));
    job.created_by = Some(user.user_id());
    let mut conn = state.pool.acquire().await?;
    match crate::store::jobs::enqueue(&mut conn, &job).await {
        Ok(_) | Err(crate::store::jobs::EnqueueError::Duplicate(_)) => {}
        Err(crate::store::jobs::EnqueueError::Database(e)) => return Err(e.into()),
    }
    Ok(see_other(&format!("/qa/audit?taxonomy={}&queued=1", super::query_value(&form.taxonomy))))
}

/// A suspect as shown: the issue, the current label, the suggestion, and the text in
/// segments (marked or not) by the serving model's reasons.
type SuspectView = (OpenIssue, String, String, Segments);
pub(super) type Segments = Vec<(String, bool)>;

#[derive(Template)]
#[template(path = "qa_keyword.html")]
struct KeywordPage {
    t: &'static Tr,
    nav: Nav,
    keyword_id: i64,
    keyword: String,
    /// The keyword's taxonomy (the audit button runs on it).
    taxonomy: String,
    prefilled_only: bool,
    issues: Vec<SuspectView>,
    issue_count: i64,
    /// This page of suspects is not the first.
    later_suspects: bool,
    next_suspects: Option<String>,
    history: Vec<GuidelineVersion>,
    /// Labels made under an older definition: (review text, revision), a page of them.
    older_labels: Vec<(String, i32)>,
    /// Counted up to `COUNT_CAP`.
    older_count: String,
    later_older: bool,
    next_older: Option<String>,
}

/// Suspects, and labels made under an older definition, shown per page.
const PAGE: i64 = 50;
/// Labels under an older definition are counted up to this many ("1000+" beyond).
const COUNT_CAP: i64 = 1000;

/// A capped count as shown: the number, or the cap and a plus.
fn counted(n: i64) -> String {
    if n > COUNT_CAP {
        format!("{COUNT_CAP}+")
    } else {
        n.to_string()
    }
}

#[derive(Deserialize)]
struct KeywordQuery {
    /// Only suspects among labels made with prefilled suggestions (the labels most
    /// exposed to automation bias).
    prefilled: Option<String>,
    /// The last suspect of the previous page: its confidence and id.
    after_confidence: Option<f32>,
    after_issue: Option<i64>,
    /// The last older label of the previous page (its annotation id).
    after_label: Option<i64>,
}

impl KeywordQuery {
    fn suspects_after(&self) -> Option<SuspectCursor> {
        Some(SuspectCursor { confidence: self.after_confidence?, id: self.after_issue? })
    }

    /// This page's address with one list moved on (the other list stays where it is).
    fn link(&self, keyword_id: i64, suspects: Option<SuspectCursor>, older: Option<i64>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if self.prefilled.is_some() {
            pairs.push(("prefilled", "1".into()));
        }
        if let Some(c) = suspects {
            pairs.push(("after_confidence", c.confidence.to_string()));
            pairs.push(("after_issue", c.id.to_string()));
        }
        if let Some(after) = older {
            pairs.push(("after_label", after.to_string()));
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("/qa/keywords/{keyword_id}{}{query}", if query.is_empty() { "" } else { "?" })
    }
}

/// A keyword's drill-down: its open suspects and the labels made under an older
/// definition, each a page at a time with its count.
async fn keyword_page(
    user: Reviewer,
    state: web::Data<AppState>,
    path: web::Path<i64>,
    query: web::Query<KeywordQuery>,
) -> AppResult<HttpResponse> {
    let keyword_id = path.into_inner();
    let taxonomy = taxonomy_of_keyword(&state, keyword_id).await?;
    let name = |id: i64| taxonomy.keyword_by_id(id).map(|k| k.name.clone()).unwrap_or_default();
    let prefilled_only = query.prefilled.is_some();
    let pool = &state.pool;
    let open = label_issues::open_for_keyword(pool, keyword_id, prefilled_only, query.suspects_after(), PAGE)
        .await?;
    let issue_count = label_issues::count_open_for_keyword(pool, keyword_id, prefilled_only).await?;
    let next_suspects = (open.len() as i64 == PAGE).then(|| {
        let last = open.last().expect("a full page");
        let cursor = SuspectCursor { confidence: last.confidence, id: last.id };
        query.link(keyword_id, Some(cursor), query.after_label)
    });
    let mut marked = highlighted(&state, &taxonomy, keyword_id, &open).await.into_iter();
    let mut issues = Vec::new();
    for issue in open {
        let labels = issue.label_keywords.iter().zip(&issue.label_levels);
        let current: Vec<String> = labels.map(|(k, l)| format!("{}{l:+}", name(*k))).collect();
        let suggestion = match (issue.kind.as_str(), issue.suggested) {
            ("missing", _) => format!("+ {}", name(keyword_id)),
            ("wrong", _) => format!("− {}", name(keyword_id)),
            (_, Some(level)) => format!("{}{level:+}", name(keyword_id)),
            _ => String::new(),
        };
        let segments = marked.next().unwrap_or_else(|| vec![(issue.text.clone(), false)]);
        issues.push((issue, current.join(", "), suggestion, segments));
    }
    let edited = guidelines::edited(pool, keyword_id).await?;
    let older = match edited {
        true => {
            guidelines::labels_under_older_definition(pool, keyword_id, query.after_label.unwrap_or(0), PAGE)
                .await?
        }
        false => Vec::new(),
    };
    let older_count = match edited {
        true => guidelines::count_labels_under_older_definition(pool, keyword_id, COUNT_CAP + 1).await?,
        false => 0,
    };
    let next_older = (older.len() as i64 == PAGE).then(|| {
        let last = older.last().expect("a full page").1;
        query.link(keyword_id, query.suspects_after(), Some(last))
    });
    Ok(render(&KeywordPage {
        t: user.tr(),
        nav: user.nav(),
        keyword_id,
        keyword: name(keyword_id),
        taxonomy: taxonomy.name.clone(),
        prefilled_only,
        issues,
        issue_count,
        later_suspects: query.suspects_after().is_some(),
        next_suspects,
        history: guidelines::history(pool, keyword_id).await?,
        older_count: counted(older_count),
        older_labels: older.into_iter().map(|(_, _, revision, text)| (text, revision)).collect(),
        later_older: query.after_label.is_some(),
        next_older,
    }))
}

/// Suspects highlighted first (those after get plain text).
const HIGHLIGHTED: usize = 20;

/// The first suspects' texts cut into segments, the words the serving model weighs most
/// for this keyword marked; through the API's model thread and its limits (the model
/// stays loaded between pages). Plain text when no model serves, it is busy or fails.
async fn highlighted(
    state: &AppState,
    taxonomy: &Taxonomy,
    keyword_id: i64,
    issues: &[OpenIssue],
) -> Vec<Segments> {
    let serving = &state.serving;
    let Ok(model) = serving.registry.get(&taxonomy.name).await else { return Vec::new() };
    let Some(name) = taxonomy.keyword_by_id(keyword_id).map(|k| k.name.as_str()) else { return Vec::new() };
    let Some(k) = model.analyzer.keyword.labels.keywords.iter().position(|n| n == name) else {
        return Vec::new();
    };
    let texts: Vec<String> =
        issues.iter().take(HIGHLIGHTED).map(|i| crate::text::normalize(&i.text)).collect();
    let explained = match serving.cost(&model, &texts, crate::analyze::Ask::Explain(k)).await {
        Ok(costs) => serving.batcher.explain(model, texts.clone(), k, costs).await,
        Err(e) => Err(e),
    };
    match explained {
        Ok(highlights) => texts.iter().zip(highlights).map(|(t, h)| segments(t, &h)).collect(),
        Err(e) => {
            tracing::warn!("highlights unavailable: {e}");
            Vec::new()
        }
    }
}

/// `text` cut at the highlights' character spans.
pub(super) fn segments(text: &str, highlights: &[crate::analyze::Highlight]) -> Segments {
    let chars: Vec<char> = text.chars().collect();
    let mut spans: Vec<(usize, usize)> =
        highlights.iter().map(|h| (h.start, h.end.min(chars.len()))).collect();
    spans.sort();
    let (mut out, mut at) = (Vec::new(), 0);
    for (start, end) in spans.into_iter().filter(|(s, e)| s < e) {
        if start < at {
            continue;
        }
        if start > at {
            out.push((chars[at..start].iter().collect(), false));
        }
        out.push((chars[start..end].iter().collect(), true));
        at = end;
    }
    if at < chars.len() {
        out.push((chars[at..].iter().collect(), false));
    }
    out
}

async fn taxonomy_of_keyword(state: &AppState, keyword_id: i64) -> AppResult<Taxonomy> {
    let taxonomy_id = crate::store::taxonomies::of_keyword(&state.pool, keyword_id).await?;
    Ok(crate::store::taxonomies::load(&state.pool, taxonomy_id.ok_or(AppError::NotFound)?).await?)
}

/// `csrf`, `decision` (dismiss | confirm) and one `issue_<id>` field per ticked box:
/// a form of checkboxes, read as a map.
async fn decide(
    request: Permitted<ReviewArea, web::Form<HashMap<String, String>>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let decision = match form.get("decision").map(String::as_str) {
        Some("dismiss") => Decision::Dismissed,
        Some("confirm") => Decision::Confirmed,
        _ => return Err(AppError::BadRequest("decision is dismiss or confirm".into())),
    };
    let ids: Vec<i64> = form.keys().filter_map(|k| k.strip_prefix("issue_")?.parse().ok()).collect();
    label_issues::decide(&state.pool, &ids, decision, Some(user.user_id())).await?;
    Ok(see_other(&format!("/qa/keywords/{}", path.into_inner())))
}

/// Applies the model's suggestion: adds the missing keyword (at the scale's neutral
/// level), removes a wrong one, or sets the suggested level.
async fn fix(
    request: Permitted<ReviewArea, web::Form<CsrfForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, .. } = request;
    let issue_id = path.into_inner();
    let (keyword, kind, suggested, mut labels) =
        label_issues::with_label(&state.pool, issue_id).await?.ok_or(AppError::NotFound)?;
    let taxonomy = taxonomy_of_keyword(&state, keyword).await?;
    labels.retain(|(k, _)| *k != keyword);
    match kind.as_str() {
        "wrong" => {}
        "missing" => labels.push((keyword, 0i16.clamp(taxonomy.scale_min, taxonomy.scale_max))),
        _ => labels.push((keyword, suggested.ok_or(AppError::NotFound)?)),
    }
    let resolved = ResolvedLabels { no_keyword: labels.is_empty(), labels };
    label_issues::fix(&state.pool, issue_id, user.user_id(), &resolved).await?;
    Ok(see_other(&format!("/qa/keywords/{keyword}")))
}

#[derive(Deserialize)]
struct GuidelineForm {
    body: String,
}

async fn edit_guideline(
    request: Permitted<ReviewArea, web::Form<GuidelineForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let keyword_id = path.into_inner();
    taxonomy_of_keyword(&state, keyword_id).await?;
    guidelines::edit(&state.pool, keyword_id, &form.body, Some(user.user_id()))
        .await
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    Ok(see_other(&format!("/qa/keywords/{keyword_id}")))
}

/// One annotator's answer in a disagreement: (annotation id, username, labels).
type Answer = (i64, String, String);

#[derive(Template)]
#[template(path = "qa_adjudicate.html")]
struct AdjudicatePage {
    t: &'static Tr,
    nav: Nav,
    taxonomy: TaxonomyChoice,
    disagreements: Vec<(i64, String, Vec<Answer>)>,
    total: i64,
    later: bool,
    next: Option<String>,
    annotators: Vec<adjudication::AnnotatorStats>,
    figures: FiguresState,
}

#[derive(Deserialize)]
struct AdjudicateQuery {
    taxonomy: Option<String>,
    /// The last review of the previous page.
    after: Option<i64>,
}

/// Unsettled disagreements a page at a time (oldest review first), and each
/// annotator's figures from the taxonomy's summary.
async fn adjudicate_page(
    user: Reviewer,
    state: web::Data<AppState>,
    query: web::Query<AdjudicateQuery>,
) -> AppResult<HttpResponse> {
    let (_, summary) = pick_taxonomy(&state, query.taxonomy.as_deref()).await?;
    let taxonomy = crate::store::taxonomies::load(&state.pool, summary.id).await?;
    let page =
        adjudication::multiply_answered(&state.pool, taxonomy.id, true, query.after.unwrap_or(0), PAGE)
            .await?;
    let annotator_ids: Vec<i64> =
        page.iter().flat_map(|d| d.answers.iter().filter_map(|a| a.annotator_id)).collect();
    let names = crate::store::users::names_of(&state.pool, &annotator_ids).await?;
    let describe = |labels: &ResolvedLabels| -> String {
        if labels.no_keyword {
            return user.tr().no_keyword.to_string();
        }
        let named = labels
            .labels
            .iter()
            .filter_map(|(k, l)| Some(format!("{}{l:+}", taxonomy.keyword_by_id(*k)?.name)));
        named.collect::<Vec<_>>().join(", ")
    };
    let next = (page.len() as i64 == PAGE).then(|| {
        let last = page.last().expect("a full page").review_id;
        format!("/qa/adjudicate?taxonomy={}&after={last}", super::query_value(&taxonomy.name))
    });
    let disagreements = page
        .into_iter()
        .map(|d| {
            let answers = d
                .answers
                .iter()
                .map(|a| {
                    let who = a.annotator_id.and_then(|id| names.get(&id).cloned()).unwrap_or_default();
                    (a.id, who, describe(&a.labels))
                })
                .collect();
            (d.review_id, d.text, answers)
        })
        .collect();
    let shown = figures(&state, &taxonomy).await?;
    Ok(render(&AdjudicatePage {
        t: user.tr(),
        nav: user.nav(),
        taxonomy: summary,
        disagreements,
        total: adjudication::count_disagreements(&state.pool, taxonomy.id).await?,
        later: query.after.is_some(),
        next,
        figures: FiguresState::of(&shown),
        annotators: shown.figures.map(|f| f.annotators).unwrap_or_default(),
    }))
}

#[derive(Deserialize)]
struct AdoptForm {
    taxonomy: String,
    annotation: i64,
}

/// Adopts one annotator's answer as the gold label.
async fn adjudicate(
    request: Permitted<ReviewArea, web::Form<AdoptForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    adjudication::adjudicate(&state.pool, path.into_inner(), form.annotation, user.user_id())
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(see_other(&format!("/qa/adjudicate?taxonomy={}", super::query_value(&form.taxonomy))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, labelled: i64, predicted: i64, suspects: i64) -> KeywordRow {
        KeywordRow {
            id: 0,
            name: name.into(),
            labelled: Some(labelled),
            predicted: Some(predicted),
            scores: None,
            kappa: None,
            suspects,
        }
    }

    #[test]
    fn segments_mark_highlighted_words_by_character() {
        let h = |start, end| crate::analyze::Highlight { word: String::new(), start, end, drop: 0.5 };
        let cut = segments("옷은 예쁘지만 배송은 늦어요 🙂", &[h(8, 11), h(3, 7)]);
        let marked: Vec<&str> = cut.iter().filter(|s| s.1).map(|s| s.0.as_str()).collect();
        assert_eq!(marked, ["예쁘지만", "배송은"]);
        assert_eq!(cut.iter().map(|s| s.0.as_str()).collect::<String>(), "옷은 예쁘지만 배송은 늦어요 🙂");
        assert_eq!(segments("그냥", &[]), vec![("그냥".to_string(), false)]);
    }

    #[test]
    fn over_prediction_sorts_first_when_asked() {
        let mut rows = vec![row("배송", 50, 55, 1), row("신축성", 20, 160, 0), row("색상", 30, 30, 4)];
        sort_rows(&mut rows, "predicted");
        assert_eq!(rows[0].name, "신축성", "the seed's case: predicted far more often than labelled");
        sort_rows(&mut rows, "suspects");
        assert_eq!(rows[0].name, "색상");
    }
}
