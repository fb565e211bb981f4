//! Amazon ECR (and Amazon Inspector enhanced-scanning) events, as an EventBridge API destination posts them.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::de::Error as _;
use serde_json::{json, Map, Value};

use super::scan::{Scan, Scanner};
use super::{
    fan_out_id, kind_in, non_empty, parse_time, unexpected, DialectError, DialectSpec, Input, Normalized,
};
use super::{real_digest, text_field as text};
use crate::event::{kinds, Kind, Occurrence, Original};
use crate::verify::Scheme;

/// The connection's `Authorization` (Basic, or an API key named `Authorization`); an endpoint whose
/// API key has another name says `header: x-api-key` in the config file.
pub const DIALECT: DialectSpec =
    DialectSpec::new("ecr", Scheme::Authorization, Some("REGBRIDGE_ECR_AUTH"), normalize);

/// `detail-type (<what the detail says happened>)` and its kind; `origtype` is the `detail-type`
/// alone. The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("ECR Image Action (PUSH)",                 kinds::ARTIFACT_PUSHED),
    ("ECR Image Action (DELETE)",               kinds::ARTIFACT_DELETED),
    ("ECR Replication Action",                  kinds::ARTIFACT_REPLICATED),
    ("ECR Image Scan (COMPLETE)",               kinds::SCAN_COMPLETED),
    ("ECR Image Scan (FAILED)",                 kinds::SCAN_FAILED),
    ("ECR Image Scan (UNSUPPORTED_IMAGE)",      kinds::SCAN_FAILED),
    ("Inspector2 Scan (INITIAL_SCAN_COMPLETE)", kinds::SCAN_COMPLETED),
    ("Inspector2 Finding (ACTIVE)",             kinds::VULNERABILITY_FOUND),
    ("ECR Scan Resource Change (REPOSITORY)",   kinds::REPOSITORY_UPDATED),
];

/// Severity names of ECR and Inspector, gravest first (for `scan.severity`).
const SEVERITIES: [&str; 7] =
    ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED", "UNTRIAGED"];

/// The detail field that qualifies a `detail-type` in [`EVENT_TYPES`], with its name for errors.
fn qualifier(detail_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match detail_type {
        "ECR Image Action" => ("action-type", "detail.action-type"),
        "ECR Image Scan" | "Inspector2 Scan" => ("scan-status", "detail.scan-status"),
        "Inspector2 Finding" => ("status", "detail.status"),
        "ECR Scan Resource Change" => ("resource-type", "detail.resource-type"),
        _ => return None,
    })
}

/// What every occurrence of one event shares.
struct Event<'a> {
    kind: Kind,
    id: &'a str,
    detail_type: &'a str,
    account: Option<&'a str>,
    region: Option<&'a str>,
    time: Option<DateTime<Utc>>,
    detail: &'a Map<String, Value>,
}

impl Event<'_> {
    fn occurrence(&self, id: String) -> Occurrence {
        let mut occ = Occurrence::new(self.kind, id, self.detail_type);
        occ.time = self.time;
        occ
    }

    fn unmapped(&self) -> Normalized {
        Normalized::Unmapped { origtype: self.detail_type.to_owned() }
    }
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(top) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"an EventBridge event object");
        return Err(DialectError::InvalidJson(e));
    };
    let detail_type =
        non_empty(text(top, "detail-type", "detail-type")?).ok_or(DialectError::Missing("detail-type"))?;
    let source = text(top, "source", "source")?.ok_or(DialectError::Missing("source"))?;
    // EventBridge's own event id: the same on every retry of the API destination.
    let id = non_empty(text(top, "id", "id")?).ok_or(DialectError::Missing("id"))?;
    let detail = match top.get("detail") {
        None | Some(Value::Null) => return Err(DialectError::Missing("detail")),
        Some(Value::Object(d)) => d,
        Some(other) => {
            let e = serde_json::Error::invalid_type(unexpected(other), &"an EventBridge `detail` object");
            return Err(DialectError::InvalidJson(e));
        }
    };
    let time = text(top, "time", "time")?.map(|t| parse_time("time", t)).transpose()?;
    let unmapped = || Ok(Normalized::Unmapped { origtype: detail_type.clone() });

    // A rule may forward more than ECR's events, and a custom bus anyone's: only ECR's and
    // Inspector's own sources are read as what their detail-type says.
    let own_source = if detail_type.starts_with("Inspector2 ") { "aws.inspector2" } else { "aws.ecr" };
    if source != own_source {
        return unmapped();
    }
    let key = match qualifier(&detail_type) {
        Some((name, field)) => match non_empty(text(detail, name, field)?) {
            Some(q) => format!("{detail_type} ({q})"),
            None => detail_type.clone(),
        },
        None => detail_type.clone(),
    };
    let Some(kind) = kind_in(EVENT_TYPES, &key) else { return unmapped() };
    // Image and replication actions report failures too; those are not a pushed image.
    if text(detail, "result", "detail.result")?.is_some_and(|r| r != "SUCCESS") {
        return unmapped();
    }
    let event = Event {
        kind,
        id: &id,
        detail_type: &detail_type,
        account: text(top, "account", "account")?,
        region: text(top, "region", "region")?,
        time,
        detail,
    };
    match detail_type.as_str() {
        "ECR Image Scan" | "Inspector2 Scan" => image_scan(&event, source == "aws.inspector2"),
        "Inspector2 Finding" => finding(&event),
        "ECR Scan Resource Change" => resource_change(input, top, &event),
        _ => image_action(&event),
    }
}

