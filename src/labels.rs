//! Label sets as people and files write them: the seed's compact form
//! (`디자인1, 배송-1`, `만족도 2, 신축성 1`) and JSON.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One keyword with its sentiment level on the taxonomy's scale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub keyword: String,
    pub sentiment: i16,
}

/// What a labeller said about a review. "No keyword" is an answer, unlike an empty
/// cell, which means the review is not labelled yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelSet {
    NoKeyword,
    Keywords(Vec<Label>),
}

/// Tokens that mean "this review mentions none of the keywords".
const NO_KEYWORD_TOKENS: [&str; 4] = ["없음", "none", "no_keyword", "-"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelParseError {
    #[error("label `{0}` has no sentiment level (write it like `배송-1` or `만족도 2`)")]
    MissingLevel(String),
    #[error("label `{0}` has no keyword")]
    MissingKeyword(String),
    #[error("keyword `{0}` appears twice with different levels")]
    Conflicting(String),
    #[error("labels JSON is not understood: {0}")]
    BadJson(String),
}

impl LabelSet {
    /// Parses the compact form. `None` for an empty cell (unlabelled).
    pub fn parse_compact(input: &str) -> Result<Option<LabelSet>, LabelParseError> {
        let input = input.trim();
        if input.is_empty() {
            return Ok(None);
        }
        if NO_KEYWORD_TOKENS.iter().any(|t| input.eq_ignore_ascii_case(t)) {
            return Ok(Some(LabelSet::NoKeyword));
        }
        let labels = input
            .split([',', ';'])
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_one)
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_labels(labels).map(Some)
    }

    /// Parses JSON labels: `{"디자인": 1, "배송": -1}`, `[{"keyword": "배송", "sentiment": -1}]`,
    /// `[]` or `{}` for no keyword, a compact string, or `null` for unlabelled.
    pub fn parse_json(value: &Value) -> Result<Option<LabelSet>, LabelParseError> {
        let bad = || LabelParseError::BadJson(value.to_string());
        let labels = match value {
            Value::Null => return Ok(None),
            Value::String(s) => return Self::parse_compact(s),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| level_of(v).map(|s| Label { keyword: k.clone(), sentiment: s }))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    let keyword = item.get("keyword")?.as_str()?.to_string();
                    let sentiment = level_of(item.get("sentiment")?)?;
                    Some(Label { keyword, sentiment })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
            _ => return Err(bad()),
        };
        if labels.is_empty() {
            return Ok(Some(LabelSet::NoKeyword));
        }
        Self::from_labels(labels).map(Some)
    }

    /// Repeated keywords with the same level collapse; different levels are an error.
    pub fn from_labels(labels: Vec<Label>) -> Result<LabelSet, LabelParseError> {
        let mut out: Vec<Label> = Vec::with_capacity(labels.len());
        for label in labels {
            match out.iter().find(|l| l.keyword == label.keyword) {
                Some(seen) if seen.sentiment != label.sentiment => {
                    return Err(LabelParseError::Conflicting(label.keyword))
                }
                Some(_) => {}
                None => out.push(label),
            }
        }
        Ok(if out.is_empty() { LabelSet::NoKeyword } else { LabelSet::Keywords(out) })
    }

    /// The compact form, in the given order: `디자인1, 배송-1`, or `없음`.
    pub fn to_compact(&self) -> String {
        match self {
            LabelSet::NoKeyword => NO_KEYWORD_TOKENS[0].to_string(),
            LabelSet::Keywords(labels) => {
                labels.iter().map(|l| format!("{}{}", l.keyword, l.sentiment)).collect::<Vec<_>>().join(", ")
            }
        }
    }

    /// The JSON form: `{"디자인": 1}`; `{}` for no keyword.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let LabelSet::Keywords(labels) = self {
            for l in labels {
                map.insert(l.keyword.clone(), Value::from(l.sentiment));
            }
        }
        Value::Object(map)
    }

    pub fn labels(&self) -> &[Label] {
        match self {
            LabelSet::NoKeyword => &[],
            LabelSet::Keywords(labels) => labels,
        }
    }
}

