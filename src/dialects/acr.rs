//! Azure Container Registry: native webhooks, and Event Grid deliveries in both of its schemas.

use serde::de::Error as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ce::{self, text};
use super::{
    non_empty, parse_time, real_digest, unexpected, DialectError, DialectSpec, Handshake, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence, Original};
use crate::verify::Scheme;

/// Event Grid in the CloudEvents schema validates the endpoint with `OPTIONS` first.
pub const DIALECT: DialectSpec =
    DialectSpec::new("acr", Scheme::Authorization, Some("REGBRIDGE_ACR_AUTH"), normalize)
        .with_webhook_validation();

/// ACR event types and their kinds: `(native webhook action, Event Grid event type, kind)`.
///
/// Event Grid's own samples name the image events without the `Microsoft.ContainerRegistry.`
/// prefix (the service sends it); both spellings are read. The README's mapping table mirrors this.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, &str, Kind)] = &[
    ("push",         "Microsoft.ContainerRegistry.ImagePushed",  kinds::ARTIFACT_PUSHED),
    ("delete",       "Microsoft.ContainerRegistry.ImageDeleted", kinds::ARTIFACT_DELETED),
    ("chart_push",   "Microsoft.ContainerRegistry.ChartPushed",  kinds::CHART_UPLOADED),
    ("chart_delete", "Microsoft.ContainerRegistry.ChartDeleted", kinds::CHART_DELETED),
];

/// What every ACR event type starts with in Event Grid.
pub(super) const GRID_PREFIX: &str = "Microsoft.ContainerRegistry.";
const VALIDATION: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";

fn action_kind(action: &str) -> Option<Kind> {
    EVENT_TYPES.iter().find(|row| row.0 == action).map(|row| row.2)
}

fn grid_kind(ty: &str) -> Option<Kind> {
    let short = ty.strip_prefix(GRID_PREFIX).unwrap_or(ty);
    EVENT_TYPES.iter().find(|row| row.1.strip_prefix(GRID_PREFIX) == Some(short)).map(|row| row.2)
}

/// The event `data` of every ACR format: a Distribution-style event (`target`, `request`,
/// `actor`), which the native webhook sends as the whole body.
#[derive(Deserialize)]
struct Data {
    timestamp: Option<String>,
    target: Option<Target>,
    request: Option<Request>,
    actor: Option<Actor>,
}

#[derive(Deserialize)]
struct Target {
    digest: Option<String>,
    repository: Option<String>,
    tag: Option<String>,
    /// Charts only: the chart's name and version (`tag` is its file name).
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    host: Option<String>,
}

#[derive(Deserialize)]
struct Actor {
    name: Option<String>,
}

/// One Event Grid event, from either schema: the Event Grid schema's `eventType`/`topic`/
/// `eventTime`, or the CloudEvents schema's `type`/`source`/`time`.
pub(super) struct GridEvent<'a> {
    pub id: &'a str,
    pub ty: &'a str,
    /// The registry's ARM resource id (`…/Microsoft.ContainerRegistry/registries/<name>`).
    pub topic: Option<&'a str>,
    pub time: Option<&'a str>,
    pub data: Option<&'a Value>,
    /// How this schema names `type` and `time`, for errors.
    pub type_field: &'static str,
    pub time_field: &'static str,
}

/// What one Event Grid event is.
pub(super) enum Mapped {
    Event(Box<Occurrence>),
    /// The subscription validation handshake, with its code.
    Validation(String),
    Unmapped(String),
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    if ce::is_cloudevent(input)? {
        let events = ce::read(input)?;
        let mapped = events.iter().map(|ev| {
            let grid = GridEvent {
                id: &ev.id,
                ty: &ev.ty,
                topic: Some(&ev.source),
                time: ev.time.as_deref(),
                data: ev.data.as_deref(),
                type_field: "type",
                time_field: "time",
            };
            Ok((grid_event(&grid)?, ev.part.clone()))
        });
        return collect(input, mapped.collect::<Result<_, DialectError>>()?);
    }
    match input.json()? {
        Value::Array(entries) => event_grid(input, entries),
        body @ Value::Object(o) => native(body, o),
        other => Err(DialectError::InvalidJson(serde_json::Error::invalid_type(
            unexpected(other),
            &"an ACR webhook object or an array of Event Grid events",
        ))),
    }
}

