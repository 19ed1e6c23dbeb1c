-- The data behind `reviewloop bench qa`: a fashion taxonomy of :reviews reviews as a
-- team has it after a while of work, for timing the reviewer's pages. On a database
-- that `reviewloop migrate` created (any version since the QA pages exist), so the same
-- data can be timed against an older binary:
--   psql -v reviews=100000 -f scripts/bench_qa_data.sql
-- (the benchmark substitutes :reviews itself). What it makes, deterministically:
--  * every review labelled once by one of five annotators (one or two keywords);
--  * one review in five answered by a second annotator (agreement), one in three of
--    those differently, a quarter of the differing ones settled with a gold label;
--  * then the guideline of the first keyword edited, and one review in ten re-labelled
--    under the new definition;
--  * an active keyword model with a prediction for every review;
--  * a label issue on one review in twenty, nine in ten of them still open;
--  * a reviewer, `bench-qa`, with the session token `bench-qa-session`;
--  * then VACUUM ANALYZE, as autovacuum leaves tables a while after a bulk insert.
\set ON_ERROR_STOP on
BEGIN;

INSERT INTO users (username, password_hash, role)
SELECT 'qa-annotator-' || a, 'x', 'annotator' FROM generate_series(1, 5) a;
INSERT INTO users (username, password_hash, role) VALUES ('bench-qa', 'x', 'reviewer');
INSERT INTO sessions (token_hash, user_id, csrf_token, expires_at)
SELECT sha256(convert_to('bench-qa-session', 'UTF8')), id, 'bench-qa-csrf', now() + interval '1 day'
FROM users WHERE username = 'bench-qa';

CREATE TEMP TABLE qa_kw AS
SELECT k.id, k.position FROM keywords k JOIN taxonomies t ON t.id = k.taxonomy_id WHERE t.name = 'fashion';
CREATE TEMP TABLE qa_ann AS
SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users WHERE username LIKE 'qa-annotator-%';

INSERT INTO reviews (taxonomy_id, text, mall, category, content_hash, split)
SELECT t.id,
       '리뷰 ' || i || ': ' || (ARRAY['옷은 예쁘지만 배송은 늦어요', '색상이 화면과 똑같고 핏이 예뻐요 👍',
                                 '사이즈가 조금 작아서 교환했어요', '소재가 부드러워서 재구매 의사 있어요',
                                 '가격 대비 만족합니다', '바느질이 엉망이고 실밥이 나와 있어요'])[1 + i % 6],
       'mall' || i % 7, 'cat' || i % 4, sha256(convert_to('qa-bench-' || i, 'UTF8')),
       (ARRAY['train', 'train', 'train', 'train', 'train', 'train', 'train', 'train', 'validation', 'test'])[1 + i % 10]::data_split
FROM generate_series(1, :reviews) i, taxonomies t WHERE t.name = 'fashion';

CREATE TEMP TABLE qa_rev AS
SELECT r.id, row_number() OVER (ORDER BY r.id) AS i FROM reviews r
JOIN taxonomies t ON t.id = r.taxonomy_id WHERE t.name = 'fashion';

-- First answers, a week to a month ago.
INSERT INTO annotations (review_id, annotator_id, source, guideline_revision, created_at)
SELECT q.id, a.id, 'human', 1, now() - make_interval(days => 7 + (q.i % 23)::int)
FROM qa_rev q JOIN qa_ann a ON a.n = q.i % 5 ORDER BY q.i;
-- Second answers on one review in five, by the next annotator.
INSERT INTO annotations (review_id, annotator_id, source, guideline_revision, created_at)
SELECT q.id, a.id, 'human', 1, now() - make_interval(days => 6)
FROM qa_rev q JOIN qa_ann a ON a.n = (q.i + 1) % 5 WHERE q.i % 5 = 0 ORDER BY q.i;

CREATE TEMP TABLE qa_first AS
SELECT DISTINCT ON (review_id) review_id, id FROM annotations ORDER BY review_id, id;
CREATE TEMP TABLE qa_second AS
SELECT review_id, id FROM annotations a WHERE id NOT IN (SELECT id FROM qa_first);

