//! One delivery as one AMQP message: the CloudEvents RabbitMQ binding of Knative's
//! eventing-rabbitmq, which the CloudEvents SDKs implement too. Binary mode carries each attribute
//! as a `ce-<name>` string header and `datacontenttype` as the `content_type` property; structured
//! mode sends the whole event as `application/cloudevents+json`. Pure, so it is tested without a
//! broker.

use bytes::Bytes;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

use crate::sinks::{encode, ContentMode, Delivery, SinkError};

/// `delivery_mode` 2: the broker writes the message to disk in durable queues, so a confirmed
/// event survives a broker restart.
const PERSISTENT: u8 = 2;

/// Everything `basic.publish` needs for one delivery.
#[derive(Debug)]
pub struct Message {
    pub exchange: ShortString,
    pub routing_key: ShortString,
    pub body: Bytes,
    pub properties: BasicProperties,
}

pub fn encode(d: &Delivery) -> Result<Message, SinkError> {
    let ev = &d.event;
    let (body, content_type) = encode::body(ev, d.target.mode);
    let mut properties = BasicProperties::default()
        .with_content_type(short("content type", content_type)?)
        .with_delivery_mode(PERSISTENT)
        .with_message_id(short("event id", ev.id())?);
    // AMQP timestamps are whole seconds since the epoch and cannot go before it; the exact time
    // is in `ce-time` (or the structured body) anyway.
    if let Some(secs) = ev.time().and_then(|t| u64::try_from(t.timestamp()).ok()) {
        properties = properties.with_timestamp(secs);
    }
    let mut headers = FieldTable::default();
    if d.target.mode == ContentMode::Binary {
        for (attribute, value) in ev.attributes() {
            // Values are long strings, as the binding's readers expect, whatever the attribute's
            // type; names are the spec's, all far below the 255-byte short-string limit.
            headers.insert(attribute.dashed.into(), AMQPValue::LongString(value.into()));
        }
    }
    for (name, value) in encode::trace_headers(ev) {
        headers.insert(name.into(), AMQPValue::LongString(value.as_ref().into()));
    }
    properties = properties.with_headers(headers);
    Ok(Message {
        exchange: short("exchange name", &d.target.name)?,
        routing_key: short("routing key", d.target.key.as_deref().unwrap_or_default())?,
        body,
        properties,
    })
}

/// AMQP short strings (names, keys, most properties) hold at most 255 bytes. A rendered routing key
/// can exceed that with a long repository name; lapin would panic, so it is refused here instead.
fn short(what: &str, value: impl Into<String>) -> Result<ShortString, SinkError> {
    let value = value.into();
    ShortString::try_new(value)
        .map_err(|e| SinkError::Rejected { sink: "amqp", reason: format!("{what}: {e}") })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::event::{self, kinds, Envelope, Occurrence};
    use crate::sinks::Target;

    fn delivery(mode: ContentMode, key: &str) -> Delivery {
        let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, "evt-1:amd64", "PUSH_ARTIFACT");
        occ.host = Some("harbor.example.com".into());
        occ.repository = Some("library/nginx".into());
        occ.tag = Some("1.27".into());
        occ.time = Some(chrono::Utc.with_ymd_and_hms(2026, 3, 29, 13, 40, 12).unwrap());
        let env = Envelope {
            endpoint: "harbor",
            registry: "harbor",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ..Envelope::default()
        };
        Delivery {
            event: Arc::new(event::build(&occ, &env, None)),
            target: Target { name: "registry-events".into(), key: Some(key.into()), mode },
        }
    }

    fn headers(p: &BasicProperties) -> BTreeMap<String, String> {
        let table = p.headers().as_ref().expect("binary mode sets headers");
        table
            .inner()
            .iter()
            .map(|(k, v)| match v {
                AMQPValue::LongString(s) => (k.to_string(), s.to_string()),
                other => panic!("{k} is not a long string: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn binary_mode_maps_attributes_to_ce_headers() {
        let d = delivery(ContentMode::Binary, "harbor.artifact.pushed");
        let m = encode(&d).unwrap();
        assert_eq!(m.exchange.as_str(), "registry-events");
        assert_eq!(m.routing_key.as_str(), "harbor.artifact.pushed");
        // The body is `data`, the very bytes the event holds.
        assert_eq!(m.body, d.event.data());
        let data: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(
            (data["repository"].as_str(), data["tag"].as_str()),
            (Some("library/nginx"), Some("1.27"))
        );
        let p = &m.properties;
        assert_eq!(p.content_type().as_ref().map(ShortString::as_str), Some("application/json"));
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(p.message_id().as_ref().map(ShortString::as_str), Some("evt-1:amd64"));
        assert_eq!(*p.timestamp(), Some(1_774_791_612));
        let want: BTreeMap<String, String> = [
            ("ce-specversion", "1.0"),
            ("ce-id", "evt-1:amd64"),
            ("ce-type", "dev.regbridge.artifact.pushed.v1"),
            ("ce-source", "https://harbor.example.com"),
            ("ce-subject", "library/nginx:1.27"),
            ("ce-time", "2026-03-29T13:40:12Z"),
            ("ce-registry", "harbor"),
            ("ce-origtype", "PUSH_ARTIFACT"),
            ("ce-partitionkey", "library/nginx"),
            ("ce-traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            // The message's own W3C header; without exported spans it is the event's context.
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // Exactly these: `datacontenttype` travels as the content_type property only.
        assert_eq!(headers(p), want);
    }

    #[test]
    fn structured_mode_sends_the_whole_event() {
        let d = delivery(ContentMode::Structured, "k");
        let m = encode(&d).unwrap();
        let p = &m.properties;
        assert_eq!(
            p.content_type().as_ref().map(ShortString::as_str),
            Some("application/cloudevents+json; charset=utf-8")
        );
        // No `ce-` headers in structured mode; only the message's own W3C trace context.
        let names: Vec<String> = headers(p).into_keys().collect();
        assert_eq!(names, ["traceparent"]);
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(p.message_id().as_ref().map(ShortString::as_str), Some("evt-1:amd64"));
        let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(m.body, d.event.to_json());
        assert_eq!(body["id"], "evt-1:amd64");
        assert_eq!(body["data"], serde_json::from_slice::<serde_json::Value>(d.event.data()).unwrap());
        assert_eq!(body["datacontenttype"], "application/json");
    }

    #[test]
    fn overlong_names_are_refused_not_panicked_on() {
        let d = delivery(ContentMode::Binary, &"k".repeat(256));
        match encode(&d) {
            Err(SinkError::Rejected { sink: "amqp", reason }) => {
                assert!(reason.starts_with("routing key"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        let mut d = delivery(ContentMode::Binary, "k");
        d.target.key = None;
        assert_eq!(encode(&d).unwrap().routing_key.as_str(), "", "fanout and headers exchanges need no key");
    }
}
