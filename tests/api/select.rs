//! Scoring the pool and composing rounds by strategy, against a real PostgreSQL.

use reviewloop::import::Format;
use reviewloop::rounds::{GroupBy, RoundSpec};
use reviewloop::score::{self, ScoreOptions};
use reviewloop::select::{composition, Pool, Quota};
use reviewloop::store::predictions::{self, Prediction};
use reviewloop::train::pipeline;

use crate::helpers::{round_spec, TestApp};
use crate::train::{labelled_csv, scratch_dir, settings};

#[tokio::test]
async fn scoring_stores_what_the_strategies_need_and_resumes_where_it_stopped() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &labelled_csv()).await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(40, 2)).await;
    let models = scratch_dir();
    pipeline::run(&app.pool, &settings(&models, "v1"), &mut |_, _| {}).await.unwrap();
    let mut options = ScoreOptions::new("fashion", models.clone());
    options.batch_size = 16;
    let mut seen = Vec::new();
    let first = score::run(&app.pool, &options, &mut |done, total| seen.push((done, total))).await.unwrap();
    assert_eq!((first.scored, first.covered, first.total), (100, 100, 100));
    assert_eq!(seen.last(), Some(&(100, 100)));
    assert!(seen.len() >= 100 / 16, "progress after every batch");
    assert!(first.clusters.is_some());
    let complete = app
        .count(
            "SELECT count(*) FROM predictions p JOIN review_scores s USING (review_id, model_version_id)
             WHERE array_length(p.keyword_probs, 1) = 15 AND array_length(p.embedding, 1) = 32
               AND s.boundary BETWEEN 0 AND 1 AND s.rarity >= 0 AND s.cluster IS NOT NULL AND s.outlier IS NOT NULL
               AND s.balance >= 0 AND s.boundary_keyword BETWEEN 0 AND 14",
        )
        .await;
    assert_eq!(complete, 100);
    let anchors = "SELECT count(*) FROM keyword_anchors WHERE array_length(embedding, 1) = 32";
    assert_eq!(app.count(anchors).await, 15, "an anchor per keyword the model scores");
    let anchored = app.count("SELECT count(*) FROM review_scores WHERE anchored IS NOT NULL").await;
    assert!(anchored > 0, "the clustering pass ranks reviews by the anchors");
    assert!(
        models.join("fashion/.rarity/rarity.model").is_file(),
        "the rarity model is trained once and kept"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM bundles WHERE name = 'rarity/fashion'").await,
        1,
        "and stored"
    );

    // A crash lost the last batches: a rerun scores only those, then clusters again.
    for table in ["review_scores", "predictions"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE review_id IN (SELECT id FROM reviews ORDER BY id DESC LIMIT 20)"
        ))
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let again = score::run(&app.pool, &options, &mut |_, _| {}).await.unwrap();
    assert_eq!((again.scored, again.covered), (20, 100));
    assert_eq!(app.count("SELECT count(*) FROM review_scores WHERE cluster IS NULL").await, 0);
    assert_eq!(app.count(anchors).await, 15, "anchors are stored once per version");
    // Nothing left: nothing scored, no clustering pass.
    let idle = score::run(&app.pool, &options, &mut |_, _| {}).await.unwrap();
    assert_eq!((idle.scored, idle.clusters), (0, None));
    let _ = std::fs::remove_dir_all(&models);
}

#[tokio::test]
async fn scoring_without_a_model_says_what_to_do() {
    let app = TestApp::spawn().await;
    let error = score::run(&app.pool, &ScoreOptions::new("fashion", scratch_dir()), &mut |_, _| {}).await;
    assert!(error.err().unwrap().to_string().contains("reviewloop train"));
}

/// A ready keyword version and one prediction per review with the given boundary score.
async fn scored_pool(app: &TestApp, boundaries: &[(i64, f32)]) -> i64 {
    let rows: Vec<Scores> = boundaries.iter().map(|&(id, b)| (id, b, 0.0, None)).collect();
    scored_pool_with(app, &rows).await
}

/// (review id, boundary, class balance, least certain keyword).
type Scores = (i64, f32, f32, Option<i16>);

async fn scored_pool_with(app: &TestApp, scores: &[Scores]) -> i64 {
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO model_versions (taxonomy_id, kind, name, path, status)
         SELECT id, 'keyword', 'hand-made', '/nowhere/keyword', 'ready' FROM taxonomies WHERE name = 'fashion' RETURNING id",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let rows: Vec<Prediction> = scores
        .iter()
        .map(|&(review_id, boundary, balance, boundary_keyword)| Prediction {
            review_id,
            keyword_probs: vec![0.5],
            sentiment: serde_json::json!({}),
            embedding: vec![0.0],
            rarity: 0.0,
            boundary,
            uncertainty: None,
            balance,
            boundary_keyword,
        })
        .collect();
    predictions::insert_batch(&app.pool, version, &rows).await.unwrap();
    version
}

