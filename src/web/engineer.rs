//! The engineer's pages: the overview, rounds, and the import upload.

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;

use super::auth::{Authorized, CsrfForm, EngineerArea, Nav, Permitted};
use super::form_fields::{blank_as_none, blank_as_zero};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{render, render_with, see_other, AppState};
use crate::error::{AppError, AppResult};
use crate::import::{Format, ImportSummary};
use crate::rounds::{Assist, GroupBy, RoundSpec, Sampling};
use crate::select::{Quota, Strategy};
use crate::store::annotations::{self, LabelStats};
use crate::store::rounds::{self, RoundProgress};
use crate::store::taxonomies::{self, TaxonomySummary};
use actix_web::http::StatusCode;

/// An engineer (or admin) who passed the role check.
pub type Engineer = Authorized<EngineerArea>;

pub const ROUTES: &[Route] = &[
    route!(GET "/engineer", EngineerArea, overview),
    route!(GET "/engineer/rounds", EngineerArea, rounds_page),
    route!(POST "/engineer/rounds", EngineerArea, create_round),
    route!(POST "/engineer/rounds/{id}/close", EngineerArea, close_round),
    route!(GET "/engineer/import", EngineerArea, import_page),
    route!(POST "/engineer/import", EngineerArea, upload),
];

#[derive(Deserialize)]
pub struct TaxonomyQuery {
    pub taxonomy: Option<String>,
}

/// A button's form that names a taxonomy.
#[derive(Deserialize)]
pub struct TaxonomyForm {
    pub taxonomy: String,
}

/// The id of a taxonomy named in a request; 404 when there is none.
pub async fn taxonomy_id(state: &AppState, name: &str) -> AppResult<i64> {
    taxonomies::find_id(&state.pool, name).await?.ok_or(AppError::NotFound)
}

/// The named taxonomy, or the first one holding reviews.
pub async fn pick_taxonomy(
    state: &AppState,
    name: Option<&str>,
) -> AppResult<(Vec<TaxonomySummary>, TaxonomySummary)> {
    let all = taxonomies::list(&state.pool).await?;
    let chosen = match name {
        Some(n) => all.iter().find(|t| t.name == n).ok_or(AppError::NotFound)?,
        None => all.iter().find(|t| t.reviews > 0).or(all.first()).ok_or(AppError::NotFound)?,
    };
    let chosen = chosen.clone();
    Ok((all, chosen))
}

#[derive(Template)]
#[template(path = "engineer_overview.html")]
struct OverviewPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    taxonomy: TaxonomySummary,
    stats: LabelStats,
    max_count: i64,
    rounds: Vec<RoundProgress>,
}

async fn overview(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<TaxonomyQuery>,
) -> AppResult<HttpResponse> {
    let (taxonomies, taxonomy) = pick_taxonomy(&state, query.taxonomy.as_deref()).await?;
    let stats = annotations::label_stats(&state.pool, taxonomy.id).await?;
    let max_count = stats.per_keyword.iter().map(|k| k.1).max().unwrap_or(0).max(1);
    let rounds =
        rounds::list(&state.pool).await?.into_iter().filter(|r| r.taxonomy_id == taxonomy.id).collect();
    Ok(render(&OverviewPage {
        t: user.tr(),
        nav: user.nav(),
        taxonomies,
        taxonomy,
        stats,
        max_count,
        rounds,
    }))
}

#[derive(Template)]
#[template(path = "engineer_rounds.html")]
struct RoundsPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    rounds: Vec<RoundProgress>,
    error: Option<String>,
    created: Option<String>,
    /// The measured order of compositions, in the form's names.
    advice: String,
}

async fn rounds_page(user: Engineer, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    rounds_response(&user, &state, None, None).await
}