/// The Event Grid schema: an array of events, one occurrence each.
fn event_grid(input: &Input<'_>, entries: &[Value]) -> Result<Normalized, DialectError> {
    if entries.is_empty() {
        return Err(DialectError::Invalid { field: "body", reason: "an empty array of events".into() });
    }
    let parts = ce::batch_parts(input, entries)?;
    // Event Grid gives each event an id of its own; one repeated within the array (a relay's
    // batching, a hand-made array) is told apart by the entry's position.
    let ids: Vec<&str> =
        entries.iter().map(|e| e.get("id").and_then(Value::as_str).unwrap_or_default()).collect();
    let renamed = ce::repeated_ids(&ids);
    let mut mapped = Vec::with_capacity(entries.len());
    for ((entry, part), renamed) in entries.iter().zip(parts).zip(&renamed) {
        let Value::Object(o) = entry else {
            let e = serde_json::Error::invalid_type(unexpected(entry), &"an Event Grid event object");
            return Err(DialectError::InvalidJson(e));
        };
        let required =
            |key: &'static str| text(o, key)?.filter(|s| !s.is_empty()).ok_or(DialectError::Missing(key));
        let id = required("id")?;
        let grid = GridEvent {
            id: renamed.as_deref().unwrap_or(id),
            ty: required("eventType")?,
            topic: text(o, "topic")?,
            time: text(o, "eventTime")?,
            data: o.get("data").filter(|d| !d.is_null()),
            type_field: "eventType",
            time_field: "eventTime",
        };
        mapped.push((grid_event(&grid)?, part));
    }
    collect(input, mapped)
}

/// A batch's answer: the handshake if it holds one, else its mapped events in order (each with
/// its own part of the payload), else its first unmapped type.
fn collect(input: &Input<'_>, mapped: Vec<(Mapped, Option<Original>)>) -> Result<Normalized, DialectError> {
    let mut events = Vec::with_capacity(mapped.len());
    let mut first_unmapped = None;
    for (m, part) in mapped {
        match m {
            Mapped::Validation(code) => {
                return Ok(Normalized::Answer(Handshake {
                    status: 200,
                    body: json!({ "validationResponse": code }),
                }));
            }
            Mapped::Event(occ) => events.push(Occurrence { part, ..*occ }),
            Mapped::Unmapped(origtype) => {
                input.unmapped_entry();
                first_unmapped.get_or_insert(origtype);
            }
        }
    }
    // A mixed batch publishes its mapped events; the others are counted as unmapped.
    Ok(match first_unmapped {
        Some(origtype) if events.is_empty() => Normalized::Unmapped { origtype },
        _ => Normalized::Events(events),
    })
}

/// One Event Grid event of either schema (the `cloudevents` dialect reads ACR's through here).
/// Its `id` is Event Grid's own, one per event and kept across redeliveries.
pub(super) fn grid_event(ev: &GridEvent<'_>) -> Result<Mapped, DialectError> {
    if ev.ty == VALIDATION {
        let code = ev.data.and_then(|d| d.get("validationCode")).and_then(Value::as_str);
        let code = non_empty(code).ok_or(DialectError::Missing("data.validationCode"))?;
        return Ok(Mapped::Validation(code));
    }
    let Some(kind) = grid_kind(ev.ty) else {
        // Other Azure events (a subscription's deletion, …) are well-formed and not ours to map;
        // anything else was not sent by Event Grid.
        return match ev.ty.starts_with("Microsoft.") {
            true => Ok(Mapped::Unmapped(ev.ty.to_owned())),
            false => Err(DialectError::Invalid {
                field: ev.type_field,
                reason: format!("`{}` is not an Azure Container Registry event type", ev.ty),
            }),
        };
    };
    let data = ev.data.ok_or(DialectError::Missing("data"))?;
    let registry = ev.topic.and_then(registry_host);
    let occ = artifact(kind, ev.id.to_owned(), ev.ty, data, registry, ev.time.map(|t| (ev.time_field, t)))?;
    Ok(Mapped::Event(Box::new(occ)))
}