/// The reviews a round took.
async fn picked_in(app: &TestApp, round: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT review_id FROM round_items WHERE round_id = $1")
        .bind(round)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn review_ids(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM reviews ORDER BY id").fetch_all(&app.pool).await.unwrap()
}

#[tokio::test]
async fn a_strategy_round_takes_the_best_scored_reviews_and_records_why() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(100, 2)).await;
    let ids = review_ids(&app).await;
    // Boundary score grows with the id: the newest reviews are the least certain.
    let scores: Vec<(i64, f32)> = ids.iter().enumerate().map(|(i, &id)| (id, i as f32 / 100.0)).collect();
    scored_pool(&app, &scores).await;
    let spec = RoundSpec {
        quotas: Quota::parse_list("keyword-boundary=0.6,random=0.4").unwrap(),
        group_by: GroupBy::Mall,
        ..round_spec(20)
    };
    let round = app.create_round(&spec).await.unwrap();
    assert_eq!(round.items, 20);
    let items: Vec<(String, Option<f32>, i64, String)> = sqlx::query_as(
        "SELECT i.strategy, i.score, i.review_id, r.mall FROM round_items i JOIN reviews r ON r.id = i.review_id
         WHERE i.round_id = $1 ORDER BY i.position",
    )
    .bind(round.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let boundary: Vec<&(String, Option<f32>, i64, String)> =
        items.iter().filter(|i| i.0 == "keyword-boundary").collect();
    assert_eq!(boundary.len(), 12);
    assert_eq!(items.iter().filter(|i| i.0 == "random").count(), 8);
    // The 12 best: the newest 12 reviews (6 per mall, since both malls are half the pool).
    assert!(boundary.iter().all(|i| i.2 > ids[100 - 13] && i.1.unwrap() >= 0.87), "{boundary:?}");
    assert_eq!(items.iter().filter(|i| i.3 == "mall0").count(), 10, "mall shares are kept");
    let sampling: String = sqlx::query_scalar("SELECT sampling FROM rounds WHERE id = $1")
        .bind(round.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sampling, "mixed");
    // The annotator sees why each review is in the round.
    let annotator = app.logged_in(reviewloop::store::users::Role::Annotator).await;
    let first = crate::helpers::location(&annotator.claim_next(round.id).await);
    let page = annotator.get(&first).await.text().await.unwrap();
    assert!(page.contains("고른 이유: 키워드 경계 (0.9") || page.contains("고른 이유: 무작위<"), "{page}");
}

#[tokio::test]
async fn a_strategy_round_skips_labelled_queued_and_duplicate_text() {
    let app = TestApp::spawn().await;
    // The same text in two malls is two reviews but one thing to label.
    app.import_text(
        "fashion",
        Format::Csv,
        "mall,text\nA,똑같은 리뷰\nB,똑같은 리뷰\nA,다른 리뷰 하나\nA,다른 리뷰 둘\n",
    )
    .await;
    app.import_text("fashion", Format::Csv, "text,labels\n라벨 있는 리뷰,배송1\n").await;
    let ids = review_ids(&app).await;
    // Everyone scores 1.0 but the labelled review scores highest of all.
    let scores: Vec<(i64, f32)> = ids.iter().map(|&id| (id, if id == ids[4] { 9.0 } else { 1.0 })).collect();
    scored_pool(&app, &scores).await;
    let queued = app.create_round(&RoundSpec { name: "queued".into(), ..round_spec(1) }).await.unwrap();
    let spec = RoundSpec { quotas: Quota::parse_list("keyword-boundary").unwrap(), ..round_spec(10) };
    let round = app.create_round(&spec).await.unwrap();
    let picked = picked_in(&app, round.id).await;
    let queued_id: i64 = sqlx::query_scalar("SELECT review_id FROM round_items WHERE round_id = $1")
        .bind(queued.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!picked.contains(&ids[4]), "labelled reviews are not picked");
    assert!(!picked.contains(&queued_id), "reviews queued in an open round are not picked");
    let same_text = picked.iter().filter(|&&id| id == ids[0] || id == ids[1]).count();
    let queued_the_text = queued_id == ids[0] || queued_id == ids[1];
    assert_eq!(same_text, if queued_the_text { 0 } else { 1 }, "a text is picked once, and not if queued");
    assert_eq!(picked.len(), 2, "two distinct texts are left");
}