async fn rounds_response(
    user: &Engineer,
    state: &AppState,
    error: Option<String>,
    created: Option<String>,
) -> AppResult<HttpResponse> {
    let taxonomies = taxonomies::list(&state.pool).await?;
    let rounds = rounds::list(&state.pool).await?;
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let t = user.tr();
    let page =
        RoundsPage { t, nav: user.nav(), taxonomies, rounds, error, created, advice: quotas_advice(t) };
    Ok(render_with(&page, status))
}

/// The order `simulate` measured best ([`crate::simulate::MIXED`], its one source), in
/// the quota labels of the form it advises: "first round: random → next round: A 100%
/// → every round after: B 30% + C 70%".
fn quotas_advice(t: &Tr) -> String {
    let stages = crate::simulate::mixed_stages();
    let mut steps = vec![format!("{}: {}", t.advice_first_round, t.strategy_random)];
    for (i, stage) in stages.iter().enumerate() {
        let total: f64 = stage.iter().map(|q| q.weight).sum();
        let shares: Vec<String> = stage
            .iter()
            .map(|q| format!("{} {:.0}%", t.strategy(q.strategy), 100.0 * q.weight / total))
            .collect();
        let when = if i + 1 == stages.len() { t.advice_later_rounds } else { t.advice_next_round };
        steps.push(format!("{when}: {}", shares.join(" + ")));
    }
    format!("{}: {}.", t.quotas_advice, steps.join(" → "))
}

#[derive(Deserialize)]
struct RoundForm {
    taxonomy: String,
    name: String,
    size: usize,
    sampling: String,
    group_by: String,
    #[serde(default, deserialize_with = "blank_as_zero")]
    double_share_percent: f64,
    #[serde(default)]
    annotators: String,
    #[serde(default, deserialize_with = "blank_as_none")]
    seed: Option<u64>,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_keyword_boundary: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_sentiment_uncertainty: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_rare_tokens: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_cluster_outliers: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_class_balance: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_keyword_quota: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_keyword_neighbours: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_keyword_anchors: f64,
    #[serde(default, deserialize_with = "blank_as_zero")]
    quota_random: f64,
    #[serde(default)]
    assist: String,
    #[serde(default)]
    assist_doubled: Option<String>,
    #[serde(default)]
    diverse: Option<String>,
}

impl RoundForm {
    fn quotas(&self) -> Vec<Quota> {
        [
            (Strategy::KeywordBoundary, self.quota_keyword_boundary),
            (Strategy::SentimentUncertainty, self.quota_sentiment_uncertainty),
            (Strategy::RareTokens, self.quota_rare_tokens),
            (Strategy::ClusterOutliers, self.quota_cluster_outliers),
            (Strategy::ClassBalance, self.quota_class_balance),
            (Strategy::KeywordQuota, self.quota_keyword_quota),
            (Strategy::KeywordNeighbours, self.quota_keyword_neighbours),
            (Strategy::KeywordAnchors, self.quota_keyword_anchors),
            (Strategy::Random, self.quota_random),
        ]
        .into_iter()
        .filter(|(_, w)| w.is_finite() && *w > 0.0)
        .map(|(strategy, weight)| Quota { strategy, weight })
        .collect()
    }
}

