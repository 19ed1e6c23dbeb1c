//! What an annotator did with the model's suggestions, worked out from what was
//! suggested and what was submitted (never from what the page claims): per keyword,
//! accepted (kept at the suggested level), changed (kept at another level), removed,
//! or added by hand.

use serde_json::{json, Value};

/// The record stored with an annotation made on an assisted item.
pub fn record(mode: &str, version_id: Option<i64>, suggestion: &Value, chosen: &[(String, i16)]) -> Value {
    let suggested: Vec<(String, i64)> = suggestion["keywords"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| Some((k["keyword"].as_str()?.to_string(), k["sentiment"].as_i64()?)))
        .collect();
    let level_of = |name: &str| chosen.iter().find(|(n, _)| n == name).map(|(_, l)| *l as i64);
    let (mut accepted, mut changed, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for (name, level) in &suggested {
        match level_of(name) {
            Some(l) if l == *level => accepted.push(name.clone()),
            Some(_) => changed.push(name.clone()),
            None => removed.push(name.clone()),
        }
    }
    let added: Vec<&String> =
        chosen.iter().map(|(n, _)| n).filter(|n| !suggested.iter().any(|(s, _)| s == *n)).collect();
    json!({
        "mode": mode,
        "version_id": version_id,
        "accepted": accepted,
        "changed": changed,
        "removed": removed,
        "added": added,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_suggested_keyword_is_accepted_changed_or_removed_and_the_rest_added() {
        let suggestion = json!({"keywords": [
            {"keyword": "배송", "sentiment": 1},
            {"keyword": "색상", "sentiment": -1},
            {"keyword": "사이즈", "sentiment": 0},
        ]});
        let chosen = [("배송".to_string(), 1), ("색상".to_string(), 1), ("품질".to_string(), 2)];
        let r = record("prefilled", Some(7), &suggestion, &chosen);
        assert_eq!(r["accepted"], json!(["배송"]));
        assert_eq!(r["changed"], json!(["색상"]));
        assert_eq!(r["removed"], json!(["사이즈"]));
        assert_eq!(r["added"], json!(["품질"]));
        assert_eq!((r["mode"].as_str(), r["version_id"].as_i64()), (Some("prefilled"), Some(7)));
    }

    #[test]
    fn no_suggestion_makes_every_choice_an_addition() {
        let r = record("shown", None, &json!({"keywords": []}), &[("배송".to_string(), 0)]);
        assert_eq!(r["added"], json!(["배송"]));
        assert_eq!(r["accepted"], json!([]));
    }
}
