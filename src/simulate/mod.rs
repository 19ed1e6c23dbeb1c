//! `reviewloop simulate`: the loop replayed on a data set with gold labels. The labels
//! are hidden in a scratch database; each round the real pipeline trains a version,
//! is scored on a held-out test part, scores the pool, composes the next round with
//! the strategy under test, and the "annotator" reveals the gold labels of the picked
//! reviews (imported as gold annotations). Learning curves go to CSV and SVG.

pub mod curves;
pub mod oracle;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;

use crate::analyze::Analyzer;
use crate::consensus::LabelSource;
use crate::import::formats::{self, RawRow};
use crate::import::{self, Format, ImportOptions};
use crate::rounds::{GroupBy, RoundSpec, Sampling};
use crate::score::{self, ScoreOptions};
use crate::select::{Quota, Strategy};
use crate::split::Split;
use crate::train::evaluate;
use crate::train::pipeline;
use crate::train::settings::TrainSettings;
use curves::Point;

/// The mixed composer, chosen by simulation on NIKL with the default base (e5-ko in the
/// fast mode; 1,000 held out, 800 labels, 15 seeds; docs/benchmarks.md#simulation):
/// keyword-anchors compose the first round after the random one, then keyword-neighbours
/// 0.3 + class-balance 0.7 every later one. It needs 405 labels (51 %) to reach random's
/// final keyword macro F1 and 719 (90 %) on micro F1. Keyword-anchors throughout, the
/// default before, needed 481 (60 %; 505 with the guideline in the anchor) and 800 or
/// more on micro F1; the mix throughout 506 (63 %) and 739 (92 %). The anchors
/// find the rare keywords' first reviews, which no label points to yet, but then walk
/// the same lists; the mix learns from the labels. It pays on sentiment macro F1: 624
/// labels (78 %), against 409 for keyword-anchors throughout. On seeds 16–20, run once
/// after the choice, it needs 383 labels (48 %) on macro F1. With all 12 layers fine-tuned
/// it stays ahead of random, but needs 577 labels (72 %) on seeds 1–5.
pub const MIXED: &str = "keyword-anchors>keyword-neighbours=0.3+class-balance=0.7";