async fn create_round(
    request: Permitted<EngineerArea, web::Form<RoundForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = taxonomies::find_id(&state.pool, &form.taxonomy).await?.ok_or(AppError::NotFound)?;
    let sampling = match form.sampling.as_str() {
        "proportional" => Sampling::Proportional,
        _ => Sampling::Random,
    };
    let group_by = match form.group_by.as_str() {
        "mall" => GroupBy::Mall,
        "category" => GroupBy::Category,
        _ => GroupBy::MallCategory,
    };
    let spec = RoundSpec {
        name: form.name.trim().to_string(),
        size: form.size,
        sampling,
        group_by,
        double_share: (form.double_share_percent / 100.0).clamp(0.0, 1.0),
        seed: form.seed.unwrap_or_else(rand::random),
        members: form
            .annotators
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        quotas: form.quotas(),
        assist: Assist::parse(&form.assist).unwrap_or_default(),
        assist_doubled: form.assist_doubled.is_some(),
        diverse: form.diverse.is_some(),
        cycle: None,
    };
    match crate::rounds::create(&state.pool, taxonomy, &spec, Some(user.user_id())).await {
        Ok(round) => {
            let t = user.tr();
            let mut message =
                format!("#{} {} ({} {}, 2× {})", round.id, spec.name, round.items, t.items, round.doubled);
            if round.items < spec.size {
                // Never silently smaller: the pool had only so many reviews to give.
                let fewer = t
                    .round_smaller
                    .replace("{asked}", &spec.size.to_string())
                    .replace("{made}", &round.items.to_string());
                message = format!("{message} — {fewer}");
            }
            rounds_response(&user, &state, None, Some(message)).await
        }
        Err(crate::rounds::RoundError::Database(e)) => Err(e.into()),
        Err(e) => rounds_response(&user, &state, Some(round_refusal(user.tr(), &e)), None).await,
    }
}

/// Why no round was made, in the user's language.
fn round_refusal(t: &Tr, e: &crate::rounds::RoundError) -> String {
    use crate::rounds::RoundError;
    match e {
        RoundError::Empty => t.round_empty.to_string(),
        RoundError::PoolEmpty => t.round_pool_empty.to_string(),
        RoundError::UnknownMember(name) => t.round_unknown_member.replace("{name}", name),
        RoundError::Database(_) => t.err_internal.to_string(),
    }
}

async fn close_round(
    request: Permitted<EngineerArea, web::Form<CsrfForm>>,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> AppResult<HttpResponse> {
    let Permitted { user, .. } = request;
    rounds::close(&state.pool, path.into_inner(), Some(user.user_id())).await?;
    Ok(see_other("/engineer/rounds"))
}

#[derive(Template)]
#[template(path = "engineer_import.html")]
struct ImportPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    summary: Option<ImportSummary>,
    error: Option<String>,
}

async fn import_page(user: Engineer, state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let taxonomies = taxonomies::list(&state.pool).await?;
    Ok(render(&ImportPage { t: user.tr(), nav: user.nav(), taxonomies, summary: None, error: None }))
}

/// The upload's text fields and the file, streamed with async writes into the data
/// dir's `uploads/` (never held in memory) and refused past the size limit. The file
/// is removed when this is dropped, unless an import job has taken it.
struct Upload {
    fields: Vec<(String, String)>,
    file: Option<(UploadedFile, String)>,
}

impl Upload {
    fn field(&self, name: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// An uploaded file in `uploads/`, removed on drop unless kept.
struct UploadedFile {
    name: crate::names::SafeName,
    path: Option<tempfile::TempPath>,
}

impl UploadedFile {
    /// Leaves the file on disk (the import job owns it from then on).
    fn keep(&mut self) -> AppResult<()> {
        if let Some(path) = self.path.take() {
            path.keep().map_err(|e| anyhow::Error::from(e.error))?;
        }
        Ok(())
    }
}

async fn read_upload(mut payload: Multipart, data_dir: &std::path::Path, limit: u64) -> AppResult<Upload> {
    let mut upload = Upload { fields: Vec::new(), file: None };
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| AppError::BadRequest(format!("bad upload: {e}")))?;
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.content_disposition().and_then(|d| d.get_filename()).map(str::to_string);
        if let Some(filename) = filename {
            let file = save(&mut field, data_dir, limit).await?;
            upload.file = Some((file, filename));
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.next().await {
                value
                    .extend_from_slice(&chunk.map_err(|e| AppError::BadRequest(format!("bad upload: {e}")))?);
                if value.len() > 4096 {
                    return Err(AppError::BadRequest(format!("field {name} is too long")));
                }
            }
            upload.fields.push((name, String::from_utf8_lossy(&value).to_string()));
        }
    }
    Ok(upload)
}

