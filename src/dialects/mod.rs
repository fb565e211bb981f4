//! Normalize: one module per registry dialect turns a verified request into [`Occurrence`]s.
//!
//! A dialect is a [`DialectSpec`] constant in its own file; [`REGISTRY`] lists them. Adding a
//! registry is one new module plus one line there. Dialects never see an unverified request: the
//! only way in is [`normalize`], which takes a [`VerifiedRequest`].

mod acr;
mod ce;
mod cloudevents;
mod distribution;
mod dockerhub;
mod ecr;
mod fields;
mod gar;
mod github;
mod harbor;
mod jfrog;
mod msr;
mod nexus;
mod quay;
mod root;
mod scan;

use std::cell::{Cell, OnceCell};
use std::sync::LazyLock;

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use crate::event::{Occurrence, Original};
use crate::verify::{HmacSpec, Scheme, VerifiedRequest};
pub(crate) use fields::{
    digest_id, fan_out_id, is_digest, kind_in, non_empty, non_empty_str, object_member, parse_reference,
    parse_time, real_digest, str_member, text_field, unexpected, ImageRef, Text,
};

/// The deepest nesting of arrays and objects a body may have.
pub const MAX_DEPTH: usize = 100;

/// Every dialect regbridge speaks; those with a variable back the built-in endpoints of the same
/// name.
pub const REGISTRY: &[&DialectSpec] = &[
    &root::DIALECT,
    &harbor::DIALECT,
    &msr::DIALECT,
    &distribution::DIALECT,
    &distribution::GITLAB,
    &dockerhub::DIALECT,
    &quay::DIALECT,
    &github::DIALECT,
    &jfrog::DIALECT,
    &nexus::DIALECT,
    &acr::DIALECT,
    &gar::DIALECT,
    &ecr::DIALECT,
    &cloudevents::DIALECT,
];

/// A registry dialect: its name (also the `registry` extension), how its senders authenticate and
/// the pure function that reads its payloads.
pub struct DialectSpec {
    pub name: &'static str,
    /// The verification scheme an endpoint of this dialect uses unless configured otherwise.
    pub scheme: Scheme,
    /// The variable whose credentials enable the built-in endpoint of this name; `None`: only
    /// named endpoints of the config file use it.
    pub env: Option<&'static str>,
    /// The header the `authorization` scheme compares (unless an endpoint names another).
    pub auth_header: &'static str,
    /// The signature header and forms of the `hmac` scheme.
    pub hmac: Option<&'static HmacSpec>,
    /// Its senders validate the endpoint first the CloudEvents webhook way (`OPTIONS` with
    /// `WebHook-Request-Origin`).
    pub webhook_validation: bool,
    pub(crate) normalize: fn(&Input<'_>) -> Result<Normalized, DialectError>,
}

impl DialectSpec {
    /// A dialect authenticating with `scheme` through the `Authorization` header or the query,
    /// with a built-in endpoint enabled by `env`.
    pub(crate) const fn new(
        name: &'static str,
        scheme: Scheme,
        env: Option<&'static str>,
        normalize: fn(&Input<'_>) -> Result<Normalized, DialectError>,
    ) -> Self {
        Self {
            name,
            scheme,
            env,
            auth_header: "authorization",
            hmac: None,
            webhook_validation: false,
            normalize,
        }
    }

    pub(crate) const fn with_webhook_validation(self) -> Self {
        Self { webhook_validation: true, ..self }
    }

    pub(crate) const fn with_hmac(self, hmac: &'static HmacSpec) -> Self {
        Self { hmac: Some(hmac), ..self }
    }
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

/// The body media types the ingress accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`, or another `…+json` type (Distribution's
    /// `application/vnd.docker.distribution.events.v2+json`).
    Json,
    /// `application/cloudevents+json` (structured-mode CloudEvent)
    CloudEvents,
    /// `application/cloudevents-batch+json` (a JSON array of structured-mode CloudEvents)
    CloudEventsBatch,
}

impl MediaType {
    /// The media type of a `Content-Type` essence, if it is one regbridge reads.
    pub fn of(essence: &str) -> Option<Self> {
        let is = |t: &str| essence.eq_ignore_ascii_case(t);
        if is("application/cloudevents+json") {
            Some(Self::CloudEvents)
        } else if is("application/cloudevents-batch+json") {
            Some(Self::CloudEventsBatch)
        } else if is("application/json")
            || essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
        {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// What one request may turn into: at most `max_events` events, whose own parts of the payload
/// (`data.original` of fanned-out events) come to at most `max_output` bytes together. A
/// dialect checks them before it builds what they bound.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub max_events: usize,
    pub max_output: usize,
}

/// How an endpoint asks its dialect to read: its bounds, and whether unknown types pass through.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reading {
    pub bounds: Bounds,
    pub passthrough: bool,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { max_events: 1000, max_output: 4 << 20 }
    }
}

/// What a dialect's normalizer reads: the verified body and headers, and the body's JSON tree
/// once asked for.
pub(crate) struct Input<'a> {
    /// Endpoint name; part of the digest id of unsigned formats without an id of their own.
    pub endpoint: &'a str,
    pub media: MediaType,
    pub body: &'a [u8],
    pub headers: &'a HeaderMap,
    /// The raw query string of the request.
    pub query: &'a str,
    pub bounds: Bounds,
    /// The endpoint publishes events of types it does not know as they are, instead of
    /// acknowledging them as unmapped (`passthrough: true`; the `cloudevents` dialect).
    pub passthrough: bool,
    json: OnceCell<Value>,
    /// Entries of the payload that are not about an artifact a consumer can pull (a layer blob):
    /// acknowledged and counted, not published.
    skipped: Cell<usize>,
    /// Entries of a known dialect whose type is not mapped: acknowledged and counted.
    unmapped: Cell<usize>,
}

/// No headers, for normalizers given a body alone (tests, benchmarks).
static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

impl<'a> Input<'a> {
    pub fn new(endpoint: &'a str, media: MediaType, body: &'a [u8]) -> Self {
        Self {
            endpoint,
            media,
            body,
            headers: &NO_HEADERS,
            query: "",
            bounds: Bounds::default(),
            passthrough: false,
            json: OnceCell::new(),
            skipped: Cell::new(0),
            unmapped: Cell::new(0),
        }
    }

