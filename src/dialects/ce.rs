//! CloudEvents 1.0 as HTTP delivers them (structured, batched and binary mode), read into [`Event`]s.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::{parse_time, unexpected, DialectError, Input, MediaType};
use crate::event::Original;

/// One CloudEvent of a request, whichever mode carried it. Text is borrowed from the parsed body
/// or the headers unless it had to be decoded.
#[derive(Debug)]
pub(super) struct Event<'a> {
    pub id: Cow<'a, str>,
    pub ty: Cow<'a, str>,
    pub source: Cow<'a, str>,
    pub subject: Option<Cow<'a, str>>,
    /// As sent: how much a malformed one matters is the dialect's call (ACR's own samples carry
    /// one in an envelope it never needs), so [`Event::time`] parses it on demand.
    pub time: Option<Cow<'a, str>>,
    /// `data`, or `data_base64` decoded when its content type is JSON; `None` when absent or
    /// not JSON.
    pub data: Option<Cow<'a, Value>>,
    /// The structured-mode object (structured and batched modes), for a dialect that reads that
    /// format itself (Harbor).
    pub entry: Option<&'a Value>,
    /// Its own part of the payload for `data.original` when the body alone is not that: a batch
    /// entry among several, or a binary-mode event written out in structured mode (its attributes
    /// came in headers, which the body does not carry).
    pub part: Option<Original>,
}

impl Event<'_> {
    /// `time` as RFC 3339; a malformed one is the sender's error.
    pub fn time(&self) -> Result<Option<DateTime<Utc>>, DialectError> {
        self.time.as_deref().map(|t| parse_time("time", t)).transpose()
    }
}

/// Whether the request is CloudEvents at all: a CloudEvents media type, a binary-mode
/// `ce-specversion` header, or a JSON object (or array of them) with `specversion`, for relays
/// that rewrite the media type to `application/json`.
pub(super) fn is_cloudevent(input: &Input<'_>) -> Result<bool, DialectError> {
    if input.media != MediaType::Json || input.header("ce-specversion").is_some() {
        return Ok(true);
    }
    let has_spec = |v: &Value| v.get("specversion").is_some();
    Ok(match input.json()? {
        Value::Array(entries) => entries.first().is_some_and(has_spec),
        other => has_spec(other),
    })
}

/// Every event of the request, in order. A plain JSON body is binary mode when `ce-specversion`
/// is a header (the CloudEvents media types never are), else structured (an object) or batched
/// (an array).
pub(super) fn read<'a>(input: &'a Input<'_>) -> Result<Vec<Event<'a>>, DialectError> {
    if input.media == MediaType::Json {
        if let Some(spec) = input.header("ce-specversion") {
            return Ok(vec![binary(input, spec)?]);
        }
    }
    // The body's shape decides between structured and batched: a sender that labels a batch
    // `application/cloudevents+json` (or one event as a batch) still means what it sent.
    match input.json()? {
        Value::Array(entries) => {
            if entries.is_empty() {
                return Err(DialectError::Invalid { field: "body", reason: "an empty batch".into() });
            }
            let parts = batch_parts(input, entries)?;
            let mut events = entries
                .iter()
                .zip(parts)
                .map(|(entry, part)| Ok(Event { part, ..structured(entry)? }))
                .collect::<Result<Vec<_>, DialectError>>()?;
            let ids: Vec<&str> = events.iter().map(|e| &*e.id).collect();
            for (i, id) in repeated_ids(&ids).into_iter().enumerate() {
                if let Some(id) = id {
                    events[i].id = Cow::Owned(id);
                }
            }
            Ok(events)
        }
        other => Ok(vec![structured(other)?]),
    }
}