/// "ECR Image Action" and "ECR Replication Action": one image, by name, digest and tag.
fn image_action(ev: &Event<'_>) -> Result<Normalized, DialectError> {
    let name = text(ev.detail, "repository-name", "detail.repository-name")?;
    let repo = non_empty(name).ok_or(DialectError::Missing("detail.repository-name"))?;
    let mut occ = ev.occurrence(ev.id.to_owned());
    occ.host = Some(host(ev.account, ev.region)?);
    occ.repository = Some(repo);
    occ.tag = non_empty(text(ev.detail, "image-tag", "detail.image-tag")?);
    // The docs' sample digest has 60 hex digits: dropped rather than published as pullable.
    occ.digest = real_digest(non_empty(text(ev.detail, "image-digest", "detail.image-digest")?));
    Ok(Normalized::Events(vec![occ]))
}

/// "ECR Image Scan" (basic scanning) and "Inspector2 Scan" (the initial enhanced scan).
fn image_scan(ev: &Event<'_>, inspector: bool) -> Result<Normalized, DialectError> {
    let name = non_empty(text(ev.detail, "repository-name", "detail.repository-name")?);
    let Some(name) = name else {
        // Inspector scans EC2 instances and Lambda functions too: not an image, nothing to map.
        return if inspector {
            Ok(ev.unmapped())
        } else {
            Err(DialectError::Missing("detail.repository-name"))
        };
    };
    // Inspector names the repository by its ARN, ECR by its name.
    let repo = Arn::parse(&name).unwrap_or(Arn { repository: name, ..Arn::default() });
    let mut occ = ev.occurrence(ev.id.to_owned());
    occ.host = Some(host(repo.account.as_deref().or(ev.account), repo.region.as_deref().or(ev.region))?);
    occ.repository = Some(repo.repository);
    occ.tag = first_tag(ev.detail.get("image-tags"), "detail.image-tags")?;
    occ.digest = real_digest(non_empty(text(ev.detail, "image-digest", "detail.image-digest")?));

    let mut scan = Scan {
        ty: Some("vulnerability".into()),
        status: non_empty(text(ev.detail, "scan-status", "detail.scan-status")?),
        scanner: inspector.then(inspector_scanner).flatten(),
        ..Scan::default()
    };
    if let Some(counts) = ev.detail.get("finding-severity-counts").filter(|c| !c.is_null()) {
        let Value::Object(counts) = counts else {
            return Err(invalid("detail.finding-severity-counts", "expected an object of counts"));
        };
        let mut summary = Map::new();
        let mut total = None;
        for (name, n) in counts {
            let n =
                n.as_u64().ok_or_else(|| invalid("detail.finding-severity-counts", "counts are integers"))?;
            // Inspector adds a `TOTAL`, which is not a severity.
            match name.as_str() {
                "TOTAL" => total = Some(n),
                _ => {
                    summary.insert(name.to_lowercase(), n.into());
                }
            }
        }
        scan.total = total.or_else(|| Some(summary.values().filter_map(Value::as_u64).sum()));
        scan.severity = SEVERITIES
            .iter()
            .find(|s| counts.get(**s).and_then(Value::as_u64).is_some_and(|n| n > 0))
            .map(|s| s.to_lowercase());
        scan.summary = Some(summary);
    }
    occ.scan = Some(scan.into_value());
    Ok(Normalized::Events(vec![occ]))
}