#[tokio::test]
async fn rounds_for_rare_keywords_give_each_keyword_its_share_and_prefer_scarce_ones() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(40, 1)).await;
    let ids = review_ids(&app).await;
    // 36 reviews are least certain about keyword 0, all nearer their boundary than the
    // 4 about keyword 1 (a rare one); only those 4 are predicted to hold a scarce keyword.
    let scores: Vec<Scores> = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| if i < 36 { (id, 0.9, 0.01, Some(0)) } else { (id, 0.2, 0.5, Some(1)) })
        .collect();
    scored_pool_with(&app, &scores).await;
    let rare: Vec<i64> = ids[36..].to_vec();
    for (strategy, expected) in [("keyword-quota", 4), ("class-balance", 4), ("keyword-boundary", 0)] {
        let spec = RoundSpec { quotas: Quota::parse_list(strategy).unwrap(), ..round_spec(8) };
        let round = app.create_round(&spec).await.unwrap();
        let picked = picked_in(&app, round.id).await;
        let of_rare = picked.iter().filter(|id| rare.contains(id)).count();
        assert_eq!(of_rare, expected, "{strategy} picked {of_rare} of the rare keyword's 4");
        sqlx::query("DELETE FROM rounds WHERE id = $1").bind(round.id).execute(&app.pool).await.unwrap();
    }
}

#[tokio::test]
async fn a_diverse_round_leaves_out_near_duplicates_of_its_best_picks() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(12, 1)).await;
    let ids = review_ids(&app).await;
    // The boundary score falls with the id; the 6 best-scored sit at one point in
    // embedding space, the other 6 far apart from it and each other.
    let scores: Vec<(i64, f32)> =
        ids.iter().enumerate().map(|(i, &id)| (id, 1.0 - i as f32 / 20.0)).collect();
    let version = scored_pool(&app, &scores).await;
    for (i, &id) in ids.iter().enumerate() {
        let embedding = if i < 6 { vec![0.0, 0.0] } else { vec![10.0 * i as f32, -10.0 * i as f32] };
        sqlx::query("UPDATE predictions SET embedding = $3 WHERE review_id = $1 AND model_version_id = $2")
            .bind(id)
            .bind(version)
            .bind(embedding)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE model_versions SET status = 'active' WHERE id = $1")
        .bind(version)
        .execute(&app.pool)
        .await
        .unwrap();
    let plain = RoundSpec { quotas: Quota::parse_list("keyword-boundary").unwrap(), ..round_spec(3) };
    let round = app.create_round(&plain).await.unwrap();
    let best = picked_in(&app, round.id).await;
    assert!(best.iter().all(|id| ids[..3].contains(id)), "without the step: the three best, near-duplicates");
    sqlx::query("DELETE FROM rounds WHERE id = $1").bind(round.id).execute(&app.pool).await.unwrap();
    let round = app.create_round(&RoundSpec { diverse: true, ..plain }).await.unwrap();
    let diverse = picked_in(&app, round.id).await;
    assert_eq!(diverse.len(), 3);
    let near = diverse.iter().filter(|id| ids[..6].contains(id)).count();
    assert_eq!(near, 1, "one of the near-duplicates (the best), then two far ones: {diverse:?}");
}

/// A ready version whose predictions give the reviews, in id order, these embeddings
/// (and plain scores), for the clustering pass.
async fn embedded_version(app: &TestApp, embeddings: &[Vec<f32>]) -> i64 {
    crate::helpers::ready_version(app, "v1", &[]).await;
    let version: i64 =
        sqlx::query_scalar("SELECT id FROM model_versions WHERE name = 'v1' AND kind = 'keyword'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    for (id, e) in review_ids(app).await.iter().zip(embeddings) {
        sqlx::query(
            "INSERT INTO predictions (review_id, model_version_id, keyword_probs, embedding, rarity)
             VALUES ($1, $2, '{0.5}', $3, 0)",
        )
        .bind(id)
        .bind(version)
        .bind(e)
        .execute(&app.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO review_scores (review_id, model_version_id, boundary, rarity) VALUES ($1, $2, 0, 0)",
        )
        .bind(id)
        .bind(version)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    version
}

/// Clustering a page at a time gives what clustering all embeddings at once gives.
#[tokio::test]
async fn clustering_in_pages_matches_clustering_in_memory() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(90, 3)).await;
    // Three blobs and a few strays.
    let embeddings: Vec<Vec<f32>> = (0..90)
        .map(|i| {
            let centre = [(0.0, 0.0), (8.0, 1.0), (2.0, 9.0)][i % 3];
            let jitter = ((i * 37) % 11) as f32 * 0.1 + if i % 29 == 0 { 4.0 } else { 0.0 };
            vec![centre.0 + jitter, centre.1 - jitter * 0.5, jitter * 0.3]
        })
        .collect();
    let version = embedded_version(&app, &embeddings).await;
    let k = score::cluster_in_pages(&app.pool, version, Some(3), 5, &Default::default(), 7).await.unwrap();
    assert_eq!(k, 3);
    let stored: Vec<(i32, f32)> = sqlx::query_as(
        "SELECT cluster, outlier FROM review_scores WHERE model_version_id = $1 ORDER BY review_id",
    )
    .bind(version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let expected = reviewloop::select::clusters::cluster(&embeddings, 3, 5).unwrap();
    for (i, (cluster, outlier)) in stored.iter().enumerate() {
        assert_eq!(*cluster as usize, expected.clusters[i], "review {i}");
        assert!(
            (outlier - expected.outlier_scores[i]).abs() < 1e-4,
            "review {i}: {outlier} vs {}",
            expected.outlier_scores[i]
        );
    }
}

