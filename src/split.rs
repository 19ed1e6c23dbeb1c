//! Train / validation / test: each review's split, decided by its content hash so that
//! it stays the same across re-imports, databases and machines.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, sqlx::Type, Serialize, Deserialize)]
#[sqlx(type_name = "data_split", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train = 0,
    Validation = 1,
    Test = 2,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Some(Split::Train),
            "validation" | "valid" | "dev" => Some(Split::Validation),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// 80 / 10 / 10 train / validation / test, decided by the content hash so a review
/// keeps its split across re-imports, databases and machines.
pub fn split_for(hash: &[u8]) -> Split {
    match hash[0] as u32 * 10 / 256 {
        0..=7 => Split::Train,
        8 => Split::Validation,
        _ => Split::Test,
    }
}
