//! The CloudEvent as regbridge carries it to the sinks: attributes as the text every binding
//! sends, `data` as JSON bytes rendered once and shared by every sink the event goes to.

use std::borrow::Cow;

use bytes::Bytes;
use chrono::{DateTime, Utc};

/// `datacontenttype` of every event: `data` is always a JSON object.
pub const DATA_CONTENT_TYPE: &str = "application/json";

/// One normalized CloudEvent 1.0. Built only by [`super::build`], so every event has the
/// contract's attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudEvent {
    pub(super) id: String,
    /// Borrowed for the events regbridge builds; owned for those read back from the outbox.
    pub(super) ty: Cow<'static, str>,
    pub(super) source: String,
    pub(super) subject: Option<String>,
    pub(super) time: Option<DateTime<Utc>>,
    /// `time` as RFC 3339 in UTC with `Z`, the form every binding carries.
    pub(super) time_text: Option<String>,
    pub(super) registry: Cow<'static, str>,
    pub(super) origtype: String,
    pub(super) partitionkey: String,
    pub(super) traceparent: Option<String>,
    pub(super) tracestate: Option<String>,
    pub(super) data: Bytes,
}

/// A CloudEvents attribute and its header names in the protocol bindings.
#[derive(Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: &'static str,
    /// `ce-<name>`: NATS, AMQP (and HTTP).
    pub dashed: &'static str,
    /// `ce_<name>`: Kafka.
    pub underscored: &'static str,
}

macro_rules! attribute {
    ($name:literal) => {
        Attribute { name: $name, dashed: concat!("ce-", $name), underscored: concat!("ce_", $name) }
    };
}

const SPECVERSION: Attribute = attribute!("specversion");
const ID: Attribute = attribute!("id");
const SOURCE: Attribute = attribute!("source");
const TYPE: Attribute = attribute!("type");
const SUBJECT: Attribute = attribute!("subject");
const TIME: Attribute = attribute!("time");
const REGISTRY: Attribute = attribute!("registry");
const ORIGTYPE: Attribute = attribute!("origtype");
const PARTITIONKEY: Attribute = attribute!("partitionkey");
const TRACEPARENT: Attribute = attribute!("traceparent");
const TRACESTATE: Attribute = attribute!("tracestate");

impl CloudEvent {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn ty(&self) -> &str {
        &self.ty
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.time
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn origtype(&self) -> &str {
        &self.origtype
    }

    /// The repository (or the registry instance): the message key on brokers that have one.
    pub fn partitionkey(&self) -> &str {
        &self.partitionkey
    }

    /// The W3C trace context of the webhook that carried it.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// `data`, a JSON object; cloning it shares the bytes.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Every attribute and extension that is set, except `datacontenttype` (which travels as
    /// the protocol's own content type), with the text the bindings carry.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static Attribute, &str)> {
        [
            (&SPECVERSION, Some("1.0")),
            (&ID, Some(self.id.as_str())),
            (&SOURCE, Some(self.source.as_str())),
            (&TYPE, Some(&*self.ty)),
            (&SUBJECT, self.subject.as_deref()),
            (&TIME, self.time_text.as_deref()),
            (&REGISTRY, Some(&*self.registry)),
            (&ORIGTYPE, Some(self.origtype.as_str())),
            (&PARTITIONKEY, Some(self.partitionkey.as_str())),
            (&TRACEPARENT, self.traceparent.as_deref()),
            (&TRACESTATE, self.tracestate.as_deref()),
        ]
        .into_iter()
        .filter_map(|(attribute, value)| Some((attribute, value?)))
    }

    /// The whole event in the CloudEvents JSON format (structured mode), `data` spliced in as is.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 512);
        self.write_json(&mut out);
        out
    }

    /// [`Self::to_json`], appended to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (attribute, value) in self.attributes() {
            push_member(out, attribute.name, value);
            if attribute.name == "type" {
                push_member(out, "datacontenttype", DATA_CONTENT_TYPE);
            }
        }
        out.extend_from_slice(b"\"data\":");
        out.extend_from_slice(&self.data);
        out.push(b'}');
    }
}

/// Appends `"name":"value",` with the value escaped as a JSON string.
fn push_member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    // Writing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.push(b',');
}
