//! Root (root.io): structured CloudEvents `io.root.cr.image.created.v1`, one per remediated tag.

use serde::Deserialize;

use super::{non_empty, parse_reference, parse_time, DialectError, DialectSpec, Input, Normalized, Text};
use crate::event::{kinds, Occurrence};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("root", Scheme::StandardWebhooks, Some("REGBRIDGE_ROOT_SECRETS"), normalize);

const IMAGE_CREATED: &str = "io.root.cr.image.created.v1";
/// Every Root event type starts so; a future one is unmapped, another sender's is malformed.
const NAMESPACE: &str = "io.root.";

// Read straight from the body, borrowing every string that has no escapes: Root's payload has one
// fixed shape, so no JSON tree is built for it.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    specversion: Option<Text<'a>>,
    #[serde(rename = "type", borrow)]
    ty: Option<Text<'a>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    source: Option<Text<'a>>,
    #[serde(borrow)]
    subject: Option<Text<'a>>,
    #[serde(borrow)]
    time: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    image_repo: Option<Text<'a>>,
    #[serde(borrow)]
    image_tag: Option<Text<'a>>,
    #[serde(borrow)]
    image_digest: Option<Text<'a>>,
    #[serde(borrow)]
    arch: Option<Text<'a>>,
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    // serde reads a struct from an array too (positionally): only an object is an envelope.
    if input.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let e = match serde_json::from_slice::<serde::de::IgnoredAny>(input.body) {
            Err(e) => e,
            Ok(_) => <serde_json::Error as serde::de::Error>::custom("expected a JSON object"),
        };
        return Err(DialectError::InvalidJson(e));
    }
    let env: Envelope<'_> = serde_json::from_slice(input.body).map_err(DialectError::InvalidJson)?;
    // Only a CloudEvent (its four required attributes) is Root's, whatever its type: anything
    // else posted here (an MSR envelope, a Harbor payload) is malformed, not an unmapped type.
    if env.specversion.as_deref() != Some("1.0") {
        return match env.specversion {
            None => Err(DialectError::Missing("specversion")),
            Some(v) => {
                Err(DialectError::Invalid { field: "specversion", reason: format!("`{}` is not 1.0", &*v) })
            }
        };
    }
    let ty = non_empty(env.ty.as_deref()).ok_or(DialectError::Missing("type"))?;
    let id = non_empty(env.id.as_deref()).ok_or(DialectError::Missing("id"))?;
    non_empty(env.source.as_deref()).ok_or(DialectError::Missing("source"))?;
    // A CloudEvent of another sender's (Harbor's, Zot's) is not Root's either.
    if !ty.starts_with(NAMESPACE) {
        return Err(DialectError::Invalid {
            field: "type",
            reason: format!("`{ty}` is not a Root event type ({NAMESPACE}…)"),
        });
    }
    if ty != IMAGE_CREATED {
        return Ok(Normalized::Unmapped { origtype: ty });
    }
    let data = env.data.ok_or(DialectError::Missing("data"))?;
    let repository = non_empty(data.image_repo.as_deref()).ok_or(DialectError::Missing("data.image_repo"))?;
    let architecture = non_empty(data.arch.as_deref());

    // Root sends one event per architecture of a multi-arch tag under the same `id`; the arch
    // keeps their normalized ids apart (and stable across Root's retries).
    let id = match &architecture {
        Some(arch) => format!("{id}:{arch}"),
        None => id,
    };
    let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, id, ty);
    // The subject is the pull reference (`cr.root.io/python:3.13`); its host is the registry's.
    occ.host = env
        .subject
        .as_deref()
        .and_then(|s| parse_reference(s).host)
        .or_else(|| env.source.as_deref().and_then(url_host));
    occ.source = non_empty(env.source.as_deref());
    occ.repository = Some(repository);
    occ.tag = non_empty(data.image_tag.as_deref());
    occ.digest = non_empty(data.image_digest.as_deref());
    occ.architecture = architecture;
    occ.time = env.time.as_deref().map(|t| parse_time("time", t)).transpose()?;
    Ok(Normalized::Events(vec![occ]))
}

/// `https://cr.root.io/x` → `cr.root.io`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    non_empty(rest.split('/').next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::MediaType;

    fn run(body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input::new("root", MediaType::CloudEvents, body.as_bytes()))
    }

    #[test]
    fn image_created_with_arch() {
        let body = include_str!("../../tests/fixtures/root/image-created.e2e-rendered.json");
        let Normalized::Events(evs) = run(body).unwrap() else { panic!("unmapped") };
        let o = &evs[0];
        assert_eq!(o.id, "e2e_1234567890:amd64");
        assert_eq!(o.host.as_deref(), Some("cr.root.io"));
        assert_eq!(o.subject().as_deref(), Some("python:3.13"));
        assert_eq!(o.image().as_deref(), Some("cr.root.io/python:3.13"));
        assert_eq!(o.architecture.as_deref(), Some("amd64"));
    }

    #[test]
    fn other_types_are_unmapped_and_required_fields_enforced() {
        let ce = r#""specversion":"1.0","source":"https://cr.root.io","id":"x""#;
        let r = run(&format!(r#"{{{ce},"type":"io.root.cr.image.deleted.v1"}}"#)).unwrap();
        assert_eq!(r, Normalized::Unmapped { origtype: "io.root.cr.image.deleted.v1".into() });
        let e = run(&format!(r#"{{{ce},"type":"io.root.cr.image.created.v1","data":{{}}}}"#)).unwrap_err();
        assert!(matches!(e, DialectError::Missing("data.image_repo")));
        let e = run(&format!(r#"{{{ce}}}"#)).unwrap_err();
        assert!(matches!(e, DialectError::Missing("type")));
        // Not a CloudEvent at all, whatever its `type`: an MSR envelope posted here is malformed.
        let msr = r#"{"type":"TAG_PUSH","createdAt":"2024-01-01T00:00:00Z","contents":{},"location":"x"}"#;
        assert!(matches!(run(msr).unwrap_err(), DialectError::Missing("specversion")));
        let e = run(r#"{"specversion":"1.0","type":"harbor.artifact.pushed","id":"x","source":"s"}"#)
            .unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "type", .. }));
        let e = run(r#"{"specversion":"0.3","type":"t","id":"x","source":"s"}"#).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "specversion", .. }));
        let e =
            run(r#"{"specversion":"1.0","type":"io.root.cr.image.deleted.v1","source":"s"}"#).unwrap_err();
        assert!(matches!(e, DialectError::Missing("id")));
        // Not an object, or not JSON: refused as such, never read positionally.
        for body in [r#"["io.root.cr.image.created.v1","x"]"#, "{", r#"{"type":"a"} x"#, "  "] {
            assert!(matches!(run(body).unwrap_err(), DialectError::InvalidJson(_)), "{body}");
        }
    }
}
