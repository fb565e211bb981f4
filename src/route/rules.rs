//! The rules file's shape (`REGBRIDGE_ROUTES`), exactly as users write it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::sinks::ContentMode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub routes: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    pub to: Vec<TargetSpec>,
    /// Stop evaluating later rules when this one matches.
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

/// Every given criterion must hold; a list holds when any element does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    #[serde(default)]
    pub endpoint: OneOrMany,
    #[serde(default)]
    pub registry: OneOrMany,
    /// Globs over the CloudEvents `type`.
    #[serde(default, rename = "type")]
    pub ty: OneOrMany,
    /// Globs over the repository (`*` stays within one path segment, `**` crosses them).
    #[serde(default)]
    pub repository: OneOrMany,
    /// A regular expression searched in the tag.
    pub tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            Self::None => &[],
            Self::One(s) => std::slice::from_ref(s),
            Self::Many(v) => v,
        }
    }
}

/// `{ sink: kafka, topic: ..., mode: structured }`; the name fields depend on the sink and are
/// checked against it when the rules are compiled.
#[derive(Debug, Deserialize)]
pub struct TargetSpec {
    pub sink: String,
    pub mode: Option<ContentMode>,
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}
