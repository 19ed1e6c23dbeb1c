//! The engineer's loop page: a taxonomy's loop policy (set here or with `reviewloop
//! loop set`), a button that starts a cycle now, and the timeline of its cycles, each
//! step linked to its job, with what the comparison decided and why.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{EngineerArea, Nav, Permitted};
use super::engineer::{pick_taxonomy, Engineer};
use super::form_fields::{blank_as_none, checkbox};
use super::i18n::Tr;
use super::routing::{route, Route};
use super::{query_value, render, render_with, see_other, AppState};
use crate::cycles::Refusal;
use crate::error::{AppError, AppResult};
use crate::store::loops::{self, Cycle, Policy};
use crate::store::taxonomies::TaxonomySummary;

pub const ROUTES: &[Route] = &[
    route!(GET "/engineer/loop", EngineerArea, loop_page),
    route!(POST "/engineer/loop", EngineerArea, save_policy),
    route!(POST "/engineer/loop/start", EngineerArea, start_cycle),
];

/// One step of a cycle as the timeline shows it.
struct StepView {
    name: &'static str,
    /// Its job and the job's status, once queued.
    job: Option<(i64, String)>,
    detail: String,
    /// Reached (done or under way).
    reached: bool,
}

struct CycleView {
    id: i64,
    started_at: String,
    because: String,
    labels: i32,
    state: &'static str,
    failed: bool,
    steps: Vec<StepView>,
}

#[derive(Template)]
#[template(path = "engineer_loop.html")]
struct LoopPage {
    t: &'static Tr,
    nav: Nav,
    taxonomies: Vec<TaxonomySummary>,
    taxonomy: TaxonomySummary,
    policy: Policy,
    cycles: Vec<CycleView>,
    /// Labels since the last cycle's snapshot, against the policy's trigger.
    new_labels: i64,
    error: Option<String>,
    notice: Option<String>,
    /// A cycle is under way: the page refreshes itself.
    running: bool,
}

#[derive(Deserialize)]
struct LoopQuery {
    taxonomy: Option<String>,
    started: Option<i64>,
}

async fn loop_page(
    user: Engineer,
    state: web::Data<AppState>,
    query: web::Query<LoopQuery>,
) -> AppResult<HttpResponse> {
    let t = user.tr();
    let notice = query.started.map(|id| t.loop_started.replace("{id}", &id.to_string()));
    page(&user, &state, query.taxonomy.as_deref(), None, notice, None, StatusOk::Yes).await
}

enum StatusOk {
    Yes,
    Refused,
}

/// The page, with an error or notice, or with a policy that was refused (as entered).
async fn page(
    user: &Engineer,
    state: &AppState,
    taxonomy: Option<&str>,
    error: Option<String>,
    notice: Option<String>,
    entered: Option<Policy>,
    status: StatusOk,
) -> AppResult<HttpResponse> {
    let (taxonomies, taxonomy) = pick_taxonomy(state, taxonomy).await?;
    let policy = match entered {
        Some(p) => p,
        None => loops::policy(&state.pool, taxonomy.id).await?,
    };
    let cycles = loops::cycles(&state.pool, taxonomy.id, 20).await?;
    let statuses = job_statuses(state, &cycles).await?;
    let running = cycles.first().is_some_and(|c| !matches!(c.state.as_str(), "done" | "failed"));
    let views = cycles.iter().map(|c| view(user.tr(), c, &statuses)).collect();
    let new_labels = crate::cycles::labels_since_last(&state.pool, taxonomy.id).await?;
    let page = LoopPage {
        t: user.tr(),
        nav: user.nav(),
        taxonomies,
        taxonomy,
        policy,
        cycles: views,
        new_labels,
        error,
        notice,
        running,
    };
    Ok(match status {
        StatusOk::Yes => render(&page),
        StatusOk::Refused => render_with(&page, actix_web::http::StatusCode::UNPROCESSABLE_ENTITY),
    })
}

async fn job_statuses(state: &AppState, cycles: &[Cycle]) -> AppResult<HashMap<i64, String>> {
    let ids: Vec<i64> = cycles
        .iter()
        .flat_map(|c| [c.train_job, c.compare_job, c.score_job, c.compose_job])
        .flatten()
        .collect();
    Ok(crate::store::jobs::statuses(&state.pool, &ids).await?)
}

