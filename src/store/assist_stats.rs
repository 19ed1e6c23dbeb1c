//! What annotators did with a round's suggestions, per keyword, and how fast they
//! labelled with and without them (read from each annotation's `assist` record).

use sqlx::PgPool;

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct KeywordUse {
    pub keyword: String,
    pub accepted: i64,
    pub changed: i64,
    pub removed: i64,
    /// Chosen by hand although not suggested (a keyword the model missed).
    pub added: i64,
}

impl KeywordUse {
    /// Suggested and kept at the suggested level, of all suggested.
    pub fn acceptance(&self) -> Option<f64> {
        let suggested = self.accepted + self.changed + self.removed;
        (suggested > 0).then(|| self.accepted as f64 / suggested as f64)
    }
}

/// Per keyword, in name order.
pub async fn per_keyword(pool: &PgPool, round_id: i64) -> sqlx::Result<Vec<KeywordUse>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT k.value, x.kind, count(*) FROM annotations a
         JOIN assignments s ON s.id = a.assignment_id JOIN round_items i ON i.id = s.round_item_id
         CROSS JOIN (VALUES ('accepted'), ('changed'), ('removed'), ('added')) AS x(kind)
         CROSS JOIN LATERAL jsonb_array_elements_text(a.assist -> x.kind) AS k(value)
         WHERE i.round_id = $1 AND a.assist IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1",
    )
    .bind(round_id)
    .fetch_all(pool)
    .await?;
    let mut out: Vec<KeywordUse> = Vec::new();
    for (keyword, kind, n) in rows {
        if out.last().is_none_or(|k| k.keyword != keyword) {
            out.push(KeywordUse { keyword, ..Default::default() });
        }
        let k = out.last_mut().expect("just pushed");
        match kind.as_str() {
            "accepted" => k.accepted = n,
            "changed" => k.changed = n,
            "removed" => k.removed = n,
            _ => k.added = n,
        }
    }
    Ok(out)
}

/// Labels per hour with and without suggestions: from the gaps between an annotator's
/// consecutive labels in the round (gaps over ten minutes are breaks, not work).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Pace {
    pub assisted: Option<f64>,
    pub unassisted: Option<f64>,
}

pub async fn pace(pool: &PgPool, round_id: i64) -> sqlx::Result<Pace> {
    let rows: Vec<(bool, f64)> = sqlx::query_as(
        "WITH ordered AS (
             SELECT a.assist IS NOT NULL AS assisted,
                    a.created_at - lag(a.created_at) OVER (PARTITION BY a.annotator_id ORDER BY a.created_at) AS gap
             FROM annotations a JOIN assignments s ON s.id = a.assignment_id
             JOIN round_items i ON i.id = s.round_item_id WHERE i.round_id = $1)
         SELECT assisted, avg(extract(epoch FROM gap))::float8 FROM ordered
         WHERE gap > interval '0' AND gap < interval '10 minutes' GROUP BY assisted",
    )
    .bind(round_id)
    .fetch_all(pool)
    .await?;
    let per_hour = |assisted: bool| rows.iter().find(|r| r.0 == assisted).map(|r| 3600.0 / r.1.max(0.001));
    Ok(Pace { assisted: per_hour(true), unassisted: per_hour(false) })
}
