//! Every `REGBRIDGE_` variable regbridge reads, so that a misspelled one is named, not ignored.
//!
//! A typo in a credential variable (`REGBRIDGE_HARBOUR_AUTH`) leaves its endpoint disabled, and
//! the 404 says nothing of why. The names come from where they are read: the settings below, each
//! dialect's credential variable, each sink's own list and the per-endpoint suffixes, so a new
//! dialect or sink brings its names along.

use super::{built_in, Env};
use crate::sinks;

/// The service-wide settings (the per-endpoint, per-dialect and per-sink ones are derived).
const SETTINGS: &[&str] = &[
    "REGBRIDGE_LISTEN",
    "REGBRIDGE_CONFIG",
    "REGBRIDGE_ROUTES",
    "REGBRIDGE_LOG_FORMAT",
    "REGBRIDGE_UNAUTHENTICATED",
    "REGBRIDGE_INCLUDE_ORIGINAL",
    "REGBRIDGE_CONTENT_MODE",
    "REGBRIDGE_RATE_LIMIT",
    "REGBRIDGE_RATE_BURST",
    "REGBRIDGE_BODY_LIMIT",
    "REGBRIDGE_BODY_TIMEOUT",
    "REGBRIDGE_HEADER_TIMEOUT",
    "REGBRIDGE_KEEP_ALIVE",
    "REGBRIDGE_MAX_EVENTS_PER_REQUEST",
    "REGBRIDGE_MAX_IN_FLIGHT",
    "REGBRIDGE_MAX_UPLOADS",
    "REGBRIDGE_MAX_UPLOADS_PER_ADDRESS",
    "REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS",
    "REGBRIDGE_PUBLISH_TIMEOUT",
    "REGBRIDGE_SHUTDOWN_TIMEOUT",
    "REGBRIDGE_OUTBOX",
    "REGBRIDGE_OUTBOX_DIR",
    "REGBRIDGE_OUTBOX_MAX_BYTES",
    "REGBRIDGE_OUTBOX_MAX_ATTEMPTS",
    "REGBRIDGE_DEDUPE",
    "REGBRIDGE_DEDUPE_TTL",
    "REGBRIDGE_DEDUPE_PREFIX",
    "REGBRIDGE_DEDUPE_TIMEOUT",
    "REGBRIDGE_DEDUPE_MAX_ENTRIES",
    "REGBRIDGE_REDIS_URL",
    "REGBRIDGE_TRUSTED_PROXIES",
    "REGBRIDGE_TLS_CERT",
    "REGBRIDGE_TLS_KEY",
    "REGBRIDGE_TLS_CLIENT_CA",
];

/// What every endpoint may set for itself: `REGBRIDGE_<ENDPOINT>_<SUFFIX>`.
const ENDPOINT_SUFFIXES: &[&str] = &["SIGNATURE_MODE", "TOLERANCE", "SOURCE", "ALLOW_FROM", "MAX_EVENT_AGE"];

/// Reserved for regbridge's own test suite (broker addresses), never read by the service.
const TEST_PREFIX: &str = "REGBRIDGE_TEST_";

/// A `REGBRIDGE_` variable that is set but read by nothing, and the known name nearest to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVariable {
    pub name: String,
    pub nearest: Option<String>,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown variable {}", self.name)?;
        match &self.nearest {
            Some(n) => write!(f, " (did you mean {n}?)"),
            None => write!(f, " (not a regbridge setting)"),
        }
    }
}

/// Every name regbridge knows, for the endpoints `endpoints`; names ending in `_` are prefixes.
fn known(endpoints: &[String]) -> Vec<String> {
    let mut names: Vec<String> = SETTINGS.iter().map(|s| (*s).to_owned()).collect();
    names.extend(built_in().map(|(_, var)| var.to_owned()));
    names.extend(sinks::REGISTRY.iter().flat_map(|s| s.env.iter().map(|v| (*v).to_owned())));
    for endpoint in endpoints {
        let upper = endpoint.to_ascii_uppercase().replace('-', "_");
        names.extend(ENDPOINT_SUFFIXES.iter().map(|s| format!("REGBRIDGE_{upper}_{s}")));
    }
    names
}