/// "Inspector2 Finding": one vulnerability in one image (a finding on an EC2 instance or a
/// Lambda function is no image: unmapped).
fn finding(ev: &Event<'_>) -> Result<Normalized, DialectError> {
    let resources = match ev.detail.get("resources") {
        Some(Value::Array(r)) => r.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid("detail.resources", "expected an array")),
    };
    let found = resources.iter().find_map(|r| Some((r, r.get("details")?.get("awsEcrContainerImage")?)));
    let Some((resource, Value::Object(image))) = found else { return Ok(ev.unmapped()) };
    let field = "detail.resources.details.awsEcrContainerImage.repositoryName";
    let name = non_empty(text(image, "repositoryName", field)?).ok_or(DialectError::Missing(field))?;
    // The resource's own `region` is "N/A" in Amazon's sample; its ARN id names the real one.
    let arn = resource.get("id").and_then(Value::as_str).and_then(Arn::parse).unwrap_or_default();
    let registry = text(image, "registry", "detail.resources.details.awsEcrContainerImage.registry")?;
    let mut occ = ev.occurrence(ev.id.to_owned());
    occ.host =
        Some(host(registry.or(arn.account.as_deref()).or(ev.account), arn.region.as_deref().or(ev.region))?);
    occ.repository = Some(name);
    occ.tag = first_tag(image.get("imageTags"), "detail.resources.details.awsEcrContainerImage.imageTags")?;
    let hash = text(image, "imageHash", "detail.resources.details.awsEcrContainerImage.imageHash")?;
    occ.digest = real_digest(non_empty(hash).or(arn.digest));
    occ.architecture =
        non_empty(text(image, "architecture", "detail.resources.details.awsEcrContainerImage.architecture")?);

    let severity = non_empty(text(ev.detail, "severity", "detail.severity")?).map(|s| s.to_lowercase());
    let when = |key, field| Ok::<_, DialectError>(text(ev.detail, key, field)?.map(inspector_time));
    let scan = Scan {
        ty: Some("vulnerability".into()),
        status: non_empty(text(ev.detail, "status", "detail.status")?),
        total: Some(1),
        fixable: match text(ev.detail, "fixAvailable", "detail.fixAvailable")? {
            Some("YES") => Some(1),
            Some("NO") => Some(0),
            _ => None,
        },
        summary: severity.as_ref().map(|s| Map::from_iter([(s.clone(), Value::from(1))])),
        severity,
        scanner: inspector_scanner(),
        report_id: non_empty(text(ev.detail, "findingArn", "detail.findingArn")?),
        started_at: when("firstObservedAt", "detail.firstObservedAt")?,
        completed_at: when("lastObservedAt", "detail.lastObservedAt")?,
        ..Scan::default()
    };
    occ.scan = Some(scan.into_value());
    Ok(Normalized::Events(vec![occ]))
}

/// "ECR Scan Resource Change" of repositories: one `repository.updated` per repository whose
/// scan configuration changed, each with its own part of the event.
fn resource_change(
    input: &Input<'_>,
    top: &Map<String, Value>,
    ev: &Event<'_>,
) -> Result<Normalized, DialectError> {
    let repos = match ev.detail.get("repositories") {
        Some(Value::Array(r)) if !r.is_empty() => r,
        Some(Value::Array(_)) => return Err(invalid("detail.repositories", "empty")),
        None | Some(Value::Null) => return Err(DialectError::Missing("detail.repositories")),
        Some(_) => return Err(invalid("detail.repositories", "expected an array")),
    };
    let max = input.bounds.max_events;
    if repos.len() > max {
        return Err(DialectError::TooManyEvents { count: repos.len(), max });
    }
    let mut parts = match repos.len() > 1 {
        true => parts(top, repos, input.bounds.max_output)?.into_iter().map(Some).collect(),
        false => vec![None],
    }
    .into_iter();
    let mut out = Vec::with_capacity(repos.len());
    for (index, repo) in repos.iter().enumerate() {
        let Value::Object(repo) = repo else {
            return Err(invalid("detail.repositories", "expected objects"));
        };
        let arn = text(repo, "repository-arn", "detail.repositories.repository-arn")?.and_then(Arn::parse);
        let name = non_empty(text(repo, "repository-name", "detail.repositories.repository-name")?);
        let (name, account, region) = match arn {
            Some(arn) => (name.unwrap_or(arn.repository), arn.account, arn.region),
            None => (name.ok_or(DialectError::Missing("detail.repositories.repository-name"))?, None, None),
        };
        let mut occ = ev.occurrence(fan_out_id(ev.id, index, repos.len()));
        occ.host = Some(host(account.as_deref().or(ev.account), region.as_deref().or(ev.region))?);
        occ.repository = Some(name);
        occ.part = parts.next().flatten();
        out.push(occ);
    }
    Ok(Normalized::Events(out))
}

