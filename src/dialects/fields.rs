//! Reading vendor payloads: ids for id-less formats, timestamps, digests, pull references and
//! the lenient or strict JSON members every dialect needs alike.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::Unexpected;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::DialectError;
use crate::event::Kind;

/// The kind a dialect's `EVENT_TYPES` table gives a vendor type: the first row naming it.
pub(crate) fn kind_in(table: &[(&str, Kind)], name: &str) -> Option<Kind> {
    table.iter().find(|(n, _)| *n == name).map(|row| row.1)
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

/// Whether `d` is a content digest a registry serves: `sha256:`, `sha384:` or `sha512:` and that
/// many lowercase hex digits. Several vendors' samples carry placeholders, truncated digests or
/// git SHAs in digest fields; those are dropped rather than published as digests.
pub(crate) fn is_digest(d: &str) -> bool {
    let len = match d.split_once(':') {
        Some(("sha256", hex)) => (hex, 64),
        Some(("sha384", hex)) => (hex, 96),
        Some(("sha512", hex)) => (hex, 128),
        _ => return false,
    };
    len.0.len() == len.1 && len.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `digest` when it is a real one (see [`is_digest`]).
pub(crate) fn real_digest<S: AsRef<str>>(digest: Option<S>) -> Option<String> {
    digest.filter(|d| is_digest(d.as_ref())).map(|d| d.as_ref().to_owned())
}

/// The string member `key` of a JSON object: absent or `null` is `None`, another type is the
/// sender's error, naming `field`.
pub(crate) fn text_field<'v>(
    obj: &'v Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'v str>, DialectError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => {
            Err(DialectError::Invalid { field, reason: format!("{} is not a string", unexpected(other)) })
        }
    }
}

/// A JSON value as a non-empty string, if it is one.
pub(crate) fn non_empty_str(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A member read leniently: `None` when absent, empty or not a string. Used for fields beyond
/// those that identify an event, which vendors omit (`omitempty`) or fill inconsistently.
pub(crate) fn str_member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    non_empty_str(object.get(key))
}

/// An object member, `None` when absent or of another type.
pub(crate) fn object_member<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    object.get(key).and_then(Value::as_object)
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

/// The offset where `json` first nests arrays and objects deeper than `max`, if it does. Strings
/// are skipped (brackets in them do not count); `json` is not validated otherwise.
pub(crate) fn deeper_than(json: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut i) = (0usize, 0);
    while let Some(n) = memchr::memchr3(b'"', b'[', b'{', &json[i..]).map(|n| i + n) {
        // Closing brackets between here and there.
        depth = depth.saturating_sub(json[i..n].iter().filter(|b| matches!(b, b']' | b'}')).count());
        if json[n] == b'"' {
            // To the closing quote, jumping from one quote or backslash to the next (a body is
            // mostly long strings); a backslash takes the character after it along.
            let mut j = n + 1;
            loop {
                match memchr::memchr2(b'"', b'\\', json.get(j..).unwrap_or_default()) {
                    Some(k) if json[j + k] == b'\\' => j += k + 2,
                    Some(k) => {
                        j += k;
                        break;
                    }
                    None => {
                        j = json.len();
                        break;
                    }
                }
            }
            i = j + 1;
        } else {
            depth += 1;
            if depth > max {
                return Some(n);
            }
            i = n + 1;
        }
        if i >= json.len() {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod depth_tests {
    use super::deeper_than;

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert_eq!(deeper_than(br#"{"a":[1,{"b":[]}]}"#, 4), None);
        assert_eq!(deeper_than(br#"{"a":[1,{"b":[]}]}"#, 3), Some(13));
        // Siblings do not add up; brackets and escaped quotes inside strings do not count.
        assert_eq!(deeper_than(br#"[[],[],[[]],{}]"#, 3), None);
        assert_eq!(deeper_than(br#"{"x":"[[[[\"{{{{","y":[]}"#, 2), None);
        assert_eq!(deeper_than(br#"{"x":"\\","y":[[]]}"#, 2), Some(15));
        let deep = format!("{}{}", "[".repeat(101), "]".repeat(101));
        assert_eq!(deeper_than(deep.as_bytes(), 100), Some(100));
        assert_eq!(deeper_than(deep.as_bytes(), 101), None);
        assert_eq!(deeper_than(b"\"unterminated [[[", 1), None);
    }
}
