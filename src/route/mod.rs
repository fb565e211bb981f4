//! Route: pure rules, compiled at start-up, that map one event to its sink targets.
//!
//! Every matching rule delivers (fan-out) unless a matching rule is `final`. Without a rules file
//! every event goes to every configured sink at that sink's default destination.

mod index;
mod rules;
mod template;

use std::path::Path;

use serde_json::{json, Value};

pub use template::{Template, Values};

use crate::event::Occurrence;
use crate::sinks::{self, ContentMode, SinkSpec, Target};
use index::{Criteria, Index, Probe};
use rules::{OneOrMany, RulesFile, TargetSpec};

/// The compiled rules.
#[derive(Debug)]
pub struct Router {
    rules: Vec<Rule>,
    /// Which rules an event matches, looked up for all rules at once.
    index: Index,
    /// Content mode of targets that do not name one (`REGBRIDGE_CONTENT_MODE`).
    default_mode: ContentMode,
}

#[derive(Debug)]
struct Rule {
    name: String,
    targets: Vec<CompiledTarget>,
    is_final: bool,
}

#[derive(Debug)]
struct CompiledTarget {
    sink: &'static SinkSpec,
    name: Template,
    key: Option<Template>,
    /// `None`: the router's default.
    mode: Option<ContentMode>,
}

/// What routing looks at in an event.
pub struct RouteInput<'a> {
    pub endpoint: &'a str,
    pub registry: &'a str,
    /// The full CloudEvents type, `dev.regbridge.<noun>.<verb>.v1`.
    pub ty: &'a str,
    pub noun: &'a str,
    pub verb: &'a str,
    pub repository: Option<&'a str>,
    pub tag: Option<&'a str>,
}

impl<'a> RouteInput<'a> {
    /// What routing sees of one occurrence, published as `ty`, from endpoint `endpoint` of
    /// dialect `registry`.
    pub fn of(endpoint: &'a str, registry: &'a str, ty: &'a str, occ: &'a Occurrence) -> Self {
        Self {
            endpoint,
            registry,
            ty,
            noun: occ.kind.noun,
            verb: occ.kind.verb,
            repository: occ.repository.as_deref(),
            tag: occ.tag.as_deref(),
        }
    }
}

