//! Normalize: one module per registry dialect turns a verified request into [`Occurrence`]s.
//!
//! A dialect is a [`DialectSpec`] constant in its own file; [`REGISTRY`] lists them. Adding a
//! registry is one new module plus one line there. Dialects never see an unverified request: the
//! only way in is [`normalize`], which takes a [`VerifiedRequest`].

mod harbor;
mod msr;
mod root;
mod scan;

use chrono::{DateTime, Utc};
use serde::de::Unexpected;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::Occurrence;
use crate::verify::{Scheme, VerifiedRequest};

/// Every dialect regbridge speaks. The first three back the built-in endpoints of the same name.
pub const REGISTRY: &[&DialectSpec] = &[&root::DIALECT, &harbor::DIALECT, &msr::DIALECT];

/// A registry dialect: its name (also the `registry` extension), how its senders authenticate and
/// the pure function that reads its payloads.
pub struct DialectSpec {
    pub name: &'static str,
    /// The verification scheme an endpoint of this dialect uses unless configured otherwise.
    pub scheme: Scheme,
    pub(crate) normalize: fn(&Input<'_>) -> Result<Normalized, DialectError>,
}

impl std::fmt::Debug for DialectSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Look a dialect up by name; the error lists the valid names.
pub fn by_name(name: &str) -> Result<&'static DialectSpec, String> {
    REGISTRY.iter().copied().find(|d| d.name == name).ok_or_else(|| {
        let names: Vec<_> = REGISTRY.iter().map(|d| d.name).collect();
        format!("unknown dialect `{name}` (valid: {})", names.join(", "))
    })
}

/// The two body media types the ingress accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`
    Json,
    /// `application/cloudevents+json` (structured-mode CloudEvent)
    CloudEvents,
}

/// What a dialect's normalizer reads: the verified body, already parsed once.
pub(crate) struct Input<'a> {
    /// Endpoint name; part of the digest id of unsigned formats without an id of their own.
    pub endpoint: &'a str,
    pub media: MediaType,
    pub body: &'a [u8],
    pub json: &'a Value,
}

/// A dialect's answer: events, or a well-formed payload whose type regbridge does not map (which
/// is acknowledged and counted, never an error: senders must not retry it forever).
#[derive(Debug, PartialEq)]
pub enum Normalized {
    Events(Vec<Occurrence>),
    Unmapped { origtype: String },
}

/// Why a payload cannot be read; all of these are the sender's fault (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("payload lacks `{0}`")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl DialectError {
    /// Stable machine-readable reason for problem bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::Missing(_) => "missing_field",
            Self::Invalid { .. } => "invalid_field",
        }
    }
}

/// Parse the verified body once and hand it to the endpoint's dialect. Returns the parsed JSON
/// too, so the caller can keep it verbatim in `data.original` without parsing twice.
pub fn normalize(
    dialect: &DialectSpec,
    endpoint: &str,
    req: &VerifiedRequest,
) -> Result<(Normalized, Value), DialectError> {
    let json: Value = serde_json::from_slice(req.body()).map_err(DialectError::InvalidJson)?;
    let input = Input { endpoint, media: req.media(), body: req.body(), json: &json };
    let normalized = (dialect.normalize)(&input)?;
    Ok((normalized, json))
}

/// The id of an occurrence from a format that carries none: a digest of the endpoint name and the
/// raw body, so a sender's retry of the same delivery yields the same id.
pub(crate) fn digest_id(endpoint: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(endpoint.as_bytes());
    h.update(b"\n");
    h.update(body);
    hex::encode(h.finalize())
}

/// The id of the `index`-th of `total` occurrences fanned out from one payload.
pub(crate) fn fan_out_id(base: &str, index: usize, total: usize) -> String {
    if total > 1 {
        format!("{base}#{index}")
    } else {
        base.to_owned()
    }
}

/// An RFC 3339 timestamp from the payload's `field`.
pub(crate) fn parse_time(field: &'static str, s: &str) -> Result<DateTime<Utc>, DialectError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| DialectError::Invalid { field, reason: e.to_string() })
}

/// How serde names a JSON value's type in an "invalid type" error.
pub(crate) fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// `Some(s)` unless `s` is empty: vendors send `""` for "unknown".
pub(crate) fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The parts of a Docker-style image reference (`host/repo/path:tag@digest`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ImageRef {
    pub host: Option<String>,
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Split a pull reference the way Docker does: the first path component is a host only if it
/// contains `.` or `:` or is `localhost`. An `http(s)://` prefix is dropped first. Empty tags
/// (`repo:`) and empty parts become `None`.
pub(crate) fn parse_reference(reference: &str) -> ImageRef {
    let r =
        reference.strip_prefix("https://").or_else(|| reference.strip_prefix("http://")).unwrap_or(reference);
    let (r, digest) = match r.split_once('@') {
        Some((name, digest)) => (name, non_empty(Some(digest))),
        None => (r, None),
    };
    let (host, path) = match r.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first.to_owned()), rest)
        }
        _ => (None, r),
    };
    // A `:` after the last `/` separates the tag; one before it belongs to a host:port.
    let (repo, tag) = match path.rfind(':') {
        Some(i) if !path[i..].contains('/') => (&path[..i], non_empty(Some(&path[i + 1..]))),
        _ => (path, None),
    };
    ImageRef { host, repository: non_empty(Some(repo)), tag, digest }
}

#[cfg(test)]
mod tests;