/// A native webhook: one Distribution-style event as the body, `id` its own (ACR resends the
/// same body, id included).
fn native(body: &Value, o: &Map<String, Value>) -> Result<Normalized, DialectError> {
    // `id`, `timestamp` and `action` together tell ACR's envelope from other vendors' objects
    // that also have an `action` (GitHub's, Nexus's).
    let required =
        |key: &'static str| text(o, key)?.filter(|s| !s.is_empty()).ok_or(DialectError::Missing(key));
    let action = required("action")?;
    let id = required("id")?;
    required("timestamp")?;
    let Some(kind) = action_kind(action) else {
        return Ok(Normalized::Unmapped { origtype: action.to_owned() });
    };
    Ok(Normalized::Events(vec![artifact(kind, id.to_owned(), action, body, None, None)?]))
}

/// The occurrence a Distribution-style `data` describes. `registry` is the host derived from
/// the envelope, for events without a `request` (charts); `envelope_time` the envelope's time,
/// read only when `data` has no `timestamp` of its own.
fn artifact(
    kind: Kind,
    id: String,
    origtype: &str,
    data: &Value,
    registry: Option<String>,
    envelope_time: Option<(&'static str, &str)>,
) -> Result<Occurrence, DialectError> {
    if !data.is_object() {
        let e = serde_json::Error::invalid_type(unexpected(data), &"an ACR event object");
        return Err(DialectError::InvalidJson(e));
    }
    let d = Data::deserialize(data).map_err(DialectError::InvalidJson)?;
    let target = d.target.ok_or(DialectError::Missing("target"))?;
    let mut occ = Occurrence::new(kind, id, origtype);
    occ.host = d.request.and_then(|r| non_empty(r.host.as_deref())).or(registry);
    occ.digest = real_digest(target.digest.as_deref());
    if matches!(kind, kinds::CHART_UPLOADED | kinds::CHART_DELETED) {
        // A chart lives in a Helm repository (`repository`, usually `repo`) under its `name`;
        // `tag` is only its file name. The native webhook's samples append `.tgz` to `version`
        // too, which no chart version has.
        let repository = non_empty(target.repository.as_deref());
        occ.repository = match (repository, non_empty(target.name.as_deref())) {
            (Some(repo), Some(name)) => Some(format!("{repo}/{name}")),
            (repo, name) => name.or(repo),
        };
        let version =
            non_empty(target.version.as_deref()).map(|v| v.strip_suffix(".tgz").unwrap_or(&v).to_owned());
        occ.tag = version.or_else(|| non_empty(target.tag.as_deref()));
    } else {
        occ.repository = non_empty(target.repository.as_deref());
        occ.tag = non_empty(target.tag.as_deref());
    }
    occ.actor = d.actor.and_then(|a| non_empty(a.name.as_deref()));
    // The registry's own `timestamp` says when it happened; Event Grid's time is when it
    // published the event (and one of its samples has a malformed one).
    occ.time = match (non_empty(d.timestamp.as_deref()), envelope_time) {
        (Some(t), _) => Some(parse_time("timestamp", &t)?),
        (None, Some((field, t))) => Some(parse_time(field, t)?),
        (None, None) => None,
    };
    Ok(occ)
}

/// `<name>.azurecr.io` from a topic ending in `…/registries/<name>`, the host images are pulled
/// from. Registry names are alphanumeric; a placeholder such as `<name>` yields nothing.
fn registry_host(topic: &str) -> Option<String> {
    let lower = topic.to_ascii_lowercase();
    let start = lower.rfind("/registries/")? + "/registries/".len();
    let name = lower[start..].split('/').next()?;
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric());
    valid.then(|| format!("{name}.azurecr.io"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{Bounds, MediaType};
    use super::*;
    use crate::dialects::testing::{at, s};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    const HELLO_WORLD: &str = "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d";
    const ACI_HELLOWORLD: &str = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5";
    const MYCHART: &str = "sha256:7f060075264b5ba7c14c23672698152ae6a3ebac1c47916e4efe19cd624d5fab";

    fn run(body: &str, media: MediaType) -> Result<Normalized, DialectError> {
        normalize(&Input::new("acr", media, body.as_bytes()))
    }

    fn events(body: &str, media: MediaType) -> Vec<Occurrence> {
        match run(body, media) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn one(body: &str, media: MediaType) -> Occurrence {
        let [occ] = <[_; 1]>::try_from(events(body, media)).unwrap();
        occ
    }

    /// An Event Grid array in the CloudEvents schema must read the same as a batch, as a plain
    /// JSON array, and (its entry alone) in structured mode.
    fn assert_cloudevents(body: &str, want: &Occurrence) {
        assert_eq!(one(body, MediaType::CloudEventsBatch), *want);
        assert_eq!(one(body, MediaType::Json), *want);
        let entry: Value = serde_json::from_str(body).unwrap();
        assert_eq!(one(&entry[0].to_string(), MediaType::CloudEvents), *want);
        assert_eq!(one(&entry[0].to_string(), MediaType::Json), *want);
    }

    #[test]
    fn native_pushes() {
        let want = Occurrence {
            host: s("myregistry.azurecr.io"),
            repository: s("hello-world"),
            tag: s("v1"),
            // The current docs redact the digest (`sha256:xxxx…`): not one anyone can pull by.
            digest: None,
            time: at("2023-11-17T16:52:01.343145347Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "cb8c3971-9adc-488b-xxxx-43cbb4974ff5", "push")
        };
        assert_eq!(one(fixture!("acr/push.acr-webhook-reference.json"), MediaType::Json), want);

        let want = Occurrence {
            id: "cb8c3971-9adc-488b-bdd8-43cbb4974ff5".into(),
            digest: s(HELLO_WORLD),
            time: at("2017-11-17T16:52:01.343145347Z"),
            ..want
        };
        assert_eq!(one(fixture!("keel-testdata/azure.fakeAzureWebhook.json"), MediaType::Json), want);

        let want = Occurrence {
            id: "52ba983c-67d6-11e8-8c71-4a0006ae5a20".into(),
            digest: s("sha256:f5233545e43561214ca4891fd1157e1c3c563316ed8e237750d59bde73361e77"),
            time: at("2018-06-04T09:04:00Z"),
            ..want
        };
        assert_eq!(
            one(fixture!("acr/push.jenkins-dockerhub-notification-plugin.json"), MediaType::Json),
            want
        );
    }

    #[test]
    fn native_deletes_have_no_tag() {
        let want = Occurrence {
            host: s("myregistry.azurecr.io"),
            repository: s("hello-world"),
            time: at("2023-11-17T16:54:53.657764628Z"),
            ..Occurrence::new(kinds::ARTIFACT_DELETED, "afc359ce-df7f-4e32-xxxx-1ff8aa80927b", "delete")
        };
        assert_eq!(one(fixture!("acr/delete.acr-webhook-reference.json"), MediaType::Json), want);
        let want = Occurrence {
            id: "afc359ce-df7f-4e32-bdde-1ff8aa80927b".into(),
            digest: s(HELLO_WORLD),
            time: at("2017-11-17T16:54:53.657764628Z"),
            ..want
        };
        let body = fixture!("acr/delete.acr-webhook-reference-2017-unredacted.json");
        assert_eq!(one(body, MediaType::Json), want);
    }

    #[test]
    fn native_chart_events_name_the_chart_and_its_version() {
        // No `request`: the registry host is unknown. `version` comes as `5.4.0.tgz`.
        let want = Occurrence {
            repository: s("repo/wordpress"),
            tag: s("5.4.0"),
            time: at("2023-03-05T23:45:31.2614267Z"),
            ..Occurrence::new(kinds::CHART_UPLOADED, "6356e9e0-627f-4fed-xxxx-d9059b5143ac", "chart_push")
        };
        assert_eq!(one(fixture!("acr/chart_push.acr-webhook-reference.json"), MediaType::Json), want);
        let want = Occurrence {
            kind: kinds::CHART_DELETED,
            id: "338a3ef7-ad68-4128-xxxx-fdd3af8e8f67".into(),
            origtype: "chart_delete".into(),
            time: at("2023-03-06T00:10:48.1270754Z"),
            ..want
        };
        assert_eq!(one(fixture!("acr/chart_delete.acr-webhook-reference.json"), MediaType::Json), want);
    }

    fn image_pushed(origtype: &str) -> Occurrence {
        Occurrence {
            host: s("demo.azurecr.io"),
            repository: s("aci-helloworld"),
            tag: s("v1"),
            digest: s(ACI_HELLOWORLD),
            // The registry's `timestamp`, not Event Grid's `eventTime`.
            time: at("2018-04-25T21:39:47.276585742Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "831e1650-001e-001b-66ab-eeb76e069631", origtype)
        }
    }

    fn image_deleted(origtype: &str) -> Occurrence {
        Occurrence {
            host: s("demo.azurecr.io"),
            repository: s("aci-helloworld"),
            digest: s(ACI_HELLOWORLD),
            time: at("2018-04-26T17:56:00.996603117Z"),
            ..Occurrence::new(kinds::ARTIFACT_DELETED, "f06e3921-301f-42ec-b368-212f7d5354bd", origtype)
        }
    }

    fn chart(kind: Kind, id: &str, origtype: &str, time: &str) -> Occurrence {
        // The topic names the registry only as `<name>`: no host.
        Occurrence {
            repository: s("repo/mychart"),
            tag: s("1.0.0"),
            digest: s(MYCHART),
            time: at(time),
            ..Occurrence::new(kind, id, origtype)
        }
    }

    #[test]
    fn event_grid_schema() {
        // The docs' image samples use the short type names; both spellings map.
        let body = fixture!("acr/ImagePushed.eventgrid-schema.azure-docs.json");
        assert_eq!(one(body, MediaType::Json), image_pushed("ImagePushed"));
        let body = fixture!("acr/ImageDeleted.eventgrid-schema.azure-docs.json");
        assert_eq!(one(body, MediaType::Json), image_deleted("ImageDeleted"));
        let body = fixture!("acr/ChartPushed.eventgrid-schema.azure-docs.json");
        let pushed = "Microsoft.ContainerRegistry.ChartPushed";
        let want = chart(
            kinds::CHART_UPLOADED,
            "ea3a9c28-5b17-40f6-a500-3f02b6829277",
            pushed,
            "2019-03-12T22:16:31.0087496Z",
        );
        assert_eq!(one(body, MediaType::Json), want);
        // Its `eventTime` is `019-03-12…`, but the registry's own `timestamp` is what counts.
        let body = fixture!("acr/ChartDeleted.eventgrid-schema.azure-docs.json");
        let deleted = "Microsoft.ContainerRegistry.ChartDeleted";
        let want = chart(
            kinds::CHART_DELETED,
            "39136b3a-1a7e-416f-a09e-5c85d5402fca",
            deleted,
            "2019-03-12T22:42:08.3783775Z",
        );
        assert_eq!(one(body, MediaType::Json), want);
    }

    #[test]
    fn cloudevents_schema() {
        assert_cloudevents(
            fixture!("acr/ImagePushed.cloudevents-schema.azure-docs.json"),
            &image_pushed("ImagePushed"),
        );
        let body = fixture!("acr/ImageDeleted.cloudevents-schema.azure-docs.json");
        assert_cloudevents(body, &image_deleted("ImageDeleted"));
        let body = fixture!("acr/ChartPushed.cloudevents-schema.azure-docs.json");
        let pushed = "Microsoft.ContainerRegistry.ChartPushed";
        let want = chart(
            kinds::CHART_UPLOADED,
            "ea3a9c28-5b17-40f6-a500-3f02b6829277",
            pushed,
            "2019-03-12T22:16:31.0087496Z",
        );
        assert_cloudevents(body, &want);

        let body = fixture!("synthetic/acr.eventgrid-cloudevents.image-pushed.json");
        let want = Occurrence {
            host: s("myreg.azurecr.io"),
            repository: s("app"),
            tag: s("1.0"),
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            time: at("2025-06-01T12:00:00Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "00000000-0000-4000-8000-00000000aaaa",
                "Microsoft.ContainerRegistry.ImagePushed",
            )
        };
        assert_cloudevents(body, &want);
    }

    /// The CloudEvents twin of the ChartDeleted sample (a hidden fixture), malformed `time` and all.
    #[test]
    fn chart_deleted_in_the_cloudevents_schema() {
        let mut entry: Value =
            serde_json::from_str::<Value>(fixture!("acr/ChartDeleted.eventgrid-schema.azure-docs.json"))
                .unwrap()[0]
                .take();
        let o = entry.as_object_mut().unwrap();
        for (from, to) in [("topic", "source"), ("eventType", "type"), ("eventTime", "time")] {
            let v = o.remove(from).unwrap();
            o.insert(to.into(), v);
        }
        o.remove("dataVersion");
        o.remove("metadataVersion");
        o.insert("specversion".into(), "1.0".into());
        let body = json!([entry]).to_string();
        let deleted = "Microsoft.ContainerRegistry.ChartDeleted";
        let want = chart(
            kinds::CHART_DELETED,
            "39136b3a-1a7e-416f-a09e-5c85d5402fca",
            deleted,
            "2019-03-12T22:42:08.3783775Z",
        );
        assert_cloudevents(&body, &want);
        // Without the registry's `timestamp`, the malformed envelope time is the sender's error.
        entry["data"].as_object_mut().unwrap().remove("timestamp");
        let e = run(&entry.to_string(), MediaType::CloudEvents).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "time", .. }), "{e:?}");
    }

    #[test]
    fn subscription_validation_is_answered_with_its_code() {
        let want: Value = serde_json::from_str(fixture!(
            "acr/SubscriptionValidationResponse.response-body.azure-docs.json"
        ))
        .unwrap();
        let r = run(
            fixture!("acr/SubscriptionValidationEvent.eventgrid-schema.azure-docs.json"),
            MediaType::Json,
        );
        assert_eq!(r.unwrap(), Normalized::Answer(Handshake { status: 200, body: want }));
        let body = r#"[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{}}]"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::Missing("data.validationCode"))));
    }

    #[test]
    fn the_registry_host_comes_from_the_topic_when_there_is_no_request() {
        let body = r#"[{"id":"e1","eventType":"Microsoft.ContainerRegistry.ChartPushed",
            "topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/MyReg01",
            "data":{"timestamp":"2024-01-01T00:00:00Z","action":"chart_push",
                    "target":{"repository":"repo","name":"c","version":"2.0.0"},"actor":{"name":"ci"}}}]"#;
        let occ = one(body, MediaType::Json);
        assert_eq!(occ.host.as_deref(), Some("myreg01.azurecr.io"));
        assert_eq!(occ.image().as_deref(), Some("myreg01.azurecr.io/repo/c:2.0.0"));
        assert_eq!(occ.actor.as_deref(), Some("ci"));
        assert_eq!(
            registry_host("/subscriptions/s/providers/Microsoft.ContainerRegistry/registries/<name>"),
            None
        );
        assert_eq!(registry_host("/subscriptions/s"), None);
    }

    #[test]
    fn batches_fan_out_with_their_own_ids_and_parts() {
        let entry = |id: &str, tag: &str| {
            json!({"id": id, "eventType": "Microsoft.ContainerRegistry.ImagePushed", "topic": "t",
                   "data": {"action": "push", "target": {"repository": "app", "tag": tag},
                            "request": {"host": "r.azurecr.io"}}})
        };
        let body = json!([entry("a", "1"), entry("b", "2")]).to_string();
        let evs = events(&body, MediaType::Json);
        let got: Vec<_> = evs.iter().map(|o| (o.id.as_str(), o.tag.as_deref())).collect();
        assert_eq!(got, [("a", Some("1")), ("b", Some("2"))]);
        for (occ, want) in evs.iter().zip([entry("a", "1"), entry("b", "2")]) {
            let part: Value = serde_json::from_slice(occ.part.as_ref().unwrap().as_bytes()).unwrap();
            assert_eq!(part, want);
        }
        // One entry: the whole payload is its original.
        assert!(one(&json!([entry("a", "1")]).to_string(), MediaType::Json).part.is_none());
        // Unmapped entries are left out; a batch of nothing else is unmapped.
        let other =
            json!({"id": "x", "eventType": "Microsoft.EventGrid.SubscriptionDeletedEvent", "data": {}});
        let body = json!([other, entry("b", "2")]).to_string();
        assert_eq!(events(&body, MediaType::Json).iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["b"]);
        let r = run(&json!([other]).to_string(), MediaType::Json).unwrap();
        assert_eq!(
            r,
            Normalized::Unmapped { origtype: "Microsoft.EventGrid.SubscriptionDeletedEvent".into() }
        );

        let body = json!([entry("a", "1"), entry("b", "2"), entry("c", "3")]).to_string();
        let bounds = Bounds { max_events: 2, ..Bounds::default() };
        let r = normalize(&Input { bounds, ..Input::new("acr", MediaType::Json, body.as_bytes()) });
        assert!(matches!(r, Err(DialectError::TooManyEvents { count: 3, max: 2 })), "{r:?}");
    }

    #[test]
    fn an_id_repeated_within_a_batch_takes_the_entry_index() {
        let entry = |id: &str, tag: &str| {
            json!({"id": id, "eventType": "Microsoft.ContainerRegistry.ImagePushed", "topic": "t",
                   "data": {"action": "push", "target": {"repository": "app", "tag": tag},
                            "request": {"host": "r.azurecr.io"}}})
        };
        let body = json!([entry("a", "1"), entry("b", "2"), entry("a", "3")]).to_string();
        let ids = |body: &str, media| events(body, media).into_iter().map(|o| o.id).collect::<Vec<_>>();
        assert_eq!(ids(&body, MediaType::Json), ["a#0", "b", "a#2"]);
        // The sender's retry of the same array: the same ids.
        assert_eq!(ids(&body, MediaType::Json), ids(&body, MediaType::Json));
        // The same rule in the CloudEvents schema.
        let ce = |id: &str, tag: &str| {
            let mut e = entry(id, tag);
            let o = e.as_object_mut().unwrap();
            let ty = o.remove("eventType").unwrap();
            o.insert("type".into(), ty);
            let topic = o.remove("topic").unwrap();
            o.insert("source".into(), topic);
            o.insert("specversion".into(), "1.0".into());
            e
        };
        let body = json!([ce("a", "1"), ce("a", "2")]).to_string();
        assert_eq!(ids(&body, MediaType::CloudEventsBatch), ["a#0", "a#1"]);
    }

    #[test]
    fn unknown_actions_and_types_are_unmapped() {
        let body = r#"{"id":"q1","timestamp":"2024-01-01T00:00:00Z","action":"quarantine","target":{}}"#;
        assert_eq!(
            run(body, MediaType::Json).unwrap(),
            Normalized::Unmapped { origtype: "quarantine".into() }
        );
        let body = r#"{"id":"p1","timestamp":"2024-01-01T00:00:00Z","action":"ping"}"#;
        assert_eq!(run(body, MediaType::Json).unwrap(), Normalized::Unmapped { origtype: "ping".into() });
        let body = r#"{"specversion":"1.0","id":"1","source":"/s","type":"Microsoft.ContainerRegistry.ImageScanned"}"#;
        let r = run(body, MediaType::CloudEvents).unwrap();
        assert_eq!(r, Normalized::Unmapped { origtype: "Microsoft.ContainerRegistry.ImageScanned".into() });
        for (action, _, kind) in EVENT_TYPES {
            let body =
                json!({"id": "1", "timestamp": "2024-01-01T00:00:00Z", "action": action, "target": {}});
            assert_eq!(one(&body.to_string(), MediaType::Json).kind, *kind);
        }
    }

    #[test]
    fn other_vendors_payloads_are_errors() {
        let harbor = include_str!("../../tests/fixtures/harbor/push_artifact.default.json");
        assert!(matches!(run(harbor, MediaType::Json), Err(DialectError::Missing("action"))));
        let harbor_ce = include_str!("../../tests/fixtures/harbor/push_artifact.cloudevents.fixed.json");
        let e = run(harbor_ce, MediaType::CloudEvents).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "type", .. }), "{e:?}");
        let msr = r#"[{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z","contents":{}}]"#;
        assert!(matches!(run(msr, MediaType::Json), Err(DialectError::Missing("id"))));
        let msr = r#"[{"id":"1","type":"TAG_PUSH","contents":{}}]"#;
        assert!(matches!(run(msr, MediaType::Json), Err(DialectError::Missing("eventType"))));
        // GitHub's and Nexus's objects have an `action` too.
        let github = r#"{"action":"published","package":{"name":"app"}}"#;
        assert!(matches!(run(github, MediaType::Json), Err(DialectError::Missing("id"))));
        let nexus = r#"{"timestamp":"2016-11-10T23:57:49.664+0000","action":"CREATED","component":{}}"#;
        assert!(matches!(run(nexus, MediaType::Json), Err(DialectError::Missing("id"))));
        let custom = r#"[{"id":"1","eventType":"Contoso.Items.ItemReceived","data":{}}]"#;
        let e = run(custom, MediaType::Json).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "eventType", .. }), "{e:?}");
        assert!(matches!(run("42", MediaType::Json), Err(DialectError::InvalidJson(_))));
        assert!(matches!(run("[42]", MediaType::Json), Err(DialectError::InvalidJson(_))));
        assert!(matches!(run("[]", MediaType::Json), Err(DialectError::Invalid { field: "body", .. })));
    }

    #[test]
    fn required_fields_and_malformed_values() {
        let body = r#"{"id":"1","timestamp":"2024-01-01T00:00:00Z","action":"push"}"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::Missing("target"))));
        let body = r#"{"id":"1","timestamp":"yesterday","action":"push","target":{}}"#;
        let e = run(body, MediaType::Json).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "timestamp", .. }), "{e:?}");
        let body = r#"{"id":"1","timestamp":"2024-01-01T00:00:00Z","action":"push","target":{"tag":7}}"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::InvalidJson(_))));
        let body = r#"[{"id":"1","eventType":"Microsoft.ContainerRegistry.ImagePushed"}]"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::Missing("data"))));
        let body = r#"[{"id":"1","eventType":"Microsoft.ContainerRegistry.ImagePushed","data":"push"}]"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::InvalidJson(_))));
        let body = r#"[{"id":1,"eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{}}]"#;
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::Invalid { field: "id", .. })));
    }
}