/// Each repository's own part: the event with `detail.repositories` holding that one alone
/// (key order kept), so the events carry about the body once between them.
fn parts(top: &Map<String, Value>, repos: &[Value], max: usize) -> Result<Vec<Original>, DialectError> {
    let with = |repositories: Vec<Value>, base: &Map<String, Value>| {
        let mut part = base.clone();
        if let Some(Value::Object(detail)) = part.get_mut("detail") {
            detail.insert("repositories".into(), Value::Array(repositories));
        }
        part
    };
    let template = with(Vec::new(), top);
    let mut size = 0;
    let mut out = Vec::with_capacity(repos.len());
    for repo in repos {
        let rendered =
            serde_json::to_vec(&with(vec![repo.clone()], &template)).expect("a JSON tree serializes");
        size += rendered.len();
        if size > max {
            return Err(DialectError::OutputTooLarge { size, max });
        }
        out.push(Original::from_rendered(rendered));
    }
    Ok(out)
}

/// `<account>.dkr.ecr.<region>.<partition domain>`, the host images are pulled from.
fn host(account: Option<&str>, region: Option<&str>) -> Result<String, DialectError> {
    let account = non_empty(account).ok_or(DialectError::Missing("account"))?;
    let region = non_empty(region).ok_or(DialectError::Missing("region"))?;
    if !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("account", "an AWS account id is digits"));
    }
    if !region.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) {
        return Err(invalid("region", "an AWS region is lower-case letters, digits and dashes"));
    }
    // China and the isolated partitions have their own domains.
    let domain = match region.as_str() {
        r if r.starts_with("cn-") => "amazonaws.com.cn",
        r if r.starts_with("us-isob-") => "sc2s.sgov.gov",
        r if r.starts_with("us-iso-") => "c2s.ic.gov",
        _ => "amazonaws.com",
    };
    Ok(format!("{account}.dkr.ecr.{region}.{domain}"))
}

/// An ECR repository ARN, `arn:<partition>:ecr:<region>:<account>:repository/<name>[/sha256:…]`
/// (Inspector appends the image digest).
#[derive(Default)]
struct Arn {
    region: Option<String>,
    account: Option<String>,
    repository: String,
    digest: Option<String>,
}

impl Arn {
    fn parse(s: &str) -> Option<Self> {
        let mut it = s.splitn(6, ':');
        let (Some("arn"), Some(_), Some("ecr"), Some(region), Some(account), Some(resource)) =
            (it.next(), it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return None;
        };
        let path = resource.strip_prefix("repository/").filter(|p| !p.is_empty())?;
        let (repository, digest) = match path.rsplit_once("/sha256:") {
            Some((repo, hex)) => (repo, Some(format!("sha256:{hex}"))),
            None => (path, None),
        };
        Some(Self {
            region: non_empty(Some(region)),
            account: non_empty(Some(account)),
            repository: repository.to_owned(),
            digest,
        })
    }
}

/// The first tag of an image's tag list (an image with several tags is one image).
fn first_tag(tags: Option<&Value>, field: &'static str) -> Result<Option<String>, DialectError> {
    match tags {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(tags)) => match tags.first() {
            None => Ok(None),
            Some(Value::String(t)) => Ok(non_empty(Some(t.as_str()))),
            Some(_) => Err(invalid(field, "expected strings")),
        },
        Some(_) => Err(invalid(field, "expected an array of strings")),
    }
}