#[tokio::test]
async fn a_round_from_a_pool_read_in_pages_is_the_round_composed_over_the_whole_pool() {
    let app = TestApp::spawn().await;
    // 4,000 reviews whose ids span several pages, over uneven mall / category groups,
    // every sixth a duplicate text; scores from a hash of the id, some unscored.
    sqlx::query(
        "INSERT INTO reviews (id, taxonomy_id, text, mall, category, content_hash, split)
         SELECT 10000000 + i * 37, t.id, '페이지 리뷰 ' || CASE WHEN i % 6 = 0 THEN i % 50 ELSE i END,
                'mall' || (i % 3), 'cat' || (i % 5 % 3), sha256(int8send(i)), 'train'
         FROM taxonomies t, generate_series(1, 4000) AS i WHERE t.name = 'fashion'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let version = scored_pool(&app, &[]).await;
    let hashed = |salt: i32| format!("(abs(hashtextextended(r.id::text, {salt})) % 1000003)::real / 1000003");
    sqlx::query(&format!(
        "INSERT INTO review_scores (review_id, model_version_id, boundary, uncertainty, rarity, balance,
                                    boundary_keyword)
         SELECT r.id, $1, {}, CASE WHEN r.id % 4 <> 0 THEN {} END, {}, {},
                CASE WHEN r.id % 7 <> 0 THEN (r.id % 5)::smallint END
         FROM reviews r WHERE r.id % 11 <> 0",
        hashed(1),
        hashed(2),
        hashed(3),
        hashed(4)
    ))
    .bind(version)
    .execute(&app.pool)
    .await
    .unwrap();
    // A queued round: its reviews and their texts are taken.
    app.create_round(&RoundSpec { name: "queued".into(), ..round_spec(30) }).await.unwrap();

    let taxonomy: i64 = sqlx::query_scalar("SELECT id FROM taxonomies WHERE name = 'fashion'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let spec = RoundSpec {
        quotas: Quota::parse_list(
            "keyword-boundary=0.3,rare-tokens=0.2,keyword-quota=0.2,class-balance=0.1,random=0.2",
        )
        .unwrap(),
        group_by: GroupBy::MallCategory,
        ..round_spec(80)
    };
    let mut pages = Vec::new();
    predictions::candidate_pages(&app.pool, taxonomy, Some(version), spec.group_by.grouping(), |page| {
        pages.push(page.clone())
    })
    .await
    .unwrap();
    assert!(pages.len() >= 3, "the pool spans several pages, not {}", pages.len());
    let taken = predictions::taken_texts(&app.pool, taxonomy).await.unwrap();
    let whole = Pool::from_pages(&pages, taken);
    assert_eq!(whole.len(), 4000 - 30);
    let expected = composition(&whole, &spec.quotas, 80, spec.seed).picks;

    let round = app.create_round(&spec).await.unwrap();
    let items: Vec<(i64, String)> =
        sqlx::query_as("SELECT review_id, strategy FROM round_items WHERE round_id = $1 ORDER BY position")
            .bind(round.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let expected: Vec<(i64, String)> =
        expected.iter().map(|p| (p.review_id, p.strategy.as_str().to_string())).collect();
    assert_eq!(items, expected);
    assert!(items.iter().any(|i| i.1 == "keyword-quota"));
}

/// Each keyword's nearest unlabelled reviews to its labelled ones, taken in turn: a
/// keyword with one label gets a pick beside one with five.
#[tokio::test]
async fn keyword_neighbours_rounds_take_each_keywords_nearest_reviews_in_turn() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(30, 1)).await;
    let ids = review_ids(&app).await;
    let keywords = app.taxonomy("fashion").await.keywords;
    let (frequent, rare) = (keywords[0].id, keywords[3].id);
    let annotator = crate::helpers::user_id(&app, reviewloop::store::users::Role::Annotator).await;
    // Reviews 0–4 hold the frequent keyword, review 5 the rare one; 6–28 read like the
    // first five, and only review 29 like review 5, and less closely than 6–28 do theirs.
    for (i, &id) in ids[..6].iter().enumerate() {
        let keyword = if i < 5 { frequent } else { rare };
        crate::helpers::human_answer(&app, id, annotator, vec![(keyword, 1)]).await;
    }
    let embedding = |i: usize| match i {
        0..=4 => vec![1.0, 0.02 * i as f32, 0.0],
        5 => vec![0.0, 0.0, 1.0],
        29 => vec![0.5, 0.3, 1.0],
        _ => vec![1.0, 0.05 * (i % 5) as f32, 0.2 + 0.01 * i as f32],
    };
    let version = embedded_version(&app, &(0..ids.len()).map(embedding).collect::<Vec<_>>()).await;
    score::cluster_in_pages(&app.pool, version, Some(2), 7, &Default::default(), 7).await.unwrap();
    let stored: Vec<(i64, Option<f32>)> = sqlx::query_as(
        "SELECT review_id, neighbours FROM review_scores WHERE model_version_id = $1 ORDER BY review_id",
    )
    .bind(version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(stored[..6].iter().all(|(_, n)| n.is_none()), "labelled reviews get no score: {stored:?}");
    assert!(stored[6..].iter().all(|(_, n)| n.is_some()), "every unlabelled one does: {stored:?}");

    let spec = RoundSpec { quotas: Quota::parse_list("keyword-neighbours").unwrap(), ..round_spec(2) };
    let round = app.create_round(&spec).await.unwrap();
    let picked = picked_in(&app, round.id).await;
    assert_eq!(picked.len(), 2);
    assert!(picked.contains(&ids[29]), "the rare keyword's nearest is in the round: {picked:?}");
}