/// [`MIXED`]'s compositions in order, each as its quotas: what the rounds page advises.
pub fn mixed_stages() -> Vec<Vec<Quota>> {
    stages("mixed").iter().map(|stage| quotas(stage).expect("MIXED is a valid entry")).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct SimulateOptions {
    pub data: PathBuf,
    pub format: Format,
    /// Held-out file; without it the fixed test split (by content hash, 10 %) of `data`.
    pub test: Option<PathBuf>,
    /// Instead: the first N rows of `data` by content hash are the test set.
    #[serde(default)]
    pub holdout: Option<usize>,
    pub taxonomy: String,
    /// `random`, `mixed`, or strategy names.
    pub strategies: Vec<String>,
    pub rounds: usize,
    pub batch: usize,
    /// Size of the random first round (default: `batch`).
    pub initial: usize,
    pub seeds: usize,
    /// The first seed (seeds run from it on): a run may add seeds to an earlier one.
    pub first_seed: u64,
    pub out: PathBuf,
    /// Training settings of every round (the models folder is set per run).
    pub train: TrainSettings,
}

/// Gold rows by their identity in the taxonomy (mall, category, normalised text).
struct Gold {
    pool: Vec<RawRow>,
    test_jsonl: Vec<u8>,
    /// Index in `pool` of each row's identity.
    by_key: HashMap<(String, String, String), usize>,
}

fn key(mall: &str, category: &str, text: &str) -> (String, String, String) {
    (mall.to_string(), category.to_string(), crate::text::normalize(text))
}

fn read_rows(path: &std::path::Path, format: Format) -> anyhow::Result<Vec<RawRow>> {
    let file = std::io::BufReader::new(
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    Ok(formats::rows(format, file)?.filter_map(Result::ok).filter(|r| r.labels.is_some()).collect())
}

fn load_gold(options: &SimulateOptions) -> anyhow::Result<Gold> {
    let rows = read_rows(&options.data, options.format)?;
    let is_test = |r: &RawRow| crate::split::split_for(&hash_of(r)) == Split::Test;
    let (test, pool): (Vec<RawRow>, Vec<RawRow>) = match (&options.test, options.holdout) {
        (Some(path), _) => (read_rows(path, options.format)?, rows),
        (None, Some(n)) => held_out(rows, n),
        (None, None) => rows.into_iter().partition(|r| is_test(r)),
    };
    anyhow::ensure!(!test.is_empty() && pool.len() > options.initial, "too few labelled rows to simulate");
    let by_key = pool
        .iter()
        .enumerate()
        .map(|(i, r)| (key(r.mall.as_deref().unwrap_or(""), r.category.as_deref().unwrap_or(""), &r.text), i))
        .collect();
    Ok(Gold { test_jsonl: jsonl(&test, true), pool, by_key })
}

fn hash_of(r: &RawRow) -> Vec<u8> {
    let text = crate::text::normalize(&r.text);
    crate::text::content_hash(r.mall.as_deref().unwrap_or(""), r.category.as_deref().unwrap_or(""), &text)
}

/// The first `n` rows by content hash as the test set, the rest as the pool: the same
/// rows whatever the file's order, on every machine.
fn held_out(rows: Vec<RawRow>, n: usize) -> (Vec<RawRow>, Vec<RawRow>) {
    let mut keyed: Vec<(Vec<u8>, RawRow)> = rows.into_iter().map(|r| (hash_of(&r), r)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let pool = keyed.split_off(n.min(keyed.len()));
    (keyed.into_iter().map(|k| k.1).collect(), pool.into_iter().map(|k| k.1).collect())
}

/// Rows in the project's JSONL import format, with or without their labels.
fn jsonl(rows: &[RawRow], labelled: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for r in rows {
        let mut line = json!({"text": r.text, "mall": r.mall, "category": r.category});
        if labelled {
            line["labels"] = r.labels.as_ref().map(|l| l.to_json()).unwrap_or_default();
        }
        out.extend(serde_json::to_vec(&line).unwrap_or_default());
        out.push(b'\n');
    }
    out
}

/// `+` joins quotas inside one composition, and `+diverse` adds the diversity step
/// (`keyword-quota=0.7+random=0.3+diverse`).
fn quotas(composition: &str) -> anyhow::Result<Vec<Quota>> {
    let parts: Vec<&str> = quota_parts(composition).collect();
    Quota::parse_list(&parts.join(",")).map_err(anyhow::Error::msg)
}

/// A composition's quotas as written, the diversity step left out.
fn quota_parts(composition: &str) -> impl Iterator<Item = &str> {
    composition.split('+').filter(|p| *p != "diverse")
}

fn is_diverse(composition: &str) -> bool {
    composition.split('+').any(|p| p == "diverse")
}

/// The compositions of a strategy entry: `>` hands a run from one to the next, a round
/// each, the last one composing every round left (`keyword-anchors>class-balance`: the
/// anchors compose the first round after the random one, class balance every later
/// one). Which picks serve best changes with the labels in hand (Hacohen et al. 2022,
/// "Active learning on a budget"): what needs no label first, what learns from labels
/// once there are some. `mixed` stands for [`MIXED`]'s compositions (`mixed+diverse`:
/// each with the diversity step).
fn stages(strategy: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stage in strategy.split('>') {
        if !quota_parts(stage).eq(["mixed"]) {
            out.push(stage.to_string());
            continue;
        }
        let diverse = if is_diverse(stage) { "+diverse" } else { "" };
        out.extend(MIXED.split('>').map(|s| format!("{s}{diverse}")));
    }
    out
}

/// The composition of the round after `round` (0: the one after the random first).
fn stage(strategy: &str, round: usize) -> String {
    let mut stages = stages(strategy);
    stages.swap_remove(round.min(stages.len() - 1))
}

/// Every composition a strategy entry hands over to, checked.
fn check(strategy: &str) -> anyhow::Result<()> {
    for stage in stages(strategy) {
        anyhow::ensure!(!stage.trim().is_empty(), "in `{strategy}`: a composition is empty");
        quotas(&stage).map_err(|e| anyhow::anyhow!("in `{strategy}`: {e}"))?;
    }
    Ok(())
}

/// Runs every strategy with every seed; returns all points.
pub async fn run(
    database_url: &str,
    options: &SimulateOptions,
    log: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<Vec<Point>> {
    for s in options.strategies.iter().filter(|s| *s != oracle::ORACLE) {
        check(s)?;
    }
    let gold = load_gold(options)?;
    log(&format!("pool {} labelled reviews, test {} bytes of JSONL", gold.pool.len(), gold.test_jsonl.len()));
    std::fs::create_dir_all(&options.out)?;
    let mut points = Vec::new();
    for strategy in &options.strategies {
        for seed in options.first_seed..options.first_seed + options.seeds as u64 {
            // One scratch database per process: simulations may run side by side.
            let name = format!("reviewloop_simulation_{}", std::process::id());
            let url = crate::store::scratch::url(database_url, &name);
            let run = Run { options, gold: &gold, strategy, seed, url: &url };
            let curve = run.go(log).await.with_context(|| format!("{strategy}, seed {seed}"))?;
            points.extend(curve);
            // After every run, so a long simulation stopped early still leaves its curves.
            write_outputs(&options.out, &points)?;
        }
    }
    Ok(points)
}

/// Which stage each model of a round kept, for the run's log: at a few hundred labels
/// the validation split holds a few dozen reviews, and when no encoder epoch beats the
/// lexical stage there the model kept is the lexical part alone.
fn kept_stages(outcome: &crate::train::pipeline::TrainOutcome) -> String {
    let stage = |fit: &crate::train::FitReport| {
        if fit.first_stage_epochs == 0 {
            "one stage"
        } else if fit.last_stage_kept() {
            "encoder"
        } else {
            "lexical only"
        }
    };
    format!("kept: keyword {}, sentiment {}", stage(&outcome.keyword.fit), stage(&outcome.sentiment.fit))
}

/// `curves.csv`, one SVG chart per metric and `summary.json` in `out`.
pub fn write_outputs(out: &std::path::Path, points: &[Point]) -> anyhow::Result<()> {
    std::fs::write(out.join("curves.csv"), curves::to_csv(points))?;
    for metric in curves::Metric::ALL {
        let name = format!("{}.svg", metric.title().replace(' ', "-"));
        std::fs::write(out.join(name), curves::svg(points, metric))?;
    }
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&curves::summarise(points))?)?;
    Ok(())
}

/// One strategy with one seed, in its own scratch database.
struct Run<'a> {
    options: &'a SimulateOptions,
    gold: &'a Gold,
    strategy: &'a str,
    seed: u64,
    url: &'a str,
}

impl Run<'_> {
    async fn go(&self, log: &mut (dyn FnMut(&str) + Send)) -> anyhow::Result<Vec<Point>> {
        let pool = crate::store::scratch::fresh(self.url).await?;
        let models = self.options.out.join(format!("models-{}-{}", self.strategy, self.seed));
        let _ = std::fs::remove_dir_all(&models);
        let result = self.rounds(&pool, &models, log).await;
        crate::store::scratch::drop(pool, self.url).await?;
        let _ = std::fs::remove_dir_all(&models);
        result
    }

    async fn rounds(
        &self,
        pool: &PgPool,
        models: &std::path::Path,
        log: &mut (dyn FnMut(&str) + Send),
    ) -> anyhow::Result<Vec<Point>> {
        let taxonomy = &self.options.taxonomy;
        let options = ImportOptions::new(taxonomy, Format::Jsonl, "simulation pool");
        import::import(pool, &jsonl(&self.gold.pool, false)[..], &options).await?;
        let mut first: Vec<usize> = (0..self.gold.pool.len()).collect();
        first.shuffle(&mut rand::rngs::StdRng::seed_from_u64(self.seed));
        let mut revealed = vec![false; self.gold.pool.len()];
        self.reveal(pool, &first[..self.options.initial.min(first.len())], &mut revealed).await?;
        let mut points = Vec::new();
        for round in 0..=self.options.rounds {
            let (point, kept) = self.train_and_test(pool, models, round).await?;
            log(&format!(
                "{} seed {} round {}: {} labels, keyword micro {:.3} macro {:.3}, sentiment macro {:.3}; {kept}",
                self.strategy,
                self.seed,
                round,
                point.labels,
                point.keyword_micro_f1,
                point.keyword_macro_f1,
                point.sentiment_macro_f1
            ));
            points.push(point);
            if round < self.options.rounds {
                self.next_round(pool, models, round, &mut revealed).await?;
            }
        }
        Ok(points)
    }

    /// The round's point, and which stage's weights each model kept (`kept_stages`).
    async fn train_and_test(
        &self,
        pool: &PgPool,
        models: &std::path::Path,
        round: usize,
    ) -> anyhow::Result<(Point, String)> {
        let mut settings = self.options.train.clone();
        settings.taxonomy = self.options.taxonomy.clone();
        // Versions go to this run's scratch folder; bases stay where they were found.
        settings.bases_dir.get_or_insert(settings.models_dir.clone());
        settings.models_dir = models.to_path_buf();
        settings.name = Some(format!("r{round}"));
        settings.fit.seed = self.seed;
        let outcome = pipeline::run(pool, &settings, &mut |_, _| {}).await?;
        let labels = crate::store::annotations::label_stats(
            pool,
            crate::store::taxonomies::find_id(pool, &settings.taxonomy).await?.unwrap_or_default(),
        )
        .await?
        .labelled as usize;
        let analyzer = Analyzer::load(&outcome.dir)?;
        let (items, skipped) = evaluate::read_file(&analyzer, Format::Jsonl, &self.gold.test_jsonl[..])?;
        let evaluation = evaluate::evaluate(&analyzer, &items, skipped)?;
        let f1 = |r: &Option<crate::train::metrics::Report>, macro_avg: bool| {
            r.as_ref().map(|r| if macro_avg { r.macro_avg.f1 } else { r.micro.f1 }).unwrap_or(0.0)
        };
        let kept = kept_stages(&outcome);
        let point = Point {
            strategy: self.strategy.to_string(),
            seed: self.seed,
            round,
            labels,
            keyword_micro_f1: f1(&evaluation.keyword, false),
            keyword_macro_f1: f1(&evaluation.keyword, true),
            sentiment_macro_f1: f1(&evaluation.sentiment, true),
        };
        Ok((point, kept))
    }

    /// Scores the pool (unless picking at random), composes the next round with the
    /// strategy, reveals its gold labels and closes it.
    async fn next_round(
        &self,
        pool: &PgPool,
        models: &std::path::Path,
        round: usize,
        revealed: &mut [bool],
    ) -> anyhow::Result<()> {
        if self.strategy == oracle::ORACLE {
            let seed = self.seed * 1000 + round as u64;
            let picks = oracle::balanced_picks(&self.gold.pool, revealed, self.options.batch, seed);
            return self.reveal(pool, &picks, revealed).await;
        }
        let stage = stage(self.strategy, round);
        let quotas = quotas(&stage)?;
        if quotas.iter().any(|q| q.strategy != Strategy::Random) {
            let mut options = ScoreOptions::new(&self.options.taxonomy, models.to_path_buf());
            options.seed = self.seed;
            score::run(pool, &options, &mut |_, _| {}).await?;
        }
        let spec = RoundSpec {
            name: format!("simulated round {}", round + 1),
            size: self.options.batch,
            sampling: Sampling::Proportional,
            group_by: GroupBy::MallCategory,
            double_share: 0.0,
            seed: self.seed * 1000 + round as u64,
            members: vec![],
            quotas,
            assist: Default::default(),
            assist_doubled: false,
            diverse: is_diverse(&stage),
            cycle: None,
        };
        let taxonomy_id =
            crate::store::taxonomies::find_id(pool, &self.options.taxonomy).await?.context("taxonomy")?;
        let created = crate::rounds::create(pool, taxonomy_id, &spec, None).await?;
        let picked: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT r.mall, r.category, r.text FROM round_items i JOIN reviews r ON r.id = i.review_id WHERE i.round_id = $1",
        )
        .bind(created.id)
        .fetch_all(pool)
        .await?;
        let rows: Vec<usize> =
            picked.iter().filter_map(|(m, c, t)| self.gold.by_key.get(&key(m, c, t)).copied()).collect();
        self.reveal(pool, &rows, revealed).await?;
        crate::store::rounds::close(pool, created.id, None).await?;
        Ok(())
    }

    /// The simulated annotator: the gold labels of these pool rows, imported as gold.
    async fn reveal(&self, pool: &PgPool, rows: &[usize], revealed: &mut [bool]) -> anyhow::Result<()> {
        for &i in rows {
            revealed[i] = true;
        }
        let owned: Vec<RawRow> = rows.iter().map(|&i| self.gold.pool[i].clone()).collect();
        let mut options = ImportOptions::new(&self.options.taxonomy, Format::Jsonl, "simulated annotator");
        options.label_source = LabelSource::Gold;
        import::import(pool, &jsonl(&owned, true)[..], &options).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> RawRow {
        RawRow {
            line: i as u64,
            text: format!("리뷰 {i}"),
            mall: None,
            category: None,
            external_id: None,
            labels: None,
            split: None,
            warning: None,
        }
    }

    #[test]
    fn the_holdout_is_the_same_rows_whatever_the_files_order() {
        let rows: Vec<RawRow> = (0..50).map(row).collect();
        let (test, pool) = held_out(rows.clone(), 10);
        assert_eq!((test.len(), pool.len()), (10, 40));
        let mut reversed = rows;
        reversed.reverse();
        let (again, _) = held_out(reversed, 10);
        let texts = |r: &[RawRow]| {
            let mut t: Vec<String> = r.iter().map(|r| r.text.clone()).collect();
            t.sort();
            t
        };
        assert_eq!(texts(&test), texts(&again));
        assert_eq!(
            held_out((0..3).map(row).collect(), 10).0.len(),
            3,
            "a holdout larger than the file takes it all"
        );
    }

    #[test]
    fn a_composition_joins_quotas_with_plus_and_may_ask_for_diversity() {
        let q = quotas("keyword-quota=0.7+random=0.3+diverse").unwrap();
        assert_eq!(
            q.iter().map(|q| q.strategy).collect::<Vec<_>>(),
            [Strategy::KeywordQuota, Strategy::Random]
        );
        assert!(is_diverse("keyword-quota+diverse") && !is_diverse("keyword-anchors"));
    }

    #[test]
    fn a_run_hands_over_from_one_composition_to_the_next_a_round_each() {
        let entry = "keyword-anchors>random+diverse>keyword-quota=0.7+class-balance=0.3";
        let stages: Vec<String> = (0..5).map(|round| stage(entry, round)).collect();
        assert_eq!(stages[..3], ["keyword-anchors", "random+diverse", "keyword-quota=0.7+class-balance=0.3"]);
        assert_eq!(stages[3..], [stages[2].clone(), stages[2].clone()], "the last composition keeps on");
        assert!(check(entry).is_ok());
        assert!(check("keyword-anchors>").unwrap_err().to_string().contains("a composition is empty"));
        let error = check("keyword-anchors>keyword-magic").unwrap_err().to_string();
        assert!(
            error.contains("in `keyword-anchors>keyword-magic`: unknown strategy `keyword-magic`"),
            "{error}"
        );
    }

    #[test]
    fn mixed_starts_with_the_anchors_and_hands_over_to_neighbours_and_class_balance() {
        assert_eq!(stages("mixed"), ["keyword-anchors", "keyword-neighbours=0.3+class-balance=0.7"]);
        let first: Vec<Strategy> = quotas(&stage("mixed", 0)).unwrap().iter().map(|q| q.strategy).collect();
        assert_eq!(first, [Strategy::KeywordAnchors]);
        let later: Vec<Strategy> = quotas(&stage("mixed", 6)).unwrap().iter().map(|q| q.strategy).collect();
        assert_eq!(later, [Strategy::KeywordNeighbours, Strategy::ClassBalance]);
        assert!(stages("mixed+diverse").iter().all(|s| is_diverse(s)));
        assert_eq!(stages("random>mixed").len(), 3);
        let advised: Vec<Vec<(Strategy, f64)>> = mixed_stages()
            .iter()
            .map(|stage| stage.iter().map(|q| (q.strategy, q.weight)).collect())
            .collect();
        assert_eq!(
            advised,
            [
                vec![(Strategy::KeywordAnchors, 1.0)],
                vec![(Strategy::KeywordNeighbours, 0.3), (Strategy::ClassBalance, 0.7)]
            ]
        );
    }

    #[test]
    fn holdout_keeps_its_rows_out_of_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.csv");
        let csv: String = std::iter::once("text,labels\n".to_string())
            .chain((0..40).map(|i| format!("배송이 빨라요 {i},배송1\n")))
            .collect();
        std::fs::write(&data, csv).unwrap();
        let options = SimulateOptions {
            data,
            format: Format::Csv,
            test: None,
            holdout: Some(15),
            taxonomy: "fashion".into(),
            strategies: vec!["random".into()],
            rounds: 1,
            batch: 5,
            initial: 5,
            seeds: 1,
            first_seed: 1,
            out: dir.path().join("out"),
            train: TrainSettings::defaults("fashion", dir.path().to_path_buf()),
        };
        let gold = load_gold(&options).unwrap();
        assert_eq!(gold.pool.len(), 25);
        assert_eq!(String::from_utf8(gold.test_jsonl).unwrap().lines().count(), 15);
    }
}
