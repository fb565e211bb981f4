//! Google Artifact Registry (and Container Registry) notifications, delivered by a Pub/Sub push subscription.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::{
    digest_id, kind_in, non_empty, parse_reference, parse_time, real_digest, text_field as text, unexpected,
    DialectError, DialectSpec, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("gar", Scheme::Token, Some("REGBRIDGE_GAR_TOKENS"), normalize);

/// Artifact Registry `action`s and their kinds. The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("INSERT", kinds::ARTIFACT_PUSHED),
    ("DELETE", kinds::ARTIFACT_DELETED),
];

/// The `origtype` of a well-formed Pub/Sub message that carries no Artifact Registry notification
/// (another topic routed to this subscription): Eventarc's name for a Pub/Sub message.
pub const PUBSUB_MESSAGE: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// Pub/Sub writes standard base64 with padding; a relay that re-encodes may drop the padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(top) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a Pub/Sub push envelope object");
        return Err(DialectError::InvalidJson(e));
    };
    match top.get("message") {
        Some(message) => wrapped(message),
        // A subscription with payload unwrapping posts the notification itself as the body.
        None => unwrapped(input, top),
    }
}

/// The default push format: `{"message": {"data": <base64>, "messageId", "publishTime", ...},
/// "subscription"}`.
fn wrapped(message: &Value) -> Result<Normalized, DialectError> {
    let Value::Object(m) = message else {
        let e = serde_json::Error::invalid_type(unexpected(message), &"a Pub/Sub message object");
        return Err(DialectError::InvalidJson(e));
    };
    // Pub/Sub keeps a message's id across redeliveries, and writes both spellings.
    let id = non_empty(text(m, "messageId", "message.messageId")?)
        .or(non_empty(text(m, "message_id", "message.message_id")?))
        .ok_or(DialectError::Missing("message.messageId"))?;
    let time = text(m, "publishTime", "message.publishTime")?
        .or(text(m, "publish_time", "message.publish_time")?)
        .map(|t| parse_time("message.publishTime", t))
        .transpose()?;
    let Some(data) = text(m, "data", "message.data")? else {
        return Ok(Normalized::Unmapped { origtype: PUBSUB_MESSAGE.into() });
    };
    let decoded = BASE64
        .decode(data)
        .or_else(|_| BASE64_URL.decode(data))
        .map_err(|e| DialectError::Invalid { field: "message.data", reason: format!("not base64: {e}") })?;
    // The subscription may carry other messages of its topic: only one that looks like a
    // notification is read as one (and then strictly); anything else is acknowledged, since
    // Pub/Sub would redeliver a refused message until it expires.
    match serde_json::from_slice::<Value>(&decoded) {
        Ok(Value::Object(note)) if looks_like_notification(&note) => notification(&note, id, time),
        _ => Ok(Normalized::Unmapped { origtype: PUBSUB_MESSAGE.into() }),
    }
}

/// An unwrapped push: the body is the notification; with "write metadata" the message's id and
/// publish time ride in `x-goog-pubsub-*` headers.
fn unwrapped(input: &Input<'_>, top: &Map<String, Value>) -> Result<Normalized, DialectError> {
    // Neither an envelope nor a notification: another sender's payload.
    if !matches!(top.get("action"), Some(Value::String(_))) {
        return Err(DialectError::Missing("message"));
    }
    let id = non_empty(input.header("x-goog-pubsub-message-id"))
        .unwrap_or_else(|| digest_id(input.endpoint, input.body));
    let time = input
        .header("x-goog-pubsub-publish-time")
        .map(|t| parse_time("x-goog-pubsub-publish-time", t))
        .transpose()?;
    notification(top, id, time)
}

fn looks_like_notification(note: &Map<String, Value>) -> bool {
    matches!(note.get("action"), Some(Value::String(_)))
        && (note.contains_key("digest") || note.contains_key("tag"))
}

/// `{"action": "INSERT"|"DELETE", "digest": "<host>/<path>@sha256:…", "tag": "<host>/<path>:<tag>"}`;
/// either reference may be absent, not both.
fn notification(
    note: &Map<String, Value>,
    id: String,
    time: Option<DateTime<Utc>>,
) -> Result<Normalized, DialectError> {
    let action = non_empty(text(note, "action", "action")?).ok_or(DialectError::Missing("action"))?;
    let digest_ref = non_empty(text(note, "digest", "digest")?);
    let tag_ref = non_empty(text(note, "tag", "tag")?);
    if digest_ref.is_none() && tag_ref.is_none() {
        return Err(DialectError::Missing("digest"));
    }
    let Some(kind) = kind_in(EVENT_TYPES, &action) else {
        return Ok(Normalized::Unmapped { origtype: action });
    };
    let by_digest = digest_ref.as_deref().map(|r| reference("digest", r)).transpose()?.unwrap_or_default();
    let by_tag = tag_ref.as_deref().map(|r| reference("tag", r)).transpose()?.unwrap_or_default();

    let mut occ = Occurrence::new(kind, id, action);
    occ.host = by_digest.host.or(by_tag.host);
    occ.repository = by_digest.repository.or(by_tag.repository);
    occ.tag = by_tag.tag;
    // Google's own samples carry truncated placeholders ("sha256:6ec128e26cd5..."): not digests.
    occ.digest = real_digest(by_digest.digest.or(by_tag.digest));
    occ.time = time;
    Ok(Normalized::Events(vec![occ]))
}