/// Each keyword's nearest unlabelled reviews to its anchor, taken in turn: a keyword
/// with no label at all gets its pick.
#[tokio::test]
async fn keyword_anchors_rounds_take_each_keywords_nearest_reviews_to_its_name() {
    let app = TestApp::spawn().await;
    app.import_text("fashion", Format::Csv, &crate::helpers::fashion_csv(30, 1)).await;
    let ids = review_ids(&app).await;
    let annotator = crate::helpers::user_id(&app, reviewloop::store::users::Role::Annotator).await;
    let frequent = app.taxonomy("fashion").await.keywords[0].id;
    // Review 0, labelled, lies on keyword 3's anchor; 1–28 near keyword 0's; only
    // review 29 anywhere near keyword 3's, and less closely than 1–28 to theirs.
    crate::helpers::human_answer(&app, ids[0], annotator, vec![(frequent, 1)]).await;
    let embedding = |i: usize| match i {
        0 => vec![0.0, 0.0, 1.0],
        29 => vec![0.5, 0.3, 1.0],
        _ => vec![1.0, 0.05 * (i % 5) as f32, 0.2 + 0.01 * i as f32],
    };
    let version = embedded_version(&app, &(0..ids.len()).map(embedding).collect::<Vec<_>>()).await;
    predictions::insert_anchors(&app.pool, version, &[(0, vec![1.0, 0.0, 0.0]), (3, vec![0.0, 0.0, 1.0])])
        .await
        .unwrap();
    score::cluster_in_pages(&app.pool, version, Some(2), 7, &Default::default(), 7).await.unwrap();
    let stored: Vec<Option<f32>> = sqlx::query_scalar(
        "SELECT anchored FROM review_scores WHERE model_version_id = $1 ORDER BY review_id",
    )
    .bind(version)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(stored[0].is_none(), "a labelled review gets no score: {stored:?}");
    assert!(stored[1..].iter().all(Option::is_some), "every unlabelled one does: {stored:?}");

    let spec = RoundSpec { quotas: Quota::parse_list("keyword-anchors").unwrap(), ..round_spec(2) };
    let round = app.create_round(&spec).await.unwrap();
    let picked = picked_in(&app, round.id).await;
    assert_eq!(picked.len(), 2);
    assert!(picked.contains(&ids[29]), "the unlabelled keyword's nearest is in the round: {picked:?}");
}
