//! Normalize: one module per registry dialect turns a verified request into [`Occurrence`]s.
//!
//! A dialect is a [`DialectSpec`] constant in its own file; [`REGISTRY`] lists them. Adding a
//! registry is one new module plus one line there. Dialects never see an unverified request: the
//! only way in is [`normalize`], which takes a [`VerifiedRequest`].

mod harbor;
mod msr;
mod root;
mod scan;

use std::borrow::Cow;
use std::cell::OnceCell;

use chrono::{DateTime, Utc};
use serde::de::Unexpected;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::{Occurrence, Original};
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

/// What one request may turn into: at most `max_events` events, whose own parts of the payload
/// (`data.original` of fanned-out events) come to at most `max_output` bytes together. A
/// dialect checks them before it builds what they bound.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_events: usize,
    pub max_output: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { max_events: 1000, max_output: 4 << 20 }
    }
}

/// What a dialect's normalizer reads: the verified body, and its JSON tree once asked for.
pub(crate) struct Input<'a> {
    /// Endpoint name; part of the digest id of unsigned formats without an id of their own.
    pub endpoint: &'a str,
    pub media: MediaType,
    pub body: &'a [u8],
    pub bounds: Bounds,
    json: OnceCell<Value>,
}

impl<'a> Input<'a> {
    pub fn new(endpoint: &'a str, media: MediaType, body: &'a [u8]) -> Self {
        Self { endpoint, media, body, bounds: Bounds::default(), json: OnceCell::new() }
    }

    /// The body as a JSON tree, parsed on first use. A dialect with one fixed shape (Root)
    /// deserializes its structs straight from `body` instead and never builds the tree.
    pub fn json(&self) -> Result<&Value, DialectError> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        let json = serde_json::from_slice(self.body).map_err(DialectError::InvalidJson)?;
        Ok(self.json.get_or_init(|| json))
    }
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
    #[error("body is not valid JSON: not UTF-8 from byte {offset} on")]
    NotUtf8 { offset: usize },
    #[error("payload lacks `{0}`")]
    Missing(&'static str),
    #[error("`{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the payload would become {count} events, over the limit of {max} per request (REGBRIDGE_MAX_EVENTS_PER_REQUEST)")]
    TooManyEvents { count: usize, max: usize },
    #[error("the payload's events would carry {size} bytes of it, over the bound of {max} per request (4 × REGBRIDGE_BODY_LIMIT)")]
    OutputTooLarge { size: usize, max: usize },
}

impl DialectError {
    /// Stable machine-readable reason for problem bodies, logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) | Self::NotUtf8 { .. } => "invalid_json",
            Self::Missing(_) => "missing_field",
            Self::Invalid { .. } => "invalid_field",
            Self::TooManyEvents { .. } => "too_many_events",
            Self::OutputTooLarge { .. } => "event_too_large",
        }
    }

    /// What a request would become is too much (413), rather than malformed (400).
    pub fn too_large(&self) -> bool {
        matches!(self, Self::TooManyEvents { .. } | Self::OutputTooLarge { .. })
    }
}

/// Hand the verified body to the endpoint's dialect. With `keep_original`, also returns the
/// body as compact JSON text for `data.original`, which needs no second parse.
pub fn normalize(
    dialect: &DialectSpec,
    endpoint: &str,
    req: &VerifiedRequest,
    keep_original: bool,
    bounds: Bounds,
) -> Result<(Normalized, Option<Original>), DialectError> {
    // JSON is UTF-8 (RFC 8259), and everything downstream carries parts of the body as text. A
    // dialect that skips the fields it does not read (Root's borrowed parse) would otherwise let
    // a stray byte through into `data.original`, and every consumer's parser would choke on it.
    // Checked here, once, for every dialect.
    if let Err(e) = std::str::from_utf8(req.body()) {
        return Err(DialectError::NotUtf8 { offset: e.valid_up_to() });
    }
    let input = Input { bounds, ..Input::new(endpoint, req.media(), req.body()) };
    let mut normalized = (dialect.normalize)(&input)?;
    if let Normalized::Events(occurrences) = &mut normalized {
        // Every dialect, whatever it checked itself on the way.
        if occurrences.len() > bounds.max_events {
            return Err(DialectError::TooManyEvents { count: occurrences.len(), max: bounds.max_events });
        }
        occurrences.iter().try_for_each(check_attribute_text)?;
        if !keep_original {
            occurrences.iter_mut().for_each(|o| o.part = None);
        }
    }
    // Only after the dialect accepted the body: the compactor relies on it being JSON.
    let original = match keep_original && matches!(normalized, Normalized::Events(_)) {
        true => Some(
            Original::compact(req.body())
                .map_err(|e| DialectError::InvalidJson(<serde_json::Error as serde::de::Error>::custom(e)))?,
        ),
        false => None,
    };
    Ok((normalized, original))
}

/// CloudEvents forbids control characters (U+0000–U+001F, U+007F–U+009F) in attribute values,
/// and the header-based bindings cannot carry a line break (async-nats panics on one). The payload
/// fields that become attributes (`id`, `source`, `subject`, `origtype`, `partitionkey`) are
/// checked once here, for every dialect, so no sink ever sees one.
fn check_attribute_text(occ: &Occurrence) -> Result<(), DialectError> {
    let fields = [
        ("id", Some(&occ.id)),
        ("origtype", Some(&occ.origtype)),
        ("source", occ.source.as_ref()),
        ("host", occ.host.as_ref()),
        ("repository", occ.repository.as_ref()),
        ("tag", occ.tag.as_ref()),
        ("digest", occ.digest.as_ref()),
    ];
    // RFC 3339 (which CloudEvents' `time` is) has four-digit years.
    if let Some(t) = occ.time.filter(|t| !(0..=9999).contains(&chrono::Datelike::year(t))) {
        return Err(DialectError::Invalid {
            field: "time",
            reason: format!("{t} is outside the years 0000-9999"),
        });
    }
    for (field, value) in fields {
        if let Some(c) = value.and_then(|v| v.chars().find(|c| c.is_control())) {
            return Err(DialectError::Invalid {
                field,
                reason: format!(
                    "contains the control character U+{:04X}, which CloudEvents attributes do not allow",
                    u32::from(c)
                ),
            });
        }
    }
    Ok(())
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

/// A JSON string field, borrowed from the body unless it contains escapes (serde's own
/// `#[serde(borrow)]` cannot borrow through an `Option<Cow<str>>`).
pub(crate) struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor(std::marker::PhantomData))
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

#[cfg(test)]
mod properties;
