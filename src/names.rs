//! Names that become folder names under the data dir (bases, model versions): one
//! validated type, so a name from a form, a flag or a job payload can never reach a
//! path outside the folder it is meant for.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NameError {
    #[error("`{0}` is not a valid name: use letters, digits, - _ . (64 at most, not starting with .)")]
    Invalid(String),
    #[error("{0} leads outside {1}")]
    Escapes(PathBuf, PathBuf),
}

/// Letters, digits and `-_.`, 1–64 of them, not starting with `.` (so no `..`, no
/// hidden folder, no separator, no NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SafeName(String);

pub const MAX_NAME: usize = 64;

impl SafeName {
    pub fn parse(text: &str) -> Result<SafeName, NameError> {
        let valid = !text.is_empty()
            && text.len() <= MAX_NAME
            && !text.starts_with('.')
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        match valid {
            true => Ok(SafeName(text.to_string())),
            false => Err(NameError::Invalid(text.chars().take(80).collect())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `root/name`, checked after resolving links when it exists: a symbolic link that
    /// leads out of `root` is refused.
    pub fn under(&self, root: &Path) -> Result<PathBuf, NameError> {
        let path = root.join(&self.0);
        if let (Ok(real), Ok(real_root)) = (path.canonicalize(), root.canonicalize()) {
            if !real.starts_with(&real_root) {
                return Err(NameError::Escapes(path, root.to_path_buf()));
            }
        }
        Ok(path)
    }
}

impl std::fmt::Display for SafeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for SafeName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SafeName::parse(&s)
    }
}

impl From<SafeName> for String {
    fn from(name: SafeName) -> String {
        name.0
    }
}

impl std::str::FromStr for SafeName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SafeName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_their_folder_are_refused() {
        for bad in ["", "../x", "..", ".hidden", "a/b", "/etc", "a\0b", "배송", &"x".repeat(65), "a b"] {
            assert!(SafeName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["multilingual-e5-small", "v20261201-0930", "klue_roberta.base", "a"] {
            assert_eq!(SafeName::parse(good).unwrap().as_str(), good);
        }
    }

    #[test]
    fn a_link_out_of_the_folder_is_refused() {
        let root = std::env::temp_dir().join(format!("names-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join("inside")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("out")).unwrap();
        std::os::unix::fs::symlink("inside", root.join("alias")).unwrap();
        let name = |n: &str| SafeName::parse(n).unwrap();
        assert!(matches!(name("out").under(&root), Err(NameError::Escapes(..))));
        assert_eq!(name("alias").under(&root).unwrap(), root.join("alias"));
        assert_eq!(name("absent").under(&root).unwrap(), root.join("absent"));
        std::fs::remove_dir_all(root).unwrap();
    }
}