/// One structured-mode CloudEvent (a whole body or a batch entry).
pub(super) fn structured(entry: &Value) -> Result<Event<'_>, DialectError> {
    let Value::Object(o) = entry else {
        return Err(invalid_type(entry, "a CloudEvent object"));
    };
    check_spec(text(o, "specversion")?.ok_or(DialectError::Missing("specversion"))?)?;
    let required = |key: &'static str| match text(o, key)? {
        Some(s) if !s.is_empty() => Ok(Cow::Borrowed(s)),
        _ => Err(DialectError::Missing(key)),
    };
    let optional =
        |key: &'static str| Ok::<_, DialectError>(text(o, key)?.filter(|s| !s.is_empty()).map(Cow::Borrowed));
    let data = match (o.get("data"), text(o, "data_base64")?) {
        (Some(data), _) if !data.is_null() => Some(Cow::Borrowed(data)),
        (_, Some(encoded)) => base64_data(encoded, text(o, "datacontenttype")?)?.map(Cow::Owned),
        _ => None,
    };
    Ok(Event {
        id: required("id")?,
        ty: required("type")?,
        source: required("source")?,
        subject: optional("subject")?,
        time: optional("time")?,
        data,
        entry: Some(entry),
        part: None,
    })
}

/// The string member `key` of a JSON object; `null` is absent, any other type an error.
pub(super) fn text<'a>(
    o: &'a Map<String, Value>,
    key: &'static str,
) -> Result<Option<&'a str>, DialectError> {
    super::text_field(o, key, key)
}

/// The ids of a batch's entries made unique within it, by the rule Distribution envelopes follow:
/// an id the batch holds once is kept (`None` here); one it repeats becomes `<id>#<index>`, the
/// entry's position in the batch, so each entry's event has an id of its own and the sender's
/// retry of the same batch gives the same ones.
pub(super) fn repeated_ids(ids: &[&str]) -> Vec<Option<String>> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for id in ids {
        *seen.entry(id).or_default() += 1;
    }
    ids.iter().enumerate().map(|(i, id)| (seen[id] > 1).then(|| format!("{id}#{i}"))).collect()
}

/// Each batch entry's own part of the payload (`None` for a batch of one: the body is the
/// event's), after checking the batch against the request's bounds.
pub(super) fn batch_parts(
    input: &Input<'_>,
    entries: &[Value],
) -> Result<Vec<Option<Original>>, DialectError> {
    let max = input.bounds.max_events;
    if entries.len() > max {
        return Err(DialectError::TooManyEvents { count: entries.len(), max });
    }
    if entries.len() < 2 {
        return Ok(vec![None; entries.len()]);
    }
    // Entries re-rendered from the tree (key order kept) come to about the body's size.
    let rendered: Vec<Vec<u8>> =
        entries.iter().map(|e| serde_json::to_vec(e).expect("a JSON tree serializes")).collect();
    let size = rendered.iter().map(Vec::len).sum::<usize>();
    if size > input.bounds.max_output {
        return Err(DialectError::OutputTooLarge { size, max: input.bounds.max_output });
    }
    Ok(rendered.into_iter().map(|r| Some(Original::from_rendered(r))).collect())
}

/// A binary-mode event: attributes in `ce-*` headers, `data` the body (JSON: the ingress takes
/// nothing else).
fn binary<'a>(input: &'a Input<'_>, spec: &'a str) -> Result<Event<'a>, DialectError> {
    check_spec(spec)?;
    let attribute = |name: &'static str| input.header(name).map(|v| percent_decode(name, v)).transpose();
    let required = |name: &'static str| attribute(name)?.ok_or(DialectError::Missing(name));
    // A binary-mode event may carry no data at all.
    let data = match input.body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => Some(input.json()?),
    };
    let mut event = Event {
        id: required("ce-id")?,
        ty: required("ce-type")?,
        source: required("ce-source")?,
        subject: attribute("ce-subject")?,
        time: attribute("ce-time")?,
        data: data.map(Cow::Borrowed),
        entry: None,
        part: None,
    };
    event.part = Some(as_structured(input, spec, &event)?);
    Ok(event)
}