impl Router {
    /// Every event to every sink at its default destination.
    pub fn defaults(sinks: &[&'static SinkSpec]) -> Self {
        let targets = sinks
            .iter()
            .map(|s| CompiledTarget {
                sink: s,
                name: Template::parse(s.default_name).expect("built-in templates are valid"),
                key: s.default_key.map(|k| Template::parse(k).expect("built-in templates are valid")),
                mode: None,
            })
            .collect();
        let all = Rule { name: "default".into(), targets, is_final: false };
        let open = Criteria { endpoint: &[], registry: &[], ty: vec![], repository: vec![], tag: None };
        let index = Index::build(&[open]).expect("a rule without criteria compiles");
        Self { rules: vec![all], index, default_mode: ContentMode::Binary }
    }

    pub fn from_file(path: &Path, sinks: &[&'static SinkSpec]) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        Self::from_yaml(&text, sinks)
    }

    /// Compiles a rules document; every error names the rule and the field.
    pub fn from_yaml(text: &str, sinks: &[&'static SinkSpec]) -> Result<Self, String> {
        let file: RulesFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        let mut rules = Vec::with_capacity(file.routes.len());
        let mut criteria = Vec::with_capacity(file.routes.len());
        for spec in &file.routes {
            let ctx = |e: String| format!("route `{}`: {e}", spec.name);
            let m = &spec.matches;
            let targets = spec
                .to
                .iter()
                .map(|t| compile_target(t, sinks))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ctx)?;
            if targets.is_empty() {
                return Err(ctx("`to` lists no sink".into()));
            }
            criteria.push(Criteria {
                endpoint: m.endpoint.items(),
                registry: m.registry.items(),
                ty: globs(&m.ty),
                repository: globs(&m.repository),
                tag: m.tag.as_deref(),
            });
            rules.push(Rule { targets, is_final: spec.is_final, name: spec.name.clone() });
        }
        let index =
            Index::build(&criteria).map_err(|(i, e)| format!("route `{}`: {e}", file.routes[i].name))?;
        Ok(Self { rules, index, default_mode: ContentMode::Binary })
    }

    /// Sets the content mode of targets whose rule does not choose one.
    pub fn with_default_mode(mut self, mode: ContentMode) -> Self {
        self.default_mode = mode;
        self
    }

    /// The targets for one event, as `(sink name, target)`, without duplicates.
    pub fn route(&self, ev: &RouteInput<'_>) -> Vec<(&'static str, Target)> {
        let values = Values {
            endpoint: ev.endpoint,
            registry: ev.registry,
            noun: ev.noun,
            verb: ev.verb,
            repository: ev.repository,
            tag: ev.tag,
        };
        let mut out: Vec<(&'static str, Target)> = Vec::new();
        let probe = Probe {
            endpoint: ev.endpoint,
            registry: ev.registry,
            ty: ev.ty,
            repository: ev.repository,
            tag: ev.tag,
        };
        for rule in self.index.matching(&probe).iter().map(|i| &self.rules[i]) {
            for t in &rule.targets {
                let target = Target {
                    name: t.name.render(&values, t.sink.name_char_ok),
                    key: t.key.as_ref().map(|k| k.render(&values, t.sink.key_char_ok)),
                    mode: t.mode.unwrap_or(self.default_mode),
                };
                if !out.iter().any(|(s, x)| *s == t.sink.name && *x == target) {
                    out.push((t.sink.name, target));
                }
            }
            if rule.is_final {
                break;
            }
        }
        out
    }

    /// The compiled rules as JSON, for `check-config`.
    pub fn describe(&self) -> Value {
        Value::Array(
            self.rules
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "final": r.is_final,
                        "to": r.targets.iter().map(|t| json!({
                            "sink": t.sink.name,
                            "name": t.name.as_str(),
                            "key": t.key.as_ref().map(Template::as_str),
                            "mode": format!("{:?}", t.mode.unwrap_or(self.default_mode)).to_lowercase(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

fn compile_target(t: &TargetSpec, sinks: &[&'static SinkSpec]) -> Result<CompiledTarget, String> {
    let Some(spec) = sinks.iter().copied().find(|s| s.name == t.sink) else {
        sinks::by_name(&t.sink)?;
        return Err(format!("sends to sink `{}`, which is not configured", t.sink));
    };
    for field in t.fields.keys() {
        if field != spec.name_field && Some(field.as_str()) != spec.key_field {
            let mut valid: Vec<&str> = vec!["sink", "mode"];
            valid.extend([spec.name_field].into_iter().filter(|f| !f.is_empty()));
            valid.extend(spec.key_field);
            return Err(format!(
                "unknown key `{field}` for sink `{}` (valid: {})",
                spec.name,
                valid.join(", ")
            ));
        }
    }
    let name = t.fields.get(spec.name_field).map_or(spec.default_name, String::as_str);
    let key = spec.key_field.and_then(|k| t.fields.get(k)).map(String::as_str).or(spec.default_key);
    Ok(CompiledTarget {
        sink: spec,
        name: Template::parse(name)?,
        key: key.map(Template::parse).transpose()?,
        mode: t.mode,
    })
}

/// Shell-style globs as anchored regexes: `*` within a path segment, `**` across, `?` one char.
fn globs(list: &OneOrMany) -> Vec<String> {
    list.items()
        .iter()
        .map(|g| {
            let mut re = String::from("^");
            let mut chars = g.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '*' if chars.peek() == Some(&'*') => {
                        chars.next();
                        re.push_str(".*");
                    }
                    '*' => re.push_str("[^/]*"),
                    '?' => re.push_str("[^/]"),
                    c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
                }
            }
            re.push('$');
            re
        })
        .collect()
}

#[cfg(test)]
mod tests;