fn view(t: &'static Tr, c: &Cycle, statuses: &HashMap<i64, String>) -> CycleView {
    let job = |id: Option<i64>| id.map(|id| (id, t.job_status(statuses.get(&id).map_or("", String::as_str))));
    let order = ["training", "comparing", "scoring", "waiting_round", "composing", "done"];
    let at = order.iter().position(|s| *s == c.state).unwrap_or(order.len());
    let comparison = c.comparison.as_ref();
    let f1 = |key: &str| {
        comparison.and_then(|v| v.get(key)).filter(|r| !r.is_null()).map(|r| {
            let micro = r["micro_f1"].as_f64().unwrap_or(f64::NAN);
            let labels = r["labels"].as_u64().unwrap_or(0) as usize;
            t.evidence(crate::evidence::Evidence::of(micro, labels, crate::evidence::MIN_REPORT_SUPPORT))
        })
    };
    let compared = match (f1("candidate_report"), f1("serving_report")) {
        (Some(new), Some(old)) => format!("{} {new} · {} {old}", t.loop_new_version, t.loop_serving),
        (Some(new), None) => format!("{} {new} · {}", t.loop_new_version, t.loop_nothing_serving),
        _ => String::new(),
    };
    let decision = match c.decision.as_deref() {
        Some("promoted") => t.loop_promoted.to_string(),
        Some(_) => format!("{}: {}", t.loop_held, t.hold_reason(comparison)),
        None => String::new(),
    };
    let round = match (c.round_id, c.note.as_deref()) {
        (Some(id), _) => format!("#{id}"),
        (None, Some("pool_empty")) => t.loop_pool_empty.to_string(),
        (None, Some(note)) => note.to_string(),
        (None, None) => String::new(),
    };
    let promoted = c.decision.as_deref() == Some("promoted");
    let steps = vec![
        StepView {
            name: t.loop_step_train,
            job: job(c.train_job),
            detail: c.version.clone().unwrap_or_default(),
            reached: true,
        },
        StepView { name: t.loop_step_compare, job: job(c.compare_job), detail: compared, reached: at >= 1 },
        StepView { name: t.loop_step_decide, job: None, detail: decision, reached: c.decision.is_some() },
        StepView {
            name: t.loop_step_score,
            job: job(c.score_job),
            detail: if c.decision.is_some() && !promoted { t.loop_not_needed.into() } else { String::new() },
            reached: at >= 2,
        },
        StepView { name: t.loop_step_round, job: job(c.compose_job), detail: round, reached: at >= 3 },
    ];
    CycleView {
        id: c.id,
        started_at: c.started_at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string(),
        because: t.cycle_because(&c.started_because),
        labels: c.labels,
        state: t.cycle_state(&c.state),
        failed: c.state == "failed",
        steps,
    }
}

/// The policy form. Blank number fields keep nothing (no trigger by labels or hours).
#[derive(Deserialize)]
struct PolicyForm {
    taxonomy: String,
    #[serde(default, deserialize_with = "checkbox")]
    enabled: bool,
    #[serde(default, deserialize_with = "blank_as_none")]
    every_labels: Option<i32>,
    #[serde(default, deserialize_with = "blank_as_none")]
    every_hours: Option<f32>,
    profile: String,
    promote: String,
    margin: f32,
    max_drop: f32,
    round_size: i32,
    assist: String,
    double_share_percent: f32,
    mostly_done_percent: f32,
}

async fn save_policy(
    request: Permitted<EngineerArea, web::Form<PolicyForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = super::engineer::taxonomy_id(&state, &form.taxonomy).await?;
    let allowed = |v: &str, of: &[&str]| of.contains(&v);
    if !allowed(&form.profile, &["auto", "fast", "full"])
        || !allowed(&form.promote, &["auto", "hold"])
        || !allowed(&form.assist, &["off", "shown", "prefilled"])
    {
        return Err(AppError::BadInput("an option the form does not offer".into()));
    }
    let policy = Policy {
        taxonomy_id: taxonomy,
        enabled: form.enabled,
        every_labels: form.every_labels.filter(|n| *n > 0),
        every_hours: form.every_hours.filter(|h| *h > 0.0),
        profile: form.profile.clone(),
        promote: form.promote.clone(),
        margin: form.margin,
        max_drop: form.max_drop,
        round_size: form.round_size,
        assist: form.assist.clone(),
        double_share: form.double_share_percent / 100.0,
        mostly_done: form.mostly_done_percent / 100.0,
    };
    if let Err(problem) = crate::cycles::check(&policy) {
        let message = format!("{}: {}", user.tr().loop_policy_refused, user.tr().policy_problem(problem));
        return page(
            &user,
            &state,
            Some(&form.taxonomy),
            Some(message),
            None,
            Some(policy),
            StatusOk::Refused,
        )
        .await;
    }
    loops::save_policy(&state.pool, &policy, Some(user.user_id())).await?;
    crate::store::audit::record(
        &state.pool,
        Some(user.user_id()),
        "loop.policy",
        &format!("taxonomy:{taxonomy}"),
        serde_json::to_value(&policy).unwrap_or_default(),
    )
    .await?;
    Ok(see_other(&format!("/engineer/loop?taxonomy={}", query_value(&form.taxonomy))))
}

#[derive(Deserialize)]
struct StartForm {
    taxonomy: String,
}

async fn start_cycle(
    request: Permitted<EngineerArea, web::Form<StartForm>>,
    state: web::Data<AppState>,
) -> AppResult<HttpResponse> {
    let Permitted { user, input: form } = request;
    let taxonomy = super::engineer::taxonomy_id(&state, &form.taxonomy).await?;
    let data_dir = &state.settings.data_dir;
    let t = user.tr();
    match crate::cycles::start(&state.pool, data_dir, taxonomy, "manual", Some(user.user_id())).await? {
        Ok(cycle) => {
            Ok(see_other(&format!("/engineer/loop?taxonomy={}&started={cycle}", query_value(&form.taxonomy))))
        }
        Err(refused) => {
            let message = match refused {
                Refusal::TooFewLabels { labels, needed } => t
                    .too_few_to_train
                    .replace("{labels}", &labels.to_string())
                    .replace("{needed}", &needed.to_string()),
                Refusal::Running(id) => t.loop_running.replace("{id}", &id.to_string()),
            };
            page(&user, &state, Some(&form.taxonomy), Some(message), None, None, StatusOk::Refused).await
        }
    }
}
