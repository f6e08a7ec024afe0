//! Label selectors in Kubernetes' string syntax (`k8s.io/apimachinery/pkg/labels`): `a=b`,
//! `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, joined by commas.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A label selector that could not be parsed: the selector as given and what is wrong with it.
/// It prints as `invalid label selector "<selector>": <reason>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectorError {
    /// The selector's text as given.
    pub selector: String,
    /// What is wrong, naming the offending part (e.g. `invalid key "" in "=web"`).
    pub reason: String,
}

impl SelectorError {
    fn new(selector: &str, reason: impl Into<String>) -> Self {
        SelectorError { selector: selector.to_string(), reason: reason.into() }
    }
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid label selector {:?}: {}", self.selector, self.reason)
    }
}

impl std::error::Error for SelectorError {}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
    text: String,
}

impl Selector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Selector::default()
    }

    /// Parses the string form; an error names the offending part.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                if text.trim().is_empty() {
                    continue;
                }
                return Err(SelectorError::new(text, "empty requirement"));
            }
            requirements.push(
                parse_requirement(part)
                    .map_err(|why| SelectorError::new(text, format!("{why} in {part:?}")))?,
            );
        }
        Ok(Selector { requirements, text: text.trim().to_string() })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        })
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, SelectorError> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (index, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(SelectorError::new(text, "unbalanced parentheses"));
        }
    }
    if depth != 0 {
        return Err(SelectorError::new(text, "unbalanced parentheses"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    if let Some((key, value)) = part.split_once("!=") {
        return Ok(Requirement::NotIn(check_key(key.trim())?, set([value.trim()])?));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        return Ok(Requirement::In(check_key(key.trim())?, set([value.trim()])?));
    }
    for (word, in_set) in [(" notin ", false), (" in ", true)] {
        if let Some((key, values)) = part.split_once(word) {
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| "expected a parenthesised value list".to_string())?;
            let values = set(inner.split(',').map(str::trim))?;
            let key = check_key(key.trim())?;
            return Ok(if in_set {
                Requirement::In(key, values)
            } else {
                Requirement::NotIn(key, values)
            });
        }
    }
    Ok(Requirement::Exists(check_key(part)?))
}

fn check_key(key: &str) -> Result<String, String> {
    let valid = !key.is_empty()
        && key.len() <= 316
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if valid { Ok(key.to_string()) } else { Err(format!("invalid key {key:?}")) }
}

fn set<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<BTreeSet<String>, String> {
    values
        .into_iter()
        .map(|value| {
            let valid = value.len() <= 63
                && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if valid { Ok(value.to_string()) } else { Err(format!("invalid value {value:?}")) }
        })
        .collect()
}