/// The binary-mode event as one structured-mode object: every `ce-*` header an attribute, the
/// content type `datacontenttype`, and the body, compacted byte for byte, its `data`.
fn as_structured(input: &Input<'_>, spec: &str, event: &Event<'_>) -> Result<Original, DialectError> {
    let mut attributes = Map::new();
    for (key, value) in
        [("specversion", spec), ("id", &*event.id), ("source", &*event.source), ("type", &*event.ty)]
    {
        attributes.insert(key.into(), value.into());
    }
    for (name, value) in input.headers.iter() {
        let (Some(key), Ok(value)) = (name.as_str().strip_prefix("ce-"), value.to_str()) else { continue };
        if !key.is_empty() && !attributes.contains_key(key) {
            attributes.insert(key.into(), percent_decode("ce-*", value.trim())?.into());
        }
    }
    if let Some(content_type) = input.header("content-type") {
        attributes.entry("datacontenttype").or_insert_with(|| content_type.into());
    }
    let mut out = serde_json::to_vec(&attributes).expect("strings serialize");
    if event.data.is_some() {
        let data = Original::compact(input.body)
            .map_err(|e| DialectError::InvalidJson(serde_json::Error::custom(e)))?;
        out.pop();
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.as_bytes());
        out.push(b'}');
    }
    Ok(Original::from_rendered(out))
}

/// HTTP binding §3.1.3.2: header values percent-encode what is not printable ASCII.
fn percent_decode<'a>(field: &'static str, value: &'a str) -> Result<Cow<'a, str>, DialectError> {
    if !value.contains('%') {
        return Ok(Cow::Borrowed(value));
    }
    let (bytes, mut out, mut i) = (value.as_bytes(), Vec::with_capacity(value.len()), 0);
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%').then(|| value.get(i + 1..i + 3)).flatten();
        match escaped.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            // A stray `%` is kept as sent rather than refused.
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| DialectError::Invalid {
        field,
        reason: "percent-encodes bytes that are not UTF-8".into(),
    })
}

/// `data_base64` as JSON when `datacontenttype` says it is (or says nothing: JSON is the
/// default); other data is none a dialect can read.
fn base64_data(encoded: &str, content_type: Option<&str>) -> Result<Option<Value>, DialectError> {
    let essence = content_type.and_then(|c| c.split(';').next()).map(str::trim);
    if essence.is_some_and(|e| MediaType::of(e).is_none()) {
        return Ok(None);
    }
    let invalid = |reason: String| DialectError::Invalid { field: "data_base64", reason };
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|e| invalid(e.to_string()))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| invalid(format!("not JSON: {e}")))
}

fn check_spec(spec: &str) -> Result<(), DialectError> {
    match spec.strip_prefix("1.") {
        Some(minor) if !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(DialectError::Invalid {
            field: "specversion",
            reason: format!("`{spec}` is not CloudEvents 1.x"),
        }),
    }
}

fn invalid_type(v: &Value, expected: &'static str) -> DialectError {
    DialectError::InvalidJson(serde_json::Error::invalid_type(unexpected(v), &expected))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Input, MediaType};
    use super::*;

    #[test]
    fn repeated_ids_take_their_entry_index() {
        assert_eq!(repeated_ids(&["a", "b", "a", "c", "a"]), [s("a#0"), None, s("a#2"), None, s("a#4")]);
        assert_eq!(repeated_ids(&["a"]), [None]);
        assert!(repeated_ids(&[]).is_empty());
    }

    fn s(id: &str) -> Option<String> {
        Some(id.to_owned())
    }

    #[test]
    fn a_batch_repeating_an_id_gives_each_entry_its_own() {
        let entry = |id: &str, name: &str| json!({"specversion": "1.0", "id": id, "source": "/s", "type": "t", "data": {"name": name}});
        let body = json!([entry("x", "a"), entry("y", "b"), entry("x", "c")]).to_string();
        let input = Input::new("cloudevents", MediaType::CloudEventsBatch, body.as_bytes());
        let ids =
            |input: &Input<'_>| read(input).unwrap().iter().map(|e| e.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&input), ["x#0", "y", "x#2"]);
        // The same body again: the same ids.
        assert_eq!(
            ids(&Input::new("cloudevents", MediaType::CloudEventsBatch, body.as_bytes())),
            ids(&input)
        );
        // Unique ids are kept as sent, and a lone event's id too.
        let body = json!([entry("x", "a"), entry("y", "b")]).to_string();
        assert_eq!(ids(&Input::new("cloudevents", MediaType::CloudEventsBatch, body.as_bytes())), ["x", "y"]);
        let body = entry("x", "a").to_string();
        assert_eq!(ids(&Input::new("cloudevents", MediaType::CloudEvents, body.as_bytes())), ["x"]);
    }
}
