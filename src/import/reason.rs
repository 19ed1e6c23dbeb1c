//! Why an import row was rejected or warned about, as data: the command line prints
//! the English sentence (`Display`), the pages say it in their language
//! (`web::i18n::Tr::import_reason`), and both come from this one enum. Stored with the
//! row's problem (`import_problems.detail`) and in an import job's result.

use serde::{Deserialize, Serialize};

use crate::labels::LabelParseError;
use crate::taxonomy::LabelError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Reason {
    #[error("invalid UTF-8 in column `{column}`")]
    ColumnUtf8 { column: String },
    #[error("invalid UTF-8")]
    LineUtf8,
    #[error("expected {expected} fields, found {found}")]
    FieldCount { expected: usize, found: usize },
    #[error("read error: {detail}")]
    Read { detail: String },
    #[error("malformed row: {detail}")]
    Malformed { detail: String },
    #[error("the line is longer than {limit} bytes; skipped")]
    LineTooLong { limit: usize },
    #[error("not valid JSON: {detail}")]
    Json { detail: String },
    #[error("labels are not valid JSON: {detail}")]
    LabelsJson { detail: String },
    #[error("labels JSON is not understood: {json}")]
    LabelsShape { json: String },
    #[error("each line must be a JSON object")]
    NotObject,
    #[error("missing `{field}`")]
    MissingField { field: String },
    #[error("annotation without a category")]
    NoCategory,
    #[error("unknown polarity `{polarity}` for `{category}`")]
    Polarity { polarity: String, category: String },
    #[error("unknown split `{split}` (train, validation or test)")]
    Split { split: String },
    #[error("label `{label}` has no sentiment level (write it like `배송-1` or `만족도 2`)")]
    NoLevel { label: String },
    #[error("label `{label}` has no keyword")]
    NoKeyword { label: String },
    #[error("keyword `{keyword}` appears twice with different levels")]
    TwoLevels { keyword: String },
    #[error("unknown keyword `{keyword}`")]
    UnknownKeyword { keyword: String },
    #[error("sentiment {level} of `{keyword}` is outside the scale {min}..{max}")]
    OutOfScale { keyword: String, level: i16, min: i16, max: i16 },
    #[error("missing text")]
    MissingText,
    #[error("text is {chars} characters, over the limit of {limit}")]
    TooLong { chars: usize, limit: usize },
    #[error("{categories} has different polarities in one sentence; labelled neutral (0)")]
    MixedPolarity { categories: String },
}

impl From<LabelParseError> for Reason {
    fn from(e: LabelParseError) -> Reason {
        match e {
            LabelParseError::MissingLevel(label) => Reason::NoLevel { label },
            LabelParseError::MissingKeyword(label) => Reason::NoKeyword { label },
            LabelParseError::Conflicting(keyword) => Reason::TwoLevels { keyword },
            LabelParseError::BadJson(json) => Reason::LabelsShape { json },
        }
    }
}

impl From<LabelError> for Reason {
    fn from(e: LabelError) -> Reason {
        match e {
            LabelError::UnknownKeyword(keyword) => Reason::UnknownKeyword { keyword },
            LabelError::OutOfScale { keyword, level, min, max } => {
                Reason::OutOfScale { keyword, level, min, max }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_keeps_its_sentence_and_travels_as_a_code_with_its_values() {
        let r = Reason::TooLong { chars: 6000, limit: 5000 };
        assert_eq!(r.to_string(), "text is 6000 characters, over the limit of 5000");
        let stored = serde_json::to_value(&r).unwrap();
        assert_eq!(stored["code"], "too_long");
        assert_eq!(serde_json::from_value::<Reason>(stored).unwrap(), r);
        let label: Reason = LabelParseError::MissingLevel("디자인".into()).into();
        assert!(label.to_string().contains("no sentiment level"));
    }
}