-- One or two keywords each; the second answer differs on one review in three.
INSERT INTO annotation_labels (annotation_id, keyword_id, sentiment)
SELECT DISTINCT f.id, k.id, ((q.i % 5) - 2)::smallint
FROM qa_first f JOIN qa_rev q ON q.id = f.review_id
JOIN qa_kw k ON k.position IN (q.i % 15, (q.i * 7 + 3) % 15);
INSERT INTO annotation_labels (annotation_id, keyword_id, sentiment)
SELECT DISTINCT s.id, k.id, ((q.i % 5) - 2)::smallint
FROM qa_second s JOIN qa_rev q ON q.id = s.review_id
JOIN qa_kw k ON k.position IN (q.i % 15, CASE WHEN q.i % 3 = 0 THEN (q.i + 5) % 15 ELSE (q.i * 7 + 3) % 15 END);
-- A quarter of the disagreements settled.
INSERT INTO annotations (review_id, annotator_id, source, guideline_revision, created_at)
SELECT q.id, (SELECT id FROM users WHERE username = 'bench-qa'), 'gold', 1, now() - interval '5 days'
FROM qa_rev q WHERE q.i % 5 = 0 AND q.i % 3 = 0 AND q.i % 4 = 0;
INSERT INTO annotation_labels (annotation_id, keyword_id, sentiment)
SELECT a.id, k.id, 1 FROM annotations a JOIN qa_rev q ON q.id = a.review_id
JOIN qa_kw k ON k.position = q.i % 15 WHERE a.source = 'gold';

-- The first keyword's definition edited, then one review in ten re-labelled under it.
UPDATE taxonomies SET guideline_revision = 2 WHERE name = 'fashion';
INSERT INTO keyword_guidelines (keyword_id, version, body, taxonomy_revision)
SELECT id, 2, '배송: 배송 속도와 포장 상태. 구김은 배송 중 생긴 것만.', 2 FROM qa_kw WHERE position = 0;
INSERT INTO annotations (review_id, annotator_id, source, guideline_revision, created_at)
SELECT q.id, a.id, 'human', 2, now() - interval '1 day'
FROM qa_rev q JOIN qa_ann a ON a.n = q.i % 5 WHERE q.i % 10 = 1 ORDER BY q.i;
INSERT INTO annotation_labels (annotation_id, keyword_id, sentiment)
SELECT DISTINCT a.id, k.id, ((q.i % 5) - 2)::smallint
FROM annotations a JOIN qa_rev q ON q.id = a.review_id
JOIN qa_kw k ON k.position IN (q.i % 15, (q.i * 3 + 1) % 15)
WHERE a.guideline_revision = 2;

-- The serving keyword model and its predictions.
INSERT INTO model_versions (taxonomy_id, kind, name, path, status, metrics, promoted_at)
SELECT id, 'keyword', 'bench-qa-v1', 'fashion/bench-qa-v1/keyword', 'active', '{}', now()
FROM taxonomies WHERE name = 'fashion';
INSERT INTO predictions (review_id, model_version_id, keyword_probs)
SELECT q.id, v.id,
       ARRAY(SELECT ((q.i * 31 + p * 17) % 100) / 100.0 FROM generate_series(0, 14) p)::real[]
FROM qa_rev q, model_versions v WHERE v.name = 'bench-qa-v1';

-- Suspected label errors: one review in twenty, on one of its labelled keywords.
INSERT INTO label_issues (review_id, keyword_id, kind, annotation_id, model_version_id, confidence, status)
SELECT q.id, k.id, (ARRAY['wrong', 'missing', 'sentiment'])[1 + q.i % 3], f.id, v.id,
       ((q.i * 13) % 100) / 100.0, CASE WHEN q.i % 200 = 2 THEN 'dismissed' ELSE 'open' END
FROM qa_rev q JOIN qa_first f ON f.review_id = q.id JOIN qa_kw k ON k.position = (q.i / 20) % 15
CROSS JOIN model_versions v WHERE v.name = 'bench-qa-v1' AND q.i % 20 = 2;

COMMIT;
-- As autovacuum leaves a table some time after a bulk insert.
VACUUM ANALYZE;