/// Inspector's timestamps as RFC 3339. Its events write them the console's way, "Dec 3, 2021,
/// 6:02:30 PM", in UTC (the sample's envelope `time` is the same instant); anything else is kept
/// as given.
fn inspector_time(s: &str) -> String {
    let parsed = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%b %d, %Y, %I:%M:%S %p").map(|t| t.and_utc()));
    parsed.map_or_else(|_| s.to_owned(), |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn inspector_scanner() -> Option<Scanner> {
    serde_json::from_value(
        json!({ "name": "Amazon Inspector", "vendor": "Amazon Web Services", "version": null }),
    )
    .ok()
}

fn invalid(field: &'static str, reason: &str) -> DialectError {
    DialectError::Invalid { field, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::{Bounds, MediaType};

    const ENDPOINT: &str = "ecr";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const US_WEST_2: &str = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
    const US_EAST_2: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/ecr/", $name))
        };
    }

    /// The docs' "Event for a completed image scan (basic scanning)" (the hidden fixture).
    const BASIC_SCAN: &str = r#"{
        "version": "0", "id": "85fc3613-e913-7fc4-a80c-a3753e4aa9ae", "detail-type": "ECR Image Scan",
        "source": "aws.ecr", "account": "123456789012", "time": "2019-10-29T02:36:48Z", "region": "us-east-1",
        "resources": ["arn:aws:ecr:us-east-1:123456789012:repository/my-repository-name"],
        "detail": { "scan-status": "COMPLETE", "repository-name": "my-repository-name",
            "finding-severity-counts": { "CRITICAL": 10, "MEDIUM": 9 },
            "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234", "image-tags": [] } }"#;

    fn run_with(body: &str, bounds: Bounds) -> Result<Normalized, DialectError> {
        normalize(&Input { bounds, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) })
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        run_with(body, Bounds::default())
    }

    fn events(body: &str) -> Vec<Occurrence> {
        match run(body) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn unmapped(body: &str) -> String {
        match run(body) {
            Ok(Normalized::Unmapped { origtype }) => origtype,
            other => panic!("expected unmapped, got {other:?}"),
        }
    }

    /// `scan` with every key, the given ones set.
    fn scan(given: Value) -> Option<Value> {
        let mut all = Scan::default().into_value();
        for (k, v) in given.as_object().unwrap() {
            all[k] = v.clone();
        }
        Some(all)
    }

    fn inspector() -> Value {
        json!({ "name": "Amazon Inspector", "vendor": "Amazon Web Services", "version": null })
    }

    /// An `aws.ecr` event of `detail-type` around `detail`.
    fn event(detail_type: &str, detail: Value) -> String {
        json!({ "version": "0", "id": "e-1", "detail-type": detail_type, "source": "aws.ecr",
                "account": "123456789012", "time": "2024-05-01T10:00:00Z", "region": "eu-west-1",
                "resources": [], "detail": detail })
        .to_string()
    }

    #[test]
    fn image_push_and_delete_from_the_docs() {
        let want = Occurrence {
            host: s(US_WEST_2),
            repository: s("my-repository-name"),
            tag: s("latest"),
            // 60 hex digits as published: not a digest.
            digest: None,
            time: at("2019-11-16T01:54:34Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "13cde686-328b-6117-af20-0e5566167482",
                "ECR Image Action",
            )
        };
        assert_eq!(events(fixture!("ImageAction.PUSH.aws-ecr-user-guide.json")), std::slice::from_ref(&want));
        let want = Occurrence {
            kind: kinds::ARTIFACT_DELETED,
            id: "dd3b46cb-2c74-f49e-393b-28286b67279d".into(),
            time: at("2019-11-16T02:01:05Z"),
            ..want
        };
        assert_eq!(events(fixture!("ImageAction.DELETE.aws-ecr-user-guide.json")), [want]);

        // A real digest is kept; an untagged push has no tag.
        let body = event(
            "ECR Image Action",
            json!({ "result": "SUCCESS", "repository-name": "team/app",
            "image-digest": DIGEST, "action-type": "PUSH" }),
        );
        let want = Occurrence {
            host: s("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            repository: s("team/app"),
            digest: s(DIGEST),
            time: at("2024-05-01T10:00:00Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "e-1", "ECR Image Action")
        };
        assert_eq!(events(&body), [want]);
    }

    #[test]
    fn basic_scan_completed_and_failed() {
        let want = Occurrence {
            host: s("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            repository: s("my-repository-name"),
            time: at("2019-10-29T02:36:48Z"),
            scan: scan(
                json!({ "type": "vulnerability", "status": "COMPLETE", "severity": "critical", "total": 19,
                               "summary": { "critical": 10, "medium": 9 } }),
            ),
            ..Occurrence::new(kinds::SCAN_COMPLETED, "85fc3613-e913-7fc4-a80c-a3753e4aa9ae", "ECR Image Scan")
        };
        assert_eq!(events(BASIC_SCAN), [want]);

        let body = event(
            "ECR Image Scan",
            json!({ "scan-status": "FAILED", "repository-name": "app",
            "image-digest": DIGEST, "image-tags": ["1.0", "latest"] }),
        );
        let [occ] = <[_; 1]>::try_from(events(&body)).unwrap();
        assert_eq!(
            (occ.kind, occ.tag.as_deref(), occ.digest.as_deref()),
            (kinds::SCAN_FAILED, Some("1.0"), Some(DIGEST))
        );
        assert_eq!(occ.scan, scan(json!({ "type": "vulnerability", "status": "FAILED" })));
    }

    #[test]
    fn inspector_scan_names_the_repository_by_arn() {
        let want = Occurrence {
            host: s(US_EAST_2),
            repository: s("amazon/amazon-ecs-sample"),
            tag: s("latest"),
            // "…77e5EXAMPLE": a placeholder.
            digest: None,
            time: at("2021-12-03T18:03:16Z"),
            scan: scan(
                json!({ "type": "vulnerability", "status": "INITIAL_SCAN_COMPLETE", "severity": "critical",
                               "total": 158, "summary": { "critical": 7, "high": 61, "medium": 62 },
                               "scanner": inspector() }),
            ),
            ..Occurrence::new(kinds::SCAN_COMPLETED, "739c0d3c-4f02-85c7-5a88-94a9EXAMPLE", "Inspector2 Scan")
        };
        assert_eq!(events(fixture!("Inspector2Scan.enhanced.aws-ecr-user-guide.json")), [want]);
    }

    #[test]
    fn inspector_finding_is_a_vulnerability_found() {
        let want = Occurrence {
            host: s(US_EAST_2),
            repository: s("amazon/amazon-ecs-sample"),
            tag: s("latest"),
            architecture: s("amd64"),
            time: at("2021-12-03T18:02:30Z"),
            scan: scan(json!({
                "type": "vulnerability", "status": "ACTIVE", "severity": "medium", "total": 1,
                "summary": { "medium": 1 }, "scanner": inspector(),
                "report_id": "arn:aws:inspector2:us-east-2:123456789012:finding/be674aaddd0f75ac632055EXAMPLE",
                // "Dec 3, 2021, 6:02:30 PM", the same instant as the envelope's `time`.
                "started_at": "2021-12-03T18:02:30Z", "completed_at": "2021-12-03T18:02:30Z",
            })),
            ..Occurrence::new(
                kinds::VULNERABILITY_FOUND,
                "42dbea55-45ad-b2b4-87a8-afaEXAMPLE",
                "Inspector2 Finding",
            )
        };
        assert_eq!(events(fixture!("Inspector2Finding.enhanced.aws-ecr-user-guide.json")), [want]);

        // Closed and suppressed findings, and findings on EC2 instances, are not "found".
        let body: Value =
            serde_json::from_str(fixture!("Inspector2Finding.enhanced.aws-ecr-user-guide.json")).unwrap();
        let mut closed = body.clone();
        closed["detail"]["status"] = "CLOSED".into();
        assert_eq!(unmapped(&closed.to_string()), "Inspector2 Finding");
        let mut ec2 = body.clone();
        ec2["detail"]["resources"] =
            json!([{ "type": "AWS_EC2_INSTANCE", "id": "i-0123", "details": { "awsEc2Instance": {} } }]);
        assert_eq!(unmapped(&ec2.to_string()), "Inspector2 Finding");
        // Without the image's own fields, its ARN still names repository, account, region and digest.
        let mut sparse = body;
        let image = &mut sparse["detail"]["resources"][0];
        image["id"] = format!("arn:aws:ecr:eu-north-1:210987654321:repository/team/app/{DIGEST}").into();
        image["details"]["awsEcrContainerImage"] = json!({ "repositoryName": "team/app" });
        sparse["detail"]["fixAvailable"] = "YES".into();
        let [occ] = <[_; 1]>::try_from(events(&sparse.to_string())).unwrap();
        assert_eq!(occ.host.as_deref(), Some("210987654321.dkr.ecr.eu-north-1.amazonaws.com"));
        assert_eq!((occ.digest.as_deref(), occ.tag), (Some(DIGEST), None));
        assert_eq!(occ.scan.unwrap()["fixable"], 1);
    }

    #[test]
    fn scan_resource_change_fans_out_per_repository() {
        let body = fixture!("ScanResourceChange.enhanced.aws-ecr-user-guide.json");
        let got = events(body);
        let base = "0c18352a-a4d4-6853-ef53-0ab8638973bf";
        let summary: Vec<_> = got
            .iter()
            .map(|o| {
                (
                    o.kind,
                    o.id.as_str(),
                    o.origtype.as_str(),
                    o.host.as_deref(),
                    o.repository.as_deref(),
                    o.time,
                )
            })
            .collect();
        let host = Some("123456789012.dkr.ecr.us-east-1.amazonaws.com");
        let time = at("2021-10-14T20:53:46Z");
        let kind = kinds::REPOSITORY_UPDATED;
        let ty = "ECR Scan Resource Change";
        let want: Vec<_> = (0..3)
            .map(|i| (kind, format!("{base}#{i}"), ty, host, format!("repository-{}", i + 1), time))
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|(k, id, t, h, r, tm)| (*k, id.as_str(), *t, *h, Some(r.as_str()), *tm))
            .collect();
        assert_eq!(summary, want);
        // Each event carries the event with its own repository alone, key order kept.
        let whole: Value = serde_json::from_str(body).unwrap();
        for (i, occ) in got.iter().enumerate() {
            let part: Value = serde_json::from_slice(occ.part.as_ref().unwrap().as_bytes()).unwrap();
            let mut want = whole.clone();
            want["detail"]["repositories"] = json!([whole["detail"]["repositories"][i]]);
            assert_eq!(part, want);
            let keys: Vec<_> = part["detail"].as_object().unwrap().keys().cloned().collect();
            assert_eq!(keys, ["action-type", "repositories", "resource-type", "scan-type"]);
        }
        // The same delivery again: the same ids.
        assert_eq!(
            events(body).iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
            got.iter().map(|o| o.id.clone()).collect::<Vec<_>>()
        );

        // One repository: the plain id, the whole event as its original.
        let one = event(
            "ECR Scan Resource Change",
            json!({ "action-type": "SCAN_FREQUENCY_CHANGE",
            "resource-type": "REPOSITORY", "scan-type": "ENHANCED",
            "repositories": [{ "repository-name": "solo", "scan-frequency": "SCAN_ON_PUSH" }] }),
        );
        let [occ] = <[_; 1]>::try_from(events(&one)).unwrap();
        assert_eq!((occ.id.as_str(), occ.repository.as_deref(), occ.part), ("e-1", Some("solo"), None));

        let tight = Bounds { max_events: 2, ..Bounds::default() };
        assert!(matches!(run_with(body, tight), Err(DialectError::TooManyEvents { count: 3, max: 2 })));
        let tight = Bounds { max_output: 600, ..Bounds::default() };
        assert!(matches!(run_with(body, tight), Err(DialectError::OutputTooLarge { max: 600, .. })));
        // Image-level changes have no documented shape: acknowledged, not guessed at.
        let image = event(
            "ECR Scan Resource Change",
            json!({ "action-type": "SCAN_ELIGIBILITY_EXPIRED", "resource-type": "IMAGE" }),
        );
        assert_eq!(unmapped(&image), "ECR Scan Resource Change");
    }

    #[test]
    fn replication_and_partitions() {
        let body = event(
            "ECR Replication Action",
            json!({ "result": "SUCCESS", "repository-name": "app",
            "image-digest": DIGEST, "image-tag": "v1", "action-type": "REPLICATE",
            "source-account": "111111111111", "source-region": "us-east-1" }),
        );
        let [occ] = <[_; 1]>::try_from(events(&body)).unwrap();
        assert_eq!(
            (occ.kind, occ.host.as_deref()),
            (kinds::ARTIFACT_REPLICATED, Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com"))
        );
        assert_eq!(host(Some("1"), Some("cn-north-1")).unwrap(), "1.dkr.ecr.cn-north-1.amazonaws.com.cn");
        assert_eq!(host(Some("1"), Some("us-gov-west-1")).unwrap(), "1.dkr.ecr.us-gov-west-1.amazonaws.com");
        assert_eq!(host(Some("1"), Some("us-iso-east-1")).unwrap(), "1.dkr.ecr.us-iso-east-1.c2s.ic.gov");
    }

    #[test]
    fn failures_other_sources_and_other_types_are_unmapped() {
        let failed = event(
            "ECR Image Action",
            json!({ "result": "FAILURE", "repository-name": "app", "action-type": "PUSH" }),
        );
        assert_eq!(unmapped(&failed), "ECR Image Action");
        let pulled = event(
            "ECR Pull Through Cache Action",
            json!({ "repository-name": "app", "sync-status": "SUCCESS" }),
        );
        assert_eq!(unmapped(&pulled), "ECR Pull Through Cache Action");
        let other = event("ECR Image Action", json!({ "repository-name": "app", "action-type": "RETAG" }));
        assert_eq!(unmapped(&other), "ECR Image Action");
        // The right detail-type from someone else's source is not ECR's event.
        let custom =
            fixture!("ImageAction.PUSH.aws-ecr-user-guide.json").replace("\"aws.ecr\"", "\"my.app\"");
        assert_eq!(unmapped(&custom), "ECR Image Action");
        let s3 = r#"{"version":"0","id":"x","detail-type":"Object Created","source":"aws.s3","detail":{}}"#;
        assert_eq!(unmapped(s3), "Object Created");
        let ec2_scan = r#"{"version":"0","id":"x","detail-type":"Inspector2 Scan","source":"aws.inspector2",
            "account":"1","region":"us-east-1","detail":{"scan-status":"INITIAL_SCAN_COMPLETE","instance-id":"i-1"}}"#;
        assert_eq!(unmapped(ec2_scan), "Inspector2 Scan");
    }

    #[test]
    fn other_dialects_and_malformed_events_are_errors() {
        let missing = |body: &str| match run(body) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        assert_eq!(
            missing(r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[]}}"#),
            "detail-type"
        );
        assert_eq!(
            missing(r#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z","contents":{}}"#),
            "detail-type"
        );
        assert_eq!(
            missing(r#"{"message":{"data":"e30=","messageId":"1"},"subscription":"s"}"#),
            "detail-type"
        );
        assert_eq!(missing(r#"{"detail-type":"ECR Image Action","id":"x","detail":{}}"#), "source");
        assert_eq!(missing(r#"{"detail-type":"ECR Image Action","source":"aws.ecr","detail":{}}"#), "id");
        assert_eq!(missing(r#"{"detail-type":"ECR Image Action","source":"aws.ecr","id":"x"}"#), "detail");
        assert_eq!(
            missing(&event("ECR Image Action", json!({ "action-type": "PUSH" }))),
            "detail.repository-name"
        );
        assert_eq!(
            missing(&event("ECR Image Scan", json!({ "scan-status": "COMPLETE" }))),
            "detail.repository-name"
        );
        let no_region = r#"{"id":"x","detail-type":"ECR Image Action","source":"aws.ecr","account":"1",
            "detail":{"action-type":"PUSH","repository-name":"app"}}"#;
        assert_eq!(missing(no_region), "region");
        assert_eq!(
            missing(&event("ECR Scan Resource Change", json!({ "resource-type": "REPOSITORY" }))),
            "detail.repositories"
        );

        let invalid = |body: &str| match run(body) {
            Err(DialectError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        let bad_time =
            fixture!("ImageAction.PUSH.aws-ecr-user-guide.json").replace("2019-11-16T01:54:34Z", "yesterday");
        assert_eq!(invalid(&bad_time), "time");
        let bad_account =
            fixture!("ImageAction.PUSH.aws-ecr-user-guide.json").replace("123456789012", "evil.example/x");
        assert_eq!(invalid(&bad_account), "account");
        assert_eq!(invalid(&event("ECR Image Action", json!({ "action-type": 1 }))), "detail.action-type");
        let counts = json!({ "scan-status": "COMPLETE", "repository-name": "a", "finding-severity-counts": { "HIGH": "2" } });
        assert_eq!(invalid(&event("ECR Image Scan", counts)), "detail.finding-severity-counts");
        let tags = json!({ "scan-status": "COMPLETE", "repository-name": "a", "image-tags": "latest" });
        assert_eq!(invalid(&event("ECR Image Scan", tags)), "detail.image-tags");

        for body in
            [r#"[{"detail-type":"ECR Image Action"}]"#, "42", &event("ECR Image Action", json!("PUSH"))]
        {
            assert!(matches!(run(body), Err(DialectError::InvalidJson(_))), "{body}");
        }
    }

    #[test]
    fn inspector_times_become_rfc3339() {
        assert_eq!(inspector_time("Dec 3, 2021, 6:02:30 PM"), "2021-12-03T18:02:30Z");
        assert_eq!(inspector_time("Oct 16, 2019, 12:00:00 AM"), "2019-10-16T00:00:00Z");
        assert_eq!(inspector_time("2023-03-02T03:09:48.123+01:00"), "2023-03-02T02:09:48.123Z");
        assert_eq!(inspector_time("soon"), "soon");
    }
}