/// A pull reference with a registry host and a path, as Artifact Registry always writes them.
fn reference(field: &'static str, r: &str) -> Result<super::ImageRef, DialectError> {
    let parsed = parse_reference(r);
    if parsed.host.is_none() || parsed.repository.is_none() {
        let reason = format!("`{r}` is not a <host>/<path> image reference");
        return Err(DialectError::Invalid { field, reason });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "gar";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input::new(ENDPOINT, MediaType::Json, body.as_bytes()))
    }

    fn events(body: &str) -> Vec<Occurrence> {
        match run(body) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// A push envelope around `data`, as Pub/Sub writes it.
    fn envelope(data: &str, id: &str) -> String {
        json!({
            "message": {
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "messageId": id, "message_id": id,
                "publishTime": "2024-05-01T10:00:00.123Z", "publish_time": "2024-05-01T10:00:00.123Z",
                "attributes": {},
            },
            "subscription": "projects/p/subscriptions/regbridge",
        })
        .to_string()
    }

    fn hello_world(body: &str, kind: Kind, action: &str) -> Occurrence {
        Occurrence {
            host: s("us-west1-docker.pkg.dev"),
            repository: s("my-project/my-repo/hello-world"),
            ..Occurrence::new(kind, digest_id(ENDPOINT, body.as_bytes()), action)
        }
    }

    #[test]
    fn docs_samples_as_unwrapped_bodies() {
        // The docs' digest is a truncated placeholder: dropped, so only the repository is known.
        let body = fixture!("gar/INSERT.digest-only.gar-docs.json");
        assert_eq!(events(body), [hello_world(body, kinds::ARTIFACT_PUSHED, "INSERT")]);

        let body = fixture!("gar/INSERT.with-tag.gar-docs.json");
        let want = Occurrence { tag: s("1.1"), ..hello_world(body, kinds::ARTIFACT_PUSHED, "INSERT") };
        assert_eq!(events(body), [want]);

        // The hidden DELETE sample of the same page names the tag alone.
        let body =
            r#"{"action":"DELETE","tag":"us-west1-docker.pkg.dev/my-project/my-repo/hello-world:1.1"}"#;
        let want = Occurrence { tag: s("1.1"), ..hello_world(body, kinds::ARTIFACT_DELETED, "DELETE") };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn container_registry_samples() {
        let body = fixture!("gar/INSERT.with-tag.image-hooks-testdata.json");
        let want = Occurrence {
            host: s("gcr.io"),
            repository: s("mynamespace/repository"),
            tag: s("latest"),
            // "sha256:6ec128e26cd5": truncated.
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, digest_id(ENDPOINT, body.as_bytes()), "INSERT")
        };
        assert_eq!(events(body), [want]);

        // The decoded `data` of flux-recv's push: tag only, and a trailing newline.
        let body = fixture!("gar/converted/INSERT.flux-recv-gcr_payload.message-data-decoded.json");
        let want = Occurrence {
            host: s("us.gcr.io"),
            repository: s("am/am.kebab.api"),
            tag: s("test"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, digest_id(ENDPOINT, body.as_bytes()), "INSERT")
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn push_envelope_uses_the_message_id_and_publish_time() {
        let body = fixture!("gar/converted/pubsub-push.INSERT.flux-recv-gcr_payload.fixed.json");
        let want = Occurrence {
            host: s("us.gcr.io"),
            repository: s("am/am.kebab.api"),
            tag: s("test"),
            time: at("2020-01-30T04:18:04.805Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "981636256311680", "INSERT")
        };
        assert_eq!(events(body), [want]);

        // As published, the capture has a stray closing brace: not JSON.
        let e = run(fixture!("gar/pubsub-push.INSERT.flux-recv-gcr_payload.invalid-json.txt")).unwrap_err();
        assert!(matches!(e, DialectError::InvalidJson(_)), "{e:?}");

        let note = format!(
            r#"{{"action":"INSERT","digest":"europe-docker.pkg.dev/p/r/app@{DIGEST}","tag":"europe-docker.pkg.dev/p/r/app:v2"}}"#
        );
        let want = Occurrence {
            host: s("europe-docker.pkg.dev"),
            repository: s("p/r/app"),
            tag: s("v2"),
            digest: s(DIGEST),
            time: at("2024-05-01T10:00:00.123Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "42", "INSERT")
        };
        assert_eq!(events(&envelope(&note, "42")), std::slice::from_ref(&want));
        // The same message redelivered keeps its id; only `message_id` is enough too.
        let body = json!({"message": {"data": BASE64.encode(&note), "message_id": "42",
            "publishTime": "2024-05-01T10:00:00.123Z"}})
        .to_string();
        assert_eq!(events(&body), [want]);
        // Unpadded and URL-safe base64 decode too.
        let data = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&note);
        let body = json!({"message": {"data": data, "messageId": "43"}}).to_string();
        assert_eq!(events(&body)[0].digest.as_deref(), Some(DIGEST));
    }

    #[test]
    fn unwrapped_push_reads_the_metadata_headers() {
        let body = fixture!("gar/INSERT.with-tag.gar-docs.json");
        let mut headers = HeaderMap::new();
        for (k, v) in
            [("x-goog-pubsub-message-id", "777"), ("x-goog-pubsub-publish-time", "2024-05-01T10:00:00Z")]
        {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let input = Input { headers: &headers, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) };
        let Ok(Normalized::Events(got)) = normalize(&input) else { panic!("expected events") };
        assert_eq!((got[0].id.as_str(), got[0].time), ("777", at("2024-05-01T10:00:00Z")));
        headers
            .insert(HeaderName::from_static("x-goog-pubsub-publish-time"), HeaderValue::from_static("today"));
        let input = Input { headers: &headers, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) };
        let e = normalize(&input).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "x-goog-pubsub-publish-time", .. }), "{e:?}");
    }

    #[test]
    fn other_pubsub_messages_and_actions_are_unmapped() {
        let unmapped = Normalized::Unmapped { origtype: PUBSUB_MESSAGE.into() };
        // Google's generic push sample: data is "Hello Cloud Pub/Sub! Here is my message!".
        assert_eq!(
            run(fixture!("gar/pubsub-push.generic.functions-framework-nodejs-docs.json")).unwrap(),
            unmapped
        );
        // JSON of another shape, and a message of attributes alone.
        assert_eq!(run(&envelope(r#"{"action":"published","package":{}}"#, "1")).unwrap(), unmapped);
        assert_eq!(run(&envelope("[1,2]", "1")).unwrap(), unmapped);
        assert_eq!(run(r#"{"message":{"messageId":"1","attributes":{"k":"v"}}}"#).unwrap(), unmapped);

        let update = Normalized::Unmapped { origtype: "UPDATE".into() };
        let note = r#"{"action":"UPDATE","digest":"us-docker.pkg.dev/p/r/i@sha256:abc"}"#;
        assert_eq!(run(note).unwrap(), update);
        assert_eq!(run(&envelope(note, "1")).unwrap(), update);
    }

    #[test]
    fn other_dialects_and_malformed_envelopes_are_errors() {
        let missing = |body: &str| match run(body) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[]}}"#;
        assert_eq!(missing(harbor), "message");
        assert_eq!(
            missing(r#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z","contents":{}}"#),
            "message"
        );
        assert_eq!(
            missing(r#"{"version":"0","detail-type":"ECR Image Action","source":"aws.ecr","detail":{}}"#),
            "message"
        );
        // Nexus and GitHub have a top-level `action` too, but no image reference.
        assert_eq!(
            missing(r#"{"action":"CREATED","repositoryName":"docker-hosted","component":{}}"#),
            "digest"
        );
        assert_eq!(missing(r#"{"action":"published","package":{"name":"app"}}"#), "digest");
        assert_eq!(missing(r#"{"message":{"data":"e30="}}"#), "message.messageId");
        assert_eq!(missing(&envelope(r#"{"action":"","tag":"gcr.io/p/i:1"}"#, "1")), "action");

        let invalid = |body: &str| match run(body) {
            Err(DialectError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(invalid(r#"{"message":{"data":"not base64!","messageId":"1"}}"#), "message.data");
        assert_eq!(invalid(r#"{"message":{"data":"e30=","messageId":1}}"#), "message.messageId");
        assert_eq!(
            invalid(r#"{"message":{"data":"e30=","messageId":"1","publishTime":"now"}}"#),
            "message.publishTime"
        );
        assert_eq!(invalid(&envelope(r#"{"action":"INSERT","digest":7}"#, "1")), "digest");
        assert_eq!(invalid(r#"{"action":"INSERT","tag":"hello-world:1.1"}"#), "tag");
        assert_eq!(invalid(r#"{"action":"DELETE","digest":"us-docker.pkg.dev"}"#), "digest");

        for body in [r#"[{"action":"INSERT"}]"#, r#""INSERT""#, r#"{"message":"hello"}"#] {
            assert!(matches!(run(body), Err(DialectError::InvalidJson(_))), "{body}");
        }
    }

    #[test]
    fn only_real_digests_are_kept() {
        assert_eq!(real_digest(s(DIGEST)), s(DIGEST));
        let long = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(real_digest(Some(long.clone())), Some(long));
        let upper = format!("sha256:{}", "A".repeat(64));
        for bad in ["sha256:6ec128e26cd5...", "sha256:6ec128e26cd5", "md5:abc", "", &upper] {
            assert_eq!(real_digest(s(bad)), None, "{bad}");
        }
    }
}
