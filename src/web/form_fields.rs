//! Form fields as browsers send them: an optional number left blank arrives as an
//! empty string (not as no field), and a checkbox as `on` or not at all. Parsed here
//! once, so a blank optional field is never a parse error.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A blank (or whitespace) field is `None`; anything else must parse.
pub fn blank_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let raw: Option<String> = Option::deserialize(deserializer)?;
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A number field that may be left blank: zero then.
pub fn blank_as_zero<'de, D>(deserializer: D) -> Result<f64, D::Error>
where
    D: Deserializer<'de>,
{
    blank_as_none(deserializer).map(|v| v.unwrap_or(0.0))
}

/// A checkbox: ticked when sent at all (its value is `on`).
pub fn checkbox<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    let raw: Option<String> = Option::deserialize(deserializer)?;
    Ok(raw.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Form {
        #[serde(default, deserialize_with = "blank_as_none")]
        seed: Option<u64>,
        #[serde(default, deserialize_with = "blank_as_zero")]
        quota: f64,
        #[serde(default, deserialize_with = "checkbox")]
        on: bool,
    }

    #[test]
    fn blank_fields_are_absent_and_others_parse() {
        let blank: Form = serde_urlencoded::from_str("seed=&quota=").unwrap();
        assert_eq!(blank, Form { seed: None, quota: 0.0, on: false });
        let missing: Form = serde_urlencoded::from_str("").unwrap();
        assert_eq!(missing, Form { seed: None, quota: 0.0, on: false });
        let set: Form = serde_urlencoded::from_str("seed=+7+&quota=0.5&on=on").unwrap();
        assert_eq!(set, Form { seed: Some(7), quota: 0.5, on: true });
        assert!(serde_urlencoded::from_str::<Form>("seed=일곱").is_err());
    }
}