fn level_of(value: &Value) -> Option<i16> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|n| i16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `디자인1`, `배송-1`, `만족도 2`, `배송 +1`, `본품#품질 1`: the level is the trailing
/// signed integer, the keyword everything before it.
fn parse_one(part: &str) -> Result<Label, LabelParseError> {
    let digits_start = part
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_digit())
        .last()
        .map(|(i, _)| i)
        .ok_or_else(|| LabelParseError::MissingLevel(part.to_string()))?;
    let (head, digits) = part.split_at(digits_start);
    let (keyword, negative) = match head.trim_end().strip_suffix('-') {
        Some(k) => (k, true),
        None => (head.trim_end().strip_suffix('+').unwrap_or(head.trim_end()), false),
    };
    let keyword = keyword.trim();
    if keyword.is_empty() {
        return Err(LabelParseError::MissingKeyword(part.to_string()));
    }
    let magnitude: i16 = digits.parse().map_err(|_| LabelParseError::MissingLevel(part.to_string()))?;
    let sentiment = if negative { -magnitude } else { magnitude };
    Ok(Label { keyword: keyword.to_string(), sentiment })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(k: &str, s: i16) -> Label {
        Label { keyword: k.into(), sentiment: s }
    }

    #[test]
    fn the_seeds_compact_forms_parse() {
        assert_eq!(
            LabelSet::parse_compact("디자인1, 배송-1").unwrap(),
            Some(LabelSet::Keywords(vec![l("디자인", 1), l("배송", -1)]))
        );
        assert_eq!(
            LabelSet::parse_compact("만족도 2, 신축성 1").unwrap(),
            Some(LabelSet::Keywords(vec![l("만족도", 2), l("신축성", 1)]))
        );
        assert_eq!(
            LabelSet::parse_compact("제품 전체#일반 -1; 패키지/구성품#디자인 +1").unwrap(),
            Some(LabelSet::Keywords(vec![l("제품 전체#일반", -1), l("패키지/구성품#디자인", 1)]))
        );
    }

    #[test]
    fn empty_means_unlabelled_and_none_means_no_keyword() {
        assert_eq!(LabelSet::parse_compact("  ").unwrap(), None);
        assert_eq!(LabelSet::parse_compact("없음").unwrap(), Some(LabelSet::NoKeyword));
        assert_eq!(LabelSet::parse_json(&json!([])).unwrap(), Some(LabelSet::NoKeyword));
        assert_eq!(LabelSet::parse_json(&json!(null)).unwrap(), None);
    }

    #[test]
    fn malformed_labels_say_what_is_wrong() {
        assert_eq!(
            LabelSet::parse_compact("디자인, 배송-1"),
            Err(LabelParseError::MissingLevel("디자인".into()))
        );
        assert_eq!(LabelSet::parse_compact("-1"), Err(LabelParseError::MissingKeyword("-1".into())));
        assert_eq!(
            LabelSet::parse_compact("배송1, 배송-1"),
            Err(LabelParseError::Conflicting("배송".into()))
        );
    }

    #[test]
    fn json_forms_parse_and_round_trip() {
        let set = LabelSet::parse_json(&json!({"디자인": 1, "배송": "-1"})).unwrap().unwrap();
        assert_eq!(set.labels().len(), 2);
        let set = LabelSet::parse_json(&json!([{"keyword": "색상", "sentiment": 2}])).unwrap().unwrap();
        assert_eq!(set, LabelSet::Keywords(vec![l("색상", 2)]));
        assert_eq!(LabelSet::parse_json(&set.to_json()).unwrap(), Some(set.clone()));
        assert_eq!(LabelSet::parse_compact(&set.to_compact()).unwrap(), Some(set));
        assert!(LabelSet::parse_json(&json!([{"keyword": "색상"}])).is_err());
    }
}