    /// A header's value as text, trimmed; `None` when absent, empty or not text.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A query parameter, decoded; `None` when absent or empty.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .filter(|v| !v.is_empty())
    }

    /// Counts an entry of a type not mapped, left out of a batch (see `unmapped`).
    pub fn unmapped_entry(&self) {
        self.unmapped.set(self.unmapped.get() + 1);
    }

    /// Counts an entry acknowledged without an event (see `skipped`).
    pub fn skip(&self) {
        self.skipped.set(self.skipped.get() + 1);
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
/// is acknowledged and counted, never an error: senders must not retry it forever), or a
/// handshake the sender needs answered before it delivers (GitHub's `ping`, Event Grid's
/// subscription validation).
#[derive(Debug, PartialEq)]
pub enum Normalized {
    Events(Vec<Occurrence>),
    Unmapped { origtype: String },
    Answer(Handshake),
}

/// The answer to a handshake: status and JSON body, published nowhere.
#[derive(Debug, PartialEq)]
pub struct Handshake {
    pub status: u16,
    pub body: Value,
}

/// What [`normalize`] made of a request.
#[derive(Debug)]
pub struct Normalization {
    pub normalized: Normalized,
    /// The whole payload for `data.original` (`None` when switched off, or nothing to publish).
    pub original: Option<Original>,
    /// Entries acknowledged without an event (not about a pullable artifact).
    pub skipped: usize,
    /// Entries of types not mapped: those a batch left out, or at least 1 when the whole payload
    /// is [`Normalized::Unmapped`].
    pub unmapped: usize,
}

/// Why a payload cannot be read; all of these are the sender's fault (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum DialectError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("body is not valid JSON: not UTF-8 from byte {offset} on")]
    NotUtf8 { offset: usize },
    #[error("body nests arrays and objects deeper than {max} levels (from byte {offset} on), which the JSON parsers of consumers do not read")]
    TooDeep { max: usize, offset: usize },
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
            Self::InvalidJson(_) | Self::NotUtf8 { .. } | Self::TooDeep { .. } => "invalid_json",
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
    req: &VerifiedRequest<'_>,
    keep_original: bool,
    reading: Reading,
) -> Result<Normalization, DialectError> {
    let Reading { bounds, passthrough } = reading;
    // JSON is UTF-8 (RFC 8259), and everything downstream carries parts of the body as text. A
    // dialect that skips the fields it does not read (Root's borrowed parse) would otherwise let
    // a stray byte through into `data.original`, and every consumer's parser would choke on it.
    // Checked here, once, for every dialect.
    if let Err(e) = std::str::from_utf8(req.body()) {
        return Err(DialectError::NotUtf8 { offset: e.valid_up_to() });
    }
    // Likewise nesting: a parser that skips what it does not read has no depth limit, but the
    // event carries the body in `data.original`, two levels further down, and serde_json (and
    // many another parser) stops at 128. Nothing a registry sends comes near this.
    if let Some(offset) = fields::deeper_than(req.body(), MAX_DEPTH) {
        return Err(DialectError::TooDeep { max: MAX_DEPTH, offset });
    }
    let input = Input {
        bounds,
        passthrough,
        headers: req.headers(),
        query: req.query(),
        ..Input::new(endpoint, req.media(), req.body())
    };
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
    let unmapped = match normalized {
        Normalized::Unmapped { .. } => input.unmapped.get().max(1),
        _ => input.unmapped.get(),
    };
    Ok(Normalization { normalized, original, skipped: input.skipped.get(), unmapped })
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

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
#[cfg(test)]
mod rng;

#[cfg(test)]
mod strict;