/// Streams one file field into `uploads/` under a fresh name.
async fn save(
    field: &mut actix_multipart::Field,
    data_dir: &std::path::Path,
    limit: u64,
) -> AppResult<UploadedFile> {
    use tokio::io::AsyncWriteExt;
    let dir = crate::jobs::import_job::uploads_dir(data_dir);
    tokio::fs::create_dir_all(&dir).await.map_err(anyhow::Error::from)?;
    let temp = tempfile::Builder::new().prefix("upload-").tempfile_in(&dir).map_err(anyhow::Error::from)?;
    let (file, path) = temp.into_parts();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let name = crate::names::SafeName::parse(name).map_err(anyhow::Error::from)?;
    let saved = UploadedFile { name, path: Some(path) };
    let mut file = tokio::fs::File::from_std(file);
    let mut written = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("upload interrupted: {e}")))?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(AppError::TooLarge(format!(
                "an upload may have at most {} MB",
                limit / (1024 * 1024)
            )));
        }
        file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
    }
    file.flush().await.map_err(anyhow::Error::from)?;
    Ok(saved)
}

async fn upload(
    request: Permitted<EngineerArea, Multipart>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: payload } = request;
    let limit = state.settings.web.max_upload_mb * 1024 * 1024;
    let mut upload = read_upload(payload, &state.settings.data_dir, limit).await?;
    let taxonomies = taxonomies::list(&state.pool).await?;
    let page = |summary, error| ImportPage { t: user.tr(), nav: user.nav(), taxonomies, summary, error };
    let format = match upload.field("format") {
        "auto" | "" => upload.file.as_ref().and_then(|(_, filename)| Format::from_path(filename)),
        "csv" => Some(Format::Csv),
        "tsv" => Some(Format::Tsv),
        "jsonl" => Some(Format::Jsonl),
        "nikl-absa" => Some(Format::NiklAbsa),
        other => return Err(AppError::BadInput(format!("unknown format {other}"))),
    };
    let (taxonomy, label_source) =
        (upload.field("taxonomy").to_string(), upload.field("label_source").to_string());
    let (mall, category) = (upload.field("mall").to_string(), upload.field("category").to_string());
    let t = user.tr();
    let Some((file, filename)) = upload.file.as_mut() else {
        return Ok(render(&page(None, Some(t.import_no_file.into()))));
    };
    let Some(format) = format else {
        return Ok(render(&page(None, Some(t.import_unknown_format.replace("{file}", filename)))));
    };
    if taxonomies::find_id(&state.pool, &taxonomy).await?.is_none() {
        return Ok(render(&page(None, Some(t.import_unknown_taxonomy.replace("{taxonomy}", &taxonomy)))));
    }
    let request = crate::jobs::import_job::ImportJob {
        file: file.name.clone(),
        filename: filename.clone(),
        taxonomy,
        format,
        label_source,
        mall,
        category,
        created_by: Some(user.user_id()),
        max_text_chars: state.settings.max_text_chars,
    };
    let mut job =
        crate::jobs::NewJob::new("import", serde_json::to_value(&request).map_err(anyhow::Error::from)?);
    job.created_by = Some(user.user_id());
    let mut conn = state.pool.acquire().await?;
    let id = crate::store::jobs::enqueue(&mut conn, &job).await?;
    // The job owns the file now: it removes it when it ends.
    file.keep()?;
    Ok(see_other(&format!("/engineer/jobs/{id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advice_names_the_default_order_as_the_form_labels_its_quotas() {
        let advice = quotas_advice(&crate::web::i18n::EN);
        assert_eq!(
            advice,
            "What caught up on rare keywords with the fewest labels in simulation: first round: Random → \
             next round: Nearest to each keyword's name and guideline 100% → every round after: \
             Nearest to each keyword's labelled reviews 30% + Class balance (keywords with few labels) 70%."
        );
    }
}
