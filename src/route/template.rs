//! Destination templates (`registry.{registry}.{noun}`), parsed once, rendered per event.

/// The values a template may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    Endpoint,
    Registry,
    Noun,
    Verb,
    Repository,
    Tag,
}

const VARS: &[(&str, Var)] = &[
    ("endpoint", Var::Endpoint),
    ("registry", Var::Registry),
    ("noun", Var::Noun),
    ("verb", Var::Verb),
    ("repository", Var::Repository),
    ("tag", Var::Tag),
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(Var),
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What one event offers to templates.
pub struct Values<'a> {
    pub endpoint: &'a str,
    pub registry: &'a str,
    pub noun: &'a str,
    pub verb: &'a str,
    pub repository: Option<&'a str>,
    pub tag: Option<&'a str>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let close = rest[open..].find('}').ok_or_else(|| format!("unclosed `{{` in `{source}`"))? + open;
            let name = &rest[open + 1..close];
            let var = VARS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
                let names: Vec<_> = VARS.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                format!("unknown placeholder `{{{name}}}` in `{source}` (valid: {})", names.join(", "))
            })?;
            parts.push(Part::Var(var));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        if source.contains('}') && parts.iter().all(|p| matches!(p, Part::Lit(_))) {
            return Err(format!("stray `}}` in `{source}`"));
        }
        Ok(Self { source: source.to_owned(), parts })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Renders with each substituted value's disallowed characters replaced by `_` (a repository
    /// `library/nginx` becomes `library_nginx` in a Kafka topic). Unknown values render as `_`.
    pub fn render(&self, v: &Values<'_>, char_ok: fn(char) -> bool) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for part in &self.parts {
            let value = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var(Var::Endpoint) => Some(v.endpoint),
                Part::Var(Var::Registry) => Some(v.registry),
                Part::Var(Var::Noun) => Some(v.noun),
                Part::Var(Var::Verb) => Some(v.verb),
                Part::Var(Var::Repository) => v.repository,
                Part::Var(Var::Tag) => v.tag,
            };
            match value.filter(|s| !s.is_empty()) {
                Some(s) => out.extend(s.chars().map(|c| if char_ok(c) { c } else { '_' })),
                None => out.push('_'),
            }
        }
        out
    }
}