/// The `REGBRIDGE_` variables of `env` that nothing reads, sorted, each with its likely intent.
pub fn unknown_variables(env: &Env, endpoints: &[String]) -> Vec<UnknownVariable> {
    let known = known(endpoints);
    let is_known = |name: &str| {
        name.starts_with(TEST_PREFIX)
            || known.iter().any(|k| if k.ends_with('_') { name.starts_with(k.as_str()) } else { k == name })
    };
    let mut out: Vec<UnknownVariable> = env
        .names()
        .filter(|n| n.starts_with("REGBRIDGE_") && !is_known(n))
        .map(|name| UnknownVariable { nearest: nearest(name, &known), name: name.to_owned() })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The known full name closest to `name` by edit distance, if it is close enough to be a typo
/// of it (a third of the part after `REGBRIDGE_`, at least 2 edits).
fn nearest(name: &str, known: &[String]) -> Option<String> {
    let tail = |n: &str| n.strip_prefix("REGBRIDGE_").unwrap_or(n).to_owned();
    let wanted = tail(name);
    let (best, distance) = known
        .iter()
        .filter(|k| !k.ends_with('_'))
        .map(|k| (k, edit_distance(&wanted, &tail(k))))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (wanted.len() / 3).max(2)).then(|| best.clone())
}

/// Levenshtein distance over bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unknown(vars: &[&str], endpoints: &[&str]) -> Vec<UnknownVariable> {
        let env: Env = vars.iter().map(|v| (*v, "x")).collect();
        unknown_variables(&env, &endpoints.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn a_typo_is_named_with_the_nearest_known_name() {
        let found =
            unknown(&["REGBRIDGE_HARBOUR_AUTH", "REGBRIDGE_OUTBOX_MAXBYTES", "REGBRIDGE_WHATEVER"], &[]);
        let named: Vec<_> = found.iter().map(|u| (u.name.as_str(), u.nearest.as_deref())).collect();
        assert_eq!(
            named,
            [
                ("REGBRIDGE_HARBOUR_AUTH", Some("REGBRIDGE_HARBOR_AUTH")),
                ("REGBRIDGE_OUTBOX_MAXBYTES", Some("REGBRIDGE_OUTBOX_MAX_BYTES")),
                ("REGBRIDGE_WHATEVER", None),
            ]
        );
        assert_eq!(
            found[0].to_string(),
            "unknown variable REGBRIDGE_HARBOUR_AUTH (did you mean REGBRIDGE_HARBOR_AUTH?)"
        );
    }

    #[test]
    fn passed_through_per_endpoint_and_foreign_variables_are_known() {
        let vars = [
            "REGBRIDGE_KAFKA_SASL_USERNAME",
            "REGBRIDGE_KAFKA_BATCH_NUM_MESSAGES",
            "REGBRIDGE_ROOT_TOLERANCE",
            "REGBRIDGE_HARBOR_PROD_SOURCE",
            "REGBRIDGE_NATS_CREDS_FILE",
            "REGBRIDGE_GITHUB_SECRETS",
            "REGBRIDGE_TEST_KAFKA",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "HOME",
        ];
        assert_eq!(unknown(&vars, &["root", "harbor-prod"]), []);
        // Not an endpoint of this configuration: its per-endpoint variable is unknown.
        assert_eq!(unknown(&["REGBRIDGE_HARBOR_QA_SOURCE"], &["root"]).len(), 1);
    }

    /// Every `"REGBRIDGE_…"` literal in the sources (but this file's typos) is a name this
    /// module knows: a setting added without its name here would be reported as a typo.
    #[test]
    fn every_variable_the_sources_name_is_known() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let literal = regex::Regex::new(r#""(REGBRIDGE_[A-Z0-9_]+)""#).unwrap();
        let mut dirs = vec![root];
        let mut names = std::collections::BTreeSet::new();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("config/known.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    names.extend(literal.captures_iter(&text).map(|c| c[1].to_owned()));
                }
            }
        }
        assert!(names.len() > 40, "{names:?}");
        let names: Vec<&str> = names.iter().map(String::as_str).filter(|n| !n.ends_with('_')).collect();
        // The built-in endpoints, and the named one the configuration tests declare.
        let endpoints: Vec<&str> = built_in().map(|(n, _)| n).chain(["harbor-prod"]).collect();
        assert_eq!(unknown(&names, &endpoints), []);
    }
}
